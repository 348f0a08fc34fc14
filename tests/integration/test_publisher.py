"""Publisher identity (issue 18 item 4, PROTOCOL.md 4.2): under a topic rule
with "publisher": true the broker stamps "from":{"client","user"} on every
message, from the connection's credentials (WebSocket) or the API key's name
(HTTP, RESP); a client cannot forge it, and a "from" inside data travels
untouched. Topics without such a rule carry no "from"."""
from __future__ import annotations

import json

from helpers import connect, recv_json, request, resp_command, run, send_json
from sectools import jwt_hs256, now

SECRET = "publisher-test-secret-0123456789"
RULES = json.dumps([{"pattern": "support.>", "publisher": True}])
AGENT_KEY = "agentkey-0123456789abcdef"
PLAIN_KEY = "plainkey-0123456789abcdef"
KEYS = f"{AGENT_KEY}:support.> name=helpdesk,{PLAIN_KEY}"


def token(sub):
    return jwt_hs256({"sub": sub, "subscribe": [">"], "publish": [">"], "exp": now() + 600}, SECRET)


async def next_message(ws, timeout=5.0):
    while True:
        m = await recv_json(ws, timeout)
        if m["type"] == "message":
            return m


def test_websocket_publishes_are_stamped_and_cannot_be_forged(broker_factory):
    b = broker_factory("--auth-jwt-secret", SECRET, "--topics", RULES)

    async def go():
        sub = await connect(b.ws_url + f"?token={token('watcher')}")
        assert (await request(sub, {"type": "subscribe", "topic": "support.>", "id": 1}))["type"] == "ack"
        assert (await request(sub, {"type": "subscribe", "topic": "chat.x", "id": 2}))["type"] == "ack"
        cust = await connect(b.ws_url + f"?token={token('customer7')}")
        # A top-level "from" is ignored; one inside data is the customer's own text.
        forged = {"type": "publish", "topic": "support.room1", "id": 5,
                  "from": {"client": "agent1", "user": "agent1"},
                  "data": {"from": "agent1", "text": "refund approved"}}
        r = await request(cust, forged)
        assert r["type"] == "ack", r
        m = await next_message(sub)
        assert m["from"] == {"client": cust.welcome["client_id"], "user": "customer7"}, m
        assert m["data"] == {"from": "agent1", "text": "refund approved"}, m
        # "from" comes before "data" in the frame, data stays verbatim.
        # Anonymous publisher: its client id, user null.
        anon = await connect(b.ws_url)
        await send_json(anon, {"type": "publish", "topic": "support.room1", "data": 1})
        m = await next_message(sub)
        assert m["from"] == {"client": anon.welcome["client_id"], "user": None}, m
        # No publisher rule: no stamp.
        await send_json(cust, {"type": "publish", "topic": "chat.x", "data": 2, "from": "x"})
        m = await next_message(sub)
        assert m["topic"] == "chat.x" and "from" not in m, m
        for ws in (sub, cust, anon):
            await ws.close()

    run(go(), 30)


def test_http_and_resp_publishes_carry_the_api_key_name(broker_factory):
    b = broker_factory("--api-keys", KEYS, "--topics", RULES, resp=True)

    async def go():
        sub = await connect(b.ws_url)
        assert (await request(sub, {"type": "subscribe", "topic": "support.>", "id": 1}))["type"] == "ack"
        r = b.post("/api/publish", {"topic": "support.a", "data": "h",
                                    "from": {"client": "c", "user": "forged"}},
                   headers={"Authorization": f"Bearer {AGENT_KEY}"})
        assert r.status == 200, r
        m = await next_message(sub)
        assert m["from"] == {"client": None, "user": "helpdesk"} and m["data"] == "h", m
        r = b.post("/api/publish", {"topic": "support.a", "data": "p"},
                   headers={"X-API-Key": PLAIN_KEY})
        assert r.status == 200, r
        m = await next_message(sub)
        assert m["from"] == {"client": None, "user": None} and m["data"] == "p", m
        reply = resp_command(b.resp_port, ["AUTH", AGENT_KEY], ["PUBLISH", "support.b", '{"n":1}'])
        assert reply.startswith(b"+OK\r\n:"), reply
        m = await next_message(sub)
        assert m["from"] == {"client": None, "user": "helpdesk"} and m["data"] == {"n": 1}, m
        await sub.close()

    run(go(), 30)


def test_api_key_name_is_validated_at_start(tmp_path):
    from helpers import run_broker_cmd
    for bad in (f"{AGENT_KEY}:name=", f"{AGENT_KEY}:name=a name=b", f"{AGENT_KEY}:name=" + "n" * 129):
        res = run_broker_cmd(["--port", "0", "--api-keys", bad])
        assert res.returncode == 2 and "api_keys" in res.stderr, (bad, res.stderr)
