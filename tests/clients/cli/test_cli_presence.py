"""wsbroker-cli presence TOPIC (and --stats) against the real broker with
topic rules enabling presence and publisher identity on chat.> (issue 18).

Members are made with `sub -v` processes, which print "subscribed: TOPIC"
once the broker acknowledged: a member from its ack on (PROTOCOL.md 3.6).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from test_cli import SUB_READY, pub

SECRET = "cli-presence-secret-0123456789abcdef"
TOPICS = json.dumps([
    {"pattern": "chat.>", "presence": True, "join_leave": True, "publisher": True},
    {"pattern": "quiet.>", "history": {"size": 4}},
])


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token(sub: str, **claims) -> str:
    """An HS256 JWT for `sub` that may subscribe to and publish on anything."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = {"sub": sub, "exp": int(time.time()) + 3600, "subscribe": [">"], "publish": [">"]}
    body.update(claims)
    payload = b64url(json.dumps(body).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64url(sig)}"


def start_sub(cli, broker, user, topic, *opts):
    """`sub -v` as `user`, waiting until the broker acknowledged `topic`."""
    p = cli.start("--url", broker.ws_url, "--token", token(user), "-v", *opts, "sub", topic)
    p.wait_stderr(SUB_READY + topic)
    return p


def presence_broker(broker_factory):
    return broker_factory("--topics", TOPICS, "--auth-jwt-secret", SECRET)


def presence(cli, broker, topic, *extra, user="pat"):
    return cli.run("--url", broker.ws_url, "--token", token(user), *extra, "presence", topic)


def test_presence_prints_one_json_line_per_member(cli, broker_factory):
    b = presence_broker(broker_factory)
    empty = presence(cli, b, "chat.room1")
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout == "" and empty.stderr == ""
    subs = [start_sub(cli, b, u, "chat.room1") for u in ("alice", "alice", "bob")]
    start_sub(cli, b, "carol", "chat.*")  # a pattern makes no member
    r = presence(cli, b, "chat.room1")
    assert r.returncode == 0, r.stderr
    members = [json.loads(x) for x in r.stdout.splitlines()]
    assert sorted(m["user"] for m in members) == ["alice", "alice", "bob"]
    assert all(list(m) == ["client", "user"] and m["client"] for m in members)
    assert len({m["client"] for m in members}) == 3
    s = presence(cli, b, "chat.room1", "--stats")
    assert s.returncode == 0, s.stderr
    assert json.loads(s.stdout) == {"topic": "chat.room1", "clients": 3, "users": 2}
    assert len(s.stdout.splitlines()) == 1
    for p in subs:
        p.signal(2)
        assert p.wait() == 0


def test_presence_refusals_exit_1_with_the_broker_code(cli, broker_factory):
    b = presence_broker(broker_factory)
    r = presence(cli, b, "quiet.x")
    assert r.returncode == 1 and r.stdout == ""
    assert "presence of 'quiet.x' failed: not_available: " in r.stderr
    r = cli.run("--url", b.ws_url, "--token", token("eve", subscribe=["chat.open"]), "--stats",
                "presence", "chat.closed")
    assert r.returncode == 1
    assert "presence of 'chat.closed' failed: forbidden: " in r.stderr


def test_presence_usage_errors_exit_2_before_connecting(cli):
    cases = [
        (["presence"], "presence: expected one TOPIC, got 0"),
        (["presence", "a", "b"], "presence: expected one TOPIC, got 2"),
        (["presence", "chat.*"], "invalid topic 'chat.*'"),
        (["--stats", "sub", "a"], "--stats applies to presence only"),
        (["--count", "1", "presence", "a"], "--count applies to sub and reply only"),
    ]
    for args, needle in cases:
        r = cli.run("--url", "ws://127.0.0.1:9/ws", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr, (args, r.stderr)


def test_sub_prints_the_brokers_from(cli, broker_factory):
    b = presence_broker(broker_factory)
    sub = start_sub(cli, b, "rita", "chat.room2", "--count", "1")
    r = pub(cli, b, "chat.room2", '{"from":"forged","text":"hi"}', "--token", token("walt"))
    assert r.returncode == 0, r.stderr
    assert sub.wait() == 0
    m = json.loads(sub.out_lines[0])
    assert list(m) == ["topic", "seq", "from", "data"]
    assert m["from"]["user"] == "walt" and m["from"]["client"]
    assert m["data"] == {"from": "forged", "text": "hi"}


def test_help_documents_presence(cli):
    r = cli.run("--help")
    assert "presence TOPIC" in r.stdout
    assert "--stats" in r.stdout
