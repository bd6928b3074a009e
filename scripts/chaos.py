#!/usr/bin/env python3
"""chaos.py -- runs a chaos experiment file against a running stack: load, faults, expectations, a verdict and a timeline picture.

    scripts/chaos.py EXPERIMENT.json [--order URL] [--payment URL] [--shipment URL]
                     [--token T] [--out DIR]          (or: make chaos EXP=...)

The stack is `make run`'s or docker-compose's: base URLs from the flags or
ORDER_URL, PAYMENT_URL, SHIPMENT_URL (default http://127.0.0.1:3000..3002),
the admin token from --token or ADMIN_TOKEN (the classroom profile's is
"classroom"). While the experiment runs, an open-loop load sends `load.rate`
chain requests a second to order for `load.seconds`, recording each status,
latency, degraded reason and trace id, and every breaker event of the three
services is read from their /events.stream.

An experiment file (JSON; experiments/*.json are the shipped lessons):

    {"title": "...", "lesson": "what it teaches",
     "requires": {"CB_BACKOFF": "2"},        (optional: settings the stack must have)
     "load": {"rate": 10, "seconds": 20},
     "hypothesis": {"ok_ratio": 0.95, "p99_ms": 500, "breakers": "closed", "window_s": 3},
     "method": [
        {"at": 4, "action": "fault", "service": "shipment", "faults": {"error": {"fraction": 1}}},
        {"at": 4, "expect": "open", "breaker": "payment", "within": 5},
        {"at": 12, "action": "clear", "service": "shipment"},
        {"at": 12, "expect": "closed", "breaker": "payment", "within": 10}],
     "rollbacks": [{"action": "clear", "service": "shipment"}]}

hypothesis: checked over the first window_s seconds of load (before) and the
last window_s seconds (after): the share of answers that are 200 with the
whole chain, the p99 latency, and every breaker's state. Actions: fault (PUT
/chaos with "faults"), clear (DELETE /chaos), open / close (force a breaker;
"breaker": "<service>" for its chain breaker or "<service>/db" for its
database breaker), stop / resume (SIGSTOP / SIGCONT the process listening on
the service's port: `make run`'s stack), run ("command": a shell command, e.g.
`docker-compose stop shipment`). Expectations: the breaker is seen in the
state ("open", "half-open", "closed") within "within" seconds of "at".
Rollbacks always run: at the end, on a failure, on Ctrl-C.

Output: progress lines while it runs; the verdict, exit 0 when the hypothesis
held before and after and every expectation was met, else 1 (2: a bad file or
flag, named); in --out (default build/chaos/<experiment>): journal.json
(every action, probe, event and request, with times) and timeline.svg (a
band per breaker coloured by state, request outcomes and latency, actions as
vertical lines, expectations with their deadlines, met or missed).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

SERVICES = ("order", "payment", "shipment")
STATES = ("closed", "open", "half-open")
ACTIONS = ("fault", "clear", "open", "close", "stop", "resume", "run")
ROOT = Path(__file__).resolve().parents[1]


class BadExperiment(Exception):
    pass


# ---- the experiment file --------------------------------------------------------------------

def load_experiment(path: Path) -> dict:
    """Reads and checks the whole file; raises BadExperiment naming the line or field."""
    try:
        text = path.read_text()
    except OSError as e:
        raise BadExperiment(f"{path}: {e.strerror}")
    try:
        exp = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadExperiment(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}")
    where = str(path)

    def need(cond, field, what):
        if not cond:
            raise BadExperiment(f"{where}: {field}: {what}")

    need(isinstance(exp, dict), "(top)", "must be an object")
    known = {"title", "lesson", "requires", "load", "hypothesis", "method", "rollbacks"}
    for k in exp:
        need(k in known, k, f"unknown field; the fields are {', '.join(sorted(known))}")
    need(isinstance(exp.get("title"), str) and exp["title"], "title", "a non-empty string is required")
    req = exp.get("requires", {})
    need(isinstance(req, dict) and all(isinstance(v, str) for v in req.values()), "requires",
         "an object of the settings the stack must be started with, e.g. {\"CB_BACKOFF\": \"2\"}")
    load = exp.get("load", {})
    need(isinstance(load, dict), "load", "must be an object")
    rate, seconds = load.get("rate", 10), load.get("seconds", 20)
    need(isinstance(rate, (int, float)) and 1 <= rate <= 200, "load.rate", "a number in 1..200")
    need(isinstance(seconds, (int, float)) and 5 <= seconds <= 600, "load.seconds", "a number in 5..600")
    exp["load"] = {"rate": float(rate), "seconds": float(seconds)}
    hyp = exp.get("hypothesis", {})
    need(isinstance(hyp, dict), "hypothesis", "must be an object")
    for k in hyp:
        need(k in ("ok_ratio", "p99_ms", "breakers", "window_s"), f"hypothesis.{k}", "unknown probe")
    need(0 <= hyp.get("ok_ratio", 0.9) <= 1, "hypothesis.ok_ratio", "a number in 0..1")
    need(isinstance(hyp.get("p99_ms", 1000), (int, float)) and hyp.get("p99_ms", 1000) > 0,
         "hypothesis.p99_ms", "a positive number")
    need(hyp.get("breakers", "closed") in STATES, "hypothesis.breakers", f"one of {STATES}")
    need(isinstance(hyp.get("window_s", 3), (int, float)) and 1 <= hyp.get("window_s", 3) <= seconds / 2,
         "hypothesis.window_s", "a number of seconds, at most half the load")
    exp["hypothesis"] = {"ok_ratio": hyp.get("ok_ratio", 0.9), "p99_ms": hyp.get("p99_ms", 1000),
                         "breakers": hyp.get("breakers", "closed"), "window_s": hyp.get("window_s", 3)}
    steps = exp.get("method", [])
    need(isinstance(steps, list) and steps, "method", "a non-empty list of steps")
    for i, s in enumerate(steps):
        check_step(s, f"method[{i}]", seconds, need, in_method=True)
    rb = exp.get("rollbacks", [])
    need(isinstance(rb, list), "rollbacks", "a list of actions")
    for i, s in enumerate(rb):
        check_step(s, f"rollbacks[{i}]", seconds, need, in_method=False)
    return exp


def check_step(s, field, seconds, need, in_method):
    need(isinstance(s, dict), field, "must be an object")
    if in_method:
        at = s.get("at")
        need(isinstance(at, (int, float)) and 0 <= at < seconds, f"{field}.at",
             f"seconds from the start of the load, in 0..{seconds:g}")
    if "expect" in s:
        need(in_method, f"{field}.expect", "expectations belong in method")
        need(s["expect"] in STATES, f"{field}.expect", f"one of {STATES}")
        need(isinstance(s.get("within"), (int, float)) and s["within"] > 0, f"{field}.within",
             "seconds, a positive number")
        breaker_ref(s.get("breaker"), f"{field}.breaker", need)
        for k in s:
            need(k in ("at", "expect", "breaker", "within", "why"), f"{field}.{k}", "unknown field")
        return
    a = s.get("action")
    need(a in ACTIONS, f"{field}.action", f"one of {', '.join(ACTIONS)} (or an expect step)")
    allowed = {"at", "action", "why"}
    if a in ("fault", "clear", "stop", "resume"):
        need(s.get("service") in SERVICES, f"{field}.service", f"one of {', '.join(SERVICES)}")
        allowed.add("service")
    if a == "fault":
        need(isinstance(s.get("faults"), dict) and s["faults"], f"{field}.faults",
             "an object of faults, as PUT /chaos takes")
        allowed.add("faults")
    if a in ("open", "close"):
        breaker_ref(s.get("breaker"), f"{field}.breaker", need)
        allowed.add("breaker")
    if a == "run":
        need(isinstance(s.get("command"), str) and s["command"], f"{field}.command", "a shell command")
        allowed.add("command")
    for k in s:
        need(k in allowed, f"{field}.{k}", f"unknown field for action {a}")


def breaker_ref(ref, field, need):
    need(isinstance(ref, str) and re.fullmatch(r"(order|payment|shipment)(/db)?", ref or ""), field,
         "\"<service>\" (its chain breaker) or \"<service>/db\" (its database breaker)")


# ---- the run --------------------------------------------------------------------------------

def http(method, url, body=None, token=None, timeout=5.0):
    """(status, parsed JSON or text, headers); status 0 when no answer came."""
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    except OSError as e:
        return 0, str(e), {}
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode(errors="replace"), hdrs


def plain(state):
    """A breaker state without "forced-": a circuit forced open is open."""
    return state[7:] if isinstance(state, str) and state.startswith("forced-") else state


def hops(answer):
    out = []
    while isinstance(answer, dict) and len(out) < 8:
        out.append(answer)
        answer = answer.get("next")
    return out


class Run:
    def __init__(self, exp, urls, token, out: Path):
        self.exp, self.urls, self.token, self.out = exp, urls, token, out
        self.t0 = None
        self.wall0 = None
        self.lock = threading.Lock()
        self.requests, self.events, self.actions, self.probes = [], [], [], []
        self.states = {}          # breaker name -> [(t, state)]
        self.names = {}           # "payment" / "payment/db" -> breaker name
        self.stop = threading.Event()
        self.expectations = []

    def t(self):
        return time.monotonic() - self.t0

    def say(self, msg):
        print(f"chaos {self.t():6.1f}s  {msg}" if self.t0 else f"chaos  {msg}", flush=True)

    # -- what the stack says
    def discover(self):
        for svc in SERVICES:
            st, h, _ = http("GET", self.urls[svc] + "/health")
            if st == 0:
                raise BadExperiment(f"{svc} does not answer at {self.urls[svc]} ({h}); start the stack "
                                    f"(make run) or give --{svc}")
            if not isinstance(h, dict):
                raise BadExperiment(f"{svc}: /health answered {st} without JSON")
            for b in h.get("breakers", []):
                ref = f"{svc}/db" if b["name"].endswith("->mongodb") else svc
                self.names[ref] = b["name"]
                self.states[b["name"]] = [(0.0, b["state"])]

    def note_state(self, name, state, t=None):
        with self.lock:
            band = self.states.setdefault(name, [])
            if not band or band[-1][1] != state:
                band.append((self.t() if t is None else t, state))

    def stream(self, svc):
        """Reads svc's /events.stream; every breaker event goes to the journal and the bands."""
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.urls[svc] + "/events.stream", timeout=3) as r:
                    kind = None
                    for raw in r:
                        if self.stop.is_set():
                            return
                        line = raw.decode(errors="replace").rstrip("\n")
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: ") and kind == "breaker":
                            ev = json.loads(line[6:])
                            if ev.get("time", 0) < self.wall0:
                                continue      # the feed's history, from before this run
                            t = self.t()
                            with self.lock:
                                self.events.append(dict(ev, t=round(t, 3)))
                            if ev.get("event") in ("open", "halfOpen", "close"):
                                self.note_state(ev["breaker"], ev["state"], t)
                        elif not line:
                            kind = None
            except (OSError, ValueError):
                self.stop.wait(0.2)

    def poll(self):
        """Reads every breaker's state from /health four times a second (the bands between events)."""
        while not self.stop.wait(0.25):
            for svc in SERVICES:
                st, h, _ = http("GET", self.urls[svc] + "/health", timeout=2)
                if isinstance(h, dict):
                    for b in h.get("breakers", []):
                        self.note_state(b["name"], b["state"])

    def one_request(self, n):
        body = {"id": f"chaos-{n}", "items": [], "payment": {"amount": 1, "id": f"chaos-{n}",
                "shipment": {"id": f"chaos-{n}", "directions": "lab"}}}
        start = self.t()
        st, a, hdrs = http("POST", self.urls["order"] + "/create", body, timeout=10)
        hs = hops(a)
        degraded = next((h for h in hs if h.get("status") == "degraded"), None)
        whole = st == 200 and hs and hs[-1].get("status") == "last" and not degraded
        rec = {"n": n, "t": round(start, 3), "ms": round((self.t() - start) * 1000, 1), "status": st,
               "whole": bool(whole),
               "degraded": f"{degraded['service']}:{degraded.get('reason')}" if degraded else None,
               "trace": (a.get("trace") if isinstance(a, dict) else None) or hdrs.get("X-Request-Id")}
        with self.lock:
            self.requests.append(rec)

    def load(self):
        rate, seconds = self.exp["load"]["rate"], self.exp["load"]["seconds"]
        threads, n = [], 0
        while not self.stop.is_set() and n < rate * seconds:
            due = n / rate
            if due > self.t():
                self.stop.wait(due - self.t())
            th = threading.Thread(target=self.one_request, args=(n,), daemon=True)
            th.start()
            threads.append(th)
            threads = [x for x in threads if x.is_alive()]
            n += 1
        for th in threads:
            th.join(timeout=15)

    # -- actions
    def port_pid(self, svc):
        port = int(self.urls[svc].rsplit(":", 1)[1].split("/")[0])
        inodes = set()
        for f in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                for line in open(f).read().splitlines()[1:]:
                    p = line.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(p[9])
            except OSError:
                pass
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        return int(pid)
            except OSError:
                continue
        raise RuntimeError(f"no process of this machine listens on {svc}'s port {port} "
                           "(stop/resume act on make run's stack; use a run action for containers)")

    def act(self, s, phase):
        a = s["action"]
        rec = {"t": round(self.t(), 3) if self.t0 else 0.0, "phase": phase, "action": a,
               "service": s.get("service"), "breaker": s.get("breaker"), "why": s.get("why")}
        try:
            if a == "fault":
                st, r, _ = http("PUT", self.urls[s["service"]] + "/chaos", s["faults"], self.token)
            elif a == "clear":
                st, r, _ = http("DELETE", self.urls[s["service"]] + "/chaos", None, self.token)
            elif a in ("open", "close"):
                svc = s["breaker"].split("/")[0]
                name = self.names.get(s["breaker"], "")
                st, r, _ = http("POST", f"{self.urls[svc]}/breaker/{a}?name={urllib.parse.quote(name)}",
                                None, self.token)
            elif a in ("stop", "resume"):
                pid = self.port_pid(s["service"])
                os.kill(pid, signal.SIGSTOP if a == "stop" else signal.SIGCONT)
                st, r = 200, f"{'SIGSTOP' if a == 'stop' else 'SIGCONT'} to pid {pid}"
            else:
                p = subprocess.run(s["command"], shell=True, capture_output=True, text=True, timeout=120)
                st, r = (200 if p.returncode == 0 else 500), (p.stdout + p.stderr)[-500:]
            ok = 200 <= st < 300
            rec.update(ok=ok, status=st, answer=r if isinstance(r, (dict, str)) else str(r))
        except Exception as e:   # an action that cannot run is a failed action, said plainly
            ok = False
            rec.update(ok=False, status=0, answer=str(e))
        with self.lock:
            self.actions.append(rec)
        what = f"{a} {s.get('service') or s.get('breaker') or s.get('command', '')}"
        self.say(f"{phase}: {what}: {'done' if ok else 'FAILED: ' + str(rec['answer'])[:200]}")
        return ok

    # -- probes
    def hypothesis(self, when):
        h = self.exp["hypothesis"]
        w = h["window_s"]
        seconds = self.exp["load"]["seconds"]
        lo, hi = (0.0, w) if when == "before" else (seconds - w, seconds)
        with self.lock:
            reqs = [r for r in self.requests if lo <= r["t"] < hi]
            states = {name: band[-1][1] for name, band in self.states.items()} if when == "after" else \
                {name: next((s for t, s in reversed(band) if t <= hi), band[0][1])
                 for name, band in self.states.items()}
        lat = sorted(r["ms"] for r in reqs)
        ok = sum(r["whole"] for r in reqs) / len(reqs) if reqs else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("inf")
        bad = {n: s for n, s in states.items() if plain(s) != h["breakers"]}
        res = {"when": when, "window": [lo, hi], "requests": len(reqs), "ok_ratio": round(ok, 3),
               "p99_ms": p99, "states": states,
               "ok": bool(reqs) and ok >= h["ok_ratio"] and p99 <= h["p99_ms"] and not bad}
        self.probes.append(res)
        self.say(f"hypothesis {when}: {'held' if res['ok'] else 'NOT held'}: whole answers "
                 f"{ok:.0%} (>= {h['ok_ratio']:.0%}), p99 {p99:.0f} ms (<= {h['p99_ms']} ms), "
                 f"breakers {'all ' + h['breakers'] if not bad else bad}")
        return res["ok"]

    def judge_expectations(self):
        for e in self.expectations:
            name = self.names.get(e["breaker"], e["breaker"])
            band = self.states.get(name, [])
            lo, hi = e["at"], e["at"] + e["within"]
            state_at_lo = next((s for t, s in reversed(band) if t <= lo), band[0][1] if band else None)
            hits = [t for t, s in band if lo <= t <= hi and plain(s) == e["expect"]]
            e["met_at"] = hits[0] if hits else (lo if plain(state_at_lo) == e["expect"] else None)
            e["met"] = e["met_at"] is not None
            e["name"] = name

    def run(self):
        self.discover()
        method = sorted(self.exp["method"], key=lambda s: s["at"])
        self.t0 = time.monotonic()
        self.wall0 = time.time() * 1000 - 50
        workers = [threading.Thread(target=self.stream, args=(s,), daemon=True) for s in SERVICES]
        workers.append(threading.Thread(target=self.poll, daemon=True))
        loader = threading.Thread(target=self.load, daemon=True)
        for w in workers + [loader]:
            w.start()
        self.say(f"{self.exp['title']}: load {self.exp['load']['rate']:g}/s for "
                 f"{self.exp['load']['seconds']:g} s")
        if self.exp.get("requires"):
            self.say("this experiment needs a stack started with " +
                     " ".join(f"{k}={v}" for k, v in self.exp["requires"].items()))
        aborted = None
        try:
            for s in method:
                if s["at"] > self.t():
                    nxt = (f"expect {s['breaker']} {s['expect']} within {s['within']} s" if "expect" in s
                           else f"{s['action']} {s.get('service') or s.get('breaker') or ''}")
                    self.say(f"next at {s['at']:g} s: {nxt}")
                    if self.stop.wait(s["at"] - self.t()):
                        break
                if "expect" in s:
                    self.expectations.append(dict(s))
                elif not self.act(s, "method"):
                    aborted = f"action {s['action']} at {s['at']} s failed"
                    break
            while loader.is_alive():
                loader.join(0.5)
        except KeyboardInterrupt:
            aborted = "interrupted (Ctrl-C)"
            self.say(aborted)
        finally:
            for s in self.exp.get("rollbacks", []):
                self.act(s, "rollback")
            self.stop.set()
            loader.join(timeout=15)
        self.judge_expectations()
        before, after = self.hypothesis("before"), self.hypothesis("after")
        for e in self.expectations:
            self.say(f"expectation: {e['breaker']} ({e['name']}) {e['expect']} within {e['within']} s "
                     f"of {e['at']:g} s: " + (f"met at {e['met_at']:.1f} s" if e["met"] else "MISSED"))
        ok = before and after and all(e["met"] for e in self.expectations) and not aborted
        self.write(ok, before, after, aborted)
        self.say(f"verdict: {'PASSED' if ok else 'FAILED'}"
                 + (f" ({aborted})" if aborted else "") + f"; journal and picture in {self.out}")
        return ok

    def write(self, ok, before, after, aborted):
        self.out.mkdir(parents=True, exist_ok=True)
        journal = {"title": self.exp["title"], "lesson": self.exp.get("lesson"), "urls": self.urls,
                   "verdict": {"passed": ok, "hypothesis_before": before, "hypothesis_after": after,
                               "aborted": aborted},
                   "breakers": self.names, "states": self.states, "actions": self.actions,
                   "expectations": self.expectations, "probes": self.probes, "events": self.events,
                   "requests": sorted(self.requests, key=lambda r: r["n"])}
        (self.out / "journal.json").write_text(json.dumps(journal, indent=1))
        (self.out / "timeline.svg").write_text(svg(journal, self.exp["load"]["seconds"]))


