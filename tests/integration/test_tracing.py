"""test_tracing.py -- integration tests of the services' spans (common/svc/observe/otel.c)
on the real stack with a real Jaeger (scripts/jaeger.sh builds it): a chain request's
trace read back from Jaeger's query API with every hop's server, breaker, client and
database spans, their parent links and nested timings; a degraded request's failing span
and its fallback; sampling at 0 and 1; a collector that is gone or hangs never holds a
request, and the drops are counted; shutdown sends what is queued.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test

import uuid

from jaeger import Jaeger  # noqa: E402 -- tests/py/jaeger.py: the real Jaeger these tests read

# the spans of one whole chain request: per service a server span, its database
# breaker call and the write; order and payment also a breaker call and a client span
CHAIN_SPANS = 13


def one(spans, service, name):
    found = [s for s in spans if s["service"] == service and s["operationName"] == name]
    expect(len(found) == 1, f"one span {name!r} of {service}: {len(found)} in "
           f"{[(s['service'], s['operationName']) for s in spans]}")
    return found[0]


def nested(child, parent, slack_us=0):
    """child lies within parent in time (Jaeger's microseconds; both from one clock).
    slack_us: how long child may end after parent (a server span ends just after its
    answer left, so the caller's client span may end first)."""
    expect(child["parent"] == parent["spanID"],
           f"{child['operationName']} is a child of {parent['operationName']}")
    expect(parent["startTime"] <= child["startTime"] and child["startTime"] + child["duration"]
           <= parent["startTime"] + parent["duration"] + slack_us,
           f"{child['operationName']} ({child['startTime']}+{child['duration']}) within "
           f"{parent['operationName']} ({parent['startTime']}+{parent['duration']})")


def metric_total(svc, name) -> float:
    m = re.search(rf"^{name}{{[^}}]*}} (\d+)$", http("GET", svc.url("/metrics")).text(), re.M)
    expect(m, f"{name} on {svc.name}'s /metrics")
    return float(m.group(1))


@test
def tracing_a_chain_requests_trace_in_jaeger_has_every_hop_with_its_database_and_breaker_spans(ctx):
    st = ctx.stack()
    j = Jaeger(st)
    order, pay, ship = chain(st, j.env(), j.env(), j.env())
    r = http("POST", order.url("/create"), ORDER)
    expect(r.status == 200 and r.json()["status"] == "ok", f"order answered: {r}")
    tid = r.json()["trace"]
    spans = j.trace(tid, CHAIN_SPANS)
    expect(len(spans) == CHAIN_SPANS, f"{len(spans)} spans: {[s['operationName'] for s in spans]}")
    expect({s["service"] for s in spans} == {"order", "payment", "shipment"}, "three services")
    servers = {n: one(spans, n, "POST /create") for n in ("order", "payment", "shipment")}
    expect(servers["order"]["parent"] is None, "order's server span is the root")
    for name, coll in (("order", "orders"), ("payment", "payments"), ("shipment", "shipments")):
        srv = servers[name]
        expect(srv["tags"]["span.kind"] == "server" and srv["tags"]["http.request.method"] == "POST"
               and srv["tags"]["http.route"] == "/create"
               and srv["tags"]["http.response.status_code"] == 200, f"{name}'s server span: {srv['tags']}")
        dbb = one(spans, name, f"breaker {name} -> database")
        nested(dbb, srv)
        expect(dbb["tags"]["breaker.outcome"] == "success" and dbb["tags"]["breaker.state.before"] ==
               "closed" and dbb["tags"]["breaker.label"] == f"{name} -> database",
               f"{name}'s database breaker span: {dbb['tags']}")
        ins = one(spans, name, f"insert {coll}")
        nested(ins, dbb)
        expect(ins["tags"]["db.system"] == "mongodb" and ins["tags"]["db.operation"] == "insert"
               and ins["tags"]["db.collection.name"] == coll and ins["tags"]["span.kind"] == "client",
               f"{name}'s database span: {ins['tags']}")
        expect(srv["tags"]["app.outcome"] == ("last" if name == "shipment" else "ok"),
               f"{name}'s outcome: {srv['tags']}")
    for name, nxt in (("order", "payment"), ("payment", "shipment")):
        hop = one(spans, name, f"breaker {name} -> {nxt}")
        nested(hop, servers[name])
        expect(hop["tags"]["breaker.outcome"] == "success" and hop["tags"]["breaker.state.after"] ==
               "closed", f"{name}'s hop breaker span: {hop['tags']}")
        expect([e["event"] for e in hop["events"]] == ["success"], f"its events: {hop['events']}")
        client = one(spans, name, "POST")
        nested(client, hop)
        expect(client["tags"]["span.kind"] == "client" and client["tags"]["http.response.status_code"]
               == 200 and client["tags"]["server.port"] == (pay if nxt == "payment" else ship).port,
               f"{name}'s client span: {client['tags']}")
        # the next hop's server span under the call that reached it
        nested(servers[nxt], client, slack_us=5000)
    print(f"    {len(spans)} spans; order's request {servers['order']['duration']} us, "
          f"payment's {servers['payment']['duration']} us, shipment's {servers['shipment']['duration']} us")


@test
def tracing_a_degraded_requests_trace_shows_the_timed_out_call_and_the_fallback(ctx):
    st = ctx.stack()
    j = Jaeger(st)
    env = j.env(ADMIN_TOKEN=TOKEN, CB_TIMEOUT_MS=300, DEADLINE_PROPAGATION=0)
    order, pay, ship = chain(st, dict(env, CB_TIMEOUT_MS="3000"), env, env)
    expect(chaos(ship, "PUT", {"latency": {"ms": 1000}}).status == 200, "shipment waits 1 s")
    tap = StreamTap(pay)
    r = http("POST", order.url("/create"), ORDER)
    expect(r.status == 200 and r.json()["next"]["status"] == "degraded" and
           r.json()["next"]["reason"] == "timeout", f"payment degraded: {r}")
    spans = j.trace(r.json()["trace"], CHAIN_SPANS)
    hop = one(spans, "payment", "breaker payment -> shipment")
    expect(hop["tags"]["breaker.outcome"] == "fallback" and hop["tags"]["breaker.cause"] == "timeout"
           and hop["tags"].get("error") is True, f"payment's breaker span: {hop['tags']}")
    names = [e["event"] for e in hop["events"]]
    expect("timeout" in names and "fallback" in names and names.index("timeout") < names.index("fallback"),
           f"the breaker's timeout then fallback on it: {hop['events']}")
    client = one(spans, "payment", "POST")
    expect(client["tags"]["error.type"] == "timeout" and client["tags"].get("error") is True,
           f"payment's client span failed by timeout: {client['tags']}")
    expect(290_000 <= client["duration"] <= 600_000, f"it ended at the 300 ms timeout: {client['duration']} us")
    srv = one(spans, "payment", "POST /create")
    expect(srv["tags"]["app.outcome"] == "degraded" and srv["tags"]["app.degraded.reason"] == "timeout",
           f"payment's server span says degraded: {srv['tags']}")
    expect(one(spans, "order", "breaker order -> payment")["tags"]["breaker.outcome"] == "success",
           "order's call succeeded (a degraded answer is an answer)")
    # the feed's timeout event names the request, so the dashboard links it to this trace
    tid = r.json()["trace"]
    expect(tap.holds(b'"event":"timeout"') and tap.holds(f'"trace":"{tid}"'.encode()),
           f"payment's /events.stream timeout event carries trace {tid}")
    tap.close()
    chaos(ship, "DELETE")


@test
def tracing_a_write_that_fails_is_a_failed_database_span_and_the_request_says_not_stored(ctx):
    st = ctx.stack()
    j = Jaeger(st)
    ship = st.service("shipment", env=j.env(ADMIN_TOKEN=TOKEN))
    expect(chaos(ship, "PUT", {"database": {"fraction": 1}}).status == 200, "the database fault")
    tid = uuid.uuid4().hex
    r = http("POST", ship.url("/create"), SHIPMENT,
             headers={"traceparent": f"00-{tid}-{uuid.uuid4().hex[:16]}-01"})
    expect(r.status == 503 and r.json().get("trace") == tid, f"nothing stored, the trace named: {r}")
    spans = j.trace(tid, 3)
    srv = one(spans, "shipment", "POST /create")
    expect(srv["tags"]["app.outcome"] == "not stored" and srv["tags"]["http.response.status_code"] == 503
           and srv["tags"].get("error") is True, f"the server span: {srv['tags']}")
    dbb = one(spans, "shipment", "breaker shipment -> database")
    expect(dbb["tags"]["breaker.outcome"] == "failure" and [e["event"] for e in dbb["events"]] == ["failure"],
           f"the database breaker call failed: {dbb['tags']} {dbb['events']}")
    ins = one(spans, "shipment", "insert shipments")
    expect(ins["tags"]["error.type"] == "fault" and ins["tags"].get("error") is True,
           f"the write's span failed by the fault: {ins['tags']}")
    chaos(ship, "DELETE")


@test
def tracing_a_request_turned_away_is_a_span_and_every_error_answer_names_its_trace(ctx):
    # shed: payment admits one /create at a time while shipment takes 300 ms
    st = ctx.stack()
    j = Jaeger(st)
    ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN})
    pay = st.service("payment", chain=ship, env=j.env(
        SHED="on", SHED_MAX_LIMIT="1", SHED_INITIAL_LIMIT="1", SHED_MIN_LIMIT="1"))
    expect(chaos(ship, "PUT", {"latency": {"ms": 300}}).status == 200, "shipment waits 300 ms")
    answers = []
    threads = [threading.Thread(target=lambda i=i: answers.append(
        http("POST", pay.url("/create"), dict(PAYMENT, id=f"shed-{i}"), timeout=10)), daemon=True)
        for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=15)
    chaos(ship, "DELETE")
    shed = [r for r in answers if r.status == 503]
    expect(len(answers) == 4 and len(shed) >= 1 and any(r.status == 200 for r in answers),
           f"one admitted, the others shed: {[r.status for r in answers]}")
    for r in shed:
        tid = r.json().get("trace")
        expect(tid and r.headers.get("x-request-id") == tid and "load shedding" in r.json()["error"],
               f"a shed answer names its trace: {r} {r.headers}")
        srv = one(j.trace(tid, 1), "payment", "POST /create")
        expect(srv["parent"] is None and srv["tags"]["app.refused"] == "shed" and
               srv["tags"]["http.response.status_code"] == 503 and srv["tags"].get("error") is True,
               f"the refused request's span: {srv['tags']}")
    expect(metric_total(pay, "otel_spans_dropped_total") == 0, "nothing dropped")
    # a refused body: the 400 names the trace its X-Request-Id header carries
    r = http("POST", pay.url("/create"), {"id": 1})
    expect(r.status == 400 and r.json().get("trace") and r.json()["trace"] == r.headers.get("x-request-id"),
           f"a 400 names its trace: {r} {r.headers}")


