#!/usr/bin/env python3
"""run_obs_tests.py -- the observability suite: /health, /metrics, /hystrix.stream,
/events.stream, /breaker admin and the dashboard in headless Chromium, against
real services, a real FerretDB and a real browser.

One stack serves every test: shipment (ADMIN_TOKEN set), payment (ADMIN_TOKEN
set, chained to shipment) and order (no ADMIN_TOKEN, chained to payment, THREADS=8 so that the
stream cap is 4). Tests run in order; the ones that stop a process restart it.
Ends with "N passed, N failed, N skipped". Flavour: OBS_FLAVOUR (default asan
when built, else rel); sanitizer reports and unclean exits count as a failure.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "py"))
sys.path.insert(0, str(HERE))
import harness  # noqa: E402
from harness import ROOT, BUILD, Skip, Stack, binary, http, wait_until  # noqa: E402
from sse import SSEClient  # noqa: E402
from webdriver import Browser  # noqa: E402
from jaeger import Jaeger  # noqa: E402

RESULTS = BUILD / "results"
ADMIN_TOKEN = "obs-test-token-5f1c"
ORDER_THREADS = 8
STREAM_CAP = ORDER_THREADS // 2

HYSTRIX_FIELDS = [
    "type", "name", "group", "currentTime", "isCircuitBreakerOpen", "errorPercentage",
    "errorCount", "requestCount", "rollingCountBadRequests", "rollingCountCollapsedRequests",
    "rollingCountEmit", "rollingCountExceptionsThrown", "rollingCountFailure",
    "rollingCountFallbackEmit", "rollingCountFallbackFailure", "rollingCountFallbackMissing",
    "rollingCountFallbackRejection", "rollingCountFallbackSuccess",
    "rollingCountResponsesFromCache", "rollingCountSemaphoreRejected",
    "rollingCountShortCircuited", "rollingCountSuccess", "rollingCountThreadPoolRejected",
    "rollingCountTimeout", "currentConcurrentExecutionCount",
    "rollingMaxConcurrentExecutionCount", "latencyExecute_mean", "latencyExecute",
    "latencyTotal_mean", "latencyTotal",
    "propertyValue_circuitBreakerRequestVolumeThreshold",
    "propertyValue_circuitBreakerSleepWindowInMilliseconds",
    "propertyValue_circuitBreakerErrorThresholdPercentage",
    "propertyValue_circuitBreakerForceOpen", "propertyValue_circuitBreakerForceClosed",
    "propertyValue_circuitBreakerEnabled", "propertyValue_executionIsolationStrategy",
    "propertyValue_executionIsolationThreadTimeoutInMilliseconds",
    "propertyValue_executionTimeoutInMilliseconds",
    "propertyValue_executionIsolationThreadInterruptOnTimeout",
    "propertyValue_executionIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
    "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
    "propertyValue_requestCacheEnabled", "propertyValue_requestLogEnabled", "reportingHosts",
]
PERCENTILE_KEYS = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"]


def order_body(n=0):
    return {"id": f"o{n}", "items": ["book"], "payment": {
        "id": f"p{n}", "amount": 12.5, "shipment": {"id": f"s{n}", "directions": "north"}}}


class Suite:
    """The shared stack and the helpers tests use."""

    def __init__(self, stack):
        self.stack = stack
        self.db = stack.database()
        # the dashboard is served by order; its controls call the other
        # services' admin routes from order's origin, which they must allow
        order_port = harness.free_port()
        # ADMIN_AUTH_BURST: this one stack serves every test, and several send wrong tokens
        # on purpose; the limit itself is tested in tests/integration
        # (wrong_admin_tokens_are_slowed_per_address_logged_and_counted).
        admin = {"ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_AUTH_BURST": "1000",
                 "ADMIN_ALLOWED_ORIGIN": f"http://127.0.0.1:{order_port},http://localhost:{order_port}"}
        self.shipment = stack.service("shipment", env=admin)
        self.payment = stack.service("payment", chain=self.shipment, env=admin)
        self.order = stack.service("order", chain=self.payment, port=order_port,
                                   env={"ADMIN_TOKEN": "", "THREADS": str(ORDER_THREADS)})
        self.services = [self.order, self.payment, self.shipment]

    def send_orders(self, n):
        """Sends n valid orders through the chain; returns the statuses."""
        return [http("POST", self.order.url("/create"), order_body(i)).status for i in range(n)]

    def metrics(self, svc):
        r = http("GET", svc.url("/metrics"))
        assert r.status == 200, r
        return r.text()

    def ensure_running(self):
        for svc in (self.shipment, self.payment, self.order):
            if not svc.alive():
                svc.start()


def metric_value(text, name, **labels):
    """The value of the series name{labels...} (labels matched as a subset); None if absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(have.get(k) == str(v) for k, v in labels.items()):
            return float(m.group(4))
    return None


