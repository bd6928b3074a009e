#!/usr/bin/env python3
"""run_experiments.py -- every shipped chaos experiment against `make run`'s stack with the C runner (build/bin/chaos), and the runner's own failures.

    python3 tests/chaos/run_experiments.py [-k substring]...

-k (repeatable) keeps the experiments whose file name contains one of the
substrings; the runner's own failures run with no -k or with -k wrong.

Starts scripts/run.sh with PROFILE=classroom (a stack per distinct
"requires" of the experiments run; the shipped ones need none: the back-off
lesson sets its back-off itself with a tune step) on free ports with its data in a temporary folder,
then runs build/bin/chaos on each experiments/*.json (with --mongo, the
stack's FerretDB) and checks: exit 0 and a passed verdict, every expectation
met, breaker events in the journal, the runner's narration on its output
(the lesson, each action in words with its numbers and its why, each breaker
transition with its time, each expectation announced and its result, the load
tallies), a request record for the whole load, the
documents-stored probe passed with every 200 answer's documents found, and a
timeline picture that teaches: a band per breaker that changed state and the
others on one "unchanged" line, a legend for breaker states and answers,
each fault's label naming its size with no two labels overlapping, half-open
at least 3 px wide with trial marks, each open period's length (3, 6, 12 s
in the back-off lesson) and a latency axis with ticks; and the traces worth
opening, each the request of the journal its rule picks (a run with a
degraded answer records its first one's trace). The experiments of
TRACED_RUNS run on a stack that sends its spans to a real Jaeger
(tests/py/jaeger.py; SKIP, and run untraced, when it is not built): there
each trace worth opening has its links to the dashboard's trace view and to
Jaeger, said on the output, and Jaeger holds the first degraded answer's
trace with the degraded hop's span saying why; elsewhere the output says
tracing is off. Two experiments run
again on the ASan+UBSan build (build/asan/bin/chaos): passed, and no
sanitizer report. Then the runner's own failures: a deliberately wrong
expectation must exit 1 and be marked MISSED in its picture; the stored
probe must fail (exit 1, documents missing) against a database that holds
none of the run's documents and say SKIPPED when no database answers; a
SIGINT in the middle must still run the rollbacks (the fault is gone from
the stack) and exit 1, saying "not decided" (never MISSED) for what it
could not judge; bad experiment files must exit 2 naming the field,
or the line of a JSON syntax error, with nothing run. The premises (with -k
premises or 9-backoff): the back-off lesson's tune is put back at rollback,
a copy of it tuned to back-off 1 must fail (exit 1, the longest open period
MISSED), and a lesson whose "requires" the stack does not have must exit 2
saying why with nothing applied (no fault on any /chaos, no request sent).
The lab's controls (-k control): SIGHUP in the middle runs the rollbacks (no
fault left on any service) and writes the journal and picture; --halt clears
a fault on each service and a breaker forced open, naming them, and says
"nothing to clear" after; --load with a PUT /chaos made by the test
meanwhile records the change from outside in the journal and the picture;
two runs of one experiment without --out leave two folders and `latest`
names the second. The ramp (-k ramp): an experiment whose load ramps from
10 to 60 requests a second over 10 s sends, second by second, what the ramp
asks (within 15%), passes its expectations on goodput and p99, records
offered, goodput and p99 per second in its journal and draws the load panel;
a bad ramp exits 2 naming load.ramp_to; --check accepts the new measures
and refuses an unknown one. Pictures go to build/chaos/<experiment>/timeline.svg (each
test run passes --out). First of all, from the runner's objects
(nm), that no file of chaos/ calls into a file that calls it back, and that
services.tsv agrees with the services' main.c and the runner refuses any other
service. Ends with
"N passed, N failed, N skipped".
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
from jaeger import Jaeger, jaeger_binary  # noqa: E402

TOKEN = "classroom"
CHAOS = {"rel": harness.BUILD / "bin" / "chaos", "asan": harness.BUILD / "asan" / "bin" / "chaos"}
# the experiments run a second time on the ASan+UBSan build of the runner
ASAN_RUNS = ("2-fallback", "6-forced")
# the experiments run on a stack that sends its spans to a real Jaeger (TRACES_QUERY_URL
# naming its query API), so that the runner links the traces worth opening; the
# others run on a stack that does not trace
TRACED_RUNS = ("2-fallback", "7-cascade")
# the settings of tracing, which a stack without it must not take from the environment
TRACING_ENV = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "TRACES_QUERY_URL")
# the runner's traces worth opening (chaos/traces.c): for each, the request of the
# journal's (sorted by n) it must name, or None
PICKS = {
    "first_degraded": lambda reqs: next((q for q in reqs if q["degraded"]), None),
    "first_refused": lambda reqs: next((q for q in reqs if (q["degraded"] or "").endswith(":open")), None),
    "last_degraded": lambda reqs: next((q for q in reversed(reqs) if q["degraded"]), None),
    "first_error": lambda reqs: next((q for q in reqs if not 200 <= q["status"] <= 299), None),
    "first_duplicated": lambda reqs: next((q for q in reqs if (q.get("duplicates") or 0) > 0), None),
    "slowest": lambda reqs: max(reqs, key=lambda q: q["ms"], default=None),
}
# what the runner reads from the environment: the test gives everything as flags
# the services of services.tsv, in chain order, and those that call the next
SERVICES = harness.SERVICE_NAMES
CALLERS = tuple(s["name"] for s in harness.SERVICES if s["next"])
RUNNER_ENV = tuple(f"{s.upper()}_URL" for s in SERVICES) + ("ADMIN_TOKEN", "MONGO_URL", "MONGO_DB")


def call(method, url, token=TOKEN):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None


def put_json(url, body, token=TOKEN):
    """PUT body as JSON to url with the admin token, as curl would; returns the status (0: no answer)."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class StackRun:
    """make run's stack (scripts/run.sh, PROFILE=classroom) on free ports; traced: with a real
    Jaeger (self.jaeger) its services send their spans to, named in TRACES_QUERY_URL."""

    def __init__(self, extra_env=None, traced=False):
        self.tmp = Path(tempfile.mkdtemp(prefix="chaos-lab-", dir="/tmp"))
        self.tmp.chmod(0o755)    # PostgreSQL runs as its own user and must reach its folder
        self.procs = []          # Jaeger, when traced
        self.proc = None
        self.ports = {n: harness.free_port() for n in SERVICES + ("ferretdb",)}
        self.urls = {n: f"http://127.0.0.1:{p}" for n, p in self.ports.items()}
        env = dict(os.environ, PROFILE="classroom", **(extra_env or {}), DATA_DIR=str(self.tmp / "data"),
                   **{f"{n.upper()}_PORT": str(p) for n, p in self.ports.items()})
        for k in ("MONGO_URL", "INJECT_ERR", "ADMIN_TOKEN", "LOG_LEVEL", "CB_VOLUME_THRESHOLD",
                  "CB_RESET_TIMEOUT_MS", "DELAY_MS") + TRACING_ENV:
            env.pop(k, None)
        env["ADMIN_TOKEN"] = TOKEN   # the profile would make a random one
        # the profile's Jaeger and Prometheus are not part of any lesson's checks: left out,
        # they take no ports or CPU from the stacks the lessons measure; a traced run
        # gets a Jaeger of its own, allowed to be read from order's dashboard
        env.update(TRACES="off", METRICS="off")
        self.jaeger = None
        if traced:
            try:
                self.jaeger = Jaeger(self, cors_origins=[self.urls[SERVICES[0]]])
            except BaseException:
                self.close()
                raise
            env.update(self.jaeger.env(TRACES_QUERY_URL=self.jaeger.query_url))
        self.log = self.tmp / "run.log"
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "run.sh")], env=env, cwd=ROOT,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        harness.wait_until(lambda: self.proc.poll() is not None or
                           call("GET", self.urls[SERVICES[0]] + "/health")[0] == 200, 180,
                           "make run's stack (PROFILE=classroom)")
        if self.proc.poll() is not None:
            raise RuntimeError(f"scripts/run.sh exited:\n{self.log.read_text()[-2000:]}")

    def calm(self):
        """Clears every fault and closes every breaker; waits until /health shows them closed."""
        for svc in SERVICES:
            call("DELETE", self.urls[svc] + "/chaos")
            status, h = call("GET", self.urls[svc] + "/health")
            for b in (h or {}).get("breakers", []):
                call("POST", f"{self.urls[svc]}/breaker/close?name={urllib.parse.quote(b['name'])}")

        def closed():
            for svc in SERVICES:
                status, h = call("GET", self.urls[svc] + "/health")
                if status != 200 or any(b["state"] != "closed" for b in h.get("breakers", [])):
                    return False
            return True
        harness.wait_until(closed, 20, "every breaker closed and every database reachable")

        seen = {}

        def empty():
            # the last experiment's calls leave the rolling windows (10 s), so that
            # each experiment's breakers start from the same place
            for svc in CALLERS:
                status, h = call("GET", self.urls[svc] + "/health")
                seen[svc] = (status, {b["name"]: b["window"]["fires"] for b in (h or {}).get("breakers", [])})
                if status != 200 or any(b["window"]["fires"] for b in h.get("breakers", [])):
                    return False
            return True
        try:
            harness.wait_until(empty, 30, "the breakers' rolling windows to empty", interval=0.5)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; last /health status and window fires: {seen}") from None

    def runner_argv(self, path, out, flavour="rel", extra=()):
        """The command line of the C runner on this stack (its database with --mongo)."""
        return ([str(CHAOS[flavour]), str(path), "--out", str(out), "--token", TOKEN,
                 f"--mongo=mongodb://127.0.0.1:{self.ports['ferretdb']}"]
                + [f"--{s}={self.urls[s]}" for s in SERVICES] + list(extra))

    @staticmethod
    def runner_env(flavour="rel", extra=None):
        env = {k: v for k, v in os.environ.items() if k not in RUNNER_ENV}
        env.update(harness.flavour_env(flavour))
        env.update(extra or {})
        return env

    def chaos(self, path, out, extra=(), flavour="rel", env=None):
        """Runs the C runner on path to its end; returns the CompletedProcess."""
        return subprocess.run(self.runner_argv(path, out, flavour, extra), capture_output=True, text=True,
                              timeout=300, env=self.runner_env(flavour, env))

    def close(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def chaos_file_calls(obj_dir):
    """{file: the other files of chaos/ whose functions or data it uses}, from nm of obj_dir/*.o."""
    defined, used = {}, {}
    for o in sorted(Path(obj_dir).glob("*.o")):
        out = subprocess.run(["nm", str(o)], capture_output=True, text=True, check=True).stdout
        used[o.stem + ".c"] = {line.split()[1] for line in out.splitlines() if line.split()[:1] == ["U"]}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TDBR":
                defined[parts[2]] = o.stem + ".c"
    return {f: {defined[s] for s in syms if s in defined and defined[s] != f} for f, syms in used.items()}


def check_no_circles(res):
    """No file of chaos/ reaches, through the calls, a file that reaches it back."""
    graph = chaos_file_calls(harness.BUILD / "rel" / "chaos")
    reach = {}
    for f in graph:
        seen, todo = set(), list(graph[f])
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo += graph.get(g, ())
        reach[f] = seen
    circles = sorted({f"{a} <-> {b}" for a in graph for b in reach[a] if a < b and a in reach.get(b, ())})
    res.check(f"chaos/: no circle of files ({len(graph)} files; run.c calls "
              f"{', '.join(sorted(graph.get('run.c', ())))})", len(graph) > 1 and not circles, str(circles))


def check_services_list(res):
    """services.tsv is the services' own list: each row agrees with the svc_spec
    of <name>/main.c, the runner takes a flag for each and refuses any other
    service, in a flag or in a file."""
    for svc in harness.SERVICES:
        main_c = ROOT / svc["name"] / "main.c"
        text = main_c.read_text() if main_c.exists() else ""
        spec = dict(re.findall(r'\.(name|collection|pass_on)\s*=\s*"([^"]*)"', text))
        port = re.search(r"\.default_port\s*=\s*(\d+)", text)
        res.check(f"services.tsv: {svc['name']} agrees with {svc['name']}/main.c (port, collection, next)",
                  spec.get("name") == svc["name"] and port and int(port.group(1)) == svc["port"]
                  and spec.get("collection") == svc["collection"] and spec.get("pass_on") == svc["next"],
                  f"{svc} vs {spec} port {port and port.group(1)}")
    usage = subprocess.run([str(CHAOS["rel"]), "--help"], capture_output=True, text=True).stdout
    res.check("the runner takes a flag for each service of services.tsv",
              all(f"[--{s} URL]" in usage for s in SERVICES), usage)
    tmp = Path(tempfile.mkdtemp())
    ok = tmp / "ok.json"
    ok.write_text(json.dumps({"title": "x", "method": [{"at": 1, "action": "clear", "service": SERVICES[0]}]}))
    r = subprocess.run([str(CHAOS["rel"]), str(ok), "--inventory=http://127.0.0.1:1"], capture_output=True,
                       text=True)
    res.check("an unknown service as a flag is refused (exit 2, unknown flag)",
              r.returncode == 2 and "--inventory=http://127.0.0.1:1: unknown flag" in r.stderr, r.stderr[-300:])
    for step, words in (({"action": "clear", "service": "inventory"}, "method[0].service"),
                        ({"action": "stop", "service": "inventory"}, "method[0].service"),
                        ({"action": "open", "breaker": "inventory/db"}, "method[0].breaker"),
                        ({"expect": "open", "breaker": "inventory", "within": 2}, "method[0].breaker")):
        bad = tmp / "bad.json"
        bad.write_text(json.dumps({"title": "x", "method": [dict(step, at=1)]}))
        r = subprocess.run([str(CHAOS["rel"]), str(bad), "--check"], capture_output=True, text=True)
        res.check(f"an unknown service in a file is refused naming {words!r} ({json.dumps(step)})",
                  r.returncode == 2 and words in r.stderr, f"exit {r.returncode}: {r.stderr[-300:]}")
    shutil.rmtree(tmp, ignore_errors=True)


# a character's width at the picture's label size, as chaos/svg.c reckons it
CHAR_W = 6.4


def svg_texts(svg, cls):
    """The <text class="cls"> elements of a picture: (x, y, anchor, words) each, the
    words without their <title> and tags."""
    out = []
    for m in re.finditer(rf'<text class="{cls}" ([^>]*)>(.*?)</text>', svg):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))
        words = html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<title>.*?</title>", "", m.group(2))))
        out.append((float(attrs["x"]), float(attrs["y"]), attrs.get("text-anchor", "start"), words))
    return out


