"""test_http.py -- integration tests of the HTTP edge (common/svc/http): load and hostile clients, request framing, slow and greedy clients, the wire, RFC edges, one spelling per path, the admin door, the workers' reserve.

Registered with svctest's @test when imported; run by test_services.py.
"""
from svctest import *  # noqa: F401,F403 -- the shared helpers, constants and @test


# ---- load and hostile clients -----------------------------------------------------------------

@test
def concurrent_requests_all_answered_and_stored_once(ctx):
    st = ctx.stack()
    order, pay, ship = chain(st, {"CB_TIMEOUT_MS": "5000"}, {"CB_TIMEOUT_MS": "5000"})
    n, workers = 150, 12
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        answers = list(ex.map(lambda i: http("POST", order.url("/create"), {**ORDER, "id": str(i)}, None, 30),
                              range(n)))
    took = time.monotonic() - start
    bad = [a for a in answers if a.status != 200 or a.json()["next"]["next"]["status"] != "last"]
    expect(not bad, f"{len(bad)} of {n} not ok: {bad[:2]}")
    for coll in ("orders", "payments", "shipments"):
        docs = st.find(coll)
        expect(len(docs) == n and len({d["_id"]["$oid"] for d in docs}) == n, f"{coll}: {len(docs)}")
    ids = sorted(int(d["id"]) for d in st.find("orders"))
    expect(ids == list(range(n)), "each order stored once")
    print(f"    {n} chained requests, {workers} clients: {took:.2f}s, {n / took:.0f} req/s", flush=True)


@test
def malformed_http_and_hostile_bodies_never_crash_a_service(ctx):
    st = ctx.stack()
    order = st.service("order", env={"JUMPS": "1"})
    body = json.dumps(ORDER).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    big_chunks = b"".join(b"10000\r\n" + b"x" * 0x10000 + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    cases = [
        ("garbage", b"\x00\xff\x13garbage\r\n\r\n", None),
        ("no version", b"POST /create\r\n\r\n", None),
        ("short body", b"POST /create HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"id\"", None),
        ("negative length", b"POST /create HTTP/1.1\r\nContent-Length: -5\r\n\r\n", None),
        ("chunked JSON", b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked, b" 200 "),
        ("chunked too large", b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + big_chunks, b" 413 "),
        ("huge header", b"GET / HTTP/1.1\r\nX: " + b"a" * 100000 + b"\r\n\r\n", None),
    ]
    failures = []
    for name, data, want in cases:
        out = raw_exchange(order.port, data)
        if want and want not in out.split(b"\r\n", 1)[0] + b" ":
            failures.append(f"{name}: {out[:120]!r}")
        if not order.alive():
            failures.append(f"{name}: the service died")
            break
    deep = "[" * 33 + "]" * 33
    for name, text, status in (("nested 33 deep", '{"id":"1","items":%s,"payment":{}}' % deep, 400),
                               ("nested 5000 deep", "[" * 5000 + "]" * 5000, 400),
                               ("bad UTF-8", b'{"id":"\xff\xfe","items":[],"payment":{}}', 400),
                               ("NUL in key", '{"id":"1","items":[],"payment":{},"a\\u0000b":1}', 400)):
        r = http("POST", order.url("/create"), text if isinstance(text, bytes) else text.encode(),
                 {"Content-Type": "application/json"})
        if status and r.status != status:
            failures.append(f"{name}: {r}")
    expect(not failures, "\n".join(failures))
    expect(order.ready(), "the service no longer answers")
    stored = st.find("orders")
    expect(all(meta(d).get("outcome") == "last" for d in stored), f"half-written documents: {stored}")


@test
def ambiguous_framing_gets_400_closes_and_stores_nothing_on_every_route(ctx):
    st = ctx.stack()
    bodies = {"order": ORDER, "payment": PAYMENT, "shipment": SHIPMENT}
    failures, started = [], []
    for name, doc in bodies.items():
        svc = st.service(name, env={"JUMPS": "1"})
        started.append(svc)
        body = json.dumps(doc).encode()
        for route in ("/create", "/", "/health"):
            for shape, lines, rest, want in framing_shapes(body):
                method = b"POST" if route == "/create" else b"GET"
                head = b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % (
                    method, route.encode())
                if want == 411 and route != "/create":
                    continue  # only a body-carrying method can be told apart (docs/security.md)
                data = head + b"\r\n".join(lines) + b"\r\n\r\n" + rest + SMUGGLED
                out, closed = framing_exchange(svc.port, data)
                where = f"{name} {route} {shape}"
                status_line = out.split(b"\r\n", 1)[0]
                if not status_line.startswith(b"HTTP/1.1 %d " % want):
                    failures.append(f"{where}: answered {out[:200]!r}")
                    continue
                if out.count(b"HTTP/1.1 ") != 1:
                    failures.append(f"{where}: a second answer was parsed from the leftovers: {out!r}")
                if not closed:
                    failures.append(f"{where}: the connection stayed open")
                try:
                    err = json.loads(out.partition(b"\r\n\r\n")[2])
                    if "framing" not in err.get("error", "") or err.get("status") != want:
                        failures.append(f"{where}: the error does not name the problem: {err}")
                except ValueError:
                    failures.append(f"{where}: not a JSON error: {out[:300]!r}")
        expect(svc.ready(), f"{name} no longer answers")
        # The service still serves a well-framed request afterwards.
        r = http("POST", svc.url("/create"), doc)
        expect(r.status == 200, f"{name}: a well-framed request after the refusals: {r}")
    expect(not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:30]))
    for coll in ("orders", "payments", "shipments"):
        docs = st.find(coll)
        expect(len(docs) == 1, f"{coll}: {len(docs)} documents stored, only the well-framed one expected")
    expect(not any("/smuggled" in svc.log() for svc in started), "a smuggled request reached a handler")


