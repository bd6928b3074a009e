#!/usr/bin/env python3
"""test_stack.py -- end-to-end test of docker-compose.yaml on a real Docker engine: build, health, tests.http, documents, chaos, teardown.

The stack runs under a throw-away compose project (e2e<pid><random>) with
scripts/docker/compose.ferretdb.yaml and compose.e2e.yaml over
docker-compose.yaml: FerretDB in place of mongo (no registry here), breakers
that reset after 2 s, and host ports picked free at start. Steps, each one or more checks:

  1. base images (debian:bookworm-slim by debootstrap, FerretDB, Jaeger,
     Prometheus), only if missing;
  0. without Docker: the configuration of jaeger and prometheus (docker-compose
     config read back: images, mounts, ports, the services' OTEL_* settings,
     with ports moved and with the classroom file) and `promtool check config`
     of scripts/prometheus/compose.yml (with rules.yml when it is there);
  2. build the three service images, `up -d`, wait for every healthcheck;
     each service runs as a non-root user and its image holds no build tools;
     Jaeger and Prometheus (images built here, JAEGER_IMAGE and
     PROMETHEUS_IMAGE: no registry) run: Prometheus scrapes the three
     services, a span POSTed to jaeger:4318 from a container on the network
     comes back from the published query API with the dashboard's CORS header;
  3. send every request of order/, payment/, shipment/tests.http to the
     published ports and check the answers;
  4. read the documents from the database container (tests/tools/dbtool);
  5. a runtime fault: PUT /chaos on shipment (every call fails), payment's
     breaker opens, DELETE /chaos, it closes: no container recreated; two of
     the shipped chaos experiments (the C runner build/bin/chaos, its
     documents-stored probe reading the published database port) with
     their verdicts;
     chaos: stop shipment (payment's breaker opens, seen
     in `docker-compose logs payment`; order's answers degrade within the breaker
     timeout), start shipment (payment's breaker closes), crash payment (SIGKILL
     of its process: the restart policy brings it back), `docker-compose kill
     -s SIGKILL payment` (see docs/docker.md: the engine counts it as a manual
     stop), and the chain answers again; then `docker stop` of each service:
     it exits 0 on SIGTERM within a second;
  6. tear down with volumes, even on failure or SIGTERM, and check nothing of
     the project is left.

Prints "SKIP: <reason>" when no Docker engine answers. Ends with
"N passed, N failed[, N skipped]"; exit 1 when a check failed. Figures (time to
a healthy stack, durations, image sizes) go to build/results/e2e-metrics.json.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
import harness  # noqa: E402
import yaml_subset  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPOSE_FILES = ["docker-compose.yaml", "scripts/docker/compose.ferretdb.yaml", "scripts/docker/compose.e2e.yaml"]
SERVICES = ["order", "payment", "shipment"]
# Host port of each service in tests.http, and the service behind it.
HTTP_PORTS = {3000: "order", 3001: "payment", 3002: "shipment"}
BREAKER_TIMEOUT_MS = 300     # CB_TIMEOUT_MS, the demo's default the stack runs with
LATENCY_SLACK_MS = 250       # HTTP and database time around the breaker's budget
DB_NAME = "resilience"
COLLECTIONS = {"order": "orders", "payment": "payments", "shipment": "shipments"}
# The official images the stacks name, and the images scripts/docker/base-images.sh builds
# here in their place (JAEGER_IMAGE, PROMETHEUS_IMAGE): no registry answers on this machine.
JAEGER_IMAGE = "jaegertracing/jaeger:2.12.0"
PROMETHEUS_IMAGE = "prom/prometheus:v3.6.0"
LOCAL_IMAGES = {"JAEGER_IMAGE": "resilience-jaeger:2.12.0", "PROMETHEUS_IMAGE": "resilience-prometheus:2.42"}
PROMETHEUS_DIR = os.path.join(ROOT, "scripts", "prometheus")


Checks = harness.Checks


class StepFailed(Exception):
    """A step could not go on (the checks already say why)."""


def log(msg):
    """Prints a progress line with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd, timeout, env=None, check=False):
    """Runs cmd (a list) from the project root with a time limit; returns the CompletedProcess.
    On timeout returns one with returncode 124. Raises StepFailed when check and it failed."""
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        p = subprocess.CompletedProcess(cmd, 124, out, err + f"\ntimed out after {timeout}s")
    if check and p.returncode != 0:
        print(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}", flush=True)
        raise StepFailed(" ".join(cmd))
    return p


def free_port():
    """A TCP port free on this host right now (in TEST_PORTS when set: harness.free_port)."""
    return harness.free_port()