@test
def tracing_sampling_at_zero_exports_nothing_and_at_one_everything(ctx):
    st = ctx.stack()
    j = Jaeger(st)
    off = j.env(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=0)
    order0, pay0, ship0 = chain(st, off, off, off)
    on = j.env(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=1)
    order1, pay1, ship1 = chain(st, on, on, on)
    n = 20
    ids0 = [http("POST", order0.url("/create"), ORDER).json()["trace"] for _ in range(n)]
    ids1 = [http("POST", order1.url("/create"), ORDER).json()["trace"] for _ in range(n)]
    for tid in ids1:
        expect(len(j.trace(tid, CHAIN_SPANS)) == CHAIN_SPANS, f"trace {tid} whole")
    for svc in (order0, pay0, ship0):
        expect(metric_total(svc, "otel_spans_started_total") == 0, f"{svc.name} recorded no span at 0")
    for tid in ids0:   # every span of ratio 1 arrived above, so these would have too
        expect(j.spans(tid) == [], f"no span of trace {tid} sampled at 0")
    for svc, want in ((order1, 5), (pay1, 5), (ship1, 3)):
        # and the readiness probes' GET / server spans
        got = metric_total(svc, "otel_spans_exported_total")
        started = metric_total(svc, "otel_spans_started_total")
        expect(got == started >= want * n, f"{svc.name} exported {got} of {started} spans at 1, "
               f"{want * n} of them /create's")


