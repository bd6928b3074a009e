#!/usr/bin/env python3
"""bench_services.py -- the services under keep-alive load, as a user runs them (`make bench-services`).

Starts the suite exactly as `make run` does (scripts/run.sh: FerretDB over a
private PostgreSQL, order -> payment -> shipment, logging on) on free ports
with its data in a temporary folder, plus a minimal civetweb hello server as
the yardstick, then drives each case with wrk side by side in one run and
prints one line per figure:

    bench-services <case> <value> <unit>

followed by one line per goal, `bench-services goal <name> <value> <op> <goal> met|MISSED`.
Every chain answer must be 2xx and not degraded, and the documents of every
answered request must be in the database; a failed check ends the run with
exit 1. Standard library only; wrk is Debian's package.

For the chain at 1 and 16 connections it also prints what a request costs
the database and the services (see DbMeter): PostgreSQL's transactions
committed and rows written per request, from its own counters, and the CPU
time per request of the database (FerretDB and every PostgreSQL process)
and of the three services.

Then what tracing costs the chain at 16 connections (case_tracing): four
chains of its own on the same database, alike but for their OTEL_*
settings -- tracing off; every request sampled, its spans sent to a real
Jaeger (JAEGER_BIN, else scripts/jaeger.sh path; without it the two Jaeger
variants are skipped, said loudly); sampled at 0.1 to the same Jaeger; and
every request sampled, its spans sent to otlp_sink, a collector that throws
them away (what the services alone pay) -- in 6 rounds of loads a third of
--seconds long (2 s by default), each starting 1.5 s or more after the one
before ended, each load of a variant between two of off, so that the machine's drift
meets them all alike. It prints each one's req/s, p50 and p99, its cost in
% against off (the median over the rounds of its loss against the mean of
the two loads of off around it), the spans
started, exported and dropped (from the services' /metrics; drops mean the
collector did not keep up), and the CPU per request of the services, the
collector and the database; the goal: under 5% at sampling 1.

Last, the chain's capacity on this machine (case_capacity): the highest
rate of POST /create on order that an open-loop load (the chaos runner,
build/bin/chaos, each request sent at its due time whether or not the
earlier ones answered) sustains for CAPACITY_STEP_S seconds with every
answer 200 and whole and the p99 at most --capacity-p99 ms (default 250).
The rate doubles from 25 requests a second until a step fails, then halves
the gap between the highest that held and the lowest that did not while
the gap is over 10% (and the search under CAPACITY_BUDGET_S, ~1.5 min); between
steps every breaker is closed and nothing is in flight. It prints

    capacity <N> req/s (p99 <= <bound> ms)

and writes build/results/capacity.json (capacity, the bound, every step's
rate, p99, answers and verdict), so that a lesson's rates can be set as
multiples of it (chaos --capacity N, a load's "rate": "0.5x").

    tests/bench/bench_services.py [--seconds S] [--keep] [--only chain|tracing|capacity]
                                  [--build DIR] [--capacity-p99 MS]

--only chain runs the chain's case alone (and the RSS figures), ~1 min in all;
--only tracing the tracing case alone (~3 min);
--only capacity the capacity alone (under 2 min);
--build DIR runs the services of another build (DIR/bin/order, ...) under
this tree's scripts/run.sh, which is how `make bench-compare` measures an
older commit with the same yardstick. TEST_PORTS=LOW-HIGH keeps every port
it picks within that range (as the tests' harness does).
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("BUILD", "build")
# the tests' harness (free ports within TEST_PORTS=LOW-HIGH) and the tracing
# tests' Jaeger (its configuration, where its binary is)
sys.path[:0] = [str(ROOT / "tests" / "py"), str(ROOT / "tests" / "integration")]
import harness  # noqa: E402
import jaeger as jaeger_py  # noqa: E402 -- tests/py/jaeger.py
import test_tracing  # noqa: E402
TOKEN = "bench-services-token"
CHAIN_BODY = ('{"id":"1","items":[],"payment":{"amount":0,"id":"1",'
              '"shipment":{"id":"1","directions":"home"}}}')
SHIPMENT_BODY = '{"id":"1","directions":"home"}'
# the capacity search: each step's length, the rates tried, and its time budget
CAPACITY_STEP_S = 5
CAPACITY_FIRST = 25
CAPACITY_MAX = 1000     # the runner's highest rate
CAPACITY_BUDGET_S = 90
# The tracing case (case_tracing): its variants of the chain, each a chain of
# its own differing only in its spans (name, the sampler's ratio, where the
# spans go: none, a real Jaeger, a sink that throws them away), measured in
# TRACING_ROUNDS rounds at TRACING_CONNS connections, each round every
# variant once, each load (a third of the load's seconds) followed by one of
# off, the order of the others rotated by one each round.
TRACING_VARIANTS = (("off", None, None), ("on", 1.0, "jaeger"), ("ratio01", 0.1, "jaeger"),
                    ("sink", 1.0, "sink"))
TRACING_ROUNDS = 6
# Every load starts at least this long after the one before ended (spans sent
# included): a load that followed the one before at once met the database still
# busy with it, and only loads of off did (a traced load waits for its spans).
TRACING_GAP_S = 1.5
TRACING_CONNS = 16
TRACING_METRICS = ("otel_spans_started_total", "otel_spans_exported_total", "otel_spans_dropped_total",
                   "otel_exports_failed_total", "otel_spans_queued", "circuit_breaker_fallbacks_total",
                   "circuit_breaker_rejects_total")


def free_port() -> int:
    """A free port: one the kernel picks, or one of TEST_PORTS=LOW-HIGH (harness.free_port)."""
    return harness.free_port()


def say(line: str):
    print(line, flush=True)


def fail(msg: str):
    say(f"bench-services: FAILED: {msg}")
    raise SystemExit(1)


def http(method: str, url: str, body: bytes = None, headers=None, timeout=10.0):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def wait_until(check, timeout: float, what):
    """Polls check() until true or timeout; what (a string, or a callable
    giving one, read when it failed) names what was awaited."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    fail(f"timed out after {timeout:.0f}s waiting for {what() if callable(what) else what}")