def promtool_check(text):
    """Runs promtool check metrics on text; returns (ok, output). Skip when missing."""
    if not shutil.which("promtool"):
        raise Skip("promtool is not installed (apt-get install prometheus)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


# ---- /health --------------------------------------------------------------------

def health_answers_200_with_database_and_breaker(s):
    for svc in s.services:
        r = http("GET", svc.url("/health"))
        assert r.status == 200, (svc.name, r)
        assert r.headers.get("access-control-allow-origin") == "*"
        h = r.json()
        assert h["status"] == "ok" and h["service"] == svc.name, h
        assert h["uptime_s"] >= 0 and h["database"]["reachable"] is True, h
        assert h["database"]["name"], h
        names = [b["name"] for b in h["breakers"]]
        want = [f"{svc.name}->mongodb"] if svc is s.shipment else [names[0], f"{svc.name}->mongodb"]
        assert names == want and h["breaker"]["name"] == names[0], (svc.name, names)
        for b in h["breakers"]:
            assert b["state"] == "closed", h
            for k in ("errorPercentage", "window", "total", "percentilesMs"):
                assert k in b, (k, h)


def dashboard_shows_hedging_and_shedding(s):
    """Each card's hedge and shed lines, from the /health the page polls: payment's hedge line
    says off, then, after POST /hedge at runtime, the copies and delay in force; its shed line
    says off, then the limit after POST /shed; shipment (the last hop) has no hedge line."""
    admin = {"ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_AUTH_BURST": "1000"}
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ship = s.stack.service("shipment", env=admin, label="shipment-hedge")
    pay = s.stack.service("payment", chain=ship, env=admin, label="payment-hedge")
    order = s.stack.service("order", chain=pay, label="order-hedge")
    trio = {"order": order, "payment": pay, "shipment": ship}
    lines_js = ("const c = Array.from(document.querySelectorAll('.card')).find("
                "e => e.querySelector('h2').textContent.startsWith(arguments[0]));"
                "return c ? Array.from(c.querySelectorAll('div.shed')).map("
                "e => e.hidden ? null : e.textContent) : null;")
    try:
        services = ",".join(f"{name}@http://127.0.0.1:{v.port}" for name, v in trio.items())
        with Browser() as b:
            b.get(f"{order.url('/dashboard')}?services={services}")
            got = wait_until(lambda: (lambda l: l if l and l[0] and l[1] else None)(
                b.script(lines_js, "payment")), 10, "payment's shed and hedge lines")
            assert got[0].startswith("shedding off") and got[1].startswith("hedging off"), got
            ship_lines = wait_until(lambda: b.script(lines_js, "shipment"), 10, "shipment's card")
            assert ship_lines[1] is None, f"shipment calls no next hop: {ship_lines}"
            r = http("POST", pay.url("/hedge"), {"max_copies": 2, "delay_ms": 30}, auth)
            assert r.status == 200, r
            r = http("POST", pay.url("/shed"), {"enabled": True, "max_limit": 7, "initial_limit": 5}, auth)
            assert r.status == 200, r
            got = wait_until(lambda: (lambda l: l if l[1].startswith("hedging: 2 copies after 30 ms")
                                      and l[0].startswith("shedding: limit 5") else None)(
                b.script(lines_js, "payment")), 6, "payment's lines to show the new settings")
            print(f"    payment: {got}")
    finally:
        for svc in (order, pay, ship):
            svc.stop()


def health_answers_503_while_database_is_down_and_recovers(s):
    s.db.stop()
    try:
        r = wait_until(lambda: (lambda r: r if r.status == 503 else None)(
            http("GET", s.payment.url("/health"), timeout=15)), 20, "/health to answer 503")
        h = r.json()
        assert h["database"]["reachable"] is False and h["status"] != "ok", h
    finally:
        s.db.start()
    wait_until(lambda: http("GET", s.payment.url("/health"), timeout=15).status == 200, 30,
               "/health to answer 200 again after the database returned")


# ---- /metrics -------------------------------------------------------------------

def metrics_pass_promtool_on_every_service(s):
    s.send_orders(2)
    for svc in s.services:
        ok, out = promtool_check(s.metrics(svc))
        assert ok, f"{svc.name}: promtool check metrics failed:\n{out}"


def metrics_count_requests_and_breaker_calls(s):
    before_o = s.metrics(s.order)
    before_p = s.metrics(s.payment)
    statuses = s.send_orders(5)
    assert statuses == [200] * 5, statuses
    label = dict(service="order", route="/create", status="200")
    b = metric_value(before_o, "http_requests_total", **label) or 0
    # counted once the response is written: wait for the last one (bounded)
    after_o = wait_until(lambda: (lambda t: t if metric_value(
        t, "http_requests_total", **label) == b + 5 else None)(s.metrics(s.order)), 5,
        "five more /create requests counted")
    after_p = s.metrics(s.payment)
    b = metric_value(before_o, "http_request_duration_seconds_count", **label) or 0
    a = metric_value(after_o, "http_request_duration_seconds_count", **label)
    assert a == b + 5, (b, a)
    for text_b, text_a, svc in ((before_o, after_o, "order"), (before_p, after_p, "payment")):
        for name in ("circuit_breaker_fires_total", "circuit_breaker_successes_total",
                     "circuit_breaker_call_duration_seconds_count"):
            vb = metric_value(text_b, name, service=svc) or 0
            va = metric_value(text_a, name, service=svc)
            assert va is not None and va >= vb + 5, (svc, name, vb, va)
        assert metric_value(text_a, "circuit_breaker_state", service=svc, state="closed") == 1
        assert metric_value(text_a, "circuit_breaker_state", service=svc, state="open") == 0
        inf = metric_value(text_a, "circuit_breaker_call_duration_seconds_bucket", service=svc,
                           le="+Inf")
        count = metric_value(text_a, "circuit_breaker_call_duration_seconds_count", service=svc)
        assert inf == count, (inf, count)
    up = metric_value(after_o, "service_uptime_seconds", service="order")
    assert up is not None and up > 0


def metrics_label_every_breaker_of_a_service(s):
    for svc, n in ((s.order, 2), (s.payment, 2), (s.shipment, 1)):
        text = s.metrics(svc)
        names = set(re.findall(r'^circuit_breaker_fires_total\{service="%s",breaker="([^"]+)"\}'
                               % svc.name, text, re.M))
        assert len(names) == n and f"{svc.name}->mongodb" in names, (svc.name, names)
        for name in names:
            assert metric_value(text, "circuit_breaker_state", service=svc.name, breaker=name,
                                state="closed") == 1, (svc.name, name)
        assert text.count("# TYPE circuit_breaker_fires_total ") == 1, "one family, several series"


def metrics_count_the_observability_routes_too(s):
    # a request is counted once its response is written, so the client may see
    # the answer a moment before the count: wait for it (bounded)
    def count(route, status):
        return metric_value(s.metrics(s.payment), "http_requests_total", service="payment",
                            route=route, status=status) or 0
    before = count("/breaker/open", 401)
    assert http("POST", s.payment.url("/breaker/open"), b"",
                {"X-Admin-Token": "wrong"}).status == 401
    wait_until(lambda: count("/breaker/open", 401) == before + 1, 5,
               "the refused admin request to be counted")
    scrapes = count("/metrics", 200)
    wait_until(lambda: count("/metrics", 200) > scrapes, 5, "scrapes of /metrics to be counted")


# ---- /hystrix.stream ------------------------------------------------------------

def next_chain_command(c, timeout=5):
    """The next HystrixCommand of the service's next-hop breaker (not its database's)."""
    deadline = time.monotonic() + timeout
    while True:
        cmd = c.next_json(timeout=max(0.01, deadline - time.monotonic()))
        if not cmd["name"].endswith("->mongodb"):
            return cmd


def hystrix_stream_sends_every_dashboard_field(s):
    with SSEClient(s.order.port, "/hystrix.stream") as c:
        assert c.status == 200
        assert c.headers["content-type"].startswith("text/event-stream"), c.headers
        assert c.headers.get("access-control-allow-origin") == "*", c.headers
        first, second = c.next_json(timeout=5), c.next_json(timeout=5)
        cmd = next_chain_command(c)
    assert {first["name"], second["name"]} == {cmd["name"], "order->mongodb"}, (first, second)
    missing = [f for f in HYSTRIX_FIELDS if f not in cmd]
    assert not missing, f"missing fields: {missing}"
    assert cmd["type"] == "HystrixCommand" and cmd["group"] == "order", cmd
    assert cmd["isCircuitBreakerOpen"] is False
    for k in ("latencyExecute", "latencyTotal"):
        assert sorted(cmd[k]) == sorted(PERCENTILE_KEYS), cmd[k]


def hystrix_stream_counts_move_after_requests(s):
    with SSEClient(s.payment.port, "/hystrix.stream") as c:
        first = next_chain_command(c)
        assert s.send_orders(4) == [200] * 4
        deadline = time.monotonic() + 5
        while True:
            cmd = next_chain_command(c)
            if cmd["rollingCountSuccess"] >= first["rollingCountSuccess"] + 4:
                break
            assert time.monotonic() < deadline, (first, cmd)
    assert cmd["requestCount"] >= first["requestCount"] + 4, (first, cmd)
    assert cmd["currentTime"] > first["currentTime"]


def hystrix_stream_interval_is_about_one_second(s):
    with SSEClient(s.order.port, "/hystrix.stream") as c:
        t = [next_chain_command(c)["currentTime"] for _ in range(3)]
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert all(800 <= g <= 1500 for g in gaps), gaps


def events_stream_reports_service_and_breaker_events(s):
    with SSEClient(s.order.port, "/events.stream") as c:
        info = c.next_json("service", timeout=5)
        assert info["service"] == "order" and info["state"] == "closed", info
        assert c.next_json("message", timeout=5)["type"] == "HystrixCommand"
        # force-open payment's breaker by hand: order's requests then see a
        # degraded payment, and payment's stream reports open -> rejects
    with SSEClient(s.payment.port, "/events.stream") as c:
        c.next_json("service", timeout=5)
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        try:
            assert http("POST", s.payment.url("/breaker/open"), b"", auth).status == 200
            s.send_orders(2)
            seen = []
            deadline = time.monotonic() + 5
            while not any(e["event"] == "reject" for e in seen):
                seen.append(c.next_json("breaker", timeout=max(0.01, deadline - time.monotonic())))
            assert all(e["service"] == "payment" and e["state"] == "forced-open" for e in seen), seen
            kinds = [e["event"] for e in seen]
            assert "open" not in kinds or kinds.index("open") < kinds.index("reject"), kinds
            assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen), seen
        finally:
            assert http("POST", s.payment.url("/breaker/close"), b"", auth).status == 200


def many_stream_clients_are_served_at_once(s):
    clients = [SSEClient(s.payment.port, "/hystrix.stream") for _ in range(10)]
    try:
        assert [c.status for c in clients] == [200] * 10
        firsts = [next_chain_command(c) for c in clients]
        assert s.send_orders(2) == [200] * 2
        for c, first in zip(clients, firsts):
            deadline = time.monotonic() + 5
            while next_chain_command(c)["rollingCountSuccess"] < first["rollingCountSuccess"] + 2:
                assert time.monotonic() < deadline
    finally:
        for c in clients:
            c.close()


def stream_cap_answers_503_and_dropped_clients_are_freed(s):
    wait_until(lambda: metric_value(s.metrics(s.order), "service_event_streams") == 0, 10,
               "streams of earlier tests to be freed")
    pid = s.order.pid
    threads_before = len(os.listdir(f"/proc/{pid}/task"))
    clients, refused = [], 0
    try:
        for _ in range(50):
            c = SSEClient(s.order.port, "/hystrix.stream", timeout=10)
            if c.status == 200:
                c.next_json(timeout=5)
                clients.append(c)
            else:
                assert c.status == 503, c.status
                refused += 1
                c.close()
        assert len(clients) == STREAM_CAP and refused == 50 - STREAM_CAP, (len(clients), refused)
        # ordinary requests are still served while the cap is reached
        assert http("GET", s.order.url("/health"), timeout=5).status == 200
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: metric_value(s.metrics(s.order), "service_event_streams") == 0, 10,
               "every dropped stream to be freed")
    threads_after = len(os.listdir(f"/proc/{pid}/task"))
    assert threads_after <= threads_before + 1, (threads_before, threads_after)
    # and 50 more open-read-drop cycles in a row leave nothing behind
    for _ in range(50):
        wait_until(lambda: metric_value(s.metrics(s.order), "service_event_streams") < STREAM_CAP,
                   10, "a free stream slot")
        with SSEClient(s.order.port, "/hystrix.stream", timeout=10) as c:
            assert c.status == 200, c.status
            c.next_json(timeout=5)
    wait_until(lambda: metric_value(s.metrics(s.order), "service_event_streams") == 0, 10,
               "every dropped stream to be freed")
    assert http("GET", s.order.url("/"), timeout=5).status == 200


def shutdown_ends_open_streams_at_once(s):
    clients = [SSEClient(s.order.port, "/events.stream") for _ in range(3)]
    try:
        for c in clients:
            assert c.status == 200
            c.next_json("message", timeout=5)
        start = time.monotonic()
        rc = s.order.stop(timeout=20)
        took = time.monotonic() - start
        assert rc == 0, f"order exited with {rc}"
        assert took < 5, f"shutdown took {took:.1f}s with open streams"
        for c in clients:
            try:
                while True:
                    c.next_event(timeout=5)
            except ConnectionError:
                pass
    finally:
        for c in clients:
            c.close()
        s.ensure_running()


# ---- /breaker admin ---------------------------------------------------------------

def breaker_get_returns_the_library_export(s):
    r = http("GET", s.payment.url("/breaker"))
    assert r.status == 200 and r.headers.get("access-control-allow-origin") == "*", r
    e = r.json()
    assert e["state"] == "closed" and "payment" in e["name"], e
    assert e["name"] != "payment->mongodb", "the next hop's breaker comes first"
    d = http("GET", s.payment.url("/breaker?name=payment-%3Emongodb")).json()
    assert d["name"] == "payment->mongodb" and d["state"] == "closed", d
    assert http("GET", s.shipment.url("/breaker")).json()["name"] == "shipment->mongodb"
    assert http("GET", s.payment.url("/breaker?name=nope")).status == 404


def breaker_admin_is_404_without_admin_token(s):
    for path in ("/breaker/open", "/breaker/close"):
        r = http("POST", s.order.url(path), b"", {"Authorization": "Bearer anything"})
        assert r.status == 404, (path, r)
    assert http("GET", s.order.url("/breaker")).json()["state"] == "closed"


def breaker_admin_is_401_without_the_right_token(s):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Admin-Token": "wrong"},
                    {"Authorization": f"Basic {ADMIN_TOKEN}"},
                    {"X-Admin-Token": ADMIN_TOKEN[:-1]}, {"X-Admin-Token": ADMIN_TOKEN + "x"}):
        r = http("POST", s.payment.url("/breaker/open"), b"", headers)
        assert r.status == 401, (headers, r)
    assert http("GET", s.payment.url("/breaker")).json()["state"] == "closed"


