"""Clustered streams (PROTOCOL.md 3.1b, 13.1): with redis.url set, a stream
rule's stream lives in Redis, one Redis stream per rule: every node takes the
stream's seq from Redis, all share one epoch, and a `since` on any node,
wildcards included, replays exactly the missed messages that match."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import wsraw
from helpers import wait_for

RULES = json.dumps([{"pattern": "auction.>", "stream": {"size": 100000}, "publisher": True}])
SHARDED = ("--redis-sharded", "true")


def ack_of(c, req, seen=None):
    """Sends `req` and returns its ack or error; messages on the way are kept in `seen`."""
    c.send_json(req)
    while True:
        m = c.recv_json()
        if m.get("type") in ("ack", "error") and m.get("id") == req["id"]:
            return m
        assert m.get("type") == "message", m
        if seen is not None:
            seen.append(m)


def messages_until(c, last_seq, into=None):
    """Reads messages until one with seq `last_seq` arrived."""
    out = [] if into is None else into
    while not out or out[-1]["seq"] < last_seq:
        m = c.recv_json()
        assert m.get("type") == "message", m
        out.append(m)
    return out


def wait_psub(redis_server, pattern, nodes):
    wait_for(lambda: redis_server.numpat() >= nodes, 10.0, 0.02,
             f"{nodes} nodes psubscribed to {pattern}")


@pytest.mark.parametrize("mode", ["classic", "sharded"])
def test_wildcard_since_on_a_third_node_recovers_exactly_the_missed_matching(redis_server,
                                                                             cluster, mode):
    extra = ("--topics", RULES) + (SHARDED if mode == "sharded" else ())
    a, b, c = cluster(3, *extra)
    watch = wsraw.ws_connect(c.host, c.port)
    pos = ack_of(watch, {"type": "subscribe", "topic": "auction.*.bid", "id": 1})
    assert pos["stream"] == "auction.>" and pos["seq"] == 0 and pos["epoch"], pos
    epoch = pos["epoch"]
    pubs = [wsraw.ws_connect(n.host, n.port) for n in (a, b)]
    acks = []
    topics = ["auction.a1.bid", "auction.a2.bid", "auction.a1.ask", "auction.a3.bid.x"]
    for i in range(24):
        topic = topics[i % len(topics)]
        ack = ack_of(pubs[i % 2], {"type": "publish", "topic": topic, "data": i, "id": 10 + i})
        assert ack["type"] == "ack", ack
        acks.append((ack["seq"], topic, i))
    # One seq for the whole stream, whichever node took the publish.
    assert [s for s, _, _ in acks] == list(range(1, 25)), acks
    want = [(s, t, d) for s, t, d in acks if t.endswith(".bid") and t.count(".") == 2]
    # The watcher on C saw every matching message live, in seq order, stream epoch.
    live = messages_until(watch, want[-1][0])
    assert [(m["seq"], m["topic"], m["data"]) for m in live] == want, live
    assert {m["epoch"] for m in live} == {epoch}, live
    # A late subscriber on C recovers from seq 5: exactly the matching ones after it.
    late = wsraw.ws_connect(c.host, c.port)
    ack = ack_of(late, {"type": "subscribe", "topic": "auction.*.bid", "id": 2,
                        "since": {"epoch": epoch, "seq": 5}})
    assert ack["recovered"] is True and ack["seq"] == 24 and ack["epoch"] == epoch, ack
    assert ack["stream"] == "auction.>", ack
    got = messages_until(late, want[-1][0])
    assert [(m["seq"], m["topic"], m["data"]) for m in got] == [w for w in want if w[0] > 5]
    # `from` under publisher:true, in the replay as live.
    assert all(m["from"]["client"] for m in got), got
    # Then live with no duplicate at the switch-over.
    assert ack_of(pubs[1], {"type": "publish", "topic": "auction.a9.bid", "data": "x",
                            "id": 99})["seq"] == 25
    m = late.recv_json()
    assert (m["seq"], m["topic"], m["epoch"]) == (25, "auction.a9.bid", epoch), m
    # history:N on a stream pattern: the last N matching, in seq order.
    hist = wsraw.ws_connect(a.host, a.port)
    ack = ack_of(hist, {"type": "subscribe", "topic": "auction.a1.*", "id": 3, "history": 3})
    assert ack["seq"] == 25 and ack["stream"] == "auction.>" and "recovered" not in ack, ack
    a1 = [(s, t, d) for s, t, d in acks if t.startswith("auction.a1.")][-3:]
    got = messages_until(hist, a1[-1][0])
    assert [(m["seq"], m["topic"], m["data"]) for m in got] == a1, got
    # Another epoch: its position means nothing here, so a gap in the stream's
    # epoch from seq 0 (to 0: Redis holds the epoch from its first message),
    # then every matching message held (PROTOCOL.md 3.1b, 13.1a).
    other = wsraw.ws_connect(b.host, b.port)
    ack = ack_of(other, {"type": "subscribe", "topic": "auction.*.bid", "id": 4,
                         "since": {"epoch": "other", "seq": 1}})
    assert ack["recovered"] is False and ack["seq"] == 25, ack
    assert other.recv_json() == {"type": "gap", "topic": "auction.*.bid", "stream": "auction.>",
                                 "epoch": epoch, "seq": 0, "to": 0}
    got = messages_until(other, 25)
    assert [(m["seq"], m["topic"], m["data"]) for m in got] == want + [(25, "auction.a9.bid", "x")]
    other.close()
    # A seq after the stream's last: not recovered, no gap, nothing replayed.
    bad = wsraw.ws_connect(b.host, b.port)
    ack = ack_of(bad, {"type": "subscribe", "topic": "auction.>", "id": 4,
                       "since": {"epoch": epoch, "seq": 26}})
    assert ack["recovered"] is False and ack["seq"] == 25, ack
    with pytest.raises(wsraw.Timeout):
        bad.recv_json(timeout=0.3)
    bad.close()
    # HTTP and RESP publishes take the stream's seq too, on any node.
    r = b.post("/api/publish", {"topic": "auction.h.bid", "data": "http"})
    assert r.status == 200 and r.json() == {"seq": 26}, r
    assert c.resp().publish("auction.r.bid", '"resp"') == 27
    got = [late.recv_json(), late.recv_json()]
    assert [(m["seq"], m["data"]) for m in got] == [(26, "http"), (27, "resp")], got
    for conn in (watch, late, hist, *pubs):
        conn.close()


def gap_then_messages(c, last_seq):
    """The gap that follows a since's ack, then the messages up to `last_seq`."""
    gap = c.recv_json()
    assert gap["type"] == "gap", gap
    return gap, (messages_until(c, last_seq) if gap["to"] < last_seq else [])


