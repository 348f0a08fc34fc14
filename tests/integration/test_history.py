"""History and recovery (issue 10) on a single node: a subscriber whose TCP
connection dies recovers exactly what it missed with `since`, learns
`recovered:false` when it cannot, sees the epoch change after a restart, gets
`history: N`; a slow consumer on a "drop" rule gets a `gap` and recovers; the
number of topics with history stays bounded; and the replay / live switch-over
has no gap and no duplicate while several workers publish."""
from __future__ import annotations

import json
import threading
import time

import pytest

import wsraw
from helpers import wait_for

CHAT_RULES = json.dumps([
    {"pattern": "chat.>", "size": 1000},
    {"pattern": "small.>", "size": 10},
    {"pattern": "fast.>", "size": 100, "ttl": "300ms"},
    {"pattern": "slow.>", "size": 5000, "slow_consumer": "drop"},
    {"pattern": "load.>", "size": 100000},
])


def publish_many(pub: wsraw.Conn, topic: str, items, first_id: int = 1):
    """Publishes each item with an id and returns the seqs of the acks."""
    seqs = []
    for k, data in enumerate(items):
        pub.send_json({"type": "publish", "topic": topic, "data": data, "id": first_id + k})
    for k, _ in enumerate(items):
        ack = pub.recv_json()
        assert ack["type"] == "ack" and ack["id"] == first_id + k, ack
        seqs.append(ack["seq"])
    return seqs


def sub_ack(c: wsraw.Conn, req: dict) -> dict:
    c.send_json(req)
    ack = c.recv_json()
    assert ack.get("type") == "ack" and ack.get("id") == req["id"], ack
    return ack


def kill_tcp(c: wsraw.Conn):
    """The network goes away: no close frame, just the socket closed."""
    c.close()


@pytest.mark.broker_args("--history", CHAT_RULES)
def test_reconnect_with_since_gets_exactly_the_50_missed_then_live(broker):
    topic = "chat.room1"
    sub = broker.raw_ws()
    ack = sub_ack(sub, {"type": "subscribe", "topic": topic, "id": 1})
    # Position before the first publish: the epoch is known, seq 0.
    assert ack["seq"] == 0 and isinstance(ack["epoch"], str) and len(ack["epoch"]) == 12, ack
    assert "recovered" not in ack
    epoch = ack["epoch"]

    pub = broker.raw_ws()
    publish_many(pub, topic, [{"i": i} for i in range(5)])
    got = [sub.recv_json() for _ in range(5)]
    assert [m["seq"] for m in got] == [1, 2, 3, 4, 5]
    assert all(m["epoch"] == epoch and m["type"] == "message" for m in got)
    last = got[-1]["seq"]

    kill_tcp(sub)
    seqs = publish_many(pub, topic, [{"i": i} for i in range(5, 55)], first_id=100)
    assert seqs == list(range(6, 56))

    sub2 = broker.raw_ws()
    ack = sub_ack(sub2, {"type": "subscribe", "topic": topic, "id": 7,
                         "since": {"epoch": epoch, "seq": last}})
    assert ack == {"type": "ack", "id": 7, "seq": 55, "epoch": epoch, "recovered": True}
    replay = [sub2.recv_json() for _ in range(50)]
    assert [m["seq"] for m in replay] == list(range(6, 56))
    assert [m["data"]["i"] for m in replay] == list(range(5, 55))
    # Live messages follow, without gap or duplicate.
    publish_many(pub, topic, [{"i": i} for i in range(55, 60)], first_id=200)
    live = [sub2.recv_json() for _ in range(5)]
    assert [m["seq"] for m in live] == list(range(56, 61))
    # Nothing else arrives: a ping is a barrier.
    sub2.send_json({"type": "ping", "id": 9})
    assert sub2.recv_json() == {"type": "pong", "id": 9}
    m = broker.metrics()
    assert m['wsbroker_history_recoveries_total{result="recovered"}'] == 1
    assert m["wsbroker_history_replayed_total"] == 50
    assert m['wsbroker_history_messages{rule="0",pattern="chat.>"}'] == 60


