#!/usr/bin/env python3
"""test_swarm.py -- end-to-end test of docker-stack.yaml on a single-node Docker Swarm: replicas, VIPs, breakers shared by quorum.

Steps, each one or more checks (figures go to build/results/e2e-swarm-metrics.json):

  1. deploy: scripts/docker/stack.sh up under a throw-away stack name with
     FerretDB in place of mongo (scripts/docker/stack.ferretdb.yaml), free
     host ports, breakers that reset after 2 s, buckets of 1 s; a Swarm is
     created (and later left) only when the engine is in none;
  0. without Docker: the configuration of jaeger and prometheus (docker stack
     config read back: images, Swarm configs, host-mode ports, the services'
     OTEL_* settings) and `promtool check config` of scripts/prometheus/stack.yml;
  2. identity: /health through each service's VIP answers from every
     replica, each with its own REPLICA_ID (<service>.<task slot>), and
     the dashboard (headless Chromium, through order's gateway) lists every
     replica of each service from GET /replicas; Prometheus (an image built
     here) scrapes every replica, found through tasks.<service>, and a span
     POSTed to jaeger:4318 from a container on the overlay network comes
     back from Jaeger's published query API (CORS for the dashboard);
  3. tests.http: every request of the three files through the VIPs;
  4. outage with sharing on: shipment scaled to 0, then (every window
     empty) an open-loop load on payment (20 calls/s for 40 s through the
     gateway, the same calls in both runs); every payment replica sees the shared
     circuit open within one bucket (plus the log's slack) of the quorum
     being reached; the calls that reached the dead shipment are counted, in
     all and once every replica was open;
  5. recovery: shipment scaled back; one prober at a time (lease-taken, then
     that replica's shared-closed or shared-reopened before another lease),
     then every replica closed;
  6. the same outage with sharing off (CB_SHARED=off, rolling update), its
     failed calls counted: once all are open, sharing must make fewer per
     second (one prober instead of one per replica), and fewer over the
     whole outage; sharing back on;
  7. a fault in one payment replica only (PUT /chaos through the gateway
     lands on one): the other payment replicas' breakers stay closed;
  8. the database scaled to 0: every payment replica says local-only
     (fell-back in its log, /health), then back to 1: every replica rejoins
     with no restart;
  9. teardown: stack removed, its volumes too, nothing of it left, the Swarm
     left if created.

Prints "SKIP: <reason>" when no Docker engine answers. Ends with
"N passed, N failed, N skipped"; exit 1 when a check failed.
"""
import concurrent.futures
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_stack as ts  # noqa: E402  (helpers of the compose e2e test)
from test_stack import Checks, StepFailed, http, log, run  # noqa: E402

ROOT = ts.ROOT
REPLICAS = {"order": 2, "payment": 3, "shipment": 3}
BUCKET_MS = 1000              # CB_WINDOW_MS 10000 / CB_BUCKETS 10, the defaults
RESET_MS = 2000               # CB_RESET_TIMEOUT_MS the stack runs with here
PAYMENT_BODY = json.dumps({"amount": 1, "id": "sw", "shipment": {"id": "sw", "directions": "e2e"}})
TOKEN = "swarm-e2e"
METRICS = {}