@test
def well_framed_chunked_and_length_requests_still_pass(ctx):
    st = ctx.stack()
    svc = st.service("shipment", env={"JUMPS": "1"})
    body = json.dumps(SHIPMENT).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    for name, data in (
            ("Content-Length", b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)),
            ("chunked", b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked),
            ("63 header lines", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(61)) +
             b"Connection: close\r\n\r\n")):
        out, closed = framing_exchange(svc.port, data)
        expect(out.startswith(b"HTTP/1.1 200 "), f"{name}: {out[:200]!r}")
    expect(len(st.find("shipments")) == 2, "both well-framed bodies stored")


@test
def count_given_twice_is_refused(ctx):
    st = ctx.stack()
    svc = st.service("shipment", env={"JUMPS": "1"})
    for q in ("count=1&count=-1", "count=1&count=1", "count=2&x=1&count=3"):
        r = http("POST", svc.url("/create?" + q), SHIPMENT)
        expect(r.status == 400 and "count" in r.json()["error"], f"?{q}: {r}")
    r = http("POST", svc.url("/create?count=2&other=1"), SHIPMENT)
    expect(r.status == 200 and r.json()["count"] == 3, f"one count: {r}")
    expect(len(st.find("shipments")) == 1, "only the request with one count stored")


@test
def slow_clients_never_keep_a_normal_client_waiting_over_a_second(ctx):
    """200 clients trickling header lines and 200 sending a body a byte at a
    time hold no answer to a normal client past 1 s, with the default
    workers (THREADS 128, fewer than the tricklers): under pressure a client
    that keeps a worker waiting over SLOW_CLIENT_MS for a head or body is
    cut, and at MAX_CONNECTIONS the longest waiting gives way to a new
    connection. Every trickler is dropped, the header tricklers well before
    HEADER_TIMEOUT_MS, and /metrics counts the cuts."""
    raise_fd_limit(4096)
    st = ctx.stack()
    svc = st.service("shipment", env={"JUMPS": "1"})   # the default limits
    header_timeout = 5.0   # the defaults, as README documents them
    body_timeout = 10.0
    heads = open_clients(svc.port, 200, b"GET / HTTP/1.1\r\nHost: x\r\n")
    bodies = open_clients(svc.port, 200, b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\nContent-Length: 1000\r\n\r\n{")
    start = time.monotonic()
    worst, samples, i = 0.0, 0, 0
    heads_gone = None   # when every header trickler had been dropped
    try:
        while time.monotonic() - start < header_timeout + 1:
            trickle(heads, b"X-%d: 1\r\n" % i)
            trickle(bodies, b" ")
            if heads_gone is None and all(dropped(s) for s in heads):
                heads_gone = time.monotonic() - start
            i += 1
            for _ in range(4):
                status, took = timed_get(svc.port)
                expect(status == 200, f"GET / with 400 slow clients: {status} after {took:.2f}s")
                worst, samples = max(worst, took), samples + 1
                r = http("POST", svc.url("/create"), SHIPMENT, timeout=5)
                expect(r.status == 200 and r.elapsed < 1.0, f"POST /create with slow clients: {r}")
                worst = max(worst, r.elapsed)
                time.sleep(0.05)  # pacing of the trickle, not a readiness wait
        print(f"    {samples} GET / and POST /create beside 400 slow clients: worst {worst * 1000:.0f} ms",
              flush=True)
        expect(worst < 1.0, f"a normal client waited {worst:.2f}s")
        # The header tricklers kept sending but never finished: cut under
        # pressure, long before HEADER_TIMEOUT_MS would have dropped them.
        expect(heads_gone is not None and heads_gone < header_timeout / 2,
               f"header tricklers all dropped only after {heads_gone}s")
        took = heads_gone
        wait_until(lambda: trickle(bodies, b" ") == 0 or all(dropped(s) for s in bodies),
                   body_timeout + 5 - (time.monotonic() - start), "every body trickler dropped")
        print(f"    header tricklers dropped within {took:.1f}s, body tricklers within "
              f"{time.monotonic() - start:.1f}s", flush=True)
    finally:
        for s in heads + bodies:
            s.close()
    expect(svc.ready(), "the service answers after the slow clients")
    m = re.search(r'service_slow_clients_cut_total\{[^}]*\} (\d+)', http("GET", svc.url("/metrics")).text())
    expect(m and int(m.group(1)) > 0, f"no slow client counted as cut in /metrics: {m}")
    print(f"    {m.group(1)} slow clients cut (service_slow_clients_cut_total)", flush=True)
    docs = st.find("shipments")
    expect(all(d.get("id") == "1" for d in docs), "a trickled body was stored")


@test
def a_connection_flood_is_answered_or_refused_quickly_and_recovers(ctx):
    """1000 idle connections at once: a normal client is answered or refused
    (503 with Retry-After, or a closed connection) within 2 s, never left
    hanging; once the flood leaves, the service answers 200 again. With a
    small MAX_CONNECTIONS, the connections over it get 503 at once."""
    raise_fd_limit(4096)
    st = ctx.stack()
    svc = st.service("shipment", env={"JUMPS": "1"})
    flood = open_clients(svc.port, 1000, b"")
    try:
        outcomes = []
        for _ in range(5):
            status, took = timed_get(svc.port, timeout=5)
            outcomes.append((status, took))
            expect(took < 2.0 and status in (200, 503, None), f"during the flood: {status} after {took:.2f}s")
        print(f"    during a flood of 1000: {[(s, round(t * 1000)) for s, t in outcomes]} (status, ms)",
              flush=True)
    finally:
        for s in flood:
            s.close()
    wait_until(lambda: timed_get(svc.port)[0] == 200, 10, "200 again after the flood")
    # The cap itself: 16 served, 4 waiting, the rest refused at once.
    capped = st.service("payment", env={"JUMPS": "1", "THREADS": "16", "CONNECTION_QUEUE": "4"})
    idle = open_clients(capped.port, 20, b"")
    try:
        t0 = time.monotonic()
        out = raw_exchange(capped.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
        took = time.monotonic() - t0
        expect(out.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: " in out and took < 1.0,
               f"over MAX_CONNECTIONS: {out[:200]!r} after {took:.2f}s")
        expect(b'"error"' in out, f"the 503 names the problem: {out!r}")
    finally:
        for s in idle:
            s.close()
    wait_until(lambda: timed_get(capped.port)[0] == 200, 10, "200 again under the cap")


@test
def every_answer_leaves_in_one_write_on_a_socket_without_nagle(ctx):
    """A head and body sent in two writes wait ~40 ms for the client's delayed
    ACK on a kept-alive connection (Nagle). Every answer, on every kind of
    route and status, must be one send with the whole body, and accepted
    sockets must have TCP_NODELAY."""
    st = ctx.stack()
    order, pay, ship = chain(st)
    big = dict(ORDER, items=["x" * 100] * 200)   # an answer larger than a small buffer
    requests = [("GET", "/", None), ("POST", "/create", ORDER), ("POST", "/create", big),
                ("POST", "/create", {"id": 1}), ("GET", "/nowhere", None), ("DELETE", "/create", None),
                ("GET", "/health", None), ("GET", "/metrics", None), ("GET", "/breaker", None),
                ("GET", "/dashboard", None)]
    answers = []
    lines = strace_writes(order.pid, order.port, st.tmp / "strace.txt",
                          lambda: answers.extend(http(m, order.url(p), b) for m, p, b in requests))
    expect(all(a.status for a in answers), f"unanswered: {answers}")
    sends = []
    for line in lines:
        m = re.search(r'(?:sendto|write)\(\d+, "((?:\\x[0-9a-f]{2})*)"', line)
        if m:
            data = unhex(m.group(1))
            if data.startswith(b"HTTP/1.1 "):
                sends.append(data)
    # order's own answers (not its calls to payment, which libcurl sends as POST).
    expect(len(sends) >= len(requests), f"{len(sends)} answers seen in strace for {len(requests)} "
           f"requests:\n" + "\n".join(lines[:40]))
    for data in sends:
        head, sep, body = data.partition(b"\r\n\r\n")
        expect(sep, f"an answer's head was sent without its end: {data[:200]!r}")
        m = re.search(rb"(?i)\r\ncontent-length: (\d+)", head)
        expect(m, f"no Content-Length: {head!r}")
        expect(len(body) == int(m.group(1)),
               f"head and body in separate writes: {len(body)} of {m.group(1)} body bytes "
               f"went with the head {head[:80]!r}")
    # The sockets civetweb accepted (not libcurl's or libmongoc's own) get TCP_NODELAY.
    accepted, nodelay = set(), set()
    for line in lines:
        if m := re.search(r"accept4?\(\d+, .*\) = (\d+)", line):
            accepted.add(m.group(1))
        elif m := re.search(r"setsockopt\((\d+), SOL_TCP, TCP_NODELAY, \[1\]", line):
            if m.group(1) in accepted:
                nodelay.add(m.group(1))
    expect(accepted and nodelay == accepted,
           f"accepted sockets {sorted(accepted)}, with TCP_NODELAY {sorted(nodelay)}:\n" +
           "\n".join(l for l in lines if "accept" in l or "setsockopt" in l))


@test
def http_edge_shapes_get_their_rfc_status_store_nothing_and_the_service_still_answers(ctx):
    st = ctx.stack()
    failures = []
    for name, doc in BODIES.items():
        svc = st.service(name, env={"JUMPS": "1"})
        body = json.dumps(doc).encode()
        stored = 0
        for shape, data, want, must_close, stores in edge_shapes(svc.port, body):
            statuses, out, closed, first = edge_exchange(svc.port, data, timeout=3)
            where = f"{name} {shape}"
            wanted = [want, want] if shape.startswith("two well-framed") else [want]
            if statuses != wanted:
                failures.append(f"{where}: statuses {statuses}, want {wanted}: {out[:300]!r}")
            if must_close and not closed:
                failures.append(f"{where}: the connection stayed open")
            if first is not None and first > 1.0:
                failures.append(f"{where}: the answer took {first:.2f}s")
            if want >= 400 and b"error" not in out:
                failures.append(f"{where}: not a JSON error: {out[:300]!r}")
            if shape == "OPTIONS *" and b"\r\nAllow: " not in out:
                failures.append(f"{where}: no Allow header: {out[:300]!r}")
            stored += (2 if shape.startswith("two well-framed") else 1) if stores else 0
            if not svc.alive():
                failures.append(f"{where}: the service died")
                break
        expect(svc.ready(), f"{name} no longer answers")
        docs = st.find(COLLECTIONS[name])
        if len(docs) != stored:
            failures.append(f"{name}: {len(docs)} documents stored, {stored} expected (the served shapes)")
        if "/smuggled" in svc.log():
            failures.append(f"{name}: a request after a refused head reached a handler")
    expect(not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:40]))


@test
def expect_100_continue_is_answered_before_the_body_and_only_when_the_body_is_wanted(ctx):
    st = ctx.stack()
    for name, doc in BODIES.items():
        svc = st.service(name, env={"JUMPS": "1"})
        body = json.dumps(doc).encode()
        with socket.create_connection(("127.0.0.1", svc.port), timeout=3) as s:
            s.sendall(head(b"POST", b"/create", [b"Host: x", b"Content-Type: application/json",
                                                 b"Content-Length: %d" % len(body), b"Expect: 100-continue"]))
            t0 = time.monotonic()
            interim = s.recv(65536)
            took = time.monotonic() - t0
            expect(interim == b"HTTP/1.1 100 Continue\r\n\r\n" and took < 0.5,
                   f"{name}: {interim!r} after {took:.2f}s (curl waits 1 s for it)")
            s.sendall(body)
            out = b""
            while b"\r\n\r\n" not in out or not out.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            expect(out.startswith(b"HTTP/1.1 200 "), f"{name}: after 100 Continue: {out[:200]!r}")
        # No route for it: a final status at once, no 100, the body never asked for.
        statuses, out, closed, first = edge_exchange(
            svc.port, head(b"POST", b"/nowhere", [b"Host: x", b"Content-Type: application/json",
                                                  b"Content-Length: 10", b"Expect: 100-continue"]), timeout=3)
        expect(statuses == [404] and closed and first is not None and first < 0.5,
               f"{name} /nowhere with Expect: {statuses} closed={closed} after {first}: {out[:200]!r}")
        expect(len(st.find(COLLECTIONS[name])) == 1, f"{name}: one document, the one sent after 100")
        expect(svc.ready(), f"{name} no longer answers")
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                        "-H", "Content-Type: application/json", "-H", "Expect: 100-continue",
                        "--data-binary", json.dumps(SHIPMENT), svc.url("/create")],
                       capture_output=True, text=True, timeout=10) if shutil.which("curl") else None
    if r:
        code, took = r.stdout.split()
        expect(code == "200" and float(took) < 0.5, f"curl with Expect: 100-continue: {r.stdout}")


