"""Every reply to a request with an id carries that id (PROTOCOL.md 2.1, 3.5),
errors included. Regression (issue 14.4): `rate_limited` came back without the
id because the rate was checked before the request was parsed, so a client
waiting for the reply to its id (the JS client's publish() promise) waited
until the connection dropped.
"""
from __future__ import annotations


def test_rate_limited_errors_echo_the_request_id(broker_factory):
    # One message per second, burst 1: of a quick burst of requests all but
    # the first (and any the bucket refills for meanwhile) are dropped.
    b = broker_factory("--rate-messages", "1", "--rate-burst", "1")
    c = b.raw_ws()
    requests = []
    for i in range(12):
        kind = i % 3
        if kind == 0:
            requests.append({"type": "ping", "id": 100 + i})
        elif kind == 1:
            requests.append({"type": "publish", "topic": "rate.ids", "data": i, "id": 100 + i})
        else:
            requests.append({"type": "subscribe", "topic": f"rate.ids{i}", "id": 100 + i})
    for r in requests:
        c.send_json(r)
    replies = [c.recv_json() for _ in requests]
    limited = [r for r in replies if r.get("code") == "rate_limited"]
    assert limited, replies
    assert all("id" in r for r in replies), replies
    # Exactly one reply per request, in request order (2.1).
    assert [r["id"] for r in replies] == [r["id"] for r in requests], replies


def test_a_malformed_request_over_the_rate_reports_its_first_failure_with_its_id(broker_factory):
    b = broker_factory("--rate-messages", "1", "--rate-burst", "1")
    c = b.raw_ws()
    requests = []
    for i in range(20):
        if i % 2:
            requests.append({"type": "subscribe", "id": i})  # missing "topic"
        else:
            requests.append({"type": "ping", "id": i})
    for r in requests:
        c.send_json(r)
    replies = [c.recv_json() for _ in requests]
    assert [r.get("id") for r in replies] == list(range(20)), replies
    # Validation comes first (3.5): an invalid request reports its own
    # failure whether or not it was over the rate; valid ones over it are
    # rate_limited.
    assert all(r["code"] == "missing_field" for r in replies[1::2]), replies
    assert any(r.get("code") == "rate_limited" for r in replies[::2]), replies


def test_every_error_to_a_request_with_an_id_echoes_it(broker_factory):
    b = broker_factory("--max-subscriptions", "1")
    c = b.raw_ws()
    cases = [
        ({"type": "nope", "id": 1}, "bad_type"),
        ({"type": "subscribe", "id": 2}, "missing_field"),
        ({"type": "subscribe", "topic": 5, "id": 3}, "bad_field"),
        ({"type": "subscribe", "topic": "a..b", "id": 4}, "bad_topic"),
        ({"type": "subscribe", "topic": "a.*", "since": {"epoch": "e", "seq": 1}, "id": 5},
         "bad_since"),
        ({"type": "unsubscribe", "topic": "never.held", "id": 6}, "not_subscribed"),
        ({"type": "publish", "topic": "$sys.x", "data": 1, "id": 7}, "forbidden"),
        ({"type": "subscribe", "topic": "one", "id": 8}, None),
        ({"type": "subscribe", "topic": "two", "id": 9}, "limit_exceeded"),
        ({"type": "publish", "topic": "a.b", "id": 10}, "missing_field"),
    ]
    for req, code in cases:
        c.send_json(req)
        r = c.recv_json()
        assert r.get("id") == req["id"], (req, r)
        assert r.get("code") == code, (req, r)


def test_unauthorized_echoes_the_request_id(broker_factory):
    b = broker_factory("--auth-required", "true", "--auth-jwt-secret", "s" * 32)
    c = b.raw_ws()
    c.send_json({"type": "subscribe", "topic": "a", "id": 41})
    r = c.recv_json()
    assert r["code"] == "unauthorized" and r["id"] == 41, r
    c.send_json({"type": "auth", "token": "not.a.token", "id": 42})
    r = c.recv_json()
    assert r["code"] == "unauthorized" and r["id"] == 42, r