def engine_problem():
    """None when a Docker engine and docker-compose answer, else the reason."""
    for tool in (["docker", "version"], ["docker-compose", "version"]):
        try:
            p = subprocess.run(tool, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{tool[0]} does not answer: {e}"
        if p.returncode != 0:
            return f"`{' '.join(tool)}` failed: {(p.stderr or p.stdout).strip()[:300]}"
    p = run(["docker", "info", "--format", "{{.ServerVersion}}"], 30)
    if p.returncode != 0:
        return f"no Docker engine answers: {p.stderr.strip()[:300]}"
    return None


class Stack:
    """The compose project under test: its name, ports and docker-compose commands."""

    def __init__(self):
        self.project = f"e2e{os.getpid()}{random.randrange(16**6):06x}"
        self.ports = {n: free_port() for n in ("order", "payment", "shipment", "jaeger", "prometheus")}
        self.db_port = free_port()
        self.ids = {}
        self.env = dict(os.environ, ORDER_PORT=str(self.ports["order"]),
                        PAYMENT_PORT=str(self.ports["payment"]),
                        SHIPMENT_PORT=str(self.ports["shipment"]),
                        JAEGER_PORT=str(self.ports["jaeger"]),
                        PROMETHEUS_PORT=str(self.ports["prometheus"]),
                        DB_PORT=str(self.db_port), **LOCAL_IMAGES)

    def compose(self, args, timeout, check=False):
        """Runs docker-compose with this project's name and files."""
        cmd = ["docker-compose", "-p", self.project]
        for f in COMPOSE_FILES:
            cmd += ["-f", f]
        return run(cmd + args, timeout, env=self.env, check=check)

    def container(self, service):
        """The container id of service ("" when it has none). Ids are kept once
        known: stop, start, kill and restarts keep a container's id."""
        if not self.ids.get(service):
            self.ids[service] = self.compose(["ps", "-q", service], 30).stdout.strip()
        return self.ids[service]

    def inspect(self, service, fmt):
        """docker inspect -f fmt of service's container ("" when it has none)."""
        cid = self.container(service)
        if not cid:
            return ""
        return run(["docker", "inspect", "-f", fmt, cid], 30).stdout.strip()

    def url(self, service, path):
        """The URL of path on service's published port."""
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def logs(self, service):
        """docker-compose logs of service, without colours."""
        return self.compose(["logs", "--no-color", service], 60).stdout

    def leftovers(self):
        """Containers, networks and volumes still labelled with this project."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("container", "network", "volume"):
            cmd = ["docker", kind, "ls", "-q", "--filter", label]
            if kind == "container":
                cmd.insert(3, "-a")
            found += [f"{kind} {x}" for x in run(cmd, 30).stdout.split()]
        return found


def wait_until(what, predicate, limit_s, interval_s=0.25):
    """Polls predicate() until it returns a true value or limit_s passes; returns
    (value, seconds waited). The loop is bounded in time and in count."""
    start = time.monotonic()
    for _ in range(int(limit_s / interval_s) + 1):
        value = predicate()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > limit_s:
            break
        time.sleep(interval_s)
    log(f"gave up waiting for {what} after {limit_s}s")
    return None, time.monotonic() - start


def http(method, url, body=None, headers=None, timeout=5.0):
    """Sends one request; returns (status, text, elapsed_ms). status 0 = no answer."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, text = r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        status, text = 0, str(e)
    return status, text, (time.monotonic() - start) * 1000


def parse_http_file(path):
    """The requests of a tests.http file: dicts with method, url, headers, body, title."""
    requests = []
    with open(path) as f:
        blocks = re.split(r"^###", f.read(), flags=re.M)[1:]
    for block in blocks:
        lines = block.split("\n")
        title, rest = lines[0].strip(), lines[1:]
        rest = [l for l in rest if not l.lstrip().startswith("#")]
        while rest and not rest[0].strip():
            rest.pop(0)
        if not rest:
            continue
        m = re.match(r"(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS)\s+(\S+)", rest[0])
        if not m:
            continue
        headers, i = {}, 1
        while i < len(rest) and rest[i].strip():
            k, _, v = rest[i].partition(":")
            headers[k.strip()] = v.strip()
            i += 1
        body = "\n".join(rest[i:]).strip()
        requests.append({"title": title, "method": m.group(1), "url": m.group(2),
                         "headers": headers, "body": body or None})
    return requests


def hops(answer):
    """The answers of every hop of a chain answer, outermost first."""
    out = []
    while isinstance(answer, dict) and len(out) < 16:
        out.append(answer)
        answer = answer.get("next")
    return out


def chain_whole(answer):
    """True when every hop answered ok and the chain ends with the last hop."""
    hs = hops(answer)
    return bool(hs) and all(h.get("status") == "ok" for h in hs[:-1]) and hs[-1].get("status") == "last"


def chain_degraded(answer):
    """The first degraded hop of a chain answer, or None."""
    for h in hops(answer):
        if h.get("status") == "degraded":
            return h
    return None


def post_order(stack, order_id):
    """POSTs one order; returns (status, answer dict or None, elapsed_ms)."""
    body = json.dumps({"id": order_id, "items": [],
                       "payment": {"amount": 1, "id": order_id,
                                   "shipment": {"id": order_id, "directions": "e2e"}}})
    status, text, ms = http("POST", stack.url("order", "/create"), body,
                            {"Content-Type": "application/json"})
    try:
        return status, json.loads(text), ms
    except ValueError:
        return status, None, ms


def breaker_events(logs, event):
    """How many `event=<event>` breaker lines the logs hold."""
    return len(re.findall(rf" breaker \S+ event={re.escape(event)} ", logs))


def env_of(service):
    """A service's environment from a parsed compose or stack file: a dict whatever its form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env if "=" in e)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def check_prometheus_config(c, name):
    """promtool check config of scripts/prometheus/<name>, whose rule_files name rules.yml
    beside it: checked in place (the rules with it) when that file is there; else a copy
    without rule_files is checked and the rules are reported skipped."""
    promtool = shutil.which("promtool")
    if not promtool:
        c.skip(f"promtool check config scripts/prometheus/{name}",
               "promtool is not installed (scripts/setup.sh installs Debian's prometheus)")
        return
    path = os.path.join(PROMETHEUS_DIR, name)
    if os.path.exists(os.path.join(PROMETHEUS_DIR, "rules.yml")):
        p = run([promtool, "check", "config", path], 60)
        c.check(f"promtool check config scripts/prometheus/{name}, with rules.yml",
                p.returncode == 0 and "SUCCESS: 1 rule files found" in p.stdout, (p.stdout + p.stderr)[-1500:])
        return
    c.skip(f"scripts/prometheus/{name} with its rules", "scripts/prometheus/rules.yml is missing: "
           "the configuration is checked without its rule_files")
    with open(path) as f:
        text = f.read()
    bare = re.sub(r"^rule_files:\n(?:[ ]+- .*\n)+", "", text, flags=re.M)
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, name)
        with open(copy, "w") as f:
            f.write(bare)
        p = run([promtool, "check", "config", copy], 60)
    c.check(f"promtool check config scripts/prometheus/{name}, without rule_files",
            bare != text and p.returncode == 0 and "SUCCESS" in p.stdout, (p.stdout + p.stderr)[-1500:])


def compose_config(env, files):
    """`docker-compose config` of files (parsed), or (None, why)."""
    cmd = ["docker-compose", "-p", "e2econfig"]
    for f in files:
        cmd += ["-f", f]
    p = run(cmd + ["config"], 60, env=env)
    if p.returncode != 0:
        return None, (p.stdout + p.stderr)[-1500:]
    try:
        return yaml_subset.load(p.stdout), ""
    except ValueError as e:
        return None, f"cannot read docker-compose config's output: {e}"


def check_compose_observability(c, cfg, where, order_port, jaeger_port, prometheus_port):
    """The jaeger and prometheus services of a docker-compose config, and the services' tracing settings."""
    services = cfg.get("services", {})
    jaeger, prom = services.get("jaeger", {}), services.get("prometheus", {})
    c.check(f"{where}: jaeger from the image {jaeger.get('image')}, prometheus from {prom.get('image')}",
            jaeger.get("image") == JAEGER_IMAGE and prom.get("image") == PROMETHEUS_IMAGE, str(list(services)))
    jenv = env_of(jaeger)
    mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in jaeger.get("volumes", [])]
    c.check(f"{where}: jaeger reads scripts/jaeger/config.yaml, OTLP/HTTP on 4318 and its query API on 16686 "
            f"on every address, CORS for the dashboard at port {order_port}",
            jaeger.get("command") == ["--config=/etc/jaeger/config.yaml"]
            and any(m.startswith(os.path.join(ROOT, "scripts", "jaeger", "config.yaml") + ":/etc/jaeger/config.yaml")
                    for m in mounts)
            and jenv.get("JAEGER_HOST") == "0.0.0.0" and jenv.get("JAEGER_OTLP_PORT") == "4318"
            and jenv.get("JAEGER_PORT") == "16686" and jenv.get("DASHBOARD_PORT") == str(order_port),
            f"{jaeger.get('command')} {mounts} {jenv}")
    published = {str(p.get("target")): str(p.get("published")) for p in jaeger.get("ports", [])}
    c.check(f"{where}: Jaeger's query API published on {jaeger_port}, its OTLP port only inside the network",
            published == {"16686": str(jaeger_port)}, str(jaeger.get("ports")))
    pmounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in prom.get("volumes", [])]
    pports = {str(p.get("target")): str(p.get("published")) for p in prom.get("ports", [])}
    c.check(f"{where}: prometheus reads scripts/prometheus/compose.yml (its rules.yml beside it), published on "
            f"{prometheus_port}",
            (prom.get("command") or [None])[0] == "--config.file=/etc/prometheus/compose.yml"
            and any(m.startswith(PROMETHEUS_DIR + ":/etc/prometheus") for m in pmounts)
            and pports == {"9090": str(prometheus_port)}, f"{prom.get('command')} {pmounts} {pports}")
    net = set(jaeger.get("networks") or {}) & set(prom.get("networks") or {})
    for name in SERVICES:
        env = env_of(services.get(name, {}))
        want = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SERVICE_NAME": name,
                "TRACES_QUERY_URL": f"http://localhost:{jaeger_port}"}
        got = {k: env.get(k) for k in want}
        c.check(f"{where}: {name} sends spans to jaeger:4318 as {name}, the dashboard reads traces from "
                f"localhost:{jaeger_port}; on jaeger's and prometheus's network",
                got == want and net and net <= set(services.get(name, {}).get("networks") or {}), f"{got} {net}")