def breaker_admin_opens_and_closes_with_the_token(s):
    try:
        r = http("POST", s.payment.url("/breaker/open"), b"",
                 {"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status == 200, r
        assert http("GET", s.payment.url("/breaker")).json()["state"] == "forced-open"
        m = s.metrics(s.payment)
        assert metric_value(m, "circuit_breaker_state", service="payment", state="forced-open") == 1
        body = http("POST", s.order.url("/create"), order_body(99)).json()
        assert body["next"]["status"] == "degraded", body
    finally:
        r = http("POST", s.payment.url("/breaker/close"), b"", {"X-Admin-Token": ADMIN_TOKEN})
    assert r.status == 200, r
    assert http("GET", s.payment.url("/breaker")).json()["state"] == "closed"
    assert http("POST", s.order.url("/create"), order_body(100)).json()["next"]["status"] == "ok"


def breaker_admin_name_selects_the_database_breaker(s):
    auth = {"X-Admin-Token": ADMIN_TOKEN}
    assert http("POST", s.payment.url("/breaker/open?name=nope"), b"", auth).status == 404
    try:
        r = http("POST", s.payment.url("/breaker/open?name=payment-%3Emongodb"), b"", auth)
        assert r.status == 200 and r.json()["name"] == "payment->mongodb", r
        assert r.json()["state"] == "forced-open", r.json()
        assert http("GET", s.payment.url("/breaker")).json()["state"] == "closed", \
            "the next hop's breaker must stay closed"
        body = order_body(101)["payment"]
        r = http("POST", s.payment.url("/create"), body)
        assert r.status == 503 and "circuit is open" in r.json()["error"], r
        assert r.elapsed < 0.5, f"an open database circuit must answer at once: {r.elapsed:.2f}s"
    finally:
        r = http("POST", s.payment.url("/breaker/close?name=payment-%3Emongodb"), b"", auth)
    assert r.status == 200 and r.json()["state"] == "closed", r
    assert http("POST", s.payment.url("/create"), order_body(102)["payment"]).status == 200


def cors_admin_routes_answer_no_other_origin(s):
    """Another origin's page may read the breakers but may not drive them: the
    admin routes' preflight is refused without any Access-Control-Allow-Origin,
    and their answers carry none (ADMIN_ALLOWED_ORIGIN is unset here)."""
    pre = {"Origin": "http://elsewhere.test", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization"}
    for svc in (s.payment, s.order):
        for path in ("/breaker/open", "/breaker/close"):
            r = http("OPTIONS", svc.url(path), None, pre)
            assert r.status >= 400, (svc.name, path, r)
            assert "access-control-allow-origin" not in r.headers, (svc.name, path, r.headers)
            assert "access-control-allow-methods" not in r.headers, (svc.name, path, r.headers)
    try:
        r = http("POST", s.payment.url("/breaker/open"), b"",
                 {"Origin": "http://elsewhere.test", "X-Admin-Token": ADMIN_TOKEN})
        assert r.status == 200 and "access-control-allow-origin" not in r.headers, r.headers
    finally:
        r = http("POST", s.payment.url("/breaker/close"), b"",
                 {"Origin": "http://elsewhere.test", "X-Admin-Token": ADMIN_TOKEN})
    assert r.status == 200 and "access-control-allow-origin" not in r.headers, r.headers
    r = http("POST", s.payment.url("/breaker/open"), b"", {"Origin": "http://elsewhere.test"})
    assert r.status == 401 and "access-control-allow-origin" not in r.headers, r.headers
    # The read-only routes stay open to every origin, as the demo's were.
    r = http("OPTIONS", s.payment.url("/breaker"), None, {**pre, "Access-Control-Request-Method": "GET"})
    assert r.status in (200, 204) and r.headers.get("access-control-allow-origin") == "*", r
    assert http("GET", s.payment.url("/health")).headers.get("access-control-allow-origin") == "*"


def admin_token_never_appears_in_answers_logs_or_metrics(s):
    """Every answer (right token, wrong token, refused framing, civetweb's own
    errors), /metrics, /health, /breaker and the service's log are searched
    for the token and for a wrong one sent in its place."""
    wrong = "wrong-guess-7d3a9"
    seen = []

    def keep(r):
        seen.append(r.status)
        seen.append(json.dumps(r.headers))
        seen.append(r.body.decode(errors="replace"))

    try:
        for headers in ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"X-Admin-Token": ADMIN_TOKEN},
                        {"Authorization": f"Bearer {wrong}"}, {"X-Admin-Token": wrong}):
            for path in ("/breaker/open?name=nope", "/breaker/open", "/breaker/close", "/breaker/x"):
                keep(http("POST", s.payment.url(path), b"", headers))
            keep(http("GET", s.payment.url("/breaker/open"), None, headers))
            keep(http("OPTIONS", s.payment.url("/breaker/open"), None,
                      {**headers, "Origin": "http://elsewhere.test", "Access-Control-Request-Method": "POST"}))
    finally:
        http("POST", s.payment.url("/breaker/close"), b"", {"X-Admin-Token": ADMIN_TOKEN})
    for token in (ADMIN_TOKEN, wrong):
        for raw in (b"POST /breaker/open HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                    b"Content-Length: 0\r\nContent-Length: 1\r\n\r\n" % token.encode(),
                    b"POST /breaker/open HTTP/1.1\r\nHost: x\r\nX-Admin-Token: %s\r\n"
                    b"X-Bad\t: 1\r\n\r\n" % token.encode()):
            with socket.create_connection(("127.0.0.1", s.payment.port), timeout=5) as c:
                c.sendall(raw)
                c.shutdown(socket.SHUT_WR)
                out = b""
                while chunk := c.recv(65536):
                    out += chunk
            assert out.startswith(b"HTTP/1.1 4"), out[:200]
            answer = out.decode(errors="replace")
            assert token not in answer, answer
            seen.append(answer)
    for path in ("/metrics", "/health", "/breaker", "/breaker?name=payment-%3Emongodb"):
        keep(http("GET", s.payment.url(path)))
    text = "\n".join(map(str, seen))
    for token in (ADMIN_TOKEN, wrong):
        assert token not in text, f"{token} in an answer"
        assert token not in s.payment.log(), f"{token} in the log"


# ---- the dashboard ------------------------------------------------------------------

def dashboard_files_are_served(s):
    for path, ctype in (("/dashboard", "text/html"), ("/dashboard/dashboard.js", "text/javascript"),
                        ("/dashboard/dashboard.css", "text/css")):
        r = http("GET", s.shipment.url(path))
        assert r.status == 200 and r.headers["content-type"].startswith(ctype), (path, r)
        assert len(r.body) > 500, path
        local = (ROOT / "common/svc/observe/dashboard" / (Path(path).name if "." in path else "index.html"))
        assert r.body == local.read_bytes(), f"{path} differs from {local}"
    assert http("GET", s.order.url("/dashboard/nope.js")).status == 404


CARDS_JS = """
return Array.from(document.querySelectorAll('section.card')).map(c => ({
  service: c.dataset.service, state: c.dataset.state, connected: c.dataset.connected,
  db: c.querySelector('.db') ? c.querySelector('.db').dataset.db : null,
  text: c.innerText,
  panels: Array.from(c.querySelectorAll('div.panel')).map(p => ({
    name: p.dataset.breaker, state: p.dataset.state}))}));
"""


def all_closed(card, n):
    """True when card is connected and shows n breaker panels, every one closed."""
    return (card["connected"] == "true" and card["state"] == "closed"
            and len(card["panels"]) == n and all(p["state"] == "closed" for p in card["panels"]))


def set_fault_from_dashboard(b, service, faults, expires_s=None):
    """Types faults ({kind: {field: text}}) and expires_s into service's card
    as a person would (every other fault field emptied), clicks Apply and
    waits for the answer; returns the message shown next to the controls."""
    card = f"section.card[data-service={service}]"
    # the rows are the service's table of faults (GET /chaos's "kinds"), built once it answers
    inputs = wait_until(lambda: b.script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map((i) => [i.dataset.fault, i.dataset.field])", f"{card} .faults input[data-fault]"),
        10, "the fault controls, built from GET /chaos")
    for kind, field in inputs:
        b.type(f"{card} input[data-fault={kind}][data-field={field}]",
               str(faults.get(kind, {}).get(field, "")))
    b.type(f"{card} input[data-field=expires_s]", "" if expires_s is None else str(expires_s))
    b.click(f"{card} button[data-action=apply]")
    return wait_until(lambda: (lambda m: m if m and not m["text"].endswith("…") else None)(
        b.script("const m = document.querySelector(arguments[0]);"
                 "return m.textContent ? {text: m.textContent, ok: m.classList.contains('ok')}"
                 " : null", f"{card} .msg[data-for=chaos]")), 10, "the answer to Apply")


def dashboard_shows_breakers_live_in_chromium(s):
    services = ",".join(f"{svc.name}@http://127.0.0.1:{svc.port}" for svc in s.services)
    url = f"http://127.0.0.1:{s.order.port}/dashboard?services={services}"
    shot = RESULTS / "dashboard.png"
    with Browser() as b:
        b.get(url)

        def ready():
            cards = b.script(CARDS_JS)
            by = {c["service"]: c for c in cards}
            ok = (len(cards) == 3 and all_closed(by["order"], 2) and all_closed(by["payment"], 2)
                  and all_closed(by["shipment"], 1))
            return by if ok else None
        by = wait_until(ready, 15, "three connected cards showing five closed breakers: order's "
                        "and payment's next hop and database, shipment's database")
        errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
        assert not errors, f"console errors: {errors}"
        # payment's breaker opens when shipment is gone and requests arrive:
        # send orders until payment's own /breaker says open (bounded), then
        # the card must follow within 2 seconds
        s.shipment.stop()
        try:
            for i in range(40):
                body = http("POST", s.order.url("/create"), order_body(200 + i)).json()
                assert body["next"]["status"] == "degraded", body
                if http("GET", s.payment.url("/breaker")).json()["state"] == "open":
                    break
            else:
                raise AssertionError("payment's breaker did not open after 40 failing calls")
            sent_at = time.monotonic()

            def payment_open():
                c = {c["service"]: c for c in b.script(CARDS_JS)}
                hop = [p for p in c["payment"]["panels"] if not p["name"].endswith("->mongodb")]
                return c if hop and hop[0]["state"] == "open" and c["payment"]["state"] == "open" \
                    else None
            by = wait_until(payment_open, 2.0, "payment's card to show open", interval=0.05)
            took = time.monotonic() - sent_at
            assert by["order"]["state"] == "closed", by
            assert by["shipment"]["state"] == "offline", by
            # the chart of an unreachable service breaks its lines there
            assert b.script("return Array.from(dashboardServices.find(v => v.name === 'shipment')"
                            ".panels.values()).every(p => p.samples.some(v => v.gap))"), \
                "shipment's chart has no gap while it is unreachable"
            feed = b.script("return document.querySelector('section.card[data-service=payment]"
                            " ul.feed').innerText")
            assert "open" in feed, feed
            # keep the picture: a couple more samples on the chart
            time.sleep(1.5)
            b.screenshot(shot)
            print(f"payment's card showed open {took:.2f}s after its breaker opened; screenshot {shot}")
            # shipment was stopped on purpose: a request to it may be refused, or cut
            # without an answer when it was in flight at the stop; nothing else may fail
            gone = f"http://127.0.0.1:{s.shipment.port}/"
            errors = [e for e in b.logs() if e.get("level") == "SEVERE"
                      and "ERR_CONNECTION_REFUSED" not in e.get("message", "")
                      and not e.get("message", "").startswith(gone)]
            assert not errors, f"console errors: {errors}"
        finally:
            s.ensure_running()


def open_dashboard(s, b):
    """Opens the dashboard on the suite's three services and waits for the
    five breakers, connected and closed, and the database shown up on each card."""
    s.ensure_running()
    close_payment_and_clear_faults(s)   # an earlier test may have left it open
    services = ",".join(f"{svc.name}@http://127.0.0.1:{svc.port}" for svc in s.services)
    b.get(f"http://127.0.0.1:{s.order.port}/dashboard?services={services}")
    seen = []

    def ready():
        by = {c["service"]: c for c in b.script(CARDS_JS)}
        seen[:] = [{k: v for k, v in c.items() if k != "text"} for c in by.values()]
        ok = (len(by) == 3 and all_closed(by["order"], 2) and all_closed(by["payment"], 2)
              and all_closed(by["shipment"], 1) and all(c["db"] == "up" for c in by.values()))
        return by if ok else None
    try:
        return wait_until(ready, 15, "three connected cards, five closed breakers, databases up")
    except TimeoutError as e:
        raise AssertionError(f"{e}; the cards: {seen}")


def card_value(b, service, css, what="textContent"):
    return b.script(f"const e = document.querySelector(arguments[0]); return e ? e.{what} : null",
                    f"section.card[data-service={service}] {css}")


def payment_hop_state(b):
    return next(p["state"] for p in {c["service"]: c for c in b.script(CARDS_JS)}["payment"]["panels"]
                if not p["name"].endswith("->mongodb"))


def send_until_payment_opens(s, start):
    """Sends orders until payment's next-hop breaker says open (bounded); returns the count."""
    for i in range(40):
        body = http("POST", s.order.url("/create"), order_body(start + i)).json()
        assert body["next"]["status"] == "degraded", body
        if http("GET", s.payment.url("/breaker")).json()["state"] == "open":
            return i + 1
    raise AssertionError("payment's breaker did not open after 40 failing calls")


def close_payment_and_clear_faults(s):
    auth = {"X-Admin-Token": ADMIN_TOKEN}
    for svc in (s.shipment, s.payment):
        assert http("DELETE", svc.url("/chaos"), None, auth).status == 200
    assert http("POST", s.payment.url("/breaker/close"), b"", auth).status == 200
    assert http("GET", s.payment.url("/breaker")).json()["state"] == "closed"


def dashboard_controls_set_a_fault_and_the_breaker_opens(s):
    with Browser() as b:
        open_dashboard(s, b)
        try:
            # without a token, with a wrong one, on a service without ADMIN_TOKEN
            # and with a bad value: each refused, in words, next to the control
            m = set_fault_from_dashboard(b, "shipment", {"error": {"fraction": "1"}})
            assert not m["ok"] and "admin token" in m["text"], m
            b.type("#token", "wrong-token")
            m = set_fault_from_dashboard(b, "shipment", {"error": {"fraction": "1"}})
            assert not m["ok"] and "401" in m["text"] and "token" in m["text"], m
            b.type("#token", ADMIN_TOKEN)
            assert b.script("return sessionStorage.getItem('dashboard.adminToken')") == ADMIN_TOKEN
            m = set_fault_from_dashboard(b, "order", {"error": {"fraction": "1"}})
            assert not m["ok"] and "404" in m["text"] and "ADMIN_TOKEN" in m["text"], m
            m = set_fault_from_dashboard(b, "shipment", {"error": {"fraction": "2"}})
            assert not m["ok"] and "400" in m["text"] and "error.fraction" in m["text"], m
            assert http("GET", s.shipment.url("/chaos")).json()["faults"] == {}, "nothing applied"
            # the fault, typed into shipment's card: in force on the service and on the page
            m = set_fault_from_dashboard(b, "shipment", {"error": {"fraction": "1"}}, 120)
            assert m["ok"], m
            faults = http("GET", s.shipment.url("/chaos")).json()["faults"]
            assert list(faults) == ["error"] and faults["error"]["fraction"] == 1, faults
            assert 100 < faults["error"]["expires_in_s"] <= 120, faults
            shown = card_value(b, "shipment", ".inforce")
            assert "error 100%" in shown and "ends in" in shown, shown
            # payment's calls to shipment now fail: its breaker opens, and the page shows it
            send_until_payment_opens(s, 300)
            sent_at = time.monotonic()
            wait_until(lambda: payment_hop_state(b) == "open", 2.0,
                       "payment's panel to show open", interval=0.05)
            print(f"payment's panel showed open {time.monotonic() - sent_at:.2f}s after its "
                  "breaker opened (fault set from the dashboard)")
            states = card_value(b, "payment", "ul.states", "innerText")
            assert " open (now open)" in states, states
            # Clear: the fault ends on the service and on the page
            b.click("section.card[data-service=shipment] button[data-action=clear]")
            wait_until(lambda: http("GET", s.shipment.url("/chaos")).json()["faults"] == {}, 5,
                       "Clear to delete the faults")
            wait_until(lambda: card_value(b, "shipment", ".inforce") == "faults in force: none", 5,
                       "the page to show no faults")
            # a database fault on every request: the card's indicator says down, then up
            m = set_fault_from_dashboard(b, "shipment", {"database": {"fraction": "1"}}, 60)
            assert m["ok"], m
            wait_until(lambda: card_value(b, "shipment", ".db", "dataset.db") == "down", 6,
                       "shipment's database indicator to say down")
            b.click("section.card[data-service=shipment] button[data-action=clear]")
            wait_until(lambda: card_value(b, "shipment", ".db", "dataset.db") == "up", 6,
                       "shipment's database indicator to say up again")
            # the force buttons of a breaker's panel
            panel = "section.card[data-service=payment] div.panel[data-breaker='payment->mongodb']"
            b.click(f"{panel} button[data-action=open]")
            wait_until(lambda: http("GET", s.payment.url("/breaker?name=payment-%3Emongodb")).json()[
                "state"] == "forced-open", 5, "force open to reach payment's database breaker")
            wait_until(lambda: b.script("return document.querySelector(arguments[0]).dataset.state",
                                        panel) == "forced-open", 3, "the panel to show forced-open")
            b.click(f"{panel} button[data-action=close]")
            wait_until(lambda: http("GET", s.payment.url("/breaker?name=payment-%3Emongodb")).json()[
                "state"] == "closed", 5, "close to reach payment's database breaker")
            errors = [e for e in b.logs() if e.get("level") == "SEVERE"
                      and not re.search(r"/chaos|/breaker/|/health - .* 503", e.get("message", ""))]
            assert not errors, f"console errors: {errors}"
        finally:
            close_payment_and_clear_faults(s)


FIT_JS = """
const se = document.scrollingElement;
const cards = Array.from(document.querySelectorAll('section.card'));
return {height: se.scrollHeight, inner: innerHeight, width: se.scrollWidth, innerW: innerWidth,
  cards: cards.map(c => ({service: c.dataset.service, bottom: c.getBoundingClientRect().bottom,
    overflowX: c.scrollWidth - c.clientWidth, overflowY: c.scrollHeight - c.clientHeight}))};
"""


def check_fit(b, when):
    """Asserts that the page does not scroll and no card overflows; returns the sizes."""
    f = b.script(FIT_JS)
    assert f["height"] <= f["inner"] and f["width"] <= f["innerW"], (when, f)
    for c in f["cards"]:
        assert c["bottom"] <= f["inner"] and c["overflowX"] <= 0 and c["overflowY"] <= 0, \
            (when, c)
    return f


def dashboard_fits_1400x1000_and_pins_state_changes(s):
    with Browser() as b:
        assert b.set_viewport(1400, 1000) == [1400, 1000]
        open_dashboard(s, b)
        f = check_fit(b, "at start")
        print(f"page {f['width']}x{f['height']} in a {f['innerW']}x{f['inner']} window")
        try:
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            r = http("PUT", s.shipment.url("/chaos"), {"error": {"fraction": 1, "expires_s": 120}},
                     auth)
            assert r.status == 200, r
            send_until_payment_opens(s, 400)
            wait_until(lambda: payment_hop_state(b) == "open", 2.0, "payment's panel to show open")
            # every order now costs payment a reject and a fallback: 80 events that
            # collapse into one line each ("reject x40, 12:00:03-12:00:09"), so
            # the open line stays in the feed and in the pinned list
            for i in range(40):
                http("POST", s.order.url("/create"), order_body(500 + i))

            def collapsed():
                lines = b.script("return Array.from(document.querySelectorAll("
                                 "'section.card[data-service=payment] ul.feed li')).map(li =>"
                                 " ({event: li.dataset.event, count: +li.dataset.count,"
                                 " text: li.innerText}))")
                rejects = [li for li in lines if li["event"] == "reject"]
                return lines if len(rejects) == 1 and rejects[0]["count"] >= 40 else None
            lines = wait_until(collapsed, 5, "the 40 rejects collapsed into one line")
            reject = next(li for li in lines if li["event"] == "reject")
            assert re.search(r"payment -> shipment: reject x\d+, \d\d:\d\d:\d\d-\d\d:\d\d:\d\d "
                             r"\(now open\) CB_EOPEN", reject["text"]), reject
            since_open = next(i for i, li in enumerate(lines) if li["event"] == "open")
            assert since_open <= 3, f"{since_open} lines for 80 events since the open: {lines}"
            print(f"feed after 40 rejected orders: {[li['text'] for li in lines]}")
            states = card_value(b, "payment", "ul.states", "innerText")
            assert " open (now open)" in states, states
            # full lines: wrapped, none cut
            lines = b.script("""return Array.from(document.querySelectorAll('ul.log li')).map(li =>
                ({ws: getComputedStyle(li).whiteSpace, cut: li.scrollWidth - li.clientWidth}))""")
            assert lines and all(li["ws"] == "normal" and li["cut"] <= 0 for li in lines), lines
            check_fit(b, "with the feeds full")
        finally:
            close_payment_and_clear_faults(s)


def dashboard_defaults_to_ports_3000_to_3002_as_make_run(s):
    from harness import port_open
    busy = [p for p in (3000, 3001, 3002) if port_open(p)]
    if busy:
        raise Skip(f"ports {busy} are in use here (make run or compose?); cannot check the defaults")
    with Stack(flavour=s.stack.flavour, shared_db=s.db) as st:
        ship = st.service("shipment", port=3002)
        pay = st.service("payment", chain=ship, port=3001)
        st.service("order", chain=pay, port=3000)
        with Browser() as b:
            b.get("http://localhost:3000/dashboard")
            wait_until(lambda: [len(c["panels"]) for c in b.script(CARDS_JS)
                                if all_closed(c, len(c["panels"]))] == [2, 2, 1],
                       15, "the default three services, connected, five breakers closed")
            errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
            assert not errors, f"console errors: {errors}"
    assert not st.problems, st.problems


def dashboard_follows_the_chain_from_its_own_origin(s):
    """Served from order on the suite's (free, non-default) ports and opened without
    ?services=, the page finds payment and shipment from each /health's "next" and shows all
    three reachable; nothing on 3000-3002 is asked."""
    from harness import port_open
    s.ensure_running()
    ports = {svc.name: svc.port for svc in s.services}
    assert not {3000, 3001, 3002} & set(ports.values()), ports
    busy = [p for p in (3000, 3001, 3002) if port_open(p)]
    h = http("GET", s.order.url("/health")).json()
    assert h["next"] == {"name": "payment", "url": f"http://127.0.0.1:{s.payment.port}"}, h
    assert "next" not in http("GET", s.shipment.url("/health")).json()
    with Browser() as b:
        b.get(f"http://127.0.0.1:{s.order.port}/dashboard")

        def ready():
            by = {c["service"]: c for c in b.script(CARDS_JS)}
            ok = (list(by) == ["order", "payment", "shipment"] and all_closed(by["order"], 2)
                  and all_closed(by["payment"], 2) and all_closed(by["shipment"], 1))
            return by if ok else None
        wait_until(ready, 15, "three connected cards found from order's origin")
        chain = b.script("return document.body.dataset.chain")
        want = ",".join(f"{n}@http://127.0.0.1:{p}" for n, p in ports.items())
        assert chain == want, (chain, want)
        # every breaker by what it protects, in each service's own order (the next hop's
        # first), whichever event made its panel first
        want_labels = ["order -> payment", "order -> database", "payment -> shipment",
                       "payment -> database", "shipment -> database"]
        labels_js = "return Array.from(document.querySelectorAll('.panel .bname')).map(e => e.textContent)"
        try:
            wait_until(lambda: b.script(labels_js) == want_labels, 6, "the panels' labels in order")
        except TimeoutError:
            raise AssertionError(b.script(labels_js)) from None
        errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
        assert not errors, f"console errors: {errors}"
    print(f"chain found: {chain} (ports 3000-3002 in use here: {busy or 'none'})")


def dashboard_opened_late_shows_the_last_state_change(s):
    """A page opened after payment's breaker opened and 40 orders were rejected (80 events,
    far past the stream's 20-event replay) still lists the open transition."""
    s.ensure_running()
    close_payment_and_clear_faults(s)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        assert http("PUT", s.shipment.url("/chaos"),
                    {"error": {"fraction": 1, "expires_s": 120}}, auth).status == 200
        send_until_payment_opens(s, 700)
        for i in range(40):
            http("POST", s.order.url("/create"), order_body(750 + i))
        assert http("GET", s.payment.url("/breaker")).json()["state"] == "open"
        with Browser() as b:
            b.get(f"http://127.0.0.1:{s.order.port}/dashboard")
            states = wait_until(lambda: (lambda t: t if t and " open (now open)" in t else None)(
                card_value(b, "payment", "ul.states", "innerText")), 10,
                "the open transition in payment's state changes")
            kept = b.script("return document.querySelectorAll("
                            "'section.card[data-service=payment] ul.states li[data-kept]').length")
            assert kept >= 1, "the open line did not come from the kept transitions"
            assert "payment -> shipment: open (now open)" in states, states
            print(f"payment's state changes on a late page: {states!r}")
    finally:
        close_payment_and_clear_faults(s)


def error_percentage_stays_at_most_100_under_a_100_percent_fault(s):
    """Under load with every call to shipment failing (after 300 ms, so that calls are in
    flight across the window's edge), payment's /health errorPercentage and the page's
    error % stay <= 100 for 14 s (longer than the 10 s window). Takes the screenshot."""
    s.ensure_running()
    close_payment_and_clear_faults(s)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    stop = threading.Event()

    def load(k):
        n = 0
        while not stop.is_set():
            try:
                http("POST", s.order.url("/create"), order_body(10000 + k * 1000 + n))
            except Exception:
                pass
            n += 1
            stop.wait(0.2)
    # about 10 orders/s, the classroom's load: rejects do not drown the failures
    workers = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(3)]
    seen_health, seen_page = [], []
    try:
        assert http("PUT", s.shipment.url("/chaos"), {
            "error": {"fraction": 1, "expires_s": 120},
            "latency": {"fraction": 1, "ms": 300, "expires_s": 120}}, auth).status == 200
        with Browser() as b:
            assert b.set_viewport(1400, 1000) == [1400, 1000]
            b.get(f"http://127.0.0.1:{s.order.port}/dashboard")
            wait_until(lambda: len(b.script(CARDS_JS)) == 3, 15, "three cards")
            for w in workers:
                w.start()
            end = time.monotonic() + 14
            shot_at = time.monotonic() + 6
            while time.monotonic() < end:
                for br in http("GET", s.payment.url("/health")).json()["breakers"]:
                    seen_health.append(br["errorPercentage"])
                seen_page += [float(v) for v in b.script(
                    "return Array.from(document.querySelectorAll('.figure .v'))"
                    ".filter(v => v.nextSibling && v.nextSibling.textContent.startsWith('error %'))"
                    ".map(v => v.textContent)") if v not in ("-", "")]
                if shot_at and time.monotonic() >= shot_at:
                    b.screenshot(Path("/tmp/dash-shot.png"))
                    b.screenshot(RESULTS / "dashboard-fault.png")
                    shot_at = None
                time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            if w.is_alive():
                w.join(5)
        close_payment_and_clear_faults(s)
    print(f"error %: /health max {max(seen_health):.1f} of {len(seen_health)}, "
          f"page max {max(seen_page):.0f} of {len(seen_page)}")
    assert max(seen_health) > 20 and max(seen_page) > 20, "the fault never showed"
    assert max(seen_health) <= 100 and max(seen_page) <= 100, (max(seen_health), max(seen_page))


