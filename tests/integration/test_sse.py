"""Server-Sent Events (issue 20 item 4, PROTOCOL.md "Server-Sent Events"):
GET /sse?topic=… streams `event: message` with `id: <epoch>:<seq>` and the
WebSocket message frame's JSON as `data:`; several topics and a pattern on
one stream; Last-Event-ID (or ?since=) resumes with exactly what was missed;
auth 401/403 before the stream starts; limits as for a WebSocket
(max_connections, slow consumer, max_subscriptions, token expiry);
heartbeat comments; a bad query is 400."""
from __future__ import annotations

import json
import time
import urllib.parse

import pytest

import wsraw
from helpers import wait_for
from sectools import jwt_hs256, now

SECRET = "sse-test-secret-0123456789abcdef"
HISTORY = json.dumps([{"pattern": "chat.>", "size": 1000}])


class Sse:
    """A raw SSE client: the request, the head, then events parsed as the
    EventSource algorithm does (comments kept apart, for the heartbeat)."""

    def __init__(self, broker, query: str, headers: dict | None = None, rcvbuf: int | None = None):
        self.c = broker.conn(rcvbuf=rcvbuf)
        lines = [f"GET /sse?{query} HTTP/1.1", f"Host: 127.0.0.1:{broker.port}", "Accept: text/event-stream"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.c.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.resp = wsraw.read_response(self.c, head_only=True)
        self.comments: list[str] = []

    def header(self, name):
        return self.resp.header(name)

    def event(self, timeout: float = 5.0) -> dict:
        """The next event: {"event", "id", "data"} (comments recorded)."""
        while True:
            block = self.c.read_until(b"\n\n", timeout).decode()
            ev = {}
            for line in block.split("\n"):
                if not line:
                    continue
                if line.startswith(":"):
                    self.comments.append(line)
                    continue
                k, _, v = line.partition(":")
                ev[k] = v[1:] if v.startswith(" ") else v
            if ev:
                if "data" in ev:
                    ev["json"] = json.loads(ev["data"])
                return ev

    def message(self, timeout: float = 5.0) -> dict:
        ev = self.event(timeout)
        assert ev.get("event") == "message", ev
        return ev


def error_body(r):
    return json.loads(r.body)["error"]


def sse_refused(broker, query, headers=None):
    c = broker.conn()
    lines = [f"GET /sse?{query} HTTP/1.1", f"Host: 127.0.0.1:{broker.port}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    c.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    r = wsraw.read_response(c)
    c.close()  # else it lingers on the broker's side, counted
    return r


def publish(broker, topic, data, **kw):
    r = broker.post("/api/publish", {"topic": topic, "data": data}, **kw)
    assert r.status == 200, r
    return json.loads(r.body)


def subscribed(s: Sse, n: int) -> list:
    out = []
    for _ in range(n):
        ev = s.event()
        assert ev["event"] == "subscribed", ev
        out.append(ev["json"])
    return out


@pytest.mark.broker_args("--history", HISTORY)
def test_stream_head_events_ids_several_topics_and_a_pattern(broker):
    q = urllib.parse.urlencode([("topic", "chat.room1"), ("topic", "news.*")])
    s = Sse(broker, q)
    assert s.resp.status == 200
    assert s.header("Content-Type") == "text/event-stream"
    assert s.header("Cache-Control") == "no-cache"
    assert s.header("X-Accel-Buffering") == "no"
    assert s.header("Content-Length") is None
    acks = subscribed(s, 2)
    assert acks[0]["topic"] == "chat.room1" and acks[0]["seq"] == 0 and len(acks[0]["epoch"]) == 12
    assert acks[1] == {"topic": "news.*"}
    epoch = acks[0]["epoch"]

    publish(broker, "chat.room1", {"n": 1})
    publish(broker, "news.sport", "goal\nline two")
    publish(broker, "other", 1)  # not subscribed
    publish(broker, "chat.room1", {"n": 2})
    m1, m2, m3 = s.message(), s.message(), s.message()
    assert m1["id"] == f"{epoch}:1"
    assert m1["json"] == {"type": "message", "topic": "chat.room1", "seq": 1, "epoch": epoch, "data": {"n": 1}}
    assert m2["json"]["topic"] == "news.sport" and m2["json"]["data"] == "goal\nline two"
    assert m2["id"] == f":{m2['json']['seq']}"  # no history: empty epoch
    assert m3["id"] == f"{epoch}:2" and m3["json"]["data"] == {"n": 2}


@pytest.mark.broker_args("--history", HISTORY)
def test_last_event_id_replays_exactly_the_missed_then_live(broker):
    s = Sse(broker, "topic=chat.a")
    epoch = subscribed(s, 1)[0]["epoch"]
    for i in range(1, 4):
        publish(broker, "chat.a", i)
    last = None
    for i in range(1, 4):
        last = s.message()
        assert last["json"]["data"] == i
    s.c.close()  # the stream drops
    for i in range(4, 9):
        publish(broker, "chat.a", i)

    s2 = Sse(broker, "topic=chat.a", headers={"Last-Event-ID": last["id"]})
    ack = subscribed(s2, 1)[0]
    assert ack["recovered"] is True and ack["epoch"] == epoch
    got = [s2.message()["json"]["data"] for _ in range(5)]
    assert got == [4, 5, 6, 7, 8]
    publish(broker, "chat.a", 9)
    live = s2.message()
    assert live["json"]["data"] == 9 and live["id"] == f"{epoch}:9"

    # ?since= for clients that cannot set the header: the same replay.
    s3 = Sse(broker, urllib.parse.urlencode({"topic": "chat.a", "since": f"{epoch}:7"}))
    assert subscribed(s3, 1)[0]["recovered"] is True
    assert [s3.message()["json"]["data"] for _ in range(2)] == [8, 9]

    # An unknown epoch cannot be recovered: said so, then live.
    s4 = Sse(broker, "topic=chat.a", headers={"Last-Event-ID": "000000000000:3"})
    assert subscribed(s4, 1)[0]["recovered"] is False
    publish(broker, "chat.a", 10)
    assert s4.message()["json"]["data"] == 10


@pytest.mark.parametrize("query,headers", [
    ("", None),
    ("topic=", None),
    ("topic=a..b", None),
    ("topic=a&topic=a", None),
    ("topic=%zz", None),
    ("topic=a&since=nocolon", None),
    ("topic=a", {"Last-Event-ID": "e:12x"}),
])
def test_bad_query_is_400_with_a_json_error(broker, query, headers):
    r = sse_refused(broker, query, headers)
    assert r.status == 400, r
    assert error_body(r)["code"] == "bad_topic"
    broker.assert_healthy()


def test_auth_401_and_403_before_the_stream_and_token_expiry_ends_it(broker_factory):
    b = broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET, "--auth-leeway", "0s")
    r = sse_refused(b, "topic=a.b")
    assert r.status == 401 and error_body(r)["code"] == "unauthorized"
    assert r.header("WWW-Authenticate") == "Bearer"
    bad = jwt_hs256({"sub": "u", "exp": now() + 60, "subscribe": [">"]}, "wrong-secret")
    assert sse_refused(b, f"topic=a.b&token={bad}").status == 401
    tok = jwt_hs256({"sub": "u", "exp": now() + 60, "subscribe": ["a.>"], "publish": []}, SECRET)
    r = sse_refused(b, f"topic=a.b&topic=secret&token={tok}")
    assert r.status == 403 and error_body(r)["code"] == "forbidden"
    # The same token in the Authorization header opens the stream.
    s = Sse(b, "topic=a.b", headers={"Authorization": f"Bearer {tok}"})
    assert s.resp.status == 200
    subscribed(s, 1)
    # A token that expires ends the stream with a close event and EOF.
    short = jwt_hs256({"sub": "u", "exp": now() + 2, "subscribe": ["a.>"]}, SECRET)
    s2 = Sse(b, f"topic=a.b&token={short}")
    subscribed(s2, 1)
    ev = s2.event(timeout=10)
    assert ev["event"] == "close" and ev["json"] == {"code": 4002, "reason": "token expired"}
    s2.c.read_to_eof(timeout=10)


def test_token_in_the_wsb_token_cookie(broker_factory):
    """EventSource cannot set headers: the token may come in the `wsb_token`
    cookie (after other cookies, with spaces), with the same checks; the query
    or Authorization header wins when both are given."""
    b = broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET)
    tok = jwt_hs256({"sub": "u", "exp": now() + 60, "subscribe": ["a.>"]}, SECRET)
    s = Sse(b, "topic=a.b", headers={"Cookie": f"theme=dark; wsb_token={tok} ; other=1"})
    assert s.resp.status == 200
    subscribed(s, 1)
    # The cookie's grants apply: another topic is forbidden.
    r = sse_refused(b, "topic=secret", headers={"Cookie": f"wsb_token={tok}"})
    assert r.status == 403 and error_body(r)["code"] == "forbidden"
    bad = jwt_hs256({"sub": "u", "exp": now() + 60, "subscribe": [">"]}, "wrong-secret")
    assert sse_refused(b, "topic=a.b", headers={"Cookie": f"wsb_token={bad}"}).status == 401
    assert sse_refused(b, "topic=a.b", headers={"Cookie": "wsb_token="}).status == 401
    # A cookie of another name is no token.
    assert sse_refused(b, "topic=a.b", headers={"Cookie": f"xwsb_token={tok}"}).status == 401
    # The query's token wins over the cookie's.
    assert sse_refused(b, f"topic=a.b&token={bad}", headers={"Cookie": f"wsb_token={tok}"}).status == 401