@pytest.mark.broker_args("--history", CHAT_RULES)
def test_window_exceeded_is_recovered_false_and_live_follows(broker):
    topic = "small.t"
    pub = broker.raw_ws()
    publish_many(pub, topic, list(range(3)))
    sub = broker.raw_ws()
    ack = sub_ack(sub, {"type": "subscribe", "topic": topic, "id": 1})
    epoch = ack["epoch"]
    kill_tcp(sub)
    # 20 more: the ring (size 10) now holds 14..23; seq 4 onwards is gone.
    publish_many(pub, topic, list(range(20)), first_id=50)
    sub2 = broker.raw_ws()
    ack = sub_ack(sub2, {"type": "subscribe", "topic": topic, "id": 2,
                         "since": {"epoch": epoch, "seq": 3}})
    assert ack == {"type": "ack", "id": 2, "seq": 23, "epoch": epoch, "recovered": False}
    publish_many(pub, topic, ["live"], first_id=90)
    m = sub2.recv_json()
    assert m["seq"] == 24 and m["data"] == "live", m  # nothing was replayed
    # The ring now holds 15..24: since 14 is the oldest recoverable position.
    sub3 = broker.raw_ws()
    ack = sub_ack(sub3, {"type": "subscribe", "topic": topic, "id": 3,
                         "since": {"epoch": epoch, "seq": 14}})
    assert ack["recovered"] is True
    assert [sub3.recv_json()["seq"] for _ in range(10)] == list(range(15, 25))
    ack = sub_ack(sub3, {"type": "subscribe", "topic": topic, "id": 4,
                         "since": {"epoch": epoch, "seq": 13}})
    assert ack["recovered"] is False
    # A seq from the future or an unknown epoch: not recoverable.
    for since in ({"epoch": epoch, "seq": 99}, {"epoch": "nope", "seq": 1}):
        c = broker.raw_ws()
        assert sub_ack(c, {"type": "subscribe", "topic": topic, "id": 4, "since": since})["recovered"] is False
    assert broker.metric('wsbroker_history_recoveries_total{result="failed"}') == 4