def step_config(c):
    """The configuration of the compose stack's jaeger and prometheus, without running them:
    promtool check config of scripts/prometheus/compose.yml, and docker-compose config
    (defaults, moved ports, the classroom file over it) read back."""
    check_prometheus_config(c, "compose.yml")
    with open(os.path.join(PROMETHEUS_DIR, "compose.yml")) as f:
        prom = yaml_subset.load(f.read())
    targets = [t for sc in prom.get("scrape_configs", []) for g in sc.get("static_configs", [])
               for t in g.get("targets", [])]
    if not shutil.which("docker-compose"):
        c.skip("docker-compose config of the stack's jaeger and prometheus", "docker-compose is not installed")
        return
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORDER_PORT", "JAEGER_PORT", "PROMETHEUS_PORT", "JAEGER_IMAGE", "PROMETHEUS_IMAGE")}
    cfg, why = compose_config(env, ["docker-compose.yaml"])
    if not c.check("docker-compose config of docker-compose.yaml", cfg, why):
        return
    check_compose_observability(c, cfg, "docker-compose.yaml", 3000, 16686, 9090)
    services = cfg["services"]
    want = sorted(f"{n}:{env_of(services[n]).get('PORT')}" for n in SERVICES)
    c.check(f"scripts/prometheus/compose.yml scrapes every service at its name and PORT ({', '.join(want)}), "
            "job resilience", sorted(targets) == want
            and [sc.get("job_name") for sc in prom.get("scrape_configs", [])] == ["resilience"], str(targets))
    moved = dict(env, ORDER_PORT="5198", JAEGER_PORT="5197", PROMETHEUS_PORT="5196")
    cfg, why = compose_config(moved, ["docker-compose.yaml"])
    if c.check("docker-compose config with ORDER_PORT, JAEGER_PORT and PROMETHEUS_PORT moved", cfg, why):
        check_compose_observability(c, cfg, "moved ports", 5198, 5197, 5196)
    cfg, why = compose_config(dict(env, ADMIN_TOKEN="e2e"), ["docker-compose.yaml", "docker-compose.classroom.yaml"])
    if c.check("docker-compose config with docker-compose.classroom.yaml", cfg, why):
        check_compose_observability(c, cfg, "classroom", 3000, 16686, 9090)
    cfg, why = compose_config(dict(env, **LOCAL_IMAGES), ["docker-compose.yaml"])
    if c.check("docker-compose config with JAEGER_IMAGE and PROMETHEUS_IMAGE", cfg, why):
        c.check("JAEGER_IMAGE and PROMETHEUS_IMAGE name the images of jaeger and prometheus",
                cfg["services"]["jaeger"].get("image") == LOCAL_IMAGES["JAEGER_IMAGE"]
                and cfg["services"]["prometheus"].get("image") == LOCAL_IMAGES["PROMETHEUS_IMAGE"])
    skip_official_images(c, "docker-compose.yaml")


