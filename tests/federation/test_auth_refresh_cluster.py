"""Credential refresh on a federated node (issue 15, item 2): a subscription
the new token does not cover is removed through the unsubscribe path, so
the node also gives up its Redis interest, and messages published on
another node no longer reach it."""
from __future__ import annotations

from helpers import connect, publish, recv_json, run, send_json, subscribe, wait_for
from sectools import jwt_hs256, now

SECRET = "auth-refresh-cluster-secret-0123456789"


def test_auth_refresh_drops_the_redis_interest_of_a_revoked_pattern(redis_server, cluster):
    a, b = cluster(2, "--auth-jwt-secret", SECRET)

    async def main():
        ws = await connect(a.ws_url)  # anonymous: may subscribe to anything
        await subscribe(ws, "fed.>", 1)
        await subscribe(ws, "fed.room1", 2)
        wait_for(lambda: redis_server.numpat() == 1, 10.0, 0.02, "node A PSUBSCRIBEd fed.>")
        wait_for(lambda: "wsb:fed.room1" in redis_server.channels(), 10.0, 0.02, "fed.room1")
        tok = jwt_hs256({"exp": now() + 3600, "subscribe": ["fed.room1"]}, SECRET)
        await send_json(ws, {"type": "auth", "token": tok, "id": 3})
        n = await recv_json(ws)
        assert (n["type"], n["topic"], n["code"]) == ("unsubscribed", "fed.>", "forbidden"), n
        assert await recv_json(ws) == {"type": "ack", "id": 3}
        wait_for(lambda: redis_server.numpat() == 0, 10.0, 0.02, "node A PUNSUBSCRIBEd fed.>")
        assert "wsb:fed.room1" in redis_server.channels()
        pub = await connect(b.ws_url)
        await publish(pub, "fed.secret", "secret", 1)
        await publish(pub, "fed.room1", "ok", 2)
        m = await recv_json(ws)
        assert (m["type"], m["topic"], m["data"]) == ("message", "fed.room1", "ok"), m
        await pub.close()
        await ws.close()

    run(main(), 30)
