"""sse.py -- a minimal Server-Sent Events client over a raw socket, for the observability tests.

Reads the HTTP head, then frames ("event:", "data:", blank line). Every read is
bounded by a deadline; close() drops the connection at once (what a browser
tab that goes away does).
"""
import json
import socket
import time


class SSEClient:
    """One open event stream: status, headers (lower-case names), events()."""

    def __init__(self, port, path, timeout=5.0, host="127.0.0.1", headers=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                          f"Accept: text/event-stream\r\n{extra}\r\n".encode())
        self.buf = b""
        head = self._read_until(b"\r\n\r\n", time.monotonic() + timeout)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()

    def _read_until(self, sep, deadline):
        while sep not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {sep!r} before the deadline")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("stream closed by the server")
            self.buf += chunk
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def next_event(self, timeout=5.0):
        """The next frame with data, as (event name or "message", data string).
        Comment-only frames (heartbeats) and retry: lines are skipped. Raises
        TimeoutError when none comes in time, ConnectionError when closed."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._read_until(b"\n\n", deadline).decode("utf-8")
            name, data = "message", []
            for line in frame.split("\n"):
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
            if data:
                return name, "\n".join(data)

    def next_json(self, want="message", timeout=5.0):
        """The next frame named want, parsed as JSON."""
        deadline = time.monotonic() + timeout
        while True:
            name, data = self.next_event(max(0.01, deadline - time.monotonic()))
            if name == want:
                return json.loads(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