def calm_button_clears_a_fault_and_a_forced_breaker(s):
    """With the token typed, "Calm everything" deletes shipment's fault and closes payment's
    database breaker forced open, on the services themselves, and says what it cleared."""
    s.ensure_running()
    close_payment_and_clear_faults(s)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        with Browser() as b:
            open_dashboard(s, b)
            assert http("PUT", s.shipment.url("/chaos"),
                        {"error": {"fraction": 0.3, "expires_s": 120}}, auth).status == 200
            assert http("POST", s.payment.url("/breaker/open?name=payment-%3Emongodb"), b"",
                        auth).status == 200
            b.click("#calm")
            m = wait_until(lambda: b.script("const m = document.getElementById('calm-msg');"
                                            "return m.dataset.done ? m.textContent : null"),
                           5, "the button's message")
            assert "type the admin token" in m, m
            b.script("document.getElementById('calm-msg').dataset.done = ''")
            b.type("#token", ADMIN_TOKEN)
            b.click("#calm")
            m = wait_until(lambda: b.script("const m = document.getElementById('calm-msg');"
                                            "return m.dataset.done ? m.textContent : null"),
                           10, "the button's report")
            assert http("GET", s.shipment.url("/chaos")).json()["faults"] == {}
            assert http("GET", s.payment.url("/breaker?name=payment-%3Emongodb")).json()[
                "state"] == "closed"
            assert "shipment: cleared error" in m and "30%" in m, m
            assert "closed payment -> database (was forced-open)" in m, m
            assert "order:" in m and "ADMIN_TOKEN" in m, m      # order runs without admin routes
            print(f"Calm everything said: {m}")
    finally:
        close_payment_and_clear_faults(s)


