"""test_retry.py -- integration tests of the retries around the call to the next hop
(common/svc/core/hop_retry.c: RETRY_*, POST /retry) and of the lose_answer fault that
makes a retry meet a completed write.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test

# Short back-offs, and a breaker that stays closed through a call's failed attempts
# (with the demo's CB_VOLUME_THRESHOLD=0 the first failure opens it, and the breaker's
# refusal is never retried).
RETRY_ENV = {"RETRY_ATTEMPTS": "3", "RETRY_BASE_MS": "10", "RETRY_CAP_MS": "50",
             "CB_VOLUME_THRESHOLD": "100", "ADMIN_TOKEN": TOKEN}


def admin(svc, method, path, body=None, token=TOKEN, headers=None):
    """One request to an admin route with the admin token (None = without one)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return http(method, svc.url(path), body, headers=h)


def labelled(svc, name) -> float:
    """The value of the series name in svc's /metrics (the first one); -1 when absent."""
    text = http("GET", svc.url("/metrics")).text()
    m = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else -1.0


@test
def retries_are_off_by_default_so_a_lost_answer_is_called_once(ctx):
    st = ctx.stack()
    ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN})
    pay = st.service("payment", chain=ship, env={"CB_VOLUME_THRESHOLD": "100"})
    expect(chaos(ship, "PUT", {"lose_answer": {"fraction": 1}}).status == 200, "lose_answer on")
    r = http("POST", pay.url("/create"), PAYMENT)
    body = r.json()
    expect(r.status == 200 and body["status"] == "degraded" and body["reason"] == "failure(connect)",
           f"payment degraded by the lost answer: {r}")
    expect("retry" not in body, f"no retry without RETRY_ATTEMPTS: {body}")
    ships = st.find("shipments")
    expect(len(ships) == 1 and meta(ships[0])["outcome"] == "last",
           f"shipment stored its one document with its outcome: {ships}")
    expect(http("GET", pay.url("/breaker")).json()["retry"]["attempts"] == 1, "GET /breaker: 1 attempt")
    expect(labelled(pay, "retry_calls_total") == 0, "no call through the retry policy")


@test
def three_attempts_meet_a_completed_write_then_retries_are_exhausted(ctx):
    """Every answer of shipment is lost: payment's three attempts each meet
    a completed write. Without idempotency keys shipment stores three
    documents for one client request; with them (the default), one, the
    other two attempts meeting its key (their replayed answers lost too)."""
    st = ctx.stack()
    ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN, "IDEMPOTENCY_KEYS": "0"})
    pay = st.service("payment", chain=ship, env=RETRY_ENV)
    expect(chaos(ship, "PUT", {"lose_answer": {"fraction": 1}}).status == 200, "lose_answer on")
    r = http("POST", pay.url("/create"), PAYMENT)
    body = r.json()
    expect(r.status == 200 and body["status"] == "degraded" and body["reason"] == "failure(connect)",
           f"payment degraded: {r}")
    expect(body.get("retry") == {"attempts": 3, "stop": "retry-exhausted"}, f"retry: {body}")
    # one client request, three documents downstream: the duplicates idempotency keys fix
    ships = st.find("shipments")
    expect(len(ships) == 3 and all(meta(d)["outcome"] == "last" for d in ships),
           f"without keys shipment stored 3 documents: {ships}")
    pays = st.find("payments")
    expect(len(pays) == 1 and meta(pays[0])["outcome"] == "degraded", f"payment stored once: {pays}")
    # /metrics, /health, GET /breaker and the log say so
    for name, want in [("retry_calls_total", 1), ("retry_attempts_total", 3),
                       ("retry_retries_total", 2), ("retry_exhausted_total", 1),
                       ("retry_budget_exhausted_total", 0), ("retry_budget_tokens", 7)]:
        got = labelled(pay, name)
        expect(got == want, f"/metrics {name} = {got}, want {want}")
    stats = http("GET", pay.url("/health")).json()["retry"]["stats"]
    expect(stats["attempts"] == 3 and stats["retries_exhausted"] == 1, f"/health retry: {stats}")
    b = http("GET", pay.url("/breaker")).json()
    expect(b["retry"]["on"] and b["retry"]["stats"]["retries"] == 2, f"GET /breaker retry: {b}")
    expect(b["state"] if "state" in b else True, "the breaker's own export is still there")
    pay.wait_log(r"event=retry attempt=2 ", timeout=5)
    pay.wait_log(r"event=retry-exhausted attempt=3 ", timeout=5)
    # with keys (a shipment of its own, the default): the same three attempts, one document
    keyed = st.service("shipment", env={"ADMIN_TOKEN": TOKEN}, label="shipment-keyed")
    pay2 = st.service("payment", chain=keyed, env=RETRY_ENV, label="payment-keyed")
    chaos(keyed, "PUT", {"lose_answer": {"fraction": 1}})
    body = http("POST", pay2.url("/create"), PAYMENT).json()
    expect(body.get("retry") == {"attempts": 3, "stop": "retry-exhausted"}, f"with keys: {body}")
    ships = st.find("shipments", {"_meta.trace": body["trace"]})
    expect(len(ships) == 1, f"with keys shipment stored once: {ships}")