def fault_sizes(faults):
    """The numbers an action's label must show for a PUT /chaos body: each fault's
    share when it is not all requests ("30%"), and its milliseconds ("1000 ms")."""
    sizes = []
    for body in faults.values():
        if isinstance(body.get("fraction"), (int, float)) and body["fraction"] < 1:
            sizes.append(f"{body['fraction'] * 100:g}%")
        if isinstance(body.get("ms"), (int, float)):
            sizes.append(f"{body['ms']:g} ms")
    return sizes


def check_picture(res, name, svg_path, breakers, exp=None):
    """A run's timeline picture: a band for each breaker that changed state and the
    others named on the "unchanged" line, the legend, the action labels (the fault and
    its size, none overlapping another), half-open at least 3 px wide, a mark per trial
    call, each ended open period's length, the latency axis' ticks."""
    svg = svg_path.read_text() if svg_path.exists() else ""
    res.check(f"{name}: timeline picture written ({svg_path.relative_to(ROOT)})",
              svg.startswith("<svg") and svg.rstrip().endswith("</svg>"))
    j = read_journal(svg_path.parent)
    states = j.get("states", {})
    changed = {b for b in breakers if len({s.replace("forced-", "") for _, s in states.get(b, [])}) > 1}
    bands = {b for b in breakers if re.search(rf'<title>{re.escape(html.escape(b))} \S+ from', svg)}
    folded = {b for b in breakers if re.search(rf'<title>{re.escape(html.escape(b))} \S+ throughout</title>', svg)}
    res.check(f"{name}: a band per breaker that changed state ({sorted(changed)}), the other "
              f"{len(breakers) - len(changed)} on the unchanged line",
              bands == changed and folded == set(breakers) - changed and 'class="unchanged"' in svg
              if folded else bands == changed == set(breakers),
              f"bands {sorted(bands)}, folded {sorted(folded)}, changed {sorted(changed)}")
    res.check(f"{name}: a legend for the breaker states and one for the answers",
              re.search(r'<g class="legend">.*breaker state.*closed.*half-open.*open.*answer.*whole.*degraded.*error',
                        svg, re.S) is not None)
    ticks = [float(v) for v in re.findall(r'<text class="tick"[^>]*>([\d.]+)</text>', svg)]
    res.check(f"{name}: the latency axis has ticks from 0 ({ticks[:6]})", len(ticks) >= 3 and 0 in ticks)
    half = [float(w) for w in re.findall(r'width="([\d.]+)"[^>]*><title>[^<]* half-open from', svg)]
    res.check(f"{name}: every half-open period at least 3 px wide ({len(half)})", all(w >= 3 for w in half),
              str(half))
    events = j.get("events", [])
    if any(e.get("event") == "halfOpen" for e in events):
        res.check(f"{name}: a mark per trial call", 'class="trial"' in svg)
    reopened = any(e.get("event") == "open" for e in events) and any(e.get("event") in ("halfOpen", "close")
                                                                     for e in events)
    lengths = [w for _, _, _, w in svg_texts(svg, "open-length")]
    if reopened:
        res.check(f"{name}: each open period's length written on it ({lengths})",
                  any(re.fullmatch(r"\d+\.\d s", w) for w in lengths))
    labels = svg_texts(svg, "action")
    if exp is not None:
        method = [s for s in exp.get("method", []) if "action" in s]
        res.check(f"{name}: a label per action of the method ({len(labels)}/{len(method)})",
                  len(labels) == len(method))
        missing = [(s.get("service"), size) for s in method if "faults" in s for size in fault_sizes(s["faults"])
                   if not any(s.get("service", "") in w and size in w for _, _, _, w in labels)]
        res.check(f"{name}: each fault's label names its service and size", not missing,
                  f"missing {missing} in {[w for _, _, _, w in labels]}")
    spans = [(y, x - len(w) * CHAR_W if a == "end" else x, x if a == "end" else x + len(w) * CHAR_W, w)
             for x, y, a, w in labels]
    clashes = [(p[3], q[3]) for i, p in enumerate(spans) for q in spans[i + 1:]
               if abs(p[0] - q[0]) < 12 and p[1] < q[2] and q[1] < p[2]]
    res.check(f"{name}: no two action labels overlap", not clashes, str(clashes))
    return svg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", action="append", default=[],
                    help="keep the experiments whose name contains this (repeatable); 'wrong': the runner's failures")
    args = ap.parse_args()
    res = harness.Checks()
    check_no_circles(res)
    check_services_list(res)
    out_root = ROOT / "build" / "chaos"
    chosen = [path for path in sorted((ROOT / "experiments").glob("*.json"))
              if not args.k or any(k in path.name for k in args.k)]
    tracing = any(path.stem in TRACED_RUNS for path in chosen)
    if tracing:
        try:
            jaeger_binary()
        except harness.Skip as e:
            tracing = False
            res.skip(f"the traced runs ({', '.join(p.stem for p in chosen if p.stem in TRACED_RUNS)}) with "
                     f"Jaeger's links", f"{e}; they run untraced")
    # a stack per distinct "requires" and whether it traces
    groups = {}
    for path in chosen:
        req = json.loads(path.read_text()).get("requires", {})
        traced = tracing and path.stem in TRACED_RUNS
        groups.setdefault((json.dumps(req, sort_keys=True), traced), []).append(path)
    # the stack the runner's own failures are tested on: the plain classroom one,
    # when they are asked for
    runner_checks = (not args.k or any("wrong" in k for k in args.k)
                     or any(k in ("premises", "control", "ramp") for k in args.k))
    if runner_checks:
        groups.setdefault(("{}", False), [])
    for (req, traced), paths in sorted(groups.items(), key=lambda kv: kv[0] != ("{}", False)):
        print(f"---- make run PROFILE=classroom {' '.join(f'{k}={v}' for k, v in json.loads(req).items())}"
              f"{' with tracing (a Jaeger)' if traced else ''}", flush=True)
        run_group(res, json.loads(req), paths, args, out_root,
                  with_runner_checks=(req, traced) == ("{}", False), traced=traced)
    print(res.summary())
    return 1 if res.failed else 0


