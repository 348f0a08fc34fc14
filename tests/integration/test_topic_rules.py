"""Topic rules (issue 18): the `topics` config list is validated at start
(exit 2 naming the rule and the key, unknown options included), is accepted
from a flag, a variable and the config file, and combines with the older
`history` list as one list, `topics` first, first match wins."""
from __future__ import annotations

import json

import pytest

from helpers import run_broker_cmd

SAFE = ["--port", "0", "--host", "127.0.0.1"]


def assert_config_error(res, *names):
    assert res.returncode == 2, f"exit {res.returncode}, stderr: {res.stderr}"
    for n in names:
        assert n in res.stderr, f"stderr does not name {n!r}: {res.stderr}"


@pytest.mark.parametrize("rules,names", [
    ([{"pattern": "auction.>", "stream": {"size": 0}}], ["topics[0].stream.size"]),
    ([{"pattern": "a"}, {"pattern": "prices.>", "conflate": "yes"}], ["topics[1].conflate"]),
    ([{"presence": True}], ["topics[0]", "pattern"]),
    ([{"pattern": "a..b"}], ["topics[0].pattern"]),
    ([{"pattern": "a", "presence": "yes"}], ["topics[0].presence"]),
    ([{"pattern": "a", "join_leave": 1}], ["topics[0].join_leave"]),
    ([{"pattern": "a", "publisher": None}], ["topics[0].publisher"]),
    ([{"pattern": "a", "history": {"size": 0}}], ["topics[0].history.size"]),
    ([{"pattern": "a", "history": {"sizes": 3}}], ["topics[0].history", '"sizes"']),
    ({"pattern": "a"}, ["topics"]),
    ([{"pattern": f"t{i}"} for i in range(65)], ["topics", "64"]),
])
def test_bad_topic_rules_exit_2_naming_rule_and_key(tmp_path, rules, names):
    assert_config_error(run_broker_cmd(SAFE + ["--topics", json.dumps(rules)]), *names)
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({"topics": rules}))
    assert_config_error(run_broker_cmd(SAFE + ["--config", str(f)]), *names)
    assert_config_error(run_broker_cmd(SAFE, env={"WSB_TOPICS": json.dumps(rules)}), *names)


def test_topics_and_history_together_at_most_64_rules():
    topics = [{"pattern": f"t{i}"} for i in range(40)]
    history = [{"pattern": f"h{i}"} for i in range(30)]
    res = run_broker_cmd(SAFE + ["--topics", json.dumps(topics), "--history", json.dumps(history)])
    assert_config_error(res, "topics", "history", "64")


def test_help_documents_topics():
    res = run_broker_cmd(["--help"])
    assert res.returncode == 0, res.stderr
    assert "--topics" in res.stdout and "WSB_TOPICS" in res.stdout
    for option in ("presence", "join_leave", "publisher", "first match wins", "stream"):
        assert option in res.stdout, option


def sub_ack(c, req: dict) -> dict:
    c.send_json(req)
    ack = c.recv_json()
    assert ack.get("type") == "ack" and ack.get("id") == req["id"], ack
    return ack


def published(c, topic: str, n: int, first_id: int = 100):
    for k in range(n):
        c.send_json({"type": "publish", "topic": topic, "data": k, "id": first_id + k})
        ack = c.recv_json()
        assert ack["type"] == "ack" and ack["id"] == first_id + k, ack


TOPICS = json.dumps([
    {"pattern": "chat.quiet", "presence": True},
    {"pattern": "chat.*", "history": {"size": 5, "ttl": "1h"}},
])
HISTORY = json.dumps([{"pattern": ">", "size": 3}])


@pytest.mark.parametrize("source", ["flags", "file"])
def test_history_option_and_shorthand_one_list_first_match_wins(broker_factory, tmp_path, source):
    """chat.loud keeps 5 (its topics rule), other.x keeps 3 (the history
    shorthand after the topics rules), chat.quiet keeps none: its topics rule
    matches first and has no history, although the `>` history rule matches."""
    if source == "flags":
        b = broker_factory("--topics", TOPICS, "--history", HISTORY)
    else:
        f = tmp_path / "rules.json"
        f.write_text(json.dumps({"topics": json.loads(TOPICS), "history": json.loads(HISTORY)}))
        b = broker_factory("--config", str(f))
    c = b.raw_ws()
    for topic, kept in (("chat.loud", 5), ("other.x", 3), ("chat.quiet", 0)):
        published(c, topic, 8)
        ack = sub_ack(c, {"type": "subscribe", "topic": topic, "id": 1, "history": 10})
        if kept == 0:
            assert "epoch" not in ack, (topic, ack)
            continue
        assert ack["seq"] == 8 and isinstance(ack.get("epoch"), str), (topic, ack)
        got = [c.recv_json() for _ in range(kept)]
        assert [m["data"] for m in got] == list(range(8 - kept, 8)), (topic, got)
        assert all(m["topic"] == topic for m in got), got
    # Nothing more was replayed: the next frame is the pong.
    c.send_json({"type": "ping", "id": 9})
    assert c.recv_json() == {"type": "pong", "id": 9}


@pytest.mark.parametrize("args,names", [
    (["--presence-max-members", "0"], ["presence.max_members"]),
    (["--presence-max-members", "many"], ["presence.max_members"]),
    (["--presence-max-topics", "0"], ["presence.max_topics"]),
    (["--presence-max-topics", "-1"], ["presence.max_topics"]),
    (["--presence-node-ttl", "0"], ["presence.node_ttl"]),
    (["--presence-node-ttl", "soon"], ["presence.node_ttl"]),
])
def test_bad_presence_bounds_exit_2(args, names):
    assert_config_error(run_broker_cmd(SAFE + args), *names)