def skip_official_images(c, where):
    """Says, loudly, that the official images where names are not what runs: the images
    scripts/docker/base-images.sh builds from Debian's packages and the Go module proxy
    stand in for them, as no registry answers on this machine."""
    for official, local in ((JAEGER_IMAGE, LOCAL_IMAGES["JAEGER_IMAGE"]),
                            (PROMETHEUS_IMAGE, LOCAL_IMAGES["PROMETHEUS_IMAGE"])):
        c.skip(f"{where} run with {official}",
               f"no registry answers here to pull it: {local}, built by scripts/docker/base-images.sh, "
               "runs in its place; the file's image name is checked above")


def otlp_span(trace_id, service):
    """One server span of service in OTLP/HTTP JSON, ending now (as the services will send)."""
    end = time.time_ns()
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "e2e"}, "spans": [{
            "traceId": trace_id, "spanId": os.urandom(8).hex(), "name": "POST /create", "kind": 2,
            "startTimeUnixNano": str(end - 2_000_000), "endTimeUnixNano": str(end)}]}]}]})


def post_span_in_network(network, trace_id, service):
    """POSTs a span to http://jaeger:4318/v1/traces from a throw-away container on network
    (debian:bookworm-slim, bash's /dev/tcp); returns (the status line, output)."""
    body = otlp_span(trace_id, service)
    script = ('exec 3<>/dev/tcp/jaeger/4318 && printf "POST /v1/traces HTTP/1.1\\r\\nHost: jaeger:4318\\r\\n'
              'Content-Type: application/json\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s" '
              '"${#BODY}" "$BODY" >&3 && head -n 1 <&3')
    p = run(["docker", "run", "--rm", "--network", network, "-e", f"BODY={body}", "debian:bookworm-slim",
             "bash", "-c", script], 120)
    return p.stdout.strip(), (p.stdout + p.stderr)[-800:]


def check_trace_readable(c, jaeger_url, trace_id, service, dashboard_origin, where):
    """Waits for trace_id in Jaeger's query API; checks its service and the dashboard's CORS header."""
    found = {}

    def trace():
        status, text, _ = http("GET", f"{jaeger_url}/api/traces/{trace_id}", None, {"Origin": dashboard_origin})
        if status == 200:
            found["data"] = json.loads(text)["data"][0]
        return status == 200

    ok, waited = wait_until(f"trace {trace_id}", trace, 30)
    procs = found.get("data", {}).get("processes", {})
    c.check(f"{where}: the span comes back from Jaeger's query API by its trace id ({waited:.1f}s), "
            f"service {service}", ok and [p.get("serviceName") for p in procs.values()] == [service], str(found))
    req = urllib.request.Request(f"{jaeger_url}/api/traces/{trace_id}", headers={"Origin": dashboard_origin})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            allowed = r.headers.get("Access-Control-Allow-Origin")
    except (urllib.error.URLError, OSError) as e:
        allowed = str(e)
    c.check(f"{where}: Jaeger lets the dashboard ({dashboard_origin}) read it (CORS)", allowed == dashboard_origin,
            str(allowed))


def prometheus_targets(url):
    """Prometheus's active targets: {scrapeUrl: health}, or {} when it does not answer."""
    status, text, _ = http("GET", url + "/api/v1/targets")
    if status != 200:
        return {}
    return {t["scrapeUrl"]: t["health"] for t in json.loads(text)["data"]["activeTargets"]}


def check_prometheus_rules(c, url, where):
    """Prometheus's loaded rule groups: some when scripts/prometheus/rules.yml is there, none when it is not."""
    status, text, _ = http("GET", url + "/api/v1/rules")
    groups = json.loads(text)["data"]["groups"] if status == 200 else None
    if os.path.exists(os.path.join(PROMETHEUS_DIR, "rules.yml")):
        c.check(f"{where}: Prometheus loaded the rules of scripts/prometheus/rules.yml ({len(groups or [])} groups)",
                groups, text[:500])
    else:
        c.check(f"{where}: Prometheus runs with no rules (scripts/prometheus/rules.yml is missing)", groups == [],
                text[:500])
        c.skip(f"{where}: Prometheus with the rules of scripts/prometheus/rules.yml", "that file is missing")


