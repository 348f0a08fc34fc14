"""Security: wss:// (Python websockets and the C client), certificate reload on
SIGHUP, JWT failure modes, topic permissions, API keys, Origin checks and rate
limits. Certificates come from the openssl CLI, tokens are signed here."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import websockets

import wsraw
from helpers import (connect, metric_names_from_text, recv_json, request, run, send_json, subscribe,
                     wait_for, REPO_ROOT)
from sectools import (client_ssl, jwt_es256, jwt_hs256, jwt_rs256, jwt_unsigned, es256_keypair,
                      make_cert, now, rs256_keypair)

SECRET = "integration-test-secret-0123456789"
APIKEY = "key-0123456789abcdef"
CHATKEY = "chat-0123456789abcdef"


def tls_broker(broker_factory, tmp_path, *extra, name=None):
    cert, key = make_cert(tmp_path)
    b = broker_factory("--tls-cert", str(cert), "--tls-key", str(key), *extra, name=name, tls=True)
    b.cert = cert
    return b


def wss_url(b, query=""):
    return f"wss://127.0.0.1:{b.tls_port}/ws{query}"


# ---- TLS ------------------------------------------------------------------------------------


def test_wss_pubsub_with_python_websockets_and_plain_listener_together(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path)
    ctx = client_ssl(b.cert)

    async def go():
        sub = await connect(wss_url(b), ssl=ctx)
        pub = await connect(b.ws_url)  # plain listener still serves
        await subscribe(sub, "tls.>", 1)
        big = "x" * 60_000  # spans several TLS records
        r = await request(pub, {"type": "publish", "topic": "tls.a", "data": big, "id": 2})
        assert r["type"] == "ack", r
        m = await recv_json(sub)
        assert m["topic"] == "tls.a" and m["data"] == big
        # many small frames in one burst (batched into few records)
        for i in range(200):
            await send_json(pub, {"type": "publish", "topic": "tls.b", "data": i})
        got = [ (await recv_json(sub))["data"] for _ in range(200)]
        assert got == list(range(200))
        await sub.close()
        await pub.close()

    run(go(), 60)
    b.assert_healthy()


def test_tls_refuses_tls_1_1_and_negotiates_alpn(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path)
    ctx = client_ssl(b.cert)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    import socket
    with socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3")
            assert s.selected_alpn_protocol() == "http/1.1"
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    # Debian 12's Python and OpenSSL do send a TLS 1.1 ClientHello (legacy
    # version 0x0302) with these settings, so the refusal below is the broker's.
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with old.wrap_socket(raw, server_hostname="localhost"):
                pass
    b.assert_healthy()


def test_sighup_reloads_certificate_without_dropping_connections(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path)
    first = b.cert.read_bytes()

    async def go():
        keep = await connect(wss_url(b), ssl=client_ssl(b.cert))
        await subscribe(keep, "reload.x", 1)
        # new pair in place, then SIGHUP
        cert2, key2 = make_cert(tmp_path, name="server2")
        os.replace(cert2, b.cert)
        os.replace(key2, tmp_path / "server.key")
        assert b.cert.read_bytes() != first
        b.signal(signal.SIGHUP)
        wait_for(lambda: "TLS certificate reloaded" in b.stderr(), 5, what="reload log")
        fresh = await connect(wss_url(b), ssl=client_ssl(b.cert))  # verifies with the NEW cert
        await request(fresh, {"type": "publish", "topic": "reload.x", "data": 1, "id": 5})
        m = await recv_json(keep)  # the old connection is alive and still served
        assert m["topic"] == "reload.x"
        with pytest.raises(ssl.SSLError):
            await websockets.connect(wss_url(b), ssl=_ctx_from_bytes(first), open_timeout=5)
        await keep.close()
        await fresh.close()

    run(go(), 60)
    # A broken pair on SIGHUP keeps the old one.
    (tmp_path / "server.key").write_text("garbage")
    b.signal(signal.SIGHUP)
    wait_for(lambda: "TLS reload failed" in b.stderr(), 5, what="reload failure log")
    b.assert_healthy()


def _ctx_from_bytes(pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=pem.decode())
    ctx.check_hostname = False
    return ctx


def _cli_path() -> Path:
    """wsbroker-cli: $WSBROKER_CLI, else next to the broker in the same build tree."""
    env = os.environ.get("WSBROKER_CLI")
    if env:
        return Path(env)
    return Path(os.environ.get("WSBROKER_BIN", "")).resolve().parent.parent / "clients" / "c" / \
        "wsbroker-cli"


def test_wss_with_the_c_client(broker_factory, tmp_path):
    cli = _cli_path()
    assert os.access(cli, os.X_OK), f"{cli} is not built (set WSBROKER_CLI)"
    b = tls_broker(broker_factory, tmp_path)
    url = wss_url(b)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSBROKER_")}
    err_path = tmp_path / "sub.stderr"
    with open(err_path, "w") as err_file:
        sub = subprocess.Popen([str(cli), "--url", url, "--cafile", str(b.cert), "-v", "sub",
                                "--count", "1", "--timeout", "20", "cwss.>"],
                               stdout=subprocess.PIPE, stderr=err_file, text=True, env=env)
    try:
        # -v reports "subscribed: PATTERN" once the broker acked the subscribe.
        wait_for(lambda: sub.poll() is not None or "subscribed" in err_path.read_text(), 15,
                 what="the C client subscribed over wss")
        r = subprocess.run([str(cli), "--url", url, "--cafile", str(b.cert), "pub", "cwss.x",
                            '{"over":"tls"}'], capture_output=True, text=True, timeout=20, env=env)
        assert r.returncode == 0, r.stderr
        out, _ = sub.communicate(timeout=15)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait(5)
    err = err_path.read_text()
    assert sub.returncode == 0, err
    assert json.loads(out.splitlines()[0]) == {"topic": "cwss.x", "seq": 1,
                                                "data": {"over": "tls"}}, out
    assert "connected to wss://" in err

    # A CA that did not sign the broker's certificate: refused with a clear error.
    other, _ = make_cert(tmp_path, name="other")
    r = subprocess.run([str(cli), "--url", url, "--cafile", str(other), "pub", "cwss.x", "1"],
                       capture_output=True, text=True, timeout=20, env=env)
    assert r.returncode == 1, r.stderr
    assert "certificate verify failed" in r.stderr and "--cafile" in r.stderr, r.stderr
    # --insecure connects without verification (tests and development only).
    r = subprocess.run([str(cli), "--url", url, "--insecure", "pub", "cwss.y", "2"],
                       capture_output=True, text=True, timeout=20, env=env)
    assert r.returncode == 0, r.stderr
    b.assert_healthy()


# ---- JWT ------------------------------------------------------------------------------------


def auth_broker(broker_factory, tmp_path, *extra):
    return broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET,
                          "--auth-timeout", "1s", *extra)


def upgrade_status(b, path="/ws", headers=None) -> wsraw.Response:
    c = b.conn()
    c.send(wsraw.upgrade_request(path, f"127.0.0.1:{b.port}", headers=headers))
    return wsraw.read_response(c)


@pytest.mark.parametrize("case", ["bad_signature", "expired", "wrong_alg", "none", "malformed",
                                  "not_yet_valid", "bad_claims"])
def test_jwt_failure_modes_refused_at_handshake(broker_factory, tmp_path, case):
    b = auth_broker(broker_factory, tmp_path)
    good = {"sub": "alice", "exp": now() + 600, "subscribe": ["a.>"], "publish": []}
    tokens = {
        "bad_signature": jwt_hs256(good, "another-secret"),
        "expired": jwt_hs256({**good, "exp": now() - 3600}, SECRET),
        "wrong_alg": jwt_hs256(good, SECRET, header={"alg": "HS384"}),
        "none": jwt_unsigned(good),
        "malformed": "abc.def",
        "not_yet_valid": jwt_hs256({**good, "nbf": now() + 3600}, SECRET),
        "bad_claims": jwt_hs256({**good, "subscribe": "a.>"}, SECRET),
    }
    r = upgrade_status(b, f"/ws?token={tokens[case]}")
    assert r.status == 403, (case, r)
    assert r.body == b"invalid credentials\n", r.body  # the exact reason is in the log
    # the same via Authorization: Bearer
    r = upgrade_status(b, headers={"Authorization": f"Bearer {tokens[case]}"})
    assert r.status == 403, (case, r)


def test_jwt_algorithm_confusion_refused(broker_factory, tmp_path):
    """An HS256 token whose 'secret' is the RS256 public key PEM must not pass."""
    key, pub = rs256_keypair(tmp_path)
    b = broker_factory("--auth-required", "true", "--auth-jwt-public-key", str(pub))
    forged = jwt_hs256({"sub": "mallory", "subscribe": [">"]}, pub.read_text())
    assert upgrade_status(b, f"/ws?token={forged}").status == 403
    ok = jwt_rs256({"sub": "bob", "subscribe": [">"], "exp": now() + 60}, key)

    async def go():
        ws = await connect(b.ws_url + f"?token={ok}")
        assert ws.welcome["user"] == "bob" and ws.welcome["client_id"] != "bob"
        await ws.close()

    run(go())


def test_es256_token_and_permissions_with_wildcards(broker_factory, tmp_path):
    key, pub = es256_keypair(tmp_path)
    b = broker_factory("--auth-required", "true", "--auth-jwt-public-key", str(pub))
    tok = jwt_es256({"sub": "carol", "exp": now() + 600, "subscribe": ["chat.room1", "news.>"],
                     "publish": ["chat.*"]}, key)

    async def go():
        ws = await connect(b.ws_url, extra_headers={"Authorization": f"Bearer {tok}"})
        assert ws.welcome["user"] == "carol"
        assert (await request(ws, {"type": "subscribe", "topic": "chat.room1", "id": 1}))["type"] == "ack"
        r = await request(ws, {"type": "subscribe", "topic": "chat.*", "id": 2})
        assert r["type"] == "error" and r["code"] == "forbidden" and r["id"] == 2, r
        r = await request(ws, {"type": "subscribe", "topic": "chat.>", "id": 3})
        assert r["code"] == "forbidden", r
        assert (await request(ws, {"type": "subscribe", "topic": "news.*.x", "id": 4}))["type"] == "ack"
        r = await request(ws, {"type": "publish", "topic": "chat.room1", "data": 1, "id": 5})
        assert r["type"] == "ack", r
        r = await request(ws, {"type": "publish", "topic": "news.a", "data": 1, "id": 6})
        assert r["code"] == "forbidden", r
        # not a disconnect: the connection still works
        r = await request(ws, {"type": "ping", "id": 7})
        assert r == {"type": "pong", "id": 7}
        await ws.close()

    run(go())


def test_auth_message_timeout_refresh_and_expiry(broker_factory, tmp_path):
    b = auth_broker(broker_factory, tmp_path, "--auth-leeway", "0")

    async def go():
        # no token: requests are refused until an auth message
        ws = await connect(b.ws_url)
        r = await request(ws, {"type": "subscribe", "topic": "a.b", "id": 1})
        assert r["code"] == "unauthorized", r
        r = await request(ws, {"type": "auth", "token": jwt_hs256({"exp": now() - 100}, SECRET), "id": 2})
        assert r["code"] == "unauthorized" and "expired" in r["message"], r
        exp1 = now() + 2
        tok = jwt_hs256({"sub": "d", "exp": exp1, "subscribe": ["a.>"]}, SECRET)
        assert await request(ws, {"type": "auth", "token": tok, "id": 3}) == {"type": "ack", "id": 3}
        assert (await request(ws, {"type": "subscribe", "topic": "a.b", "id": 4}))["type"] == "ack"
        # refresh before exp keeps it open past the first exp: pings are
        # answered until the close, which is the expiry event itself (no
        # fixed sleep: the clock passing exp1 and then exp2 is what is tested)
        exp2 = now() + 4
        tok2 = jwt_hs256({"sub": "d", "exp": exp2, "subscribe": ["a.>"]}, SECRET)
        assert await request(ws, {"type": "auth", "token": tok2, "id": 5}) == {"type": "ack", "id": 5}
        last_pong, i = 0.0, 6
        with pytest.raises(websockets.ConnectionClosed) as ei:
            while True:
                assert time.time() < exp2 + 5, "not closed at the refreshed token's exp"
                assert (await request(ws, {"type": "ping", "id": i}))["type"] == "pong"
                last_pong, i = time.time(), i + 1
                await asyncio.sleep(0.1)  # the pace of the pings, not a wait for anything
        closed_at = time.time()
        assert last_pong > exp1 + 0.2, (last_pong, exp1)
        assert closed_at >= exp2 - 0.5, (closed_at, exp2)
        # then it expires: close 4002 (fetch a fresh token, PROTOCOL.md 8)
        assert ei.value.rcvd.code == 4002 and "expired" in ei.value.rcvd.reason
        # never authenticating: closed at auth.timeout
        idle = await connect(b.ws_url)
        with pytest.raises(websockets.ConnectionClosed) as ei:
            await asyncio.wait_for(idle.recv(), 5)
        assert ei.value.rcvd.code == 1008 and "authentication" in ei.value.rcvd.reason

    run(go(), 30)


def test_anonymous_permissions_when_auth_not_required(broker_factory, tmp_path):
    b = broker_factory("--auth-anonymous-subscribe", "public.>", "--auth-anonymous-publish", "")

    async def go():
        ws = await connect(b.ws_url)
        assert (await request(ws, {"type": "subscribe", "topic": "public.x", "id": 1}))["type"] == "ack"
        assert (await request(ws, {"type": "subscribe", "topic": ">", "id": 2}))["code"] == "forbidden"
        assert (await request(ws, {"type": "publish", "topic": "public.x", "data": 0, "id": 3}))["code"] == "forbidden"
        await ws.close()

    run(go())


# ---- API keys -------------------------------------------------------------------------------


def test_api_keys_for_http_publish(broker_factory):
    b = broker_factory("--api-keys", f"{APIKEY},{CHATKEY}:chat.>")
    msg = {"topic": "news.a", "data": 1}
    assert b.post("/api/publish", msg).status == 401
    r = b.post("/api/publish", msg, headers={"Authorization": "Bearer wrong-key-0123456789"})
    assert r.status == 401 and r.header("WWW-Authenticate") == "Bearer"
    assert b.post("/api/publish", msg, headers={"Authorization": f"Bearer {APIKEY}"}).status == 200
    assert b.post("/api/publish", msg, headers={"X-API-Key": APIKEY}).status == 200
    r = b.post("/api/publish", msg, headers={"X-API-Key": CHATKEY})
    assert r.status == 403 and r.json()["error"]["code"] == "forbidden"
    r = b.post("/api/publish", [{"topic": "chat.a", "data": 1}, msg], headers={"X-API-Key": CHATKEY})
    res = r.json()["results"]
    assert "seq" in res[0] and res[1]["error"]["code"] == "forbidden"
    # prefix of a key is not a key
    assert b.post("/api/publish", msg, headers={"X-API-Key": APIKEY[:-1]}).status == 401


def test_quick_start_needs_no_key(broker):
    assert broker.post("/api/publish", {"topic": "demo.hello", "data": 1}).status == 200


# ---- Origin ---------------------------------------------------------------------------------


def test_origin_allowlist(broker_factory):
    b = broker_factory("--allowed-origins", "https://app.example.com,https://*.example.org",
                       "--allow-missing-origin", "false")
    ok = ["https://app.example.com", "https://a.example.org", "https://a.b.example.org"]
    bad = ["https://evil.com", "https://app.example.com.evil.com", "http://app.example.com",
           "https://example.org", "https://evil.com/.example.org", "null"]
    for o in ok:
        assert upgrade_status(b, headers={"Origin": o}).status == 101, o
    for o in bad:
        r = upgrade_status(b, headers={"Origin": o})
        assert r.status == 101, (o, r)  # then close 4003 (test_refusals.py)
    assert upgrade_status(b).status == 403  # no Origin, not allowed by config
    b2 = broker_factory("--allowed-origins", "https://app.example.com", name="b2")
    assert upgrade_status(b2).status == 101  # no Origin allowed by default


# ---- rate limits ----------------------------------------------------------------------------


def test_message_rate_limit_error_and_close(broker_factory):
    """A token bucket of 5 that refills 5 per second, full at the first
    message: of 20 pings, the first 5 pass whatever the machine's speed, and
    no more pass than the bucket plus what refilled between the first and the
    last ping. That span lies within the time measured around the burst (the
    broker's loop clock ticks in ms: 2 ms of slack). The burst goes out in
    one write, so on any machine it arrives far faster than the refill."""
    b = broker_factory("--rate-messages", "5", "--rate-burst", "5")
    c = b.raw_ws()
    burst = b"".join(wsraw.text_frame({"type": "ping", "id": i}) for i in range(20))
    t0 = time.monotonic()
    c.send(burst)
    replies = [c.recv_json() for _ in range(20)]
    elapsed = time.monotonic() - t0
    pongs = [r for r in replies if r["type"] == "pong"]
    limited = [r for r in replies if r.get("code") == "rate_limited"]
    assert [r["id"] for r in pongs[:5]] == [0, 1, 2, 3, 4], replies
    assert 5 <= len(pongs) <= 5 + int(5 * (elapsed + 0.002)), (elapsed, replies)
    assert len(limited) == 20 - len(pongs), replies
    assert {r["id"] for r in replies} == set(range(20)), replies
    b2 = broker_factory("--rate-messages", "5", "--rate-burst", "5", "--rate-action", "close", name="b2")
    c2 = b2.raw_ws()
    c2.send(b"".join(wsraw.text_frame({"type": "ping", "id": i}) for i in range(20)))
    f = c2.expect_close()
    assert f.close_code == 1008 and "rate" in f.close_reason


def test_byte_rate_limit(broker_factory):
    b = broker_factory("--rate-bytes", "2KiB", "--max-message-size", "1KiB")
    c = b.raw_ws()
    payload = "x" * 900
    for i in range(6):
        c.send_json({"type": "publish", "topic": "r.b", "data": payload, "id": i})
    replies = [c.recv_json() for _ in range(6)]
    assert any(r.get("code") == "rate_limited" for r in replies), replies


def test_per_ip_connection_limit_and_handshake_rate(broker_factory):
    b = broker_factory("--max-connections-per-ip", "3")
    conns = [b.raw_ws() for _ in range(3)]
    r = wsraw.http_request(b.host, b.port, "GET", "/healthz")
    assert r.status == 429 and r.header("Retry-After") == "1"
    conns[0].close()
    wait_for(lambda: wsraw.http_request(b.host, b.port, "GET", "/healthz").status == 200, 5,
             what="slot freed")
    b2 = broker_factory("--max-handshakes-per-second", "3", name="b2")
    statuses = [upgrade_status(b2).status for _ in range(8)]
    assert statuses.count(101) <= 4 and 429 in statuses, statuses


def test_tls_handshakes_count_against_the_handshake_rate(broker_factory, tmp_path):
    """max_handshakes_per_second is charged at accept on the TLS listener,
    before any cryptography: over the budget the connection is closed without
    a TLS handshake. A wss:// upgrade then takes no second token."""
    import socket
    b = tls_broker(broker_factory, tmp_path, "--max-handshakes-per-second", "3")
    ctx = client_ssl(b.cert)
    done = refused = 0
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    done += 1
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError):
                refused += 1
    assert done <= 4 and refused >= 6, (done, refused)
    assert b.metric("wsbroker_connections_rejected_total") >= refused
    # After a second the budget is back, and one wss:// connection (TLS handshake
    # plus WebSocket upgrade) needs one token, not two.
    time.sleep(1.1)

    async def go():
        ws = await connect(wss_url(b), ssl=ctx)
        await ws.close()

    run(go(), 20)


def test_security_md_cites_metric_names_that_exist(broker):
    """Every wsbroker_* name SECURITY.md tells operators to watch is rendered by /metrics."""
    cited = set(re.findall(r"\b(wsbroker_[a-z_]+)", (REPO_ROOT / "SECURITY.md").read_text()))
    assert cited, "SECURITY.md names no metric"
    rendered = metric_names_from_text(broker.get("/metrics").body.decode())
    missing = sorted(n for n in cited if n not in rendered)
    assert not missing, f"SECURITY.md cites metrics /metrics does not render: {missing}"