def test_trimmed_since_on_a_third_node_gets_a_gap_then_the_rest(redis_server, cluster):
    rules = json.dumps([{"pattern": "lot.>", "stream": {"size": 5}}])
    a, b, c = cluster(3, "--topics", rules)
    pub = wsraw.ws_connect(a.host, a.port)
    for i in range(12):
        assert ack_of(pub, {"type": "publish", "topic": f"lot.t{i % 2}", "data": i,
                            "id": i + 1})["seq"] == i + 1
    sub = wsraw.ws_connect(c.host, c.port)
    pos = ack_of(sub, {"type": "subscribe", "topic": "lot.>", "id": 50})
    epoch = pos["epoch"]
    # The last 5 seqs (8..12) are held: a since of 6 lost 7, whatever Redis's
    # MAXLEN ~ still keeps; the rest that matches follows, in seq order.
    ack = ack_of(sub, {"type": "subscribe", "topic": "lot.*", "id": 51,
                       "since": {"epoch": epoch, "seq": 6}})
    assert ack["recovered"] is False and ack["seq"] == 12 and ack["epoch"] == epoch, ack
    assert ack["stream"] == "lot.>", ack
    gap, got = gap_then_messages(sub, 12)
    assert gap == {"type": "gap", "topic": "lot.*", "stream": "lot.>", "epoch": epoch,
                   "seq": 6, "to": 7}, gap
    assert [(m["seq"], m["data"]) for m in got] == [(s, s - 1) for s in range(8, 13)], got
    # On one topic: only its messages after the gap.
    ack = ack_of(sub, {"type": "subscribe", "topic": "lot.t1", "id": 52,
                       "since": {"epoch": epoch, "seq": 2}})
    assert ack["recovered"] is False, ack
    gap, got = gap_then_messages(sub, 12)
    assert (gap["topic"], gap["seq"], gap["to"]) == ("lot.t1", 2, 7), gap
    assert [(m["seq"], m["data"]) for m in got] == [(8, 7), (10, 9), (12, 11)], got
    # Within what is held: recovered, no gap.
    ack = ack_of(sub, {"type": "subscribe", "topic": "lot.t0", "id": 53,
                       "since": {"epoch": epoch, "seq": 7}})
    assert ack["recovered"] is True, ack
    got = messages_until(sub, 11)
    assert [(m["seq"], m["data"]) for m in got] == [(9, 8), (11, 10)], got
    # Another epoch: a gap from 0 to 7, then all that is held.
    ack = ack_of(sub, {"type": "subscribe", "topic": "lot.t1", "id": 54,
                       "since": {"epoch": "gone", "seq": 9}})
    assert ack["recovered"] is False, ack
    gap, got = gap_then_messages(sub, 12)
    assert (gap["epoch"], gap["seq"], gap["to"]) == (epoch, 0, 7), gap
    assert [m["seq"] for m in got] == [8, 10, 12], got
    # Then live, with no duplicate at the switch-over.
    assert ack_of(pub, {"type": "publish", "topic": "lot.t1", "data": 12, "id": 99})["seq"] == 13
    m = sub.recv_json()
    assert (m["type"], m["seq"]) == ("message", 13), m
    with pytest.raises(wsraw.Timeout):
        sub.recv_json(timeout=0.3)
    # Redis holds the stream under the rule's hash-tagged key, trimmed near size.
    r = redis_server.client()
    assert r.type("wsb:stream:{lot.>}") == b"stream"
    assert r.xlen("wsb:stream:{lot.>}") <= 5 + 100
    assert r.hget("wsb:hist:{lot.>}", "e").decode() == epoch
    for conn in (pub, sub):
        conn.close()


