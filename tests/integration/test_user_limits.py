"""Per-user limits (issue 18 item 6, PROTOCOL.md 8 and 10): with
max_connections_per_user a user (JWT `sub`) holds at most N WebSockets on a
node, whichever worker they land on; the refusal is visible to browsers
(101, then close 4100) and is a 429 for other clients; an `auth` that would
bring a connection over the limit is answered `limit_exceeded`. With
rate.per=user the rate limits are one budget for all of a user's connections.

Regression: before, rate limits were per connection: the same user on three
more connections got three more budgets."""
from __future__ import annotations

import time

import pytest

import wsraw
from helpers import connect, recv_json, request, run, send_json, wait_for
from sectools import jwt_hs256, now

SECRET = "user-limits-test-secret-0123456789"
ORIGIN = "https://app.example.com"


def token(sub):
    return jwt_hs256({"sub": sub, "subscribe": [">"], "publish": [">"], "exp": now() + 600}, SECRET)


def upgrade(b, path, headers=None):
    c = b.conn()
    c.send(wsraw.upgrade_request(path, f"127.0.0.1:{b.port}", headers=headers))
    return c, wsraw.read_response(c)


def test_max_connections_per_user_refuses_browsers_with_4100_and_others_with_429(broker_factory):
    b = broker_factory("--auth-jwt-secret", SECRET, "--max-connections-per-user", "2")

    async def go():
        a1 = await connect(b.ws_url + f"?token={token('alice')}")
        a2 = await connect(b.ws_url + f"?token={token('alice')}")
        # A browser sees why (a close code), not a bare 1006.
        c, r = upgrade(b, f"/ws?token={token('alice')}", {"Origin": ORIGIN})
        assert r.status == 101, r
        f = c.recv_frame()
        assert f.opcode == wsraw.OP_CLOSE and (f.close_code, f.close_reason) == (4100, "too many connections"), f
        c.send_close(4100)
        assert c.wait_closed() in ("eof", "reset")
        # A client without Origin can read the status.
        _, r = upgrade(b, "/ws", {"Authorization": f"Bearer {token('alice')}"})
        assert r.status == 429 and b"too many connections for this user" in r.body, r
        # Other users and anonymous clients are not affected.
        bob = await connect(b.ws_url + f"?token={token('bob')}")
        anon = [await connect(b.ws_url) for _ in range(3)]
        # A closed connection frees its place (the close path releases it).
        await a1.close()

        async def third():
            try:
                return await connect(b.ws_url + f"?token={token('alice')}")
            except Exception:  # noqa: BLE001 - refused while a1's close is in flight
                return None
        deadline = time.monotonic() + 10
        a3 = None
        while a3 is None:
            assert time.monotonic() < deadline, "alice's place never came back"
            a3 = await third()
        assert a3.welcome["user"] == "alice"
        m = b.metrics()
        assert m['wsbroker_close_frames_total{code="4100"}'] == 1, m
        for ws in (a2, a3, bob, *anon):
            await ws.close()

    run(go(), 60)


def test_auth_message_over_the_limit_is_limit_exceeded(broker_factory):
    b = broker_factory("--auth-jwt-secret", SECRET, "--max-connections-per-user", "1")

    async def go():
        a1 = await connect(b.ws_url + f"?token={token('alice')}")
        late = await connect(b.ws_url)  # anonymous first, then an auth message
        r = await request(late, {"type": "auth", "token": token("alice"), "id": 7})
        assert r["type"] == "error" and r["code"] == "limit_exceeded" and r["id"] == 7, r
        assert "max_connections_per_user" in r["message"], r
        # Refreshing with the same user's token on its own connection is fine.
        r = await request(a1, {"type": "auth", "token": token("alice"), "id": 8})
        assert r["type"] == "ack", r
        # Switching a1 to bob frees alice's place for `late`.
        r = await request(a1, {"type": "auth", "token": token("bob"), "id": 9})
        assert r["type"] == "ack", r
        r = await request(late, {"type": "auth", "token": token("alice"), "id": 10})
        assert r["type"] == "ack", r
        for ws in (a1, late):
            await ws.close()

    run(go(), 30)


def burst_results(ws_list, per_conn):
    """Sends per_conn pings with ids on each connection, in turn, and counts
    the replies of each kind per connection."""

    async def go():
        rid = 0
        for _ in range(per_conn):
            for ws in ws_list:
                rid += 1
                await send_json(ws, {"type": "ping", "id": rid})
        out = []
        for ws in ws_list:
            kinds = {"pong": 0, "error": 0}
            for _ in range(per_conn):
                m = await recv_json(ws, 10)
                kinds["pong" if m["type"] == "pong" else "error"] += 1
                if m["type"] == "error":
                    assert m["code"] == "rate_limited", m
            out.append(kinds)
        return out

    return go()


@pytest.mark.parametrize("per", ["user", "connection"])
def test_rate_per_user_is_one_budget_for_all_connections_of_a_user(broker_factory, per):
    burst = 10
    b = broker_factory("--auth-jwt-secret", SECRET, "--rate-messages", "1", "--rate-burst",
                       str(burst), "--rate-per", per)

    async def go():
        conns = [await connect(b.ws_url + f"?token={token('alice')}") for _ in range(4)]
        other = await connect(b.ws_url + f"?token={token('bob')}")
        t0 = time.monotonic()
        results = await burst_results(conns, burst)
        elapsed = time.monotonic() - t0
        granted = sum(r["pong"] for r in results)
        if per == "user":
            # One bucket: the burst plus what one message a second refilled.
            assert granted <= burst + int(elapsed) + 1, (results, elapsed)
            assert sum(r["error"] for r in results) > 0
        else:
            assert granted == 4 * burst, results
        # Another user has a budget of their own either way.
        (mine,) = await burst_results([other], burst)
        assert mine["pong"] == burst, mine
        for ws in (*conns, other):
            await ws.close()

    run(go(), 60)