class Swarm:
    """The stack under test: its name, ports and docker commands."""

    def __init__(self):
        self.name = f"e2esw{os.getpid()}{random.randrange(16**4):04x}"
        self.ports = {s: ts.free_port() for s in REPLICAS}
        self.db_port = ts.free_port()
        self.ports.update(jaeger=ts.free_port(), prometheus=ts.free_port())
        self.env = dict(os.environ, STACK_NAME=self.name, STACK_DB="ferretdb", **ts.LOCAL_IMAGES,
                        ORDER_PORT=str(self.ports["order"]), PAYMENT_PORT=str(self.ports["payment"]),
                        SHIPMENT_PORT=str(self.ports["shipment"]), DB_PORT=str(self.db_port),
                        JAEGER_PORT=str(self.ports["jaeger"]), PROMETHEUS_PORT=str(self.ports["prometheus"]),
                        ORDER_REPLICAS=str(REPLICAS["order"]), PAYMENT_REPLICAS=str(REPLICAS["payment"]),
                        SHIPMENT_REPLICAS=str(REPLICAS["shipment"]), CB_SHARED="on",
                        CB_RESET_TIMEOUT_MS=str(RESET_MS), SHIPMENT_ERR_RATE="0",
                        # a call's budget on a 2-core machine running nine containers
                        CB_TIMEOUT_MS="1000",
                        # a single slow call in a fresh window must not open a breaker
                        CB_VOLUME_THRESHOLD="5")
        self.swarm_created = False
        self.deploy_out = ""

    def url(self, service, path):
        """path on service's published port: Swarm's routing mesh to its VIP."""
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def service(self, name):
        return f"{self.name}_{name}"

    def logs(self, name):
        """Every replica's log lines of service name, as the services wrote
        them: each of its tasks' containers (running or stopped) read with
        docker logs. (docker service logs stalled for minutes here once the
        service had been through rolling updates, and a timed-out read
        returned part of the lines.)"""
        ids = run(["docker", "ps", "-aq", "--filter",
                   f"label=com.docker.swarm.service.name={self.service(name)}"], 30).stdout.split()
        out = []
        for i in ids:
            p = run(["docker", "logs", i], 60)
            out.append(p.stdout + p.stderr)
        return "".join(out)

    def scale(self, name, n, timeout=180):
        """docker service scale name=n, waiting until it converged."""
        return run(["docker", "service", "scale", f"{self.service(name)}={n}"], timeout)

    def update_env(self, name, pair, timeout=300):
        """docker service update --env-add pair (a rolling update)."""
        return run(["docker", "service", "update", "--env-add", pair, self.service(name)], timeout)

    def leftovers(self):
        label = f"label=com.docker.stack.namespace={self.name}"
        found = []
        for kind, cmd in (("container", ["docker", "ps", "-aq", "--filter", label]),
                          ("network", ["docker", "network", "ls", "-q", "--filter", label]),
                          ("service", ["docker", "service", "ls", "-q", "--filter", label]),
                          ("config", ["docker", "config", "ls", "-q", "--filter", label]),
                          ("volume", ["docker", "volume", "ls", "-q", "--filter", label])):
            found += [f"{kind} {x}" for x in run(cmd, 30).stdout.split()]
        return found


def health_by_replica(sw, service, want, tries=60):
    """GET /health through the VIP until `want` distinct replicas answered (at
    most `tries` requests); returns {replica: health dict}."""
    seen = {}
    for _ in range(tries):
        status, text, _ = http("GET", sw.url(service, "/health"), timeout=5)
        try:
            h = json.loads(text)
        except ValueError:
            continue
        if h.get("replica"):
            seen[h["replica"]] = h
        if len(seen) >= want:
            break
    return seen


def shared_of(h):
    return h.get("shared") or {}


EVENT_RX = re.compile(r"^(\S+Z) (\w+)/(\S+) breaker (\S+) event=(\S+) state=(\S+)(.*)$", re.M)


def events(text, service=None):
    """(time, replica, breaker, event, state, rest) of every breaker line, sorted by time."""
    out = [(m.group(1), m.group(3), m.group(4), m.group(5), m.group(6), m.group(7))
           for m in EVENT_RX.finditer(text) if service is None or m.group(2) == service]
    return sorted(out)


def ts_ms(stamp):
    """2026-01-02T03:04:05.678Z -> ms since the epoch."""
    t = time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    import calendar
    return calendar.timegm(t) * 1000 + int(stamp[20:23])


def post_payment(sw):
    """One POST /create to payment's VIP; the answer's dict (None on no JSON)."""
    status, text, _ = http("POST", sw.url("payment", "/create"), PAYMENT_BODY,
                           {"Content-Type": "application/json"}, timeout=5)
    try:
        return json.loads(text)
    except ValueError:
        return None


