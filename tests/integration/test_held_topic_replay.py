"""A subscribe with `since` or `history` to a topic the connection already
holds (PROTOCOL.md 3.1): the broker replays all the same and the connection
keeps one subscription. The JS client relies on this to recover a topic it
holds (issue 14.4)."""
from __future__ import annotations

import json

import pytest

RULES = json.dumps([{"pattern": "held.>", "size": 100}])


def ack_of(c, req):
    c.send_json(req)
    r = c.recv_json()
    assert r.get("type") == "ack" and r.get("id") == req["id"], r
    return r


@pytest.mark.broker_args("--history", RULES)
def test_since_and_history_on_a_held_topic_replay_and_keep_one_subscription(broker):
    c = broker.raw_ws()
    first = ack_of(c, {"type": "subscribe", "topic": "held.a", "id": 1})
    epoch = first["epoch"]
    for i in range(4):
        assert broker.post("/api/publish", {"topic": "held.a", "data": i}).status == 200
    assert [c.recv_json()["seq"] for _ in range(4)] == [1, 2, 3, 4]

    ack = ack_of(c, {"type": "subscribe", "topic": "held.a", "id": 2,
                     "since": {"epoch": epoch, "seq": 2}})
    assert ack == {"type": "ack", "id": 2, "seq": 4, "epoch": epoch, "recovered": True}
    assert [c.recv_json()["seq"] for _ in range(2)] == [3, 4]

    ack = ack_of(c, {"type": "subscribe", "topic": "held.a", "id": 3, "history": 3})
    assert ack == {"type": "ack", "id": 3, "seq": 4, "epoch": epoch}
    assert [c.recv_json()["seq"] for _ in range(3)] == [2, 3, 4]

    # Still one subscription: a live message arrives once, then the barrier.
    assert broker.post("/api/publish", {"topic": "held.a", "data": 9}).json()["seq"] == 5
    assert c.recv_json()["seq"] == 5
    c.send_json({"type": "ping", "id": 4})
    assert c.recv_json() == {"type": "pong", "id": 4}
    assert broker.metric("wsbroker_subscriptions") == 1