# ---- the picture ----------------------------------------------------------------------------

COLOURS = {"closed": "#2e9d4f", "open": "#d33b2c", "half-open": "#f0a020"}


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def svg(j, seconds):
    W, left, right = 1180, 270, 20
    names = list(j["breakers"].items())
    band_h, top = 26, 96
    lat_top = top + len(names) * (band_h + 8) + 30
    lat_h = 160
    out_top = lat_top + lat_h + 30
    H = out_top + 40 + 70 + 20 * len(j["expectations"])
    span = W - left - right
    X = lambda t: left + max(0.0, min(t, seconds)) / seconds * span
    reqs = j["requests"]
    max_ms = max([r["ms"] for r in reqs] + [100])
    Y = lambda ms: lat_top + lat_h - min(ms, max_ms) / max_ms * lat_h
    p = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
         f'font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{left}" y="24" font-size="17" font-weight="bold">{esc(j["title"])}</text>',
         f'<text x="{left}" y="44" fill="#444">verdict: '
         f'{"PASSED" if j["verdict"]["passed"] else "FAILED"}; hypothesis before '
         f'{"held" if j["verdict"]["hypothesis_before"] else "NOT held"}, after '
         f'{"held" if j["verdict"]["hypothesis_after"] else "NOT held"}; '
         f'{len(reqs)} requests</text>']
    for i, (ref, name) in enumerate(names):
        y = top + i * (band_h + 8)
        p.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{esc(name)}</text>')
        band = j["states"].get(name, [[0, "closed"]])
        for k, (t, s) in enumerate(band):
            t1 = band[k + 1][0] if k + 1 < len(band) else seconds
            p.append(f'<rect x="{X(t):.1f}" y="{y}" width="{max(1.0, X(t1) - X(t)):.1f}" height="{band_h}" '
                     f'fill="{COLOURS.get(plain(s), "#999")}"><title>{esc(name)} {s} from {t:.1f} s</title></rect>')
    # latency, coloured by outcome
    p.append(f'<text x="{left - 8}" y="{lat_top + 12}" text-anchor="end">latency (ms)</text>')
    p.append(f'<text x="{left - 8}" y="{lat_top + 28}" text-anchor="end" fill="#666">max {max_ms:.0f}</text>')
    p.append(f'<rect x="{left}" y="{lat_top}" width="{span}" height="{lat_h}" fill="none" stroke="#ccc"/>')
    for r in reqs:
        colour = "#2e9d4f" if r["whole"] else "#f0a020" if r["status"] == 200 else "#d33b2c"
        p.append(f'<circle cx="{X(r["t"]):.1f}" cy="{Y(r["ms"]):.1f}" r="2.2" fill="{colour}"/>')
    # outcome strip
    p.append(f'<text x="{left - 8}" y="{out_top + 14}" text-anchor="end">answers</text>')
    for r in reqs:
        colour = "#2e9d4f" if r["whole"] else "#f0a020" if r["status"] == 200 else "#d33b2c"
        p.append(f'<rect x="{X(r["t"]):.1f}" y="{out_top}" width="2" height="20" fill="{colour}"/>')
    # time axis
    ax = out_top + 34
    for s in range(0, int(seconds) + 1, max(1, int(seconds) // 10)):
        p.append(f'<line x1="{X(s):.1f}" y1="{top - 6}" x2="{X(s):.1f}" y2="{ax - 8}" stroke="#eee"/>')
        p.append(f'<text x="{X(s):.1f}" y="{ax + 4}" text-anchor="middle" fill="#444">{s} s</text>')
    # actions
    for a in j["actions"]:
        x = X(a["t"]) if a["phase"] == "method" else X(seconds)
        label = f'{a["action"]} {a.get("service") or a.get("breaker") or ""}'.strip()
        p.append(f'<line x1="{x:.1f}" y1="{top - 12}" x2="{x:.1f}" y2="{ax - 8}" stroke="#333" '
                 f'stroke-dasharray="4 3"/>')
        if a["phase"] == "method":
            p.append(f'<text x="{x + 3:.1f}" y="{top - 14}" fill="#333">{esc(label)}</text>')
    # expectations
    ey = ax + 24
    p.append(f'<text x="{left}" y="{ey}" font-weight="bold">expectations</text>')
    for k, e in enumerate(j["expectations"]):
        y = ey + 14 + k * 20
        colour = "#2e9d4f" if e["met"] else "#d33b2c"
        x0, x1 = X(e["at"]), X(e["at"] + e["within"])
        p.append(f'<line x1="{x0:.1f}" y1="{y}" x2="{x1:.1f}" y2="{y}" stroke="{colour}" stroke-width="4"/>')
        p.append(f'<line x1="{x1:.1f}" y1="{y - 7}" x2="{x1:.1f}" y2="{y + 7}" stroke="{colour}" stroke-width="2"/>')
        if e["met"]:
            p.append(f'<circle cx="{X(e["met_at"]):.1f}" cy="{y}" r="5" fill="{colour}"/>')
        p.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" fill="{colour}">'
                 f'{esc(e["breaker"])} {esc(e["expect"])} within {e["within"]:g} s: '
                 f'{"met" if e["met"] else "MISSED"}</text>')
    for k, (label, colour) in enumerate((("breaker closed / whole answer", "#2e9d4f"),
                                          ("half-open / degraded answer", "#f0a020"),
                                          ("open / error answer", "#d33b2c"))):
        p.append(f'<rect x="{left + k * 220}" y="{top - 42}" width="10" height="10" fill="{colour}"/>')
        p.append(f'<text x="{left + k * 220 + 14}" y="{top - 33}" font-size="11">{label}</text>')
    p.append("</svg>")
    return "\n".join(p) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment")
    for i, svc in enumerate(SERVICES):
        ap.add_argument(f"--{svc}", default=os.environ.get(f"{svc.upper()}_URL",
                                                           f"http://127.0.0.1:{3000 + i}"))
    ap.add_argument("--token", default=os.environ.get("ADMIN_TOKEN", ""))
    ap.add_argument("--out", default=None)
    ap.add_argument("--check", action="store_true", help="check the file and exit")
    args = ap.parse_args()
    path = Path(args.experiment)
    try:
        exp = load_experiment(path)
        if args.check:
            print(f"chaos: {path}: ok")
            return 0
        urls = {s: getattr(args, s).rstrip("/") for s in SERVICES}
        for s, u in urls.items():
            if not re.fullmatch(r"https?://[^/\s]+:\d+", u):
                raise BadExperiment(f"--{s}: expected http://host:port, got {u!r}")
        out = Path(args.out) if args.out else ROOT / "build" / "chaos" / path.stem
        run = Run(exp, urls, args.token, out)
        return 0 if run.run() else 1
    except BadExperiment as e:
        print(f"chaos: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