def test_a_since_over_max_bytes_gets_a_gap_then_the_newest(redis_server, cluster):
    rules = json.dumps([{"pattern": "lot.>", "stream": {"max_bytes": "1KiB"}}])
    a, b = cluster(2, "--topics", rules)
    pub = wsraw.ws_connect(a.host, a.port)
    for i in range(10):
        assert ack_of(pub, {"type": "publish", "topic": "lot.x", "data": "y" * 300,
                            "id": i + 1})["seq"] == i + 1
    sub = wsraw.ws_connect(b.host, b.port)
    epoch = ack_of(sub, {"type": "subscribe", "topic": "lot.*", "id": 50})["epoch"]
    ack = ack_of(sub, {"type": "subscribe", "topic": "lot.*", "id": 51,
                       "since": {"epoch": epoch, "seq": 1}})
    assert ack["recovered"] is False and ack["seq"] == 10, ack
    # The replay keeps the newest within 1 KiB of envelopes (a few of them);
    # the gap says exactly which seqs it left out.
    gap, got = gap_then_messages(sub, 10)
    assert (gap["seq"], gap["epoch"]) == (1, epoch), gap
    assert 1 < gap["to"] < 10, gap
    assert [m["seq"] for m in got] == list(range(gap["to"] + 1, 11)), got
    for conn in (pub, sub):
        conn.close()


def publisher(node, prefix, stop, acked, errors):
    """Publishes until `stop` or until its node goes away; records (seq, data) acked."""
    try:
        conn = wsraw.ws_connect(node.host, node.port)
        i = 0
        while not stop.is_set():
            i += 1
            data = f"{prefix}{i}"
            ack = ack_of(conn, {"type": "publish", "topic": f"auction.{prefix}.bid",
                                "data": data, "id": i}, seen=None)
            if ack["type"] != "ack":
                errors.append(ack)
                continue
            acked.append((ack["seq"], data))
        conn.close()
    except (wsraw.PeerReset, wsraw.Timeout, OSError, AssertionError, ConnectionError):
        pass  # its node was killed: what it got an ack for counts


