"""test_run.py -- integration tests of make run (scripts/run.sh): its supervisor and the database watchdog.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test


@test
def make_run_restarts_killed_processes_and_loses_no_acknowledged_write(ctx):
    run = RunSh(ctx)
    load = None
    try:
        load = ChainLoad(run.url("order", "/create"), rate=20)
        wait_until(lambda: len(load.answers) >= 40, 20, "two seconds of load answered")
        took = {}
        for name in ("ferretdb", "payment", "shipment"):
            took[name] = kill_and_time_recovery(run, name)
            time.sleep(1.0)     # a second of load through the recovered stack before the next kill
        answers = load.stop()
        load = None
        print("    after SIGKILL (20 POST/s), answering again / the chain whole: " +
              ", ".join(f"{n} {back:.1f} / {whole:.1f} s" for n, (back, whole) in took.items()))
        status = run.status()
        for name in ("ferretdb", "payment", "shipment"):
            p = status.get("processes", {}).get(name, {})
            expect(p.get("restarts") == 1 and p.get("last_exit") == "signal KILL" and p.get("state") == "running",
                   f"status.json's {name}: {p}")
            expect(re.search(rf"\[run\] {name} exited: signal KILL, after [0-9.]+ s up; restarting in 0\.5 s",
                             run.log()), f"no exit line for {name} in run.log")
            expect(f"[run] {name} restarted (pid {run.pid(name)}, restart #1)" in run.log(),
                   f"no restart line for {name} in run.log")
        for name in ("order", "postgres"):
            expect(status["processes"][name]["restarts"] == 0, f"{name} restarted: {status['processes'][name]}")
        health = http("GET", run.url("payment", "/health")).json()
        expect(health.get("supervisor", {}).get("processes", {}).get("payment", {}).get("restarts") == 1,
               f"/health's supervisor: {health.get('supervisor')}")
        # nothing acknowledged lost: every document a 200 answer names is stored
        ok = [b for st, b in answers if st == 200 and b]
        named = {"orders": set(), "payments": set(), "shipments": set()}
        for b in ok:
            for coll in ("orders", "payments", "shipments"):
                if isinstance(b, dict) and b.get("document"):
                    named[coll].add(b["document"])
                b = b.get("next") if isinstance(b, dict) else None
        missing = {c: sorted(ids - stored_ids(run, c)) for c, ids in named.items()}
        print(f"    {len(answers)} requests, {len(ok)} answered 200, naming "
              f"{sum(len(v) for v in named.values())} documents; missing: "
              f"{sum(len(v) for v in missing.values())}")
        expect(len(answers) >= 100 and len(named["orders"]) >= 50,
               f"too little load went through: {len(answers)} requests, {len(ok)} answered 200")
        expect(not any(missing.values()), f"acknowledged documents missing: "
               f"{ {c: v[:5] for c, v in missing.items() if v} }")
    finally:
        if load:
            load.stop()
        run.close()


@test
def make_run_watchdog_restarts_a_database_that_stops_answering(ctx):
    run = RunSh(ctx)
    try:
        old = run.pid("ferretdb")
        start = time.monotonic()
        os.kill(old, signal.SIGSTOP)        # alive, and answering nothing
        wait_until(lambda: run.pid("ferretdb", "ready") not in (None, old), WATCHDOG_LIMIT_S,
                   "the watchdog to kill the stopped FerretDB and the supervisor to bring it back")
        back = time.monotonic() - start
        wait_until(run.chain_whole, RECOVERY_LIMIT_S, "the chain whole after the watchdog's restart")
        whole = time.monotonic() - start
        print(f"    FerretDB SIGSTOPped: back {back:.1f} s later, the chain whole {whole:.1f} s later "
              f"(bound: 3 misses x (2 s + 2 s) = 12 s, then the restart)")
        log = run.log()
        expect(f"[run] watchdog: ferretdb (pid {old}) did not answer a ping within 2 s (3 of 3)" in log
               and f"[run] watchdog: ferretdb (pid {old}) is alive but not answering: killing it (SIGKILL)" in log,
               f"no watchdog lines in run.log: {log[-1500:]}")
        expect(re.search(r"\[run\] ferretdb exited: signal KILL \(killed by the watchdog: no answer to 3 pings", log),
               "no exit line naming the watchdog")
        p = run.status()["processes"]["ferretdb"]
        expect(p["restarts"] == 1 and p["watchdog_kills"] == 1 and "watchdog" in p["last_exit"],
               f"status.json's ferretdb: {p}")
        sup = http("GET", run.url("order", "/health")).json().get("supervisor", {})
        expect(sup.get("processes", {}).get("ferretdb", {}).get("watchdog_kills") == 1
               and sup.get("watchdog", {}).get("misses") == 3, f"/health's supervisor: {sup}")
        for name in ("shipment", "payment", "order"):
            h = http("GET", run.url(name, "/health"))
            expect(h.status == 200 and h.json()["database"]["reachable"], f"{name}'s /health: {h}")
    finally:
        run.close()


@test
def make_run_stops_every_process_on_sigint(ctx):
    run = RunSh(ctx)
    try:
        pids = {n: run.pid(n) for n in RUN_PROCESSES}
        expect(all(pids.values()), f"a pid file is missing: {pids}")
        start = time.monotonic()
        run.proc.send_signal(signal.SIGINT)
        rc = run.proc.wait(timeout=60)
        took = time.monotonic() - start

        def gone(pid):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            # a zombie is gone but for its parent's wait
            try:
                return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
            except OSError:
                return True
        wait_until(lambda: all(gone(p) for p in pids.values()), 10, f"every process gone: {pids}")
        print(f"    SIGINT: run.sh exited {rc} after {took:.1f} s, every process gone")
        expect(rc == 0, f"run.sh exited {rc}")
        log = run.log()
        expect(log.rstrip().endswith("[run] stopped") and not re.search(r"\[run\] \w+ (exited|restarted)", log),
               f"run.log's end: {log[-800:]}")
        for port in run.ports.values():
            expect(not harness.port_open(port), f"port {port} still answers")
    finally:
        run.close()
