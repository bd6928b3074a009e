"""svctest.py -- what the integration tests share: the @test registry, the context a test
receives, the chain's request bodies, and the helpers the tests of several rooms use."""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
import harness  # noqa: E402
from harness import Skip, Stack, http, wait_until  # noqa: E402

ROOT = harness.ROOT
ORDER = {"id": "1", "items": [], "payment": {"amount": 0, "id": "1",
                                              "shipment": {"id": "1", "directions": "home"}}}
PAYMENT = ORDER["payment"]
SHIPMENT = PAYMENT["shipment"]
TESTS = []


def test(fn):
    """Registers a test; fn(ctx) gets a Ctx."""
    TESTS.append(fn)
    return fn


class Ctx:
    """What a test receives: the flavour, the shared database, a Stack factory."""

    def __init__(self, flavour, shared_db, name):
        self.flavour = flavour
        self.logs = harness.BUILD / "results" / "integration-logs" / flavour / name
        self.shared_db = shared_db
        self.stacks = []

    def stack(self, own_db=False) -> Stack:
        st = Stack(self.flavour, None if own_db else self.shared_db, keep_logs=self.logs)
        self.stacks.append(st)
        return st

    def close(self):
        problems = []
        for st in self.stacks:
            st.close()
            problems += st.problems
        return problems


def chain(st, order_env=None, payment_env=None, shipment_env=None):
    """Starts shipment, payment, order wired as docker-compose wires them."""
    ship = st.service("shipment", env=shipment_env or {})
    pay = st.service("payment", env=payment_env or {}, chain=ship)
    order = st.service("order", env=order_env or {}, chain=pay)
    return order, pay, ship


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def meta(doc):
    return doc.get("_meta", {})


def parse_http_file(path):
    """Yields (method, url, headers, body) for each request of a .http file."""
    for block in re.split(r"^###.*$", path.read_text(), flags=re.M):
        lines = [ln for ln in block.splitlines() if not ln.startswith("#")]
        while lines and not lines[0].strip():
            lines.pop(0)
        if not lines:
            continue
        parts = lines[0].split()
        method, url = parts[0], parts[1]
        headers, i = {}, 1
        while i < len(lines) and lines[i].strip():
            k, v = lines[i].split(":", 1)
            headers[k.strip()] = v.strip()
            i += 1
        yield method, url, headers, "\n".join(lines[i:]).strip()


# ---- bad input ------------------------------------------------------------------------------

BAD_INPUTS = [
    # (name, method, path, body bytes, content type, status, words the error must contain)
    ("too large", "POST", "/create", b'{"id":"' + b"x" * (1024 * 1024) + b'"}', "application/json", 413, "larger"),
    ("not JSON content type", "POST", "/create", json.dumps(ORDER).encode(), "text/plain", 415, "Content-Type"),
    ("no content type", "POST", "/create", json.dumps(ORDER).encode(), None, 415, "Content-Type"),
    ("not JSON", "POST", "/create", b'{"id": "1", items: ]', "application/json", 400, "not valid JSON"),
    ("empty body", "POST", "/create", b"", "application/json", 400, "not valid JSON"),
    ("array body", "POST", "/create", b"[1,2]", "application/json", 400, "JSON object"),
    ("missing id", "POST", "/create", {k: v for k, v in ORDER.items() if k != "id"}, "application/json", 400, '"id"'),
    ("id not a string", "POST", "/create", {**ORDER, "id": 1}, "application/json", 400, '"id" must be a string'),
    ("missing items", "POST", "/create", {k: v for k, v in ORDER.items() if k != "items"}, "application/json", 400, '"items"'),
    ("items not an array", "POST", "/create", {**ORDER, "items": {}}, "application/json", 400, '"items" must be a array'),
    ("payment not an object", "POST", "/create", {**ORDER, "payment": "card"}, "application/json", 400, '"payment" must be a object'),
    ("dollar key at depth", "POST", "/create", {**ORDER, "payment": {**PAYMENT, "shipment": {"$where": "1"}}}, "application/json", 400, "$where"),
    ("dotted key in an array", "POST", "/create", {**ORDER, "items": [{"a.b": 1}]}, "application/json", 400, "a.b"),
    ("top-level $set", "POST", "/create", {**ORDER, "$set": {}}, "application/json", 400, "$set"),
    ("reserved _meta", "POST", "/create", {**ORDER, "_meta": {"outcome": "ok"}}, "application/json", 400, "_meta"),
    ("reserved _id", "POST", "/create", {**ORDER, "_id": "x"}, "application/json", 400, "_id"),
    ("reserved _key", "POST", "/create", {**ORDER, "_key": "order-1"}, "application/json", 400, "_key"),
    ("count not a number", "POST", "/create?count=abc", ORDER, "application/json", 400, "count"),
    ("unknown path", "GET", "/nope", None, None, 404, "/nope"),
    ("unknown path under create", "POST", "/create/x", ORDER, "application/json", 404, "/create/x"),
    ("GET /create", "GET", "/create", None, None, 405, "POST"),
    ("DELETE /", "DELETE", "/", None, None, 405, "GET"),
]


