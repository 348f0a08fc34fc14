"""RESP connections live inside the broker's limits like WebSocket ones
(issue 16): max_connections, max_connections_per_ip, the idle, partial-request
and AUTH deadlines, and the outbound bounds. Real broker, raw sockets.

Every loop is bounded by time and driven by the condition it checks; the
deadlines are short so that each case ends in seconds."""
from __future__ import annotations

import socket
import threading
import time

from helpers import wait_for
import wsraw

WAIT = 10.0  # seconds any single condition may take on a slow machine


class Resp:
    """A raw RESP client: sends bytes, parses replies (RESP2)."""

    def __init__(self, port: int, rcvbuf: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, *args) -> None:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.send(out)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("closed by the broker")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return line.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise AssertionError(f"not RESP: {line!r}")

    def call(self, *args):
        self.cmd(*args)
        return self.reply()

    def closed_after(self, timeout: float = WAIT) -> list:
        """The replies read until the broker closes; fails if it does not within timeout."""
        self.sock.settimeout(timeout)
        got = []
        try:
            while True:
                got.append(self.reply())
        except (EOFError, ConnectionResetError):
            return got

    def close(self) -> None:
        self.sock.close()


def resp_broker(broker_factory, *args, **kw):
    return broker_factory(*args, resp=True, **kw)


def test_max_connections_counts_resp(broker_factory):
    """RESP clients cannot take more than max_connections: the one beyond gets
    Redis's maxclients error and is closed, HTTP gets 503 meanwhile (answered,
    not reset), and once they leave WebSocket and /healthz work again."""
    b = resp_broker(broker_factory, "--max-connections", "8")
    clients = [Resp(b.resp_port) for _ in range(8)]
    for c in clients:
        assert c.call("PING") == "+PONG"
    extra = Resp(b.resp_port)
    assert extra.closed_after() == ["-ERR max number of clients reached"]
    extra.close()
    assert wsraw.http_request(b.host, b.port, "GET", "/healthz").status == 503
    clients.pop().close()
    wait_for(lambda: wsraw.http_request(b.host, b.port, "GET", "/healthz").status == 200, WAIT,
             what="a slot freed by a RESP client")
    for c in clients:
        c.close()
    # The broker reads the clients' FINs a little later, on the worker that
    # owns them: wait until every slot is free again (a connection that
    # stayed counted would never let this through; /metrics would be refused
    # too while they are counted), then the round trip.
    wait_for(lambda: all(wsraw.http_request(b.host, b.port, "GET", "/healthz").status == 200
                         for _ in range(7)), WAIT, what="seven requests in a row admitted")
    b.assert_healthy()


def test_per_ip_limit_counts_resp(broker_factory):
    """max_connections_per_ip counts RESP connections with WebSocket/HTTP ones."""
    b = resp_broker(broker_factory, "--max-connections-per-ip", "3")
    clients = [Resp(b.resp_port) for _ in range(3)]
    for c in clients:
        assert c.call("PING") == "+PONG"
    extra = Resp(b.resp_port)
    assert extra.closed_after() == ["-ERR too many connections from this address"]
    extra.close()
    assert wsraw.http_request(b.host, b.port, "GET", "/healthz").status == 429
    clients.pop().close()
    wait_for(lambda: wsraw.http_request(b.host, b.port, "GET", "/healthz").status == 200, WAIT,
             what="a slot freed by a RESP client")


def test_idle_resp_connection_is_closed(broker_factory):
    """A RESP connection without a request for idle_timeout is closed (without
    a word, as Redis's timeout); a subscriber waiting for messages is not idle."""
    b = resp_broker(broker_factory, "--idle-timeout", "1s", "--ping-interval", "0")
    sub = Resp(b.resp_port)
    assert sub.call("SUBSCRIBE", "idle.t") == [b"subscribe", b"idle.t", 1]
    idle = Resp(b.resp_port)
    assert idle.closed_after() == []
    assert b.metric("wsbroker_idle_timeouts_total") >= 1
    # The subscriber outlived the idle one and still gets what is published.
    pub = Resp(b.resp_port)
    assert isinstance(pub.call("PUBLISH", "idle.t", "1"), int)
    assert sub.reply() == [b"message", b"idle.t", b"1"]


