"""test_shed.py -- integration tests of load shedding of POST /create
(common/svc/core/shed.c: SHED*, POST /shed) on the real chain.

Capacity is made small and known: shipment answers after a 200 ms latency fault,
and payment's concurrency limit is at most 4, so payment finishes about 20
requests a second. A flood of 16 concurrent clients offers four times that.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test

SHED_ENV = {"SHED": "on", "SHED_MAX_LIMIT": "4", "SHED_INITIAL_LIMIT": "4", "SHED_MIN_LIMIT": "1",
            "ADMIN_TOKEN": TOKEN, "CB_VOLUME_THRESHOLD": "1000"}
LATENCY_MS = 200
CLIENTS = 16            # clients at once, each sending on its own clock (open loop)
RATE = 80.0             # requests a second offered: 4x the 20 a second payment finishes
FLOOD_S = 3.0           # each flood ends after this long ...
FLOOD_MAX = 400         # ... or this many requests, whichever comes first
ADMITTED_P99_S = 1.0    # the admitted requests' p99 bound: 200 ms of work, no queue
SHED_P50_S = 0.005      # a shed answer, seen by the client (new connection included)
HEALTH_S = 0.050


def pct(xs, p):
    """The p-th percentile (0..100) of xs, nearest rank; 0 for none."""
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def flood(url, tag, health_url=None):
    """CLIENTS threads POST payments with unique ids to url at RATE a second in
    all (each client every CLIENTS / RATE s; a slot missed while an answer was
    awaited is skipped) for at most FLOOD_S seconds and FLOOD_MAX requests;
    meanwhile /health is timed every 100 ms. Returns (answers [(status,
    seconds, headers, body, id)], health times)."""
    answers, lock, health = [], threading.Lock(), []
    start = time.monotonic()
    stop_at = start + FLOOD_S
    counter = iter(range(FLOOD_MAX))
    every = CLIENTS / RATE

    def client(i):
        slot = start + i / RATE
        while True:
            now = time.monotonic()
            if now < slot:
                time.sleep(slot - now)
            slot += every * max(1, int((time.monotonic() - slot) / every) + 1)
            if time.monotonic() >= stop_at:
                return
            with lock:
                n = next(counter, None)
            if n is None:
                return
            doc = dict(PAYMENT, id=f"{tag}-{n}")
            try:
                r = http("POST", url, doc, timeout=10)
                answers.append((r.status, r.elapsed, r.headers, r.body, doc["id"]))
            except OSError:
                answers.append((0, 0.0, {}, b"", doc["id"]))

    def prober():
        while time.monotonic() < stop_at:
            health.append(http("GET", health_url, timeout=5).elapsed)
            time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    if health_url:
        threads.append(threading.Thread(target=prober, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=FLOOD_S + 15)
    return answers, health


def shed_admin(svc, body):
    return http("POST", svc.url("/shed"), body, headers={"Authorization": f"Bearer {TOKEN}"})


def slow_chain(ctx, env=None):
    """shipment with a 200 ms latency on every call, payment shedding in front of it."""
    st = ctx.stack()
    ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN})
    pay = st.service("payment", chain=ship, env=dict(SHED_ENV, **(env or {})))
    expect(chaos(ship, "PUT", {"latency": {"ms": LATENCY_MS}}).status == 200, "latency fault on")
    return st, ship, pay


@test
def shedding_is_off_by_default_and_health_says_so(ctx):
    st = ctx.stack()
    pay = st.service("payment", env={"ADMIN_TOKEN": TOKEN})
    shed = http("GET", pay.url("/health")).json()["shed"]
    expect(shed["enabled"] is False and shed["shed"] == 0, f"/health: shedding off: {shed}")
    expect(metric(pay, "service_concurrency_limit") == 0, "limit 0 in /metrics while off")
    expect(http("POST", pay.url("/create"), PAYMENT).status == 200, "a create while off")


@test
def a_flood_at_four_times_capacity_is_shed_fast_and_the_admitted_stay_fast(ctx):
    st, ship, pay = slow_chain(ctx)
    answers, health = flood(pay.url("/create"), "flood", pay.url("/health"))
    ok = [a for a in answers if a[0] == 200]
    shed = [a for a in answers if a[0] == 503]
    other = [a for a in answers if a[0] not in (200, 503)]
    print(f"    flood: {len(answers)} requests in {FLOOD_S} s at {RATE:.0f}/s: "
          f"{len(ok)} admitted (p50 {pct([a[1] for a in ok], 50) * 1e3:.0f} ms, "
          f"p99 {pct([a[1] for a in ok], 99) * 1e3:.0f} ms), {len(shed)} shed (p50 "
          f"{pct([a[1] for a in shed], 50) * 1e3:.2f} ms, p99 {pct([a[1] for a in shed], 99) * 1e3:.2f} ms); "
          f"/health max {max(health or [0]) * 1e3:.1f} ms over {len(health)} probes")
    expect(not other, f"only 200 and 503: {other[:3]}")
    expect(len(ok) >= 10 and len(shed) >= len(ok), f"most of a 4x flood shed: {len(ok)} ok, {len(shed)} shed")
    for a in shed[:50]:
        expect(a[2].get("retry-after") == "1", f"a shed answer carries Retry-After: 1: {a[2]}")
        expect("concurrency limit" in json.loads(a[3])["error"], f"a shed answer says why: {a[3]!r}")
    expect(pct([a[1] for a in shed], 50) < SHED_P50_S,
           f"shed answers are fast: p50 {pct([a[1] for a in shed], 50) * 1e3:.2f} ms")
    expect(pct([a[1] for a in ok], 99) < ADMITTED_P99_S,
           f"admitted p99 {pct([a[1] for a in ok], 99):.3f} s under {ADMITTED_P99_S} s")
    expect(health and max(health) < HEALTH_S, f"/health under 50 ms during the flood: {health}")
    h = http("GET", pay.url("/health")).json()["shed"]
    expect(h["enabled"] and h["shed"] == len(shed) and h["admitted"] == len(ok) and h["in_flight"] == 0
           and 1 <= h["limit"] <= 4, f"/health counts the flood: {h}")
    expect(metric(pay, "service_shed_total") == len(shed), "service_shed_total")
    expect(1 <= metric(pay, "service_concurrency_limit") <= 4, "service_concurrency_limit")
    expect(metric(pay, "service_in_flight") == 0, "service_in_flight")
    shed_ids = [a[4] for a in shed]
    ok_ids = [a[4] for a in ok]
    stored = st.find("payments", {"id": {"$in": shed_ids + ok_ids}})
    stored_ids = {d.get("id") for d in stored}
    expect(not stored_ids & set(shed_ids), f"shed requests stored nothing: {stored_ids & set(shed_ids)}")
    expect(set(ok_ids) <= stored_ids, "every admitted request stored its document")
    ships = {d.get("id") for d in st.find("shipments", {"id": {"$in": shed_ids}})}
    expect(not ships, f"shed requests reached no next hop: {ships}")


@test
def post_shed_switches_shedding_off_and_on_at_runtime(ctx):
    st, ship, pay = slow_chain(ctx)
    bad = [({"enabled": "yes"}, "enabled must be true or false"),
           ({"max_limit": 0}, "max_limit must be an integer in 1..100000"),
           ({"min_limit": 1.5}, "min_limit must be an integer"),
           ({"min_limit": 9, "max_limit": 4}, "min_limit (9) must not be above max_limit (4)"),
           ({"limit": 3}, "unknown field \"limit\""), ([1], "the body must be a JSON object")]
    for body, words in bad:
        r = shed_admin(pay, body)
        expect(r.status == 400 and words in r.json()["error"], f"{body}: 400 naming the field: {r}")
    r = http("POST", pay.url("/shed"), {"enabled": False})
    expect(r.status == 401, f"no token: 401: {r}")
    r = shed_admin(pay, {"enabled": False})
    expect(r.status == 200 and r.json()["enabled"] is False, f"off: {r}")
    answers, _ = flood(pay.url("/create"), "off")
    expect(answers and all(a[0] == 200 for a in answers),
           f"nothing shed while off: {sorted({a[0] for a in answers})}")
    r = shed_admin(pay, {"enabled": True, "max_limit": 2, "initial_limit": 2})
    body = r.json()
    expect(r.status == 200 and body["enabled"] and body["max_limit"] == 2 and body["limit"] == 2,
           f"on again with max 2: {r}")
    answers, _ = flood(pay.url("/create"), "on")
    shed = [a for a in answers if a[0] == 503]
    expect(len(shed) > len(answers) // 2, f"shed again once on: {len(shed)} of {len(answers)}")
    expect("load shedding of POST /create on, limit 2 in [1, 2] (POST /shed)" in pay.log(),
           "the change is logged")
