"""webdriver.py -- drives headless Chromium through chromedriver's W3C WebDriver HTTP API (urllib only).

    with Browser() as b:              # raises Skip when chromium/chromedriver cannot run
        b.get("http://127.0.0.1:3000/dashboard")
        b.script("return document.title")
        b.console_errors()            # SEVERE browser log entries
        b.type("#token", "secret")    # keystrokes into an element, as a person types
        b.click("button[data-action=apply]")
        b.screenshot("out.png")
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
from harness import Skip, free_port, wait_until  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")


class Browser:
    """A chromedriver process and one headless Chromium session."""

    def __init__(self, width=1400, height=1000):
        for path in (CHROMIUM, CHROMEDRIVER):
            if not shutil.which(path):
                raise Skip(f"{path} is not installed (apt-get install chromium chromium-driver)")
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="obs-chromium-")
        self.log = open(Path(self.profile) / "chromedriver.log", "wb")
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.session = None
        try:
            wait_until(lambda: self._port_open(), 15, "chromedriver to listen")
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}", f"--user-data-dir={self.profile}/profile",
                    "--no-first-run", "--disable-extensions"]},
                "goog:loggingPrefs": {"browser": "ALL"},
            }}}
            value = self._call("POST", "/session", caps, timeout=60)
            self.session = value["sessionId"]
        except Skip:
            self.close()
            raise
        except Exception as e:  # chromium present but cannot start here
            self.close()
            raise Skip(f"headless Chromium could not start: {e}")

    def _port_open(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.code} {e.read()[:500]!r}")

    def _s(self, path):
        return f"/session/{self.session}{path}"

    def get(self, url):
        """Navigates and waits for the page's load event."""
        self._call("POST", self._s("/url"), {"url": url})

    def script(self, source, *args):
        """Runs source (a function body) in the page; returns its value."""
        return self._call("POST", self._s("/execute/sync"), {"script": source, "args": list(args)})

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def find(self, css):
        """The WebDriver id of the first element matching the CSS selector."""
        return self._call("POST", self._s("/element"),
                          {"using": "css selector", "value": css})[self.ELEMENT]

    def type(self, css, text, clear=True):
        """Clears the element (unless clear is False) and sends text as keystrokes."""
        e = self.find(css)
        if clear:
            self._call("POST", self._s(f"/element/{e}/clear"), {})
        self._call("POST", self._s(f"/element/{e}/value"), {"text": text})

    def click(self, css):
        """Clicks the element as a pointer would (scrolled into view, must be visible)."""
        self._call("POST", self._s(f"/element/{self.find(css)}/click"), {})

    def set_viewport(self, width, height):
        """Resizes the window so that the page itself gets width x height CSS
        pixels (window.innerWidth/innerHeight); returns what the page reports."""
        extra = self.script("return [window.outerWidth - window.innerWidth,"
                            " window.outerHeight - window.innerHeight]")
        self._call("POST", self._s("/window/rect"),
                   {"width": width + extra[0], "height": height + extra[1]})
        return self.script("return [window.innerWidth, window.innerHeight]")

    def logs(self):
        """Browser console entries since the last call (level, message)."""
        for path in ("/se/log", "/log"):
            try:
                return self._call("POST", self._s(path), {"type": "browser"})
            except RuntimeError:
                continue
        return []

    def screenshot(self, path):
        png = base64.b64decode(self._call("GET", self._s("/screenshot")))
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(png)
        return path

    def close(self):
        if self.session:
            try:
                self._call("DELETE", self._s(""), timeout=15)
            except Exception:
                pass
            self.session = None
        if self.proc:
            # chromedriver and the browsers it started share its process group
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self.proc = None
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
