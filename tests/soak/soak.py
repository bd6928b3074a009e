#!/usr/bin/env python3
"""soak.py -- a steady load through the chain while faults play, then every acknowledged write accounted for.

    python3 tests/soak/soak.py [--seconds 600] [--rate 20] [--clients 8]

Starts, as `make run` does, FerretDB over a private PostgreSQL and order ->
payment -> shipment (JUMPS=4, no injected errors), each service a process of
its own so that the faults can reach it. For --seconds (default 600; bounded
to 10..3600) it sends --rate chain requests a second (default 20, open loop,
at most --clients in flight), each with its own id, while this schedule plays,
once per cycle of about a minute (the short run of `make test` plays it once):

    shipment stopped (SIGSTOP) for 4 s, then resumed (SIGCONT)
    shipment killed (SIGKILL), started again 3 s later
    payment killed (SIGKILL), started again 3 s later
    the database (FerretDB) stopped, started again 5 s later

Then it reads every document from the database and checks:
  - every 2xx answer's documents exist, exactly once, with the outcome the
    answer reported for that hop (ok, last, degraded);
  - no request id is stored twice in a collection (no duplicates);
  - no document is "pending" (a hop writes once, its outcome included);
  - every non-2xx answer has a known cause (told by its status and text:
    the database unavailable with nothing stored, the database gone during
    a hop's work or the answer of its insert lost, a service shutting down,
    a deadline) and was sent while a
    fault of the schedule was on or within FAULT_TAIL_S after it ended; the
    summary lists each cause with its count and its fault, and anything
    else fails;
  - each service's RSS and open file descriptors, sampled every 2 s, stop
    growing after the warm-up: a process that lived two fault cycles or more
    (order, never killed) is held to a band (its last cycle's RSS peak within
    RSS_BAND_PCT % + RSS_BAND_MB of its second cycle's, 16 descriptors more)
    and fails when its peak still rises over its last four cycles; the
    one-cycle short run cannot tell growth from warm-up and holds each
    process to ceilings (RSS_CEILING_MB, FD_CEILING) instead.
Prints a summary table and PASS/FAIL lines, ending with "N passed, N failed,
N skipped"; exits 1 on any failure.
"""
import argparse
import concurrent.futures
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
import harness  # noqa: E402
from harness import Stack, wait_until  # noqa: E402

# What one service may use at most in the short soak (every worker thread with
# its stack touched, the pools full; set when THREADS was 1024 by default).
RSS_CEILING_MB = 300
FD_CEILING = 4096
COLLECTIONS = {"order": "orders", "payment": "payments", "shipment": "shipments"}
# A fault explains the non-2xx answers to requests sent from its start until
# this long after it ended: breakers reopen and probe (CB_RESET_TIMEOUT_MS
# 2 s, DB_CB_RESET_TIMEOUT_MS 1 s), a restarted process opens its pools, and
# a request already waiting may take its client's 15 s to give up.
FAULT_TAIL_S = 20.0
# The causes a non-2xx answer may have, told by its status and error text;
# each must fall in a fault's window.
CAUSES = [
    ("database unavailable: nothing stored", 503, r"is unavailable.*nothing was stored|circuit is open"),
    ("database went away during the work: this hop not stored, the next may be", 503,
     r"was not stored, but the next hop"),
    ("database lost the insert's answer: may be stored", 503, r"may be stored"),
    ("service shutting down", 503, r"is shutting down"),
    ("caller's deadline passed", 504, r"deadline"),
]
# How much a long-lived process's RSS may rise over the run: its last
# cycle's peak against the peak of its second cycle (the first is warm-up).
RSS_BAND_PCT, RSS_BAND_MB = 10, 3.0


def body(n: int) -> bytes:
    rid = f"soak-{n}"
    return json.dumps({"id": rid, "items": [], "payment": {
        "amount": n, "id": rid, "shipment": {"id": rid, "directions": "soak"}}}).encode()


