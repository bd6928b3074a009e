#!/usr/bin/env python3
"""run_experiments.py -- every shipped chaos experiment against `make run`'s stack, and the runner's own failures.

    python3 tests/chaos/run_experiments.py [-k substring]

Starts scripts/run.sh with PROFILE=classroom (and CB_BACKOFF=2, which the
back-off lesson needs) on free ports with its data in a temporary folder,
then runs scripts/chaos.py on each experiments/*.json and checks: exit 0 and
a passed verdict, every expectation met, breaker events in the journal, a
request record for the whole load, and a timeline picture with one band per
breaker of the stack. Then: an experiment with a deliberately wrong
expectation must exit 1 and be marked MISSED in its picture; bad experiment
files must exit 2 naming the field or line, with nothing run. Pictures go to
build/chaos/<experiment>/timeline.svg. Ends with "N passed, N failed, N skipped".
"""
import argparse
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "py"))
import harness  # noqa: E402

TOKEN = "classroom"


def call(method, url, token=TOKEN):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None


class StackRun:
    def __init__(self, extra_env=None):
        self.tmp = Path(tempfile.mkdtemp(prefix="chaos-lab-", dir="/tmp"))
        self.tmp.chmod(0o755)    # PostgreSQL runs as its own user and must reach its folder
        self.ports = {n: harness.free_port() for n in ("order", "payment", "shipment", "ferretdb")}
        self.urls = {n: f"http://127.0.0.1:{p}" for n, p in self.ports.items()}
        env = dict(os.environ, PROFILE="classroom", **(extra_env or {}),
                   DATA_DIR=str(self.tmp / "data"), ORDER_PORT=str(self.ports["order"]),
                   PAYMENT_PORT=str(self.ports["payment"]), SHIPMENT_PORT=str(self.ports["shipment"]),
                   FERRETDB_PORT=str(self.ports["ferretdb"]))
        for k in ("MONGO_URL", "INJECT_ERR", "ADMIN_TOKEN", "LOG_LEVEL", "CB_VOLUME_THRESHOLD",
                  "CB_RESET_TIMEOUT_MS", "DELAY_MS"):
            env.pop(k, None)
        self.log = self.tmp / "run.log"
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], env=env, cwd=ROOT,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        harness.wait_until(lambda: self.proc.poll() is not None or
                           call("GET", self.urls["order"] + "/health")[0] == 200, 180,
                           "make run's stack (PROFILE=classroom)")
        if self.proc.poll() is not None:
            raise RuntimeError(f"scripts/run.sh exited:\n{self.log.read_text()[-2000:]}")

    def calm(self):
        """Clears every fault and closes every breaker; waits until /health shows them closed."""
        for svc in ("order", "payment", "shipment"):
            call("DELETE", self.urls[svc] + "/chaos")
            status, h = call("GET", self.urls[svc] + "/health")
            for b in (h or {}).get("breakers", []):
                call("POST", f"{self.urls[svc]}/breaker/close?name={urllib.parse.quote(b['name'])}")

        def closed():
            for svc in ("order", "payment", "shipment"):
                status, h = call("GET", self.urls[svc] + "/health")
                if status != 200 or any(b["state"] != "closed" for b in h.get("breakers", [])):
                    return False
            return True
        harness.wait_until(closed, 20, "every breaker closed and every database reachable")

        def empty():
            # the last experiment's calls leave the rolling windows (10 s), so that
            # each experiment's breakers start from the same place
            for svc in ("order", "payment"):
                status, h = call("GET", self.urls[svc] + "/health")
                if status != 200 or any(b["window"]["fires"] for b in h.get("breakers", [])):
                    return False
            return True
        harness.wait_until(empty, 20, "the breakers' rolling windows to empty", interval=0.5)

    def chaos(self, path, out, extra=()):
        argv = [sys.executable, str(ROOT / "scripts" / "chaos.py"), str(path), "--out", str(out),
                "--token", TOKEN] + [f"--{s}={self.urls[s]}" for s in ("order", "payment", "shipment")]
        return subprocess.run(argv + list(extra), capture_output=True, text=True, timeout=300)

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def check_picture(res, name, svg_path, breakers):
    svg = svg_path.read_text() if svg_path.exists() else ""
    res.check(f"{name}: timeline picture written ({svg_path.relative_to(ROOT)})",
              svg.startswith("<svg") and svg.rstrip().endswith("</svg>"))
    bands = {b for b in breakers if re.search(rf'<title>{re.escape(html.escape(b))} \S+ from', svg)}
    res.check(f"{name}: one band per breaker ({len(bands)}/{len(breakers)})", bands == set(breakers),
              f"missing {set(breakers) - bands}")
    return svg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="")
    args = ap.parse_args()
    res = harness.Checks()
    out_root = ROOT / "build" / "chaos"
    groups = {}
    for path in sorted((ROOT / "experiments").glob("*.json")):
        if args.k in path.name:
            req = json.loads(path.read_text()).get("requires", {})
            groups.setdefault(json.dumps(req, sort_keys=True), []).append(path)
    # the stack the runner's own failures are tested on: the plain classroom one
    groups.setdefault("{}", [])
    for req, paths in sorted(groups.items(), key=lambda kv: kv[0] != "{}"):
        print(f"---- make run PROFILE=classroom {' '.join(f'{k}={v}' for k, v in json.loads(req).items())}",
              flush=True)
        run_group(res, json.loads(req), paths, args, out_root, with_runner_checks=req == "{}")
    print(res.summary())
    return 1 if res.failed else 0


