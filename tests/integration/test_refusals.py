"""Refusals a browser can see (issue 14.3, PROTOCOL.md 8 and 10).

A browser's WebSocket API never exposes an HTTP refusal (the page sees 1006
and reconnects forever), so an upgrade refused for its credentials or its
Origin that carries an Origin header (browsers always send one) is upgraded
and closed at once: 4001 `invalid token`, 4002 `token expired`, 4003 `origin
not allowed`; no welcome, nothing processed. Without Origin (curl, servers)
it stays a 403 whose body does not name the exact failure. Each refusal, and
each failed `auth` message, is logged at info with the reason and the peer.
"""
from __future__ import annotations

import re
import socket
import ssl

import pytest

import wsraw
from helpers import wait_for
from sectools import client_ssl, jwt_hs256, jwt_unsigned, make_cert, now

SECRET = "integration-test-secret-0123456789"
ORIGIN = "https://app.example.com"
GOOD = {"sub": "alice", "subscribe": ["a.>"], "publish": ["a.>"]}


def auth_broker(broker_factory, *extra):
    return broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET,
                          "--auth-leeway", "0", *extra)


def tokens() -> dict:
    good = {**GOOD, "exp": now() + 600}
    return {
        "bad_signature": jwt_hs256(good, "another-secret"),
        "wrong_alg": jwt_hs256(good, SECRET, header={"alg": "HS384"}),
        "none": jwt_unsigned(good),
        "malformed": "abc.def",
        "not_yet_valid": jwt_hs256({**good, "nbf": now() + 3600}, SECRET),
        "expired": jwt_hs256({**good, "exp": now() - 3600}, SECRET),
    }


def upgrade(b, path="/ws", headers=None, extra=b""):
    """Sends an upgrade (plus `extra` bytes in the same write); returns (conn, response)."""
    c = b.conn()
    c.send(wsraw.upgrade_request(path, f"127.0.0.1:{b.port}", headers=headers) + extra)
    return c, wsraw.read_response(c)


def expect_refusal_close(c, code, reason):
    """The first frame after the 101 is the close: no welcome, no reply."""
    f = c.recv_frame()
    assert f.opcode == wsraw.OP_CLOSE, f"expected a close frame first, got {f}"
    assert (f.close_code, f.close_reason) == (code, reason), f
    c.send_close(code)
    assert c.wait_closed() in ("eof", "reset")


def info_lines(b, msg):
    return [l for l in b.stderr().splitlines() if "level=info" in l and f'msg="{msg}"' in l]


@pytest.mark.parametrize("case", ["bad_signature", "wrong_alg", "none", "malformed",
                                  "not_yet_valid", "expired"])
def test_browser_gets_101_then_a_close_code_for_a_refused_token(broker_factory, case):
    b = auth_broker(broker_factory)
    code, reason = (4002, "token expired") if case == "expired" else (4001, "invalid token")
    # A request right behind the upgrade must not be processed.
    pub = wsraw.text_frame({"type": "publish", "topic": "a.b", "data": 1, "id": 1})
    c, r = upgrade(b, f"/ws?token={tokens()[case]}", {"Origin": ORIGIN}, extra=pub)
    assert r.status == 101, r
    expect_refusal_close(c, code, reason)
    m = b.metrics()
    assert m["wsbroker_messages_received_total"] == 0
    assert m[f'wsbroker_close_frames_total{{code="{code}"}}'] == 1
    assert m["wsbroker_handshake_failures_total"] == 1
    lines = wait_for(lambda: info_lines(b, "handshake refused"), 5, what="the refusal's info line")
    assert re.search(rf"peer=127\.0\.0\.1:\d+ close={code} why=", lines[0]), lines


@pytest.mark.parametrize("case", ["bad_signature", "malformed", "expired"])
def test_plain_client_gets_403_that_does_not_name_the_failure(broker_factory, case):
    b = auth_broker(broker_factory)
    for headers in ({}, {"Authorization": f"Bearer {tokens()[case]}"}):
        path = "/ws" if headers else f"/ws?token={tokens()[case]}"
        _, r = upgrade(b, path, headers)
        assert r.status == 403, r
        assert r.body == b"invalid credentials\n", r.body
    # The exact reason is for the operator: in the log, at info.
    lines = wait_for(lambda: len(info_lines(b, "handshake refused")) >= 2 and
                     info_lines(b, "handshake refused"), 5, what="two info lines")
    assert all(re.search(r"peer=127\.0\.0\.1:\d+ status=403 why=", l) for l in lines), lines
    exact = {"bad_signature": "signature", "malformed": "malformed", "expired": "expired"}[case]
    assert all(exact in l for l in lines), lines


