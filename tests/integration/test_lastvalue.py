"""Last value on wildcards (issue 19 item 1): `history: N` on a pattern
replays the last N messages of every matching topic that keeps history, each
topic in seq order with its seq and epoch, then live messages with no gap and
no duplicate at the switch-over, while several workers publish; at most
`max_history_topics_per_subscribe` topics, else `limit_exceeded`."""
from __future__ import annotations

import json
import threading
import time

import pytest

import wsraw

RULES = json.dumps([
    {"pattern": "prices.>", "size": 10},
    {"pattern": "load.>", "size": 100},
])


def publish_many(pub: wsraw.Conn, topic: str, n: int, first_id: int = 1):
    for k in range(n):
        pub.send_json({"type": "publish", "topic": topic, "data": k, "id": first_id + k})
    for k in range(n):
        ack = pub.recv_json()
        assert ack["type"] == "ack" and ack["id"] == first_id + k, ack


def sub_ack(c: wsraw.Conn, req: dict) -> dict:
    c.send_json(req)
    ack = c.recv_json()
    assert ack.get("type") == "ack" and ack.get("id") == req["id"], ack
    return ack


def by_topic(msgs):
    out = {}
    for m in msgs:
        out.setdefault(m["topic"], []).append(m["seq"])
    return out


@pytest.mark.broker_args("--history", RULES)
def test_pattern_history_replays_last_n_of_each_topic_then_live(broker):
    pub = broker.raw_ws()
    publish_many(pub, "prices.btc.usd", 3)
    publish_many(pub, "prices.eth.usd", 1)
    publish_many(pub, "prices.btc.eur", 2)  # not matched by prices.*.usd
    publish_many(pub, "other.usd", 2)  # no history
    c = broker.raw_ws()
    ack = sub_ack(c, {"type": "subscribe", "topic": "prices.*.usd", "id": 1, "history": 2})
    # No one position for a pattern: each replayed frame carries its own.
    assert ack == {"type": "ack", "id": 1}, ack
    replay = [c.recv_json() for _ in range(3)]
    assert all(m["type"] == "message" and len(m["epoch"]) == 12 for m in replay), replay
    assert by_topic(replay) == {"prices.btc.usd": [2, 3], "prices.eth.usd": [1]}, replay
    assert [m["data"] for m in replay if m["topic"] == "prices.btc.usd"] == [1, 2]
    assert broker.metric("wsbroker_history_replayed_total") == 3
    # Then live, once: an old topic, and a topic that did not exist yet.
    publish_many(pub, "prices.eth.usd", 1, first_id=10)
    publish_many(pub, "prices.sol.usd", 1, first_id=20)
    live = [c.recv_json() for _ in range(2)]
    assert [(m["topic"], m["seq"]) for m in live] == [("prices.eth.usd", 2), ("prices.sol.usd", 1)]
    c.send_json({"type": "ping", "id": 9})
    assert c.recv_json() == {"type": "pong", "id": 9}  # nothing more queued
    # since on a pattern stays bad_since (that is streams, not this).
    c.send_json({"type": "subscribe", "topic": "prices.>", "id": 3,
                 "since": {"epoch": "e", "seq": 0}})
    assert c.recv_json()["code"] == "bad_since"


@pytest.mark.broker_args("--history", RULES, "--max-history-topics-per-subscribe", "2")
def test_pattern_history_over_the_topic_bound_is_limit_exceeded(broker):
    pub = broker.raw_ws()
    for t in ("prices.a.usd", "prices.b.usd", "other.a.usd", "other.b.usd"):
        publish_many(pub, t, 1)
    c = broker.raw_ws()
    # Two topics with history (the others keep none): at the bound, accepted.
    sub_ack(c, {"type": "subscribe", "topic": "*.*.usd", "id": 1, "history": 1})
    assert len([c.recv_json() for _ in range(2)]) == 2
    publish_many(pub, "prices.c.usd", 1, first_id=5)
    assert c.recv_json()["topic"] == "prices.c.usd"  # live
    d = broker.raw_ws()
    d.send_json({"type": "subscribe", "topic": "prices.>", "id": 2, "history": 1})
    err = d.recv_json()
    assert err["type"] == "error" and err["code"] == "limit_exceeded" and err["id"] == 2, err
    assert "2 topics" in err["message"], err
    # Nothing subscribed: a publish reaches d no more than before.
    publish_many(pub, "prices.a.usd", 1, first_id=9)
    d.send_json({"type": "ping", "id": 3})
    assert d.recv_json() == {"type": "pong", "id": 3}