def sanitizer_report(text):
    """The first sanitizer report in a runner's output, or ""."""
    for mark in harness.SANITIZER_MARKS:
        i = text.find(mark)
        if i >= 0:
            return text[max(0, i - 200): i + 3000]
    return ""


def check_experiment(res, stack, path, out, breakers, flavour="rel"):
    """Runs one shipped experiment and checks its verdict, journal and picture."""
    name = path.name if flavour == "rel" else f"{path.name} ({flavour} runner)"
    start = time.monotonic()
    r = stack.chaos(path, out, flavour=flavour)
    took = time.monotonic() - start
    print(r.stdout, end="", flush=True)
    res.check(f"{name}: verdict PASSED, exit 0 ({took:.0f}s)",
              r.returncode == 0 and "verdict: PASSED" in r.stdout, r.stderr[-1500:])
    if flavour != "rel":
        report = sanitizer_report(r.stderr)
        res.check(f"{name}: no sanitizer report", not report, report)
    try:
        j = json.loads((out / "journal.json").read_text())
    except (OSError, ValueError) as e:
        res.check(f"{name}: journal written", False, str(e))
        return
    exp = json.loads(path.read_text())
    want = exp["load"]["rate"] * exp["load"]["seconds"]
    res.check(f"{name}: journal holds every request ({len(j['requests'])}/{want:g})",
              len(j["requests"]) >= 0.95 * want)
    res.check(f"{name}: journal holds breaker events from /events.stream "
              f"({len(j['events'])})", any(e.get("event") in ("open", "close", "failure", "timeout")
                                           for e in j["events"]))
    res.check(f"{name}: every expectation met",
              j["expectations"] and all(e["met"] for e in j["expectations"]),
              str([(e["breaker"], e["expect"], e["at"]) for e in j["expectations"] if not e["met"]]))
    measured = [e for e in j["expectations"] if e.get("measure")]
    if measured:
        # a measure's value is in the journal, with what it was taken from
        values = ", ".join(f"{e['expect']}: {e.get('value')}" for e in measured)
        res.check(f"{name}: each measure's value in the journal ({values})",
                  all(isinstance(e.get("value"), (int, float)) for e in measured), json.dumps(measured)[:600])
        if any(e["measure"] == "amplification" for e in measured):
            res.check(f"{name}: the amplification of each second and every service's arrivals in the journal",
                      len(j.get("amplification", [])) == int(exp["load"]["seconds"])
                      and all(len(j["arrivals"][s]) > 10 for s in SERVICES), str(j.get("amplification"))[:300])
        if any(e["measure"] == "duplicates" for e in measured):
            res.check(f"{name}: every request's duplicates counted",
                      j.get("duplicates", {}).get("counted") is True
                      and all("duplicates" in q for q in j["requests"]), json.dumps(j.get("duplicates")))
    if exp.get("hypothesis", {}).get("stored"):
        st = j.get("stored", {})
        answered = sum(1 for q in j["requests"] if q["status"] == 200)
        res.check(f"{name}: every 200 answer's documents stored ({st.get('found')}/{st.get('documents')} "
                  f"documents of {st.get('answers')} answers)",
                  st.get("result") == "passed" and j["verdict"].get("stored") is True
                  and st.get("answers") == answered > 0
                  and st.get("found") == st.get("documents") >= answered, json.dumps(st)[:800])
    check_narration(res, name, r.stdout, exp, j)
    check_traces(res, name, stack, r.stdout, j)
    svg = check_picture(res, name, out / "timeline.svg", breakers, exp)
    if path.stem == "9-backoff":
        lengths = [w for _, _, _, w in svg_texts(svg, "open-length")]
        res.check(f"{name}: the open periods' lengths double in the picture ({lengths})",
                  lengths[:3] == ["3.0 s", "6.0 s", "12.0 s"])