@test
def paths_in_any_spelling_but_the_canonical_one_never_reach_a_route(ctx):
    st = ctx.stack()
    failures = []
    faults = json.dumps({"error": {"fraction": 1}}).encode()
    auth = b"Authorization: Bearer " + TOKEN.encode()
    js = b"Content-Type: application/json"
    for name, doc in BODIES.items():
        svc = st.service(name, env={"JUMPS": "1", "ADMIN_TOKEN": TOKEN})
        body = json.dumps(doc).encode()
        for target in NON_CANONICAL:
            if target == b"/create/":
                continue   # a route of its own: /create/ is 404, not /create
            statuses, out, closed, _ = edge_exchange(svc.port, head(
                b"POST", target, [b"Host: x", js, b"Content-Length: %d" % len(body)], body) + SMUGGLED)
            if statuses != [400] or not closed or b"canonical" not in out and b"path" not in out:
                failures.append(f"{name} POST {target!r}: {statuses} closed={closed} {out[-200:]!r}")
        for target in NON_CANONICAL_ADMIN:
            method = b"PUT" if b"chaos" in target else b"POST"
            statuses, out, closed, _ = edge_exchange(svc.port, head(
                method, target, [b"Host: x", js, auth, b"Content-Length: %d" % len(faults)], faults))
            if statuses != [400] or not closed:
                failures.append(f"{name} {method.decode()} {target!r}: {statuses} {out[-200:]!r}")
        r = http("GET", svc.url("/chaos"))
        if r.json().get("faults") != {}:
            failures.append(f"{name}: a fault was set through a non-canonical path: {r.json()}")
        b = http("GET", svc.url("/breaker")).json()
        if b.get("state") not in (None, "closed"):
            failures.append(f"{name}: a breaker was forced through a non-canonical path: {b}")
        # The canonical spellings still work: an escape of a reserved character, a query.
        statuses, out, _, _ = edge_exchange(svc.port, head(b"POST", b"/create?note=%2F..%2F", [
            b"Host: x", js, b"Content-Length: %d" % len(body), b"Connection: close"], body))
        if statuses != [200]:
            failures.append(f"{name}: canonical /create with a query: {statuses} {out[-200:]!r}")
        statuses, out, _, _ = edge_exchange(svc.port, head(b"GET", b"/no%20such", [b"Host: x",
                                                                                 b"Connection: close"]))
        if statuses != [404]:
            failures.append(f"{name}: /no%20such: {statuses} {out[-200:]!r}")
        if len(st.find(COLLECTIONS[name])) != 1:
            failures.append(f"{name}: {len(st.find(COLLECTIONS[name]))} documents, 1 expected")
        expect(svc.ready(), f"{name} no longer answers")
    expect(not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:40]))


