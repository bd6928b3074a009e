"""harness.py -- starts FerretDB and the services as real processes for tests, and always stops them.

Standard library only. Other suites import it (observability, browser), so
what is documented here is kept stable:

    from harness import Stack, http

    with Stack(flavour="asan") as st:           # "rel" (build/bin), "asan" or "tsan" (build/<flavour>/bin)
        db = st.database()                      # FerretDB on a free port, data in a temp dir
        ship = st.service("shipment", env={"INJECT_ERR": "0"})
        pay = st.service("payment", chain=ship)
        order = st.service("order", chain=pay)  # CHAIN_SVC wired to pay's /create
        r = http("POST", order.url("/create"), {"id": "1", ...})
        assert r.status == 200 and r.json()["status"] == "ok"
        docs = db.find("orders")                # documents as dicts (dbtool, JSON lines)
        pay.kill(); pay.restart()               # one process at a time
        db.stop(); db.start()                   # same port, same data
    # leaving the block stops every process (SIGTERM, then SIGKILL), removes temp dirs

Readiness is always checked (the port answers, the database pings), never
slept for. Every wait is bounded in time. Each process's output goes to a log
file (Proc.log_path) that Proc.log() reads; Proc.wait_log() waits for a line.

Services get a unique MONGO_DB per Stack, so tests can share one FerretDB.
For the asan flavour, ASan/UBSan/LSan are on; Proc.sanitizer_report() returns
any report found in the log, and Stack.close() collects the reports and
non-zero exit codes of every service in Stack.problems.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("BUILD", ROOT / "build"))
DBTOOL = BUILD / "bin" / "dbtool"


def read_services(path: Path = ROOT / "services.tsv") -> list:
    """The suite's services from services.tsv, in chain order: a dict each with
    name, port (its default, an int), collection and next (None for the last)."""
    rows = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        name, port, collection, nxt = fields
        rows.append({"name": name, "port": int(port), "collection": collection,
                     "next": None if nxt == "-" else nxt})
    return rows


# order, payment, shipment: the services of services.tsv, in chain order
SERVICES = read_services()
SERVICE_NAMES = tuple(s["name"] for s in SERVICES)

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "exitcode=23",
}
TSAN_ENV = {
    "TSAN_OPTIONS": f"suppressions={ROOT / 'tests' / 'integration' / 'tsan.supp'}:exitcode=66",
    # ThreadSanitizer starts a thread in milliseconds, not microseconds: the
    # default 128 workers would take a while per service. Tests of the limits
    # set THREADS themselves.
    "THREADS": "64",
}


def flavour_env(flavour: str) -> dict:
    """The environment a build of that flavour runs with: the sanitizers'
    options for asan and tsan, and TSAN_ENV's besides for tsan; {} for rel."""
    env = dict(SANITIZER_ENV) if flavour != "rel" else {}
    if flavour == "tsan":
        env.update(TSAN_ENV)
    return env


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")