def test_sigkill_while_writing_loses_no_acked_message(redis_server, cluster):
    a, b, c = cluster(3, "--topics", RULES)
    epoch = ack_of(wsraw.ws_connect(c.host, c.port),
                   {"type": "subscribe", "topic": "auction.>", "id": 1})["epoch"]
    stop_a, stop_b = threading.Event(), threading.Event()
    acked_a, acked_b, errors = [], [], []
    ta = threading.Thread(target=publisher, args=(a, "pa", stop_a, acked_a, errors))
    tb = threading.Thread(target=publisher, args=(b, "pb", stop_b, acked_b, errors))
    ta.start()
    tb.start()
    try:
        # Both are writing the stream when A dies.
        wait_for(lambda: len(acked_a) >= 200 and len(acked_b) >= 50, 30.0, 0.01,
                 "publishers on A and B got acks")
        os.kill(a.pid, signal.SIGKILL)
        a.killed = True
        a.proc.wait(timeout=10)
        n_after = len(acked_b)
        wait_for(lambda: len(acked_b) >= n_after + 50, 30.0, 0.01, "B goes on publishing")
    finally:
        stop_a.set()
        stop_b.set()
        ta.join(30)
        tb.join(30)
    assert not errors, errors[:3]
    acked = sorted(acked_a + acked_b)
    seqs = [s for s, _ in acked]
    assert len(seqs) == len(set(seqs)), "two acks with one seq"
    for node in (b, c):
        sub = wsraw.ws_connect(node.host, node.port)
        ack = ack_of(sub, {"type": "subscribe", "topic": "auction.*.bid", "id": 2,
                           "since": {"epoch": epoch, "seq": 0}})
        assert ack["recovered"] is True and ack["epoch"] == epoch, ack
        assert ack["seq"] >= acked[-1][0], ack
        got = messages_until(sub, ack["seq"]) if ack["seq"] > 0 else []
        got_seqs = [m["seq"] for m in got]
        # Every seq of the stream, once, in order (a publish the killed node
        # sent without seeing its ack may be there too: no gap either way).
        assert got_seqs == list(range(1, ack["seq"] + 1)), got_seqs[:20]
        by_seq = {m["seq"]: m["data"] for m in got}
        missing = [(s, d) for s, d in acked if by_seq.get(s) != d]
        assert not missing, missing[:5]
        datas = [m["data"] for m in got]
        assert len(datas) == len(set(datas)), "a message replayed twice"
        sub.close()
    # The shared epoch survives a restart of the killed node; seq goes on.
    a.start()
    wait_for(lambda: a.health().get("redis") == "ok", 10.0, 0.02, "A back on redis")
    pub = wsraw.ws_connect(a.host, a.port)
    last = ack_of(pub, {"type": "subscribe", "topic": "auction.x.bid", "id": 3})
    assert last["epoch"] == epoch, last
    nxt = ack_of(pub, {"type": "publish", "topic": "auction.x.bid", "data": 1, "id": 4})
    assert nxt["seq"] == last["seq"] + 1, (last, nxt)
    pub.close()


def test_redis_down_refuses_stream_publishes_with_unavailable(redis_server, cluster):
    a, = cluster(1, "--topics", RULES)
    pub = wsraw.ws_connect(a.host, a.port)
    assert ack_of(pub, {"type": "publish", "topic": "auction.z.bid", "data": 1,
                        "id": 1})["seq"] == 1
    redis_server.kill()
    wait_for(lambda: a.health().get("redis") != "ok", 10.0, 0.02, "A sees redis down")
    err = ack_of(pub, {"type": "publish", "topic": "auction.z.bid", "data": 2, "id": 2})
    assert err["type"] == "error" and err["code"] == "unavailable", err
    # A subscribe inside the stream: acknowledged without a position, not recovered.
    ack = ack_of(pub, {"type": "subscribe", "topic": "auction.*.bid", "id": 3,
                       "since": {"epoch": "e", "seq": 0}})
    assert ack["type"] == "ack" and ack["recovered"] is False and "seq" not in ack, ack
    assert ack["stream"] == "auction.>", ack
    r = a.post("/api/publish", {"topic": "auction.z.bid", "data": 3})
    assert r.status == 503 and r.json()["error"]["code"] == "unavailable", r
    pub.close()