def run_group(res, req, paths, args, out_root, with_runner_checks):
    stack = StackRun(req)
    try:
        breakers = []
        for svc in ("order", "payment", "shipment"):
            breakers += [b["name"] for b in call("GET", stack.urls[svc] + "/health")[1]["breakers"]]
        for path in paths:
            stack.calm()
            out = out_root / path.stem
            start = time.monotonic()
            r = stack.chaos(path, out)
            took = time.monotonic() - start
            print(r.stdout, end="", flush=True)
            res.check(f"{path.name}: verdict PASSED, exit 0 ({took:.0f}s)",
                      r.returncode == 0 and "verdict: PASSED" in r.stdout, r.stderr[-1500:])
            try:
                j = json.loads((out / "journal.json").read_text())
            except (OSError, ValueError) as e:
                res.check(f"{path.name}: journal written", False, str(e))
                continue
            exp = json.loads(path.read_text())
            want = exp["load"]["rate"] * exp["load"]["seconds"]
            res.check(f"{path.name}: journal holds every request ({len(j['requests'])}/{want:g})",
                      len(j["requests"]) >= 0.95 * want)
            res.check(f"{path.name}: journal holds breaker events from /events.stream "
                      f"({len(j['events'])})", any(e.get("event") in ("open", "close", "failure", "timeout")
                                                   for e in j["events"]))
            res.check(f"{path.name}: every expectation met",
                      j["expectations"] and all(e["met"] for e in j["expectations"]),
                      str([(e["breaker"], e["expect"], e["at"]) for e in j["expectations"] if not e["met"]]))
            check_picture(res, path.name, out / "timeline.svg", breakers)
        if with_runner_checks and (not args.k or "wrong" in args.k):
            stack.calm()
            wrong = Path(tempfile.mkdtemp()) / "wrong.json"
            wrong.write_text(json.dumps({
                "title": "A wrong expectation",
                "load": {"rate": 5, "seconds": 6},
                "hypothesis": {"window_s": 2},
                "method": [{"at": 1, "expect": "open", "breaker": "order", "within": 2}]}))
            r = stack.chaos(wrong, out_root / "wrong")
            res.check("a wrong expectation fails the run with exit 1",
                      r.returncode == 1 and "verdict: FAILED" in r.stdout, r.stdout[-800:])
            svg = check_picture(res, "wrong.json", out_root / "wrong" / "timeline.svg", breakers)
            res.check("the wrong expectation is marked MISSED in the picture",
                      "order open within 2 s: MISSED" in svg)
            bad = [({"title": "x", "method": [{"at": 1, "action": "explode"}]}, "method[0].action"),
                   ({"title": "x", "load": {"rate": 0}, "method": [{"at": 1, "action": "clear",
                                                                   "service": "order"}]}, "load.rate"),
                   ({"title": "x", "method": [{"at": 1, "expect": "open", "breaker": "nope",
                                               "within": 2}]}, "method[0].breaker"),
                   ({"method": []}, "title"),
                   ("{\n  \"title\": \"x\",\n  oops\n}", ":3:")]
            for body, words in bad:
                wrong.write_text(body if isinstance(body, str) else json.dumps(body))
                r = stack.chaos(wrong, out_root / "bad")
                res.check(f"a bad file is refused naming {words!r}",
                          r.returncode == 2 and words in r.stderr and not r.stdout.strip(),
                          f"exit {r.returncode}: {r.stderr[-300:]} {r.stdout[-300:]}")
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
