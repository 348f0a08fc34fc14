"""Clustered history (issue 10, item 4): with redis.url and history rules, seq,
epoch and history live in Redis, so three nodes agree on one sequence per
topic and any node serves a recovery. A subscriber whose TCP connection dies
recovers exactly what it missed on another node, with no gap and no duplicate
at the switch-over; a window exceeded gives recovered:false; Redis losing its
data gives a new epoch; Redis down refuses publishes with `unavailable`. HTTP publishes wait for
Redis's seq and keep pipelined requests in order."""
from __future__ import annotations

import json
import signal
import socket
import struct
import threading
import time

import pytest

from helpers import wait_for
from wsraw import read_response

RULES = json.dumps([
    {"pattern": "chat.>", "size": 1000},
    {"pattern": "small.>", "size": 10},
    {"pattern": "fast.>", "size": 100, "ttl": "300ms"},
    {"pattern": "load.>", "size": 100000},
])


def start(cluster, n=3):
    return cluster(n, "--history", RULES)


def ack_of(c, req):
    c.send_json(req)
    while True:
        m = c.recv_json()
        if m.get("type") in ("ack", "error") and m.get("id") == req["id"]:
            return m
        assert m.get("type") == "message", m


def publish_many(pub, topic, items, first_id=1):
    """Publishes each item with an id (pipelined) and returns the acks' seqs."""
    for k, data in enumerate(items):
        pub.send_json({"type": "publish", "topic": topic, "data": data, "id": first_id + k})
    seqs = []
    for k, _ in enumerate(items):
        ack = pub.recv_json()
        assert ack["type"] == "ack" and ack["id"] == first_id + k, ack
        seqs.append(ack["seq"])
    return seqs


def messages(c, n, timeout=10.0):
    out = []
    while len(out) < n:
        m = c.recv_json(timeout=timeout)
        assert m["type"] == "message", m
        out.append(m)
    return out


SENTINEL = "sentinel"


def publish_sentinels(topic, *nodes):
    """One sentinel per node, through its HTTP API. Checks that nothing (more)
    arrives are barriers, not pauses: each node's sentinel comes after what
    that node published, so once every sentinel is in, so is all of that."""
    for n in nodes:
        r = n.post("/api/publish", {"topic": topic, "data": SENTINEL})
        assert r.status == 200, r


def nothing_more(c, n_sentinels):
    """The first message before n sentinels that is not one, or None."""
    seen, extra = 0, None
    while seen < n_sentinels:
        m = messages(c, 1)[0]
        if m["data"] == SENTINEL:
            seen += 1
        elif extra is None:
            extra = m
    return extra


@pytest.mark.parametrize("back_on", ["C", "B"])
def test_recover_50_published_on_a_and_b_then_live_without_gap_or_duplicate(cluster, back_on):
    a, b, c = start(cluster)
    nodes = {"A": a, "B": b, "C": c}
    topic = "chat.room1"
    sub = c.raw_ws()
    ack = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})
    assert ack["seq"] == 0 and len(ack["epoch"]) == 12 and "recovered" not in ack, ack
    epoch = ack["epoch"]
    pa, pb = a.raw_ws(), b.raw_ws()
    publish_many(pa, topic, [{"i": 0}, {"i": 1}])
    publish_many(pb, topic, [{"i": 2}, {"i": 3}, {"i": 4}])
    got = messages(sub, 5)
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
    assert [m["data"]["i"] for m in got] == [0, 1, 2, 3, 4]
    assert all(m["epoch"] == epoch for m in got)

    sub.close()  # the network goes away: no close frame
    seqs = []
    for k in range(25):
        seqs += publish_many(pa, topic, [{"i": 5 + 2 * k}], first_id=100 + k)
        seqs += publish_many(pb, topic, [{"i": 6 + 2 * k}], first_id=200 + k)
    assert seqs == list(range(6, 56))

    back = nodes[back_on].raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 7,
                        "since": {"epoch": epoch, "seq": 5}})
    assert ack == {"type": "ack", "id": 7, "seq": 55, "epoch": epoch, "recovered": True}
    replay = messages(back, 50)
    assert [m["seq"] for m in replay] == list(range(6, 56))
    assert [m["data"]["i"] for m in replay] == list(range(5, 55))
    publish_many(pa, topic, [{"i": i} for i in range(55, 60)], first_id=300)
    live = messages(back, 5)
    assert [m["seq"] for m in live] == list(range(56, 61))
    publish_sentinels(topic, a, b)
    assert nothing_more(back, 2) is None


