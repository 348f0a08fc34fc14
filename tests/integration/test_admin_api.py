"""The admin API (issue 22 item 1, PROTOCOL.md 16): an admin key
(--admin-keys, "Authorization: Bearer K" or "X-API-Key: K") or a JWT with
"admin": true gets GET /api/topics, GET /api/connections (paged) and POST
/api/disconnect (close 4008, optional ban of a user); no credential or an
unknown one is 401, a credential that is not an admin's is 403.

Every worker owns its connections: the answers gather every worker's part
(run with WSBROKER_TEST_WORKERS=4 to cover that)."""
from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

import wsraw
from helpers import connect, connect_spread, recv_json, request, run, subscribe, publish, worker_of
from sectools import jwt_hs256, now

SECRET = "admin-api-test-secret-0123456789"
ADMIN_KEY = "admin-key-0123456789abcdef"
ADMIN_KEY2 = "second-admin-key-0123456789"
API_KEY = "publish-key-0123456789abcdef"
ORIGIN = "https://app.example.com"


def token(sub=None, admin=None, exp_in=600):
    claims = {"subscribe": [">"], "publish": [">"], "exp": now() + exp_in}
    if sub is not None:
        claims["sub"] = sub
    if admin is not None:
        claims["admin"] = admin
    return jwt_hs256(claims, SECRET)


def admin_broker(factory, *extra):
    return factory("--auth-jwt-secret", SECRET, "--admin-keys", f"{ADMIN_KEY},{ADMIN_KEY2}",
                   "--api-keys", API_KEY, *extra)


def workers(b):
    return len(b.get("/healthz").json()["workers"])


def bearer(k):
    return {"Authorization": f"Bearer {k}"}


def disconnect(b, body, headers=None):
    return b.post("/api/disconnect", body, headers=headers if headers is not None else bearer(ADMIN_KEY))


def test_every_endpoint_needs_an_admin_credential(broker_factory):
    b = admin_broker(broker_factory)
    calls = [
        lambda h: b.get("/api/topics", headers=h),
        lambda h: b.get("/api/connections", headers=h),
        lambda h: disconnect(b, {"client": "nobody"}, h),
    ]
    for call in calls:
        r = call({})
        assert r.status == 401 and r.json()["error"]["code"] == "unauthorized", r
        assert r.header("WWW-Authenticate") == "Bearer", r
        assert call(bearer("unknown-key-0123456789abcdef")).status == 401
        assert call(bearer(token("eve", admin=True) + "x")).status == 401  # bad signature
        assert call(bearer(token("eve", admin=True, exp_in=-3600))).status == 401  # expired
        r = call(bearer(API_KEY))  # a publish key is known but no admin's
        assert r.status == 403 and r.json()["error"]["code"] == "forbidden", r
        assert call({"X-API-Key": API_KEY}).status == 403
        assert call(bearer(token("eve"))).status == 403  # no admin claim
        assert call(bearer(token("eve", admin=False))).status == 403
        assert call(bearer(token("eve", admin="yes"))).status == 401  # not a boolean: invalid
        assert call(bearer(ADMIN_KEY)).status == 200
        assert call(bearer(ADMIN_KEY2)).status == 200
        assert call({"X-API-Key": ADMIN_KEY}).status == 200
        assert call(bearer(token("root", admin=True))).status == 200
    # Methods.
    r = b.post("/api/topics", {}, headers=bearer(ADMIN_KEY))
    assert r.status == 405 and r.header("Allow") == "GET", r
    r = b.get("/api/disconnect", headers=bearer(ADMIN_KEY))
    assert r.status == 405 and r.header("Allow") == "POST", r


def test_admin_api_is_off_without_admin_keys_or_jwt_key(broker_factory):
    b = broker_factory()
    for path in ("/api/topics", "/api/connections"):
        assert b.get(path).status == 401
        assert b.get(path, headers=bearer(ADMIN_KEY)).status == 401
    assert disconnect(b, {"user": "x"}).status == 401