# Appended to a POST script (one connection only): times each request itself
# and reads its answer's Server-Timing header (the database writes of every
# hop of that request, each timed by the hop around its driver call); at the
# end it prints the two means over the same requests, so their difference is
# the mean of each request's time beyond its own writes.
#
# wrk's own latency figures cannot be used for this: before it reports them
# (and before done() sees them) wrk "corrects" for coordinated omission,
# adding made-up samples for every request slower than twice the mean
# interval. In one run at one connection, a single 98 ms answer made wrk's
# mean 8.74 ms where the requests' own mean was 8.16 ms, and the made-up
# samples have no db-chain to set against them. The clock is
# CLOCK_MONOTONIC through LuaJIT's FFI (wrk's Lua is LuaJIT): request() is
# called just before the request is written, response() when its answer is
# whole.
TIMED_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  db_sum, lat_sum, db_n, db_missing, overlapped = 0, 0, 0, 0, 0
  sent_at, the_request = nil, wrk.format()
end
function request()
  -- wrk asks once more before the first request is written; after that a
  -- request asked for while one is unanswered would overlap it
  if sent_at and db_n + db_missing > 0 then overlapped = overlapped + 1 end
  sent_at = now_ms()
  return the_request
end
function response(status, headers, body)
  local took = sent_at and now_ms() - sent_at
  sent_at = nil
  local v = headers["Server-Timing"]
  local d = v and v:match("db%-chain;dur=([%d.]+)")
  if d and took then
    db_sum = db_sum + tonumber(d); lat_sum = lat_sum + took; db_n = db_n + 1
  else
    db_missing = db_missing + 1
  end
end
function done(summary, latency, requests)
  local s, l, n, m, o = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s = s + t:get("db_sum"); l = l + t:get("lat_sum"); n = n + t:get("db_n")
    m = m + t:get("db_missing"); o = o + t:get("overlapped")
  end
  io.write(string.format("server-timing: db_chain_mean_ms=%.4f timed=%d untimed=%d latency_mean_ms=%.4f "
                         .. "overlapped=%d\\n", n > 0 and s / n or 0, n, m, n > 0 and l / n or 0, o))