def supervisor_status(restarts):
    """A status file as make run writes it (scripts/run.sh's status_write), with these restarts."""
    procs = {}
    for name, n in restarts.items():
        procs[name] = {"pid": 1000 + n, "state": "running", "started_at": "2026-01-01T00:00:00.000Z",
                       "restarts": n, "watchdog_kills": 1 if name == "ferretdb" and n else 0,
                       "last_exit": "signal KILL" if n else None,
                       "last_exit_at": "2026-01-01T00:00:00.000Z" if n else None}
    return {"supervisor": "scripts/run.sh", "pid": 999, "run_dir": "/nowhere",
            "watchdog": {"process": "ferretdb", "every_s": 2, "timeout_s": 2, "misses": 3},
            "processes": procs}


def health_and_dashboard_show_make_runs_restarts(s):
    """A service started with RUN_STATUS_FILE (as make run starts it) shows the file in /health's
    "supervisor", read afresh on every /health; the dashboard shows each process's restarts."""
    status_file = s.stack.tmp / "status.json"
    status_file.write_text(json.dumps(supervisor_status(
        {"postgres": 0, "ferretdb": 1, "shipment": 0, "payment": 2, "order": 0})))
    svc = s.stack.service("shipment", env={"RUN_STATUS_FILE": str(status_file)}, label="shipment-supervised")
    try:
        sup = http("GET", svc.url("/health")).json().get("supervisor")
        assert sup and sup["processes"]["payment"]["restarts"] == 2, sup
        url = (f"http://127.0.0.1:{s.order.port}/dashboard?services=shipment@http://127.0.0.1:{svc.port}")
        chips_js = ("return Array.from(document.querySelectorAll('#supervisor .chip'))"
                    ".map(c => [c.dataset.process, c.dataset.restarts, c.title])")
        with Browser() as b:
            b.get(url)
            chips = wait_until(lambda: b.script(chips_js) or None, 10, "the supervisor's row")
            by = {name: (n, title) for name, n, title in chips}
            assert [c[0] for c in chips] == ["postgres", "ferretdb", "shipment", "payment", "order"], chips
            assert by["payment"][0] == "2" and by["ferretdb"][0] == "1", chips
            assert "1 by the watchdog" in by["ferretdb"][1] and "signal KILL" in by["payment"][1], chips
            # the file changes (another restart): the next /health read shows it, no restart of the service
            status_file.write_text(json.dumps(supervisor_status(
                {"postgres": 0, "ferretdb": 1, "shipment": 0, "payment": 3, "order": 0})))
            wait_until(lambda: {c[0]: c[1] for c in b.script(chips_js)}.get("payment") == "3", 6,
                       "the dashboard to show payment's third restart")
            errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
            assert not errors, f"console errors: {errors}"
        status_file.unlink()
        sup = http("GET", svc.url("/health")).json().get("supervisor")
        assert sup == {"error": "cannot open RUN_STATUS_FILE", "file": str(status_file)}, sup
        assert "supervisor" not in http("GET", s.shipment.url("/health")).json(), \
            "a service without RUN_STATUS_FILE has no supervisor in /health"
    finally:
        svc.stop()