def test_partial_resp_request_times_out(broker_factory):
    """A request begun must be complete within header_timeout: bytes dribbled
    one by one do not extend it."""
    b = resp_broker(broker_factory, "--header-timeout", "500ms", "--idle-timeout", "60s")
    stalled = Resp(b.resp_port)
    stalled.send(b"*2\r\n$4\r\nPING")
    assert stalled.closed_after() == ["-ERR Protocol error: request timeout"]
    dribbler = Resp(b.resp_port)
    dribbler.send(b"*2\r\n$4\r\nECHO\r\n$1000\r\n")
    start = time.monotonic()
    closed = False
    while time.monotonic() - start < WAIT:
        try:
            dribbler.send(b"x")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        dribbler.sock.settimeout(0.05)
        try:
            if dribbler.sock.recv(65536, socket.MSG_PEEK) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
            break
    assert closed, "a dribbled request kept the connection open"
    assert b.metric("wsbroker_header_timeouts_total") >= 2


def test_resp_auth_deadline(broker_factory):
    """With API keys, a RESP connection must AUTH within auth.timeout: else it
    gets -NOAUTH and is closed. One that authenticated stays."""
    b = resp_broker(broker_factory, "--api-keys", "resp-limits-key-0001", "--auth-timeout", "1s",
                    "--idle-timeout", "60s")
    good = Resp(b.resp_port)
    assert good.call("AUTH", "resp-limits-key-0001") == "+OK"
    lazy = Resp(b.resp_port)
    lazy.cmd("PING")  # allowed before AUTH; does not extend the deadline
    assert lazy.closed_after()[-1:] == ["-NOAUTH Authentication timeout."]
    assert good.call("PUBLISH", "auth.t", "1") >= 1


def test_non_reading_resp_subscriber_is_bounded(broker_factory):
    """A RESP subscriber that never reads is inside max_total_outbound: it is
    closed as a slow consumer once the worker's share is used, long before
    its own (large) max_outbound_bytes, while a subscriber that reads keeps
    receiving everything."""
    b = resp_broker(broker_factory, "--workers", "1", "--max-outbound-bytes", "64MiB",
                    "--max-total-outbound", "1MiB")
    stuck = Resp(b.resp_port, rcvbuf=4096)
    assert stuck.call("SUBSCRIBE", "slow.t") == [b"subscribe", b"slow.t", 1]
    reader = Resp(b.resp_port)
    assert reader.call("SUBSCRIBE", "slow.t") == [b"subscribe", b"slow.t", 1]
    received = []
    failed = []

    def read():
        try:
            while True:
                msg = reader.reply()
                received.append(msg[2])
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            failed.append(e)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    pub = Resp(b.resp_port)
    payload = "x" * 16384
    sent = 0
    start = time.monotonic()
    # 24 MiB at most: under max_outbound_bytes alone, kernel buffers included,
    # the stuck subscriber would still be open.
    while b.metric("wsbroker_slow_consumer_closes_total") < 1:
        assert sent < 1536 and time.monotonic() - start < 60, \
            f"the non-reading subscriber was not closed after {sent} messages"
        for _ in range(16):
            seq = pub.call("PUBLISH", "slow.t", f'"{sent}{payload}"')
            assert isinstance(seq, int), seq
            sent += 1
    assert b.metric("wsbroker_outbound_queued_bytes") <= 2 * 1024 * 1024
    # The reader got every message published, in order.
    seq = pub.call("PUBLISH", "slow.t", '"last"')
    assert isinstance(seq, int), seq
    wait_for(lambda: received and received[-1] == b'"last"' or failed, WAIT, what="the last message")
    assert not failed, failed
    assert len(received) == sent + 1
    assert all(m.startswith(b'"%d' % i) for i, m in enumerate(received[:-1]))
    b.assert_healthy()