end
"""


def require_whole(r: dict, what: str):
    """Fails unless a wrk run got answers, every one 2xx, without socket errors."""
    if r["requests"] == 0 or r["non2xx"] or r["errors"]:
        fail(f"{what}: {r['requests']} requests, {r['non2xx']} not 2xx, "
             f"{r['errors']} socket errors\n{r['text']}")


def require_timed(r: dict, what: str):
    """Fails unless every answer of a timed wrk run said its db-chain (Server-Timing),
    each timed alone (one request at a time)."""
    if "timed" in r and r["overlapped"]:
        fail(f"{what}: {r['overlapped']} requests overlapped another; a timed run needs one connection")
    if "timed" not in r or r["untimed"] or r["timed"] != r["requests"]:
        fail(f"{what}: {r.get('untimed', r['requests'])} of {r['requests']} answers "
             f"without Server-Timing db-chain\n{r['text']}")


def lua_post(path: Path, body: str, timed: bool = False) -> Path:
    """A wrk script that POSTs body as JSON; timed: also sums Server-Timing's db-chain."""
    path.write_text('wrk.method = "POST"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = '{body}'\n" + (TIMED_LUA if timed else ""))
    return path


def parse_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return {"us": v / 1000.0, "ms": v, "s": v * 1000.0}[m.group(2)]


def wrk(url: str, conns: int, seconds: float, script: Path = None) -> dict:
    """Runs wrk with --latency; returns requests, rps, p50/p99 (ms), non2xx, errors."""
    threads = min(2, conns)
    # wrk reads whole seconds only ("1.5s" is an error it reports as 0 requests)
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    if script:
        argv += ["-s", str(script)]
    out = subprocess.run(argv + [url], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    r = {"requests": 0, "rps": 0.0, "p50": float("nan"), "p99": float("nan"),
         "non2xx": 0, "errors": 0, "text": out}
    if m := re.search(r"(\d+) requests in", out):
        r["requests"] = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        r["rps"] = float(m.group(1))
    if m := re.search(r"^\s+50%\s+(\S+)", out, re.M):
        r["p50"] = parse_ms(m.group(1))
    if m := re.search(r"^\s+99%\s+(\S+)", out, re.M):
        r["p99"] = parse_ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        r["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        r["errors"] = sum(int(x) for x in m.groups())
    if m := re.search(r"server-timing: db_chain_mean_ms=([\d.]+) timed=(\d+) untimed=(\d+) "
                      r"latency_mean_ms=([\d.]+) overlapped=(\d+)", out):
        r["db_chain_mean"], r["timed"], r["untimed"] = float(m.group(1)), int(m.group(2)), int(m.group(3))
        r["latency_mean"], r["overlapped"] = float(m.group(4)), int(m.group(5))
    return r


def pid_of(binary: str, port: int) -> int:
    """The pid of the process running binary with PORT=port in its environment."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv0 = (d / "cmdline").read_bytes().split(b"\0")[0].decode()
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv0.endswith("/" + binary) and f"PORT={port}".encode() in env:
            return int(d.name)
    return 0


def cpu_ticks(pid: int) -> int:
    """The CPU time (user + system, in clock ticks) of process pid, every
    thread included, plus that of its children that have exited and been
    waited for (cutime, cstime). 0 when the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is the state, the stat file's 3rd field: utime is its 14th
    return sum(int(f) for f in fields[11:15])


def children_of(pid: int) -> list:
    """The pids of the live children of pid."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


class DbMeter:
    """What the chain's requests cost the database and the services.

    Database counters come from PostgreSQL itself (pg_stat_database, for the
    database FerretDB uses): xact_commit counts every transaction committed
    (reads among them: FerretDB's lookups, and the services' own reads, are
    transactions too), tup_inserted + tup_updated every row written. A
    backend adds its counts to that view only when it goes idle, at most once
    a second; counts held back by that limit are added 10 s later
    (PostgreSQL 15's PGSTAT_MIN_INTERVAL and PGSTAT_IDLE_INTERVAL), and
    pg_stat_force_next_flush() acts on the calling backend only. So a window
    of counts opens and closes on a quiet database, SETTLE_S after the last
    request (settle): after a 3 s load at 16 connections, a third of its
    counts came in 9-10 s after it ended. A window holds the requests of its
    loads and what the stack does by itself meanwhile: its database watch and
    run.sh's watchdog, ~4 read-only commits a second here (~0.04 a request
    in the 17 s window of the load at 16 connections), no rows. Requests
    still in flight when wrk stopped (one per connection) are written and not
    counted as answered.

    CPU is read from /proc around each load, in clock ticks: FerretDB, and
    PostgreSQL's postmaster with its children (backends, checkpointer, WAL
    writer, autovacuum), live ones read one by one and those that exited
    through the postmaster's cutime/cstime, so a backend forked and gone
    within the load is counted too; and the three services."""
    SETTLE_S = 11.0

    def __init__(self, data_dir: Path, service_pids: dict):
        self.pg_dir = data_dir / "postgres"
        self.run_dir = data_dir / "run"
        self.service_pids = service_pids
        psql = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
        if not psql:
            fail("psql is missing (Debian's postgresql-15, installed by scripts/setup.sh)")
        # as scripts/postgres.sh's as_owner: as root, the cluster is user postgres's
        self.psql = (["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []) + [str(psql[-1])]
        self.quiet_since = time.monotonic()

    def pids(self):
        """The postmaster's pid (its data folder's postmaster.pid) and FerretDB's (run.sh's pid file)."""
        try:
            postmaster = int((self.pg_dir / "data" / "postmaster.pid").read_text().split()[0])
            ferretdb = int((self.run_dir / "ferretdb.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError) as e:
            fail(f"cannot find the database's processes in {self.pg_dir} and {self.run_dir}: {e}")
        return postmaster, ferretdb

    def cpu(self) -> dict:
        """Clock ticks so far: "db" (FerretDB and the whole cluster), "services" (the three)."""
        postmaster, ferretdb = self.pids()
        db = sum(cpu_ticks(p) for p in children_of(postmaster)) + cpu_ticks(postmaster) + cpu_ticks(ferretdb)
        return {"db": db, "services": sum(cpu_ticks(p) for p in self.service_pids.values())}

    def counters(self) -> dict:
        """PostgreSQL's counts for database ferretdb; read from database
        postgres, so that reading them adds nothing to them."""
        sql = ("select xact_commit, tup_inserted + tup_updated from pg_stat_database "
               "where datname = 'ferretdb'")
        r = subprocess.run(self.psql + ["-X", "-Atq", "-h", str(self.pg_dir), "-U", "postgres",
                                        "-d", "postgres", "-c", sql],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or not re.fullmatch(r"\d+\|\d+\n", r.stdout):
            fail(f"psql on {self.pg_dir}: {r.stdout.strip()} {r.stderr.strip()}")
        commits, rows = map(int, r.stdout.split("|"))
        return {"commits": commits, "rows": rows}

    def settle(self) -> dict:
        """The counters once every backend has added its counts: SETTLE_S
        after the stack was last used (quiet_since, set by each load)."""
        time.sleep(max(0.0, self.quiet_since + self.SETTLE_S - time.monotonic()))
        return self.counters()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class Bench:
    def __init__(self, seconds: float, keep: bool, build: Path = None):
        self.seconds = seconds
        self.keep = keep
        self.build = build      # the services' build, when not this tree's
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-services-", dir="/tmp"))
        self.tmp.chmod(0o755)   # PostgreSQL runs as its own user and must reach its folder
        self.ports = {n: free_port() for n in ("order", "payment", "shipment", "ferretdb", "hello")}
        self.procs = []
        self.figures = {}
        self.chain_lua = lua_post(self.tmp / "chain.lua", CHAIN_BODY)
        self.chain_timed_lua = lua_post(self.tmp / "chain-timed.lua", CHAIN_BODY, timed=True)
        self.ship_lua = lua_post(self.tmp / "shipment.lua", SHIPMENT_BODY)
        self.ship_timed_lua = lua_post(self.tmp / "shipment-timed.lua", SHIPMENT_BODY, timed=True)

    def url(self, name: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def figure(self, case: str, value: float, unit: str):
        self.figures[case] = value
        say(f"bench-services {case} {value:.2f} {unit}" if isinstance(value, float)
            else f"bench-services {case} {value} {unit}")

    def start(self, hello: bool = True):
        """Starts make run's stack and, with hello, the bare civetweb server."""
        env = dict(os.environ, ORDER_PORT=str(self.ports["order"]),
                   PAYMENT_PORT=str(self.ports["payment"]),
                   SHIPMENT_PORT=str(self.ports["shipment"]),
                   FERRETDB_PORT=str(self.ports["ferretdb"]), DATA_DIR=str(self.tmp / "data"),
                   INJECT_ERR="0", ADMIN_TOKEN=TOKEN, LOG_LEVEL="requests")
        env.pop("MONGO_URL", None)
        if self.build:
            env["BUILD"] = str(self.build)      # scripts/run.sh starts $BUILD/bin/<service>
        log = open(self.tmp / "run.log", "wb")
        self.run = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(self.run)
        wait_until(lambda: self.run.poll() is not None or http("GET", self.url("order"))[0] == 200,
                   120, "make run's stack (scripts/run.sh) to answer")
        if self.run.poll() is not None:
            fail(f"scripts/run.sh exited:\n{(self.tmp / 'run.log').read_text()[-3000:]}")
        self.pids = {n: pid_of(n, self.ports[n]) for n in ("order", "payment", "shipment")}
        if not all(self.pids.values()):
            fail(f"cannot find the services' processes: {self.pids}")
        self.meter = DbMeter(self.tmp / "data", self.pids)
        self.mongo = f"mongodb://127.0.0.1:{self.ports['ferretdb']}"
        if not hello:
            return
        hello = BUILD / "rel" / "bench" / "civetweb_hello"
        # In a session of its own, as the stack is (and as a user runs a
        # server in one terminal and wrk in another): with the kernel's
        # autogroup scheduling, a server sharing wrk's session shares its
        # CPU group, which made a bare civetweb look ~20% faster next to a
        # service in its own session, whatever the service did.
        self.hello = subprocess.Popen([str(hello), str(self.ports["hello"])],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        self.procs.append(self.hello)
        wait_until(lambda: http("GET", self.url("hello"))[0] == 200, 20, "the civetweb hello server")

    def count(self, collection: str, filt=None) -> int:
        r = subprocess.run([str(BUILD / "bin" / "dbtool"), "count", self.mongo, "resilience",
                            collection, json.dumps(filt or {})],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail(f"dbtool count {collection}: {r.stderr.strip()}")
        return int(r.stdout.strip())

    def breaker(self, action: str, service="order", target="payment"):
        """POST /breaker/<action> on service's breaker towards target."""
        name = f"{service}->127.0.0.1:{self.ports[target]}"
        status, body = http("POST", self.url(service, f"/breaker/{action}?name={name}"), b"",
                            {"Authorization": f"Bearer {TOKEN}"})
        if status != 200:
            fail(f"POST /breaker/{action} on {name} answered {status}: {body[:200]!r}")

    def case_hello(self):
        """Interleaved rounds, so both meet the same machine, each round's
        pair in turn order first and bare first. This machine's speed moves
        from second to second (single rounds' ratios ranged 0.65-1.19), so the
        goal takes the median of the rounds' ratios, each pair measured
        back to back, rather than the ratio of two medians taken apart."""
        rounds = {"hello_rps": [], "civetweb_hello_rps": []}
        ratios = []
        wrk(self.url("order"), 32, 1)            # warm-up: threads, connections
        wrk(self.url("hello"), 32, 1)
        for i in range(7):
            pair = ("order", "hello") if i % 2 == 0 else ("hello", "order")
            rps = {name: wrk(self.url(name), 32, self.seconds / 2)["rps"] for name in pair}
            rounds["hello_rps"].append(rps["order"])
            rounds["civetweb_hello_rps"].append(rps["hello"])
            ratios.append(rps["order"] / rps["hello"] if rps["hello"] else 0.0)
        for k, v in rounds.items():
            self.figure(k, statistics.median(v), "req/s")
        self.figure("hello_vs_civetweb_rounds", statistics.median(ratios), "ratio")

    def case_chain(self):
        url = self.url("order", "/create?count=0")
        wrk(url, 16, 3, self.chain_lua)          # warm-up: connections, tables, pools
        # whatever the warm-up's first calls (collections created, pools
        # filled) did to the circuits: both hops start closed
        self.breaker("close")
        self.breaker("close", "payment", "shipment")
        before = {c: self.count(c) for c in ("orders", "payments", "shipments")}
        degraded_before = {c: self.count(c, {"_meta.outcome": "degraded"}) for c in ("orders", "payments")}
        total = in_flight = 0
        meter = self.meter
        cpu = {"db": 0, "services": 0}

        def load(conns, seconds, script):
            nonlocal total, in_flight
            c0 = meter.cpu()
            r = wrk(url, conns, seconds, script)
            c1 = meter.cpu()
            meter.quiet_since = time.monotonic()
            for k in cpu:
                cpu[k] += c1[k] - c0[k]
            in_flight += conns
            require_whole(r, f"chain at {conns} connection(s)")
            total += r["requests"]
            return r

        def costs(conns, before, requests):
            """Prints the database's and the services' cost per request of
            the loads since before (counters) and since cpu was zeroed."""
            after = meter.settle()
            tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
            self.figure(f"chain_db_commits_per_request_c{conns}",
                        (after["commits"] - before["commits"]) / requests, "commits")
            self.figure(f"chain_db_rows_written_per_request_c{conns}",
                        (after["rows"] - before["rows"]) / requests, "rows")
            self.figure(f"chain_db_cpu_ms_per_request_c{conns}", cpu["db"] * tick_ms / requests, "ms")
            self.figure(f"chain_services_cpu_ms_per_request_c{conns}",
                        cpu["services"] * tick_ms / requests, "ms")
            cpu.update(db=0, services=0)
            return after
        meter.quiet_since = time.monotonic()
        counted = meter.settle()
        # One connection: three rounds and the median of each figure, so
        # that one stall outside the database does not decide the goal (a
        # 100 ms stall adds ~0.27 ms to the mean of a 3 s round's ~370).
        ones = [load(1, self.seconds / 2, self.chain_timed_lua) for _ in range(3)]
        for r in ones:
            require_timed(r, "chain at 1 connection")
        self.figure("chain_rps_c1", statistics.median(r["rps"] for r in ones), "req/s")
        self.figure("chain_p50_ms_c1", statistics.median(r["p50"] for r in ones), "ms")
        self.figure("chain_db_ms_c1", statistics.median(r["db_chain_mean"] for r in ones), "ms")
        self.figure("chain_beyond_db_ms_c1",
                    statistics.median(r["latency_mean"] - r["db_chain_mean"] for r in ones), "ms")
        counted = costs(1, counted, sum(r["requests"] for r in ones))
        r = load(16, self.seconds, self.chain_lua)
        self.figure("chain_rps_c16", r["rps"], "req/s")
        self.figure("chain_p50_ms_c16", r["p50"], "ms")
        self.figure("chain_p99_ms_c16", r["p99"], "ms")
        costs(16, counted, r["requests"])
        stored = {}

        def every_stored():
            stored.update({c: self.count(c) - before[c] for c in ("orders", "payments", "shipments")})
            return all(n >= total for n in stored.values())
        wait_until(every_stored, 30, lambda: f"a document in each collection for each of the {total} "
                   f"answered requests (stored at the last look: {stored})")
        for c in ("orders", "payments", "shipments"):
            stored = self.count(c) - before[c]
            # Requests still in flight when a wrk run stopped (one per
            # connection) may be stored and not counted.
            if not total <= stored <= total + in_flight:
                fail(f"{c}: {stored} documents stored for {total} answered requests")
        for c in ("orders", "payments"):
            degraded = self.count(c, {"_meta.outcome": "degraded"}) - degraded_before[c]
            if degraded:
                fail(f"{degraded} {c} answers were degraded (the chain must answer whole)")
        self.figure("chain_documents_checked", 3 * total, "documents")

    def start_chain(self, name: str, env: dict) -> dict:
        """Starts a chain order -> payment -> shipment of its own on free
        ports and the stack's database, as scripts/run.sh starts the three
        (the same binaries and settings; its output in chain-<name>.log),
        with env besides and no OTEL_* setting of the bench's environment.
        Returns {service: port}; the processes are in self.procs."""
        ports = {n: free_port() for n in ("order", "payment", "shipment")}
        bindir = (self.build or BUILD) / "bin"
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        base.update(MONGO_URL=self.mongo, JUMPS="4", INJECT_ERR="0", ADMIN_TOKEN=TOKEN,
                    LOG_LEVEL="requests")
        with open(self.tmp / f"chain-{name}.log", "ab") as log:
            for svc, nxt in (("shipment", None), ("payment", "shipment"), ("order", "payment")):
                e = dict(base, ID=svc, PORT=str(ports[svc]), LOG_PREFIX=f"[{name} {svc}] ", **env)
                if nxt:
                    e["CHAIN_SVC"] = f"http://127.0.0.1:{ports[nxt]}/create"
                p = subprocess.Popen([str(bindir / svc)], env=e, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
                self.procs.append(p)
                url = f"http://127.0.0.1:{ports[svc]}/"
                wait_until(lambda: p.poll() is not None or http("GET", url)[0] == 200, 30,
                           f"{name}'s {svc} to answer on {url}")
                if p.poll() is not None:
                    fail(f"{name}'s {svc} exited: {(self.tmp / f'chain-{name}.log').read_text()[-2000:]}")
        return ports

    @staticmethod
    def chain_metrics(ports: dict) -> dict:
        """TRACING_METRICS summed over the chain's three services (each over its labels)."""
        sums = dict.fromkeys(TRACING_METRICS, 0.0)
        for port in ports.values():
            status, body = http("GET", f"http://127.0.0.1:{port}/metrics")
            if status != 200:
                fail(f"GET /metrics on port {port} answered {status}")
            for m in re.finditer(r"^([a-z_]+)(?:\{[^}]*\})? (\S+)$", body.decode(), re.M):
                if m.group(1) in sums:
                    sums[m.group(1)] += float(m.group(2))
        return sums

    def case_tracing(self):
        """What recording and sending spans costs the chain at TRACING_CONNS
        connections (POST /create, keep-alive, as case_chain's load): the
        chain with tracing off, with every request sampled and its spans sent
        to a real Jaeger (in memory, on this machine's CPUs as a collector
        next to the services would be), sampled at 0.1 to the same Jaeger,
        and every request sampled to otlp_sink, a collector that reads each
        batch and throws it away (what the services alone pay). Each variant
        is a chain of its own started alike (start_chain), so they run in
        the same rounds, each load of a variant between two of off: the
        machine's drift, and the database's, meet them all. Per variant: the
        median of its loads' req/s, p50 and p99; the cost in % of each
        against off, the median over the rounds of its loss against the mean
        of the two loads of off around it;
        the spans started, exported and dropped (the services' /metrics,
        over every round: drops mean the queue was full, the collector not
        keeping up); CPU per request of the services and of the collector
        from load start until every span was sent, of the database over the
        load. Every
        answer must be 2xx with no breaker fallback (not degraded), and at
        ratio 1 a request must have recorded its 13 spans."""
        try:
            jaeger_bin = jaeger_py.jaeger_binary()
        except harness.Skip as e:
            jaeger_bin = None
            say(f"bench-services SKIP: tracing to Jaeger (on, ratio01) is not measured: {e}; "
                "set JAEGER_BIN=<jaeger> to measure it. Only off and sink are")
        variants = [v for v in TRACING_VARIANTS if v[2] != "jaeger" or jaeger_bin]
        first = len(self.procs)         # what this case starts, stopped when it ends
        jaeger_stack = types.SimpleNamespace(tmp=self.tmp, procs=[])   # as jaeger_py.Jaeger wants
        try:
            collector = {}
            if jaeger_bin:
                os.environ.setdefault("JAEGER_BIN", jaeger_bin)
                try:
                    jaeger = jaeger_py.Jaeger(jaeger_stack)
                except (TimeoutError, OSError) as e:
                    fail(f"Jaeger ({jaeger_bin}) did not start: {e}; its log is in {self.tmp}")
                collector["jaeger"] = (jaeger.endpoint, jaeger.proc.pid)
            sink_port = free_port()
            sink = subprocess.Popen([str(BUILD / "rel" / "bench" / "otlp_sink"), str(sink_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            self.procs.append(sink)
            wait_until(lambda: sink.poll() is not None or
                       http("GET", f"http://127.0.0.1:{sink_port}/stats")[0] == 200, 20, "the OTLP sink")
            if sink.poll() is not None:
                fail(f"otlp_sink exited ({sink.returncode}) on port {sink_port}")
            collector["sink"] = (f"http://127.0.0.1:{sink_port}", sink.pid)
            chains = {}
            for name, ratio, to in variants:
                chains[name] = self.start_chain(name, {} if not to else {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": collector[to][0],
                    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": f"{ratio:g}"})
            self.measure_tracing(variants, chains, collector, sink_port)
        finally:
            # the chains first, each sending what it still holds, then the collectors
            started = self.procs[first:]
            del self.procs[first:]
            for p in reversed(started):
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(timeout=10)
            for p in jaeger_stack.procs:
                p.stop()

    def measure_tracing(self, variants, chains: dict, collector: dict, sink_port: int):
        """case_tracing's rounds and figures (see there)."""
        names = [v[0] for v in variants]
        ratio = {v[0]: v[1] for v in variants}
        to = {v[0]: v[2] for v in variants}
        lua = self.chain_lua
        meter = self.meter
        tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")

        def drained(name):
            """Waits until the chain has sent every span it holds and its
            collector has stopped working on them (its CPU time still for 0.3 s)."""
            if not to[name]:
                return
            wait_until(lambda: self.chain_metrics(chains[name])["otel_spans_queued"] == 0, 60,
                       f"{name}'s spans sent")
            pid, last, still_since = collector[to[name]][1], -1, time.monotonic()
            end = time.monotonic() + 10
            while time.monotonic() < end:
                now = cpu_ticks(pid)
                if now != last:
                    last, still_since = now, time.monotonic()
                elif time.monotonic() - still_since >= 0.3:
                    return
                time.sleep(0.05)
            say(f"bench-services note: {to[name]} still busy 10 s after {name}'s load; measuring on")

        for name in names:                       # warm-up: connections, pools, the collector
            r = wrk(f"http://127.0.0.1:{chains[name]['order']}/create?count=0", TRACING_CONNS, 2, lua)
            require_whole(r, f"tracing {name}: warm-up")
            drained(name)
        pids = {n: [pid_of(svc, port) for svc, port in chains[n].items()] for n in names}
        if not all(all(p) for p in pids.values()):
            fail(f"cannot find the tracing chains' processes: {pids}")
        runs = {n: [] for n in names}
        totals = {n: dict.fromkeys(TRACING_METRICS + ("requests", "svc_ticks", "coll_ticks", "db_ticks"), 0.0)
                  for n in names}
        sink_before = http("GET", f"http://127.0.0.1:{sink_port}/stats")[1].decode().split()
        last_end = [0.0]

        def load(name, rnd):
            """One load of chain name (a wrk run, then its spans sent), added to totals."""
            time.sleep(max(0.0, last_end[0] + TRACING_GAP_S - time.monotonic()))
            ports, svc_pids = chains[name], pids[name]
            coll_pid = collector[to[name]][1] if to[name] else 0
            m0 = self.chain_metrics(ports)
            c0 = (sum(cpu_ticks(p) for p in svc_pids), cpu_ticks(coll_pid) if coll_pid else 0,
                  meter.cpu()["db"])
            r = wrk(f"http://127.0.0.1:{ports['order']}/create?count=0", TRACING_CONNS,
                    self.seconds / 3, lua)
            # the database's work ends with the load (an answer leaves after its write);
            # read past it, its CPU would count the stack's own pings while spans are sent
            db1 = meter.cpu()["db"]
            require_whole(r, f"tracing {name}, round {rnd}")
            drained(name)
            c1 = (sum(cpu_ticks(p) for p in svc_pids), cpu_ticks(coll_pid) if coll_pid else 0, db1)
            last_end[0] = time.monotonic()
            m1 = self.chain_metrics(ports)
            if m1["circuit_breaker_fallbacks_total"] > m0["circuit_breaker_fallbacks_total"] or \
                    m1["circuit_breaker_rejects_total"] > m0["circuit_breaker_rejects_total"]:
                fail(f"tracing {name}, round {rnd}: "
                     f"{m1['circuit_breaker_fallbacks_total'] - m0['circuit_breaker_fallbacks_total']:.0f} "
                     f"answers degraded, "
                     f"{m1['circuit_breaker_rejects_total'] - m0['circuit_breaker_rejects_total']:.0f} "
                     "calls rejected (the chain must answer whole)")
            t = totals[name]
            for k in TRACING_METRICS:
                t[k] += m1[k] - m0[k]
            t["requests"] += r["requests"]
            for k, a, b in zip(("svc_ticks", "coll_ticks", "db_ticks"), c0, c1):
                t[k] += b - a
            runs[name].append(r)
            say(f"bench-services tracing round {rnd} {name}: {r['rps']:.0f} req/s, "
                f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, spans started "
                f"{m1['otel_spans_started_total'] - m0['otel_spans_started_total']:.0f}, dropped "
                f"{m1['otel_spans_dropped_total'] - m0['otel_spans_dropped_total']:.0f}; CPU ms a request: "
                f"services {(c1[0] - c0[0]) * tick_ms / r['requests']:.3f}"
                + (f", {to[name]} {(c1[1] - c0[1]) * tick_ms / r['requests']:.3f}" if coll_pid else ""))
            return r

        # off, then each other variant followed by off again: every load of a
        # variant lies between two loads of off, and its cost is against their mean
        others = [n for n in names if n != "off"]
        costs = {n: [] for n in others}
        before = load("off", 1)
        for rnd in range(1, TRACING_ROUNDS + 1):
            for name in others[rnd % len(others):] + others[:rnd % len(others)]:
                r = load(name, rnd)
                after = load("off", rnd)
                costs[name].append(100.0 * (1.0 - 2.0 * r["rps"] / (before["rps"] + after["rps"])))
                before = after
        meter.quiet_since = time.monotonic()
        sink_after = http("GET", f"http://127.0.0.1:{sink_port}/stats")[1].decode().split()
        c = TRACING_CONNS
        for name in names:
            rs, t = runs[name], totals[name]
            self.figure(f"tracing_{name}_rps_c{c}", statistics.median(r["rps"] for r in rs), "req/s")
            self.figure(f"tracing_{name}_p50_ms_c{c}", statistics.median(r["p50"] for r in rs), "ms")
            self.figure(f"tracing_{name}_p99_ms_c{c}", statistics.median(r["p99"] for r in rs), "ms")
            if name != "off":
                self.figure(f"tracing_{name}_cost_pct_c{c}", statistics.median(costs[name]), "%")
            n = t["requests"]
            self.figure(f"tracing_{name}_services_cpu_ms_per_request_c{c}", t["svc_ticks"] * tick_ms / n, "ms")
            self.figure(f"tracing_{name}_db_cpu_ms_per_request_c{c}", t["db_ticks"] * tick_ms / n, "ms")
            if not to[name]:
                continue
            self.figure(f"tracing_{name}_collector_cpu_ms_per_request_c{c}", t["coll_ticks"] * tick_ms / n, "ms")
            for k, what in (("started", "otel_spans_started_total"), ("exported", "otel_spans_exported_total"),
                            ("dropped", "otel_spans_dropped_total")):
                self.figure(f"tracing_{name}_spans_{k}", int(t[what]), "spans")
            self.figure(f"tracing_{name}_exports_failed", int(t["otel_exports_failed_total"]), "batches")
            self.figure(f"tracing_{name}_spans_per_request", t["otel_spans_started_total"] / n, "spans")
            if t["otel_spans_dropped_total"]:
                say(f"bench-services tracing {name}: {t['otel_spans_dropped_total']:.0f} of "
                    f"{t['otel_spans_started_total']:.0f} spans DROPPED "
                    f"({100.0 * t['otel_spans_dropped_total'] / t['otel_spans_started_total']:.1f}%): "
                    f"the {to[name]} did not keep up (or a batch failed)")
            if ratio[name] >= 1.0 and t["otel_spans_started_total"] < test_tracing.CHAIN_SPANS * n:
                fail(f"tracing {name}: {t['otel_spans_started_total']:.0f} spans for {n:.0f} requests, "
                     f"fewer than {test_tracing.CHAIN_SPANS} a request: not every request was traced")
        if "sink" in names:
            posts = int(sink_after[1]) - int(sink_before[1])
            body = int(sink_after[3]) - int(sink_before[3])
            spans = totals["sink"]["otel_spans_exported_total"]
            self.figure("tracing_sink_bytes_per_span", body / spans if spans else 0.0, "bytes")
            self.figure("tracing_sink_spans_per_post", spans / posts if posts else 0.0, "spans")

    def case_shipment(self):
        url = self.url("shipment", "/create?count=0")
        for conns in (1, 4, 16):
            r = wrk(url, conns, self.seconds / 2, self.ship_lua)
            if r["non2xx"] or r["errors"]:
                fail(f"shipment at {conns}: {r['non2xx']} not 2xx, {r['errors']} socket errors")
            self.figure(f"shipment_rps_c{conns}", r["rps"], "req/s")

    def case_open_circuit(self):
        """Both requests write once (their document, outcome included) and call nobody. The
        database's latency drifts by more than the 10% compared, so the two
        run at the same time, one connection each, and meet the same
        database: three rounds, each side's median, the median of those.
        Each one's time beyond its own writes (Server-Timing) is printed too."""
        self.breaker("open")
        runs = {"last": [], "open": []}
        jobs = {"last": (self.url("shipment", "/create?count=0"), self.ship_timed_lua),
                "open": (self.url("order", "/create?count=0"), self.chain_timed_lua)}
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for _ in range(3):
                futures = {k: pool.submit(wrk, url, 1, self.seconds / 2, script)
                           for k, (url, script) in jobs.items()}
                for k, f in futures.items():
                    r = f.result()
                    require_whole(r, f"{jobs[k][0]} at 1 connection")
                    require_timed(r, f"{jobs[k][0]} at 1 connection")
                    runs[k].append(r)
        self.breaker("close")
        for k, name in (("last", "last_hop"), ("open", "open_circuit")):
            self.figure(f"{name}_ms", statistics.median(r["p50"] for r in runs[k]), "ms")
            self.figure(f"{name}_beyond_db_ms",
                        statistics.median(r["latency_mean"] - r["db_chain_mean"] for r in runs[k]), "ms")

    def case_database(self):
        tool = BUILD / "rel" / "bench" / "db_bench"
        # a request's write is one insert; the insert + outcome update pair is
        # what a hop wrote before it wrote once, kept for comparison
        for mode, case in (("insert", "db_insert_rps_c16"), ("insert+update", "db_insert_update_pairs_rps_c16")):
            r = subprocess.run([str(tool), self.mongo, "bench", "writes", "16", f"{self.seconds:g}", mode],
                               capture_output=True, text=True, timeout=self.seconds + 60)
            m = re.search(r"rps=([\d.]+)", r.stdout)
            if r.returncode != 0 or not m:
                fail(f"db_bench {mode}: {r.stdout} {r.stderr[-500:]}")
            self.figure(case, float(m.group(1)), "ops/s")
        # One request's write at one hop (one insert, its outcome included),
        # from a lone client writing in a tight loop: the database at its
        # quickest. The chain's three services, whose connections sit idle
        # between their writes, see slower writes than this (Server-Timing's
        # db-chain says how much), so the chain's p50 less three of these is
        # more than its time beyond its own writes; it is printed beside the
        # goal's figure, measured in interleaved rounds because the database's
        # own latency drifts (PostgreSQL's fsyncs).
        writes, beyond = [], []
        for _ in range(3):
            chain = wrk(self.url("order", "/create?count=0"), 1, self.seconds / 3, self.chain_lua)
            require_whole(chain, "chain at 1 connection")
            r = subprocess.run([str(tool), self.mongo, "bench", "writes", "1", f"{self.seconds / 3:g}",
                                "insert"], capture_output=True, text=True, timeout=self.seconds + 60)
            m = re.search(r"p50_ms=([\d.]+)", r.stdout)
            if r.returncode != 0 or not m:
                fail(f"db_bench insert, one client: {r.stdout} {r.stderr[-500:]}")
            writes.append(float(m.group(1)))
            beyond.append(chain["p50"] - 3 * writes[-1])
        self.figure("db_request_writes_p50_ms_c1", statistics.median(writes), "ms")
        self.figure("chain_beyond_lone_client_writes_ms_c1", statistics.median(beyond), "ms")

    def quiet(self):
        """Closes every breaker that is not closed and waits until no breaker has a call in flight."""
        def breakers(svc):
            status, body = http("GET", self.url(svc, "/health"))
            return json.loads(body).get("breakers", []) if status == 200 else None
        for svc in ("order", "payment", "shipment"):
            for b in breakers(svc) or []:
                if b.get("state") != "closed":
                    http("POST", self.url(svc, f"/breaker/close?name={b['name']}"), b"",
                         {"Authorization": f"Bearer {TOKEN}"})
        wait_until(lambda: all((bs := breakers(svc)) is not None and
                               all(b.get("state") == "closed" and not b.get("inFlight") for b in bs)
                               for svc in ("order", "payment", "shipment")),
                   30, "every breaker closed with no call in flight")

    def capacity_step(self, rate: int, bound_ms: float) -> dict:
        """One open-loop step of the chaos runner at rate for CAPACITY_STEP_S: its p99 (ms), answers and verdict."""
        self.quiet()
        exp = self.tmp / f"capacity-{rate}.json"
        exp.write_text(json.dumps({
            "title": f"capacity step: {rate} requests a second",
            "load": {"rate": rate, "seconds": CAPACITY_STEP_S, "timeout_ms": max(1000, 4 * bound_ms)},
            "hypothesis": {"ok_ratio": 0, "p99_ms": 1e9, "window_s": 2}, "method": []}))
        out = self.tmp / f"capacity-{rate}"
        argv = [str(BUILD / "bin" / "chaos"), str(exp), "--out", str(out), "--token", TOKEN,
                f"--mongo={self.mongo}"] + [f"--{n}={self.url(n, '')}" for n in ("order", "payment", "shipment")]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=CAPACITY_STEP_S + 60)
        try:
            j = json.loads((out / "journal.json").read_text())
        except (OSError, ValueError):
            fail(f"chaos at {rate}/s wrote no journal (exit {r.returncode}): {r.stderr[-500:]}")
        reqs = j["requests"]
        lat = sorted(q["ms"] for q in reqs)
        p99 = lat[min(int(len(lat) * 0.99), len(lat) - 1)] if lat else float("inf")
        whole = sum(1 for q in reqs if q["status"] == 200 and q["whole"])
        held = bool(reqs) and whole == len(reqs) and p99 <= bound_ms and len(reqs) >= 0.98 * rate * CAPACITY_STEP_S
        step = {"rate": rate, "p99_ms": p99, "requests": len(reqs), "whole": whole, "held": held,
                "late_sends": j["load"].get("late_sends", 0)}
        say(f"bench-services capacity step {rate} req/s: p99 {p99:.0f} ms, {whole}/{len(reqs)} whole: "
            f"{'held' if held else 'not held'}")
        return step

    def case_capacity(self, bound_ms: float):
        """The highest open-loop rate with every answer whole and p99 <= bound_ms (see the top of the file)."""
        started = time.monotonic()
        steps, good, bad = [], 0, None
        rate = CAPACITY_FIRST
        while rate <= CAPACITY_MAX and time.monotonic() - started < CAPACITY_BUDGET_S:
            step = self.capacity_step(rate, bound_ms)
            steps.append(step)
            if not step["held"]:
                bad = rate
                break
            good = rate
            if rate == CAPACITY_MAX:
                break
            rate = min(rate * 2, CAPACITY_MAX)
        while bad and bad - good > max(2, 0.1 * bad) and time.monotonic() - started < CAPACITY_BUDGET_S:
            rate = (good + bad) // 2
            step = self.capacity_step(rate, bound_ms)
            steps.append(step)
            good, bad = (rate, bad) if step["held"] else (good, rate)
        self.quiet()
        result = {"capacity_rps": good, "p99_bound_ms": bound_ms, "first_failing_rps": bad,
                  "step_seconds": CAPACITY_STEP_S, "cores": os.cpu_count(), "steps": steps,
                  "seconds_taken": round(time.monotonic() - started, 1),
                  "how": "open-loop POST /create on order (build/bin/chaos), each step's answers all 200 and "
                         "whole with p99 <= the bound"}
        results = ROOT / "build" / "results"
        results.mkdir(parents=True, exist_ok=True)
        (results / "capacity.json").write_text(json.dumps(result, indent=2) + "\n")
        self.figures["capacity_rps"] = good
        if bad is None and good == CAPACITY_MAX:
            say(f"capacity at least {good} req/s (p99 <= {bound_ms:g} ms; the runner's top rate held, so "
                "the chain's own limit is above it)")
        else:
            say(f"capacity {good} req/s (p99 <= {bound_ms:g} ms)")

    def rss(self, when: str):
        for name, pid in self.pids.items():
            self.figure(f"rss_{when}_mb_{name}", rss_mb(pid), "MB")

    def goals(self):
        f = self.figures
        goals = [
            ("hello_vs_civetweb", ("hello_vs_civetweb_rounds",), lambda a: a, ">=", 0.9),
            ("chain_c16_vs_c1", ("chain_rps_c16", "chain_rps_c1"), lambda a, b: a / b, ">=", 1.5),
            ("chain_p99_ms_c16", ("chain_p99_ms_c16",), lambda a: a, "<=", 200.0),
            ("chain_beyond_db_ms_c1", ("chain_beyond_db_ms_c1",), lambda a: a, "<", 1.0),
            ("shipment_c16_vs_c1", ("shipment_rps_c16", "shipment_rps_c1"), lambda a, b: a / b, ">=", 0.9),
            ("open_circuit_vs_last_hop", ("open_circuit_ms", "last_hop_ms"), lambda a, b: a / b, "<=", 1.10),
            ("tracing_cost_pct_c16", ("tracing_on_cost_pct_c16",), lambda a: a, "<=", 5.0),
        ]
        missed = 0
        # each goal whose figures this run measured (--only leaves some out)
        for name, figures, value_of, op, goal in goals:
            if not all(k in f for k in figures):
                continue
            value = value_of(*(f[k] for k in figures))
            ok = {">=": value >= goal, "<=": value <= goal, "<": value < goal}[op]
            missed += not ok
            say(f"bench-services goal {name} {value:.3f} {op} {goal:g} {'met' if ok else 'MISSED'}")
        return missed

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM) if p is self.run else p.terminate()
                    p.wait(timeout=30)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    p.kill()
        if self.keep:
            say(f"bench-services: logs and data kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 6)),
                    help="length of each measured load (default 6)")
    ap.add_argument("--keep", action="store_true", help="keep the logs and data")
    ap.add_argument("--only", choices=("chain", "tracing", "capacity"), help="run only this case (and the RSS figures)")
    ap.add_argument("--capacity-p99", type=float, default=250.0, metavar="MS",
                    help="the p99 bound of the capacity (default 250 ms)")
    ap.add_argument("--build", type=Path, metavar="DIR",
                    help="run the services of this build (DIR/bin/<service>) under this tree's scripts/run.sh")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 120:
        ap.error("--seconds must be 1..120")
    if args.build:
        args.build = args.build.resolve()
        missing = [n for n in ("order", "payment", "shipment") if not (args.build / "bin" / n).is_file()]
        if missing:
            ap.error(f"--build {args.build}: no bin/{', bin/'.join(missing)}")
    if not (BUILD / "bin" / "chaos").is_file():
        fail(f"{BUILD / 'bin' / 'chaos'} is missing (make {BUILD}/bin/chaos): the capacity's load")
    if args.only in (None, "tracing") and not (BUILD / "rel" / "bench" / "otlp_sink").is_file():
        fail(f"{BUILD / 'rel' / 'bench' / 'otlp_sink'} is missing (make {BUILD}/rel/bench/otlp_sink): "
             "the tracing case's sink")
    if not 1 <= args.capacity_p99 <= 10000:
        ap.error("--capacity-p99 must be 1..10000 ms")
    if not shutil.which("wrk"):
        fail("wrk is not installed (scripts/setup.sh installs it)")
    b = Bench(args.seconds, args.keep, args.build)
    capacity = lambda: b.case_capacity(args.capacity_p99)
    cases = {"chain": [b.case_chain], "tracing": [b.case_tracing], "capacity": [capacity]}.get(args.only, [
        b.case_hello, b.case_chain, b.case_tracing, b.case_shipment, b.case_open_circuit, b.case_database, capacity])
    try:
        b.start(hello=b.case_hello in cases)
        say(f"bench-services machine {os.cpu_count()} cores; {b.seconds:g} s per load; "
            f"services of {args.build or BUILD}; logs in {b.tmp / 'run.log'}")
        b.rss("idle")
        for case in cases:
            case()
        b.rss("loaded")
        b.goals()
    except SystemExit:
        b.keep = True       # a failure's logs and data are what the reader needs next
        raise
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