@pytest.mark.broker_args("--ping-interval", "200ms")
def test_heartbeat_comments(broker):
    s = Sse(broker, "topic=hb")
    subscribed(s, 1)
    for _ in range(2):
        assert s.c.read_until(b"\n\n", 5) == b": ping\n\n"


@pytest.mark.broker_args("--max-connections", "2")
def test_max_connections_counts_sse_streams(broker):
    streams = [Sse(broker, "topic=x") for _ in range(2)]
    for s in streams:
        subscribed(s, 1)
    assert sse_refused(broker, "topic=x").status == 503
    streams[0].c.close()
    # Once the broker saw the stream go, a request is admitted again (a bad
    # one here, so that it does not hold the place).
    wait_for(lambda: sse_refused(broker, "").status == 400, 5, 0.02, "a free place")


@pytest.mark.broker_args("--max-subscriptions", "2")
def test_max_subscriptions_per_stream(broker):
    r = sse_refused(broker, "topic=a&topic=b&topic=c")
    assert r.status == 400 and error_body(r)["code"] == "limit_exceeded"


@pytest.mark.broker_args("--max-outbound-bytes", "64KiB", "--workers", "1")
def test_a_stream_that_does_not_read_is_closed_as_a_slow_consumer(broker):
    slow = Sse(broker, "topic=flood", rcvbuf=4096)
    subscribed(slow, 1)
    fast = Sse(broker, "topic=flood")
    subscribed(fast, 1)
    payload = "x" * 4000
    sent = 0
    deadline = time.monotonic() + 60
    while broker.metric("wsbroker_slow_consumer_closes_total") < 1:
        assert time.monotonic() < deadline, "the slow stream was never closed"
        for _ in range(20):
            sent += 1
            publish(broker, "flood", {"i": sent, "p": payload})
        for _ in range(20):
            fast.message()
    # The slow stream ends (EOF after what was in flight); the reader kept everything.
    slow.c.read_to_eof(timeout=20)
    publish(broker, "flood", "after")
    assert fast.message()["json"]["data"] == "after"
    broker.assert_healthy()