@test
def wrong_admin_tokens_are_slowed_per_address_logged_and_counted(ctx):
    """10,000 wrong tokens on one connection from 127.0.0.1: a few reach the
    token check (401, each logged with the address, never the token), the
    rest get 429 with Retry-After; the right token works at once from
    127.0.0.2, and from 127.0.0.1 is refused like any other try."""
    st = ctx.stack()
    tries = 10000
    wrong = "wrong-token-4d1f"
    for name in BODIES:
        svc = st.service(name, env={"JUMPS": "1", "ADMIN_TOKEN": TOKEN})
        req = head(b"DELETE", b"/chaos", [b"Host: x", b"Authorization: Bearer " + wrong.encode()])
        counts = {}
        retry_after = None
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as s:
            buf = b""
            for _ in range(tries):
                s.sendall(req)
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        m = re.search(rb"\r\nContent-Length: (\d+)", buf[:end])
                        total = end + 4 + int(m.group(1))
                        if len(buf) >= total:
                            break
                    chunk = s.recv(65536)
                    expect(chunk, f"{name}: the server closed the connection after {sum(counts.values())}")
                    buf += chunk
                status = int(buf[9:12])
                counts[status] = counts.get(status, 0) + 1
                if status == 429 and retry_after is None:
                    m = re.search(rb"\r\nRetry-After: (\d+)\r\n", buf[:end])
                    retry_after = int(m.group(1)) if m else -1
                buf = buf[total:]
        took = time.monotonic() - t0
        print(f"    {name}: {tries} wrong tokens in {took:.1f}s: {counts}", flush=True)
        expect(set(counts) <= {401, 429}, f"{name}: {counts}")
        expect(counts.get(401, 0) <= 36, f"{name}: {counts.get(401)} wrong tokens reached the check")
        expect(retry_after and retry_after >= 1, f"{name}: Retry-After on 429: {retry_after}")
        # at once (the bucket gives a try back every 0.5 s): the right token from the
        # hammering address is refused like any other try, and works from another address
        statuses, out, _, _ = edge_exchange(svc.port, head(b"DELETE", b"/chaos", [
            b"Host: x", b"Authorization: Bearer " + TOKEN.encode(), b"Connection: close"]))
        expect(statuses == [429], f"{name}: the right token from the hammering address: {statuses}")
        statuses, out, _, first = edge_exchange(svc.port, head(b"DELETE", b"/chaos", [
            b"Host: x", b"Authorization: Bearer " + TOKEN.encode(), b"Connection: close"]), src="127.0.0.2")
        expect(statuses == [200] and first < 0.5, f"{name}: the right token from 127.0.0.2: {statuses} {out[-200:]!r}")
        expect(metric(svc, "admin_auth_failures_total") == counts.get(401, 0),
               f"{name}: admin_auth_failures_total {metric(svc, 'admin_auth_failures_total')}")
        expect(metric(svc, "admin_auth_limited_total") == counts.get(429, 0) + 1,
               f"{name}: admin_auth_limited_total {metric(svc, 'admin_auth_limited_total')}")
        log = svc.log()
        failures = re.findall(r"admin: a wrong token from 127\.0\.0\.1 on DELETE /chaos refused \(401\)", log)
        expect(len(failures) == counts.get(401, 0), f"{name}: {len(failures)} failure lines for "
               f"{counts.get(401)} failures:\n{log[-1500:]}")
        expect("127.0.0.1 gets 429" in log, f"{name}: the lock-out is not logged")
        expect(wrong not in log and TOKEN not in log, f"{name}: a token was logged")
        expect(svc.ready(), f"{name} no longer answers")
        expect(not st.find(COLLECTIONS[name]), f"{name}: a document was stored")


