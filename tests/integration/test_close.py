"""Closing: the client's close handshake, SIGTERM with connected clients,
idle timeout and server keepalive pings."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import pytest

import wsraw
from helpers import connect, recv_json, run, send_json, subscribe, wait_for
from wsraw import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, build_frame, close_payload

# Under a wrapper (valgrind) the broker runs 20-50x slower, and on a loaded
# machine its timers and this test's reads are late by seconds: the idle
# window of the "keeps talking" test is widened there, and upper bounds on
# how soon something happens only say that it happens.
WRAPPED = bool(os.environ.get("WSBROKER_TEST_WRAPPER"))
TALK_IDLE_S = 4 if WRAPPED else 1


def ws_count(broker) -> float:
    return broker.metric("wsbroker_websocket_connections")


@pytest.mark.parametrize("code,reason", [(1000, b""), (1000, b"bye"), (1001, b"going"), (3000, b"app"),
                                          (4999, "é".encode())])
def test_client_close_is_echoed_then_clean_fin(broker, code, reason):
    c = broker.raw_ws()
    c.send_close(code, reason)
    f = c.recv_frame()
    assert f.opcode == OP_CLOSE and f.fin and not f.masked and f.rsv == 0, f
    # The broker echoes the code (RFC 6455 5.5.1); the frame arrives whole.
    assert f.close_code == code, f
    assert len(f.payload) >= 2
    f.payload[2:].decode("utf-8")
    # Then the broker closes TCP with a FIN, not an RST, and sends nothing more.
    assert c.read_to_eof() == b""
    c.close()
    wait_for(lambda: ws_count(broker) == 0, 5, 0.02, "the session to end")
    broker.assert_healthy()


def test_client_close_without_status_gets_empty_close(broker):
    c = broker.raw_ws()
    c.send_close(None)
    f = c.recv_frame()
    assert f.opcode == OP_CLOSE and f.payload == b"", f
    assert c.read_to_eof() == b""


def test_client_close_followed_by_more_data_still_clean(broker):
    # Bytes after the client's close frame (in the same segment and later) are
    # discarded; the kernel must not answer them with RST over our close reply.
    c = broker.raw_ws()
    c.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, b'{"type":"ping","id":1}'))
    f = c.recv_frame()
    assert f.opcode == OP_CLOSE and f.close_code == 1000
    c.send(build_frame(OP_TEXT, b'{"type":"ping","id":2}'))
    assert c.read_to_eof() == b""


@pytest.mark.broker_args("--close-timeout", "1s")
def test_peer_that_never_answers_the_brokers_close_is_dropped_after_close_timeout(broker):
    # A binary frame gets close 1003, after which the broker waits for the
    # peer's close reply (test_frames.py); this peer reads the close frame
    # but never answers nor closes. The broker ends the TCP connection once
    # close_timeout has passed, and not long before.
    c = broker.raw_ws()
    c.send(build_frame(OP_BINARY, b"\x01"))
    f = c.expect_close(5)
    assert f.close_code == 1003
    t0 = time.monotonic()
    how = c.wait_closed(timeout=10)
    waited = time.monotonic() - t0
    assert how in ("eof", "reset")
    # The deadline is checked every 50 ms (SERVER_TICK_MS); under valgrind
    # the broker is slower, hence the generous upper bound.
    assert 0.8 <= waited <= 5.0, f"closed {waited:.2f}s after its close frame, close_timeout 1 s"
    wait_for(lambda: ws_count(broker) == 0, 5, 0.02, "the session to end")
    broker.assert_healthy()


def test_websockets_client_close_handshake(broker):
    async def go():
        ws = await connect(broker.ws_url)
        await subscribe(ws, "closing", 1)
        await ws.close(1000, "done")
        await ws.wait_closed()
        return ws.close_code, ws.close_reason

    code, _reason = run(go())
    assert code == 1000
    wait_for(lambda: ws_count(broker) == 0, 5, 0.02, "the session to end")
    assert broker.metric("wsbroker_subscriptions") == 0


# A long shutdown timeout, so "did not wait for it" is far from "slow machine".
@pytest.mark.broker_args("--shutdown-timeout", "30s")
def test_sigterm_sends_1001_to_each_client_then_exits_0(broker):
    async def go():
        clients = [await connect(broker.ws_url) for _ in range(5)]
        for i, ws in enumerate(clients):
            await subscribe(ws, f"term.{i}", 1)
        raw = broker.raw_ws()
        idle_http = wsraw.Conn(broker.host, broker.port)
        idle_http.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert wsraw.read_response(idle_http).status == 200  # kept alive
        t0 = time.monotonic()
        broker.signal()
        # Raw client: the close frame arrives intact; we answer it.
        f = raw.expect_close()
        assert f.close_code == 1001, f
        raw.send_close(1001)
        assert raw.wait_closed() == "eof"
        for ws in clients:
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1001, ws.close_code
        # An idle keep-alive HTTP connection is closed too.
        assert idle_http.wait_closed() == "eof"
        idle_http.close()
        return t0

    t0 = run(go())
    rc = broker.wait_exit(40)
    elapsed = time.monotonic() - t0
    broker.check_exit(0)
    assert rc == 0
    # Every client answered, so the broker need not wait for shutdown_timeout (30 s).
    assert elapsed < 20, f"shutdown took {elapsed:.1f}s with all clients cooperating"


# --header-timeout: the 4 MB publish must not be cut as a slow request when the
# broker runs under valgrind on a loaded machine. --shutdown-timeout: the drain
# of 4 MB into a 4 KiB receive buffer must end by itself, not by the timeout,
# however slow the machine (the holder answers its close at the end, so the
# broker exits then).
@pytest.mark.broker_args("--shutdown-timeout", "60s", "--close-timeout", "60s", "--max-outbound-bytes", "16MiB",
                         "--max-http-body", "8MiB", "--header-timeout", "120s")
def test_sigterm_stops_accepting_and_flushes_queued_messages_before_1001(broker):
    # A client that does not answer keeps the drain going until it does.
    holder = broker.raw_ws()
    # A subscriber that is not reading yet: what is published before the
    # signal waits in the broker's queue for it (4 MB: more than the kernel's
    # socket buffers take, under the 16 MiB bound).
    sub = broker.raw_ws(rcvbuf=4096)
    sub.send_json({"type": "subscribe", "topic": "drain.t", "id": 1})
    assert sub.recv_json() == {"type": "ack", "id": 1}
    r = broker.post("/api/publish", [{"topic": "drain.t", "data": {"i": i, "p": "q" * 8000}} for i in range(500)],
                    timeout=20)
    assert r.status == 200, r
    wait_for(lambda: broker.metric("wsbroker_outbound_queued_bytes") > 100_000, 5, 0.02,
             "the subscriber's queue to fill")
    broker.signal()
    wait_for(lambda: "signal received" in broker.stderr() or "shutting down" in broker.stderr(), 5, 0.02,
             "the broker to take the signal")

    def refused() -> bool:
        try:
            with socket.create_connection((broker.host, broker.port), timeout=1):
                return False
        except ConnectionResetError:
            return False  # landed in a listener's queue as it closed: not yet
        except ConnectionRefusedError:
            return True

    # The holder keeps the drain going for up to 60 s, so this bound only
    # limits how long a failure takes to show.
    wait_for(refused, 10, 0.02, "new connections to be refused during the drain")
    # The queued messages come first, all of them, then the 1001 close.
    got = [sub.recv_json(10)["data"]["i"] for _ in range(500)]
    assert got == list(range(500))
    f = sub.expect_close(5)
    assert f.close_code == 1001, f
    sub.send_close(1001)
    assert holder.expect_close(5).close_code == 1001
    holder.send_close(1001)
    sub.close()
    holder.close()
    broker.wait_exit(10)
    broker.check_exit(0)


@pytest.mark.broker_args("--shutdown-timeout", "1s", "--close-timeout", "10s")
def test_sigterm_with_unresponsive_client_exits_0_after_shutdown_timeout(broker):
    c = broker.raw_ws()  # never reads nor answers the close
    t0 = time.monotonic()
    broker.signal()
    broker.wait_exit(10)
    elapsed = time.monotonic() - t0
    broker.check_exit(0)
    assert 0.8 <= elapsed < 9, f"exited after {elapsed:.2f}s with --shutdown-timeout 1s"
    f = c.expect_close()
    assert f.close_code == 1001
    c.close()


def test_sigterm_with_no_clients_exits_0_promptly(broker):
    t0 = time.monotonic()
    broker.signal()
    broker.wait_exit(10)
    broker.check_exit(0)
    assert time.monotonic() - t0 < (30 if WRAPPED else 2)


@pytest.mark.broker_args("--log-level", "debug")
def test_repeated_sigterm_during_the_drain_still_exits_0(broker):
    # The drain is already bounded by shutdown_timeout; further signals must
    # neither cut it short nor kill the process with the default action
    # (which is what closing libuv's signal handles would restore).
    async def go():
        clients = [await connect(broker.ws_url) for _ in range(3)]
        broker.signal()
        deadline = time.monotonic() + 10
        # An impatient operator or supervisor: a signal every 2 ms. (A
        # tight loop of kill() also caught the old race, but starves this
        # test's own event loop, which then misses the close frames.)
        while broker.alive() and time.monotonic() < deadline:
            broker.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.002)
        for ws in clients:
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1001, (ws.close_code, broker.stderr())

    run(go())
    assert broker.wait_exit(10) == 0
    broker.check_exit(0)


def test_sigint_also_exits_0(broker):
    import signal as sig
    broker.raw_ws()
    broker.signal(sig.SIGINT)
    broker.close_tracked()
    broker.wait_exit(10)
    broker.check_exit(0)


@pytest.mark.broker_args("--ping-interval", "0", "--idle-timeout", "1s")
def test_idle_client_closed_with_1008(broker):
    # The broker's idle clock starts at the upgrade: the lower bound is
    # measured from before it (a slow client reads the welcome late), the
    # upper bound from after it, loosely (only "it does close").
    t0 = time.monotonic()
    c = broker.raw_ws()
    t1 = time.monotonic()
    assert c.welcome["limits"]["ping_interval_ms"] == 0
    f = c.expect_close(timeout=10)
    now = time.monotonic()
    assert f.close_code == 1008, f
    assert f.close_reason == "idle timeout"
    assert now - t0 >= 0.7, f"idle close after {now - t0:.2f}s with --idle-timeout 1s"
    assert now - t1 <= 8.0, f"idle close only after {now - t1:.2f}s with --idle-timeout 1s"
    assert not [s for s in c.skipped if s.opcode == OP_PING], "pings sent with --ping-interval 0"
    c.send_close(1008)
    assert c.wait_closed() == "eof"
    assert broker.metric("wsbroker_idle_timeouts_total") == 1


@pytest.mark.broker_args("--ping-interval", "0", "--idle-timeout", f"{TALK_IDLE_S}s")
def test_client_that_keeps_talking_is_not_idle(broker):
    c = broker.raw_ws()
    end = time.monotonic() + 2.5 * TALK_IDLE_S
    i = 0
    while time.monotonic() < end:
        i += 1
        c.send_json({"type": "ping", "id": i})
        assert c.recv_json() == {"type": "pong", "id": i}
        time.sleep(0.3)


@pytest.mark.broker_args("--ping-interval", "300ms", "--idle-timeout", "1s")
def test_server_pings_arrive_at_ping_interval(broker):
    # The broker's clock starts at the upgrade, which happens before the
    # client has read the welcome: measure from before the upgrade, or a slow
    # client (valgrind runs) sees the first ping "early".
    t0 = time.monotonic()
    c = broker.raw_ws()
    assert c.welcome["limits"]["ping_interval_ms"] == 300
    pings = []
    while len(pings) < 3:
        f = c.recv_frame(timeout=2)
        assert f.opcode == OP_PING, f
        assert f.fin and not f.masked and len(f.payload) <= 125
        pings.append(time.monotonic() - t0)
        c.send_frame(wsraw.OP_PONG, f.payload)
    # Ping k cannot arrive before (k+1) intervals after t0 (timer slack
    # allowed); a slow client may read two queued pings back to back, so the
    # gaps between receipts are not bounded below. The upper bound is loose:
    # three pings arrive, at the ping interval rather than never.
    assert all(p >= 0.2 + 0.25 * k for k, p in enumerate(pings)), pings
    assert pings[2] <= 6.0, pings


@pytest.mark.broker_args("--ping-interval", "300ms", "--idle-timeout", "1s")
def test_raw_client_that_ignores_pings_is_closed_1008(broker):
    c = broker.raw_ws()
    f = c.expect_close(timeout=30 if WRAPPED else 5)
    assert f.close_code == 1008
    # Pings went out before the close (about three in the idle second; a
    # broker whose loop was stalled by the machine may manage only one).
    assert [s for s in c.skipped if s.opcode == OP_PING], c.skipped


@pytest.mark.broker_args("--ping-interval", "300ms", "--idle-timeout", "1s")
def test_websockets_automatic_pong_keeps_connection_alive_past_idle_timeout(broker):
    async def go():
        # No client-initiated pings: only the library's automatic pong answers.
        ws = await connect(broker.ws_url, ping_interval=None)
        await subscribe(ws, "alive", 1)
        await asyncio.sleep(2.5)  # 2.5x idle_timeout of silence from the application
        assert ws.open, f"closed: {ws.close_code} {ws.close_reason}"
        await send_json(ws, {"type": "ping", "id": 2})
        assert await recv_json(ws) == {"type": "pong", "id": 2}
        r = broker.post("/api/publish", {"topic": "alive", "data": 1})
        assert r.status == 200 and r.json() == {"seq": 1}, r
        assert (await recv_json(ws))["data"] == 1
        await ws.close()

    run(go())
    assert broker.metric("wsbroker_idle_timeouts_total") == 0
