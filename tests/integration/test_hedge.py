"""test_hedge.py -- integration tests of hedged calls to the next hop
(common/svc/core/hop_hedge.c: HEDGE_*, POST /hedge) on the real stack: a latency fault on
a fraction of shipment's calls, payment's p99 with hedging off and then on in the same
test, the extra calls counted in /health, one shipment document per hedged call, the
switch at runtime, and bad bodies.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test

HEDGE_ENV = {"ADMIN_TOKEN": TOKEN, "CB_TIMEOUT_MS": "3000", "CB_VOLUME_THRESHOLD": "1000"}
REQUESTS = 120         # per phase; bounded in time too (PHASE_S). With 60, one phase in
                       # 550 met no slow call at all (0.9^60), and one bad call was its p99
PHASE_S = 60


def admin(svc, method, path, body=None):
    return http(method, svc.url(path), body, headers={"Authorization": f"Bearer {TOKEN}"})


def p99(xs):
    s = sorted(xs)
    return s[max(0, -(-99 * len(s) // 100) - 1)]


def phase(pay):
    """REQUESTS calls to payment, one after another, within PHASE_S: (latencies in ms,
    traces of the answers)."""
    lat, traces, t0 = [], [], time.monotonic()
    for _ in range(REQUESTS):
        if time.monotonic() - t0 > PHASE_S:
            break
        r = http("POST", pay.url("/create"), PAYMENT)
        expect(r.status == 200 and r.json()["status"] == "ok", f"payment answered: {r}")
        lat.append(r.elapsed * 1000)
        traces.append(r.json().get("trace"))
    expect(len(lat) == REQUESTS, f"only {len(lat)} requests within {PHASE_S} s")
    return lat, traces


@test
def hedging_cuts_payments_p99_under_a_latency_tail_and_stores_once(ctx):
    st = ctx.stack()
    ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN})
    pay = st.service("payment", chain=ship, env=HEDGE_ENV)
    h = http("GET", pay.url("/health")).json()["hedge"]
    expect(h["on"] is False and h["max_copies"] == 1, f"off by default: {h}")
    expect(chaos(ship, "PUT", {"latency": {"ms": 400, "fraction": 0.1}}).status == 200,
           "latency on 10% of shipment's calls")
    off, _ = phase(pay)
    # Each copy meets the fault on its own draw (10%), so a call is slow only when
    # every copy started in its first 200 ms is: with a copy every 30 ms, seven in a
    # row (1 in 10^6 a slow call); with three copies 50 ms apart it was 1 in 100.
    r = admin(pay, "POST", "/hedge", {"max_copies": 8, "delay_ms": 30, "budget_ratio": 1})
    expect(r.status == 200 and r.json()["on"] is True and r.json()["delay_ms"] == 30, r)
    before = http("GET", pay.url("/health")).json()["hedge"]["stats"]
    on, traces = phase(pay)
    after = http("GET", pay.url("/health")).json()["hedge"]["stats"]
    chaos(ship, "DELETE")
    calls = after["calls"] - before["calls"]
    hedges = after["hedges"] - before["hedges"]
    print(f"    p99 off {p99(off):.0f} ms, on {p99(on):.0f} ms; hedges {hedges} of {calls} calls "
          f"({100 * hedges / max(calls, 1):.0f}% extra), wins {after['hedge_wins']}, "
          f"cancelled {after['cancelled']}")
    expect(p99(off) >= 350, f"the tail shows with hedging off: p99 {p99(off):.0f} ms")
    expect(p99(on) < p99(off) / 2, f"p99 on {p99(on):.0f} ms, off {p99(off):.0f} ms")
    expect(calls == REQUESTS and hedges > 0 and after["copies"] == after["calls"] + after["hedges"],
           f"hedges counted in /health: {after}")
    expect(after["hedge_wins"] > 0 and after["cancelled"] > 0, f"wins and cancels: {after}")
    metrics = http("GET", pay.url("/metrics")).text()
    for name, key in (("hedge_calls_total", "calls"), ("hedge_hedges_total", "hedges"),
                      ("hedge_wins_total", "hedge_wins"), ("hedge_cancelled_total", "cancelled")):
        m = re.search(rf"^{name}{{[^}}]*}} (\d+)$", metrics, re.M)
        expect(m and int(m.group(1)) == after[key], f"/metrics {name} against /health's {key} {after[key]}")
    for t in traces:
        n = len(st.find("shipments", {"_meta.trace": t}))
        expect(n == 1, f"{n} shipment documents for trace {t}")
    expect(len(st.find("shipments")) == 2 * REQUESTS, "one shipment document per request")


@test
def post_hedge_switches_at_runtime_and_names_the_bad_field(ctx):
    st = ctx.stack()
    ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN})
    pay = st.service("payment", chain=ship, env=dict(HEDGE_ENV, HEDGE_MAX_COPIES="2"))
    expect(http("GET", pay.url("/health")).json()["hedge"]["on"] is True, "on from the env")
    r = admin(pay, "POST", "/hedge", {"max_copies": 1})
    expect(r.status == 200 and r.json()["on"] is False, f"off at runtime: {r}")
    r = admin(pay, "POST", "/hedge", {"max_copies": 2, "percentile": 95, "delay_ms": 20})
    expect(r.status == 200 and r.json()["on"] is True and r.json()["percentile"] == 95, r)
    expect(http("POST", pay.url("/create"), PAYMENT).status == 200, "a hedged call answers")
    for body, field in [({"max_copies": 0}, "max_copies"), ({"max_copies": 9}, "max_copies"),
                        ({"delay_ms": "x"}, "delay_ms"), ({"delay_ms": 1.5}, "delay_ms"),
                        ({"percentile": 0.5}, "percentile"), ({"budget_ratio": 2}, "budget_ratio"),
                        ({"nope": 1}, "nope"), ([1], "JSON object")]:
        r = admin(pay, "POST", "/hedge", body)
        expect(r.status == 400 and field in r.text(), f"{body}: {r}")
    r = http("POST", pay.url("/hedge"), {"max_copies": 1})
    expect(r.status == 401, f"no token: {r}")
    expect(http("GET", pay.url("/health")).json()["hedge"]["on"] is True, "bad bodies changed nothing")
    expect(admin(ship, "POST", "/hedge", {"max_copies": 2}).status == 404, "no next hop at shipment")