@test
def health_answers_within_100ms_while_slow_bodies_hold_every_worker(ctx):
    """One client holds 76 connections more than the service has workers,
    each sending a body a byte at a time, re-opening every one the service
    drops: /health and /metrics answer 200 within 100 ms on the workers kept
    for them, POST /create from another client is answered at once (served
    in the place of the slowest body, SLOW_CLIENT_MS: its "{}" gets 400; or
    503 when no slow body may give way), and no trickled body is stored."""
    raise_fd_limit(8192)
    st = ctx.stack()
    # THREADS's default, 128 (64 under ThreadSanitizer, harness.TSAN_ENV), and
    # 76 more: the excess this test was written with (1,100 over 1,024
    # workers, when 1,024 was the default).
    held = (128 if ctx.flavour != "tsan" else 64) + 76
    for name in BODIES:
        svc = st.service(name, env={"JUMPS": "1"})
        flood = slow_bodies(svc.port, held)
        samples, creates = [], []
        try:
            t_end = time.monotonic() + 4
            i = 0
            while time.monotonic() < t_end:
                # the client keeps its connections open: every dropped one is opened again
                for k, s in enumerate(flood):
                    if dropped(s):
                        s.close()
                        flood[k] = slow_bodies(svc.port, 1)[0]
                trickle(flood, b" ")
                for path in (b"/health", b"/metrics"):
                    samples.append((path, *timed_raw_get(svc.port, path)))
                if i % 4 == 0:
                    statuses, out, _, first = edge_exchange(svc.port, head(
                        b"POST", b"/create", [b"Host: x", b"Content-Type: application/json",
                                              b"Content-Length: 2", b"Connection: close"], b"{}"), timeout=5)
                    creates.append((statuses[0] if statuses else None, first))
                i += 1
        finally:
            for s in flood:
                s.close()
        lat = sorted(t for _, _, t, _ in samples)
        p90 = lat[int(len(lat) * 0.9)]
        print(f"    {name}: {len(samples)} health/metrics checks beside {held} slow bodies: median "
              f"{lat[len(lat) // 2] * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, worst {lat[-1] * 1000:.1f} ms; "
              f"POST /create: {sorted(set(s for s, _ in creates), key=str)}", flush=True)
        bad = [(p, s, round(t * 1000), b) for p, s, t, b in samples if s != 200]
        expect(not bad, f"{name}: health checks not answered 200: {bad[:10]}")
        expect(p90 < 0.1, f"{name}: 90% of health checks within {p90 * 1000:.0f} ms, not 100 ms")
        expect(all(s in (400, 503) for s, _ in creates), f"{name}: POST /create during the flood: {creates}")
        expect(all(t is not None and t < 1.0 for _, t in creates), f"{name}: answers took {creates}")
        wait_until(lambda: timed_get(svc.port)[0] == 200, 15, f"{name}: 200 again after the flood")
        expect(not st.find(COLLECTIONS[name]), f"{name}: a trickled body was stored")
