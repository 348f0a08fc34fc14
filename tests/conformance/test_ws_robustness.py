"""Robustness cases beyond Autobahn, in their own module so that they get
their own broker: a client that never reads (9.11.x), interleaved
connections (10.3.1) and clients that drop the TCP connection without a
closing handshake (7.15.x, last because a crash there would make every later
case of the module fail too; the first failure is the one to read).
"""

from __future__ import annotations

import select
import signal
import socket
import struct
import time

import pytest

from wsconf_client import F, WsConn, on_alarm as _on_alarm


# ---- 9.11 (extra): a client that sends but never reads ---------------------
# DESIGN.md: "Every queue is bounded ... Exceeding a bound closes or drops — it
# never blocks the loop and never grows memory"; max_outbound_bytes (1 MiB by
# default) bounds a connection's unsent output. An echo server facing a client
# that does not read must therefore either stop reading from it (TCP
# backpressure: our writes stall) or fail it (close 1008/1013). If it accepts
# far more than every kernel buffer on the path can hold, it is queueing the
# echoes itself without bound.

FLOOD_TOTAL = 128 * 1024 * 1024  # > tcp_rmem max (32 MiB) + wmem + one 16 MiB message


def _rss_mib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return -1


def _drain(conn: WsConn, rest: bytes) -> None:
    """Finishes the frame in progress, sends close 1000 and reads (discarding)
    until EOF, so the connection ends with FIN, not RST."""
    conn.discard_input = True
    conn.deadline = time.monotonic() + 30.0
    if conn.write(rest) and conn.write(F(0x8, b"\x03\xe8").encode()):
        while not conn.reader.eof:
            conn._wait_readable("EOF after the flood")


def _flood(broker, chunk: bytes, what: str):
    conn = WsConn(broker.port, time.monotonic() + 60.0)
    conn.connect()
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    rss0 = _rss_mib(broker.proc.pid)
    sent = 0
    verdict = None
    view = memoryview(b"")
    try:
        while sent < FLOOD_TOTAL and verdict is None:
            view = memoryview(chunk)
            while view:
                _, w, _ = select.select([], [conn.sock], [], 1.0)
                if not w:
                    verdict = f"stalled after {sent >> 20} MiB (backpressure)"
                    break
                try:
                    n = conn.sock.send(view)
                except (BlockingIOError, InterruptedError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    verdict = f"connection failed after {sent >> 20} MiB"
                    break
                view = view[n:]
                sent += n
        rss1 = _rss_mib(broker.proc.pid)
        # Read everything the server has for us: a server that failed the
        # connection (close 1008/1013) dropped its backlog, one that queued
        # without bound now delivers (nearly) all of it.
        if verdict is None or verdict.startswith("stalled"):
            _drain(conn, bytes(view))
        if verdict is None and conn.bytes_in > FLOOD_TOTAL // 2:
            raise AssertionError(
                f"case: {what}\nproblem: the server accepted {sent >> 20} MiB from a client that "
                f"read nothing, neither closing it nor applying backpressure, and then delivered "
                f"{conn.bytes_in >> 20} MiB of queued replies; broker RSS {rss0} -> {rss1} MiB "
                f"during the flood (max_outbound_bytes is 1 MiB): the reply queue is unbounded")
    finally:
        conn.close()


@pytest.mark.conformance_case
@pytest.mark.parametrize("what", ["9.11.1", "9.11.2"])
def test_unread_flood(broker, what):
    broker.check_alive("before this case: it died in an earlier one")
    if what == "9.11.1":
        desc = "(extra) 1 MiB binary messages sent to a client that never reads"
        msg = F(0x2, bytes(range(256)) * 4096, key=b"\x0a\x0b\x0c\x0d").encode()
        chunk = msg
    else:
        desc = "(extra) 125-byte pings sent by a client that never reads the pongs"
        one = F(0x9, bytes(125), key=b"\x0a\x0b\x0c\x0d").encode()
        chunk = one * 8000
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 90.0)
    try:
        _flood(broker, chunk, f"{what}: {desc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    broker.check_alive()


# ---- 10.3 (extra): several connections at once ------------------------------
# The broker reads every connection into one shared buffer and borrows the
# first slice of a message from it; partial messages of interleaved
# connections must not leak into each other.


@pytest.mark.conformance_case
@pytest.mark.parametrize("what", ["10.3.1"])
def test_interleaved_connections(broker, what):
    broker.check_alive("before this case: it died in an earlier one")
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 20.0)
    conns = []
    try:
        deadline = time.monotonic() + 15.0
        payloads = []
        writes = []
        for i in range(8):
            c = WsConn(broker.port, deadline)
            c.connect()
            conns.append(c)
            body = (f"conn {i}: " + "κόσμε-" * 200).encode()[:1000]
            body = body.decode("utf-8", "ignore").encode()
            payloads.append(body)
            frames = b"".join(
                F(0x1 if k == 0 else 0x0, body[k:k + 100], fin=k + 100 >= len(body)).encode()
                for k in range(0, len(body), 100))
            writes.append([frames[k:k + 37] for k in range(0, len(frames), 37)])
        # Round-robin: 37 bytes to each connection in turn.
        for step in range(max(len(w) for w in writes)):
            for c, w in zip(conns, writes):
                if step < len(w):
                    c.write(w[step])
        for i, c in enumerate(conns):
            ev = c.next_event()
            assert (ev.kind, ev.data) == ("text", payloads[i]), (
                f"case {what}: (extra) 8 connections, each a 1000-byte text in 100-byte "
                f"fragments, written 37 bytes at a time round-robin\nproblem: connection {i} "
                f"got {ev.short()}, expected text(len={len(payloads[i])})")
        for c in conns:
            c.write(F(0x8, b"\x03\xe8").encode())
            ev = c.next_event()
            assert ev.kind == "close" and ev.code == 1000, ev.short()
            assert c.next_event().kind == "eof"
    finally:
        for c in conns:
            c.close()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    broker.check_alive()