def test_one_sequence_per_topic_across_nodes(cluster):
    nodes = start(cluster)
    topic = "chat.agree"
    subs = [n.raw_ws() for n in nodes]
    for s in subs:
        ack_of(s, {"type": "subscribe", "topic": topic, "id": 1})
    pubs = [n.raw_ws() for n in nodes]
    seqs = []
    for k in range(30):
        seqs += publish_many(pubs[k % 3], topic, [{"k": k}], first_id=k + 1)
    assert seqs == list(range(1, 31))
    for s in subs:
        got = messages(s, 30)
        assert [m["seq"] for m in got] == list(range(1, 31))
        assert [m["data"]["k"] for m in got] == list(range(30))
        assert len({m["epoch"] for m in got}) == 1
    # Every node reports the same position.
    for n in nodes:
        c = n.raw_ws()
        ack = ack_of(c, {"type": "subscribe", "topic": topic, "id": 9, "history": 3})
        assert ack["seq"] == 30
        assert [m["seq"] for m in messages(c, 3)] == [28, 29, 30]


def test_concurrent_publishers_on_two_nodes_get_distinct_increasing_seqs(cluster):
    a, b, c = start(cluster)
    topic = "chat.race"
    sub = c.raw_ws()
    ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})
    result = {}

    def run(node, name):
        p = node.raw_ws()
        result[name] = publish_many(p, topic, [{"n": name, "i": i} for i in range(100)])

    ts = [threading.Thread(target=run, args=(n, name)) for n, name in ((a, "A"), (b, "B"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert sorted(result["A"] + result["B"]) == list(range(1, 201))
    assert result["A"] == sorted(result["A"]) and result["B"] == sorted(result["B"])
    got = messages(sub, 200)
    assert [m["seq"] for m in got] == list(range(1, 201))
    for name in ("A", "B"):
        assert [m["data"]["i"] for m in got if m["data"]["n"] == name] == list(range(100))


def test_window_exceeded_is_recovered_false_then_live(cluster):
    a, b, c = start(cluster)
    topic = "small.t"
    sub = c.raw_ws()
    epoch = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    pub = a.raw_ws()
    publish_many(pub, topic, [{"i": i} for i in range(5)])
    sub.close()
    publish_many(pub, topic, [{"i": i} for i in range(5, 30)], first_id=100)
    back = b.raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 2,
                        "since": {"epoch": epoch, "seq": 5}})
    assert ack == {"type": "ack", "id": 2, "seq": 30, "epoch": epoch, "recovered": False}
    # Within the window (the last 10) it still recovers.
    ok = c.raw_ws()
    ack = ack_of(ok, {"type": "subscribe", "topic": topic, "id": 3,
                      "since": {"epoch": epoch, "seq": 20}})
    assert ack["recovered"] is True
    assert [m["seq"] for m in messages(ok, 10)] == list(range(21, 31))
    publish_many(pub, topic, [{"i": 30}], first_id=200)
    assert messages(back, 1)[0]["seq"] == 31
    assert messages(ok, 1)[0]["seq"] == 31
    # A wrong epoch, or a seq from the future, is not recovered either.
    for since in ({"epoch": "000000000000", "seq": 29}, {"epoch": epoch, "seq": 99}):
        x = a.raw_ws()
        assert ack_of(x, {"type": "subscribe", "topic": topic, "id": 4,
                          "since": since})["recovered"] is False


def test_ttl_expired_history_is_not_recovered(cluster):
    a, b, c = start(cluster)
    topic = "fast.t"
    pub = a.raw_ws()
    s = b.raw_ws()
    epoch = ack_of(s, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    publish_many(pub, topic, [{"i": i} for i in range(3)])
    # The time passing the 300 ms TTL is what is tested, not a wait for an
    # event: counted from the acks, after which the entries are stored, so
    # it holds at any speed (a slower machine only lets more time pass).
    time.sleep(0.5)
    x = c.raw_ws()
    ack = ack_of(x, {"type": "subscribe", "topic": topic, "id": 2,
                     "since": {"epoch": epoch, "seq": 1}})
    assert ack["recovered"] is False, ack


def test_redis_restart_with_data_loss_changes_the_epoch(redis_server, cluster):
    a, b, c = start(cluster)
    topic = "chat.restart"
    sub = c.raw_ws()
    epoch = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    pub = a.raw_ws()
    publish_many(pub, topic, [{"i": i} for i in range(3)])
    assert [m["seq"] for m in messages(sub, 3)] == [1, 2, 3]
    redis_server.kill()
    redis_server.start()  # no persistence: the data is gone
    for n in (a, b, c):
        wait_for(lambda n=n: n.health().get("redis") == "ok", 15.0, 0.05, f"{n.name} back")
    back = b.raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 2,
                        "since": {"epoch": epoch, "seq": 3}})
    assert ack["recovered"] is False and ack["epoch"] != epoch and ack["seq"] == 0, ack
    new_epoch = ack["epoch"]
    pub2 = a.raw_ws()
    assert publish_many(pub2, topic, [{"i": 9}], first_id=50) == [1]
    m = messages(back, 1)[0]
    assert m["seq"] == 1 and m["epoch"] == new_epoch