N_TOPICS = 4
MIN_PER_TOPIC = 500
SESSIONS = 150


@pytest.mark.broker_args("--history", RULES, "--workers", "4")
def test_pattern_switch_over_has_no_gap_and_no_duplicate_under_load(broker):
    """One publisher per topic pumps while subscribers keep arriving on
    load.* with history: in every session each topic's seqs (replay, then
    live) are consecutive; once the publishers are done, the replay is each
    topic's last five. The publishers run until enough sessions switched
    over mid-stream (bounded by a deadline)."""
    topics = [f"load.t{i}" for i in range(N_TOPICS)]
    pub = broker.raw_ws()
    for t in topics:
        publish_many(pub, t, 1)  # every topic exists before the first session
    errors = []
    stop = threading.Event()
    counts = {t: 1 for t in topics}
    deadline = time.monotonic() + 90

    def pump(topic):
        try:
            c = wsraw.ws_connect(broker.host, broker.port)
            while (not stop.is_set() or counts[topic] < MIN_PER_TOPIC) and \
                    time.monotonic() < deadline:
                publish_many(c, topic, 25, first_id=counts[topic])
                counts[topic] += 25
            c.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=pump, args=(t,)) for t in topics]
    for t in threads:
        t.start()
    sessions = 0
    mid_stream = 0
    while mid_stream < SESSIONS and not errors and time.monotonic() < deadline:
        c = wsraw.ws_connect(broker.host, broker.port)
        sub_ack(c, {"type": "subscribe", "topic": "load.*", "id": 1, "history": 5})
        sessions += 1
        seen = {}
        for _ in range(N_TOPICS * 5 + 40):
            m = c.recv_json(timeout=10)
            assert m["type"] == "message", m
            prev = seen.get(m["topic"])
            assert prev is None or m["seq"] == prev + 1, (m["topic"], prev, m["seq"])
            seen[m["topic"]] = m["seq"]
        mid_stream += 1  # replay, then live messages of the same topics
        c.close()
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert mid_stream == SESSIONS, (sessions, mid_stream)
    c = broker.raw_ws()
    sub_ack(c, {"type": "subscribe", "topic": "load.*", "id": 1, "history": 5})
    last = by_topic([c.recv_json() for _ in range(N_TOPICS * 5)])
    assert last == {t: list(range(counts[t] - 4, counts[t] + 1)) for t in topics}, last


@pytest.mark.broker_args("--history", json.dumps([{"pattern": ">", "size": 10}]))
def test_pattern_history_never_replays_request_inboxes(broker):
    """A history rule on ">" keeps replies too (their topic is the
    requester's `_inbox.`): a pattern's replay leaves them out, as the live
    fan-out does, or a late `>` subscriber would read other clients' replies."""
    responder, requester, late = broker.raw_ws(), broker.raw_ws(), broker.raw_ws()
    sub_ack(responder, {"type": "subscribe", "topic": "dev.d7.cmd", "id": 1})
    requester.send_json({"type": "request", "topic": "dev.d7.cmd", "data": "on", "id": 2})
    msg = responder.recv_json()
    assert msg["type"] == "message" and msg["reply_to"].startswith("_inbox."), msg
    responder.send_json({"type": "publish", "topic": msg["reply_to"], "data": "done", "id": 3})
    reply = requester.recv_json()
    assert reply["type"] == "reply" and reply["data"] == "done", reply
    sub_ack(late, {"type": "subscribe", "topic": ">", "id": 4, "history": 10})
    # The replay comes before anything live: a sentinel published after the
    # ack ends it.
    publish_many(requester, "zz.end", 1, first_id=5)
    seen = []
    while True:
        m = late.recv_json()
        seen.append(m)
        if m.get("topic") == "zz.end":
            break
    topics = [m.get("topic") for m in seen]
    assert "dev.d7.cmd" in topics, seen
    assert not any(t.startswith("_inbox") for t in topics if t), seen
