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


def _jaeger_built():
    """Skips unless scripts/jaeger.sh has built Jaeger and Debian's prometheus is installed."""
    r = subprocess.run([str(ROOT / "scripts" / "jaeger.sh"), "path"], capture_output=True, text=True)
    if r.returncode != 0:
        raise Skip("Jaeger is not built (scripts/jaeger.sh build; scripts/setup.sh builds it)")
    if not shutil.which("prometheus"):
        raise Skip("Debian's prometheus is not installed (scripts/setup.sh installs it)")


def _gone(pid):
    """True when process pid has exited (a zombie is gone but for its parent's wait)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _otlp_span(trace_id, span_id, service):
    """One server span of service in OTLP/HTTP JSON, ending now."""
    end = time.time_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test_run"}, "spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "POST /create", "kind": 2,
            "startTimeUnixNano": str(end - 2_000_000), "endTimeUnixNano": str(end)}]}]}]}


@test
def make_run_with_traces_and_metrics_starts_jaeger_and_prometheus_and_wires_the_services(ctx):
    _jaeger_built()
    run = RunSh(ctx, traces=True, metrics=True)
    try:
        wait_until(lambda: "Ctrl-C stops everything" in run.log(), 60, "run.sh's last line at start")
        log = run.log()
        jaeger, otlp, prom = (f"http://127.0.0.1:{run.ports[n]}" for n in ("jaeger", "jaeger_otlp", "prometheus"))
        expect(f"[run] jaeger    {jaeger}/" in log and f"OTLP/HTTP on 127.0.0.1:{run.ports['jaeger_otlp']}" in log,
               f"no Jaeger URL in run.log: {log[-1500:]}")
        expect(f"[run] prometheus {prom}/" in log, f"no Prometheus URL in run.log: {log[-1500:]}")
        rules = ROOT / "scripts" / "prometheus" / "rules.yml"
        said = ("[run] prometheus: rules from scripts/prometheus/rules.yml" if rules.exists() else
                "[run] prometheus: scripts/prometheus/rules.yml is missing: Prometheus runs with no "
                "alerting or recording rules")
        expect(said in log, f"run.log does not say {said!r}")
        # each service got the tracing settings: its process's environment
        for name in ("order", "payment", "shipment"):
            env = run.environ(name)
            want = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_SERVICE_NAME": name, "TRACES_QUERY_URL": jaeger}
            got = {k: env.get(k) for k in want}
            expect(got == want, f"{name}'s environment (pid {run.pid(name)}): {got}, wanted {want}")
        status = run.status().get("processes", {})
        for name in ("jaeger", "prometheus"):
            expect(status.get(name, {}).get("state") == "running" and status[name].get("pid") == run.pid(name),
                   f"status.json's {name}: {status.get(name)}")
        # Jaeger: its query API answers, a span sent to its OTLP receiver comes back by its trace id,
        # and the dashboard's origin (order's port) may read it from another origin (CORS)
        r = http("GET", jaeger + "/api/services")
        expect(r.status == 200 and "data" in r.json(), f"Jaeger's /api/services: {r}")
        trace_id = os.urandom(16).hex()
        r = http("POST", otlp + "/v1/traces", _otlp_span(trace_id, os.urandom(8).hex(), "order"))
        expect(r.status == 200, f"OTLP/HTTP POST /v1/traces: {r}")
        dashboard = f"http://localhost:{run.ports['order']}"

        def trace():
            t = http("GET", f"{jaeger}/api/traces/{trace_id}", headers={"Origin": dashboard})
            return t if t.status == 200 else None
        t = wait_until(trace, 15, f"trace {trace_id} in Jaeger's query API")
        spans = t.json()["data"][0]["spans"]
        procs = t.json()["data"][0]["processes"]
        expect(len(spans) == 1 and procs[spans[0]["processID"]]["serviceName"] == "order",
               f"trace {trace_id}: {t.json()}")
        expect(t.headers.get("access-control-allow-origin") == dashboard,
               f"CORS for the dashboard's origin {dashboard}: {t.headers}")
        other = http("GET", jaeger + "/api/services", headers={"Origin": "http://localhost:1"})
        expect("access-control-allow-origin" not in other.headers, f"CORS for another origin: {other.headers}")
        # Prometheus: every service a target, up, and its samples stored
        want = {run.url(n, "/metrics") for n in ("order", "payment", "shipment")}

        def targets_up():
            active = http("GET", prom + "/api/v1/targets").json()["data"]["activeTargets"]
            got = {a["scrapeUrl"]: a["health"] for a in active}
            return got if set(got) == want and all(h == "up" for h in got.values()) else None
        start = time.monotonic()
        up = wait_until(targets_up, 30, "Prometheus's three targets up")
        print(f"    Prometheus: {len(up)} targets up {time.monotonic() - start:.1f} s after run.sh's start line; "
              f"Jaeger: the OTLP span found by its trace id")
        q = http("GET", prom + "/api/v1/query?query=service_uptime_seconds").json()["data"]["result"]
        expect(sorted(x["metric"].get("service") for x in q) == ["order", "payment", "shipment"]
               and all(x["metric"].get("job") == "resilience" for x in q),
               f"service_uptime_seconds in Prometheus: {q}")
        # stopping run.sh stops both
        pids = {n: run.pid(n) for n in ("jaeger", "prometheus")}
        run.proc.send_signal(signal.SIGTERM)
        rc = run.proc.wait(timeout=60)
        expect(rc == 0 and run.log().rstrip().endswith("[run] stopped"), f"run.sh exited {rc}: {run.log()[-800:]}")
        for n, pid in pids.items():
            wait_until(lambda: _gone(pid), 10, f"{n} (pid {pid}) gone")
        for n in ("jaeger", "jaeger_otlp", "prometheus"):
            expect(not harness.port_open(run.ports[n]), f"port {run.ports[n]} ({n}) still answers")
    finally:
        run.close()