def step_traces_and_metrics(c, stack, metrics):
    """The running stack's jaeger and prometheus: Prometheus scrapes the three services by
    name, a span sent to jaeger:4318 inside the network comes back from the published query
    API (CORS for the dashboard), the services' containers carry the tracing settings."""
    jaeger_url = f"http://127.0.0.1:{stack.ports['jaeger']}"
    prom_url = f"http://127.0.0.1:{stack.ports['prometheus']}"
    ok, waited = wait_until("Jaeger's query API", lambda: http("GET", jaeger_url + "/api/services")[0] == 200, 60)
    c.check(f"Jaeger's query API answers on the published port ({waited:.1f}s)", ok)
    want = {f"http://{n}:3000/metrics" for n in SERVICES}
    start = time.monotonic()
    up, _ = wait_until("Prometheus's three targets up", lambda: (lambda t: t if set(t) == want and all(
        h == "up" for h in t.values()) else None)(prometheus_targets(prom_url)), 60, 0.5)
    metrics["prometheus_targets_up_s"] = round(time.monotonic() - start, 1)
    c.check(f"Prometheus scrapes order, payment and shipment by name, every target up "
            f"({metrics['prometheus_targets_up_s']}s)", up, str(prometheus_targets(prom_url)))
    status, text, _ = http("GET", prom_url + "/api/v1/query?query=service_uptime_seconds")
    series = json.loads(text)["data"]["result"] if status == 200 else []
    c.check("their samples are in Prometheus (service_uptime_seconds of the three, job resilience)",
            sorted(x["metric"].get("service") for x in series) == sorted(SERVICES)
            and all(x["metric"].get("job") == "resilience" for x in series), text[:500])
    check_prometheus_rules(c, prom_url, "compose")
    trace_id = os.urandom(16).hex()
    line, out = post_span_in_network(f"{stack.project}_circuitbreaker", trace_id, "order")
    c.check(f"a span POSTed to http://jaeger:4318/v1/traces from a container on the network: {line}",
            line.startswith("HTTP/1.1 200"), out)
    check_trace_readable(c, jaeger_url, trace_id, "order", f"http://localhost:{stack.ports['order']}", "compose")
    p = run(["docker", "port", stack.container("jaeger")], 30)
    c.check("jaeger publishes its query API only (OTLP's 4318 stays inside the network)",
            p.returncode == 0 and "16686/tcp" in p.stdout and "4318" not in p.stdout, p.stdout)
    for name in SERVICES:
        env = dict(e.split("=", 1) for e in json.loads(stack.inspect(name, "{{json .Config.Env}}") or "[]"))
        got = {k: env.get(k) for k in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "TRACES_QUERY_URL")}
        c.check(f"{name}'s container has the tracing settings", got == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318", "OTEL_SERVICE_NAME": name,
            "TRACES_QUERY_URL": f"http://localhost:{stack.ports['jaeger']}"}, str(got))


# ---- the steps ---------------------------------------------------------------


def base_image_problem():
    """None when the base images exist or can be made here, else the reason."""
    def have(image):
        return run(["docker", "image", "inspect", image], 30).returncode == 0

    if not have("debian:bookworm-slim"):
        if os.geteuid() != 0:
            return "debian:bookworm-slim is missing and debootstrap needs root (run scripts/docker/base-images.sh as root)"
        if not any(os.access(os.path.join(d, "debootstrap"), os.X_OK) for d in ("/usr/sbin", "/sbin", "/usr/bin")):
            return "debian:bookworm-slim is missing and debootstrap is not installed (scripts/setup.sh installs it)"
    if not have("resilience-ferretdb:1.24") and run(["sh", "-c", "command -v go"], 30).returncode != 0 \
            and run(["scripts/ferretdb.sh", "path"], 30).returncode != 0:
        return "resilience-ferretdb:1.24 is missing and Go is not installed to build FerretDB"
    if not have(LOCAL_IMAGES["JAEGER_IMAGE"]) and run(["sh", "-c", "command -v go"], 30).returncode != 0 \
            and run(["scripts/jaeger.sh", "path"], 30).returncode != 0:
        return f"{LOCAL_IMAGES['JAEGER_IMAGE']} is missing and Go is not installed to build Jaeger"
    return None


def step_base_images(c):
    """Makes debian:bookworm-slim and the FerretDB image when missing."""
    start = time.monotonic()
    p = run(["scripts/docker/base-images.sh"], 1200)
    print(p.stdout + p.stderr, flush=True)
    c.check("base images debian:bookworm-slim, resilience-ferretdb:1.24, " + ", ".join(LOCAL_IMAGES.values())
            + " exist", p.returncode == 0, p.stderr[-500:])
    if p.returncode != 0:
        raise StepFailed("base images")
    return time.monotonic() - start


def step_build_and_up(c, stack, metrics):
    """Builds the images, starts the stack and waits for every healthcheck."""
    start = time.monotonic()
    log("building the service images (docker-compose build)")
    p = stack.compose(["build"], 1800)
    metrics["build_s"] = round(time.monotonic() - start, 1)
    if not c.check(f"docker-compose build ({metrics['build_s']}s)", p.returncode == 0,
                   (p.stdout + p.stderr)[-3000:]):
        raise StepFailed("build")
    start = time.monotonic()
    p = stack.compose(["up", "-d"], 600)
    if not c.check("docker-compose up -d", p.returncode == 0, (p.stdout + p.stderr)[-3000:]):
        raise StepFailed("up")

    def all_healthy():
        states = {s: stack.inspect(s, "{{.State.Health.Status}}") for s in SERVICES + ["mongo"]}
        return states if all(v == "healthy" for v in states.values()) else None

    states, _ = wait_until("a healthy stack", all_healthy, 240, 0.5)
    metrics["time_to_healthy_s"] = round(time.monotonic() - start, 1)
    if not c.check(f"every healthcheck passes ({metrics['time_to_healthy_s']}s after up)", states,
                   str({s: stack.inspect(s, "{{.State.Health.Status}}") for s in SERVICES + ["mongo"]})):
        raise StepFailed("health")


def step_image_contents(c, stack):
    """Checks each running service: unprivileged user, no build tools in its image."""
    for service in SERVICES:
        cid = stack.container(service)
        uid = run(["docker", "exec", cid, "id", "-u"], 30).stdout.strip()
        c.check(f"{service} runs as a non-root user (uid {uid})", uid not in ("", "0"), uid)
        p = run(["docker", "exec", cid, "sh", "-c", "command -v gcc cc make pkg-config"], 30)
        c.check(f"{service}'s image holds no build tools", p.returncode != 0 and not p.stdout.strip(),
                p.stdout.strip())


def expect_answer(c, service, req, status, text, ms):
    """Checks one tests.http answer: GET / says hello, POST /create answers a whole chain."""
    name = f"{service}/tests.http '{req['title']}' -> {status} in {ms:.0f}ms"
    if req["method"] == "GET":
        return c.check(name, status == 200 and f"hello from {service}" in text, text[:300])
    try:
        answer = json.loads(text)
    except ValueError:
        return c.check(name, False, f"not JSON: {text[:300]}")
    ok = status == 200 and answer.get("service") == service and chain_whole(answer)
    return c.check(name, ok, text[:500])