def outage(c, sw, label, limit_s=40.0, rate=20.0):
    """Scales shipment to 0 and, once every task has stopped and with every
    payment replica's window empty, loads payment's VIP for limit_s seconds at a
    fixed offered rate (an open-loop load: call i goes out at start + i/rate,
    on a pool of threads, whether or not earlier calls have answered, so
    both runs offer the same calls however fast their answers come). A
    poller reads every payment replica's /health meanwhile. Returns a dict:
    failed calls (answers degraded for a failure or a timeout, not rejected
    as open) and calls in all; the seconds until every replica was open
    (sharing on: the shared circuit; off: its own breaker), or None; the
    failed calls sent after that point and the seconds it lasted (the open
    phase, where probing costs); and the failed calls per second of the
    outage (a timeline)."""
    sharing = label == "on"
    # Both runs start from empty windows: the calls before an outage (the
    # warm-up, tests.http) would otherwise dilute the first run's error %.
    empty, waited = ts.wait_until("every payment replica's window to empty", lambda: (
        lambda r: len(r) == REPLICAS["payment"] and all(
            h["breaker"]["window"]["fires"] == 0 for h in r.values()))(
        health_by_replica(sw, "payment", REPLICAS["payment"], 12)), 30, 1.0)
    c.check(f"sharing {label}: every payment replica's window empty before the outage ({waited:.1f}s)",
            empty)
    # The load starts once every shipment task has stopped, so that both runs
    # meet the same outage from its first call: while tasks stop (a few
    # seconds, unevenly) calls still pass, and how many passed would decide
    # how many failures each window needs before it opens.
    t = time.monotonic()
    p = sw.scale("shipment", 0, 120)
    c.check(f"sharing {label}: every shipment task stopped ({time.monotonic() - t:.1f}s)", p.returncode == 0,
            p.stderr[-500:])
    start = time.monotonic()
    calls = int(limit_s * rate)
    results = [None] * calls
    all_open = []
    stop = threading.Event()

    def poll():
        for _ in range(int(limit_s / 0.25) + 1):
            if stop.is_set():
                return
            reps = health_by_replica(sw, "payment", REPLICAS["payment"], tries=12)
            if len(reps) == REPLICAS["payment"] and all(
                    (shared_of(h).get("open") if sharing else h["breaker"]["state"] in ("open", "forced-open", "half-open"))
                    for h in reps.values()):
                all_open.append(time.monotonic() - start)
                return
            stop.wait(0.25)

    def call(i):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic() - start
        a = post_payment(sw)
        failed = bool(a and a.get("status") == "degraded" and a.get("reason") != "open")
        results[i] = (sent, failed)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(call, range(calls)))
    stop.set()
    poller.join(10)
    done = [r for r in results if r]
    out = {"failed": sum(f for _, f in done), "calls": len(done),
           "all_open_s": round(all_open[0], 2) if all_open else None, "failed_open": 0, "open_s": 0.0,
           "failed_per_s": [sum(f for t, f in done if int(t) == k) for k in range(int(limit_s) + 1)]}
    if all_open:
        out["failed_open"] = sum(f for t, f in done if t >= all_open[0])
        out["open_s"] = round(max(t for t, _ in done) - all_open[0], 2)
    return out


