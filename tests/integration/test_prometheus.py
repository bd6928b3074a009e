"""test_prometheus.py -- the Prometheus rules (scripts/prometheus/rules.yml, docs/metrics.md)
in a real Prometheus that scrapes the three real services.

Debian's /usr/bin/prometheus runs in the stack's temp dir with a generated
configuration: every service's /metrics scraped every second, rules evaluated
every second, rule_files the project's rules.yml unchanged. The tests drive the
breakers through the services' own routes and read Prometheus's HTTP API
(/api/v1/targets, /api/v1/alerts, /api/v1/query, /api/v1/rules) until what the
rules promise happens, each wait bounded.

The rel flavour only: the rules read the services' metrics, which the sanitizer
builds serve alike. Without /usr/bin/prometheus every test says SKIP and why.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test
import urllib.parse

PROMETHEUS = Path(shutil.which("prometheus") or "/usr/bin/prometheus")
RULES = ROOT / "scripts" / "prometheus" / "rules.yml"
FOR_S = 10             # rules.yml: the `for` of CircuitBreakerOpen and CircuitBreakerErrorRatioHigh
FIRE_WITHIN_S = 40     # the open alert fires within this of the forced open (10 s + scrapes)
RESOLVE_WITHIN_S = 15  # and is gone within this of the close (a scrape and an evaluation)
ALERTS_WITHIN_S = 45   # failing calls fire the error-ratio and retry-budget alerts within this


class Prometheus(harness.Proc):
    """Prometheus on a free port, its configuration and data in dir, its log in
    log_dir: scrapes targets (services) every second and evaluates RULES every second."""

    def __init__(self, targets, dir: Path, log_dir: Path):
        self.port = harness.free_port()
        self.dir = dir
        (dir / "data").mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "resilience", "static_configs": [
                {"targets": [f"127.0.0.1:{t.port}" for t in targets]}]}],
        }
        # JSON is YAML: no YAML library needed to write it
        (dir / "prometheus.yml").write_text(json.dumps(config, indent=2))
        argv = [PROMETHEUS, f"--config.file={dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=info"]
        super().__init__("prometheus", argv, dict(os.environ), log_dir)

    def start(self, timeout=30.0):
        """Starts Prometheus and waits until /-/ready answers 200 (or it exits)."""
        super().start()

        def ready():
            if self.popen.poll() is not None:
                return True
            try:
                return http("GET", self.url("/-/ready"), timeout=2).status == 200
            except OSError:
                return False
        wait_until(ready, timeout, "Prometheus to be ready")
        if self.popen.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path, **params):
        """GET /api/v1/<path>?params; returns its "data" (raises when the status is not success)."""
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        r = http("GET", self.url(f"/api/v1/{path}{query}"), timeout=5)
        body = r.json()
        expect(r.status == 200 and body.get("status") == "success", f"/api/v1/{path}: {r}")
        return body["data"]

    def query(self, expr):
        """An instant query: {breaker: float} for a result labelled by breaker."""
        return {s["metric"].get("breaker"): float(s["value"][1])
                for s in self.api("query", query=expr)["result"]}

    def alerts(self, name):
        """The active alerts (pending and firing) named name."""
        return [a for a in self.api("alerts")["alerts"] if a["labels"].get("alertname") == name]


def prometheus_stack(ctx, order_env=None, payment_env=None, shipment_env=None):
    """The chain (admin token on every service) and a Prometheus scraping it, every
    target up. Returns (stack, order, payment, shipment, prometheus); the stack stops
    Prometheus with the services."""
    if ctx.flavour != "rel":
        raise Skip("Prometheus reads the services' metrics, the same in every build: "
                   "the rel flavour runs it")
    if not PROMETHEUS.exists():
        raise Skip(f"{PROMETHEUS} is not installed: scripts/setup.sh installs Debian's prometheus")
    st = ctx.stack()
    token = {"ADMIN_TOKEN": TOKEN}
    order, pay, ship = chain(st, dict(token, **(order_env or {})), dict(token, **(payment_env or {})),
                             dict(token, **(shipment_env or {})))
    pdir = st.tmp / "prometheus"
    pdir.mkdir()
    prom = Prometheus([order, pay, ship], pdir, st.tmp)
    st.procs.append(prom)   # stopped by the stack's close, whatever happens
    prom.start()

    def all_up():
        targets = prom.api("targets")["activeTargets"]
        return len(targets) == 3 and all(t["health"] == "up" for t in targets)
    wait_until(all_up, 30, "Prometheus to scrape all three services", interval=0.2)
    return st, order, pay, ship, prom


def breaker_names(svc):
    """The names of svc's breakers, its next hop's first (from /health)."""
    return [b["name"] for b in http("GET", svc.url("/health")).json()["breakers"]]


@test
def prometheus_fires_circuit_breaker_open_for_the_forced_breaker_only_and_resolves_it(ctx):
    st, order, pay, ship, prom = prometheus_stack(ctx)
    names = {svc.name: breaker_names(svc) for svc in (order, pay, ship)}
    every = {b for bs in names.values() for b in bs}
    target = names["payment"][0]
    expect(len(every) == 5 and "->mongodb" not in target, f"five breakers, payment's next hop first: {names}")

    # every rule of rules.yml loaded and evaluates against the real series
    want = len(re.findall(r"^\s*- (?:record|alert):", RULES.read_text(), re.M))

    def rules_ok():
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return len(rules) == want and all(r["health"] == "ok" for r in rules) and rules
    rules = wait_until(rules_ok, 15, "every rule of rules.yml evaluated with health ok", interval=0.2)
    expect({g["file"] for g in prom.api("rules")["groups"]} == {str(RULES)}, "the project's rules file")
    print(f"    {len(rules)} rules loaded from {RULES.relative_to(ROOT)}, every one health ok")

    # the 0/1 open series: one per breaker, all 0
    wait_until(lambda: prom.query("service_breaker:circuit_breaker_open:max") == dict.fromkeys(every, 0.0),
               15, "service_breaker:circuit_breaker_open:max = 0 for the five breakers", interval=0.2)

    r = http("POST", pay.url("/breaker/open"), b"", headers={"Authorization": f"Bearer {TOKEN}"})
    expect(r.status == 200 and r.json()["state"] == "forced-open", f"payment's breaker forced open: {r}")
    opened = time.monotonic()

    # calls while open: payment rejects them and answers with the fallback
    def firing():
        r = http("POST", order.url("/create"), ORDER)
        expect(r.status == 200, f"order answers while payment's breaker is open: {r}")
        return [a for a in prom.alerts("CircuitBreakerOpen") if a["state"] == "firing"]
    fired = wait_until(firing, FIRE_WITHIN_S, "CircuitBreakerOpen firing", interval=0.2)
    took = time.monotonic() - opened
    print(f"    CircuitBreakerOpen fired {took:.1f} s after POST /breaker/open (for: {FOR_S}s)")
    expect(took >= FOR_S - 0.5, f"not before its `for` of {FOR_S} s: {took:.1f} s")
    alerts = prom.alerts("CircuitBreakerOpen")
    expect(len(alerts) == 1 and alerts == fired,
           f"one CircuitBreakerOpen, firing, none pending for another breaker: {alerts}")
    a = alerts[0]
    expect(a["labels"] == {"alertname": "CircuitBreakerOpen", "service": "payment", "breaker": target,
                           "severity": "warning"}, f"labels: service and breaker: {a['labels']}")
    expect(target in a["annotations"]["summary"] and target in a["annotations"]["description"],
           f"the annotations name the breaker: {a['annotations']}")
    others = [x for n in ("CircuitBreakerErrorRatioHigh", "RetryBudgetExhausted") for x in prom.alerts(n)]
    expect(not others, f"rejected calls are not failures, and no retry is on: {others}")

    # the recording rules, queried: the open series, and payment's rejects
    opened_now = prom.query("service_breaker:circuit_breaker_open:max")
    expect(opened_now == dict(dict.fromkeys(every, 0.0), **{target: 1.0}),
           f"service_breaker:circuit_breaker_open:max is 1 for {target} only: {opened_now}")
    rejects = wait_until(lambda: prom.query('service_breaker:circuit_breaker_rejects:rate1m{service="payment"} > 0'),
                         10, "payment's rejects in service_breaker:circuit_breaker_rejects:rate1m", interval=0.2)
    calls = prom.query('service_breaker:circuit_breaker_calls:rate1m{service="order"}')
    expect(set(rejects) == {target} and calls.get(names["order"][0], 0) > 0,
           f"payment rejects the calls order makes: rejects {rejects}, order's calls {calls}")
    print(f"    payment's rejects {rejects[target]:.2f}/s, order's calls {calls[names['order'][0]]:.2f}/s")

    r = http("POST", pay.url("/breaker/close"), b"", headers={"Authorization": f"Bearer {TOKEN}"})
    expect(r.status == 200 and r.json()["state"] == "closed", f"payment's breaker closed: {r}")
    closed = time.monotonic()
    wait_until(lambda: not prom.alerts("CircuitBreakerOpen"), RESOLVE_WITHIN_S,
               "CircuitBreakerOpen to resolve", interval=0.2)
    print(f"    resolved {time.monotonic() - closed:.1f} s after POST /breaker/close")
    expect(prom.query("service_breaker:circuit_breaker_open:max") == dict.fromkeys(every, 0.0),
           "every breaker 0 again in service_breaker:circuit_breaker_open:max")
    prom.stop()
    expect(prom.returncodes[-1] == 0, f"prometheus exits 0 on SIGTERM: {prom.returncodes}")


@test
def prometheus_fires_error_ratio_and_retry_budget_alerts_for_failing_calls(ctx):
    """Shipment fails every call (INJECT_ERR, ERR_RATE=1); payment retries
    (3 attempts, the default budget of 10 tokens) through a breaker that cannot
    open (a volume threshold out of reach): more than half of payment's calls
    fail, and its budget soon refuses retries."""
    st, order, pay, ship, prom = prometheus_stack(
        ctx, payment_env={"RETRY_ATTEMPTS": "3", "RETRY_BASE_MS": "10", "RETRY_CAP_MS": "50",
                          "CB_VOLUME_THRESHOLD": "1000000"},
        shipment_env={"INJECT_ERR": "1", "ERR_RATE": "1"})
    target = breaker_names(pay)[0]
    start = time.monotonic()
    sent = [0]
    wanted = ("CircuitBreakerErrorRatioHigh", "RetryBudgetExhausted")
    fired = {}   # alert name -> seconds into the failures when first seen firing

    def both_firing():
        for _ in range(2):
            r = http("POST", order.url("/create"), ORDER)
            sent[0] += 1
            expect(r.status == 200 and r.json()["next"]["status"] == "degraded",
                   f"order answers, payment degraded by shipment's errors: {r}")
        for n in wanted:
            if n not in fired and any(a["state"] == "firing" for a in prom.alerts(n)):
                fired[n] = time.monotonic() - start
        return len(fired) == len(wanted)
    wait_until(both_firing, ALERTS_WITHIN_S, f"{' and '.join(wanted)} firing", interval=0.2)
    print(f"    {sent[0]} requests; fired "
          + ", ".join(f"{n} {t:.1f} s" for n, t in fired.items()) + " into the failures")
    expect(fired["CircuitBreakerErrorRatioHigh"] >= FOR_S - 0.5,
           f"the error-ratio alert not before its `for` of {FOR_S} s: {fired}")
    expect(fired["RetryBudgetExhausted"] < fired["CircuitBreakerErrorRatioHigh"],
           f"the retry-budget alert, without a `for`, fires first: {fired}")
    for name in sorted(wanted):
        alerts = prom.alerts(name)
        expect([a["labels"] for a in alerts] == [{"alertname": name, "service": "payment", "breaker": target,
                                                  "severity": alerts[0]["labels"]["severity"]}],
               f"{name}: one alert, for payment's next-hop breaker {target}: {alerts}")
        expect(target in alerts[0]["annotations"]["description"], f"{name} names the breaker: {alerts}")
    expect(not prom.alerts("CircuitBreakerOpen"), "no open alert: the breaker stayed closed")
    ratio = prom.query("service_breaker:circuit_breaker_error_ratio:rate1m")
    expect(ratio.get(target) == 1.0 and all(v == 0 for b, v in ratio.items() if b != target),
           f"service_breaker:circuit_breaker_error_ratio:rate1m: 1 for {target}, 0 elsewhere: {ratio}")
    amp = prom.query("service_breaker:retry_attempts_per_call:rate1m")
    expect(set(amp) == {target} and 1.0 < amp[target] <= 3.0,
           f"payment's retries: more than 1 attempt a call, at most 3: {amp}")
    print(f"    error ratio {ratio[target]:.2f}, {amp[target]:.2f} attempts a call")
    got = labelled_counter(pay, "retry_budget_exhausted_total")
    expect(got > 0, f"payment's /metrics counts the refused retries: {got}")


def labelled_counter(svc, name) -> float:
    """The value of the first series name in svc's /metrics; -1 when absent."""
    m = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", http("GET", svc.url("/metrics")).text(), re.M)
    return float(m.group(1)) if m else -1.0