def test_origin_not_allowed_is_4003_for_a_browser_and_403_without_origin(broker_factory):
    b = broker_factory("--allowed-origins", ORIGIN, "--allow-missing-origin", "false")
    c, r = upgrade(b, headers={"Origin": "https://evil.example"})
    assert r.status == 101, r
    expect_refusal_close(c, 4003, "origin not allowed")
    _, r = upgrade(b)
    assert r.status == 403 and r.body == b"an Origin header is required\n", r
    line = wait_for(lambda: info_lines(b, "handshake refused"), 5, what="the info line")[0]
    assert "close=4003" in line and "origin=https://evil.example" in line, line
    # An allowed Origin still gets its welcome.
    c, r = upgrade(b, headers={"Origin": ORIGIN})
    assert r.status == 101 and c.recv_json()["type"] == "welcome"


def test_missing_token_still_gets_101_and_auth_timeout(broker_factory):
    b = auth_broker(broker_factory, "--auth-timeout", "1s")
    c, r = upgrade(b, headers={"Origin": ORIGIN})
    assert r.status == 101
    assert c.recv_json()["type"] == "welcome"
    c.send_json({"type": "auth", "token": jwt_hs256({**GOOD, "exp": now() + 600}, "wrong"),
                 "id": 9})
    assert c.recv_json()["code"] == "unauthorized"
    f = c.expect_close(10)
    assert (f.close_code, f.close_reason) == (1008, "authentication timeout"), f
    # The failed auth message was logged at info with the peer and why.
    line = wait_for(lambda: info_lines(b, "auth refused"), 5, what="the auth info line")[0]
    assert re.search(r"peer=127\.0\.0\.1:\d+ why=.*signature", line), line


def test_session_whose_token_expires_is_closed_with_4002(broker_factory):
    b = auth_broker(broker_factory)
    tok = jwt_hs256({**GOOD, "exp": now() + 1}, SECRET)
    c, r = upgrade(b, f"/ws?token={tok}", {"Origin": ORIGIN})
    assert r.status == 101 and c.recv_json()["type"] == "welcome"
    f = c.expect_close(10)
    assert (f.close_code, f.close_reason) == (4002, "token expired"), f


def test_refusal_log_names_the_forwarded_client_behind_a_trusted_proxy(broker_factory):
    b = auth_broker(broker_factory, "--trusted-proxies", "127.0.0.1")
    c, r = upgrade(b, f"/ws?token={tokens()['bad_signature']}",
                   {"Origin": ORIGIN, "X-Forwarded-For": "203.0.113.7"})
    assert r.status == 101
    expect_refusal_close(c, 4001, "invalid token")
    line = wait_for(lambda: info_lines(b, "handshake refused"), 5, what="the info line")[0]
    assert re.search(r"peer=203\.0\.113\.7,via=127\.0\.0\.1:\d+ close=4001", line), line


def test_refusal_over_tls_is_the_same(broker_factory, tmp_path):
    cert, key = make_cert(tmp_path)
    pf = tmp_path / "tls.port"
    b = auth_broker(broker_factory, "--tls-cert", str(cert), "--tls-key", str(key),
                    "--tls-port", "0", "--tls-port-file", str(pf))
    tls_port = int(wait_for(lambda: pf.exists() and pf.read_text().strip(), 5, what="TLS port"))
    raw = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
    s = client_ssl(cert).wrap_socket(raw, server_hostname="localhost")
    try:
        s.sendall(wsraw.upgrade_request(f"/ws?token={tokens()['expired']}", f"127.0.0.1:{tls_port}",
                                        headers={"Origin": ORIGIN}))
        data = b""
        while b"\r\n\r\n" not in data or wsraw.parse_frame(data.split(b"\r\n\r\n", 1)[1]) is None:
            chunk = s.recv(4096)
            assert chunk, f"EOF before the close frame: {data!r}"
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        frame, _ = wsraw.parse_frame(rest)
        assert frame.opcode == wsraw.OP_CLOSE
        assert (frame.close_code, frame.close_reason) == (4002, "token expired")
    except ssl.SSLError as e:
        raise AssertionError(f"TLS failed: {e}")
    finally:
        s.close()
