"""The idle timeout counts complete frames, not bytes (issue 15, item 6;
PROTOCOL.md 1): a frame dribbled one byte at a time does not keep a
connection open, while Pongs answering the broker's Pings do."""
from __future__ import annotations

import time

import pytest

import wsraw

IDLE_S = 2.0


@pytest.mark.broker_args("--ping-interval", "0", "--idle-timeout", "2s")
def test_a_frame_dribbled_byte_by_byte_is_closed_at_the_idle_timeout(broker):
    c = broker.raw_ws()
    # A frame far longer than the test: at one byte per quarter of the idle
    # timeout it never completes before the timeout passes.
    frame = wsraw.text_frame({"type": "ping", "id": 1, "pad": "x" * 400})
    t0 = time.monotonic()
    sent = 0
    closed = None
    while closed is None:
        assert sent < len(frame), "the whole frame went out without an idle close"
        assert time.monotonic() - t0 < 10 * IDLE_S, "no idle close while dribbling"
        c.send(frame[sent:sent + 1])
        sent += 1
        try:
            f = c.recv_frame(timeout=IDLE_S / 4)  # the pacing of the dribble
        except wsraw.Timeout:
            continue
        assert f.opcode == wsraw.OP_CLOSE, f"unexpected frame while dribbling: {f}"
        closed = f
    elapsed = time.monotonic() - t0
    assert closed.close_code == 1008 and closed.close_reason == "idle timeout", closed
    assert elapsed >= IDLE_S * 0.9, f"closed after {elapsed:.2f}s, before the idle timeout"
    assert sent >= 4, sent  # several bytes arrived in time and did not reset the timer
    assert broker.metric("wsbroker_idle_timeouts_total") == 1


@pytest.mark.broker_args("--ping-interval", "500ms", "--idle-timeout", "2s")
def test_pongs_answering_server_pings_keep_a_quiet_connection_open(broker):
    c = broker.raw_ws()
    end = time.monotonic() + 3 * IDLE_S
    pongs = 0
    while time.monotonic() < end:
        f = c.recv_frame(timeout=IDLE_S)
        assert f.opcode == wsraw.OP_PING, f"expected only pings, got {f}"
        c.send_frame(wsraw.OP_PONG, f.payload)
        pongs += 1
    assert pongs >= 4, pongs
    c.send_json({"type": "ping", "id": 7})
    assert c.recv_json() == {"type": "pong", "id": 7}
    assert broker.metric("wsbroker_idle_timeouts_total") == 0
