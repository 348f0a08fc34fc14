"""The opening handshake over raw sockets: the good one and each way to get it wrong."""
from __future__ import annotations

import json

import pytest

import wsraw
from helpers import run, connect, subscribe


def send_upgrade(broker, req: bytes) -> tuple[wsraw.Response, wsraw.Conn]:
    c = broker.conn()
    c.send(req)
    return wsraw.read_response(c), c


def assert_refused(broker, req: bytes, status: int) -> wsraw.Response:
    resp, c = send_upgrade(broker, req)
    assert resp.status == status, f"expected {status}, got {resp.status} {resp.body!r}"
    # A refused handshake ends the connection (Connection: close, then FIN).
    assert (resp.header("Connection") or "").lower() == "close", resp.headers
    assert c.wait_closed() == "eof"
    return resp


def test_good_handshake_returns_101_with_accept_key_and_welcome(broker):
    key = wsraw.new_key()
    resp, c = send_upgrade(broker, wsraw.upgrade_request("/ws", f"127.0.0.1:{broker.port}", key))
    assert resp.status == 101
    assert resp.header("Upgrade").lower() == "websocket"
    assert "upgrade" in resp.header("Connection").lower()
    assert resp.header("Sec-WebSocket-Accept") == wsraw.accept_key(key)
    assert resp.header("Sec-WebSocket-Protocol") is None
    f = c.recv_frame()
    assert f.opcode == wsraw.OP_TEXT and f.fin and not f.masked and f.rsv == 0
    w = f.json()
    assert w["type"] == "welcome" and w["protocol"] == 1
    for k in ("client_id", "node_id", "version"):
        assert isinstance(w[k], str) and w[k], w
    limits = w["limits"]
    assert limits["max_message_size"] == 64 * 1024
    assert limits["max_subscriptions"] == 1000
    assert limits["ping_interval_ms"] == 25000


def test_handshake_rfc6455_sample_key_gives_sample_accept(broker):
    # RFC 6455 section 1.3's worked example.
    resp, _ = send_upgrade(broker, wsraw.upgrade_request("/ws", "x", "dGhlIHNhbXBsZSBub25jZQ=="))
    assert resp.status == 101
    assert resp.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_handshake_header_names_and_tokens_are_case_insensitive(broker):
    req = (b"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: WebSocket\r\n"
           b"connection: keep-alive, UPGRADE\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"sec-websocket-version: 13\r\n\r\n")
    resp, _ = send_upgrade(broker, req)
    assert resp.status == 101


def test_handshake_with_query_string_on_ws_path_is_accepted(broker):
    resp, _ = send_upgrade(broker, wsraw.upgrade_request("/ws?token=abc&x=1"))
    assert resp.status == 101


def test_handshake_with_unsupported_subprotocol_gets_none_selected(broker):
    resp, _ = send_upgrade(broker, wsraw.upgrade_request(headers={"Sec-WebSocket-Protocol": "mqtt, stomp"}))
    assert resp.status == 101
    assert resp.header("Sec-WebSocket-Protocol") is None


def test_frames_sent_right_behind_the_upgrade_request_are_processed(broker):
    # Client sends its first frames in the same segment as the request head.
    extra = wsraw.text_frame({"type": "subscribe", "topic": "behind.upgrade", "id": 1})
    extra += wsraw.text_frame({"type": "ping", "id": 2})
    c = broker.raw_ws(extra=extra)
    assert c.recv_json() == {"type": "ack", "id": 1}
    assert c.recv_json() == {"type": "pong", "id": 2}


def test_post_upgrade_is_405(broker):
    r = assert_refused(broker, wsraw.upgrade_request(method="POST", headers={"Content-Length": "0"}), 405)
    assert r.header("Allow") == "GET"


def test_missing_key_is_400(broker):
    assert_refused(broker, wsraw.upgrade_request(drop=("Sec-WebSocket-Key",)), 400)


@pytest.mark.parametrize("key", [
    "abc",                                   # not 16 bytes
    "dGhlIHNhbXBsZSBub25j",                  # 15 bytes... base64 of 15 bytes is 20 chars
    "dGhlIHNhbXBsZSBub25jZQ=",               # bad padding
    "!!!!!!!!!!!!!!!!!!!!!!==",              # not base64
    "dGhlIHNhbXBsZSBub25jZWVl",              # 18 bytes
    "",
])
def test_bad_key_is_400(broker, key):
    assert_refused(broker, wsraw.upgrade_request(key="placeholder", headers={"Sec-WebSocket-Key": key}), 400)


def test_duplicate_key_header_is_400(broker):
    req = wsraw.upgrade_request(headers={"Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA=="]})
    assert_refused(broker, req, 400)