def step_config(c):
    """The configuration of the Swarm stack's jaeger and prometheus, without deploying it:
    promtool check config of scripts/prometheus/stack.yml (with rules.yml when it is
    there), and docker stack config of docker-stack.yaml read back."""
    ts.check_prometheus_config(c, "stack.yml")
    with open(os.path.join(ts.PROMETHEUS_DIR, "stack.yml")) as f:
        prom_cfg = ts.yaml_subset.load(f.read())
    env = {k: v for k, v in os.environ.items() if k not in (
        "ORDER_PORT", "JAEGER_PORT", "PROMETHEUS_PORT", "JAEGER_IMAGE", "PROMETHEUS_IMAGE", "STACK_NAME",
        "CONFIG_SUM", "PROMETHEUS_RULES")}
    p = run(["docker", "stack", "config", "-c", "docker-stack.yaml"], 60, env=dict(env, CONFIG_SUM="abc123"))
    if p.returncode != 0:
        c.skip("docker stack config of docker-stack.yaml", f"docker stack config failed: {p.stderr.strip()[:300]}")
        return
    try:
        cfg = ts.yaml_subset.load(p.stdout)
    except ValueError as e:
        c.check("docker stack config's output is readable", False, str(e))
        return
    services, configs = cfg.get("services", {}), cfg.get("configs", {})
    jaeger, prom = services.get("jaeger", {}), services.get("prometheus", {})
    c.check(f"docker-stack.yaml: jaeger from {jaeger.get('image')}, prometheus from {prom.get('image')}",
            jaeger.get("image") == ts.JAEGER_IMAGE and prom.get("image") == ts.PROMETHEUS_IMAGE)
    ts.skip_official_images(c, "docker-stack.yaml")

    def given(service):
        """{target: (config name, its file)} of a service's Swarm configs."""
        return {x.get("target"): (configs.get(x.get("source"), {}).get("name"),
                                  configs.get(x.get("source"), {}).get("file")) for x in service.get("configs", [])}
    want = {"/etc/jaeger/config.yaml": ("resilience-jaeger-config-abc123",
                                        os.path.join(ROOT, "scripts", "jaeger", "config.yaml"))}
    c.check("docker-stack.yaml: jaeger's configuration is scripts/jaeger/config.yaml, a Swarm config named with "
            "CONFIG_SUM", given(jaeger) == want and jaeger.get("command") == ["--config=/etc/jaeger/config.yaml"],
            str(given(jaeger)))
    want = {"/etc/prometheus/stack.yml": ("resilience-prometheus-config-abc123", os.path.join(ts.PROMETHEUS_DIR, "stack.yml")),
            "/etc/prometheus/rules.yml": ("resilience-prometheus-rules-abc123", os.path.join(ts.PROMETHEUS_DIR, "rules.yml"))}
    c.check("docker-stack.yaml: prometheus reads scripts/prometheus/stack.yml with rules.yml beside it (Swarm configs)",
            given(prom) == want and (prom.get("command") or [None])[0] == "--config.file=/etc/prometheus/stack.yml",
            str(given(prom)))
    jenv = ts.env_of(jaeger)
    c.check("docker-stack.yaml: jaeger listens on every address, OTLP/HTTP on 4318, query API on 16686, "
            "CORS for the dashboard at port 3000",
            {k: jenv.get(k) for k in ("JAEGER_HOST", "JAEGER_OTLP_PORT", "JAEGER_PORT", "DASHBOARD_PORT")} ==
            {"JAEGER_HOST": "0.0.0.0", "JAEGER_OTLP_PORT": "4318", "JAEGER_PORT": "16686", "DASHBOARD_PORT": "3000"},
            str(jenv))
    for name, svc, target, published in (("jaeger", jaeger, "16686", "16686"), ("prometheus", prom, "9090", "9090")):
        ports = [(str(x.get("target")), str(x.get("published")), x.get("mode")) for x in svc.get("ports", [])]
        c.check(f"docker-stack.yaml: {name} publishes {target} only, in host mode (no routing mesh), one replica "
                "with the services' endpoint_mode",
                ports == [(target, published, "host")] and str(svc.get("deploy", {}).get("replicas")) == "1"
                and svc.get("deploy", {}).get("endpoint_mode") == services["order"].get("deploy", {}).get("endpoint_mode"),
                f"{ports} {svc.get('deploy')}")
    for name in REPLICAS:
        env_svc = ts.env_of(services.get(name, {}))
        want = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SERVICE_NAME": name,
                "TRACES_QUERY_URL": "http://localhost:16686"}
        got = {k: env_svc.get(k) for k in want}
        c.check(f"docker-stack.yaml: every {name} replica sends spans to jaeger:4318 as {name}", got == want, str(got))
    sd = [x for sc in prom_cfg.get("scrape_configs", []) for x in sc.get("dns_sd_configs", [])]
    ports = {ts.env_of(services[n]).get("PORT") for n in REPLICAS}
    c.check("scripts/prometheus/stack.yml finds every task of order, payment and shipment (tasks.<service>, "
            "A records) at their PORT, job resilience",
            len(sd) == 1 and sorted(sd[0].get("names", [])) == sorted(f"tasks.{n}" for n in REPLICAS)
            and sd[0].get("type") == "A" and ports == {str(sd[0].get("port"))}
            and [sc.get("job_name") for sc in prom_cfg["scrape_configs"]] == ["resilience"], str(sd))