RETRY_JS = """
const box = document.querySelector(`section.card[data-service=${arguments[0]}] .retry`);
if (!box) return null;
const counts = {};
for (const f of box.querySelectorAll('.figure[data-count]'))
  counts[f.dataset.count] = {value: f.dataset.value, text: f.querySelector('.v').textContent,
                             amp: f.dataset.amplification, title: f.title};
const budget = box.querySelector('.rbudget');
return {hidden: box.hidden, shown: box.offsetParent !== null, on: box.dataset.on,
  settings: box.querySelector('.rsettings').textContent,
  settingsTitle: box.querySelector('.rsettings').title, counts,
  budget: {shown: budget.offsetParent !== null, tokens: budget.dataset.tokens, max: budget.dataset.max,
           width: budget.querySelector('.rfill').style.width,
           text: budget.querySelector('.rtokens').textContent, title: budget.title}};
"""

# Records, from now on, which of a card's retry counts get marked as changed.
WATCH_CHANGES_JS = """
const box = document.querySelector(`section.card[data-service=${arguments[0]}] .retry`);
window.retryChanged = new Set();
new MutationObserver((records) => records.forEach((m) => {
  if (m.target.classList.contains('changed')) window.retryChanged.add(m.target.dataset.count);
})).observe(box, {subtree: true, attributes: true, attributeFilter: ['class']});
"""

RETRY_COUNT_KEYS = ("calls", "attempts", "retries", "budget_exhausted", "retries_exhausted")


def dashboard_shows_the_retry_policy(s):
    """Each card's retry panel, drawn from the /health the page already polls: off on order
    (RETRY_ATTEMPTS=1), off at payment until POST /retry sets 3 attempts and then on with its
    settings, hidden on shipment (the last hop: no "retry" in its /health, as an older service).
    Orders then meet an error fault on half of shipment's calls: payment's panel shows the counts
    of payment's own /health (attempts above calls, retries = attempts - calls, the
    amplification, the budget's tokens as a bar), marks the counts that moved, and order's stays
    off with no call counted."""
    admin = {"ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_AUTH_BURST": "1000"}
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    # A chain of its own, so that its counts start at zero and the suite's stack keeps retries
    # off. Payment's breaker opens only when every call of its window fails, so that each failed
    # attempt meets the retry policy rather than an open circuit.
    ship = s.stack.service("shipment", env=admin, label="shipment-retry")
    pay = s.stack.service("payment", chain=ship, env={**admin, "CB_ERROR_THRESHOLD": "100"},
                          label="payment-retry")
    order = s.stack.service("order", chain=pay, env={"RETRY_ATTEMPTS": "1"}, label="order-retry")
    trio = {"order": order, "payment": pay, "shipment": ship}   # their cards' names
    sent = 30
    try:
        assert "retry" not in http("GET", ship.url("/health")).json(), "shipment has no next hop"
        services = ",".join(f"{name}@http://127.0.0.1:{v.port}" for name, v in trio.items())
        with Browser() as b:
            assert b.set_viewport(1400, 1000) == [1400, 1000]
            b.get(f"{order.url('/dashboard')}?services={services}")

            def panels():
                return {name: b.script(RETRY_JS, name) for name in trio}
            off = "off (RETRY_ATTEMPTS=1)"
            p = wait_until(lambda: (lambda p: p if all(p[n] and p[n]["shown"] and p[n]["on"] == "false"
                                                       and p[n]["settings"] == off
                                                       for n in ("order", "payment"))
                                    and p["shipment"]["on"] == "" else None)(panels()),
                           10, "order's and payment's retry panels to say off")
            assert p["shipment"]["hidden"] and not p["shipment"]["shown"], p["shipment"]
            for name in ("order", "payment"):
                assert not p[name]["budget"]["shown"], (name, p[name]["budget"])
                assert {k: c["value"] for k, c in p[name]["counts"].items()} == \
                    {k: "0" for k in RETRY_COUNT_KEYS}, p[name]["counts"]
                for k, c in p[name]["counts"].items():
                    assert "/health" in c["title"], (k, c["title"])
            # retries on at payment, at runtime, with the admin token
            r = http("POST", pay.url("/retry"), {"attempts": 3, "base_ms": 20, "cap_ms": 100}, auth)
            assert r.status == 200 and r.json()["on"] is True and r.json()["budget_tokens"] == 10, r
            want = "on · 3 attempts · back-off 20..100 ms"
            p = wait_until(lambda: (lambda p: p if p["on"] == "true" and p["settings"] == want
                                    else None)(b.script(RETRY_JS, "payment")),
                           6, "payment's retry panel to say on with the new settings")
            assert p["budget"]["shown"] and p["budget"]["max"] == "10", p["budget"]
            assert p["budget"]["tokens"] == "10" and p["budget"]["width"] == "100%", p["budget"]
            assert p["budget"]["text"] == "10.0/10 tokens, +0.1 a success", p["budget"]
            assert "changed 1 time(s) by POST /retry" in p["settingsTitle"], p["settingsTitle"]
            b.script(WATCH_CHANGES_JS, "payment")
            # half of shipment's calls answer 502, which payment retries
            r = http("PUT", ship.url("/chaos"), {"error": {"fraction": 0.5, "expires_s": 30}}, auth)
            assert r.status == 200, r
            try:
                statuses = [http("POST", order.url("/create"), order_body(700 + i)).status
                            for i in range(sent)]
            finally:
                assert http("DELETE", ship.url("/chaos"), None, auth).status == 200
            assert statuses == [200] * sent, statuses
            # no more calls: payment's counts stay as they are now, and the page must show them
            retry = http("GET", pay.url("/health")).json()["retry"]
            st = retry["stats"]
            print(f"payment's retry counts after {sent} orders at a 50% error fault: {st}")
            assert retry["on"] is True and retry["attempts"] == 3, retry
            assert st["calls"] == sent, st
            assert st["attempts"] > st["calls"], st
            # retries = attempts - calls, plus the calls whose deadline passed before any
            # attempt, which are among deadline_exceeded
            assert st["retries"] >= st["attempts"] - st["calls"], st
            if st["deadline_exceeded"] == 0:
                assert st["retries"] == st["attempts"] - st["calls"], st
            assert st["attempts"] <= 3 * st["calls"], st
            want_counts = {k: str(st[k]) for k in RETRY_COUNT_KEYS}
            amp = f"{st['attempts'] / st['calls']:.2f}"
            seen = []

            def shows_health():
                p = b.script(RETRY_JS, "payment")
                seen[:] = [p]
                return p if {k: c["value"] for k, c in p["counts"].items()} == want_counts \
                    and float(p["budget"]["tokens"]) == st["budget_tokens"] else None
            try:
                p = wait_until(shows_health, 6, "payment's retry panel to show its /health counts")
            except TimeoutError as e:
                raise AssertionError(f"{e}: /health {st}, panel {seen}")
            assert http("GET", pay.url("/health")).json()["retry"]["stats"] == st, "counts moved"
            for k in RETRY_COUNT_KEYS:
                assert p["counts"][k]["text"].startswith(str(st[k])), (k, p["counts"][k])
            assert p["counts"]["retries"]["amp"] == amp, (amp, p["counts"]["retries"])
            assert p["counts"]["retries"]["text"] == f"{st['retries']} ×{amp}", p["counts"]["retries"]
            tokens = st["budget_tokens"]
            assert abs(float(p["budget"]["text"].split("/")[0]) - tokens) <= 0.05, p["budget"]
            assert p["budget"]["text"].endswith("/10 tokens, +0.1 a success"), p["budget"]
            width = max(0.0, min(1.0, tokens / 10)) * 100
            assert abs(float(p["budget"]["width"].rstrip("%")) - width) <= 0.1, (width, p["budget"])
            changed = b.script("return Array.from(window.retryChanged)")
            assert {"calls", "attempts", "retries"} <= set(changed), changed
            # order: retries off, no call through its policy; shipment: still no panel
            o = b.script(RETRY_JS, "order")
            assert o["on"] == "false" and o["settings"] == off, o
            assert o["counts"]["calls"]["value"] == "0", o["counts"]
            assert http("GET", order.url("/health")).json()["retry"]["stats"]["calls"] == 0
            assert b.script(RETRY_JS, "shipment")["hidden"]
            check_fit(b, "with payment's retry panel on")
            shot = RESULTS / "dashboard-retry.png"
            b.screenshot(shot)
            print(f"payment's panel: {p['settings']}; {p['counts']['retries']['text']} retries; "
                  f"budget {p['budget']['text']}; screenshot {shot}")
            errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
            assert not errors, f"console errors: {errors}"
    finally:
        codes = {v.name: v.stop() for v in trio.values()}
    assert all(rc == 0 for rc in codes.values()), f"exit codes on SIGTERM: {codes}"