def test_redis_down_publish_is_unavailable_and_recovery_false(redis_server, cluster):
    a, b, c = start(cluster)
    topic = "chat.down"
    pub = a.raw_ws()
    assert publish_many(pub, topic, [{"i": 0}]) == [1]
    sub = c.raw_ws()
    epoch = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    redis_server.kill()
    wait_for(lambda: a.health().get("redis") != "ok", 10.0, 0.05, "A sees redis down")
    wait_for(lambda: c.health().get("redis") != "ok", 10.0, 0.05, "C sees redis down")
    r = ack_of(pub, {"type": "publish", "topic": topic, "data": 1, "id": 5})
    assert r["type"] == "error" and r["code"] == "unavailable", r
    # Later requests are still answered, in order.
    pub.send_json({"type": "publish", "topic": topic, "data": 2, "id": 6})
    pub.send_json({"type": "ping", "id": 7})
    assert pub.recv_json()["id"] == 6
    assert pub.recv_json() == {"type": "pong", "id": 7}
    x = c.raw_ws()
    ack = ack_of(x, {"type": "subscribe", "topic": topic, "id": 2,
                     "since": {"epoch": epoch, "seq": 0}})
    assert ack == {"type": "ack", "id": 2, "recovered": False}, ack
    h = a.post("/api/publish", {"topic": topic, "data": 3})
    assert h.status == 503, h
    non_history = a.raw_ws()
    assert ack_of(non_history, {"type": "publish", "topic": "plain.t", "data": 1,
                                "id": 1})["type"] == "ack"


def test_replies_keep_request_order_around_clustered_publishes(cluster):
    a, b, c = start(cluster)
    pub = a.raw_ws()
    for i in range(20):
        pub.send_json({"type": "publish", "topic": "chat.order", "data": i, "id": 3 * i})
        pub.send_json({"type": "publish", "topic": "plain.order", "data": i, "id": 3 * i + 1})
        pub.send_json({"type": "ping", "id": 3 * i + 2})
    ids = [pub.recv_json()["id"] for _ in range(60)]
    assert ids == list(range(60))


def test_resp_and_http_publish_get_the_redis_seq(cluster):
    a, b, c = start(cluster)
    topic = "chat.ingress"
    sub = c.raw_ws()
    ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})
    pub = a.raw_ws()
    assert publish_many(pub, topic, [{"via": "ws"}]) == [1]
    resp = b.resp()
    assert resp.publish(topic, '{"via":"resp"}') == 2
    assert resp.publish(topic, '{"via":"resp2"}') == 3
    assert resp.ping() is True  # pipelined requests behind a clustered PUBLISH go on
    r = a.post("/api/publish", {"topic": topic, "data": {"via": "http"}})
    assert r.status == 200 and r.json() == {"seq": 4}, r
    r = b.post("/api/publish", [{"topic": topic, "data": {"via": "http-array"}},
                                {"topic": "plain.x", "data": 1}])
    assert r.status == 200, r
    res = r.json()["results"]
    assert res[0] == {"seq": 5} and "seq" in res[1], res
    got = messages(sub, 5)
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
    assert [m["data"]["via"] for m in got] == ["ws", "resp", "resp2", "http", "http-array"]
    publish_sentinels(topic, a, b)
    assert nothing_more(sub, 2) is None


