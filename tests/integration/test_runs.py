"""Bursts of one topic's publishes fanned out as runs (issue 17 item 1).

A WebSocket read that carries many publishes no longer fans each one out on
its own: the publishing worker delivers them when the read is done (or before
anything else is answered or closed on that connection), and each worker hands
a subscriber the burst's frames in one go. What a client sees must not change:
every subscriber, whatever it negotiated, gets every message in seq order
exactly once; a reply never overtakes a message (PROTOCOL.md 6); a publisher
that closes right after publishing still gets its own copies first.
"""
import json
import zlib

import wsraw
from helpers import wait_for
from wsraw import OP_CLOSE, OP_TEXT, build_frame, text_frame

PMD = "permessage-deflate"
N = 300


def inflate(payload: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


def deflate_conn(broker):
    """A raw WebSocket that negotiated permessage-deflate (its own framing path)."""
    c = broker.conn()
    key = wsraw.new_key()
    c.send(wsraw.upgrade_request("/ws", wsraw.host_port(broker.host, broker.port), key,
                                 headers={"Sec-WebSocket-Extensions": PMD}))
    resp = wsraw.read_response(c)
    assert resp.status == 101, resp
    assert (resp.header("Sec-WebSocket-Extensions") or "").startswith(PMD)
    assert recv_any(c)["type"] == "welcome"
    return c


def recv_any(c, timeout: float = 10.0):
    """The next text frame as JSON, inflated when compressed."""
    while True:
        f = c.recv_frame(timeout)
        if f.opcode in (0x9, 0xA):
            continue
        assert f.fin and f.opcode == OP_TEXT, f
        return json.loads(inflate(f.payload) if f.rsv & 4 else f.payload)


def subscribe(c, topic: str, **extra):
    c.send(text_frame({"type": "subscribe", "topic": topic, "id": 1, **extra}))
    got = recv_any(c)
    assert got["type"] == "ack" and got["id"] == 1, got


def burst(topic: str, n: int, first_id: int = 100, big_every: int = 0, pad: int = 3000) -> bytes:
    """n publishes in one write; every big_every-th carries `pad` bytes more
    (3000: too large for a chunk, a frame of its own in the run)."""
    out = bytearray()
    for i in range(n):
        data = {"i": i}
        if big_every and i % big_every == big_every - 1:
            data["pad"] = "x" * pad
        out += text_frame({"type": "publish", "topic": topic, "data": data, "id": first_id + i})
    return bytes(out)


def messages(c, topic: str, n: int):
    """The data of the next n messages of `topic` (acks and others skipped)."""
    got = []
    while len(got) < n:
        m = recv_any(c)
        if m.get("type") == "message" and m.get("topic") == topic:
            got.append(m)
    return got


def test_a_burst_reaches_every_kind_of_subscriber_once_in_order(broker):
    # Several plain subscribers (spread over the workers), a pattern, one
    # that negotiated compression (it gets frames one by one), and the
    # publisher itself.
    pub = broker.raw_ws()
    subscribe(pub, "runs.t")
    plain = [broker.raw_ws() for _ in range(6)]
    for c in plain:
        subscribe(c, "runs.t")
    pattern = broker.raw_ws()
    subscribe(pattern, "runs.>")
    comp = deflate_conn(broker)
    subscribe(comp, "runs.t")
    pub.send(burst("runs.t", N, big_every=37))
    everyone = [pub, pattern, comp] + plain
    for c in everyone:
        got = messages(c, "runs.t", N)
        assert [m["data"]["i"] for m in got] == list(range(N))
        seqs = [m["seq"] for m in got]
        assert seqs == list(range(seqs[0], seqs[0] + N)), seqs[:5]
    # Nothing more: each exactly once.
    pub.send_json({"type": "ping", "id": 7})
    while (m := recv_any(pub)).get("type") != "pong":
        assert m.get("type") == "ack", m
    for c in everyone[1:]:
        c.send_json({"type": "ping", "id": 7})
        assert recv_any(c) == {"type": "pong", "id": 7}


def test_bursts_of_interleaved_topics_keep_each_topics_order(broker):
    pub = broker.raw_ws()
    subs = [broker.raw_ws() for _ in range(4)]
    for c in subs:
        subscribe(c, "runs.>")
    out = bytearray()
    # a a a b a b b c a ...: runs end at every change of topic.
    topics = ["runs.a"] * 3 + ["runs.b"] + ["runs.a"] + ["runs.b"] * 2 + ["runs.c"]
    want = {"runs.a": 0, "runs.b": 0, "runs.c": 0}
    order = []
    for rep in range(40):
        for t in topics:
            out += text_frame({"type": "publish", "topic": t, "data": {"k": want[t]}})
            order.append((t, want[t]))
            want[t] += 1
    pub.send(bytes(out))
    for c in subs:
        got = []
        while len(got) < len(order):
            m = recv_any(c)
            assert m["type"] == "message", m
            got.append((m["topic"], m["data"]["k"]))
        # Per topic in publish order, each once (PROTOCOL.md 6 promises no
        # order between topics; within one node, one publisher's burst keeps it).
        for t in want:
            assert [k for tt, k in got if tt == t] == list(range(want[t]))
        assert got == order


def test_a_pipelined_ping_after_publishes_comes_after_the_messages(broker):
    # The ping is answered only once the messages published before it were
    # queued to every subscriber on the node, the publisher included.
    pub = broker.raw_ws()
    subscribe(pub, "runs.p")
    other = broker.raw_ws()
    subscribe(other, "runs.p")
    pub.send(burst("runs.p", 50) + text_frame({"type": "ping", "id": 9}))
    seen = 0
    while True:
        m = recv_any(pub)
        if m["type"] == "pong":
            break
        if m["type"] == "message":
            seen += 1
    assert seen == 50, f"the pong overtook {50 - seen} of the publisher's own messages"
    assert len(messages(other, "runs.p", 50)) == 50


def test_publishes_then_close_in_one_write_deliver_the_own_copies_first(broker):
    pub = broker.raw_ws()
    subscribe(pub, "runs.c")
    other = broker.raw_ws()
    subscribe(other, "runs.c")
    pub.send(burst("runs.c", 40) + build_frame(OP_CLOSE, b"\x03\xe8"))
    f = pub.expect_close(10)
    assert f.close_code == 1000
    own = [s for s in pub.skipped if s.opcode == OP_TEXT and json.loads(s.payload).get("type") == "message"]
    assert len(own) == 40, f"{len(own)} of the publisher's 40 own copies came before the close"
    assert [m["data"]["i"] for m in messages(other, "runs.c", 40)] == list(range(40))


def test_a_burst_past_a_slow_subscribers_bound_closes_only_it(broker_factory):
    b = broker_factory("--max-outbound-bytes", "256KiB")
    slow = b.raw_ws(rcvbuf=4096)  # never reads
    subscribe(slow, "runs.s")
    fast = b.raw_ws()
    subscribe(fast, "runs.s")
    pub = b.raw_ws()
    # 4 MB in bursts of 100 frames of ~1 KB (chunked): more than the kernel's
    # buffers take for the slow reader, so its queue passes the bound while
    # the fast one, reading each burst, stays far below it.
    for rep in range(40):
        pub.send(burst("runs.s", 100, first_id=rep * 100, big_every=1, pad=900))
        got = messages(fast, "runs.s", 100)
        assert [m["data"]["i"] for m in got] == list(range(100))
    wait_for(lambda: b.metric("wsbroker_slow_consumer_closes_total") >= 1, 10, 0.05,
             "the slow subscriber to be closed")
    assert slow.expect_close(10).close_code == 1013
    b.assert_healthy()
