"""Backpressure: a subscriber that stops reading is dropped (1013) once it is
past --max-outbound-bytes, a normal subscriber gets everything in order, and
the broker's memory stays bounded while ~20 MB are pumped through it."""
from __future__ import annotations

import json
import time

import pytest

import wsraw
from helpers import connect, is_asan_build, recv_json, run, send_json, subscribe, wait_for

MSG_DATA_LEN = 16000          # bytes of payload string per message
TOTAL_BYTES = 20 * 1000 * 1000
N_MESSAGES = TOTAL_BYTES // MSG_DATA_LEN   # 1250 messages, ~20 MB
WINDOW = 3                     # messages in flight to the normal subscriber: 48 KB < 64 KiB

# RSS bound for the flood, in KiB of growth over the broker's RSS before it.
# What the broker may legitimately hold: the slow consumer's queue (<= 64 KiB
# plus the frame being written), the normal subscriber's <= WINDOW frames, one
# 16 KB publish being parsed (jansson tree + serialized copy + the shared frame),
# and glibc heap slack. That is well under 2 MiB; 8 MiB leaves room for the
# allocator's arenas and libuv while being far below the 20 MB pumped: a broker
# that buffered the flood for the slow reader (beyond the kernel's socket
# buffers, a few MB on loopback) would exceed it.
RSS_GROWTH_BOUND_KIB = 8 * 1024
# AddressSanitizer's allocator adds redzones and keeps freed memory in a
# quarantine (capped below via ASAN_OPTIONS); give it 4x.
ASAN_FACTOR = 4


@pytest.mark.broker_args("--max-outbound-bytes", "64KiB", "--close-timeout", "60s")
@pytest.mark.broker_env(ASAN_OPTIONS="quarantine_size_mb=4:detect_leaks=1")
def test_slow_consumer_is_dropped_1013_while_normal_subscriber_gets_everything(broker):
    topic = "flood"
    slow = broker.raw_ws(rcvbuf=4096)
    slow.send_json({"type": "subscribe", "topic": topic, "id": 1})
    assert slow.recv_json() == {"type": "ack", "id": 1}
    # From here on `slow` reads nothing until the broker has given up on it.

    payload = "x" * MSG_DATA_LEN
    rss_before = broker.rss_kib()
    result = {}

    async def go():
        sub = await connect(broker.ws_url, max_queue=None)
        pub = await connect(broker.ws_url, max_queue=None)
        await subscribe(sub, topic, 1)
        received = 0
        t0 = time.monotonic()
        i = 0
        while i < N_MESSAGES:
            batch = range(i, min(i + WINDOW, N_MESSAGES))
            for k in batch:
                await send_json(pub, {"type": "publish", "topic": topic, "data": {"i": k, "p": payload}, "id": k + 1})
            for k in batch:
                ack = await recv_json(pub, 10)
                assert ack == {"type": "ack", "id": k + 1, "seq": k + 1}, {kk: v for kk, v in ack.items() if kk != "data"}
            for k in batch:
                m = await recv_json(sub, 10)
                assert m["type"] == "message" and m["seq"] == k + 1 and m["data"]["i"] == k, (k, m.get("seq"))
                assert m["data"]["p"] == payload
                received += 1
            i += WINDOW
        result["elapsed"] = time.monotonic() - t0
        result["received"] = received
        await sub.close()
        await pub.close()

    run(go(), timeout=120)
    assert result["received"] == N_MESSAGES
    hwm = broker.hwm_kib()

    # The broker gave up on the slow reader...
    wait_for(lambda: broker.metric("wsbroker_slow_consumer_closes_total") >= 1, 5, 0.02, "a slow-consumer close")
    m = broker.metrics()
    assert m["wsbroker_slow_consumer_closes_total"] == 1, "only the slow reader may be dropped"
    assert m['wsbroker_close_frames_total{code="1013"}'] == 1

    # ...and once the slow reader reads again (within close_timeout) it finds a
    # clean prefix of the stream: whole message frames in order, then close 1013.
    frames = []
    slow.sock.settimeout(5)
    deadline = time.monotonic() + 20
    close = None
    while time.monotonic() < deadline:
        f = slow.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
        if f.opcode == wsraw.OP_CLOSE:
            close = f
            break
        assert f.opcode == wsraw.OP_TEXT, f
        frames.append(f)
    assert close is not None, f"no close frame after {len(frames)} messages"
    assert close.close_code == 1013, close
    seqs = [json.loads(f.payload)["seq"] for f in frames]
    assert seqs == list(range(1, len(seqs) + 1)), "slow reader's stream has gaps or reordering"
    assert len(seqs) < N_MESSAGES
    slow.send_close(1013)
    assert slow.wait_closed(10) in ("eof", "reset")
    slow.close()

    wait_for(lambda: broker.metric("wsbroker_websocket_connections") == 0, 10, 0.05, "all sessions to end")
    assert broker.metric("wsbroker_outbound_queued_bytes") == 0

    bound = RSS_GROWTH_BOUND_KIB * (ASAN_FACTOR if is_asan_build() else 1)
    growth = hwm - rss_before
    print(f"flood: {N_MESSAGES} msgs in {result['elapsed']:.1f}s; RSS before {rss_before} KiB, "
          f"peak {hwm} KiB, growth {growth} KiB (bound {bound}); slow reader got {len(seqs)} msgs")
    assert growth <= bound, f"broker RSS grew by {growth} KiB during a 20 MB flood (bound {bound} KiB)"
    broker.assert_healthy()