class Checks:
    """Named checks of a script that is not a list of test functions: each
    prints PASS or FAIL, and summary() is the line scripts/summarize.py reads."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, name, ok, detail=""):
        """Records one check; returns ok."""
        if ok:
            self.passed += 1
            print(f"PASS: {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL: {name}" + (f" -- {detail}" if detail else ""), flush=True)
        return ok

    def skip(self, name, reason):
        """Records one skipped check with a loud reason."""
        self.skipped += 1
        print(f"SKIP: {name}: {reason}", flush=True)

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


class Skip(Exception):
    """Raised when something a test needs is missing; the runner counts a skip."""


_PORTS_GIVEN = set()     # the ports of TEST_PORTS free_port() handed out, until the range is used up


def free_port() -> int:
    """Returns a TCP port that was free on 127.0.0.1 a moment ago: one the kernel
    picks, or, with TEST_PORTS=<first>-<last> (a machine where several runs
    share the ports, each given a range), the first free port of that range
    this process has not handed out yet (once every port was, they are handed
    out again). Raises OSError when no port of the range is free."""
    spec = os.environ.get("TEST_PORTS", "")
    if not spec:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    m = re.fullmatch(r"(\d+)-(\d+)", spec)
    if not m or not 0 < int(m.group(1)) <= int(m.group(2)) < 65536:
        raise ValueError(f"TEST_PORTS: expected <first>-<last>, got {spec!r}")
    ports = range(int(m.group(1)), int(m.group(2)) + 1)
    for _ in range(2):
        for port in ports:
            if port in _PORTS_GIVEN:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _PORTS_GIVEN.add(port)
            return port
        _PORTS_GIVEN.difference_update(ports)
    raise OSError(f"no free port in TEST_PORTS={spec}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(check, timeout: float, what: str, interval: float = 0.05):
    """Calls check() until it returns a true value (returned) or timeout seconds
    pass (raises TimeoutError naming what)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Response:
    """An HTTP answer: status, headers (dict, lower-case names), body (bytes)."""

    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def json(self):
        """The body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.body.decode("utf-8"))

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return f"Response({self.status}, {self.body[:300]!r})"


def http(method, url, body=None, headers=None, timeout=10.0, raw=False) -> Response:
    """Sends one request. body: a dict/list (sent as JSON with Content-Type
    application/json), bytes/str (sent as is), or None. Returns a Response for
    every HTTP status; raises OSError when no answer came."""
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, (dict, list)) and not raw:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        else:
            data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read(),
                            time.monotonic() - start)
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read(),
                        time.monotonic() - start)


def binary(name: str, flavour: str = "rel") -> Path:
    """The path of a service binary of a flavour (rel, asan, tsan)."""
    return BUILD / "bin" / name if flavour == "rel" else BUILD / flavour / "bin" / name


def ferretdb_path() -> Path:
    """The FerretDB binary (scripts/ferretdb.sh path); raises Skip when it is not built."""
    r = subprocess.run([str(ROOT / "scripts" / "ferretdb.sh"), "path"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise Skip("FerretDB is not built (run scripts/ferretdb.sh build)")
    return Path(r.stdout.strip())


class Proc:
    """One child process with its output in a log file."""

    def __init__(self, name, argv, env, log_dir: Path):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen = None
        self.returncodes = []   # exit codes of every run, in order

    def start(self):
        """Starts the process (appending to its log). Does not wait for readiness."""
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Sends sig and waits up to timeout s for the exit, then SIGKILLs.
        Returns the exit code (negative: killed by that signal)."""
        if not self.popen:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        rc = self.popen.returncode
        self.returncodes.append(rc)
        self.popen = None
        return rc

    def kill(self):
        """SIGKILL: the process dies with no chance to clean up."""
        return self.stop(signal.SIGKILL, timeout=10)

    def wait_exit(self, timeout=20.0):
        """Waits for the process to exit by itself; returns its exit code."""
        rc = self.popen.wait(timeout=timeout)
        self.returncodes.append(rc)
        self.popen = None
        return rc

    def log(self) -> str:
        """Everything the process wrote so far (every run)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, timeout=10.0, after=0):
        """Waits until a log line (from character offset after) matches the
        regular expression pattern; returns the match."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.log(), after), timeout,
                          f"{self.name} log line /{pattern}/")

    def sanitizer_report(self) -> str:
        """The first sanitizer report in the log, or ""."""
        text = self.log()
        for mark in SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                return text[max(0, i - 200): i + 3000]
        return ""