def breaker_label(ref):
    """The display label of an experiment's breaker ref: payment -> "payment -> shipment",
    payment/db -> "payment -> database"."""
    svc, _, db = ref.partition("/")
    nxt = {s["name"]: s["next"] for s in harness.SERVICES}[svc]
    return f"{svc} -> {'database' if db else nxt}"


def check_narration(res, name, out, exp, j):
    """The runner tells the lesson as it runs: its title and text; each action in words
    with its numbers (every fault's share as a percentage) and its why; each breaker
    transition of the journal's events with its time; each expectation announced when
    its window opens and its result with its window; the load tallied as it goes."""
    problems = []
    lesson_start = " ".join((exp.get("lesson") or "").split()[:4])
    for words in (exp["title"], lesson_start):
        if words not in out:
            problems.append(f"no {words!r}")
    for a in j["actions"]:
        what = a.get("what")
        if not what:
            problems.append(f"action {a['action']} at {a['t']} s has no 'what' in the journal")
            continue
        if what not in out:
            problems.append(f"no line saying {what!r}")
        if a.get("why") and f"why: {a['why']}" not in out:
            problems.append(f"no why {a['why']!r}")
    for step in exp["method"]:
        for kind, body in (step.get("faults") or {}).items():
            # its share as a percentage ("every" when it meets every request)
            share = f"{body.get('fraction', 1) * 100:g}%"
            said = (share, "every") if share == "100%" else (share,)
            if not any(w in a.get("what", "") for a in j["actions"] for w in said):
                problems.append(f"the {kind} fault at {step['at']} s: its share {share} is said nowhere")
    # each transition the readers saw, with the run time in front: "chaos    6.1s  payment -> shipment: open"
    refs = {n: ref for ref, n in j["breakers"].items()}
    for e in j["events"]:
        if e.get("event") not in ("open", "halfOpen", "close") or e.get("breaker") not in refs:
            continue
        label = e.get("label") or breaker_label(refs[e["breaker"]])
        state = e["state"].removeprefix("forced-")
        if not re.search(rf"^chaos +\d+\.\ds  {re.escape(label)}: {re.escape(state)}\b", out, re.M):
            problems.append(f"no transition line for {label}: {state} (event at {e['t']} s)")
    for step in (s for s in exp["method"] if "expect" in s):
        lo, hi = step["at"], step["at"] + step["within"]
        who = "" if "breaker" not in step else breaker_label(step["breaker"]) + " "
        announced = f"from {lo:.1f} s to {hi:.1f} s: expect {who}{step['expect']}"
        judged = f"{who}{step['expect']} ({lo:.1f}-{hi:.1f} s): met"
        if announced not in out:
            problems.append(f"no announcement {announced!r}")
        if judged not in out:
            problems.append(f"no result {judged!r}")
    if not re.search(r"load: \d+ answers so far: \d+ whole, \d+ degraded, \d+ errors; p99 of the last 2 s", out):
        problems.append("no load tally")
    if re.search(r"met at|within [\d.]+ s of", out):
        problems.append("the old wording (a run time beside a relative window)")
    res.check(f"{name}: the output narrates the lesson (actions in words, transitions, expectations, tallies)",
              not problems, "; ".join(problems[:8]))


def check_traces(res, name, stack, out, j):
    """The traces worth opening: each of the runner's picks names the request of the
    journal its rule picks (a run with a degraded answer names its first degraded answer);
    on a traced stack each has its links, said as "open this trace: ...", and Jaeger holds
    the first degraded answer's trace, with the degraded hop's server span saying degraded
    and why; on a stack that does not trace, the links are null and the output says so,
    with each trace id."""
    t = j.get("traces") or {}
    picks = t.get("picks") or {}
    reqs = [q for q in j["requests"] if q.get("trace")]
    problems = []
    if set(picks) != set(PICKS):
        problems.append(f"picks {sorted(picks)}, want {sorted(PICKS)}")
    for key, rule in PICKS.items():
        want, got = rule(reqs), picks.get(key)
        if (want is None) != (got is None) or (want and (got["trace"], got["n"]) != (want["trace"], want["n"])):
            problems.append(f"{key}: {got and (got['n'], got['trace'])}, want {want and (want['n'], want['trace'])}")
    res.check(f"{name}: the traces worth opening are the journal's requests its rules pick "
              f"({', '.join(k for k in PICKS if picks.get(k))})", not problems, "; ".join(problems))
    first = picks.get("first_degraded")
    if any(q["degraded"] for q in reqs):
        res.check(f"{name}: a degraded answer happened: its first one's trace ({first and first['trace']}) is "
                  f"recorded and is one of the journal's requests",
                  bool(first) and first["trace"] in {q["trace"] for q in reqs}, json.dumps(first))
    named = [p for p in picks.values() if p]
    order = stack.urls[SERVICES[0]]
    if stack.jaeger:
        q = stack.jaeger.query_url
        bad = [p for p in named if p["dashboard"] != f"{order}/dashboard#trace={p['trace']}"
               or p["jaeger"] != f"{q}/api/traces/{p['trace']}"
               or f"open this trace: {p['what']} (request {p['n']} sent at" not in out
               or not re.search(rf"open this trace: .*: {re.escape(p['dashboard'])}\n.*its spans in Jaeger: "
                                rf"{re.escape(p['jaeger'])}", out)]
        res.check(f"{name}: each trace worth opening linked to the dashboard's trace view and Jaeger, and said "
                  f"(query_url {t.get('query_url')})", t.get("query_url") == q and named and not bad,
                  json.dumps(bad or t)[:800])
        if first:
            svc, _, reason = first["degraded"].partition(":")
            seen = []

            def degraded_span():
                r = harness.http("GET", first["jaeger"], timeout=5)
                spans = stack.jaeger.spans(first["trace"]) if r.status == 200 else []
                seen[:] = [(s["service"], s["operationName"], s["tags"].get("app.outcome")) for s in spans]
                return any(s["service"] == svc and s["operationName"] == "POST /create"
                           and s["tags"].get("app.outcome") == "degraded"
                           and s["tags"].get("app.degraded.reason") == reason for s in spans)
            try:
                harness.wait_until(degraded_span, 20, "the first degraded answer's trace in Jaeger")
                ok = True
            except TimeoutError:
                ok = False
            res.check(f"{name}: Jaeger holds the first degraded answer's trace ({first['trace']}), {svc}'s "
                      f"server span degraded ({reason}), at its link", ok, str(seen)[:800])
    else:
        bad = [p for p in named if p["dashboard"] is not None or p["jaeger"] is not None or p["trace"] not in out]
        res.check(f"{name}: without tracing, no links, and the output says tracing is off with each trace id",
                  t.get("query_url") is None and not bad and (not named or "tracing is off" in out),
                  json.dumps(bad)[:600])