def step_tests_http(c, stack):
    """Sends every request of the three tests.http files; returns the stored documents per service."""
    documents = {s: set() for s in SERVICES}
    for service in SERVICES:
        path = os.path.join(ROOT, service, "tests.http")
        if not c.check(f"{service}/tests.http exists", os.path.exists(path)):
            continue
        reqs = parse_http_file(path)
        c.check(f"{service}/tests.http holds requests ({len(reqs)})", len(reqs) > 0)
        for req in reqs:
            m = re.match(r"https?://[^/:]+:(\d+)(/.*)?$", req["url"])
            target = HTTP_PORTS.get(int(m.group(1))) if m else None
            if not c.check(f"{service}/tests.http '{req['title']}' targets a service port", target, req["url"]):
                continue
            status, text, ms = http(req["method"], stack.url(target, m.group(2) or "/"),
                                    req["body"], req["headers"])
            if expect_answer(c, target, req, status, text, ms) and req["method"] == "POST":
                for h in hops(json.loads(text)):
                    if h.get("document") and h.get("service") in documents:
                        documents[h["service"]].add(h["document"])
    return documents


def dbtool_find(stack, collection):
    """The documents of a collection, read through the published database port."""
    p = run([os.path.join(ROOT, "build", "bin", "dbtool"), "find",
             f"mongodb://127.0.0.1:{stack.db_port}", DB_NAME, collection], 30)
    if p.returncode != 0:
        return None
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def doc_id(doc):
    """The hex ObjectId of a relaxed-extended-JSON document."""
    i = doc.get("_id")
    return i.get("$oid") if isinstance(i, dict) else str(i)


def step_documents(c, stack, documents):
    """Checks that every document the answers named is stored, with its outcome."""
    p = run(["make", "--no-print-directory", "build/bin/dbtool"], 300)
    if not c.check("tests/tools/dbtool builds", p.returncode == 0, p.stderr[-1000:]):
        return
    for service in SERVICES:
        stored = dbtool_find(stack, COLLECTIONS[service])
        if not c.check(f"{COLLECTIONS[service]} readable in the database container", stored is not None):
            continue
        by_id = {doc_id(d): d for d in stored}
        missing = documents[service] - set(by_id)
        c.check(f"{service}: all {len(documents[service])} documents named in answers are stored",
                documents[service] and not missing, f"missing {sorted(missing)}")
        outcomes = {by_id[i].get("_meta", {}).get("outcome") for i in documents[service] if i in by_id}
        c.check(f"{service}: stored documents carry their outcome ({sorted(map(str, outcomes))})",
                outcomes and outcomes <= {"ok", "last"}, str(outcomes))


def step_stop_shipment(c, stack, metrics):
    """Stops shipment: payment's breaker opens and order's answers degrade, each within the breaker timeout."""
    opens_before = breaker_events(stack.logs("payment"), "open")
    start = time.monotonic()
    p = stack.compose(["stop", "-t", "10", "shipment"], 60)
    metrics["shipment_stop_s"] = round(time.monotonic() - start, 2)
    code = stack.inspect("shipment", "{{.State.ExitCode}}")
    c.check(f"docker-compose stop shipment ({metrics['shipment_stop_s']}s, exit code {code})",
            p.returncode == 0 and code == "0", p.stderr[-500:])
    answers = []

    def opened():
        status, answer, ms = post_order(stack, f"chaos-{len(answers)}")
        answers.append((status, answer, ms))
        return breaker_events(stack.logs("payment"), "open") > opens_before

    seen, waited = wait_until("payment's breaker to open", opened, 30)
    c.check(f"payment's breaker opens, seen in docker-compose logs payment ({len(answers)} orders, {waited:.1f}s)",
            seen)
    for _ in range(5):
        answers.append(post_order(stack, f"chaos-{len(answers)}"))
    limit = BREAKER_TIMEOUT_MS + LATENCY_SLACK_MS
    degraded = [a for a in answers if a[0] == 200 and chain_degraded(a[1])]
    slowest = max(a[2] for a in answers)
    metrics["degraded_answer_max_ms"] = round(slowest, 1)
    c.check(f"order's answers come back degraded ({len(degraded)}/{len(answers)})",
            len(degraded) == len(answers), str([a[1] for a in answers if a not in degraded][:3]))
    c.check(f"each degraded answer within the breaker timeout (slowest {slowest:.0f}ms <= {limit}ms)",
            slowest <= limit)
    last = chain_degraded(answers[-1][1]) or {}
    c.check(f"payment fails fast once open (reason '{last.get('reason')}', breaker '{last.get('breaker')}')",
            last.get("service") == "payment" and last.get("reason") == "open", str(answers[-1][1]))


def wait_healthy(stack, service, limit_s):
    """Waits until service's container is healthy; returns the seconds waited or None."""
    ok, waited = wait_until(f"{service} healthy",
                            lambda: stack.inspect(service, "{{.State.Health.Status}}") == "healthy", limit_s)
    return waited if ok else None


def wait_chain_whole(stack, tag, limit_s):
    """Sends orders until one answers with the whole chain; returns (seconds, orders sent) or (None, n)."""
    sent = []

    def whole():
        status, answer, _ = post_order(stack, f"{tag}-{len(sent)}")
        sent.append(status)
        return status == 200 and chain_whole(answer)

    ok, waited = wait_until(f"the whole chain ({tag})", whole, limit_s, 0.5)
    return (waited if ok else None), len(sent)


def step_start_shipment(c, stack, metrics):
    """Starts shipment again: payment's breaker closes and the chain answers whole."""
    closes_before = breaker_events(stack.logs("payment"), "close")
    p = stack.compose(["start", "shipment"], 60)
    c.check("docker-compose start shipment", p.returncode == 0, p.stderr[-500:])
    c.check("shipment healthy again", wait_healthy(stack, "shipment", 60) is not None)
    waited, n = wait_chain_whole(stack, "recover", 30)
    metrics["breaker_close_s"] = round(waited, 1) if waited is not None else None
    c.check(f"the chain answers whole again ({n} orders)", waited is not None)
    c.check("payment's breaker closes, seen in docker-compose logs payment",
            breaker_events(stack.logs("payment"), "close") > closes_before)