class FerretDB(Proc):
    """FerretDB on a free port; url is its mongodb:// URL.

    Its backend is FERRETDB_BACKEND from the environment: "sqlite" (the
    default here: data in data_dir) or "postgresql" (what `make run` uses: a
    private cluster from scripts/postgres.sh in its own folder, kept across
    stop()/start() so a test can take the database away and bring it back).
    close() stops the cluster and removes it."""

    def __init__(self, log_dir: Path, data_dir: Path, port=None):
        self.port = port or free_port()
        self.data_dir = data_dir
        self.backend = os.environ.get("FERRETDB_BACKEND", "sqlite")
        self.pg_dir = None
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [ferretdb_path(), f"--listen-addr=127.0.0.1:{self.port}"]
        if self.backend == "postgresql":
            # Its own folder under /tmp: PostgreSQL runs as its own user and
            # must reach it, and a Unix socket path is short.
            self.pg_dir = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
            self.pg_dir.chmod(0o755)
            r = subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "start", str(self.pg_dir)],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                shutil.rmtree(self.pg_dir, ignore_errors=True)
                raise RuntimeError(f"scripts/postgres.sh start failed: {r.stderr}")
            argv.append(f"--postgresql-url={r.stdout.strip()}")
        elif self.backend == "sqlite":
            argv.append(f"--sqlite-url=file:{data_dir}/")
        else:
            raise RuntimeError(f"FERRETDB_BACKEND: expected sqlite or postgresql, got {self.backend!r}")
        super().__init__("ferretdb", argv, dict(os.environ), log_dir)
        self.url = f"mongodb://127.0.0.1:{self.port}/"

    def close(self):
        """Stops FerretDB and, with the postgresql backend, the cluster (and removes it)."""
        self.stop()
        if self.pg_dir:
            subprocess.run([str(ROOT / "scripts" / "postgres.sh"), "stop", str(self.pg_dir)],
                           capture_output=True, timeout=60)
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.pg_dir = None

    def ping(self) -> bool:
        """True when the server answers a ping."""
        r = subprocess.run([str(DBTOOL), "ping", self.url], capture_output=True, timeout=20)
        return r.returncode == 0

    def start(self, timeout=30.0):
        """Starts the server and waits until it answers a ping."""
        super().start()
        wait_until(lambda: self.popen.poll() is not None or (port_open(self.port) and self.ping()),
                   timeout, "FerretDB to answer a ping")
        if self.popen.poll() is not None:
            raise RuntimeError(f"FerretDB exited with {self.popen.returncode}:\n{self.log()[-2000:]}")
        return self

    def restart(self, timeout=30.0):
        """Stops (SIGTERM) and starts again on the same port and data."""
        self.stop()
        wait_until(lambda: not port_open(self.port), 10, "FerretDB's port to close")
        return self.start(timeout)

    def find(self, collection, filt=None, db=None):
        """The documents of db.collection matching filt (a dict), as dicts."""
        r = subprocess.run([str(DBTOOL), "find", self.url, db or self.default_db, collection,
                            json.dumps(filt or {})], capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"dbtool find failed: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def count(self, collection, filt=None, db=None) -> int:
        return len(self.find(collection, filt, db))

    default_db = "resilience"


class Service(Proc):
    """One of order, payment, shipment (SERVICE_NAMES) on its own port."""

    def __init__(self, name, flavour, env, log_dir: Path, port=None, label=None):
        if name not in SERVICE_NAMES:
            raise ValueError(f"{name!r} is none of the services of services.tsv {SERVICE_NAMES}")
        self.port = port or free_port()
        self.flavour = flavour
        path = binary(name, flavour)
        if not path.exists():
            raise Skip(f"{path} is not built (make services-{flavour})")
        full_env = dict(os.environ)
        full_env.update(flavour_env(flavour))
        full_env.update({"ID": name, "PORT": str(self.port)})
        full_env.update(env)
        # label: the process's name (and log file's) when a stack runs several replicas
        super().__init__(label or name, [path], full_env, log_dir)

    def url(self, path="/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        """True when GET / answers 200."""
        try:
            return http("GET", self.url("/"), timeout=2).status == 200
        except OSError:
            return False

    def start(self, timeout=20.0):
        """Starts the service and waits until GET / answers (or it exits)."""
        super().start()
        wait_until(lambda: self.popen.poll() is not None or self.ready(), timeout,
                   f"{self.name} to answer GET /")
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
        return self

    def restart(self, timeout=20.0):
        """Stops (if running) and starts again on the same port."""
        if self.alive():
            self.stop()
        return self.start(timeout)


class Stack:
    """A set of processes for one test; a context manager that always cleans up.

    database() starts (or reuses, with shared_db) a FerretDB; service() starts a
    service wired to it. close() stops services (SIGTERM, checks exit code 0 and
    sanitizer reports into self.problems), then FerretDB, and removes temp dirs."""

    def __init__(self, flavour="rel", shared_db: FerretDB = None, keep_logs=None):
        self.flavour = flavour
        self.tmp = Path(tempfile.mkdtemp(prefix="svc-test-"))
        self.db_name = "t" + uuid.uuid4().hex[:12]
        self.shared_db = shared_db
        self.db = shared_db
        self.procs = []
        self.problems = []
        self.keep_logs = keep_logs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def database(self) -> FerretDB:
        """The stack's FerretDB, started on first call (or the shared one)."""
        if self.db is None:
            self.db = FerretDB(self.tmp, self.tmp / "data")
            self.procs.append(self.db)
            self.db.start()
        return self.db

    def service(self, name, env=None, chain: "Service" = None, start=True, port=None,
                label=None) -> Service:
        """Starts service name (order, payment, shipment) with env on top of
        MONGO_URL/MONGO_DB of the stack's database and, when chain is given,
        CHAIN_SVC=<chain>/create."""
        db = self.database()
        # every breaker event and request line, so that tests can wait for them
        full = {"MONGO_URL": db.url, "MONGO_DB": self.db_name, "LOG_LEVEL": "events"}
        if chain is not None:
            full["CHAIN_SVC"] = chain.url("/create")
        full.update(env or {})
        svc = Service(name, self.flavour, full, self.tmp, port, label)
        self.procs.append(svc)
        return svc.start() if start else svc

    def find(self, collection, filt=None):
        """Documents of this stack's database."""
        return self.database().find(collection, filt, db=self.db_name)

    def close(self):
        """Stops every process (services first) and records problems."""
        for p in reversed(self.procs):
            if isinstance(p, Service):
                was_running = p.alive()
                rc = p.stop()
                if was_running and rc != 0:
                    self.problems.append(f"{p.name} exited with {rc} on SIGTERM")
                report = p.sanitizer_report()
                if report:
                    self.problems.append(f"{p.name} sanitizer report:\n{report}")
        for p in self.procs:
            if isinstance(p, FerretDB):
                p.close()
            elif not isinstance(p, Service):
                p.stop()
        if self.keep_logs:
            dest = Path(self.keep_logs)
            dest.mkdir(parents=True, exist_ok=True)
            for f in self.tmp.glob("*.log"):
                shutil.copy(f, dest / f.name)
        shutil.rmtree(self.tmp, ignore_errors=True)