def post(url: str, n: int, t0: float):
    """One chain request: (n, status, answer dict or None, error text, sent
    at, in seconds since t0)."""
    sent = time.monotonic() - t0
    n, status, answer, err = post_once(url, n)
    return n, status, answer, err, sent


def post_once(url: str, n: int):
    """One chain request: (n, status, answer dict or None, error text)."""
    req = urllib.request.Request(url, data=body(n), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            text = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    except OSError as e:
        return n, 0, None, str(e)
    try:
        return n, status, json.loads(text), ""
    except ValueError:
        return n, status, None, text[:200].decode(errors="replace")


def proc_stats(pid: int):
    """(RSS MB, open descriptors) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None


class Soak:
    def __init__(self, seconds, rate, clients):
        self.seconds, self.rate, self.clients = seconds, rate, clients
        self.results = {}
        self.sent = {}        # request -> when it was sent (s since t0)
        self.samples = {}     # (service, pid) -> [(t, rss, fds)]
        self.events = []      # (t, what)
        self.stop = threading.Event()
        self.checks = harness.Checks()
        self.t0 = 0.0
        self.rss_peaks = {}   # (service, pid) -> RSS peak of each cycle
        self.settled = (0.0, {})
        self.cycle = 60.0 if seconds >= 120 else seconds

    def check(self, name, ok, detail=""):
        return self.checks.check(name, ok, detail)

    def say(self, what):
        t = time.monotonic() - self.t0
        self.events.append((round(t, 1), what))
        print(f"soak {t:6.1f}s  {what}", flush=True)

    def start(self):
        os.environ.setdefault("FERRETDB_BACKEND", "postgresql")
        self.stack = Stack("rel")
        env = {"JUMPS": "4", "INJECT_ERR": "0", "CB_RESET_TIMEOUT_MS": "2000",
               "DB_CB_RESET_TIMEOUT_MS": "1000", "MONGO_TIMEOUT_MS": "1000", "LOG_LEVEL": "transitions"}
        self.db = self.stack.database()
        self.ship = self.stack.service("shipment", env=env)
        self.pay = self.stack.service("payment", env=env, chain=self.ship)
        self.order = self.stack.service("order", env=env, chain=self.pay)
        self.svcs = {"order": self.order, "payment": self.pay, "shipment": self.ship}

    def sampler(self):
        while not self.stop.wait(2.0):
            t = time.monotonic() - self.t0
            for name, svc in self.svcs.items():
                pid = svc.pid
                s = proc_stats(pid) if pid and svc.alive() else None
                if s:
                    self.samples.setdefault((name, pid), []).append((t, *s))

    def load(self):
        url = self.order.url("/create")
        n = 0
        end = self.t0 + self.seconds
        with concurrent.futures.ThreadPoolExecutor(self.clients) as pool:
            futures = []
            while time.monotonic() < end and not self.stop.is_set():
                due = self.t0 + n / self.rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                futures.append(pool.submit(post, url, n, self.t0))
                n += 1
            for f in futures:
                i, status, answer, err, sent = f.result()
                self.results[i] = (status, answer, err)
                self.sent[i] = sent

    def pause(self, s):
        self.stop.wait(s)

    def faults(self):
        cycle = self.cycle
        c = 0
        while not self.stop.is_set():
            base = self.t0 + c * cycle
            if base + cycle > self.t0 + self.seconds + 1:
                break
            steps = [
                (0.10, lambda: (self.say("SIGSTOP shipment"), os.kill(self.ship.pid, signal.SIGSTOP))),
                (0.10 + 4 / cycle, lambda: (self.say("SIGCONT shipment"), os.kill(self.ship.pid, signal.SIGCONT))),
                (0.30, lambda: (self.say("SIGKILL shipment"), self.ship.kill())),
                (0.30 + 3 / cycle, lambda: (self.say("start shipment"), self.ship.start())),
                (0.50, lambda: (self.say("SIGKILL payment"), self.pay.kill())),
                (0.50 + 3 / cycle, lambda: (self.say("start payment"), self.pay.start())),
                (0.70, lambda: (self.say("stop the database"), self.db.stop())),
                (0.70 + 5 / cycle, lambda: (self.say("start the database"), self.db.start())),
            ]
            for at, act in steps:
                wait = base + at * cycle - time.monotonic()
                if wait > 0:
                    self.pause(wait)
                if self.stop.is_set():
                    return
                act()
            c += 1

    def run(self):
        self.start()
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self.sampler, daemon=True),
                   threading.Thread(target=self.faults, daemon=True)]
        for t in threads:
            t.start()
        try:
            self.load()
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=60)
            for svc in (self.ship, self.pay):   # a fault cut short must not leave it stopped
                if svc.alive():
                    os.kill(svc.pid, signal.SIGCONT)
                else:
                    svc.start()
            if not self.db.alive():
                self.db.start()
        self.say(f"load done: {len(self.results)} requests")
        self.settle()
        self.account()

    def pending_counts(self):
        """Documents whose outcome is still "pending", per service."""
        return {svc: len(self.stack.find(coll, {"_meta.outcome": "pending"}))
                for svc, coll in COLLECTIONS.items()}

    def settle(self):
        """Counts the documents left "pending": a hop writes once, with its
        outcome, so there is nothing to wait for."""
        start = time.monotonic()
        left = self.pending_counts()
        self.settled = (time.monotonic() - start, left)
        self.say(f"pending outcomes: {left}")

    def fault_windows(self):
        """[(start, end, fault)]: each fault of the schedule, from its start to
        FAULT_TAIL_S after its end."""
        ends = {"SIGSTOP shipment": "SIGCONT shipment", "SIGKILL shipment": "start shipment",
                "SIGKILL payment": "start payment", "stop the database": "start the database"}
        windows = []
        for i, (t, what) in enumerate(self.events):
            if what in ends:
                end = next((u for u, w in self.events[i + 1:] if w == ends[what]), t + self.seconds)
                windows.append((t, end + FAULT_TAIL_S, what))
        return windows

    def explain(self):
        """{(cause, fault): count} for every non-2xx answer, the fault being
        the one whose window holds the request's sending (the latest to
        start), "none" when no fault does, and the cause "unexplained: ..."
        when no known cause matches its status and text."""
        windows = self.fault_windows()
        table = {}
        for n, (status, answer, err) in self.results.items():
            if 200 <= status < 300:
                continue
            text = (answer or {}).get("error", err) if isinstance(answer, dict) else err
            cause = next((name for name, st, rx in CAUSES if st == status and re.search(rx, str(text))),
                         None)
            if cause is None:
                shape = re.sub(r"[0-9a-f]{24}|[0-9]+", "#", str(text))[:90]
                cause = f"unexplained: {status or 'no answer'} {shape}"
            sent = self.sent.get(n, -1)
            held = [w for w in windows if w[0] <= sent <= w[1]]
            fault = max(held)[2] if held else "none"
            table[(cause, fault)] = table.get((cause, fault), 0) + 1
        return table

    def account(self):
        docs = {}
        for svc, coll in COLLECTIONS.items():
            docs[svc] = self.stack.find(coll)
        statuses = {}
        for status, _, _ in self.results.values():
            statuses[status] = statuses.get(status, 0) + 1
        lost, wrong, dup, pending_bad = [], [], [], []
        by_id = {svc: {} for svc in COLLECTIONS}
        by_rid = {svc: {} for svc in COLLECTIONS}
        for svc, ds in docs.items():
            for d in ds:
                i = d["_id"]["$oid"] if isinstance(d["_id"], dict) else str(d["_id"])
                by_id[svc][i] = d
                by_rid[svc].setdefault(d.get("id"), []).append(d)
        for svc in COLLECTIONS:
            dup += [f"{svc} {rid} x{len(v)}" for rid, v in by_rid[svc].items() if len(v) > 1]
        acked = set()   # (service, document id) answered 2xx
        checked = 0
        for n, (status, answer, err) in self.results.items():
            if not (200 <= status < 300) or not isinstance(answer, dict):
                continue
            hop = answer
            while isinstance(hop, dict):
                svc, doc, outcome = hop.get("service"), hop.get("document"), hop.get("status")
                if svc in by_id and doc:
                    acked.add((svc, doc))
                    checked += 1
                    d = by_id[svc].get(doc)
                    if d is None:
                        lost.append(f"{svc} {doc} (request soak-{n})")
                    elif d.get("_meta", {}).get("outcome") != outcome or d.get("id") != f"soak-{n}":
                        wrong.append(f"{svc} {doc}: stored {d.get('_meta', {}).get('outcome')}, "
                                     f"answered {outcome}")
                hop = hop.get("next")
        pending = {svc: 0 for svc in COLLECTIONS}
        for svc, ds in by_id.items():
            for i, d in ds.items():
                if d.get("_meta", {}).get("outcome") == "pending":
                    pending[svc] += 1
                    if (svc, i) in acked:
                        pending_bad.append(f"{svc} {i}")
        table = self.explain()
        unexplained = {k: c for k, c in table.items() if k[1] == "none" or k[0].startswith("unexplained")}
        print("\nsoak summary", flush=True)
        print(f"  requests {len(self.results)} at {self.rate}/s for {self.seconds:g}s; by status: "
              + ", ".join(f"{s or 'no answer'}: {c}" for s, c in sorted(statuses.items())))
        print("  every non-2xx answer, by cause and the fault whose window held it "
              f"(from its start to {FAULT_TAIL_S:g} s after its end):")
        for (cause, fault), n in sorted(table.items(), key=lambda kv: -kv[1]):
            print(f"  {n:6} x {cause:48} <- {fault}")
        if not table:
            print("       (none)")
        print(f"  documents checked against 2xx answers: {checked}; lost {len(lost)}, wrong outcome "
              f"{len(wrong)}, duplicated {len(dup)}; pending "
              + ", ".join(f"{s} {c}" for s, c in pending.items()))
        print("  faults: " + "; ".join(f"{t}s {w}" for t, w in self.events if "load done" not in w and "pending outcomes" not in w))
        print(f"  {'service':9} {'pid':>7} {'samples':>7} {'RSS MB start/mid/end':>24} {'fds start/mid/end':>20}")
        growth = []
        for (svc, pid), s in sorted(self.samples.items()):
            if len(s) < 3:
                continue
            a, m, z = s[0], s[len(s) // 2], s[-1]
            print(f"  {svc:9} {pid:>7} {len(s):>7} {a[1]:>8.1f}/{m[1]:.1f}/{z[1]:.1f}"
                  f"{a[2]:>12}/{m[2]}/{z[2]}")
            judged = self.growth(svc, pid, s)
            if judged:
                growth.append(judged)
        for (svc, pid), peaks in sorted(self.rss_peaks.items()):
            print(f"  {svc} pid {pid}: RSS peak per cycle (MB): {peaks}; band: the second's "
                  f"+{RSS_BAND_PCT}% +{RSS_BAND_MB:g} MB, and no rise over the last four")
        if not any(len(s) >= 12 for s in self.samples.values()):
            growth.append("no process was sampled long enough to judge")
        self.check(f"every request answered ({len(self.results)})", statuses.get(0, 0) == 0,
                   f"{statuses.get(0, 0)} without an answer")
        ok2xx = sum(c for s, c in statuses.items() if 200 <= s < 300)
        self.check(f"most requests answered 2xx ({ok2xx}/{len(self.results)})",
                   ok2xx >= 0.5 * len(self.results))
        self.check("every non-2xx answer has a known cause inside a fault's window",
                   not unexplained, f"unexplained: {unexplained}")
        self.check("no document left pending (each hop writes once, its outcome included)", not sum(pending.values()),
                   f"pending: {pending}")
        self.check("no acknowledged document lost", not lost, "; ".join(lost[:10]))
        self.check("every acknowledged document has the outcome answered", not wrong, "; ".join(wrong[:10]))
        self.check("no request stored twice", not dup, "; ".join(dup[:10]))
        self.check("no acknowledged document left pending", not pending_bad, "; ".join(pending_bad[:10]))
        self.check("memory and descriptors stop growing after warm-up" if self.seconds >= 2 * self.cycle
                   else "memory and descriptors under their ceilings (one cycle: growth is judged by make soak)",
                   not growth, "; ".join(growth))
        self.check("every fault of the schedule played",
                   sum(1 for _, w in self.events if w.startswith(("SIGSTOP", "SIGKILL", "stop the"))) >= 4)

    def growth(self, svc, pid, s):
        """Why process pid keeps growing, or "". Growth is told from warm-up
        only over two fault cycles or more: a process that lived that long
        (order, never killed, in `make soak`) is judged on its last cycle
        against its second (the first is warm-up: worker threads touch their
        stacks, pools fill to their bounds). A shorter run (the one-cycle soak
        of `make test`) cannot tell the two apart; there every process is held
        to ceilings instead: RSS_CEILING_MB and FD_CEILING."""
        cycle = self.cycle
        span = s[-1][0] - s[0][0]
        if span < 2 * cycle:
            rss, fds = max(x[1] for x in s), max(x[2] for x in s)
            if rss > RSS_CEILING_MB or fds > FD_CEILING:
                return f"{svc} pid {pid}: RSS {rss:.1f} MB (ceiling {RSS_CEILING_MB}), fds {fds} (ceiling {FD_CEILING})"
            return ""
        first = s[0][0]
        peaks = []    # (RSS, fds) peak of each whole cycle the process lived
        k = 0
        while first + (k + 1) * cycle <= s[-1][0] + 2.5:
            part = [x for x in s if first + k * cycle <= x[0] < first + (k + 1) * cycle]
            if part:
                peaks.append((max(x[1] for x in part), max(x[2] for x in part)))
            k += 1
        if len(peaks) < 2:
            return ""
        self.rss_peaks[(svc, pid)] = [round(p[0], 1) for p in peaks]
        (rss_mid, fd_mid), (rss_last, fd_last) = peaks[1], peaks[-1]
        band = rss_mid * (1 + RSS_BAND_PCT / 100) + RSS_BAND_MB
        if rss_last > band or fd_last > fd_mid + 16:
            return (f"{svc} pid {pid}: RSS {rss_mid:.1f}->{rss_last:.1f} MB (band {band:.1f}), "
                    f"fds {fd_mid}->{fd_last}")
        tail = [p[0] for p in peaks[-4:]]
        if len(peaks) >= 5 and all(b - a > 0.5 for a, b in zip(tail, tail[1:])):
            return f"{svc} pid {pid}: RSS still rising over its last cycles: {tail} MB"
        return ""

    def close(self):
        self.stack.close()
        for p in self.stack.problems:
            self.check("services exit cleanly", False, p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 20)))
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    if not 10 <= args.seconds <= 3600 or not 1 <= args.rate <= 500 or not 1 <= args.clients <= 64:
        ap.error("--seconds 10..3600, --rate 1..500, --clients 1..64")
    if not harness.DBTOOL.exists():
        print(f"SKIP: soak: {harness.DBTOOL} is not built\n0 passed, 0 failed, 1 skipped")
        return 0
    s = Soak(args.seconds, args.rate, args.clients)
    try:
        s.run()
    except Exception as e:   # a broken run is a failure with its reason, never a silent pass
        s.check("the soak runs to its end", False, repr(e))
    finally:
        s.close()
    print(s.checks.summary(), flush=True)
    return 1 if s.checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