@test
def tracing_a_gone_or_hanging_collector_never_holds_a_request_and_drops_are_counted(ctx):
    st = ctx.stack()
    j = Jaeger(st)
    order, pay, ship = chain(st, j.env(), j.env(), j.env())
    expect(http("POST", order.url("/create"), ORDER).status == 200, "a first request")
    j.proc.stop()
    slowest = 0.0
    for _ in range(100):
        r = http("POST", order.url("/create"), ORDER)
        expect(r.status == 200 and r.json()["status"] == "ok", f"answered with the collector gone: {r}")
        slowest = max(slowest, r.elapsed)
    harness.wait_until(lambda: metric_total(order, "otel_exports_failed_total") > 0, 10,
                       "order's failed export counted")
    dropped = {s.name: metric_total(s, "otel_spans_dropped_total") for s in (order, pay, ship)}
    expect(all(v > 0 for v in dropped.values()), f"drops counted: {dropped}")
    print(f"    collector gone: 100 requests, slowest {slowest * 1000:.0f} ms; dropped {dropped}")
    # a collector that takes the connection and never answers: each send hangs for its
    # timeout (10 s) while the queue (16 spans) fills; requests go on as before
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{hole.getsockname()[1]}",
           "OTEL_BSP_MAX_QUEUE_SIZE": "16", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "4",
           "OTEL_BSP_SCHEDULE_DELAY": "10"}
    try:
        last = st.service("shipment", env=env)
        before = metric_total(last, "otel_spans_dropped_total")
        slowest = 0.0
        for _ in range(100):
            r = http("POST", last.url("/create"), SHIPMENT)
            expect(r.status == 200, f"answered with the collector hanging: {r}")
            slowest = max(slowest, r.elapsed)
        expect(slowest < 2.0, f"no request waited for the collector (its send takes 10 s): "
               f"slowest {slowest * 1000:.0f} ms")
        dropped = metric_total(last, "otel_spans_dropped_total") - before
        expect(dropped >= 200 - 16 - 4 * 2, f"the full queue dropped {dropped} of 300 spans")
        h = http("GET", last.url("/health")).json()["tracing"]
        expect(h["on"] is True and h["dropped"] == dropped + before, f"/health's tracing: {h}")
        print(f"    collector hanging: 100 requests, slowest {slowest * 1000:.0f} ms, {dropped:.0f} dropped")
    finally:
        hole.close()