@pytest.mark.parametrize("mode", ["classic", "sharded"])
@pytest.mark.parametrize("sub_node", [0, 2])
def test_since_during_a_write_switches_to_live_with_no_gap_and_no_duplicate(redis_server,
                                                                            cluster, sub_node,
                                                                            mode):
    """A wildcard `since` while another node writes the stream: every matching
    message after `since` arrives once, in seq order, replayed or live (on the
    publishing node too, whose subscribers get the stream from Redis)."""
    nodes = cluster(3, "--topics", RULES, *(SHARDED if mode == "sharded" else ()))
    stop = threading.Event()
    acked, errors = [], []

    def pub(node, tag):
        """HTTP batches: a dense stream, so live messages meet the read."""
        i = 0
        while not stop.is_set():
            batch = []
            for _ in range(50):
                i += 1
                batch.append({"topic": "auction.s1.bid" if i % 3 else "auction.s1.ask",
                              "data": f"{tag}{i}"})
            r = node.post("/api/publish", batch)
            if r.status != 200:
                errors.append(r)
                return
            acked.extend((res["seq"], b["topic"]) for res, b in zip(r.json()["results"], batch))

    threads = [threading.Thread(target=pub, args=(nodes[0], "a")),
               threading.Thread(target=pub, args=(nodes[1], "b"))]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 300, 30.0, 0.01, "the stream is being written")
        sub = wsraw.ws_connect(nodes[sub_node].host, nodes[sub_node].port)
        early = []  # messages before the ack would be a broken switch-over
        epoch = ack_of(sub, {"type": "subscribe", "topic": "auction.s1.ask", "id": 900})["epoch"]
        ack = ack_of(sub, {"type": "subscribe", "topic": "auction.*.bid", "id": 901,
                           "since": {"epoch": epoch, "seq": 10}}, seen=early)
        assert ack["recovered"] is True, ack
        position = ack["seq"]
        wait_for(lambda: len(acked) >= position + 300, 30.0, 0.01,
                 "writes after the subscribe")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    want = sorted(s for s, topic in acked if topic.endswith(".bid") and s > 10)
    got = []
    while not got or got[-1] < want[-1]:
        m = sub.recv_json()
        assert m["type"] == "message", m
        if m["topic"].endswith(".bid"):
            got.append(m["seq"])
    early_bids = [m["seq"] for m in early if m["topic"].endswith(".bid")]
    assert not early_bids, early_bids
    assert got == want, (position, [g for g in got if got.count(g) > 1][:5],
                         sorted(set(want) - set(got))[:5])
    sub.close()


def test_trimmed_by_ttl_in_redis_gets_a_gap(redis_server, cluster):
    rules = json.dumps([{"pattern": "lot.>", "stream": {"size": 100, "ttl": "1s"}}])
    a, b = cluster(2, "--topics", rules)
    pub = wsraw.ws_connect(a.host, a.port)
    for i in (1, 2):
        assert ack_of(pub, {"type": "publish", "topic": "lot.x", "data": i, "id": i})["seq"] == i
    sub = wsraw.ws_connect(b.host, b.port)
    epoch = ack_of(sub, {"type": "subscribe", "topic": "lot.*", "id": 10})["epoch"]
    n = [10]

    def expired():
        n[0] += 1
        ack = ack_of(sub, {"type": "subscribe", "topic": "lot.*", "id": n[0],
                           "since": {"epoch": epoch, "seq": 0}})
        if ack["recovered"]:
            messages_until(sub, 2)  # the replay of a recovery before the ttl
            return False
        gap, got = gap_then_messages(sub, 2)  # what expired, then what is left
        assert (gap["seq"], gap["epoch"]) == (0, epoch), gap
        assert [m["seq"] for m in got] == list(range(gap["to"] + 1, 3)), got
        return gap["to"] == 2

    wait_for(expired, 20.0, 0.1, "messages older than the ttl no longer recoverable")
    # The next publish trims them from Redis (MINID by Redis's clock); the epoch stays.
    assert ack_of(pub, {"type": "publish", "topic": "lot.x", "data": 3, "id": 3})["seq"] == 3
    assert redis_server.client().xlen("wsb:stream:{lot.>}") == 1
    ack = ack_of(sub, {"type": "subscribe", "topic": "lot.*", "id": 99,
                       "since": {"epoch": epoch, "seq": 2}})
    assert ack["recovered"] is True and ack["epoch"] == epoch and ack["seq"] == 3, ack
    got = messages_until(sub, 3)
    assert [(m["seq"], m["data"]) for m in got if m["seq"] == 3] == [(3, 3)], got
    for conn in (pub, sub):
        conn.close()