BAD_ENV = [
    ({"PORT": "abc"}, "PORT"), ({"PORT": "70000"}, "PORT"), ({"ERR_RATE": "2"}, "ERR_RATE"),
    ({"ERR_RATE": "x"}, "ERR_RATE"), ({"CHAIN_SVC": "not a url"}, "CHAIN_SVC"),
    ({"CHAIN_SVC": "ftp://host/x"}, "CHAIN_SVC"), ({"JUMPS": "0"}, "JUMPS"),
    ({"INJECT_ERR": "yes"}, "INJECT_ERR"), ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"MONGO_URL": "postgres://x"}, "MONGO_URL"), ({"CB_TIMEOUT_MS": "-1"}, "CB_TIMEOUT_MS"),
    ({"CB_ERROR_THRESHOLD": "101"}, "CB_ERROR_THRESHOLD"), ({"THREADS": "0"}, "THREADS"),
    ({"CB_BUCKETS": "7"}, "CB_BUCKETS"), ({"DB_CB_RESET_TIMEOUT_MS": "0"}, "DB_CB_RESET_TIMEOUT_MS"),
    ({"DB_CB_ERROR_THRESHOLD": "-1"}, "DB_CB_ERROR_THRESHOLD"),
    ({"DB_CB_VOLUME_THRESHOLD": "many"}, "DB_CB_VOLUME_THRESHOLD"),
    ({"ADMIN_ALLOWED_ORIGIN": "*"}, "ADMIN_ALLOWED_ORIGIN"),
    ({"ADMIN_ALLOWED_ORIGIN": "http://a:1,*"}, "ADMIN_ALLOWED_ORIGIN"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ({"CHAIN_CONNECTIONS": "0"}, "CHAIN_CONNECTIONS"),
    ({"MAX_BODY_KEYS": "0"}, "MAX_BODY_KEYS"), ({"MAX_OBJECT_KEYS": "x"}, "MAX_OBJECT_KEYS"),
    ({"MAX_ARRAY_ELEMENTS": "1000001"}, "MAX_ARRAY_ELEMENTS"),
    ({"MAX_STRING_BYTES": "-1"}, "MAX_STRING_BYTES"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
    ({"TRACES_QUERY_URL": "jaeger"}, "TRACES_QUERY_URL"),
]


def raw_exchange(port, data: bytes, timeout=5.0) -> bytes:
    """Sends raw bytes, half-closes, returns whatever comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close first (e.g. an oversized header); what it sent is still read
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        return out


# ---- request framing (RFC 9112 5.1, 6.3: the shapes behind request smuggling) ----------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def framing_shapes(body: bytes):
    """(name, head lines after the request line, what follows the head, status) for every
    ambiguous framing; each is followed on the same connection by SMUGGLED, which must
    never be answered."""
    n = len(body)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (n, body)
    cl = b"Content-Length: %d" % n
    te = b"Transfer-Encoding: chunked"
    return [
        ("two different Content-Length", [cl, b"Content-Length: %d" % (n + 5)], body + b"12345", 400),
        ("the same Content-Length twice", [cl, cl], body, 400),
        ("Content-Length list", [b"Content-Length: %d, %d" % (n, n)], body, 400),
        ("Content-Length +N", [b"Content-Length: +%d" % n], body, 400),
        ("Content-Length Njunk", [b"Content-Length: %djunk" % n], body, 400),
        ("Content-Length with a space before the colon", [b"Content-Length : %d" % n], body, 400),
        ("TE then CL, chunked body", [te, cl], chunked, 400),
        ("TE then CL, plain body", [te, cl], body, 400),
        ("CL then TE, chunked body", [cl, te], chunked, 400),
        ("CL then TE, plain body", [cl, te], body, 400),
        ("Transfer-Encoding with a space before the colon", [b"Transfer-Encoding : chunked"], chunked, 400),
        ("TE with a space before the colon, then CL", [b"Transfer-Encoding : chunked", cl], chunked, 400),
        ("TE identity and CL", [b"Transfer-Encoding: identity", cl], body, 400),
        ("TE twice", [te, te], chunked, 400),
        ("folded line hiding a Content-Length", [b"X-A: 1", b" folded", cl], body, 400),
        ("64 header lines", [b"X-%d: 1" % i for i in range(63)] + [cl], body, 431),
        ("bare LF between header lines", [b"X-A: 1\nX-B: 2", cl], body, 400),
        ("POST with no length at all", [b"X-A: 1"], body, 411),
    ]


def framing_exchange(port, data: bytes, timeout=5.0):
    """Sends data without half-closing; returns (bytes received, closed by the server)."""
    _, out, closed, _ = edge_exchange(port, data, timeout)
    return out, closed


# ---- slow and greedy clients ----------------------------------------------------------------

def raise_fd_limit(need: int):
    """Raises this process's soft descriptor limit to need (at most the hard
    limit); raises Skip when the hard limit is lower."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise Skip(f"ulimit -n: hard limit {hard} < {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def open_clients(port, n, first: bytes):
    """n connections to port, each having sent first; the list of sockets."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        if first:
            s.send(first)
        socks.append(s)
    return socks


def trickle(socks, data: bytes):
    """Sends data on every socket still open; returns how many took it."""
    alive = 0
    for s in socks:
        try:
            s.send(data)
            alive += 1
        except OSError:
            pass
    return alive


def dropped(s) -> bool:
    """True when the server has closed s (EOF or reset, possibly after an answer)."""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def timed_get(port, path="/", timeout=5.0):
    """(status or None, seconds) for one GET on a fresh connection."""
    t0 = time.monotonic()
    try:
        r = http("GET", f"http://127.0.0.1:{port}{path}", timeout=timeout)
        return r.status, time.monotonic() - t0
    except OSError:
        return None, time.monotonic() - t0


# ---- the wire ---------------------------------------------------------------------------------

def strace_writes(pid: int, port: int, out: Path, action):
    """Runs action() while strace records the sends, writes and socket options
    of every thread of pid; returns strace's lines. Readiness: GET / on port
    until its answer shows in strace's output. Raises Skip when strace is
    missing or may not attach."""
    if not shutil.which("strace"):
        raise Skip("strace is not installed (scripts/setup.sh installs it)")
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-s", "65536", "-xx", "-o", str(out),
                               "-e", "trace=sendto,sendmsg,write,writev,setsockopt,accept,accept4",
                               "-p", str(pid)], stderr=subprocess.PIPE)

    def attached():
        if tracer.poll() is not None:
            return True
        http("GET", f"http://127.0.0.1:{port}/")
        return out.exists() and "sendto(" in out.read_text(errors="replace")

    try:
        wait_until(attached, 15, "strace to attach")
        if tracer.poll() is not None:
            raise Skip(f"strace cannot attach: {tracer.stderr.read().decode(errors='replace')[:300]}")
        action()
    finally:
        if tracer.poll() is None:
            tracer.terminate()
        tracer.wait(timeout=10)
    return out.read_text(errors="replace").splitlines()


def unhex(s: str) -> bytes:
    """The bytes of a strace -xx string ("\\x48\\x54...")."""
    return bytes.fromhex(s.replace("\\x", ""))

# ---- the lab: runtime faults, traces, deadlines, log levels -----------------------------------

TOKEN = "lab-token"


def chaos(svc, method, body=None, token=TOKEN, headers=None):
    """One request to /chaos with the admin token (None = without one)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return http(method, svc.url("/chaos"), body, headers=h)


def server_timing(r):
    """The answer's Server-Timing header as {name: milliseconds}; {} when absent."""
    v = r.headers.get("server-timing")
    if v is None:
        return {}
    out = {}
    for entry in v.split(","):
        m = re.fullmatch(r"\s*([\w-]+);dur=(\d+\.\d{3})\s*", entry)
        expect(m, f"Server-Timing entry {entry!r} in {v!r}")
        out[m.group(1)] = float(m.group(2))
    return out


# ---- runner -----------------------------------------------------------------------------------

# ---- replicas sharing one breaker by quorum (docs/scale-out.md) ---------------------------------

# Buckets of 500 ms, an open period of 1.5 s: the shared state moves within a second or two.
SHARED_ENV = {"CB_SHARED": "on", "CB_WINDOW_MS": "2000", "CB_BUCKETS": "4",
              "CB_RESET_TIMEOUT_MS": "1500", "CB_VOLUME_THRESHOLD": "2"}


def shared_view(svc):
    """The replica's /health "shared" object, or None while it cannot answer."""
    try:
        return http("GET", svc.url("/health"), timeout=3).json().get("shared")
    except (OSError, ValueError):
        return None


def payment_replicas(st, ship, n, env=None, chain_of=None):
    """n payment replicas "p0".."p<n-1>" sharing the breaker to ship."""
    reps = []
    for i in range(n):
        e = dict(SHARED_ENV, REPLICA_ID=f"p{i}", **(env or {}))
        target = chain_of(i) if chain_of else ship
        if isinstance(target, str):
            e["CHAIN_SVC"] = target
            reps.append(st.service("payment", env=e, label=f"payment-p{i}"))
        else:
            reps.append(st.service("payment", env=e, chain=target, label=f"payment-p{i}"))
    for r in reps:
        wait_until(lambda r=r: (shared_view(r) or {}).get("mode") == "shared" and
                   shared_view(r)["live"] == n, 10, f"{r.name} to see {n} live replicas")
    return reps


class StreamTap:
    """Reads GET /events.stream of svc in a thread from the moment it is
    made, keeping at most the last 1 MiB, so a test sees every event sent
    after that moment however many followed it (a stream opened later
    replays only the last 20)."""

    def __init__(self, svc):
        self.got = b""
        self.lock = threading.Lock()
        self.closed = False
        self.sock = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        self.sock.sendall(b"GET /events.stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.got = (self.got + chunk)[-(1 << 20):]

    def holds(self, needle: bytes, limit_s=5.0) -> bool:
        """True as soon as needle has come, waiting at most limit_s."""
        deadline = time.monotonic() + limit_s
        while True:
            with self.lock:
                if needle in self.got:
                    return True
            if time.monotonic() >= deadline or not self.thread.is_alive():
                return False
            time.sleep(0.05)

    def close(self):
        self.closed = True
        self.sock.close()
        self.thread.join(timeout=2)


def post_round(reps):
    """One POST /create to each replica; the answers' JSON."""
    return [http("POST", r.url("/create"), PAYMENT, timeout=5).json() for r in reps]


def roster(svc):
    """The replica's GET /replicas answer, or None while it cannot answer."""
    try:
        r = http("GET", svc.url("/replicas"), timeout=3)
        return r.json() if r.status == 200 else None
    except (OSError, ValueError):
        return None


def roster_ids(svc):
    return [e["replica"] for e in (roster(svc) or {}).get("replicas", [])]


def failed_calls_during_outage(ctx, shared: bool, replicas=3, outage_s=6.0):
    """Starts `replicas` payment replicas (sharing or not), kills shipment and
    sends rounds of one POST per replica for outage_s. Returns the calls that
    reached the dead shipment (answers degraded for a failure or a timeout,
    not rejected as open)."""
    st = ctx.stack()
    ship = st.service("shipment")
    env = {"CB_RESET_TIMEOUT_MS": "1000"}
    if shared:
        reps = payment_replicas(st, ship, replicas, env=env)
    else:
        reps = [st.service("payment", env=dict(SHARED_ENV, CB_SHARED="off", REPLICA_ID=f"p{i}", **env),
                           chain=ship, label=f"payment-p{i}") for i in range(replicas)]
    for _ in range(3):
        post_round(reps)
    ship.kill()
    failed = rounds = 0
    end = time.monotonic() + outage_s
    while time.monotonic() < end and rounds < 500:
        for a in post_round(reps):
            if a["status"] == "degraded" and a["reason"] != "open":
                failed += 1
        rounds += 1
        time.sleep(0.02)
    return failed, rounds


# ---- never wedged: the database under a lesson's load, /health, outcomes no request recorded ----

WRK_POST = """wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
"""


def health_prober(svc, stop, seen):
    """Asks svc's /health every 50 ms until stop is set; appends (seconds,
    status or the error) to seen."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            status = http("GET", svc.url("/health"), timeout=5).status
        except OSError as e:
            status = repr(e)
        seen.append((time.monotonic() - t0, status))
        stop.wait(0.05)


def hold_then(svc, body, headers=None, timeout=30):
    """Posts body to svc in a thread; returns (thread, box) where box gets the answer or error."""
    box = {}

    def run():
        try:
            box["r"] = http("POST", svc.url("/create"), body, headers=headers, timeout=timeout)
        except OSError as e:
            box["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box
# ---- a body's shape, NULs and trailing data: refused before the database ---------------------
# (docs/security.md, "Bad bodies"). Every body is sent to all three services, each the last
# hop (JUMPS=1), over a raw socket so that no client re-encodes it.

# each service's body (what its caller passes it) and collection, for the services of services.tsv
BODY_OF = dict(zip(harness.SERVICE_NAMES, (ORDER, PAYMENT, SHIPMENT)))
COLLECTION_OF = {s["name"]: s["collection"] for s in harness.SERVICES}
SHAPE_LIMITS = {"MAX_BODY_KEYS": 1000, "MAX_OBJECT_KEYS": 200, "MAX_ARRAY_ELEMENTS": 1000,
                "MAX_STRING_BYTES": 16384}


def compact(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def post_raw(port, body: bytes, timeout=30.0):
    """POSTs body to /create exactly as given. Returns (status, the answer's JSON or None,
    seconds from the first byte sent to the last byte of the answer: the body's transfer
    over loopback included)."""
    head = (b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = time.monotonic()
        s.sendall(head + body)
        out, want = b"", None
        while want is None or len(out) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if want is None and b"\r\n\r\n" in out:
                top, _, _ = out.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", top)
                want = len(top) + 4 + int(m.group(1)) if m else None
                if not m:
                    break
        took = time.monotonic() - sent
    top, _, rest = out.partition(b"\r\n\r\n")
    parts = top.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    try:
        answer = json.loads(rest)
    except ValueError:
        answer = None
    return status, answer, took


def db_breaker_total(svc):
    """The database breaker's counts since start ("<ID>->mongodb" in /health)."""
    h = http("GET", svc.url("/health")).json()
    b = next(b for b in h["breakers"] if b["name"].endswith("->mongodb"))
    return b["total"]


def last_hops(st, env=None):
    """The three services, each started alone as the last hop, by name."""
    return {name: st.service(name, env={"JUMPS": "1", **(env or {})}) for name in BODY_OF}


def count_keys(v) -> int:
    if isinstance(v, dict):
        return len(v) + sum(count_keys(x) for x in v.values())
    if isinstance(v, list):
        return sum(count_keys(x) for x in v)
    return 0


def with_total_keys(doc, total):
    """doc plus objects "o0", "o1"... of at most 150 keys each, so that it has exactly total keys."""
    out, left, i = dict(doc), total - count_keys(doc), 0
    while left > 0:
        n = min(150, left - 1)
        out[f"o{i}"] = {f"k{j}": 0 for j in range(n)}
        left -= n + 1
        i += 1
    assert count_keys(out) == total
    return out


def shape_cases(doc):
    """(limit, body at the limit, body just over it) for each shape limit, on doc."""
    lim = SHAPE_LIMITS
    return [
        ("MAX_OBJECT_KEYS", {**doc, "extra": {f"k{i}": 0 for i in range(lim["MAX_OBJECT_KEYS"])}},
         {**doc, "extra": {f"k{i}": 0 for i in range(lim["MAX_OBJECT_KEYS"] + 1)}}),
        ("MAX_BODY_KEYS", with_total_keys(doc, lim["MAX_BODY_KEYS"]),
         with_total_keys(doc, lim["MAX_BODY_KEYS"] + 1)),
        ("MAX_ARRAY_ELEMENTS", {**doc, "list": [0] * lim["MAX_ARRAY_ELEMENTS"]},
         {**doc, "list": [0] * (lim["MAX_ARRAY_ELEMENTS"] + 1)}),
        ("MAX_STRING_BYTES", {**doc, "note": "x" * lim["MAX_STRING_BYTES"]},
         {**doc, "note": "x" * (lim["MAX_STRING_BYTES"] + 1)}),
        ("MAX_STRING_BYTES", {**doc, "é" * (lim["MAX_STRING_BYTES"] // 2): 1},   # a key, in UTF-8 bytes
         {**doc, "é" * (lim["MAX_STRING_BYTES"] // 2) + "x": 1}),
    ]


def poison(doc, keys=100000):
    """The issue's poison document: doc plus keys "0", "1", ... at its top (~1 MB)."""
    body = compact(doc)
    return body[:-1] + b"," + b",".join(b'"%d":0' % i for i in range(keys)) + b"}"


def poison_spread(doc, keys=100000, per_object=200):
    """As poison(), spread over objects of per_object keys each: only MAX_BODY_KEYS catches it."""
    objs = (b'"p%d":{' % o + b",".join(b'"%d":0' % i for i in range(per_object)) + b"}"
            for o in range(keys // per_object))
    body = compact(doc)
    return body[:-1] + b"," + b",".join(objs) + b"}"


def expect_refused(svc, name, body, status, words, failures, limit=None):
    """Sends body to svc; appends to failures unless the answer is status with an error
    containing every one of words (and, given limit, "limit" and "value" naming it and its
    default) and the request's trace id in "trace". Returns the seconds the answer took."""
    got, answer, took = post_raw(svc.port, body)
    err = (answer or {}).get("error", "")
    where = name
    if got != status or not all(w in err for w in words):
        failures.append(f"{where} answered {got} {answer} (wanted {status} naming {words})")
    elif limit and (answer.get("limit") != limit or answer.get("value") != SHAPE_LIMITS[limit]):
        failures.append(f"{where}: the answer does not name {limit}={SHAPE_LIMITS[limit]}: {answer}")
    elif not re.fullmatch(r"[0-9a-f]{32}", str(answer.get("trace"))):
        failures.append(f"{where}: the refusal names no trace: {answer}")
    return took


def nul_cases(doc):
    """(shape, body bytes, the words the error must contain) for a NUL in a string or key."""
    body = compact(doc)
    return [
        ("\\u0000 in the id", body.replace(b'"id":"1"', b'"id":"\\u0000x"', 1), ['"id"', "NUL"]),
        ("\\u0000 inside the id", body.replace(b'"id":"1"', b'"id":"a\\u0000b"', 1), ['"id"', "NUL"]),
        ("\\u0000 in a key", body[:-1] + b',"a\\u0000b":1}', ["a\\u0000b", "NUL"]),
        ("\\u0000 in a nested string", body[:-1] + b',"x":{"y":["ok","\\u0000"]}}',
         ['"x.y[1]"', "NUL"]),
        ("raw 0x00 in a string", body.replace(b'"id":"1"', b'"id":"a\x00b"', 1), ['"id"', "NUL"]),
        ("raw 0x00 in a key", body[:-1] + b',"a\x00b":1}', ["a?b", "NUL"]),
        ("raw 0x00 after the value", body + b"\x00", ["NUL"]),
        ("raw 0x0A in a string", body.replace(b'"id":"1"', b'"id":"a\nb"', 1),
         ['"id"', "control character"]),
    ]

# ---- make run's supervisor and database watchdog (scripts/run.sh) --------------------------
#
# These run the whole of scripts/run.sh (PostgreSQL, FerretDB and the three services under its
# keepers) on free ports with its data in a temporary folder, and act on its processes through
# the pid files it keeps in $DATA_DIR/run, as a teacher or the chaos runner would.

RUN_PROCESSES = ("postgres", "ferretdb", "shipment", "payment", "order")
# A killed process must be back, and the chain whole through it, within this: the first
# back-off is 0.5 s and a process answers 0.5-2 s after its exit, but when the caller's
# breaker opened during the outage the chain is whole only once its reset timeout has
# passed and a trial call succeeded. The stack runs with CB_RESET_TIMEOUT_MS=2000 (10 s by
# default), so a trial that fails on a busy machine is tried again within the bound.
RECOVERY_LIMIT_S = 15.0
# The watchdog's bound (run.sh: a ping every 2 s with 2 s each, 3 misses): killed at most
# 3 x (2 + 2) = 12 s after the last answer; plus the restart and some slack for a busy machine.
WATCHDOG_LIMIT_S = 25.0


class RunSh:
    """scripts/run.sh as a subprocess in its own session: FERRETDB_BACKEND=postgresql,
    INJECT_ERR=0, free ports, DATA_DIR in a temporary folder, its output in run.log.
    With traces=True / metrics=True it runs with TRACES=on / METRICS=on, Jaeger's and
    Prometheus's ports free ones too (ports["jaeger"], ["jaeger_otlp"], ["prometheus"])."""

    def __init__(self, ctx, traces=False, metrics=False):
        if not shutil.which("pg_isready") or not harness.DBTOOL.exists():
            raise Skip("make run needs PostgreSQL (scripts/setup.sh) and build/bin/dbtool")
        self.tmp = Path(tempfile.mkdtemp(prefix="run-sh-", dir="/tmp"))
        self.tmp.chmod(0o755)      # PostgreSQL runs as its own user and must reach its folder
        ctx.logs.mkdir(parents=True, exist_ok=True)
        self.log_path = ctx.logs / "run.log"
        names = ["order", "payment", "shipment", "ferretdb"]
        names += ["jaeger", "jaeger_otlp"] if traces else []
        names += ["prometheus"] if metrics else []
        self.ports = {n: harness.free_port() for n in names}
        self.run_dir = self.tmp / "data" / "run"
        self.mongo = f"mongodb://127.0.0.1:{self.ports['ferretdb']}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("MONGO_URL", "MONGO_DB", "PROFILE", "JUMPS", "ADMIN_TOKEN", "LOG_LEVEL",
                            "TRACES", "METRICS", "OTEL_EXPORTER_OTLP_ENDPOINT", "TRACES_QUERY_URL")}
        env.update(FERRETDB_BACKEND="postgresql", INJECT_ERR="0", DATA_DIR=str(self.tmp / "data"),
                   BUILD=str(harness.binary("order", ctx.flavour).parent.parent),
                   ORDER_PORT=str(self.ports["order"]), PAYMENT_PORT=str(self.ports["payment"]),
                   SHIPMENT_PORT=str(self.ports["shipment"]), FERRETDB_PORT=str(self.ports["ferretdb"]),
                   TRACES="on" if traces else "off", METRICS="on" if metrics else "off")
        if traces:
            env.update(JAEGER_PORT=str(self.ports["jaeger"]), JAEGER_OTLP_PORT=str(self.ports["jaeger_otlp"]))
        if metrics:
            env.update(PROMETHEUS_PORT=str(self.ports["prometheus"]))
        env.update(CB_RESET_TIMEOUT_MS="2000")
        env.update(harness.flavour_env(ctx.flavour))
        if ctx.flavour == "tsan":
            env.update(CB_TIMEOUT_MS="2000")
        # SIGINT at its default, whatever this test inherited: run.sh must be able to trap it
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], env=env, cwd=ROOT,
                                     stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        wait_until(lambda: self.proc.poll() is not None or self.chain_whole(), 120,
                   "scripts/run.sh's stack to answer a whole chain")
        if self.proc.poll() is not None:
            raise AssertionError(f"scripts/run.sh exited {self.proc.returncode}:\n{self.log()[-2000:]}")

    def url(self, name, path="/"):
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def environ(self, name) -> dict:
        """The environment of process name (its pid file), from /proc/<pid>/environ; {} when it is gone."""
        pid = self.pid(name)
        try:
            raw = Path(f"/proc/{pid}/environ").read_bytes() if pid else b""
        except OSError:
            return {}
        return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pid(self, name, ext="pid"):
        """The pid in $DATA_DIR/run/<name>.<ext>, or None."""
        try:
            return int((self.run_dir / f"{name}.{ext}").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def status(self) -> dict:
        """status.json, or {} while it is being replaced."""
        try:
            return json.loads((self.run_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def chain_whole(self) -> bool:
        """True when a POST through order answers 200 with order ok, payment ok, shipment last."""
        try:
            r = http("POST", self.url("order", "/create"), ORDER, timeout=3)
            b = r.json() if r.status == 200 else {}
        except (OSError, ValueError):
            return False
        hops = []
        while isinstance(b, dict) and b:
            hops.append(b.get("status"))
            b = b.get("next")
        return hops == ["ok", "ok", "last"]

    def close(self):
        """Stops run.sh (SIGTERM to it; SIGKILL to its session after 60 s); resumes a stopped FerretDB first."""
        ferret = self.pid("ferretdb")
        if ferret:
            try:
                os.kill(ferret, signal.SIGCONT)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)


class ChainLoad:
    """POSTs the demo order through order at about rate a second from a pacing thread (each
    request in a worker of a bounded pool, 5 s timeout) until stop(); keeps every answer."""

    def __init__(self, url, rate=20.0):
        self.url, self.rate = url, rate
        self.answers = []          # (status, body dict or None)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=40)
        self.thread = threading.Thread(target=self.pace, daemon=True)
        self.thread.start()

    def one(self):
        try:
            r = http("POST", self.url, ORDER, timeout=5)
            body = r.json() if r.status == 200 else None
            answer = (r.status, body)
        except (OSError, ValueError):
            answer = (0, None)
        with self.lock:
            self.answers.append(answer)

    def pace(self):
        n, start = 0, time.monotonic()
        while not self.done.is_set():
            self.pool.submit(self.one)
            n += 1
            self.done.wait(max(0.0, start + n / self.rate - time.monotonic()))

    def stop(self):
        self.done.set()
        self.thread.join(timeout=10)
        self.pool.shutdown(wait=True)
        return self.answers


def stored_ids(run, collection):
    """The _id of every document of collection in run.sh's database (dbtool find)."""
    r = subprocess.run([str(harness.DBTOOL), "find", run.mongo, "resilience", collection, "{}"],
                       capture_output=True, text=True, timeout=120)
    expect(r.returncode == 0, f"dbtool find {collection}: {r.stderr[-300:]}")
    ids = set()
    for line in r.stdout.splitlines():
        doc = json.loads(line)
        ids.add(doc["_id"]["$oid"] if isinstance(doc["_id"], dict) else doc["_id"])
    return ids


def kill_and_time_recovery(run, name, sig=signal.SIGKILL):
    """Sends sig to process name through its pid file; waits (RECOVERY_LIMIT_S in all) until a
    new process of that name is ready, then until the chain is whole. Returns the seconds each took."""
    old = run.pid(name)
    expect(old, f"no pid file for {name} in {run.run_dir}")
    start = time.monotonic()
    os.kill(old, sig)
    wait_until(lambda: run.pid(name, "ready") not in (None, old), RECOVERY_LIMIT_S,
               f"{name} back (a new ready pid) after {signal.Signals(sig).name}", interval=0.02)
    back = time.monotonic() - start
    wait_until(run.chain_whole, max(0.1, RECOVERY_LIMIT_S - back),
               f"the chain whole after {name}'s restart")
    return back, time.monotonic() - start



# ---- HTTP edges, one spelling per path, the admin door, the workers' reserve ------------------
# (RFC 9112 and 9110; docs/security.md "Request heads" and "Slow and greedy clients")

BODIES = BODY_OF
COLLECTIONS = COLLECTION_OF


def edge_exchange(port, data: bytes, timeout=5.0, src=None, half_close=False):
    """Sends data on a fresh connection (bound to source address src when given) and reads
    until the server closes or timeout passes. Returns (every status on the wire, in order,
    bytes received, closed by the server, seconds to the first byte)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        t0 = time.monotonic()
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out, closed, first = b"", False, None
        deadline = t0 + timeout
        try:
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                if first is None:
                    first = time.monotonic() - t0
                out += chunk
        except socket.timeout:
            pass
        except OSError:
            closed = True
        statuses = [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", out)]
        return statuses, out, closed, first
    finally:
        s.close()


def head(method: bytes, target: bytes, lines, body: bytes = b"", version=b"HTTP/1.1", eol=b"\r\n"):
    """A request: request line, header lines, blank line, body."""
    return method + b" " + target + b" " + version + eol + b"".join(l + eol for l in lines) + eol + body


def edge_shapes(port: int, body: bytes):
    """(name, bytes, status, must close, stores a document) for every shape of point 4;
    each refused one is followed on its connection by SMUGGLED, never to be answered."""
    n = len(body)
    js = b"Content-Type: application/json"
    cl = b"Content-Length: %d" % n
    me = b"127.0.0.1:%d" % port
    return [
        ("a fold after the last header (Content-Length: N, then ' 0')",
         head(b"POST", b"/create", [b"Host: x", js, cl, b" 0"], body) + SMUGGLED, 400, True, False),
        ("a fold between two headers",
         head(b"POST", b"/create", [b"Host: x", b"X-A: 1", b" folded", js, cl], body) + SMUGGLED, 400, True, False),
        ("a fold right after the request line",
         head(b"POST", b"/create", [b" X-A: 1", b"Host: x", js, cl], body) + SMUGGLED, 400, True, False),
        ("every line ended by a bare LF",
         head(b"POST", b"/create", [b"Host: x", js, cl], body, eol=b"\n") + SMUGGLED, 400, True, False),
        ("a GET whose every line ends in a bare LF",
         head(b"GET", b"/", [b"Host: x"], eol=b"\n") + SMUGGLED, 400, True, False),
        ("the request line ended by a bare LF",
         b"GET / HTTP/1.1\nHost: x\r\n\r\n" + SMUGGLED, 400, True, False),
        ("two spaces in the request line",
         b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED, 400, True, False),
        ("a CR without LF inside a header line",
         b"GET / HTTP/1.1\r\nHost: x\rX-B: 2\r\n\r\n" + SMUGGLED, 400, True, False),
        ("a chunked body, then another request on the connection (served, then closed)",
         head(b"POST", b"/create", [b"Host: x", js, b"Transfer-Encoding: chunked"],
              b"%x\r\n%s\r\n0\r\n\r\n" % (n, body)) + SMUGGLED, 200, True, True),
        ("absolute form naming this service",
         head(b"POST", b"http://" + me + b"/create", [b"Host: " + me, js, cl, b"Connection: close"], body),
         200, True, True),
        ("absolute form with a query",
         head(b"GET", b"http://localhost:%d/?a=b" % port, [b"Host: x", b"Connection: close"]), 200, True, False),
        ("absolute form naming another host",
         head(b"POST", b"http://example.com/create", [b"Host: example.com", js, cl], body) + SMUGGLED,
         400, True, False),
        ("absolute form naming another port",
         head(b"POST", b"http://127.0.0.1:1/create", [b"Host: x", js, cl], body) + SMUGGLED, 400, True, False),
        ("absolute form with userinfo",
         head(b"POST", b"http://u@" + me + b"/create", [b"Host: x", js, cl], body) + SMUGGLED, 400, True, False),
        ("absolute https form", head(b"GET", b"https://" + me + b"/", [b"Host: x"]) + SMUGGLED, 400, True, False),
        ("absolute form with a non-canonical path",
         head(b"POST", b"http://" + me + b"//create", [b"Host: x", js, cl], body) + SMUGGLED, 400, True, False),
        ("a target that is neither", head(b"GET", b"create", [b"Host: x"]) + SMUGGLED, 400, True, False),
        ("HTTP/1.1 without Host", head(b"POST", b"/create", [js, cl], body) + SMUGGLED, 400, True, False),
        ("two Host headers", head(b"POST", b"/create", [b"Host: a", b"Host: b", js, cl], body) + SMUGGLED,
         400, True, False),
        ("HTTP/1.0 without Host is fine", head(b"GET", b"/", [], version=b"HTTP/1.0"), 200, True, False),
        ("OPTIONS *", head(b"OPTIONS", b"*", [b"Host: x"]), 204, True, False),
        ("GET *", head(b"GET", b"*", [b"Host: x"]) + SMUGGLED, 400, True, False),
        ("a NUL in the path", head(b"GET", b"/%00", [b"Host: x"]) + SMUGGLED, 400, True, False),
        ("a NUL after /create", head(b"POST", b"/create%00", [b"Host: x", js, cl], body) + SMUGGLED,
         400, True, False),
        ("a raw NUL in the path", head(b"GET", b"/\x00", [b"Host: x"]) + SMUGGLED, 400, True, False),
        ("Expect: bogus", head(b"POST", b"/create", [b"Host: x", js, cl, b"Expect: bogus"], body) + SMUGGLED,
         417, True, False),
        ("Expect: 100-continue with a body over the limit",
         head(b"POST", b"/create", [b"Host: x", js, b"Content-Length: 2097152", b"Expect: 100-continue"]),
         413, True, False),
        ("X-Deadline-Ms twice",
         head(b"POST", b"/create", [b"Host: x", js, cl, b"X-Deadline-Ms: 5000", b"X-Deadline-Ms: 1"], body)
         + SMUGGLED, 400, True, False),
        ("two well-framed requests pipelined (both served)",
         head(b"POST", b"/create", [b"Host: x", js, cl], body) +
         head(b"POST", b"/create", [b"Host: x", js, cl, b"Connection: close"], body), 200, True, True),
    ]


NON_CANONICAL = [b"//create", b"/%63reate", b"/./create", b"/x/../create", b"/create/.", b"/create.",
                 b"/%2fcreate", b"/%2Fcreate", b"/\\create", b"/create%2e", b"/%2e/create", b"///create",
                 b"/creat%65", b"/create/", b"/create#x"]
NON_CANONICAL_ADMIN = [b"//chaos", b"/%63haos", b"/./chaos", b"/x/../chaos", b"/chaos.", b"//breaker/open",
                       b"/breaker//open", b"/%62reaker/open", b"/breaker/./open", b"/breaker/open.",
                       b"/%2e%2e/chaos", b"/chaos%00", b"/\\chaos"]


def metric(svc, name) -> float:
    """The value of one unlabelled-but-service series in /metrics."""
    text = http("GET", svc.url("/metrics")).text()
    m = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else -1.0


def slow_bodies(port, n, src=None):
    """n connections, each having sent a POST /create head announcing 1000 bytes and one of
    them; the list of sockets (some may already have been refused)."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        try:
            s.send(b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 1000\r\n\r\n{")
        except OSError:
            pass
        socks.append(s)
    return socks


def timed_raw_get(port, path: bytes, timeout=5.0):
    """(status or None, seconds, the answer's body's first 160 bytes) for GET path on a
    fresh raw connection."""
    statuses, out, closed, first = edge_exchange(port, head(b"GET", path, [b"Host: x", b"Connection: close"]),
                                                 timeout=timeout)
    body = out.split(b"\r\n\r\n", 1)[-1][:160]
    return (statuses[0] if statuses else None), (first if first is not None else timeout), body