# ---- the trace view --------------------------------------------------------------

# What the trace view shows: its state and, per row, the span it draws with the
# geometry of its bar and of its event marks (CSS pixels).
TRACE_JS = """
const v = document.getElementById('trace-view');
const box = (e) => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,
                                                                  bottom: r.bottom}; };
const body = document.getElementById('trace-body');
return {hidden: v.hidden, state: v.dataset.state || '', trace: v.dataset.trace || '', whole: v.dataset.whole || '',
  cardsHidden: document.getElementById('cards').hidden,
  summary: document.getElementById('trace-summary').textContent,
  message: (body.querySelector('.trace-msg') || {}).textContent || '',
  bodyScroll: body.scrollHeight - body.clientHeight,
  pageScroll: document.scrollingElement.scrollHeight - innerHeight,
  rows: Array.from(document.querySelectorAll('.wf-row:not(.wf-axis)')).map(r => ({
    service: r.dataset.service, name: r.dataset.name, ms: +r.dataset.ms, failed: r.dataset.failed === 'true',
    depth: +r.dataset.depth, text: r.querySelector('.wf-name').innerText,
    badge: !!r.querySelector('.wf-failed'), bar: box(r.querySelector('.wf-bar')),
    colour: getComputedStyle(r.querySelector('.wf-bar')).backgroundColor,
    marks: Array.from(r.querySelectorAll('.wf-mark')).map(m => ({events: m.dataset.events, ...box(m)})),
    labels: Array.from(r.querySelectorAll('.wf-evlabel')).map(l => l.textContent)})),
  ticks: Array.from(document.querySelectorAll('.wf-ticklabel')).map(t => t.textContent)};
"""


def trace_rows(b, tid, count):
    """Waits until the trace view shows trace tid whole, with count rows or more; returns TRACE_JS."""
    seen = []

    def shown():
        t = b.script(TRACE_JS)
        seen[:] = [t]
        return t if t["state"] == "shown" and t["trace"] == tid and t["whole"] == "true" \
            and len(t["rows"]) >= count else None
    try:
        return wait_until(shown, 20, f"the trace view to draw trace {tid} whole")
    except TimeoutError as e:
        raise AssertionError(f"{e}; the view: {json.dumps(seen)[:1500]}") from None


def row(t, service, name):
    found = [r for r in t["rows"] if r["service"] == service and r["name"] == name]
    assert len(found) == 1, f"one row {service} {name!r}: {[(r['service'], r['name']) for r in t['rows']]}"
    return found[0]


def recent(b, choice):
    """Opens the trace view's recent list with filter choice; waits for it and returns its
    rows, [trace id, words] each."""
    if b.script("return document.getElementById('trace-view').hidden"):
        b.click("#trace-recent")
    else:
        b.click("#trace-back")
    wait_until(lambda: b.script("return document.querySelector('button[data-filter]') !== null"), 10,
               "the recent list's filters")
    b.click(f"button[data-filter={choice}]")
    wait_until(lambda: b.script("const v = document.getElementById('trace-view');"
                                "return v.dataset.state === 'recent' && v.dataset.filter === arguments[0]", choice),
               10, f"the recent list of {choice}")
    return b.script("return Array.from(document.querySelectorAll('a.recent-row'))"
                    ".map(a => [a.dataset.trace, a.innerText])")


def dashboard_draws_a_degraded_requests_trace_from_jaeger(s):
    """A real Jaeger, the three services sending it their spans (TRACES_QUERY_URL naming its
    query API) and the cascade lesson's shape: shipment 1 s slow, payment waits 300 ms
    (CB_TIMEOUT_MS=300, deadlines not passed on), order 3 s. The degraded request's
    /dashboard#trace=<id> draws its 13 spans on the three services: each row under its
    parent, payment's client span failed at about 300 ms, payment's breaker span failed with
    its timeout and fallback marks on its bar, the answer's outcome on order's row; all of it
    on one 1400x1000 screen. The recent list links to it; "Send one" opens a new request's
    trace; a half-open trial that failed is among the recent list's trials, and its breaker
    span says half-open → open."""
    order_port = harness.free_port()
    origins = [f"http://127.0.0.1:{order_port}", f"http://localhost:{order_port}"]
    j = Jaeger(s.stack, cors_origins=origins)
    # Jaeger answers the page's origin, and no other
    r = http("GET", f"{j.query_url}/api/services", headers={"Origin": origins[0]})
    assert r.headers.get("access-control-allow-origin") == origins[0], r.headers
    r = http("GET", f"{j.query_url}/api/services", headers={"Origin": "http://127.0.0.1:1"})
    assert "access-control-allow-origin" not in r.headers, r.headers
    admin = {"ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_AUTH_BURST": "1000"}
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    env = j.env(TRACES_QUERY_URL=j.query_url)
    ship = s.stack.service("shipment", env={**env, **admin}, label="shipment-trace")
    # a volume threshold, so that the two timed-out calls leave payment's breaker closed
    pay = s.stack.service("payment", chain=ship, env={**env, "CB_TIMEOUT_MS": "300", "CB_VOLUME_THRESHOLD": "5",
                                                      "CB_RESET_TIMEOUT_MS": "1000", "DEADLINE_PROPAGATION": "0"},
                          label="payment-trace")
    order = s.stack.service("order", chain=pay, port=order_port, env={**env, **admin, "CB_TIMEOUT_MS": "3000"},
                            label="order-trace")
    try:
        assert http("GET", order.url("/health")).json()["tracing"]["query_url"] == j.query_url
        r = http("PUT", ship.url("/chaos"), {"latency": {"ms": 1000, "expires_s": 120}}, auth)
        assert r.status == 200, r
        a = http("POST", order.url("/create"), order_body(900))
        assert a.status == 200 and a.json()["status"] == "ok" and a.json()["next"]["status"] == "degraded" \
            and a.json()["next"]["reason"] == "timeout", a
        tid = a.json()["trace"]
        j.trace(tid, 13)     # every span in Jaeger before the page asks
        with Browser() as b:
            assert b.set_viewport(1400, 1000) == [1400, 1000]
            b.get(f"{order.url('/dashboard')}#trace={tid}")
            t = trace_rows(b, tid, 13)
            assert t["cardsHidden"] and not t["hidden"], t
            assert len(t["rows"]) == 13, [(r["service"], r["name"]) for r in t["rows"]]
            assert {r["service"] for r in t["rows"]} == {"order", "payment", "shipment"}, t["rows"]
            # indented by parent: order's server span, its breaker, its client, payment's server...
            depth = {(r["service"], r["name"]): r["depth"] for r in t["rows"]}
            assert depth[("order", "POST /create")] == 0 and depth[("order", "breaker order -> payment")] == 1 \
                and depth[("order", "POST")] == 2 and depth[("payment", "POST /create")] == 3 \
                and depth[("payment", "breaker payment -> shipment")] == 4 and depth[("payment", "POST")] == 5 \
                and depth[("shipment", "POST /create")] == 6, depth
            assert t["rows"][0]["service"] == "order" and t["rows"][0]["name"] == "POST /create", t["rows"][0]
            # a colour per service
            colours = {r["service"]: r["colour"] for r in t["rows"]}
            assert len(set(colours.values())) == 3, colours
            # payment's call to shipment: failed, ended by the 300 ms timeout
            client = row(t, "payment", "POST")
            assert client["failed"] and client["badge"] and 290 <= client["ms"] <= 600, client
            assert "error timeout" in client["text"], client["text"]
            hop = row(t, "payment", "breaker payment -> shipment")
            assert hop["failed"] and "breaker fallback (cause timeout)" in hop["text"], hop
            names = [e for m in hop["marks"] for e in m["events"].split(",")]
            assert "timeout" in names and "fallback" in names, hop["marks"]
            assert any("timeout" in label and "fallback" in label for label in hop["labels"]), hop["labels"]
            # the marks sit on their span's bar: at its end, where the timeout ended the call
            for m in hop["marks"]:
                assert hop["bar"]["left"] - 2 <= m["left"] <= hop["bar"]["right"] + 2, (m, hop["bar"])
                assert m["top"] <= hop["bar"]["top"] and m["bottom"] >= hop["bar"]["bottom"], (m, hop["bar"])
            timeout_mark = next(m for m in hop["marks"] if "timeout" in m["events"].split(","))
            assert abs(timeout_mark["left"] - hop["bar"]["right"]) <= 4, (timeout_mark, hop["bar"])
            # the bars share one time axis: payment's client bar is about 300 ms of order's
            root = t["rows"][0]
            share = (client["bar"]["right"] - client["bar"]["left"]) / (root["bar"]["right"] - root["bar"]["left"])
            assert abs(share - client["ms"] / root["ms"]) <= 0.02, (share, client["ms"], root["ms"])
            assert t["ticks"][0] == "0 ms" and len(t["ticks"]) >= 4, t["ticks"]
            srv = row(t, "payment", "POST /create")
            assert not srv["failed"] and "outcome degraded (timeout)" in srv["text"], srv
            assert "status 200" in t["rows"][0]["text"] and "outcome ok" in t["rows"][0]["text"], t["rows"][0]
            assert not row(t, "order", "breaker order -> payment")["failed"], "order's call succeeded"
            assert "order POST /create answered 200, ok" in t["summary"], t["summary"]
            # readable at 1400x1000: every row on the screen, no scrolling
            assert t["bodyScroll"] <= 0 and t["pageScroll"] <= 0, (t["bodyScroll"], t["pageScroll"])
            shot = RESULTS / "dashboard-trace.png"
            b.screenshot(shot)
            errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
            assert not errors, f"console errors: {errors}"
            print(f"    trace {tid}: {len(t['rows'])} spans, payment's call {client['ms']:.0f} ms "
                  f"({client['text'].splitlines()[-1]}), marks {hop['labels']}; screenshot {shot}")
            # the recent list links to it
            listed = recent(b, "all")
            assert tid in [x[0] for x in listed], listed
            listed = recent(b, "degraded")
            assert listed and listed[0][0] == tid and "payment degraded (timeout)" in listed[0][1], listed
            b.click(f"a.recent-row[data-trace='{tid}']")
            trace_rows(b, tid, 13)
            # Send one: a new order, and its trace opened
            b.click("#trace-send")
            seen = []

            def sent():
                t = b.script(TRACE_JS)
                seen[:] = [t]
                return t if t["trace"] not in ("", tid) and t["state"] == "shown" and t["whole"] == "true" \
                    and len(t["rows"]) >= 13 else None
            try:
                t = wait_until(sent, 20, "the trace of the order sent from the page")
            except TimeoutError as e:
                raise AssertionError(f"{e}: {json.dumps(seen)[:800]}") from None
            state = b.script("return document.getElementById('trace-state').textContent")
            assert "order answered 200 ok, payment degraded (timeout)" in state, state
            assert b.script("return location.hash") == f"#trace={t['trace']}"
            # a half-open trial: more timed-out calls open payment's breaker (its volume threshold
            # is 5); after its reset timeout its next call is a trial, which times out and opens
            # it again; the recent list finds it among the half-open trials
            hop_name = http("GET", pay.url("/health")).json()["breakers"][0]["name"]

            def hop_state():
                return next(x["state"] for x in http("GET", pay.url("/health")).json()["breakers"]
                            if x["name"] == hop_name)
            for i in range(8):
                http("POST", order.url("/create"), order_body(910 + i))
                if hop_state() == "open":
                    break
            assert hop_state() == "open", hop_state()
            wait_until(lambda: hop_state() == "half-open", 10, "payment's breaker to turn half-open")
            a = http("POST", order.url("/create"), order_body(920))
            assert a.json()["next"]["status"] == "degraded", a
            trial = a.json()["trace"]
            j.trace(trial, 13)
            listed = recent(b, "trials")
            assert [x for x in listed if x[0] == trial and "trial of payment -> shipment: fallback (timeout), "
                    "now open" in x[1]], (trial, listed)
            b.click(f"a.recent-row[data-trace='{trial}']")
            t = trace_rows(b, trial, 13)
            hop = row(t, "payment", "breaker payment -> shipment")
            assert "half-open → open" in hop["text"] and "open" in hop["marks"][-1]["events"].split(","), hop
            b.click("#trace-close")
            assert b.script("return [document.getElementById('trace-view').hidden, "
                            "document.getElementById('cards').hidden, location.hash]") == [True, False, ""]
            # the feed: payment's timeout events link to the traces of their requests
            links = wait_until(lambda: b.script(
                "return Array.from(document.querySelectorAll('li.ev-timeout a.ev-trace'))"
                ".map(a => a.getAttribute('href'))") or None, 10, "a timeout line's trace link")
            assert f"#trace={trial}" in links, (trial, links)
            b.click(f"li.ev-timeout a.ev-trace[href='#trace={trial}']")
            t = trace_rows(b, trial, 13)
            assert t["trace"] == trial, t["trace"]
            # a request shed at order's door: one span, and the view says why
            r = http("POST", order.url("/shed"), {"enabled": True, "max_limit": 1, "initial_limit": 1,
                                                  "min_limit": 1}, auth)
            assert r.status == 200, r
            answers = []
            senders = [threading.Thread(target=lambda i=i: answers.append(
                http("POST", order.url("/create"), order_body(930 + i), timeout=10)), daemon=True)
                for i in range(3)]
            for x in senders:
                x.start()
            for x in senders:
                x.join(timeout=15)
            shed = [a for a in answers if a.status == 503]
            assert len(answers) == 3 and shed, [a.status for a in answers]
            tid = shed[0].json()["trace"]
            j.trace(tid, 1)
            b.get(f"{order.url('/dashboard')}#trace={tid}")
            t = trace_rows(b, tid, 1)
            assert len(t["rows"]) == 1 and "refused at the door (shed)" in t["rows"][0]["text"] \
                and t["rows"][0]["failed"], t["rows"]
            assert "order POST /create answered 503, refused at the door (shed)" in t["summary"], t["summary"]
            b.screenshot(RESULTS / "dashboard-trace-shed.png")
            print(f"    shed request {tid}: one span, {t['rows'][0]['text']!r}")
    finally:
        http("DELETE", ship.url("/chaos"), None, auth)
        codes = {v.name: v.stop() for v in (order, pay, ship)}
        j.proc.stop()
    assert all(rc == 0 for rc in codes.values()), f"exit codes on SIGTERM: {codes}"