def check_runner_failures(res, stack, out_root, breakers):
    """The runner's own failures: a wrong expectation, the stored probe failing and
    skipped, SIGINT in the middle, bad files."""
    tmp = Path(tempfile.mkdtemp())
    wrong = tmp / "wrong.json"
    stack.calm()
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

    # the stored probe: a database name where the services stored nothing must fail it
    stored = tmp / "stored.json"
    stored.write_text(json.dumps({
        "title": "Documents stored", "load": {"rate": 5, "seconds": 6},
        "hypothesis": {"window_s": 2, "stored": True},
        "method": [{"at": 1, "expect": "closed", "breaker": "payment", "within": 2}]}))
    stack.calm()
    r = stack.chaos(stored, out_root / "stored-elsewhere", env={"MONGO_DB": "nothing_here"})
    j = read_journal(out_root / "stored-elsewhere")
    st = j.get("stored", {})
    res.check("the stored probe fails the run (exit 1) when the documents are not in the database "
              f"({st.get('missing')} of {st.get('documents')} missing)",
              r.returncode == 1 and "hypothesis stored: NOT held" in r.stdout
              and st.get("result") == "failed" and st.get("db") == "nothing_here"
              and st.get("missing") == st.get("documents") > 0 and j["verdict"].get("stored") is False,
              r.stdout[-800:])
    res.check("the picture says the documents were not all stored",
              "documents stored: 0/" in (out_root / "stored-elsewhere" / "timeline.svg").read_text())
    # ... and with no database at all, it says SKIPPED rather than passing
    stack.calm()
    r = stack.chaos(stored, out_root / "stored-skipped", extra=[f"--mongo=mongodb://127.0.0.1:{harness.free_port()}"])
    j = read_journal(out_root / "stored-skipped")
    res.check("the stored probe says SKIPPED, in its line and the verdict, when no database answers",
              "hypothesis stored: SKIPPED: no database answers" in r.stdout
              and "the stored probe was SKIPPED" in r.stdout and j.get("stored", {}).get("result") == "skipped"
              and j["verdict"].get("stored") is None, r.stdout[-800:])

    # SIGINT in the middle: the rollbacks still run
    interrupted = tmp / "interrupted.json"
    interrupted.write_text(json.dumps({
        "title": "Interrupted", "load": {"rate": 5, "seconds": 30},
        "method": [{"at": 1, "action": "fault", "service": "shipment",
                    "faults": {"error": {"fraction": 1, "expires_s": 120}}},
                   {"at": 1, "expect": "half-open", "breaker": "payment", "within": 25},
                   {"at": 20, "action": "clear", "service": "shipment"}],
        "rollbacks": [{"action": "clear", "service": "shipment"}]}))
    stack.calm()
    p = subprocess.Popen(stack.runner_argv(interrupted, out_root / "interrupted"), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=stack.runner_env())
    def fault_on():
        return "error" in ((call("GET", stack.urls["shipment"] + "/chaos")[1] or {}).get("faults") or {})

    faulted = harness.wait_until(lambda: p.poll() is not None or fault_on(), 15,
                                 "the experiment's fault on shipment") and p.poll() is None
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    faults = call("GET", stack.urls["shipment"] + "/chaos")[1] or {}
    j = read_journal(out_root / "interrupted")
    res.check("SIGINT in the middle: the rollbacks run, the fault is gone, exit 1, the journal says so",
              faulted and p.returncode == 1 and "interrupted (Ctrl-C)" in out
              and "rollback: cleared every fault on shipment" in out and faults.get("faults") == {}
              and j.get("verdict", {}).get("aborted") == "interrupted (Ctrl-C)",
              f"exit {p.returncode}, faults {faults}: {out[-600:]} {err[-300:]}")
    # what it could not judge is not decided, never MISSED, on its output and in its journal
    undecided = [e.get("result") for e in j.get("expectations", [])] + [p.get("result") for p in j.get("probes", [])[1:]]
    res.check("SIGINT in the middle: the open expectation and the after-probe say \"not decided\", never MISSED "
              f"(journal: {undecided})",
              "payment -> shipment half-open (1.0-26.0 s): not decided: the run stopped at" in out
              and "hypothesis after (27.0-30.0 s): not decided" in out and "MISSED" not in out
              and undecided == ["undecided", "undecided"], out[-1200:])

    bad = [({"title": "x", "method": [{"at": 1, "action": "explode"}]}, "method[0].action"),
           ({"title": "x", "load": {"rate": 0}, "method": [{"at": 1, "action": "clear",
                                                           "service": "order"}]}, "load.rate"),
           ({"title": "x", "method": [{"at": 1, "expect": "open", "breaker": "nope",
                                       "within": 2}]}, "method[0].breaker"),
           ({"method": []}, "title"),
           ({"title": "x", "hypothesis": {"stored": "yes"},
             "method": [{"at": 1, "action": "clear", "service": "order"}]}, "hypothesis.stored"),
           ({"title": "x", "method": [{"at": 1, "action": "fault", "service": "order"}]}, "method[0].faults"),
           ({"title": "x", "method": [{"at": 1, "action": "kill", "service": "ferretbd"}]}, "method[0].service"),
           ({"title": "x", "method": [{"at": 1, "action": "restart"}]}, "method[0].service"),
           ({"title": "x", "method": [{"at": 1, "action": "stop", "service": "ferretdb"}]}, "method[0].service"),
           # measures: an unknown one, a bad op, a breaker named with one, a span past the load
           ({"title": "x", "method": [{"at": 1, "expect": "amplitude <= 1.3", "within": 2}]},
            "or \"<measure> <op> <number>\" with a measure of amplification"),
           ({"title": "x", "method": [{"at": 1, "expect": "amplification =< 1.3", "within": 2}]},
            "method[0].expect"),
           # a per-service measure needs a known service, and a measure of the run takes none
           ({"title": "x", "method": [{"at": 1, "expect": "inventory.busy_max <= 3", "within": 2}]},
            "method[0].expect"),
           ({"title": "x", "method": [{"at": 1, "expect": "health_p99_ms <= 50", "within": 2}]},
            "method[0].expect"),
           ({"title": "x", "method": [{"at": 1, "expect": "order.amplification <= 1.3", "within": 2}]},
            "method[0].expect"),
           ({"title": "x", "method": [{"at": 1, "expect": "order.health_p99 <= 50", "within": 2}]},
            "method[0].expect"),
           ({"title": "x", "method": [{"at": 1, "expect": "duplicates == 0", "breaker": "order",
                                       "within": 2}]}, "unknown field for a measure (it names no breaker)"),
           ({"title": "x", "load": {"seconds": 10},
             "method": [{"at": 5, "expect": "duplicates == 0", "within": 6}]}, "a measure is taken within the load"),
           ({"title": "x", "method": [{"at": 1, "action": "retry", "service": "payment"}]},
            "method[0].settings"),
           ({"title": "x", "method": [{"at": 1, "action": "tune", "breaker": "payment"}]},
            "method[0].options"),
           # fault bodies are read by the services' own parser (common/svc/lab/faults.c)
           ({"title": "x", "method": [{"at": 1, "action": "fault", "service": "shipment",
                                       "faults": {"eror": {"fraction": 1}}}]}, 'unknown fault "eror"'),
           ({"title": "x", "method": [{"at": 1, "action": "fault", "service": "shipment",
                                       "faults": {"error": {"fracton": 1}}}]}, 'error has no field "fracton"'),
           ({"title": "x", "method": [{"at": 1, "action": "fault", "service": "shipment",
                                       "faults": {"latency": {"jitter_ms": 5}}}]}, "latency.ms is required"),
           ({"title": "x", "requires": {"CB_BACKOF": "2"},
             "method": [{"at": 1, "action": "clear", "service": "order"}]}, "requires.CB_BACKOF"),
           ("{\n  \"title\": \"x\",\n  oops\n}", ":3:"),
           ("{\n  \"title\": \"x\",\n  \"method\": [\n    {\"at\": 1, \"action\": \"clear\"},\n"
            "    {\"at\": 2 \"action\": \"clear\"}\n  ]\n}\n", "wrong.json:5:"),
           ("{\"title\": \"x\", \"method\": [\n", ":2:")]
    for body, words in bad:
        wrong.write_text(body if isinstance(body, str) else json.dumps(body))
        r = stack.chaos(wrong, out_root / "bad")
        res.check(f"a bad file is refused naming {words!r}",
                  r.returncode == 2 and words in r.stderr and not r.stdout.strip()
                  and (":" not in words or "not valid JSON" in r.stderr),
                  f"exit {r.returncode}: {r.stderr[-300:]} {r.stdout[-300:]}")
    # --check alone (no stack) names a misspelt fault or field as PUT /chaos would
    for faults, words in (({"eror": {"fraction": 1}}, 'unknown fault "eror"'),
                          ({"error": {"fracton": 1}}, 'error has no field "fracton"')):
        wrong.write_text(json.dumps({"title": "x", "method": [
            {"at": 1, "action": "fault", "service": "shipment", "faults": faults}]}))
        r = subprocess.run([str(CHAOS["rel"]), str(wrong), "--check"], capture_output=True, text=True,
                           timeout=30, env=stack.runner_env())
        res.check(f"--check refuses a fault body naming {words!r} (exit 2)",
                  r.returncode == 2 and words in r.stderr and "method[0].faults" in r.stderr,
                  f"exit {r.returncode}: {r.stderr[-300:]}")
    shutil.rmtree(tmp, ignore_errors=True)