def publish_over_http_until_dropped(broker, topic, max_msgs=700, size=30000) -> int:
    """Publishes `size`-byte messages over one keep-alive HTTP connection until the
    broker reports a slow-consumer close (at most max_msgs * size bytes, ~20 MB).
    Returns the number of messages published."""
    c = broker.conn()
    body = json.dumps({"topic": topic, "data": "y" * size}).encode()
    head = (b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    n = 0
    for i in range(max_msgs):
        c.send(head + body)
        r = wsraw.read_response(c)
        assert r.status == 200, r
        n += 1
        if i % 8 == 7 and broker.metric("wsbroker_slow_consumer_closes_total") >= 1:
            break
    c.close()
    return n


@pytest.mark.broker_args("--max-outbound-bytes", "64KiB", "--close-timeout", "1s")
def test_slow_consumer_that_never_reads_is_disconnected(broker):
    slow = broker.raw_ws(rcvbuf=4096)
    slow.send_json({"type": "subscribe", "topic": "never", "id": 1})
    assert slow.recv_json() == {"type": "ack", "id": 1}
    n = publish_over_http_until_dropped(broker, "never")
    assert broker.metric("wsbroker_slow_consumer_closes_total") == 1, \
        f"the non-reading subscriber was still being fed after {n} messages of 30 KB"
    # It is disconnected within close_timeout (1 s) even though it never reads.
    t0 = time.monotonic()
    wait_for(lambda: broker.metric("wsbroker_websocket_connections") == 0, 5, 0.05, "the slow reader to be closed")
    assert time.monotonic() - t0 < 3.5
    assert broker.metric("wsbroker_outbound_queued_bytes") == 0
    broker.assert_healthy()


@pytest.mark.broker_args("--max-outbound-bytes", "64KiB", "--close-timeout", "10s", "--workers", "1")
def test_messages_delivered_metric_excludes_subscriber_being_dropped(broker):
    """Regression: once a slow consumer has been sent its 1013 close, later
    publishes must not count it as a delivery (it gets nothing):
    wsbroker_messages_delivered_total stays put. One worker, so the HTTP
    publish's fan-out has happened when its response arrives."""
    slow = broker.raw_ws(rcvbuf=4096)
    slow.send_json({"type": "subscribe", "topic": "drop.count", "id": 1})
    assert slow.recv_json() == {"type": "ack", "id": 1}
    publish_over_http_until_dropped(broker, "drop.count")
    wait_for(lambda: broker.metric("wsbroker_slow_consumer_closes_total") >= 1, 5, 0.02, "a slow-consumer close")
    # The session is closing (close_timeout 10 s), not gone.
    assert broker.metric("wsbroker_websocket_connections") == 1
    before = broker.metric("wsbroker_messages_delivered_total")
    r = broker.post("/api/publish", {"topic": "drop.count", "data": "after the drop"})
    assert r.status == 200
    after = broker.metric("wsbroker_messages_delivered_total")
    assert after == before, f"a publish after the drop was counted as {after - before} deliveries"


@pytest.mark.broker_args("--max-outbound-bytes", "64KiB")
@pytest.mark.broker_env(ASAN_OPTIONS="quarantine_size_mb=4:detect_leaks=1")
def test_client_that_sends_pings_but_never_reads_pongs_is_bounded(broker):
    """Replies (pongs, acks, errors) are queued too; a client that pipelines
    requests and never reads the replies must not grow the broker's memory
    without bound: the broker either stops reading from it (TCP backpressure)
    or drops it. Regression for replies bypassing max_outbound_bytes: a
    125-byte WebSocket ping costs the client 131 bytes and the broker a
    127-byte pong, so 40 MB of pings would be ~39 MB of queued pongs."""
    c = broker.raw_ws(rcvbuf=4096)
    chunk = wsraw.build_frame(wsraw.OP_PING, b"p" * 125) * 500
    rss_before = broker.rss_kib()
    c.sock.setblocking(False)
    sent = 0
    stalled_since = None
    outcome = "sent everything"
    t0 = time.monotonic()
    off = 0  # position in `chunk`: a partial send must be continued, not restarted
    while sent < 40_000_000 and time.monotonic() - t0 < 30:
        try:
            n = c.sock.send(chunk[off:])
            sent += n
            off = (off + n) % len(chunk)
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 1.0:
                outcome = "broker stopped reading"
                break
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):
            outcome = "broker dropped the client"
            break
    queued = broker.metric("wsbroker_outbound_queued_bytes")
    growth = broker.hwm_kib() - rss_before
    assert broker.metric('wsbroker_close_frames_total{code="1002"}') == 0, "test bug: ping stream corrupted"
    print(f"sent {sent} bytes of pings ({outcome}); broker queued {queued:.0f} bytes; RSS growth {growth} KiB")
    c.close()
    limit = 64 * 1024 + 128 * 1024  # the bound plus the replies to one 64 KiB read
    assert queued <= limit, (
        f"{queued:.0f} bytes of pongs queued for a client that never reads ({outcome}, "
        f"{sent} bytes sent; max_outbound_bytes 64 KiB)")
    bound = RSS_GROWTH_BOUND_KIB * (ASAN_FACTOR if is_asan_build() else 1)
    assert growth <= bound, f"broker RSS grew by {growth} KiB for a client that never reads replies"
    wait_for(lambda: broker.metric("wsbroker_websocket_connections") == 0, 10, 0.05, "the client to be gone")
    broker.assert_healthy()