def test_http_publish_with_the_streams_jwt_uses_its_publish_grants(broker_factory):
    b = broker_factory("--auth-required", "true", "--auth-jwt-secret", SECRET,
                       "--topics", json.dumps([{"pattern": "room.>", "publisher": True}]))
    tok = jwt_hs256({"sub": "alice", "exp": now() + 60, "subscribe": ["room.>"],
                     "publish": ["room.>"]}, SECRET)
    bearer = {"Authorization": f"Bearer {tok}"}
    s = Sse(b, f"topic=room.1&token={tok}")
    subscribed(s, 1)
    r = b.post("/api/publish", {"topic": "room.1", "data": "hi"}, headers=dict(bearer))
    assert r.status == 200 and "seq" in json.loads(r.body), r
    m = s.message()["json"]
    assert m["data"] == "hi" and m["from"]["user"] == "alice", m
    r = b.post("/api/publish", {"topic": "other", "data": 1}, headers=dict(bearer))
    assert r.status == 403 and json.loads(r.body)["error"]["code"] == "forbidden", r
    forged = jwt_hs256({"sub": "mallory", "exp": now() + 60, "publish": [">"]}, "not-the-secret")
    r = b.post("/api/publish", {"topic": "room.1", "data": 1},
               headers={"Authorization": f"Bearer {forged}"})
    assert r.status == 401, r
    r = b.post("/api/publish", {"topic": "room.1", "data": 1})
    assert r.status == 401, r