def test_http_publishes_on_two_nodes_interleaved_with_ws_get_one_sequence(cluster):
    a, b, c = start(cluster)
    topic = "chat.http"
    sub = c.raw_ws()
    ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})
    ws = {"A": a.raw_ws(), "B": b.raw_ws()}
    seqs, sent = [], []
    for k in range(12):
        node, name = ((a, "A"), (b, "B"))[k % 2]
        if k % 3 == 2:
            seqs += publish_many(ws[name], topic, [{"k": k}], first_id=k)
        else:
            r = node.post("/api/publish", {"topic": topic, "data": {"k": k}})
            assert r.status == 200, r
            seqs.append(r.json()["seq"])
        sent.append(k)
    assert seqs == list(range(1, 13))
    got = messages(sub, 12)
    assert [m["seq"] for m in got] == list(range(1, 13))
    assert [m["data"]["k"] for m in got] == sent
    assert len({m["epoch"] for m in got}) == 1


def http_post_bytes(topic_or_items, keep_alive=True) -> bytes:
    body = json.dumps(topic_or_items).encode()
    return (b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + (b"" if keep_alive else b"Connection: close\r\n")
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


GET_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_pipelined_http_requests_are_answered_in_order(cluster):
    a, b = start(cluster, 2)
    topic = "chat.pipe"
    first = b.post("/api/publish", {"topic": topic, "data": 0}).json()["seq"]
    conn = a.conn()
    # Two clustered POSTs and a GET in one write: the GET is parsed while the
    # first POST waits for Redis, and must still be answered last.
    conn.send(http_post_bytes({"topic": topic, "data": 1})
              + http_post_bytes([{"topic": topic, "data": 2}, {"topic": "plain.p", "data": 0},
                                 {"topic": topic, "data": 3}])
              + GET_HEALTHZ)
    r1 = read_response(conn)
    assert r1.status == 200 and r1.json() == {"seq": first + 1}, r1
    r2 = read_response(conn)
    res = r2.json()["results"]
    assert r2.status == 200 and res[0] == {"seq": first + 2} and res[2] == {"seq": first + 3}, r2
    assert "seq" in res[1], res
    r3 = read_response(conn)
    assert r3.status == 200 and r3.json()["node_id"] == "A", r3
    # The connection goes on: the next request on it is parsed and answered.
    conn.send(http_post_bytes({"topic": topic, "data": 4}, keep_alive=False))
    r4 = read_response(conn)
    assert r4.status == 200 and r4.json() == {"seq": first + 4}, r4
    assert r4.header("Connection") == "close"


def test_many_requests_behind_a_pending_http_publish_wait_and_are_answered_in_order(
        redis_server, cluster):
    a, b = start(cluster, 2)
    topic = "chat.behind"
    conn = a.conn()
    n = 3000  # ~110 KB of GETs: more than the broker holds, so it stops reading
    redis_server.client().execute_command("CLIENT", "PAUSE", 500, "ALL")
    sender = threading.Thread(target=conn.send, args=(
        http_post_bytes({"topic": topic, "data": 1}) + GET_HEALTHZ * n
        + http_post_bytes({"topic": topic, "data": 2}),))
    sender.start()
    try:
        r = read_response(conn)
        assert r.status == 200 and r.json() == {"seq": 1}, r
        for _ in range(n):
            assert read_response(conn).status == 200
        r = read_response(conn)
        assert r.status == 200 and r.json() == {"seq": 2}, r
    finally:
        sender.join(10)


def test_http_client_gone_before_the_redis_reply_is_harmless(redis_server, cluster):
    a, b = start(cluster, 2)
    topic = "chat.gone"
    base = a.health()["connections"]
    # Redis holds every command for a while, so the replies are still pending
    # when the clients disconnect.
    redis_server.client().execute_command("CLIENT", "PAUSE", 700, "ALL")
    for k in range(5):
        conn = a.conn()
        tail = GET_HEALTHZ if k % 2 else b""  # held input behind the pending POST
        conn.send(http_post_bytes({"topic": topic, "data": k}) + tail)
        if k == 4:  # an abortive close (RST)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    # The broker noticed them go while the ops were still out.
    wait_for(lambda: a.health()["connections"] == base, 5.0, 0.02, "the clients' close seen")
    r = a.post("/api/publish", {"topic": topic, "data": "after"})
    assert r.status == 200 and r.json()["seq"] == 6, r
    # Loose disconnects in a tight loop (pending or not, by the race).
    for k in range(30):
        conn = a.conn()
        conn.send(http_post_bytes({"topic": topic, "data": k}))
        conn.close()
    r = b.post("/api/publish", {"topic": topic, "data": "last"})
    assert r.status == 200 and r.json()["seq"] > 6, r
    a.assert_healthy()


def test_http_publish_redis_down_or_failing_is_503(redis_server, cluster):
    a, b = start(cluster, 2)
    topic = "chat.http-down"
    conn = a.conn()
    # Redis dies while the publish waits for its reply: 503, in order.
    redis_server.client().execute_command("CLIENT", "PAUSE", 5000, "ALL")
    conn.send(http_post_bytes({"topic": topic, "data": 1}) + GET_HEALTHZ)
    # Killed as soon as the publish is submitted, the paused Redis often still
    # has the script call unread in its socket: the kernel then resets the
    # publishing connection instead of closing it. A regression: a reset used
    # to go unnoticed (hiredis's libuv adapter ignored the poll error), and
    # this publish, and every later one, was never answered.
    wait_for(lambda: a.metric("wsbroker_http_publishes_total") == 1, 5.0, 0.02,
             "the publish submitted")
    redis_server.kill()
    r = read_response(conn)
    assert r.status == 503 and r.json()["error"]["code"] == "unavailable", r
    assert read_response(conn).status == 200  # /healthz: degraded, but served
    wait_for(lambda: a.health().get("redis") != "ok", 10.0, 0.05, "A sees redis down")
    # Redis down: refused at once, single or in an array.
    r = a.post("/api/publish", {"topic": topic, "data": 2})
    assert r.status == 503 and r.json()["error"]["code"] == "unavailable", r
    r = a.post("/api/publish", [{"topic": topic, "data": 3}, {"topic": "plain.d", "data": 3}])
    res = r.json()["results"]
    assert r.status == 200 and res[0]["error"]["code"] == "unavailable" and "seq" in res[1], res
    # A regression: an array whose only clustered element was refused at
    # once must not wait for anything.
    r = a.post("/api/publish", [{"topic": "plain.d", "data": 4}, {"topic": topic, "data": 4}])
    res = r.json()["results"]
    assert r.status == 200 and "seq" in res[0] and res[1]["error"]["code"] == "unavailable", res


def test_shutdown_answers_a_pending_http_publish(redis_server, cluster):
    a, b = start(cluster, 2)
    conn = a.conn()
    redis_server.client().execute_command("CLIENT", "PAUSE", 3000, "ALL")
    conn.send(http_post_bytes({"topic": "chat.stop", "data": 1}) + GET_HEALTHZ)
    wait_for(lambda: a.metric("wsbroker_http_publishes_total") == 1, 5.0, 0.02,
             "the publish submitted")
    a.signal(signal.SIGTERM)
    # The bridge stops first and fails what is out: 503 (or 200 when Redis
    # answered first), then the GET held behind it, then the close.
    r = read_response(conn)
    assert r.status in (200, 503), r
    rest = conn.read_to_eof()
    assert rest == b"" or rest.startswith(b"HTTP/1.1 200 "), rest
    a.wait_exit()
    a.check_exit()


def test_switch_over_under_load_has_no_gap_and_no_duplicate(cluster):
    """Two publishers (on A and B) run until the subscriber's five reconnect
    rounds are over; each round needs messages published while it was away
    (replayed from Redis) and 50 live ones after. The publishers are bounded by
    time (a hard cap) and by a window ahead of what the subscriber has read, so
    the rounds never wait for messages that will not come, whatever the speed
    of the machine, and the subscriber never falls a window behind."""
    a, b, c = start(cluster)
    topic = "load.x"
    stop = threading.Event()
    hard_cap = time.monotonic() + 60
    window = 2000  # published seq may run this far ahead of what the subscriber has read
    state = {"published": 0, "seen": 0}
    errors = []

    def publisher(node, name):
        try:
            p = node.raw_ws()
            i = 0
            while not stop.is_set() and time.monotonic() < hard_cap:
                if state["published"] - state["seen"] >= window:
                    stop.wait(0.001)
                    continue
                seq = publish_many(p, topic, [{"p": name, "i": i}], first_id=i + 1)[0]
                state["published"] = max(state["published"], seq)
                i += 1
        except Exception as e:  # reported by the consumer, not lost in a thread
            errors.append(e)

    def published_past(seq):
        wait_for(lambda: state["published"] > seq or errors, 20, 0.001,
                 what=f"a publish past seq {seq}")
        assert not errors, errors

    pubs = [threading.Thread(target=publisher, args=(n, name)) for n, name in ((a, "A"), (b, "B"))]
    first = c.raw_ws()
    epoch = ack_of(first, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    for t in pubs:
        t.start()
    expect = 1
    try:
        for round_ in range(5):
            # One live message on the current connection, then the network goes away.
            m = messages(first, 1)[0]
            assert m["seq"] == expect, (m, expect)
            last = state["seen"] = m["seq"]
            first.close()
            # Messages published while away: the replay must carry them.
            published_past(last + 20)
            node = (a, b, c)[round_ % 3]
            first = node.raw_ws()
            first.send_json({"type": "subscribe", "topic": topic, "id": 10 + round_,
                             "since": {"epoch": epoch, "seq": last}})
            ack = first.recv_json()
            assert ack["type"] == "ack" and ack["recovered"] is True, ack
            assert ack["seq"] > last + 20, (ack, last)
            expect = last + 1
            # Replay, then live: consecutive seqs across the switch-over.
            for _ in range(ack["seq"] - last + 50):
                m = first.recv_json()
                assert m["type"] == "message" and m["seq"] == expect, (m, expect)
                state["seen"] = expect
                expect += 1
    finally:
        stop.set()
        for t in pubs:
            t.join(30)
    assert not errors, errors


@pytest.mark.parametrize("patterns", ["true", "false"])
def test_sharded_mode_clustered_history(cluster, patterns):
    """With redis.sharded the script publishes on the shard channel (and, when
    wildcards are served, on the classic bus too): exact subscribers on every
    node get each message once, in Redis's seq, and recovery still works."""
    a, b = cluster(2, "--history", RULES, "--redis-sharded", "true",
                   "--redis-sharded-patterns", patterns)
    topic = "chat.sharded"
    sub_b = b.raw_ws()
    epoch = ack_of(sub_b, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    wild = None
    if patterns == "true":
        # A wildcard and an exact subscription on one node: still once each.
        wild = b.raw_ws()
        assert ack_of(wild, {"type": "subscribe", "topic": "chat.*", "id": 1})["type"] == "ack"
        assert ack_of(wild, {"type": "subscribe", "topic": topic, "id": 2})["type"] == "ack"
    sub_a = a.raw_ws()
    ack_of(sub_a, {"type": "subscribe", "topic": topic, "id": 1})
    pa, pb = a.raw_ws(), b.raw_ws()
    seqs = publish_many(pa, topic, [{"i": 0}, {"i": 1}]) + \
        publish_many(pb, topic, [{"i": 2}], first_id=10)
    assert seqs == [1, 2, 3]
    publish_sentinels(topic, a, b)  # seqs 4 and 5
    for s in [sub_a, sub_b] + ([wild] if wild else []):
        assert [m["seq"] for m in messages(s, 3)] == [1, 2, 3]
        assert nothing_more(s, 2) is None
    back = a.raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 5,
                        "since": {"epoch": epoch, "seq": 1}})
    assert ack["recovered"] is True and ack["seq"] == 5, ack
    assert [m["data"] for m in messages(back, 4)] == [{"i": 1}, {"i": 2}, SENTINEL, SENTINEL]