@test
def tracing_shutdown_sends_the_spans_still_queued(ctx):
    st = ctx.stack()
    j = Jaeger(st)
    env = j.env(OTEL_BSP_SCHEDULE_DELAY=600000)   # nothing leaves before the shutdown
    order, pay, ship = chain(st, env, env, env)
    ids = [http("POST", order.url("/create"), ORDER).json()["trace"] for _ in range(5)]
    for svc in (order, pay, ship):
        h = http("GET", svc.url("/health")).json()["tracing"]
        expect(h["exported"] == 0 and h["queued"] > 0, f"{svc.name} holds its spans: {h}")
    for svc in (order, pay, ship):
        expect(svc.stop() == 0, f"{svc.name} stopped cleanly")
    for tid in ids:
        expect(len(j.trace(tid, CHAIN_SPANS, timeout=10)) == CHAIN_SPANS, f"trace {tid} whole after shutdown")


@test
def tracing_each_attempt_of_a_retried_or_hedged_call_is_a_client_span_of_its_own(ctx):
    st = ctx.stack()
    j = Jaeger(st)
    ship = st.service("shipment", env=j.env(ADMIN_TOKEN=TOKEN))
    pay = st.service("payment", chain=ship, env=j.env(
        ADMIN_TOKEN=TOKEN, RETRY_ATTEMPTS=3, RETRY_BASE_MS=0, CB_VOLUME_THRESHOLD=1000))
    expect(chaos(ship, "PUT", {"error": {"fraction": 1}}).status == 200, "shipment fails every call")
    r = http("POST", pay.url("/create"), PAYMENT)
    expect(r.status == 200 and r.json()["status"] == "degraded" and r.json()["retry"]["attempts"] == 3,
           f"three attempts, then the fallback: {r}")
    # payment: server, breaker, 3 client, database breaker, insert; shipment: 3 x (server,
    # database breaker, insert) -- each attempt stored its injected outcome
    spans = j.trace(r.json()["trace"], 7 + 9)
    hop = one(spans, "payment", "breaker payment -> shipment")
    clients = sorted((s for s in spans if s["service"] == "payment" and s["operationName"] == "POST"),
                     key=lambda s: s["startTime"])
    expect(len(clients) == 3 and all(c["parent"] == hop["spanID"] for c in clients),
           f"three client spans under the breaker call: {len(clients)}")
    expect([c["tags"].get("http.request.resend_count") for c in clients] == [None, 1, 2] and
           all(c["tags"]["http.response.status_code"] == 502 for c in clients),
           f"attempts numbered, each 502: {[c['tags'] for c in clients]}")
    servers = [s for s in spans if s["service"] == "shipment" and s["operationName"] == "POST /create"]
    expect(sorted(s["parent"] for s in servers) == sorted(c["spanID"] for c in clients),
           "each of shipment's server spans is the child of the attempt that reached it")
    expect([e["event"] for e in hop["events"]].count("failure") == 3 and
           hop["tags"]["breaker.outcome"] == "fallback", f"three failures, the fallback: {hop['events']}")
    chaos(ship, "DELETE")
    # hedged: shipment slow on every call, two copies 50 ms apart, the first wins
    expect(http("POST", pay.url("/retry"), {"attempts": 1},
                headers={"Authorization": f"Bearer {TOKEN}"}).status == 200, "retries off")
    expect(http("POST", pay.url("/hedge"), {"max_copies": 2, "delay_ms": 50, "budget_ratio": 1},
                headers={"Authorization": f"Bearer {TOKEN}"}).status == 200, "hedging on")
    expect(chaos(ship, "PUT", {"latency": {"ms": 200}}).status == 200, "shipment waits 200 ms")
    r = http("POST", pay.url("/create"), PAYMENT)
    expect(r.status == 200 and r.json()["status"] == "ok", f"hedged call answered: {r}")
    spans = j.trace(r.json()["trace"], 7 + 1)
    hop = one(spans, "payment", "breaker payment -> shipment")
    clients = [s for s in spans if s["service"] == "payment" and s["operationName"] == "POST"]
    expect(sorted(c["tags"].get("app.hedge.copy") for c in clients) == [1, 2] and
           all(c["parent"] == hop["spanID"] for c in clients), f"two copies: {[c['tags'] for c in clients]}")
    chaos(ship, "DELETE")


@test
def tracing_a_value_with_quotes_backslashes_and_control_characters_arrives_as_sent(ctx):
    # the exporter writes OTLP's JSON itself (otel.c, encode_span): a value that needs
    # escaping must reach Jaeger whole, or the collector refuses the batch it is in
    st = ctx.stack()
    j = Jaeger(st)
    name = 'ship "one" \\ two\x01\x1f\x7f é'
    ship = st.service("shipment", env=j.env(INJECT_ERR="0", OTEL_SERVICE_NAME=name))
    tid = os.urandom(16).hex()
    r = http("POST", ship.url("/create"), SHIPMENT, headers={"traceparent": f"00-{tid}-00f067aa0ba902b7-01"})
    expect(r.status == 200, f"shipment answered: {r}")
    spans = j.trace(tid, 3)
    expect({s["service"] for s in spans} == {name}, f"the service's name as sent: {[s['service'] for s in spans]!r}")
    expect(metric_total(ship, "otel_spans_dropped_total") == 0, "nothing dropped")