def step_traces_and_metrics(c, sw, deploy_out):
    """The deployed jaeger and prometheus: Prometheus scrapes every replica (found through
    tasks.<service>), a span POSTed to jaeger:4318 from a container on the overlay network
    comes back from the published query API with the dashboard's CORS header."""
    prom_url = sw.url("prometheus", "")
    jaeger_url = sw.url("jaeger", "")
    total = sum(REPLICAS.values())

    def all_up():
        t = ts.prometheus_targets(prom_url)
        return t if len(t) == total and all(h == "up" for h in t.values()) else None
    start = time.monotonic()
    up, _ = ts.wait_until("Prometheus's targets: every replica up", all_up, 90, 0.5)
    METRICS["prometheus_targets_up_s"] = round(time.monotonic() - start, 1)
    c.check(f"Prometheus finds every replica ({total} targets, all up, "
            f"{METRICS['prometheus_targets_up_s']}s)", up, str(ts.prometheus_targets(prom_url)))
    status, text, _ = http("GET", prom_url + "/api/v1/query?query=count%20by%20(service)%20(service_uptime_seconds)")
    counts = {x["metric"].get("service"): x["value"][1] for x in json.loads(text)["data"]["result"]} \
        if status == 200 else {}
    c.check(f"each replica's samples are in Prometheus ({counts})",
            counts == {s: str(n) for s, n in REPLICAS.items()}, text[:500])
    ts.check_prometheus_rules(c, prom_url, "swarm")
    if not os.path.exists(os.path.join(ts.PROMETHEUS_DIR, "rules.yml")):
        c.check("stack-up says that scripts/prometheus/rules.yml is missing",
                "stack: scripts/prometheus/rules.yml is missing: Prometheus runs with no alerting or recording rules"
                in deploy_out, deploy_out[-1500:])
    ok, waited = ts.wait_until("Jaeger's query API", lambda: http("GET", jaeger_url + "/api/services")[0] == 200, 60)
    c.check(f"Jaeger's query API answers on the published port ({waited:.1f}s)", ok)
    trace_id = os.urandom(16).hex()
    line, out = ts.post_span_in_network(f"{sw.name}_circuitbreaker", trace_id, "payment")
    c.check(f"a span POSTed to http://jaeger:4318/v1/traces from a container on the overlay network: {line}",
            line.startswith("HTTP/1.1 200"), out)
    ts.check_trace_readable(c, jaeger_url, trace_id, "payment", f"http://localhost:{sw.ports['order']}", "swarm")


def step_deploy(c, sw):
    state = run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], 30).stdout.strip()
    sw.swarm_created = state == "inactive"
    start = time.monotonic()
    p = run(["scripts/docker/stack.sh", "up"], 1200, env=sw.env)
    METRICS["deploy_s"] = round(time.monotonic() - start, 1)
    if not c.check(f"make stack-up: every replica running ({METRICS['deploy_s']}s)", p.returncode == 0,
                   p.stdout[-2000:] + p.stderr[-2000:]):
        raise StepFailed("deploy")
    sw.deploy_out = p.stdout
    ls = run(["docker", "service", "ls", "--filter", f"label=com.docker.stack.namespace={sw.name}",
              "--format", "{{.Name}} {{.Replicas}}"], 30).stdout
    for s, n in REPLICAS.items():
        c.check(f"{s} runs {n} replicas", f"{sw.service(s)} {n}/{n}" in ls, ls)
    for s in ("jaeger", "prometheus"):
        c.check(f"{s} runs (1 replica)", f"{sw.service(s)} 1/1" in ls, ls)


def step_identity(c, sw):
    for s, n in REPLICAS.items():
        reps, waited = ts.wait_until(f"{s}'s replicas to answer /health",
                                     lambda s=s, n=n: (lambda r: r if len(r) == n else None)(
                                         health_by_replica(sw, s, n)), 60, 1.0)
        want = {f"{s}.{i}" for i in range(1, n + 1)}
        c.check(f"{s}'s name (through the gateway) answers from every replica, each with its own REPLICA_ID",
                reps is not None and set(reps) == want, f"{sorted(reps or {})} vs {sorted(want)}")
        if s != "shipment" and reps:
            # A replica says "joining" until its first sync has answered and
            # "local-only" while syncs fail (the database still starting), so
            # this waits (bounded) for every replica to have joined.
            last = {}

            def joined(s=s, n=n):
                r = health_by_replica(sw, s, n)
                last[s] = r
                return len(r) == n and all(shared_of(h).get("mode") == "shared" and
                                           shared_of(h).get("live") == n for h in r.values())
            ok, waited = ts.wait_until(f"{s}'s replicas to share their breaker", joined, 30, 0.5)
            c.check(f"{s}'s replicas share their breaker (/health shared.mode, {waited:.1f}s)", ok,
                    json.dumps({r: shared_of(h) for r, h in last.get(s, {}).items()}))
    status, text, _ = http("GET", sw.url("payment", "/metrics"))
    c.check("/metrics labels the replica", re.search(r'service_replica_info\{service="payment",'
                                                     r'replica="payment\.\d"\} 1', text) is not None)