def step_runtime_fault(c, stack, metrics):
    """Switches shipment's error fault on and off over /chaos: payment's breaker opens and closes, and no container is recreated."""
    before = {s: (stack.inspect(s, "{{.Id}}"), stack.inspect(s, "{{.State.StartedAt}}")) for s in SERVICES}
    opens_before = breaker_events(stack.logs("payment"), "open")
    closes_before = breaker_events(stack.logs("payment"), "close")
    admin = {"Authorization": "Bearer e2e-admin", "Content-Type": "application/json"}
    status, text, _ = http("PUT", stack.url("shipment", "/chaos"),
                           json.dumps({"error": {"fraction": 1, "expires_s": 120}}), admin)
    c.check("PUT /chaos on shipment sets the error fault", status == 200 and '"error"' in text, text[:300])
    sent = []

    def opened():
        sent.append(post_order(stack, f"fault-{len(sent)}"))
        return breaker_events(stack.logs("payment"), "open") > opens_before

    seen, waited = wait_until("payment's breaker to open under the error fault", opened, 30)
    metrics["runtime_fault_open_s"] = round(waited, 1)
    c.check(f"payment's breaker opens under shipment's runtime fault ({len(sent)} orders, {waited:.1f}s)", seen)
    degraded = [a for a in sent if a[0] == 200 and chain_degraded(a[1])]
    c.check(f"order's answers degrade at payment ({len(degraded)}/{len(sent)})",
            sent and len(degraded) == len(sent), str([a[1] for a in sent if a not in degraded][:2]))
    c.check("the change is a line in docker-compose logs shipment",
            "chaos: PUT /chaos: error on 100% of requests for 120 s" in stack.logs("shipment"))
    status, text, _ = http("DELETE", stack.url("shipment", "/chaos"), None, admin)
    c.check("DELETE /chaos clears it", status == 200 and '"faults":{}' in text, text[:300])
    waited, n = wait_chain_whole(stack, "fault-cleared", 30)
    metrics["runtime_fault_recover_s"] = round(waited, 1) if waited is not None else None
    c.check(f"the chain answers whole again after DELETE /chaos ({n} orders)", waited is not None)
    c.check("payment's breaker closes", breaker_events(stack.logs("payment"), "close") > closes_before)
    after = {s: (stack.inspect(s, "{{.Id}}"), stack.inspect(s, "{{.State.StartedAt}}")) for s in SERVICES}
    c.check("no container was recreated or restarted by the experiment", before == after,
            f"{before} -> {after}")


def step_chaos_experiments(c, stack, metrics):
    """Two shipped chaos experiments (experiments/*.json) against the compose stack, with the C
    runner build/bin/chaos; its documents-stored probe reads the database's published port."""
    p = run(["make", "--no-print-directory", "build/bin/chaos"], 300)
    if not c.check("the chaos runner builds (make build/bin/chaos)", p.returncode == 0, p.stderr[-1000:]):
        return
    for name in ("2-fallback", "6-forced"):
        admin = {"Authorization": "Bearer e2e-admin"}
        for svc in SERVICES:
            http("DELETE", stack.url(svc, "/chaos"), None, admin)
        http("POST", stack.url("payment", "/breaker/close"), None, admin)
        out = os.path.join(ROOT, "build", "chaos", f"e2e-{name}")
        argv = [os.path.join(ROOT, "build", "bin", "chaos"),
                os.path.join(ROOT, "experiments", f"{name}.json"), "--token", "e2e-admin", "--out", out,
                f"--mongo=mongodb://127.0.0.1:{stack.db_port}/{DB_NAME}"]
        argv += [f"--{svc}={stack.url(svc, '').rstrip('/')}" for svc in SERVICES]
        env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "MONGO_DB")}
        start = time.monotonic()
        p = run(argv, 300, env=env)
        metrics[f"chaos_{name}_s"] = round(time.monotonic() - start, 1)
        c.check(f"chaos experiment {name} passes against docker-compose (exit {p.returncode})",
                p.returncode == 0 and "verdict: PASSED" in p.stdout, (p.stdout + p.stderr)[-1500:])
        c.check(f"chaos experiment {name}: every 200 answer's documents found in the database container",
                "hypothesis stored: held" in p.stdout, p.stdout[-1500:])
        c.check(f"chaos experiment {name}: timeline picture written",
                os.path.exists(os.path.join(out, "timeline.svg")))


def step_crash_payment(c, stack, metrics):
    """Kills payment's process with SIGKILL, as a crash: the restart policy brings it back."""
    if os.geteuid() != 0:
        c.skip("payment crash and restart policy", "needs root to SIGKILL the container's process")
        return
    restarts = stack.inspect("payment", "{{.RestartCount}}")
    pid = stack.inspect("payment", "{{.State.Pid}}")
    start = time.monotonic()
    try:
        os.kill(int(pid), signal.SIGKILL)
        killed = True
    except (ValueError, OSError) as e:
        killed = False
        print(f"kill {pid}: {e}", flush=True)
    c.check(f"payment's process (pid {pid}) killed with SIGKILL", killed)
    back, _ = wait_until("payment restarted", lambda: stack.inspect("payment", "{{.RestartCount}}") != restarts, 30)
    c.check(f"the restart policy restarts payment (restart count {restarts} -> "
            f"{stack.inspect('payment', '{{.RestartCount}}')})", back)
    c.check("payment healthy after the crash", wait_healthy(stack, "payment", 60) is not None)
    waited, n = wait_chain_whole(stack, "after-crash", 30)
    metrics["crash_to_whole_chain_s"] = round(time.monotonic() - start, 1)
    c.check(f"the chain answers again after the crash ({metrics['crash_to_whole_chain_s']}s, {n} orders)",
            waited is not None)