def payment_options(stack):
    """The options of payment's chain breaker as its /health shows them ({} when absent)."""
    h = call("GET", stack.urls["payment"] + "/health")[1] or {}
    return (h.get("breaker") or {}).get("options") or {}


def check_premises(res, stack, out_root, ran_lesson9):
    """Lesson 9 sets back-off at runtime and is put back; with back-off 1 it fails;
    a lesson whose requires do not hold exits 2 with nothing applied."""
    tmp = Path(tempfile.mkdtemp())
    lesson = json.loads((ROOT / "experiments" / "9-backoff.json").read_text())
    if ran_lesson9:
        opts = payment_options(stack)
        res.check(f"9-backoff.json: its tune is put back at rollback (backoff {opts.get('backoff')})",
                  opts.get("backoff") == 1, json.dumps(opts))
    # the same lesson with back-off off must fail: its point is the growing open period
    off = json.loads(json.dumps(lesson))
    for step in off["method"]:
        if step.get("action") == "tune":
            step["options"]["backoff"] = 1
    path = tmp / "9-backoff-off.json"
    path.write_text(json.dumps(off))
    stack.calm()
    r = stack.chaos(path, out_root / "9-backoff-off")
    print(r.stdout, end="", flush=True)
    j = read_journal(out_root / "9-backoff-off")
    missed = [e for e in j.get("expectations", []) if e.get("measure") == "longest_open_s" and not e["met"]]
    res.check("9-backoff with back-off 1 fails (exit 1, the longest open period MISSED: "
              f"{[e.get('value') for e in missed]} s)",
              r.returncode == 1 and "verdict: FAILED" in r.stdout and missed, r.stdout[-800:] + r.stderr[-300:])
    # requires that the stack does not have: exit 2, the reason, nothing applied
    needs = tmp / "needs.json"
    needs.write_text(json.dumps({
        "title": "Needs back-off", "requires": {"CB_BACKOFF": "2"}, "load": {"rate": 5, "seconds": 6},
        "method": [{"at": 0, "action": "fault", "service": "shipment",
                    "faults": {"error": {"fraction": 1, "expires_s": 60}}},
                   {"at": 0, "action": "tune", "breaker": "order", "options": {"backoff": 3}}],
        "rollbacks": [{"action": "clear", "service": "shipment"}]}))
    stack.calm()
    before = {s: (call("GET", stack.urls[s] + "/health")[1] or {}).get("requests", {}).get("arrived")
              for s in SERVICES}
    r = stack.chaos(needs, out_root / "needs")
    faults = {s: (call("GET", stack.urls[s] + "/chaos")[1] or {}).get("faults") for s in SERVICES}
    after = {s: (call("GET", stack.urls[s] + "/health")[1] or {}).get("requests", {}).get("arrived")
             for s in SERVICES}
    order_backoff = ((call("GET", stack.urls["order"] + "/health")[1] or {}).get("breaker") or {}) \
        .get("options", {}).get("backoff")
    res.check("requires that do not hold: exit 2 with the reason, nothing applied (no fault, no tune, "
              "no request)",
              r.returncode == 2 and "needs CB_BACKOFF=2; order's breaker has backoff 1" in r.stderr
              and all(f == {} for f in faults.values()) and order_backoff == 1 and before == after
              and not r.stdout.strip(),
              f"exit {r.returncode}: {r.stderr[-400:]} faults {faults} arrivals {before} -> {after}")
    shutil.rmtree(tmp, ignore_errors=True)


def faults_in_force(stack):
    """Each service's faults in force (GET /chaos), by service; None where it did not answer."""
    return {svc: (call("GET", stack.urls[svc] + "/chaos")[1] or {}).get("faults") for svc in SERVICES}


def breaker_states(stack):
    """Every breaker's state from each service's /health, by breaker name."""
    states = {}
    for svc in SERVICES:
        for b in (call("GET", stack.urls[svc] + "/health")[1] or {}).get("breakers", []):
            states[b["name"]] = b["state"]
    return states


