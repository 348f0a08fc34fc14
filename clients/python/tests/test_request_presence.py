"""Request/reply (reply, no_responders, timeout) and presence, presence_stats,
join/leave and the publisher stamp `from`, against the real broker with
topic rules (PROTOCOL.md 3.6, 3.7, 4.8)."""
from __future__ import annotations

import json
import time

import pytest

import wsbroker
from conftest import jwt_hs256, run, wait_until

RULES = json.dumps([{"pattern": "chat.>", "presence": True, "join_leave": True, "publisher": True}])
SECRET = "python-presence-secret-0123456789abcdef"


def token(sub):
    return jwt_hs256({"sub": sub, "exp": int(time.time()) + 600, "subscribe": [">"], "publish": [">"]}, SECRET)


def test_request_reply_no_responders_and_timeout(broker):
    async def main():
        async with wsbroker.connect(broker.ws_url) as device, wsbroker.connect(broker.ws_url) as op:
            async def answer(msg):
                await device.reply(msg, {"ok": True, "did": msg.data["op"]})
            await device.subscribe("dev.d7.cmd", answer)
            r = await op.request("dev.d7.cmd", {"op": "reboot"}, timeout=5)
            assert r.data == {"ok": True, "did": "reboot"}
            assert r.from_ == wsbroker.Member(device.client_id, None)
            with pytest.raises(wsbroker.NoResponders) as e:
                await op.request("dev.nobody.cmd", 1)
            assert e.value.code == "no_responders" and e.value.topic == "dev.nobody.cmd"
            await device.subscribe("dev.silent.cmd")  # subscribed, never answers
            with pytest.raises(wsbroker.RequestTimeout) as t:
                await op.request("dev.silent.cmd", 1, timeout=0.05)
            assert isinstance(t.value, TimeoutError) and t.value.code == "timeout"
            with pytest.raises(ValueError):
                await op.request("dev.d7.cmd", 1, timeout=61)
            with pytest.raises(ValueError):
                await device.reply(wsbroker.Message(topic="x", data=1), 2)
    run(main())


def test_presence_join_leave_and_from(broker_factory):
    b = broker_factory("--topics", RULES, "--auth-jwt-secret", SECRET)

    async def main():
        alice = await wsbroker.connect(b.ws_url, token=token("alice"))
        joins, leaves, said = [], [], []
        room = await alice.subscribe("chat.room1", said.append)
        room.on("join", joins.append)
        room.on("leave", leaves.append)
        bob = await wsbroker.connect(b.ws_url, token=token("bob"))
        await bob.subscribe("chat.room1")
        await wait_until(lambda: joins, what="bob's join")
        assert joins[0] == wsbroker.MemberEvent("chat.room1", wsbroker.Member(bob.client_id, "bob"))
        p = await alice.presence("chat.room1")
        assert sorted((m.client, m.user) for m in p.members) == sorted(
            [(alice.client_id, "alice"), (bob.client_id, "bob")])
        s = await bob.presence_stats("chat.room1")
        assert (s.topic, s.clients, s.users) == ("chat.room1", 2, 2)
        await bob.publish("chat.room1", {"text": "hi", "from": "mallory"})
        await wait_until(lambda: said, what="bob's message")
        assert said[0].from_ == wsbroker.Member(bob.client_id, "bob")
        assert said[0].data == {"text": "hi", "from": "mallory"}  # data is just data
        bob_id = bob.client_id
        await bob.close()
        await wait_until(lambda: leaves, what="bob's leave")
        assert leaves[0].member == wsbroker.Member(bob_id, "bob")
        with pytest.raises(wsbroker.NotAvailable):
            await alice.presence("other.topic")
        with pytest.raises(wsbroker.BadTopic):
            await alice.presence("chat.*")
        await alice.close()
        with pytest.raises(wsbroker.Closed):
            await alice.presence("chat.room1")
    run(main())
