"""Clients that vanish abruptly (RST right behind their requests, half-open
handshakes, mid-frame disconnects): the broker must neither crash nor touch
freed memory (run under the ASan build to see the latter) and keeps serving."""
from __future__ import annotations

import socket
import struct

import wsraw
from helpers import wait_for

RST_LINGER = struct.pack("ii", 1, 0)


def rst_close(sock: socket.socket) -> None:
    """close() with SO_LINGER {on, 0}: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_LINGER)
    sock.close()


def test_rst_right_after_websocket_requests(broker):
    """Regression: a connection that gets replies queued (dirty for this loop
    turn's flush) and is then reset in the same read burst is closed and freed
    before the flush runs; the flush must not touch it (use-after-free in
    on_flush)."""
    for i in range(40):
        c = wsraw.ws_connect(broker.host, broker.port)
        burst = b"".join(wsraw.text_frame({"type": "ping", "id": k}) for k in range(20))
        burst += wsraw.build_frame(wsraw.OP_PING, b"x" * 100)
        c.sock.sendall(burst)
        rst_close(c.sock)
    broker.assert_healthy()
    wait_for(lambda: broker.metric("wsbroker_websocket_connections") == 0, 5, 0.05, "reset sessions to be gone")


def test_rst_right_after_http_requests(broker):
    for i in range(40):
        s = socket.create_connection((broker.host, broker.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
        rst_close(s)
    broker.assert_healthy()


def test_rst_while_subscribed_during_fanout(broker):
    """Subscribers that reset while messages are being fanned out to them."""
    subs = []
    for i in range(30):
        c = wsraw.ws_connect(broker.host, broker.port)
        c.send_json({"type": "subscribe", "topic": "rst.fan", "id": 1})
        assert c.recv_json() == {"type": "ack", "id": 1}
        subs.append(c)
    pub = broker.raw_ws()
    for k, c in enumerate(subs):
        pub.send(b"".join(wsraw.text_frame({"type": "publish", "topic": "rst.fan", "data": "z" * 2000})
                          for _ in range(5)))
        rst_close(c.sock)
    pub.send_json({"type": "ping", "id": 9})
    assert pub.recv_json() == {"type": "pong", "id": 9}
    broker.assert_healthy()


def test_disconnect_in_the_middle_of_a_frame_and_of_a_request_head(broker):
    for i in range(10):
        c = wsraw.ws_connect(broker.host, broker.port)
        frame = wsraw.text_frame({"type": "publish", "topic": "half", "data": "q" * 500})
        c.sock.sendall(frame[: len(frame) // 2])
        c.sock.close()
        s = socket.create_connection((broker.host, broker.port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        s.close()
        s = socket.create_connection((broker.host, broker.port))
        s.sendall(wsraw.upgrade_request()[:40])
        rst_close(s)
    broker.assert_healthy()
    wait_for(lambda: broker.metric("wsbroker_connections") == 1, 5, 0.05, "only the metrics connection to remain")


def test_connect_and_close_without_sending_anything(broker):
    for i in range(100):
        s = socket.create_connection((broker.host, broker.port))
        if i % 2:
            rst_close(s)
        else:
            s.close()
    broker.assert_healthy()