def step_warm(c, sw):
    """Readiness: a whole chain through order (the first calls open the
    database connections and create the collections, which can outlast a
    call's budget on a loaded machine)."""
    body = json.dumps({"id": "warm", "items": [], "payment": json.loads(PAYMENT_BODY)})

    def whole():
        status, text, _ = http("POST", sw.url("order", "/create"), body,
                               {"Content-Type": "application/json"}, timeout=5)
        try:
            return status == 200 and ts.chain_whole(json.loads(text))
        except ValueError:
            return False
    ok, waited = ts.wait_until("a whole chain through order", whole, 60, 0.5)
    c.check(f"a whole chain through order ({waited:.1f}s after deploy)", ok)
    # Each new connection through the gateway may land on another replica:
    # 2 x replicas answers "ok" in a row from payment's VIP have most likely
    # passed every payment replica and opened their connections onwards.
    streak = [0]

    def payment_warm():
        a = post_payment(sw)
        streak[0] = streak[0] + 1 if a and a.get("status") == "ok" else 0
        return streak[0] >= 2 * REPLICAS["payment"]
    ok, waited = ts.wait_until("payment's replicas warm", payment_warm, 60, 0.1)
    c.check(f"{2 * REPLICAS['payment']} whole answers in a row from payment's VIP ({waited:.1f}s)", ok)


DASHBOARD_JS = """
return Array.from(document.querySelectorAll('section.card')).map(c => ({
  service: c.dataset.service, connected: c.dataset.connected,
  chips: Array.from(c.querySelectorAll('.replicas .chip')).map(x => ({
    replica: x.dataset.replica, state: x.dataset.state, streamed: x.classList.contains('streamed')}))}));
"""