def step_compose_kill_payment(c, stack, metrics):
    """docker-compose kill -s SIGKILL payment: the chain degrades, and answers again once payment is back."""
    p = stack.compose(["kill", "-s", "SIGKILL", "payment"], 60)
    c.check("docker-compose kill -s SIGKILL payment", p.returncode == 0, p.stderr[-500:])
    code = stack.inspect("payment", "{{.State.ExitCode}}")
    running = stack.inspect("payment", "{{.State.Running}}")
    c.check(f"payment was killed (exit code {code})", code == "137" or running == "true", code)
    status, answer, ms = post_order(stack, "while-killed")
    came_back, _ = wait_until("payment restarted by its policy",
                              lambda: stack.inspect("payment", "{{.State.Running}}") == "true", 15)
    metrics["compose_kill_restarted_by_policy"] = bool(came_back)
    if not came_back:
        print("NOTE: the engine counts `docker kill` as a manual stop and does not apply the restart "
              "policy (moby/moby#21359); starting payment by hand", flush=True)
        c.check("order degrades while payment is down", status == 200 and chain_degraded(answer), str(answer))
        p = stack.compose(["start", "payment"], 60)
        c.check("docker-compose start payment", p.returncode == 0, p.stderr[-500:])
    c.check("payment healthy again", wait_healthy(stack, "payment", 60) is not None)
    waited, n = wait_chain_whole(stack, "after-kill", 30)
    c.check(f"the chain answers again after the kill ({n} orders)", waited is not None)


def step_sigterm_stop(c, stack, metrics):
    """Stops each service with `docker stop` (SIGTERM, then SIGKILL after 10 s): each exits 0 within a second."""
    metrics["docker_stop_s"] = {}
    for service in SERVICES:
        cid = stack.container(service)
        start = time.monotonic()
        p = run(["docker", "stop", "-t", "10", cid], 60)
        took = round(time.monotonic() - start, 2)
        metrics["docker_stop_s"][service] = took
        code = stack.inspect(service, "{{.State.ExitCode}}")
        c.check(f"{service} stops on SIGTERM within a second (docker stop took {took}s, exit code {code})",
                p.returncode == 0 and took < 1.0 and code == "0", p.stderr[-300:])


def prune_old_images():
    """Removes untagged images this Dockerfile left: runtime images replaced by a
    newer build, and build stages but the newest (kept as build cache)."""
    def untagged(stage):
        return run(["docker", "images", "-q", "--no-trunc", "-f", "dangling=true",
                    "-f", f"label=org.resilience-suite.stage={stage}"], 30).stdout.split()

    old = untagged("runtime") + untagged("build")[1:]
    if old:
        run(["docker", "rmi"] + old, 120)


def image_sizes():
    """The size in MB of each image the stack uses."""
    sizes = {}
    for image in ["order:breaker", "payment:breaker", "shipment:breaker", "resilience-ferretdb:1.24",
                  "debian:bookworm-slim"] + list(LOCAL_IMAGES.values()):
        p = run(["docker", "image", "inspect", "-f", "{{.Size}}", image], 30)
        if p.returncode == 0:
            sizes[image] = round(int(p.stdout.strip()) / 1e6, 1)
    return sizes


def stopped_by_signal(signum, frame):
    """SIGTERM handler (from `timeout`): abandons the current step; teardown still runs."""
    raise StepFailed(f"stopped by signal {signum}")


def teardown(c, stack):
    """Removes the project's containers, network and volumes; checks nothing is left.
    Ignores SIGTERM meanwhile, so a time limit cannot leave the stack behind."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if c.failed:
        path = os.path.join(ROOT, "build", "results", "e2e-compose.log")
        with open(path, "w") as f:
            f.write(stack.compose(["logs", "--no-color"], 120).stdout)
        print(f"compose logs saved to {path}", flush=True)
    p = stack.compose(["down", "-v", "--remove-orphans", "-t", "5"], 300)
    left = stack.leftovers()
    c.check("docker-compose down -v leaves no container, network or volume of the project",
            p.returncode == 0 and not left, f"{p.stderr[-500:]} left: {left}")


def main():
    """Runs the steps; returns the exit status."""
    c = Checks()
    step_config(c)
    problem = engine_problem()
    if problem:
        c.skip("e2e docker stack", problem)
        print(c.summary())
        return 0
    problem = base_image_problem()
    if problem:
        c.skip("e2e docker stack", problem)
        print(c.summary())
        return 0
    os.makedirs(os.path.join(ROOT, "build", "results"), exist_ok=True)
    signal.signal(signal.SIGTERM, stopped_by_signal)
    started = time.monotonic()
    metrics = {}
    stack = Stack()
    log(f"compose project {stack.project}, ports {stack.ports}, database port {stack.db_port}")
    try:
        metrics["base_images_s"] = round(step_base_images(c), 1)
        try:
            step_build_and_up(c, stack, metrics)
            metrics["image_sizes_mb"] = image_sizes()
            step_image_contents(c, stack)
            step_traces_and_metrics(c, stack, metrics)
            documents = step_tests_http(c, stack)
            step_documents(c, stack, documents)
            step_stop_shipment(c, stack, metrics)
            step_start_shipment(c, stack, metrics)
            step_runtime_fault(c, stack, metrics)
            step_chaos_experiments(c, stack, metrics)
            step_crash_payment(c, stack, metrics)
            step_compose_kill_payment(c, stack, metrics)
            step_sigterm_stop(c, stack, metrics)
        finally:
            teardown(c, stack)
    except StepFailed as e:
        c.check("e2e runs to its end", False, f"stopped at step '{e}'")
    prune_old_images()
    metrics["test_duration_s"] = round(time.monotonic() - started, 1)
    with open(os.path.join(ROOT, "build", "results", "e2e-metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print("metrics: " + json.dumps(metrics), flush=True)
    print(c.summary(), flush=True)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