@pytest.mark.broker_args("--workers", "2", "--max-outbound-bytes", "64MiB", "--max-total-outbound", "1MiB",
                         "--close-timeout", "1s")
def test_total_outbound_bound_holds_over_all_workers(broker):
    """max_total_outbound bounds the output queued over every connection of
    the broker, not of each worker (regression: each worker enforced the
    whole bound, so N workers held up to N times it). With a per-connection
    bound out of reach, non-reading subscribers on both workers are closed
    with 1013 by the total bound alone, while the queued total never passes
    it (plus one frame per connection, which a connection with an empty
    queue may always take) and a reading subscriber gets every message."""
    bound = 1 << 20
    size = 30000
    slow = []
    for _ in range(32):
        s = broker.raw_ws(rcvbuf=4096)
        s.send_json({"type": "subscribe", "topic": "total", "id": 1})
        assert s.recv_json() == {"type": "ack", "id": 1}
        slow.append(s)
        m = broker.metrics()
        per_worker = [m['wsbroker_worker_connections{worker="%d"}' % w] for w in (0, 1)]
        # The /metrics request's own connection is one of them.
        if len(slow) >= 6 and min(per_worker) >= 2:
            break
    assert min(per_worker) >= 2, f"the non-readers all landed on one worker: {per_worker}"
    reader = broker.raw_ws()
    reader.send_json({"type": "subscribe", "topic": "total", "id": 1})
    assert reader.recv_json() == {"type": "ack", "id": 1}

    c = broker.conn()
    peak = 0
    n = 0
    for i in range(600):
        body = json.dumps({"topic": "total", "data": {"i": i, "p": "z" * size}}).encode()
        c.send(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert wsraw.read_response(c).status == 200
        m = reader.recv_json(10)
        assert m["seq"] == i + 1 and m["data"]["i"] == i, {k: v for k, v in m.items() if k != "data"}
        n += 1
        metrics = broker.metrics()
        peak = max(peak, metrics["wsbroker_outbound_queued_bytes"])
        if metrics["wsbroker_slow_consumer_closes_total"] >= len(slow):
            break
    c.close()
    slack = (len(slow) + 3) * (size + 100)
    assert peak <= bound + slack, f"{peak} bytes queued over all workers, bound {bound} (+{slack} slack)"
    assert broker.metric("wsbroker_slow_consumer_closes_total") == len(slow), \
        f"after {n} messages of {size} bytes only some of the {len(slow)} non-readers were closed"
    wait_for(lambda: broker.metric("wsbroker_websocket_connections") == 1, 10, 0.05,
             "the non-readers to be closed")
    assert broker.metric('wsbroker_close_frames_total{code="1013"}') == len(slow)
    broker.assert_healthy()