def dashboard_says_in_one_line_that_tracing_is_off(s):
    """The suite's services send no spans (no OTEL_EXPORTER_OTLP_ENDPOINT, no
    TRACES_QUERY_URL): the trace box is one line saying so and how to turn it on, and
    #trace=<id> says the same in the view instead of reading anything."""
    s.ensure_running()
    assert http("GET", s.order.url("/health")).json()["tracing"] == {"on": False}
    with Browser() as b:
        assert b.set_viewport(1400, 1000) == [1400, 1000]
        b.get(f"http://127.0.0.1:{s.order.port}/dashboard#trace=0123456789abcdef0123456789abcdef")
        got = wait_until(lambda: (lambda v: v if v["state"] == "off" else None)(b.script(
            "const t = document.getElementById('traces'); return {state: t.dataset.state, text: t.innerText,"
            " input: document.getElementById('trace-id').hidden,"
            " view: document.getElementById('trace-view').dataset.state,"
            " message: document.getElementById('trace-body').innerText}")), 10, "the trace box to say off")
        assert got["input"] is True, got
        assert got["text"].strip() == "tracing off: no service sends spans; start with make run TRACES=on", got
        assert got["view"] == "off" and "make run TRACES=on" in got["message"], got
        check_fit(b, "with tracing off")
        errors = [e for e in b.logs() if e.get("level") == "SEVERE"]
        assert not errors, f"console errors: {errors}"


TESTS = [
    health_answers_200_with_database_and_breaker,
    metrics_pass_promtool_on_every_service,
    metrics_count_requests_and_breaker_calls,
    metrics_label_every_breaker_of_a_service,
    metrics_count_the_observability_routes_too,
    hystrix_stream_sends_every_dashboard_field,
    hystrix_stream_counts_move_after_requests,
    hystrix_stream_interval_is_about_one_second,
    events_stream_reports_service_and_breaker_events,
    breaker_get_returns_the_library_export,
    breaker_admin_is_404_without_admin_token,
    breaker_admin_is_401_without_the_right_token,
    breaker_admin_opens_and_closes_with_the_token,
    breaker_admin_name_selects_the_database_breaker,
    cors_admin_routes_answer_no_other_origin,
    admin_token_never_appears_in_answers_logs_or_metrics,
    dashboard_files_are_served,
    many_stream_clients_are_served_at_once,
    stream_cap_answers_503_and_dropped_clients_are_freed,
    dashboard_shows_breakers_live_in_chromium,
    dashboard_controls_set_a_fault_and_the_breaker_opens,
    dashboard_fits_1400x1000_and_pins_state_changes,
    dashboard_defaults_to_ports_3000_to_3002_as_make_run,
    dashboard_follows_the_chain_from_its_own_origin,
    dashboard_opened_late_shows_the_last_state_change,
    error_percentage_stays_at_most_100_under_a_100_percent_fault,
    calm_button_clears_a_fault_and_a_forced_breaker,
    health_and_dashboard_show_make_runs_restarts,
    dashboard_shows_the_retry_policy,
    dashboard_shows_hedging_and_shedding,
    dashboard_draws_a_degraded_requests_trace_from_jaeger,
    dashboard_says_in_one_line_that_tracing_is_off,
    health_answers_503_while_database_is_down_and_recovers,
    shutdown_ends_open_streams_at_once,
]


def pick_flavour():
    want = os.environ.get("OBS_FLAVOUR")
    if want:
        return want
    return "asan" if binary("order", "asan").exists() else "rel"


def main():
    # a suite stopped by timeout(1) still runs its clean-up (finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    RESULTS.mkdir(parents=True, exist_ok=True)
    only = set(sys.argv[1:])
    passed = failed = skipped = 0
    flavour = pick_flavour()
    print(f"obs: services flavour {flavour}", flush=True)
    try:
        with Stack(flavour=flavour, keep_logs=RESULTS / "obs-logs") as stack:
            suite = Suite(stack)
            for test in TESTS:
                if only and test.__name__ not in only:
                    continue
                start = time.monotonic()
                try:
                    test(suite)
                    passed += 1
                    print(f"PASS {test.__name__} ({time.monotonic() - start:.1f}s)", flush=True)
                except Skip as e:
                    skipped += 1
                    print(f"SKIP: {test.__name__}: {e}", flush=True)
                except Exception:
                    failed += 1
                    print(f"FAIL {test.__name__}\n{traceback.format_exc()}", flush=True)
                    suite.ensure_running()
        if stack.problems:
            failed += 1
            print("FAIL services_exit_cleanly_and_sanitizer_clean\n" + "\n".join(stack.problems))
        else:
            passed += 1
            print("PASS services_exit_cleanly_and_sanitizer_clean")
    except Skip as e:
        skipped += 1
        print(f"SKIP: the observability stack: {e}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