@pytest.mark.parametrize("version", ["8", "12", "14", "abc"])
def test_unsupported_version_is_426_with_version_header(broker, version):
    r = assert_refused(broker, wsraw.upgrade_request(headers={"Sec-WebSocket-Version": version}), 426)
    assert r.header("Sec-WebSocket-Version") == "13"


def test_missing_version_is_426(broker):
    r = assert_refused(broker, wsraw.upgrade_request(drop=("Sec-WebSocket-Version",)), 426)
    assert r.header("Sec-WebSocket-Version") == "13"


def test_missing_upgrade_header_on_ws_path_is_400(broker):
    assert_refused(broker, wsraw.upgrade_request(drop=("Upgrade",)), 400)


def test_missing_connection_upgrade_token_is_400(broker):
    assert_refused(broker, wsraw.upgrade_request(headers={"Connection": "keep-alive"}), 400)


def test_http10_upgrade_is_400(broker):
    assert_refused(broker, wsraw.upgrade_request(version="HTTP/1.0"), 400)


def test_missing_host_is_400(broker):
    assert_refused(broker, wsraw.upgrade_request(drop=("Host",)), 400)


@pytest.mark.parametrize("path", ["/", "/other", "/ws/", "/wsx", "/WS", "/healthz"])
def test_upgrade_on_other_path_is_404(broker, path):
    assert_refused(broker, wsraw.upgrade_request(path), 404)


def test_header_larger_than_max_header_size_is_431(broker):
    req = wsraw.upgrade_request(headers={"X-Padding": "a" * 9000})
    assert_refused(broker, req, 431)


@pytest.mark.broker_args("--max-header-size", "1KiB")
def test_header_larger_than_configured_max_header_size_is_431(broker):
    assert_refused(broker, wsraw.upgrade_request(headers={"X-Padding": "a" * 1100}), 431)
    # Just under the bound is fine.
    resp, _ = send_upgrade(broker, wsraw.upgrade_request(headers={"X-P": "a" * 600}))
    assert resp.status == 101


@pytest.mark.broker_args("--max-connections", "3")
def test_connections_over_max_connections_get_503(broker):
    held = [broker.raw_ws() for _ in range(3)]
    extra = broker.conn()
    # The broker answers at accept time, before any request is read.
    resp = wsraw.read_response(extra)
    assert resp.status == 503
    assert resp.header("Retry-After") == "1"
    assert extra.wait_closed() == "eof"
    extra.close()
    # The held sessions are unaffected.
    for i, c in enumerate(held):
        c.send_json({"type": "ping", "id": i})
        assert c.recv_json() == {"type": "pong", "id": i}
    # Once one leaves, a new client gets in (the slot frees when the broker
    # notices the close; poll for it).
    held[0].send_close(1000)
    held[0].expect_close()
    held[0].wait_closed()
    held[0].close()

    def try_connect():
        c = wsraw.Conn(broker.host, broker.port)
        c.send(wsraw.upgrade_request())
        r = wsraw.read_response(c)
        c.close()
        return r.status == 101

    from helpers import wait_for
    wait_for(try_connect, 5, 0.05, "a free connection slot")
    for c in held:
        c.close()
    wait_for(lambda: broker.get("/healthz").status == 200, 5, 0.05, "a free slot for /metrics")
    # >= 1: polling for a free slot may itself have been refused a few times.
    assert broker.metric("wsbroker_connections_rejected_total") >= 1


def test_websockets_library_client_connects_and_subscribes(broker):
    async def go():
        ws = await connect(broker.ws_url)
        assert ws.welcome["protocol"] == 1
        await subscribe(ws, "lib.client", 5)
        await ws.close()
        assert ws.close_code == 1000

    run(go())


def test_two_connections_get_distinct_client_ids_and_same_node_id(broker):
    a = broker.raw_ws()
    b = broker.raw_ws()
    assert a.welcome["client_id"] != b.welcome["client_id"]
    assert a.welcome["node_id"] == b.welcome["node_id"]
    assert json.loads(broker.get("/healthz").body)["node_id"] == a.welcome["node_id"]