def check_sighup(res, stack, out_root, tmp):
    """SIGHUP in the middle of a run: the rollbacks run on every service, the journal and picture are written."""
    hup = tmp / "hup.json"
    fault = {"error": {"fraction": 1, "expires_s": 120}}
    hup.write_text(json.dumps({
        "title": "Hung up", "load": {"rate": 5, "seconds": 30},
        "method": [{"at": 1, "action": "fault", "service": s, "faults": fault} for s in SERVICES],
        "rollbacks": [{"action": "clear", "service": s} for s in SERVICES]}))
    stack.calm()
    out = out_root / "hup"
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.Popen(stack.runner_argv(hup, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=stack.runner_env())
    try:
        faulted = harness.wait_until(lambda: p.poll() is not None or all(
            "error" in (f or {}) for f in faults_in_force(stack).values()), 15, "the faults on every service")
        faulted = faulted and p.poll() is None
    except TimeoutError:
        faulted = False
    p.send_signal(signal.SIGHUP)
    try:
        text, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        text, err = p.communicate()
    left = faults_in_force(stack)
    j = read_journal(out)
    svg = (out / "timeline.svg").read_text() if (out / "timeline.svg").exists() else ""
    res.check("SIGHUP in the middle: the rollbacks run, no fault left on any service (GET /chaos), exit 1",
              faulted and p.returncode == 1 and "interrupted (SIGHUP" in text
              and all(f == {} for f in left.values()),
              f"exit {p.returncode}, faults left {left}: {text[-600:]} {err[-300:]}")
    res.check("SIGHUP in the middle: the journal and the picture of the run so far are written",
              j.get("verdict", {}).get("aborted", "").startswith("interrupted (SIGHUP")
              and len(j.get("requests", [])) > 0 and "<svg" in svg, str(j.get("verdict"))[:300])
    own = [a for a in j.get("actions", []) if a.get("phase") == "outside" and "PUT /chaos" in a.get("what", "")]
    res.check("the runner's own fault changes are not recorded again as changes from outside", not own, str(own))


def check_halt(res, stack):
    """--halt clears a fault on each service and a breaker forced open, and says what it cleared."""
    argv = [str(CHAOS["rel"]), "--halt", "--token", TOKEN] + [f"--{s}={stack.urls[s]}" for s in SERVICES]
    stack.calm()
    put = {s: put_json(stack.urls[s] + "/chaos", {"error": {"fraction": 0.5}, "latency": {"ms": 20}})
           for s in SERVICES}
    chain = next(b["name"] for b in call("GET", stack.urls["payment"] + "/health")[1]["breakers"]
                 if not b["name"].endswith("->mongodb"))
    forced = call("POST", stack.urls["payment"] + "/breaker/open?name=" + urllib.parse.quote(chain))[0]
    before = breaker_states(stack)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=stack.runner_env())
    left, states = faults_in_force(stack), breaker_states(stack)
    res.check(f"--halt: set up a fault on each service ({put}) and payment's chain breaker forced open "
              f"({before.get(chain)})", all(v == 200 for v in put.values()) and forced == 200
              and before.get(chain) == "forced-open")
    res.check("--halt clears every fault (GET /chaos) and closes every breaker (/health), exit 0",
              r.returncode == 0 and all(f == {} for f in left.values())
              and all(st == "closed" for st in states.values()),
              f"exit {r.returncode}, faults {left}, breakers {states}: {r.stdout} {r.stderr}")
    res.check("--halt names what it cleared",
              all(f"{s}: cleared error, latency" in r.stdout for s in SERVICES)
              and "payment -> shipment: was forced-open, now closed" in r.stdout, r.stdout)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=stack.runner_env())
    res.check("--halt on a clean stack says nothing to clear for each service, exit 0",
              again.returncode == 0 and all(f"{s}: nothing to clear" in again.stdout for s in SERVICES),
              again.stdout + again.stderr)
    dead = argv[:-1] + [f"--{SERVICES[-1]}=http://127.0.0.1:{harness.free_port()}"]
    r = subprocess.run(dead, capture_output=True, text=True, timeout=60, env=stack.runner_env())
    res.check("--halt exits 2 naming a service that does not answer, and clears the others",
              r.returncode == 2 and f"{SERVICES[-1]} does not answer" in r.stderr
              and all(f"{s}: nothing to clear" in r.stdout for s in SERVICES[:-1]), r.stdout + r.stderr)


def check_load_only(res, stack, out_root):
    """--load with a fault changed from outside meanwhile: the journal and the picture show the change."""
    out = out_root / "load"
    shutil.rmtree(out, ignore_errors=True)
    stack.calm()
    argv = [str(CHAOS["rel"]), "--load", "10/s", "--for", "8", "--out", str(out), "--token", TOKEN,
            f"--mongo=mongodb://127.0.0.1:{stack.ports['ferretdb']}"] + [f"--{s}={stack.urls[s]}" for s in SERVICES]
    arrived = lambda: ((call("GET", stack.urls["order"] + "/health")[1] or {}).get("requests") or {}).get("arrived", 0)
    base = arrived()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=stack.runner_env())
    try:
        harness.wait_until(lambda: p.poll() is not None or arrived() >= base + 20, 15, "the load on order")
    except TimeoutError:
        pass
    status = put_json(stack.urls["shipment"] + "/chaos", {"latency": {"ms": 40, "expires_s": 2}})
    try:
        text, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        text, err = p.communicate()
    j = read_journal(out)
    words = "PUT /chaos: latency 40±0 ms on 100% of requests for 2 s"
    outside = [a for a in j.get("actions", []) if a.get("phase") == "outside"]
    svg = (out / "timeline.svg").read_text() if (out / "timeline.svg").exists() else ""
    res.check(f"--load 10/s --for 8: a load alone, every request recorded ({len(j.get('requests', []))}/80)",
              p.returncode in (0, 1) and len(j.get("requests", [])) >= 76 and "Load only" in text,
              f"exit {p.returncode}: {text[-600:]} {err[-300:]}")
    res.check("--load: the PUT /chaos made from outside is in the journal, at its time, in words",
              status == 200 and any(a.get("service") == "shipment" and words in a.get("what", "")
                                    and 0 < a.get("t", 0) < 8 for a in outside), json.dumps(outside)[:600])
    res.check("--load: the picture draws the change from outside with its words",
              html.escape(words, quote=False) in svg or words in svg, svg[:300])
    res.check("--load: the runner said the change as it came",
              f"shipment (from outside): {words}" in text, text[-800:])
    empty = Path(tempfile.mkdtemp()) / "empty.json"
    empty.write_text(json.dumps({"title": "x", "load": {"seconds": 5}, "method": []}))
    r = subprocess.run([str(CHAOS["rel"]), str(empty), "--check"], capture_output=True, text=True, timeout=30)
    res.check('an experiment with "method": [] is accepted', r.returncode == 0, r.stdout + r.stderr)
    shutil.rmtree(empty.parent, ignore_errors=True)


def check_run_folders(res, stack, tmp):
    """Two runs of one experiment without --out: two time-stamped folders, latest names the second."""
    exp = tmp / "twice.json"
    exp.write_text(json.dumps({"title": "Twice", "load": {"rate": 5, "seconds": 5}, "hypothesis": {"window_s": 2},
                               "method": []}))
    cwd = tmp / "cwd"
    cwd.mkdir()
    outs = []
    for _ in range(2):
        stack.calm()
        argv = stack.runner_argv(exp, "-")
        i = argv.index("--out")
        del argv[i:i + 2]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=stack.runner_env(), cwd=cwd)
        m = re.search(r"journal and picture in (\S+)", r.stdout)
        outs.append(m.group(1) if m else None)
    runs = cwd / "build" / "chaos" / "twice"
    folders = sorted(d.name for d in runs.iterdir() if d.is_dir() and not d.is_symlink()) if runs.exists() else []
    latest = runs / "latest"
    res.check(f"two runs of one experiment leave two folders ({folders}), each with its journal and picture",
              len(folders) == 2 and all((runs / f / "journal.json").exists() and (runs / f / "timeline.svg").exists()
                                        for f in folders) and all(outs), str(outs))
    res.check("latest points at the second run",
              latest.is_symlink() and outs[1] and os.readlink(latest) == Path(outs[1]).name
              and (latest / "journal.json").exists(), f"{os.readlink(latest) if latest.is_symlink() else None} {outs}")


def check_control(res, stack, out_root):
    """The lab's controls: SIGHUP, --halt, --load and a folder per run."""
    tmp = Path(tempfile.mkdtemp())
    check_sighup(res, stack, out_root, tmp)
    check_halt(res, stack)
    check_load_only(res, stack, out_root)
    check_run_folders(res, stack, tmp)
    check_admin_origin(res, stack)
    shutil.rmtree(tmp, ignore_errors=True)