def test_topics_sums_every_worker_with_rule_and_seq(broker_factory):
    b = admin_broker(broker_factory, "--topics", '[{"pattern":"chat.>","history":{"size":10}}]')

    async def go():
        conns = await connect_spread(b.ws_url + f"?token={token('u')}", workers(b), 2)
        for i, ws in enumerate(conns):
            r = await request(ws, {"type": "subscribe", "topic": "chat.room1", "id": 1})
            assert r["type"] == "ack", r
            if i % 2 == 0:
                await subscribe(ws, "news.*", 2)
        await publish(conns[0], "chat.room1", {"n": 1}, 3)
        await publish(conns[0], "chat.room1", {"n": 2}, 4)
        r = b.get("/api/topics", headers=bearer(ADMIN_KEY))
        assert r.status == 200, r
        body = r.json()
        assert body["truncated"] is False and body["nodes"] == [b.get("/healthz").json()["node_id"]]
        topics = {t["topic"]: t for t in body["topics"]}
        assert topics["chat.room1"] == {"topic": "chat.room1", "subscribers": len(conns), "rule": "chat.>", "seq": 2}, topics
        assert topics["news.*"] == {"topic": "news.*", "subscribers": (len(conns) + 1) // 2, "rule": None, "seq": None}
        assert [t["topic"] for t in body["topics"]] == sorted(topics)
        for ws in conns:
            await ws.close()

    run(go())


def test_presence_reads_any_topic_with_an_admin_credential(broker_factory):
    """GET /api/presence (issue 22 item 1): an admin key or an admin token
    reads any presence topic; an API key only the topics it may publish to,
    and a token without the admin claim is no credential there."""
    b = broker_factory(
        "--auth-jwt-secret", SECRET, "--admin-keys", ADMIN_KEY, "--api-keys", f"{API_KEY}:news.>",
        "--topics", '[{"pattern":"chat.>","presence":true}]')

    async def go():
        ws = await connect(b.ws_url + f"?token={token('alice')}")
        await subscribe(ws, "chat.room1")
        for headers in (bearer(ADMIN_KEY), {"X-API-Key": ADMIN_KEY}, bearer(token("root", admin=True))):
            r = b.get("/api/presence?topic=chat.room1", headers=headers)
            assert r.status == 200, r
            body = r.json()
            assert body["clients"] == 1 and body["users"] == 1, body
            assert [m["user"] for m in body["members"]] == ["alice"], body
        r = b.get("/api/presence?topic=chat.room1", headers=bearer(API_KEY))  # news.> only
        assert r.status == 403 and r.json()["error"]["code"] == "forbidden", r
        assert b.get("/api/presence?topic=chat.room1", headers=bearer(token("eve"))).status == 401
        assert b.get("/api/presence?topic=chat.room1", headers=bearer(token("eve", admin=True) + "x")).status == 401
        assert b.get("/api/presence?topic=chat.room1").status == 401
        r = b.get("/api/presence?topic=news.x", headers=bearer(ADMIN_KEY))  # no presence on its rule
        assert r.status == 404 and r.json()["error"]["code"] == "not_available", r
        await ws.close()

    run(go())


def test_connections_pages_cover_every_worker_once(broker_factory):
    b = admin_broker(broker_factory)

    async def go():
        conns = await connect_spread(b.ws_url + f"?token={token('alice')}", workers(b), 3)
        anon = await connect(b.ws_url)
        await subscribe(conns[0], "a.b", 1)
        await subscribe(conns[0], "c.>", 2)
        ids = {ws.welcome["client_id"] for ws in conns} | {anon.welcome["client_id"]}
        seen, after, pages = [], None, 0
        while True:
            path = "/api/connections?limit=2" + (f"&after={after}" if after else "")
            r = b.get(path, headers=bearer(ADMIN_KEY))
            assert r.status == 200, r
            page = r.json()
            assert len(page["connections"]) <= 2
            seen += page["connections"]
            pages += 1
            after = page["next"]
            if after is None:
                break
            assert pages <= len(ids), "paging does not end"
        assert sorted(c["client"] for c in seen) == sorted(ids)
        by_id = {c["client"]: c for c in seen}
        first = by_id[conns[0].welcome["client_id"]]
        assert set(first) == {"client", "user", "addr", "subscriptions", "queued_bytes", "age_s", "node"}, first
        assert first["user"] == "alice" and first["subscriptions"] == 2 and first["addr"].startswith("127.0.0.1")
        assert isinstance(first["queued_bytes"], int) and first["age_s"] >= 0
        assert first["node"] == conns[0].welcome["node_id"]
        assert by_id[anon.welcome["client_id"]]["user"] is None
        # One page with everything, default limit.
        r = b.get("/api/connections", headers=bearer(ADMIN_KEY)).json()
        assert len(r["connections"]) == len(ids) and r["next"] is None
        for ws in conns + [anon]:
            await ws.close()

    run(go())
    for bad in ("limit=0", "limit=1001", "limit=x", "limit=-1", "after=zz", "after=1", "after=1.x", "after="):
        r = b.get(f"/api/connections?{bad}", headers=bearer(ADMIN_KEY))
        assert r.status == 400 and r.json()["error"]["code"] == "bad_field", (bad, r)


def test_disconnect_by_client_closes_with_4008(broker_factory):
    b = admin_broker(broker_factory)

    async def go():
        conns = await connect_spread(b.ws_url, workers(b), 1)
        victim, others = conns[-1], conns[:-1]
        r = disconnect(b, {"client": victim.welcome["client_id"]})
        assert r.status == 200 and r.json()["disconnected"] == 1, r
        await asyncio.wait_for(victim.wait_closed(), 5)
        assert (victim.close_code, victim.close_reason) == (4008, "disconnected by admin")
        for ws in others:  # everyone else is still served
            assert (await request(ws, {"type": "ping", "id": 5}))["type"] == "pong"
        r = disconnect(b, {"client": victim.welcome["client_id"]})
        assert r.status == 200 and r.json()["disconnected"] == 0, r
        # Anonymous clients can connect again: a client disconnect bans nobody.
        again = await connect(b.ws_url)
        await again.close()
        for ws in others:
            await ws.close()

    run(go())


def test_disconnect_user_with_ban_refuses_until_it_ends(broker_factory):
    b = admin_broker(broker_factory)

    async def go():
        mallory = await connect_spread(b.ws_url + f"?token={token('mallory')}", workers(b), 1)
        bob = await connect(b.ws_url + f"?token={token('bob')}")
        r = disconnect(b, {"user": "mallory", "ban_s": 2})
        assert r.status == 200 and r.json()["disconnected"] == len(mallory), r
        for ws in mallory:
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 4008, ws.close_code
        assert (await request(bob, {"type": "ping", "id": 1}))["type"] == "pong"
        # A browser sees the same code right after the 101; others get 403.
        c = b.conn()
        c.send(wsraw.upgrade_request(f"/ws?token={token('mallory')}", f"127.0.0.1:{b.port}",
                                     headers={"Origin": ORIGIN}))
        resp = wsraw.read_response(c)
        assert resp.status == 101, resp
        f = c.recv_frame()
        assert (f.close_code, f.close_reason) == (4008, "disconnected by admin"), f
        c.close()
        c = b.conn()
        c.send(wsraw.upgrade_request("/ws", f"127.0.0.1:{b.port}", headers=bearer(token("mallory"))))
        assert wsraw.read_response(c).status == 403
        c.close()
        # A token sent in an `auth` message is refused as well.
        anon = await connect(b.ws_url)
        await anon.send('{"type":"auth","token":"%s","id":1}' % token("mallory"))
        await asyncio.wait_for(anon.wait_closed(), 5)
        assert anon.close_code == 4008
        # The ban ends: mallory is welcome again (bounded wait, driven by the outcome).
        deadline = time.monotonic() + 15
        while True:
            try:
                back = await connect(b.ws_url + f"?token={token('mallory')}")
                break
            except Exception:  # noqa: BLE001 - still banned
                assert time.monotonic() < deadline, "the ban did not end"
                await asyncio.sleep(0.2)
        await back.close()
        await bob.close()

    run(go())


def test_disconnect_body_errors(broker_factory):
    b = admin_broker(broker_factory)
    cases = [
        ({}, "bad_field"),
        ({"client": "a", "user": "b"}, "bad_field"),
        ({"client": 5}, "bad_field"),
        ({"client": ""}, "bad_field"),
        ({"client": "x" * 49}, "bad_field"),
        ({"user": ""}, "bad_field"),
        ({"user": "u" * 129}, "bad_field"),
        ({"user": "u", "ban_s": -1}, "bad_field"),
        ({"user": "u", "ban_s": 2592001}, "bad_field"),
        ({"user": "u", "ban_s": "1"}, "bad_field"),
        ({"client": "c", "ban_s": 1}, "bad_field"),
        ([], "bad_field"),
        ("{not json", "bad_json"),
    ]
    for body, code in cases:
        r = disconnect(b, body)
        assert r.status == 400 and r.json()["error"]["code"] == code, (body, r)
    r = b.post("/api/disconnect", '{"user":"u"}', content_type="text/plain", headers=bearer(ADMIN_KEY))
    assert r.status == 415, r
    node = b.get("/healthz").json()["node_id"]
    assert disconnect(b, {"user": "nobody"}).json() == {"disconnected": 0, "nodes": [node]}


def test_admin_keys_file_and_redaction(broker_factory, tmp_path, wsbroker_bin):
    f = tmp_path / "admin_keys"
    f.write_text(f"{ADMIN_KEY}\n{ADMIN_KEY2}\n")
    f.chmod(0o600)
    b = broker_factory("--admin-keys-file", str(f))
    for k in (ADMIN_KEY, ADMIN_KEY2):
        assert b.get("/api/topics", headers=bearer(k)).status == 200
    assert b.get("/api/topics", headers=bearer(API_KEY)).status == 401
    out = subprocess.run([wsbroker_bin, "--check-config", "--admin-keys", ADMIN_KEY], capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "admin_keys = <redacted> (flag)" in out.stdout and ADMIN_KEY not in out.stdout