@test
def a_retry_after_one_lost_answer_succeeds_and_stores_once_with_keys_twice_without(ctx):
    """One answer of shipment is lost (lose_answer, times 1), payment retries:
    the retry succeeds. With idempotency keys (the default) it meets the
    stored key and gets the first answer replayed, so shipment stored once;
    without keys it stores a second document."""
    st = ctx.stack()
    for keys, stored in (("1", 1), ("0", 2)):
        ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN, "IDEMPOTENCY_KEYS": keys},
                          label=f"shipment-keys-{keys}")
        pay = st.service("payment", chain=ship, env=RETRY_ENV, label=f"payment-keys-{keys}")
        r = chaos(ship, "PUT", {"lose_answer": {"fraction": 1, "times": 1}})
        expect(r.status == 200, f"lose_answer once: {r}")
        r = http("POST", pay.url("/create"), PAYMENT)
        body = r.json()
        expect(r.status == 200 and body["status"] == "ok" and body["next"]["status"] == "last",
               f"keys={keys}: the retry's answer: {r}")
        expect(body.get("retry") == {"attempts": 2, "stop": "done"}, f"retry: {body}")
        ships = st.find("shipments", {"_meta.trace": body["trace"]})
        expect(len(ships) == stored, f"keys={keys}: {len(ships)} shipment documents, want {stored}")
        expect(body["next"]["document"] == ships[0]["_id"]["$oid"] or stored == 2,
               f"the replayed answer names the one stored document: {body['next']}")
        replays = labelled(ship, "service_idempotent_replays_total")
        expect(replays == (1 if keys == "1" else 0), f"keys={keys}: {replays} replays")
        state = http("GET", ship.url("/chaos")).json()
        expect("lose_answer" not in state["faults"] and state["injected"]["lose_answer"] == 1,
               f"the fault used itself up: {state}")
        ship.wait_log(r"chaos: used up lose_answer", timeout=5)
        # the next request meets no fault: one attempt, one more document
        r = http("POST", pay.url("/create"), PAYMENT)
        expect(r.json().get("retry") == {"attempts": 1, "stop": "done"}, f"no fault: {r}")


@test
def the_no_idempotency_fault_switches_keys_off_at_runtime_and_arrivals_are_counted(ctx):
    """Keys on (the default) at both services, one answer of shipment lost:
    with the no_idempotency fault on payment, payment sends no key and its
    retry stores a second shipment; without the fault, the same loss is
    replayed and stores nothing. /health's requests.arrived counts every
    attempt at shipment, and requests.replayed the replay. A new pair of
    services for each case: payment's first call to shipment is then on a
    new connection (libcurl sends a request again by itself, once, when a
    reused connection dies before any answer: see docs/database.md)."""
    st = ctx.stack()
    for fault, stored, replayed in ((True, 2, 0), (False, 1, 1)):
        ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN}, label=f"shipment-fault-{fault}")
        pay = st.service("payment", chain=ship, env=RETRY_ENV, label=f"payment-fault-{fault}")
        counts = http("GET", ship.url("/health")).json()["requests"]
        expect(counts == {"arrived": 0, "replayed": 0}, f"a new shipment's counts: {counts}")
        if fault:
            r = chaos(pay, "PUT", {"no_idempotency": {"expires_s": 60}})
            expect(r.status == 200, f"no_idempotency on payment: {r}")
        expect(chaos(ship, "PUT", {"lose_answer": {"times": 1}}).status == 200, "lose one answer")
        body = http("POST", pay.url("/create"), PAYMENT).json()
        expect(body.get("retry") == {"attempts": 2, "stop": "done"}, f"fault={fault}: {body}")
        ships = st.find("shipments", {"_meta.trace": body["trace"]})
        expect(len(ships) == stored, f"fault={fault}: {len(ships)} shipment documents, want {stored}")
        after = http("GET", ship.url("/health")).json()["requests"]
        expect(after == {"arrived": 2, "replayed": replayed}, f"fault={fault}: requests {after}")
        expect(labelled(ship, "service_create_arrivals_total") == 2, "/metrics counts the 2 arrivals")
        expect(labelled(pay, "service_create_arrivals_total") == 1, "payment's 1 arrival")