# ---- 7.15 (extra): the peer vanishes without a closing handshake -----------
# A client may drop the TCP connection at any time: right after a frame that
# made the server queue a reply, with FIN or with RST (SO_LINGER 0). The
# broker must drop the connection and go on serving others: checked by a
# fresh connection that must still get its pong.

# The race (data and the reset handled in one loop turn) is not hit every
# time, so each case tries many connections.
ATTEMPTS = 100

ABRUPT = {
    "7.15.1": ("ping, then FIN without a close frame", lambda: F(0x9, b"bye").encode(), "fin"),
    "7.15.2": ("half a text frame, then RST", lambda: F(0x1, b"0123456789").encode()[:9], "rst"),
    "7.15.3": ("ping, then RST", lambda: F(0x9, b"are you there").encode(), "rst"),
    "7.15.4": ("text message, then RST", lambda: F(0x1, b"hello, then gone").encode(), "rst"),
}


def _round_trip(port: int, what: str) -> None:
    conn = WsConn(port, time.monotonic() + 5.0)
    try:
        conn.connect()
        conn.write(F(0x9, b"still alive?").encode())
        ev = conn.next_event()
        assert (ev.kind, ev.data) == ("pong", b"still alive?"), f"{what}: got {ev.short()}"
    finally:
        conn.close()


@pytest.mark.conformance_case
@pytest.mark.parametrize("what", list(ABRUPT))
def test_abrupt_close(broker, what):
    broker.check_alive("before this case: it died in an earlier one")
    desc, frame, how = ABRUPT[what]
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 60.0)
    try:
        for i in range(ATTEMPTS):
            try:
                conn = WsConn(broker.port, time.monotonic() + 5.0)
                conn.connect()
                conn.sock.setblocking(True)
                conn.sock.sendall(frame())
                if how == "rst":
                    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
                else:
                    conn.sock.shutdown(socket.SHUT_WR)
                conn.close()
                _round_trip(broker.port, what)
            except (AssertionError, OSError) as e:
                state = broker.proc.poll()
                raise AssertionError(
                    f"case {what}: (extra) {desc}\nproblem: connection {i + 1} of {ATTEMPTS} "
                    f"failed "
                    f"({type(e).__name__}: {e}); broker "
                    f"{'still running' if state is None else f'exited with status {state}'}"
                    f"\nbroker stderr tail:\n{broker.stderr_tail(1500)}") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    broker.check_alive()
