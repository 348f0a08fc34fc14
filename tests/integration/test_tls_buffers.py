"""wss:// under load: the broker's TLS staging buffers exist only while they hold
bytes and its ciphertext goes to the socket without a copy (issue 17 item 4),
so these check that nothing is lost or reordered on the paths that changed:
large messages both ways, many small pipelined messages, a reader that pauses
(the kernel takes part of the ciphertext, the rest is written later) and a
reader that never reads (the slow-consumer close still works over TLS).
Memory per idle wss connection is a benchmark figure (bench/scenarios/tls.sh),
not a test."""
from __future__ import annotations

import json
import time

import wsraw
from helpers import wait_for
from sectools import client_ssl, make_cert


def tls_broker(broker_factory, tmp_path, *extra):
    cert, key = make_cert(tmp_path)
    b = broker_factory("--tls-cert", str(cert), "--tls-key", str(key), *extra, tls=True)
    b.ctx = client_ssl(cert)
    return b


def wss_raw(b, **kw) -> wsraw.Conn:
    return b.track(wsraw.ws_connect("127.0.0.1", b.tls_port, ssl_context=b.ctx, **kw))


def subscribe(c: wsraw.Conn, topic: str) -> None:
    c.send_json({"type": "subscribe", "topic": topic, "id": 1})
    assert c.recv_json() == {"type": "ack", "id": 1}


def publish_acked(pub: wsraw.Conn, topic: str, datas, first_id: int = 1) -> None:
    """Publishes every item pipelined in one write, then reads every ack."""
    out = bytearray()
    for i, d in enumerate(datas):
        out += wsraw.text_frame({"type": "publish", "topic": topic, "data": d, "id": first_id + i})
    pub.send(bytes(out))
    for i in range(len(datas)):
        r = pub.recv_json(30)
        assert r["type"] == "ack" and r["id"] == first_id + i, r


def test_wss_large_messages_both_ways(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path, "--max-message-size", "2MiB", "--max-outbound-bytes", "4MiB")
    sub = wss_raw(b)
    subscribe(sub, "big")
    pub = wss_raw(b)
    # 1.5 MB: about a hundred TLS records each way, more than the 64 KiB of
    # ciphertext the broker encrypts ahead of the socket.
    datas = ["".join(chr(97 + (i + k) % 26) for k in range(26)) * (1_500_000 // 26) for i in range(3)]
    for i, d in enumerate(datas):
        publish_acked(pub, "big", [d], first_id=i + 1)
        m = sub.recv_json(30)
        assert m["type"] == "message" and m["topic"] == "big", {k: v for k, v in m.items() if k != "data"}
        assert m["data"] == d, f"message {i} differs"
    b.assert_healthy()


def test_wss_many_small_pipelined_messages(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path)
    sub = wss_raw(b)
    subscribe(sub, "small")
    pub = wss_raw(b)
    n = 5000
    publish_acked(pub, "small", list(range(n)))
    got = [sub.recv_json(30)["data"] for _ in range(n)]
    assert got == list(range(n))
    b.assert_healthy()


def test_wss_reader_that_pauses_gets_everything_in_order(broker_factory, tmp_path):
    # Room for the whole burst in the broker's queue, far more than the
    # kernel's socket buffers take: the broker writes ciphertext that the
    # kernel takes only in part and finishes it as the reader catches up.
    b = tls_broker(broker_factory, tmp_path, "--max-outbound-bytes", "32MiB",
                   "--max-message-size", "1MiB")
    sub = wss_raw(b, rcvbuf=4096)
    subscribe(sub, "burst")
    pub = wss_raw(b)
    n, size = 400, 20_000  # 8 MB
    datas = [f"{i:06d}" + "y" * size for i in range(n)]
    for start in range(0, n, 50):  # acked in slices, so the publisher never blocks on its own acks
        publish_acked(pub, "burst", datas[start:start + 50], first_id=start + 1)
    # Everything is queued or in flight now; only then does `sub` read.
    for i in range(n):
        m = sub.recv_json(30)
        assert m["type"] == "message" and m["data"] == datas[i], f"message {i}: {str(m)[:80]}"
    assert b.metric("wsbroker_slow_consumer_closes_total") == 0
    b.assert_healthy()


def test_wss_reader_that_never_reads_is_closed_1013(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path, "--max-outbound-bytes", "64KiB", "--close-timeout", "1s")
    slow = wss_raw(b, rcvbuf=4096)
    subscribe(slow, "flood")
    # From here on `slow` reads nothing.
    pub = wss_raw(b)
    payload = "z" * 16_000
    deadline = time.monotonic() + 60
    i = 0
    while b.metric("wsbroker_slow_consumer_closes_total") < 1:
        assert time.monotonic() < deadline, f"no slow-consumer close after {i} messages of 16 kB"
        publish_acked(pub, "flood", [payload] * 4, first_id=i + 1)
        i += 4
    m = b.metrics()
    assert m["wsbroker_slow_consumer_closes_total"] == 1
    assert m['wsbroker_close_frames_total{code="1013"}'] == 1
    # The publisher is unaffected, and the broker still serves wss://.
    publish_acked(pub, "flood", ["after"], first_id=i + 1)
    fresh = wss_raw(b)
    subscribe(fresh, "flood")
    publish_acked(pub, "flood", ["fresh"], first_id=i + 2)
    assert fresh.recv_json()["data"] == "fresh"
    # pub, fresh and the metrics request itself: the slow reader is gone.
    wait_for(lambda: b.metric("wsbroker_connections") == 3, 30, 0.05, "the slow reader to be gone")
    b.assert_healthy()