@test
def retry_settings_change_at_runtime_behind_the_admin_token(ctx):
    st = ctx.stack()
    # without keys, so that each attempt's write is a document to count
    ship = st.service("shipment", env={"ADMIN_TOKEN": TOKEN, "IDEMPOTENCY_KEYS": "0"})
    pay = st.service("payment", chain=ship, env={"ADMIN_TOKEN": TOKEN, "CB_VOLUME_THRESHOLD": "100"})
    new = {"attempts": 3, "base_ms": 5, "cap_ms": 20, "budget_tokens": 20, "budget_ratio": 0.5}
    expect(admin(pay, "POST", "/retry", new, token=None).status == 401, "no token: 401")
    expect(admin(pay, "POST", "/retry", new, token="wrong").status == 401, "wrong token: 401")
    expect(http("GET", pay.url("/breaker")).json()["retry"]["attempts"] == 1, "unchanged after 401")
    for bad, words in [({"attempts": 0}, "attempts must be an integer in 1..100"),
                       ({"attempts": 2.5}, "attempts"), ({"cap_ms": -1}, "cap_ms"),
                       ({"budget_ratio": 0}, "budget_ratio"), ({"nope": 1}, "unknown field"),
                       ([1], "JSON object")]:
        r = admin(pay, "POST", "/retry", bad)
        expect(r.status == 400 and words in r.json()["error"], f"{bad}: {r}")
    r = admin(pay, "POST", "/retry", b"{", headers={"Content-Type": "application/json"})
    expect(r.status == 400, f"bad JSON: {r}")
    r = admin(pay, "POST", "/retry", b"{}", headers={"Content-Type": "text/plain"})
    expect(r.status == 415, f"not JSON: {r}")
    expect(admin(pay, "GET", "/retry").status == 405, "GET /retry: 405 (GET /breaker shows them)")
    r = admin(pay, "OPTIONS", "/retry", headers={"Origin": "http://elsewhere.example"})
    expect(r.status == 403, f"a preflight from another origin: {r}")
    r = admin(pay, "POST", "/retry", new)
    expect(r.status == 200 and r.json()["attempts"] == 3 and r.json()["changes"] == 1, f"set: {r}")
    shown = http("GET", pay.url("/breaker")).json()["retry"]
    expect({k: shown[k] for k in new} == new and shown["on"], f"GET /breaker: {shown}")
    pay.wait_log(r"admin: retries of the next hop set to 3 attempts", timeout=5)
    # a field left out keeps its value
    r = admin(pay, "POST", "/retry", {"cap_ms": 30})
    expect(r.status == 200 and r.json()["attempts"] == 3 and r.json()["cap_ms"] == 30, f"{r}")
    # in force at once
    chaos(ship, "PUT", {"lose_answer": {"fraction": 1}})
    body = http("POST", pay.url("/create"), PAYMENT).json()
    expect(body.get("retry") == {"attempts": 3, "stop": "retry-exhausted"}, f"{body}")
    expect(len(st.find("shipments")) == 3, "three attempts")
    expect(labelled(pay, "retry_attempts_total") == 3, "/metrics")
    # and off again
    expect(admin(pay, "POST", "/retry", {"attempts": 1}).status == 200, "off")
    body = http("POST", pay.url("/create"), PAYMENT).json()
    expect("retry" not in body and len(st.find("shipments")) == 4, f"one call: {body}")
    expect(labelled(pay, "retry_attempts_total") == 3, "the counts since the start are kept")
    # the last hop has nothing to retry
    r = admin(ship, "POST", "/retry", {"attempts": 2})
    expect(r.status == 404, f"shipment: {r}")