def admin_allow_origin(url, origin):
    """The Access-Control-Allow-Origin of an admin answer (DELETE /chaos with the token, on a
    calm stack: nothing to clear) to a page of origin; None when the service names none."""
    req = urllib.request.Request(url + "/chaos", method="DELETE",
                                 headers={"Authorization": f"Bearer {TOKEN}", "Origin": origin})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.headers.get("Access-Control-Allow-Origin")


def check_admin_origin(res, stack):
    """make run derives ADMIN_ALLOWED_ORIGIN from the ports it used (the classroom profile's
    "from-ports"): the dashboard served by order, on this stack's own port, may steer payment
    and shipment; a page on port 3000, which this stack does not use, may not."""
    own = f"http://127.0.0.1:{stack.ports[SERVICES[0]]}"
    got = {svc: admin_allow_origin(stack.urls[svc], own) for svc in SERVICES[1:]}
    res.check(f"make run allows the admin routes from order's own origin {own}", all(v == own for v in got.values()),
              str(got))
    other = {svc: admin_allow_origin(stack.urls[svc], "http://127.0.0.1:3000") for svc in SERVICES[1:]}
    res.check("and not from port 3000, which this stack does not use", not any(other.values()), str(other))


def check_ramp(res, stack, out_root):
    """A ramped load: the offered load rises as asked, goodput and p99 per second in the journal and the picture."""
    tmp = Path(tempfile.mkdtemp())
    exp = tmp / "ramp.json"
    exp.write_text(json.dumps({
        "title": "Ramp 10 to 60 requests a second", "load": {"rate": 10, "ramp_to": 60, "seconds": 10},
        "hypothesis": {"ok_ratio": 0.9, "p99_ms": 2000, "window_s": 2},
        "method": [{"at": 1, "within": 8, "expect": "goodput >= 20"},
                   {"at": 1, "within": 8, "expect": "goodput_ratio >= 0.9"},
                   {"at": 1, "within": 8, "expect": "p99_ms <= 2000"},
                   {"at": 1, "within": 8, "expect": "shed <= 0"}]}))
    out = out_root / "ramp"
    shutil.rmtree(out, ignore_errors=True)
    stack.calm()
    r = stack.chaos(exp, out)
    j = read_journal(out)
    per = j.get("per_second", [])
    asked = [10 + 50 * (t + 0.5) / 10 for t in range(10)]
    offered = [p.get("offered", 0) for p in per]
    res.check(f"ramp 10->60/s over 10 s: it ran and passed (exit {r.returncode}), {len(j.get('requests', []))} "
              "requests (350 asked)", r.returncode == 0 and 340 <= len(j.get("requests", [])) <= 350,
              r.stdout[-1500:] + r.stderr[-500:])
    res.check(f"ramp: each second's offered load is the ramp's rate within 15% ({offered} for "
              f"{[round(a, 1) for a in asked]})",
              len(per) == 10 and all(abs(o - a) <= 0.15 * a + 1 for o, a in zip(offered, asked))
              and offered[-1] > 3 * offered[0], json.dumps(per)[:800])
    res.check("ramp: goodput, shed and p99 of every second are in the journal",
              len(per) == 10 and all(isinstance(p.get("goodput"), int) and p.get("p99_ms") is not None
                                     and "shed" in p for p in per)
              and sum(p["goodput"] for p in per) > 0.9 * sum(offered), json.dumps(per)[:800])
    measures = {x.get("measure"): x for x in j.get("expectations", [])}
    res.check("ramp: the expectations on goodput, goodput_ratio, p99_ms and shed are measured and met",
              all(measures.get(m, {}).get("met") and measures[m].get("value") is not None
                  for m in ("goodput", "goodput_ratio", "p99_ms", "shed")), json.dumps(j.get("expectations"))[:800])
    svg = (out / "timeline.svg").read_text() if (out / "timeline.svg").exists() else ""
    panel = svg[svg.find('<g class="load-panel">'):]
    res.check("ramp: the picture has the load panel: offered, goodput and p99 lines, their legend and ticks",
              '<g class="load-panel">' in svg and all(f'class="{c}"' in panel for c in ("offered", "goodput", "p99"))
              and "offered (sent)" in panel and "goodput (2xx in time)" in panel and "p99 (ms)" in panel
              and panel.count('class="tick"') >= 4, panel[:600])
    res.check("ramp: the runner says the ramp as it starts",
              "load: a ramp from 10 to 60 requests a second over 10 s (350 requests, open loop)" in r.stdout,
              r.stdout[:800])
    bad = tmp / "bad-ramp.json"
    bad.write_text(json.dumps({"title": "bad", "load": {"rate": 10, "ramp_to": "fast", "seconds": 10}, "method": []}))
    b = subprocess.run(stack.runner_argv(bad, tmp / "bad-out"), capture_output=True, text=True, timeout=60,
                       env=stack.runner_env())
    res.check("a bad ramp exits 2 naming load.ramp_to, nothing run",
              b.returncode == 2 and "load.ramp_to" in b.stderr and not (tmp / "bad-out").exists(), b.stderr)
    bad.write_text(json.dumps({"title": "bad", "load": {"rate": "0.5x", "ramp_to": "4x", "seconds": 10}, "method": []}))
    b = subprocess.run([str(CHAOS["rel"]), str(bad), "--check"], capture_output=True, text=True, timeout=30)
    c = subprocess.run([str(CHAOS["rel"]), str(bad), "--check", "--capacity", "40"], capture_output=True, text=True,
                       timeout=30)
    res.check('rates "0.5x" and "4x" need a capacity: refused without one (naming load.rate), accepted with '
              "--capacity 40", b.returncode == 2 and "load.rate" in b.stderr and "capacity" in b.stderr
              and c.returncode == 0, b.stderr + c.stderr)
    for expect, code in (("goodput >= 80", 0), ("goodput_ratio >= 0.8", 0), ("p99_ms <= 250", 0),
                         ("shed <= 5", 0), ("goodness >= 80", 2)):
        exp.write_text(json.dumps({"title": "m", "load": {"rate": 10, "seconds": 10},
                                   "method": [{"at": 1, "within": 5, "expect": expect}]}))
        m = subprocess.run([str(CHAOS["rel"]), str(exp), "--check"], capture_output=True, text=True, timeout=30)
        res.check(f'--check {"accepts" if code == 0 else "refuses"} "{expect}"',
                  m.returncode == code and (code == 0 or "method[0].expect" in m.stderr), m.stdout + m.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


def read_journal(out):
    """The journal.json in out, or {} when there is none."""
    try:
        return json.loads((out / "journal.json").read_text())
    except (OSError, ValueError):
        return {}


def run_group(res, req, paths, args, out_root, with_runner_checks, traced=False):
    stack = StackRun(req, traced)
    try:
        breakers = []
        for svc in SERVICES:
            breakers += [b["name"] for b in call("GET", stack.urls[svc] + "/health")[1]["breakers"]]
        for path in paths:
            stack.calm()
            check_experiment(res, stack, path, out_root / path.stem, breakers)
        for path in paths:
            if path.stem in ASAN_RUNS:
                stack.calm()
                check_experiment(res, stack, path, out_root / f"asan-{path.stem}", breakers, "asan")
        if with_runner_checks and (not args.k or any("wrong" in k for k in args.k)):
            check_runner_failures(res, stack, out_root, breakers)
        if with_runner_checks and (not args.k or "premises" in args.k or "9-backoff" in args.k):
            check_premises(res, stack, out_root, any(p.stem == "9-backoff" for p in paths))
        if with_runner_checks and (not args.k or "control" in args.k):
            check_control(res, stack, out_root)
        if with_runner_checks and (not args.k or "ramp" in args.k):
            check_ramp(res, stack, out_root)
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