def step_dashboard(c, sw):
    """The dashboard served by order, through the gateway, in headless
    Chromium: each card lists every replica of its service (GET /replicas),
    one of them marked as the replica whose stream the card shows."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "obs"))
    from webdriver import Browser, Skip  # noqa: E402
    services = ",".join(f"{s}@{sw.url(s, '')}" for s in REPLICAS)
    try:
        with Browser() as b:
            b.get(sw.url("order", f"/dashboard?services={services}"))

            def every_replica():
                cards = {x["service"]: x for x in b.script(DASHBOARD_JS)}
                ok = len(cards) == len(REPLICAS) and all(
                    cards[s]["connected"] == "true" and
                    sorted(ch["replica"] for ch in cards[s]["chips"]) == [f"{s}.{i}" for i in range(1, n + 1)]
                    and sum(ch["streamed"] for ch in cards[s]["chips"]) == 1
                    for s, n in REPLICAS.items() if s in cards)
                return cards if ok else None
            cards, waited = ts.wait_until("the dashboard to list every replica", every_replica, 20, 0.5)
            shot = os.path.join(ROOT, "build", "results", "dashboard-swarm.png")
            os.makedirs(os.path.dirname(shot), exist_ok=True)
            b.screenshot(shot)
            got = {x["service"]: [ch["replica"] for ch in x["chips"]] for x in b.script(DASHBOARD_JS)}
            c.check(f"the dashboard (through order's gateway, in Chromium) lists every replica of each "
                    f"service, the streamed one marked ({waited:.1f}s; {shot})", cards is not None,
                    json.dumps(got))
            errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
            c.check("the dashboard logs no console error", not errors, str(errors)[:500])
    except Skip as e:
        c.skip("the dashboard lists every replica", str(e))


def step_outage_shared(c, sw):
    mark = time.time()
    o = outage(c, sw, "on")
    METRICS["outage_shared"] = o
    all_open = o["all_open_s"]
    c.check(f"sharing on: every payment replica sees the shared circuit open "
            f"({all_open}s into the load on the stopped shipment)", all_open is not None)
    evs = events(sw.logs("payment"), "payment")
    reached = [e for e in evs if e[3] == "quorum-reached" and ts_ms(e[0]) / 1000 >= mark - 1]
    opened = {}
    for e in evs:
        if e[3] == "shared-opened" and ts_ms(e[0]) / 1000 >= mark - 1:
            opened.setdefault(e[1], ts_ms(e[0]))
    if c.check("the quorum was reached once", len(reached) == 1, str(reached)):
        t0 = ts_ms(reached[0][0])
        spread = max(opened.values()) - t0 if opened else None
        METRICS["all_open_after_quorum_ms"] = spread
        c.check(f"every payment replica saw it open within one bucket of the quorum "
                f"({spread} ms, bucket {BUCKET_MS} ms)",
                len(opened) == REPLICAS["payment"] and spread is not None and spread <= BUCKET_MS + 250,
                json.dumps(opened))
    print(f"    sharing on: {json.dumps(o)}", flush=True)


def step_recovery(c, sw):
    mark = time.time()
    sw.scale("shipment", REPLICAS["shipment"])
    closed, waited = ts.wait_until("every payment replica closed", lambda: (
        post_payment(sw) and (lambda r: len(r) == REPLICAS["payment"] and all(
            not shared_of(h).get("open") and h["breaker"]["state"] == "closed" for h in r.values()))(
            health_by_replica(sw, "payment", REPLICAS["payment"], 12))), 60, 0.2)
    METRICS["recovery_s"] = round(waited, 2)
    c.check(f"shipment back: every payment replica closed ({waited:.1f}s)", closed)
    evs = [e for e in events(sw.logs("payment"), "payment") if ts_ms(e[0]) / 1000 >= mark - 1]
    holder, overlap, leases = None, [], 0
    for e in evs:
        if e[3] == "lease-taken":
            leases += 1
            if holder and holder != e[1]:
                overlap.append(e)
            holder = e[1]
        elif e[3] in ("shared-closed", "shared-reopened") and e[1] == holder:
            holder = None
    c.check(f"one prober at a time ({leases} lease(s) taken)", leases >= 1 and not overlap, str(overlap))


def step_outage_independent(c, sw):
    p = sw.update_env("payment", "CB_SHARED=off")
    c.check("rolling update of payment to CB_SHARED=off", p.returncode == 0, p.stderr[-500:])
    reps = health_by_replica(sw, "payment", REPLICAS["payment"])
    c.check("sharing off: /health has no shared state", reps and all("shared" not in h for h in reps.values()))
    o = outage(c, sw, "off")
    METRICS["outage_independent"] = o
    print(f"    sharing off: {json.dumps(o)}", flush=True)
    on = METRICS.get("outage_shared") or {}
    c.check(f"sharing off: every payment replica opens on its own ({o['all_open_s']}s)",
            o["all_open_s"] is not None)
    # Once every replica is open, independent breakers each probe the dead
    # shipment every open period; shared, one replica probes for all.
    rate_on = on.get("failed_open", 0) / on["open_s"] if on.get("open_s") else None
    rate_off = o["failed_open"] / o["open_s"] if o["open_s"] else None
    METRICS["failed_per_s_open_shared"] = rate_on and round(rate_on, 2)
    METRICS["failed_per_s_open_independent"] = rate_off and round(rate_off, 2)
    c.check(f"while open, sharing makes fewer failed calls: {rate_on and round(rate_on, 2)}/s shared "
            f"({on.get('failed_open')} in {on.get('open_s')}s), {rate_off and round(rate_off, 2)}/s "
            f"independent ({o['failed_open']} in {o['open_s']}s)",
            rate_on is not None and rate_off is not None and rate_on < rate_off)
    c.check(f"over the whole outage, sharing makes fewer failed calls: {on.get('failed')} of "
            f"{on.get('calls')} shared, {o['failed']} of {o['calls']} independent",
            on.get("failed") is not None and on["failed"] < o["failed"])
    sw.scale("shipment", REPLICAS["shipment"])
    p = sw.update_env("payment", "CB_SHARED=on")
    c.check("rolling update of payment back to CB_SHARED=on", p.returncode == 0, p.stderr[-500:])


def step_one_replica_fault(c, sw):
    body = json.dumps({"error": {"fraction": 1.0}})
    status, text, _ = http("PUT", sw.url("payment", "/chaos"), body,
                           {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    if not c.check("PUT /chaos through payment's VIP (one replica)", status == 200, text[:300]):
        return
    faulty = [r for r, h in health_by_replica(sw, "payment", REPLICAS["payment"]).items()
              if h.get("chaos", {}).get("faults")]
    c.check("exactly one payment replica has the fault", len(faulty) == 1, str(faulty))
    for i in range(60):
        http("POST", sw.url("order", "/create"),
             json.dumps({"id": f"f{i}", "items": [], "payment": json.loads(PAYMENT_BODY)}),
             {"Content-Type": "application/json"})
    pay = health_by_replica(sw, "payment", REPLICAS["payment"])
    others = {r: h["breaker"]["state"] for r, h in pay.items() if r not in faulty}
    c.check("the other payment replicas' breakers stay closed", others and all(
        s == "closed" for s in others.values()), str(others))
    for _ in range(20):
        http("DELETE", sw.url("payment", "/chaos"), None, {"Authorization": f"Bearer {TOKEN}"})
        if not any(h.get("chaos", {}).get("faults") for h in
                   health_by_replica(sw, "payment", REPLICAS["payment"]).values()):
            break


def wait_payment_mode(sw, mode, limit_s):
    """Waits until every payment replica's /health says shared.mode == mode;
    returns (their /health answers or None, seconds waited)."""
    def all_in_mode():
        r = health_by_replica(sw, "payment", REPLICAS["payment"], 12)
        ok = len(r) == REPLICAS["payment"] and all(shared_of(h).get("mode") == mode
                                                   for h in r.values())
        return r if ok else None
    return ts.wait_until(f"every payment replica {mode}", all_in_mode, limit_s, 0.5)


def logged_by_every_replica(sw, event, mark, limit_s=15):
    """The payment replicas that logged event since mark (epoch seconds),
    read again until all have (the writer flushes a line within a few
    milliseconds, the engine's log a moment later) or limit_s passes."""
    seen = set()

    def every():
        seen.clear()
        seen.update(e[1] for e in events(sw.logs("payment"), "payment")
                    if e[3] == event and ts_ms(e[0]) / 1000 >= mark - 1)
        return len(seen) == REPLICAS["payment"]
    ts.wait_until(f"every payment replica to log {event}", every, limit_s, 1.0)
    return seen


def step_database_loss(c, sw):
    mark = time.time()
    sw.scale("mongo", 0)
    reps, waited = wait_payment_mode(sw, "local-only", 60)
    c.check(f"database stopped: every payment replica falls back to local ({waited:.1f}s)", reps)
    fell = logged_by_every_replica(sw, "fell-back", mark)
    c.check("each logged fell-back", len(fell) == REPLICAS["payment"], str(fell))
    sw.scale("mongo", 1)
    reps, waited = wait_payment_mode(sw, "shared", 90)
    c.check(f"database back: every payment replica rejoins with no restart ({waited:.1f}s)", reps)
    METRICS["rejoin_s"] = round(waited, 1)
    rejoined = logged_by_every_replica(sw, "rejoined", mark)
    c.check("each logged rejoined", len(rejoined) == REPLICAS["payment"], str(rejoined))


def teardown(c, sw):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if c.failed:
        path = os.path.join(ROOT, "build", "results", "e2e-swarm.log")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            for s in list(REPLICAS) + ["mongo"]:
                f.write(sw.logs(s))
        print(f"service logs saved to {path}", flush=True)
    p = run(["scripts/docker/stack.sh", "down"], 300, env=sw.env)
    # docker stack rm keeps a stack's volumes (data outlives a deployment); the test's go
    volumes = run(["docker", "volume", "ls", "-q", "--filter",
                   f"label=com.docker.stack.namespace={sw.name}"], 30).stdout.split()
    if volumes:
        run(["docker", "volume", "rm"] + volumes, 120)
    left = sw.leftovers()
    c.check("stack-down leaves no service, container, network or config of the stack, and its volumes "
            f"({', '.join(volumes)}) are removed", p.returncode == 0 and not left, f"{p.stderr[-500:]} left: {left}")
    if sw.swarm_created:
        state = run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], 30).stdout.strip()
        c.check("the Swarm the test created is left", state == "inactive", state)