@pytest.mark.broker_args("--history", CHAT_RULES)
def test_ttl_expires_history(broker):
    topic = "fast.t"
    pub = broker.raw_ws()
    publish_many(pub, topic, list(range(5)))
    sub = broker.raw_ws()
    ack = sub_ack(sub, {"type": "subscribe", "topic": topic, "id": 1, "history": 5})
    assert [sub.recv_json()["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]
    # The once-a-second sweep empties the ring after the 300 ms ttl.
    wait_for(lambda: broker.metric('wsbroker_history_messages{rule="2",pattern="fast.>"}') == 0, 10,
             what="history expired")
    c = broker.raw_ws()
    ack2 = sub_ack(c, {"type": "subscribe", "topic": topic, "id": 2,
                       "since": {"epoch": ack["epoch"], "seq": 0}})
    assert ack2["recovered"] is False and ack2["seq"] == 5
    # Up to date needs nothing held: recovered.
    ack3 = sub_ack(c, {"type": "subscribe", "topic": topic, "id": 3,
                       "since": {"epoch": ack["epoch"], "seq": 5}})
    assert ack3["recovered"] is True


@pytest.mark.broker_args("--history", CHAT_RULES)
def test_history_n_and_option_errors(broker):
    topic = "chat.h"
    pub = broker.raw_ws()
    publish_many(pub, topic, [f"m{i}" for i in range(8)])
    sub = broker.raw_ws()
    ack = sub_ack(sub, {"type": "subscribe", "topic": topic, "id": 1, "history": 3})
    assert ack["seq"] == 8 and "recovered" not in ack
    assert [sub.recv_json()["data"] for _ in range(3)] == ["m5", "m6", "m7"]
    # More than held: what is held.
    c = broker.raw_ws()
    sub_ack(c, {"type": "subscribe", "topic": topic, "id": 2, "history": 100})
    assert [c.recv_json()["seq"] for _ in range(8)] == list(range(1, 9))

    def err(req):
        c.send_json(req)
        r = c.recv_json()
        assert r["type"] == "error", r
        return r["code"]

    assert err({"type": "subscribe", "topic": "chat.>", "id": 3, "since": {"epoch": "e", "seq": 0}}) == "bad_since"
    assert err({"type": "subscribe", "topic": topic, "id": 5, "history": -1}) == "bad_field"
    assert err({"type": "subscribe", "topic": topic, "id": 6, "history": 2,
                "since": {"epoch": "e", "seq": 0}}) == "bad_since"
    assert err({"type": "publish", "topic": topic, "id": 7, "data": 1, "history": 2}) == "bad_since"
    # A topic without a rule: since is simply not recovered, no epoch.
    ack = sub_ack(c, {"type": "subscribe", "topic": "nohist", "id": 8, "since": {"epoch": "e", "seq": 0}})
    assert ack == {"type": "ack", "id": 8, "recovered": False}
    publish_many(pub, "nohist", [1], first_id=40)
    assert "epoch" not in c.recv_json()


def test_restart_changes_epoch(broker_factory):
    args = ("--history", CHAT_RULES)
    b1 = broker_factory(*args)
    pub = b1.raw_ws()
    publish_many(pub, "chat.r", [1, 2, 3])
    sub = b1.raw_ws()
    epoch1 = sub_ack(sub, {"type": "subscribe", "topic": "chat.r", "id": 1})["epoch"]
    b1.stop()
    b2 = broker_factory(*args)
    c = b2.raw_ws()
    ack = sub_ack(c, {"type": "subscribe", "topic": "chat.r", "id": 2,
                      "since": {"epoch": epoch1, "seq": 3}})
    assert ack["recovered"] is False and ack["epoch"] != epoch1 and ack["seq"] == 0, ack
    pub2 = b2.raw_ws()
    publish_many(pub2, "chat.r", ["new"])
    m = c.recv_json()
    assert m["seq"] == 1 and m["epoch"] == ack["epoch"]


MSG_LEN = 16000
N_SLOW = 400  # 6.4 MB: far past the kernel's socket buffers and the 64 KiB bound


@pytest.mark.broker_args("--history", CHAT_RULES, "--max-outbound-bytes", "64KiB")
def test_slow_consumer_with_drop_rule_gets_gap_and_recovers(broker):
    topic = "slow.feed"
    slow = broker.raw_ws(rcvbuf=4096)
    ack = sub_ack(slow, {"type": "subscribe", "topic": topic, "id": 1})
    epoch = ack["epoch"]
    # The slow client now reads nothing while the publisher pumps.
    pub = broker.raw_ws()
    payload = "x" * MSG_LEN
    for k in range(0, N_SLOW, 10):
        publish_many(pub, topic, [{"i": i, "p": payload} for i in range(k, k + 10)], first_id=k + 1)
    wait_for(lambda: broker.metric("wsbroker_history_gaps_total") >= 1, 10, what="a gap notice")
    assert broker.metric("wsbroker_slow_consumer_closes_total") == 0

    seen = []
    gap = None
    while gap is None:
        m = slow.recv_json(timeout=10)
        if m["type"] == "gap":
            gap = m
        else:
            assert m["type"] == "message", m
            seen.append(m["seq"])
    assert gap["topic"] == topic and gap["epoch"] == epoch, gap
    assert seen == list(range(1, gap["seq"] + 1)), (seen[:5], seen[-5:], gap)
    assert gap["seq"] < N_SLOW
    # Suspended: nothing more of the topic until the client recovers.
    slow.send_json({"type": "ping", "id": 2})
    assert slow.recv_json() == {"type": "pong", "id": 2}

    ack = sub_ack(slow, {"type": "subscribe", "topic": topic, "id": 3,
                         "since": {"epoch": epoch, "seq": gap["seq"]}})
    assert ack["recovered"] is True and ack["seq"] == N_SLOW, ack
    for want in range(gap["seq"] + 1, N_SLOW + 1):
        m = slow.recv_json(timeout=10)
        assert m["type"] == "message" and m["seq"] == want, (m.get("type"), m.get("seq"), want)
    publish_many(pub, topic, ["live"], first_id=9000)
    assert slow.recv_json()["seq"] == N_SLOW + 1


@pytest.mark.broker_args("--history", CHAT_RULES, "--history-max-topics", "64")
def test_topics_with_history_are_bounded(broker):
    pub = broker.raw_ws()
    n = 1000
    for k in range(0, n, 100):
        for i in range(k, k + 100):
            pub.send_json({"type": "publish", "topic": f"chat.t{i}", "data": "y" * 100})
        pub.send_json({"type": "ping", "id": k})
        assert pub.recv_json() == {"type": "pong", "id": k}
    m = broker.metrics()
    topics = m['wsbroker_history_topics{rule="0",pattern="chat.>"}']
    assert topics <= 64
    assert m["wsbroker_history_evictions_total"] == n - topics
    assert m['wsbroker_history_messages{rule="0",pattern="chat.>"}'] == topics
    # An evicted topic starts again with a new epoch: its old position is not recoverable.
    c = broker.raw_ws()
    ack = sub_ack(c, {"type": "subscribe", "topic": "chat.t0", "id": 1,
                      "since": {"epoch": "000000000000", "seq": 1}})
    assert ack["recovered"] is False


N_PUBLISHERS = 3
PER_PUBLISHER = 600


@pytest.mark.broker_args("--history", CHAT_RULES, "--workers", "4")
def test_switch_over_has_no_gap_and_no_duplicate_under_load(broker):
    """Publishers on several workers pump one topic while a subscriber keeps
    losing its connection and recovering: across all its sessions it sees
    every seq exactly once, in order."""
    topic = "load.t"
    first = broker.raw_ws()
    epoch = sub_ack(first, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    kill_tcp(first)
    total = N_PUBLISHERS * PER_PUBLISHER
    errors = []

    def pump(p):
        try:
            c = wsraw.ws_connect(broker.host, broker.port)
            for k in range(0, PER_PUBLISHER, 20):
                publish_many(c, topic, [{"p": p, "k": i} for i in range(k, k + 20)], first_id=k + 1)
            c.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=pump, args=(p,)) for p in range(N_PUBLISHERS)]
    for t in threads:
        t.start()
    got = []
    sessions = 0
    mid_stream = 0
    deadline = time.monotonic() + 60
    while (not got or got[-1] < total) and time.monotonic() < deadline:
        c = wsraw.ws_connect(broker.host, broker.port)
        last = got[-1] if got else 0
        ack = sub_ack(c, {"type": "subscribe", "topic": topic, "id": 1,
                          "since": {"epoch": epoch, "seq": last}})
        assert ack["recovered"] is True, ack
        sessions += 1
        if ack["seq"] < total:
            mid_stream += 1  # this session switches from replay to live
        # Read a handful (replay and live alike), then lose the connection.
        for _ in range(37):
            if got and got[-1] >= total:
                break
            m = c.recv_json(timeout=10)
            assert m["type"] == "message", m
            got.append(m["seq"])
        c.close()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert got == list(range(1, total + 1)), f"{len(got)} seqs, first bad at " + str(
        next((i for i, s in enumerate(got) if s != i + 1), None))
    assert sessions > 5 and mid_stream >= 3, (sessions, mid_stream)


@pytest.mark.parametrize("args, needle", [
    (["--history", '[{"pattern":"a","size":0}]'], "history[0].size"),
    (["--history", '{"pattern":"a"}'], "history: expected a list"),
])
def test_bad_history_config_exits_2_naming_the_key(args, needle):
    from helpers import run_broker_cmd
    r = run_broker_cmd(["--port", "0"] + args)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