DROP_RULES = json.dumps([{"pattern": "auction.>", "stream": {"slow_consumer": "drop"}}])
BIG = "x" * 16000


def test_slow_consumer_of_a_drop_stream_from_redis_gets_a_gap_and_resumes_exactly_once(
        redis_server, cluster):
    # The slow client is on C; every message reaches it through Redis.
    a, b, c = cluster(3, "--topics", DROP_RULES, "--max-outbound-bytes", "64KiB")
    slow = c.raw_ws(rcvbuf=4096)
    epoch = ack_of(slow, {"type": "subscribe", "topic": "auction.*.bid", "id": 1})["epoch"]
    pub = wsraw.ws_connect(a.host, a.port)
    topics = ["auction.a1.bid", "auction.a2.ask", "auction.a2.bid"]
    bids = []
    k = 0
    deadline = time.monotonic() + 60

    def told():
        return (c.metric("wsbroker_history_gaps_total") >= 1
                or c.metric("wsbroker_slow_consumer_closes_total") >= 1)

    # Big messages, 10 at a time, until C either tells the slow client of its
    # loss or closes it.
    while not told():
        assert time.monotonic() < deadline, "the slow consumer was never told"
        for i in range(10):
            pub.send_json({"type": "publish", "topic": topics[(k + i) % 3],
                           "data": {"k": k + i, "p": BIG}, "id": k + i + 1})
        for i in range(10):
            ack = pub.recv_json()
            assert ack["type"] == "ack" and ack["id"] == k + i + 1, ack
            if topics[(k + i) % 3].endswith(".bid"):
                bids.append(ack["seq"])
        k += 10
    assert c.metric("wsbroker_slow_consumer_closes_total") == 0

    seen, gap = [], None
    while gap is None:
        m = slow.recv_json(timeout=10)
        if m["type"] == "gap":
            gap = m
        else:
            assert m["type"] == "message" and m["topic"].endswith(".bid"), m
            seen.append(m["seq"])
    assert gap == {"type": "gap", "topic": "auction.*.bid", "stream": "auction.>",
                   "epoch": epoch, "seq": gap["seq"]}, gap
    assert seen == [s for s in bids if s <= gap["seq"]], (seen[-3:], gap)
    assert gap["seq"] < bids[-1]
    # Suspended: nothing more of the subscription until the client resumes.
    last = ack_of(pub, {"type": "publish", "topic": "auction.a1.bid", "data": "after",
                        "id": 9000})["seq"]
    bids.append(last)
    with pytest.raises(wsraw.Timeout):
        slow.recv_json(timeout=0.3)

    # Resumes with since, from Redis: exactly what it missed, then live.
    ack = ack_of(slow, {"type": "subscribe", "topic": "auction.*.bid", "id": 2,
                        "since": {"epoch": epoch, "seq": gap["seq"]}})
    assert ack["recovered"] is True and ack["seq"] == last, ack
    messages = messages_until(slow, last)
    seen += [m["seq"] for m in messages]
    live = ack_of(pub, {"type": "publish", "topic": "auction.a2.bid", "data": "live",
                        "id": 9001})["seq"]
    bids.append(live)
    m = slow.recv_json(timeout=10)
    assert (m["type"], m["seq"]) == ("message", live), m
    seen.append(live)
    # Every bid exactly once, in seq order, across the gap.
    assert seen == bids, (len(seen), len(bids))
    with pytest.raises(wsraw.Timeout):
        slow.recv_json(timeout=0.3)
    for conn in (slow, pub):
        conn.close()