def main():
    c = Checks()
    step_config(c)
    problem = ts.engine_problem() or ts.base_image_problem()
    if problem:
        c.skip("e2e docker swarm", problem)
        print(c.summary())
        return 0
    if run(["docker", "stack", "ls"], 30).returncode != 0 and \
            run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], 30).stdout.strip() not in (
                "inactive", "active"):
        c.skip("e2e docker swarm", "this engine cannot run a Swarm")
        print(c.summary())
        return 0
    sw = Swarm()
    sw.env["ADMIN_TOKEN"] = TOKEN
    signal.signal(signal.SIGTERM, ts.stopped_by_signal)
    try:
        step_deploy(c, sw)
        step_identity(c, sw)
        step_traces_and_metrics(c, sw, sw.deploy_out)
        step_warm(c, sw)
        step_dashboard(c, sw)
        ts.step_tests_http(c, sw)
        step_outage_shared(c, sw)
        step_recovery(c, sw)
        step_outage_independent(c, sw)
        step_one_replica_fault(c, sw)
        step_database_loss(c, sw)
    except StepFailed as e:
        c.check(f"step completed: {e}", False)
    finally:
        teardown(c, sw)
        path = os.path.join(ROOT, "build", "results", "e2e-swarm-metrics.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(METRICS, f, indent=1)
        print(f"figures: {json.dumps(METRICS)}", flush=True)
    print(c.summary())
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
