"""Conflation (issue 19 item 3): on a topic whose rule says conflate:true, a
subscriber that stops reading keeps at most the newest unsent message of each
topic; the older ones are dropped and counted (wsbroker_conflated_total), and
it is not closed. Topics without the option, under the same load, still close
the slow reader (1013) or send it a gap, as their rule says."""
from __future__ import annotations

import json
import time

import pytest

import wsraw

RULES = json.dumps([
    {"pattern": "px.>", "conflate": True},
    {"pattern": "hist.>", "history": {"size": 10, "slow_consumer": "drop"}},
])
BROKER_ARGS = ("--max-outbound-bytes", "64KiB", "--topics", RULES)
PAYLOAD = "p" * 2000
BURST_DEADLINE_S = 60


def publish_until(broker, topics, done) -> dict:
    """Publishes round-robin over `topics` (one keep-alive HTTP connection,
    data {"t": topic, "i": n}) until done(metrics) holds; the time limit only
    bounds a broken broker. Returns {topic: [i published, in order]}."""
    c = broker.conn()
    sent = {t: [] for t in topics}
    deadline = time.monotonic() + BURST_DEADLINE_S
    n = 0
    while True:
        for t in topics:
            body = json.dumps({"topic": t, "data": {"t": t, "i": n, "p": PAYLOAD}}).encode()
            c.send(b"POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            r = wsraw.read_response(c)
            assert r.status == 200, r
            sent[t].append(n)
            n += 1
        if n % 40 < len(topics) and done(broker.metrics()):
            break
        assert time.monotonic() < deadline, f"condition not reached after {n} publishes"
    c.close()
    return sent


def stalled_subscriber(broker, pattern):
    slow = broker.raw_ws(rcvbuf=4096)
    slow.send_json({"type": "subscribe", "topic": pattern, "id": 1})
    assert slow.recv_json() == {"type": "ack", "id": 1}
    return slow  # reads nothing more until the burst is over


@pytest.mark.broker_args(*BROKER_ARGS)
def test_stalled_reader_gets_newest_value_of_each_topic_and_stays(broker):
    topics = [f"px.{k}" for k in "abcde"]
    slow = stalled_subscriber(broker, "px.>")

    def conflated_enough(m):
        assert m["wsbroker_slow_consumer_closes_total"] == 0, "the conflated reader was closed"
        # Enough replacements that the backlog has been conflated many times over.
        return m["wsbroker_conflated_total"] >= 200

    sent = publish_until(broker, topics, conflated_enough)
    last = {t: v[-1] for t, v in sent.items()}
    published = sum(len(v) for v in sent.values())

    got = {t: [] for t in topics}
    deadline = time.monotonic() + 30
    while any(not got[t] or got[t][-1] != last[t] for t in topics):
        f = slow.recv_frame(timeout=max(0.01, deadline - time.monotonic()))
        if f.opcode in (wsraw.OP_PING, wsraw.OP_PONG):
            continue
        assert f.opcode == wsraw.OP_TEXT, f"the conflated reader was closed: {f}"
        m = f.json()
        assert m["type"] == "message", m
        assert m["data"]["t"] == m["topic"]
        got[m["topic"]].append(m["data"]["i"])

    received = sum(len(v) for v in got.values())
    for t in topics:
        assert got[t] == sorted(set(got[t])), f"{t}: out of order or repeated: {got[t][:20]}"
        assert set(got[t]) <= set(sent[t])
    assert received < published, "nothing was conflated"
    m = broker.metrics()
    # Every message was either written to the reader or replaced by a newer one.
    assert m["wsbroker_conflated_total"] == published - received, (published, received)
    assert m["wsbroker_slow_consumer_closes_total"] == 0
    assert m['wsbroker_close_frames_total{code="1013"}'] == 0
    # Still connected and served.
    slow.send_json({"type": "subscribe", "topic": "other", "id": 2})
    assert slow.recv_json() == {"type": "ack", "id": 2}
    broker.assert_healthy()


@pytest.mark.broker_args(*BROKER_ARGS)
def test_unconflated_topic_still_closes_the_stalled_reader(broker):
    slow = stalled_subscriber(broker, "plain.>")
    publish_until(broker, ["plain.a", "plain.b"],
                  lambda m: m["wsbroker_slow_consumer_closes_total"] >= 1)
    close = slow.expect_close(timeout=30)
    assert close.close_code == 1013, close
    assert broker.metric("wsbroker_conflated_total") == 0
    broker.assert_healthy()


@pytest.mark.broker_args(*BROKER_ARGS)
def test_history_drop_topic_still_gets_a_gap(broker):
    slow = stalled_subscriber(broker, "hist.>")
    publish_until(broker, ["hist.a", "hist.b"], lambda m: m["wsbroker_history_gaps_total"] >= 1)
    assert broker.metric("wsbroker_conflated_total") == 0
    assert broker.metric("wsbroker_slow_consumer_closes_total") == 0
    deadline = time.monotonic() + 30
    while True:
        m = slow.recv_json(timeout=max(0.01, deadline - time.monotonic()))
        if m["type"] == "gap":
            break
        assert m["type"] == "message", m
    broker.assert_healthy()
