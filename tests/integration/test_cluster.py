"""test_cluster.py -- integration tests of replicas (common/svc/cluster): one breaker shared by quorum, the roster.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test


@test
def shared_breaker_replicas_open_together_then_one_probes_and_all_close(ctx):
    st = ctx.stack()
    ship = st.service("shipment")
    reps = payment_replicas(st, ship, 2)
    h = http("GET", reps[0].url("/health")).json()
    expect(h["replica"] == "p0" and h["shared"]["circuit"] == h["breaker"]["name"], h)
    expect(all(a["status"] == "ok" for a in post_round(reps)), "before the outage")
    taps = {r.name: StreamTap(r) for r in reps}
    ship.kill()
    t0 = time.monotonic()
    deadline = t0 + 10
    while time.monotonic() < deadline and not all((shared_view(r) or {}).get("open") for r in reps):
        post_round(reps)
        time.sleep(0.05)
    expect(all(shared_view(r)["open"] for r in reps), "both replicas see the shared circuit open")
    print(f"    both replicas see the shared circuit open {time.monotonic() - t0:.2f}s after the kill")
    reached = sum(len(re.findall(r"event=quorum-reached state=shared-open live=2 open_votes=2 "
                                 r"needed=2", r.log())) for r in reps)
    expect(reached == 1, f"quorum-reached (2 of 2 open) logged {reached} times, once expected")
    for r in reps:
        r.wait_log(r"event=shared-opened state=shared-open live=2 open_votes=\d needed=2 open=1500ms", 5)
        a = http("POST", r.url("/create"), PAYMENT).json()
        expect(a["status"] == "degraded" and a["reason"] == "open", f"{r.name} while shared open: {a}")
        expect(taps[r.name].holds(b'"event":"shared-opened","state":"shared-open","shared":true'),
               f"{r.name}'s /events.stream carries the shared-opened event")
    for tap in taps.values():
        tap.close()
    marks = [len(r.log()) for r in reps]
    ship.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any((shared_view(r) or {}).get("open") for r in reps):
        post_round(reps)
        time.sleep(0.1)
    expect(not any(shared_view(r)["open"] for r in reps), "the shared circuit closed")
    probers = [r.name for r, m in zip(reps, marks) if re.search(r"event=lease-taken", r.log()[m:])]
    expect(len(probers) == 1, f"one prober while shipment was back, got {probers}")
    for r, m in zip(reps, marks):
        r.wait_log(r"event=shared-closed state=shared-closed", 5, after=m)
    wait_until(lambda: all(a["status"] == "ok" for a in post_round(reps)), 5,
               "every replica's calls to pass again")
    for r in reps:
        b = http("GET", r.url("/health")).json()["breaker"]
        expect(b["state"] == "closed", f"{r.name}'s local breaker after the close: {b['state']}")


@test
def shared_breaker_one_replica_with_its_own_failure_opens_only_itself(ctx):
    st = ctx.stack()
    ship = st.service("shipment")
    dead = f"http://127.0.0.1:{harness.free_port()}/create"
    # p1 reaches shipment through an address nobody listens on: its own network is broken
    reps = payment_replicas(st, ship, 2, env={"CB_SHARED_CIRCUIT": "payment->shipment"},
                            chain_of=lambda i: dead if i == 1 else ship)
    end = time.monotonic() + 3.0   # six buckets
    answers = []
    for _ in range(200):
        if time.monotonic() > end:
            break
        answers.append(post_round(reps))
        time.sleep(0.05)
    expect(len(answers) >= 10, f"only {len(answers)} rounds")
    expect(all(a[0]["status"] == "ok" for a in answers), "p0's calls all passed")
    expect(answers[-1][1]["status"] == "degraded" and answers[-1][1]["breaker"] in ("open", "half-open"),
           f"p1 is open on its own: {answers[-1][1]}")
    reps[1].wait_log(r"breaker payment->127\.0\.0\.1:\d+ event=open state=open", 1)
    for r in reps:
        v = shared_view(r)
        expect(not v["open"] and v["needed"] == 2 and v["live"] == 2,
               f"{r.name}: the shared circuit must stay closed on one open vote: {v}")
        expect("quorum-reached" not in r.log() and "shared-opened" not in r.log(),
               f"{r.name} logged a shared open")
    expect(http("GET", reps[0].url("/health")).json()["breaker"]["state"] == "closed", "p0 closed")


@test
def replica_roster_lists_every_replica_with_its_breakers_and_drops_one_that_stops(ctx):
    st = ctx.stack()
    ship = st.service("shipment", env=dict(SHARED_ENV, REPLICA_ID="s0"))
    reps = payment_replicas(st, ship, 2, env={"ADMIN_TOKEN": TOKEN})
    for r in reps:
        wait_until(lambda r=r: roster_ids(r) == ["p0", "p1"], 5, f"{r.name}'s /replicas to list p0 and p1")
    a = roster(reps[0])
    expect(a["service"] == "payment" and a["replica"] == "p0" and a["database"] is True, a)
    expect(http("GET", reps[0].url("/health")).json().get("roster") is True, "/health says the roster is kept")
    expect([e["self"] for e in a["replicas"]] == [True, False], a)
    hop = http("GET", reps[0].url("/health")).json()["breaker"]["name"]
    for e in a["replicas"]:
        expect(e["breakers"].get(hop) == "closed" and len(e["breakers"]) == 2, f"both breakers listed: {e}")
        expect(0 <= e["seenMsAgo"] <= 3 * 500 and e["uptimeS"] >= 0, f"a live heartbeat: {e}")
    s = roster(ship)
    expect([e["replica"] for e in s["replicas"]] == ["s0"] and len(s["replicas"][0]["breakers"]) == 1,
           f"shipment lists itself alone, with its database breaker: {s}")
    # a state change on p1 reaches p0's roster within a bucket or two
    r = http("POST", reps[1].url(f"/breaker/open?name={hop}"), headers={"Authorization": f"Bearer {TOKEN}"})
    expect(r.status == 200, f"force p1 open: {r}")
    wait_until(lambda: {e["replica"]: e["breakers"].get(hop) for e in roster(reps[0])["replicas"]}
               == {"p0": "closed", "p1": "forced-open"}, 3, "p0's /replicas to show p1 forced open")
    # a replica that stops heartbeating leaves the list after the heartbeat timeout (3 buckets)
    reps[1].kill()
    t0 = time.monotonic()
    wait_until(lambda: roster_ids(reps[0]) == ["p0"], 5, "p1 to leave p0's /replicas")
    left = time.monotonic() - t0
    expect(roster(reps[0])["heartbeatTimeoutMs"] == 1500 and left <= 1.5 + 1.0,
           f"p1 left {left:.2f}s after it stopped (timeout 1.5 s, a bucket 0.5 s)")
    print(f"    p1 left p0's roster {left:.2f}s after it stopped")
    # without CB_SHARED there is no roster; the route says how to have one
    alone = st.service("shipment", label="shipment-alone")
    r = http("GET", alone.url("/replicas"))
    expect(r.status == 404 and "CB_SHARED=on" in r.json()["error"], f"/replicas without a roster: {r}")
    expect("roster" not in http("GET", alone.url("/health")).json(), "/health without a roster")
    expect(http("POST", reps[0].url("/replicas"), {}).status == 405, "POST /replicas")


@test
def shared_breaker_falls_back_to_local_when_the_database_stops_and_rejoins(ctx):
    st = ctx.stack(own_db=True)
    db = st.database()
    ship = st.service("shipment")
    reps = payment_replicas(st, ship, 2, env={"MONGO_TIMEOUT_MS": "500"})
    db.stop()
    for r in reps:
        r.wait_log(r"event=fell-back state=local-only", 10)
        wait_until(lambda r=r: (shared_view(r) or {}).get("mode") == "local-only", 5,
                   f"{r.name}'s /health to say local-only")
    marks = [len(r.log()) for r in reps]
    pids = [r.pid for r in reps]
    db.start()
    for r, m in zip(reps, marks):
        r.wait_log(r"event=rejoined state=shared-closed", 15, after=m)
        wait_until(lambda r=r: (shared_view(r) or {}).get("mode") == "shared" and
                   shared_view(r)["live"] == 2, 10, f"{r.name} to share again with 2 live")
    expect([r.pid for r in reps] == pids and all(r.alive() for r in reps), "no restart")
    ship.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all((shared_view(r) or {}).get("open") for r in reps):
        post_round(reps)
        time.sleep(0.05)
    expect(all(shared_view(r)["open"] for r in reps), "after rejoining they decide together again")


@test
def shared_breaker_settings_are_checked_by_name(ctx):
    st = ctx.stack()
    for env, word in [({"CB_SHARED": "yes"}, "CB_SHARED"), ({"CB_QUORUM": "-1"}, "CB_QUORUM"),
                      ({"CB_LEASE_MS": "x"}, "CB_LEASE_MS"),
                      ({"CB_HEARTBEAT_TIMEOUT_MS": "-5"}, "CB_HEARTBEAT_TIMEOUT_MS"),
                      ({"REPLICA_ID": "a b"}, "REPLICA_ID"),
                      ({"CB_SHARED_CIRCUIT": "x" * 64}, "CB_SHARED_CIRCUIT")]:
        svc = st.service("payment", env=env, start=False, label=f"payment-bad-{word}")
        harness.Proc.start(svc)
        rc = svc.wait_exit(10)
        expect(rc == 2 and word in svc.log(), f"{env}: exit {rc}, log {svc.log()[-300:]}")


@test
def shared_breaker_makes_fewer_failed_calls_than_independent_breakers(ctx):
    off, rounds_off = failed_calls_during_outage(ctx, shared=False)
    on, rounds_on = failed_calls_during_outage(ctx, shared=True)
    print(f"    3 replicas, 6 s outage, open period 1 s: {off} failed calls with independent "
          f"breakers ({rounds_off} rounds), {on} sharing by quorum ({rounds_on} rounds)")
    expect(on < off, f"sharing must make fewer failed calls: {on} shared vs {off} independent")