@pytest.mark.broker_args("--topics", json.dumps([{"pattern": "auction.>", "stream": {"size": 1000}}]))
def test_a_pattern_inside_a_stream_resumes_every_topic_with_one_last_event_id(broker):
    s = Sse(broker, "topic=auction.*")
    ack = subscribed(s, 1)[0]
    epoch = ack["epoch"]
    publish(broker, "auction.a", 1)
    publish(broker, "auction.b", 2)
    last = [s.message(), s.message()][-1]
    assert last["id"] == f"{epoch}:2"  # one seq for the whole stream
    s.c.close()
    publish(broker, "auction.a", 3)
    publish(broker, "auction.c", 4)
    s2 = Sse(broker, "topic=auction.*", headers={"Last-Event-ID": last["id"]})
    assert subscribed(s2, 1)[0]["recovered"] is True
    got = [s2.message() for _ in range(2)]
    assert [(m["json"]["topic"], m["json"]["data"], m["id"]) for m in got] == [
        ("auction.a", 3, f"{epoch}:3"), ("auction.c", 4, f"{epoch}:4")]


def test_curl_reads_the_stream(broker):
    import shutil
    import subprocess
    curl = shutil.which("curl")
    assert curl, "curl is needed (Debian package curl)"
    p = subprocess.Popen([curl, "-sN", "--max-time", "30", f"{broker.url}/sse?topic=demo.%3E"],
                         stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        while "data: {\"topic\":\"demo.>\"}" not in lines:
            line = p.stdout.readline()
            assert line, "curl ended early"
            lines.append(line.rstrip("\n"))
        publish(broker, "demo.x", {"hi": 1})
        while not any(x.startswith("data: {\"type\":\"message\"") for x in lines):
            line = p.stdout.readline()
            assert line, "curl ended early"
            lines.append(line.rstrip("\n"))
        msg = json.loads(lines[-1][len("data: "):])
        assert msg["topic"] == "demo.x" and msg["data"] == {"hi": 1}
        assert lines[-3] == "event: message" and lines[-2].startswith("id: :")
    finally:
        p.terminate()
        p.wait(10)


def test_max_connections_per_user_counts_sse_streams(broker_factory):
    b = broker_factory("--auth-jwt-secret", SECRET, "--max-connections-per-user", "1")
    tok = jwt_hs256({"sub": "bob", "exp": now() + 60, "subscribe": ["a"]}, SECRET)
    s = Sse(b, f"topic=a&token={tok}")
    subscribed(s, 1)
    r = sse_refused(b, f"topic=a&token={tok}")
    assert r.status == 429 and error_body(r)["code"] == "limit_exceeded" and r.header("Retry-After") == "1"
    # The stream's place is given back when it goes: a request is admitted
    # again (one for a topic bob may not read, so that it holds nothing: 403
    # comes after the user limit).
    assert sse_refused(b, f"topic=b&token={tok}").status == 429
    s.c.close()
    wait_for(lambda: sse_refused(b, f"topic=b&token={tok}").status == 403, 5, 0.02, "bob's place back")
