"""Clustered history and streams on a Redis Cluster (issue 21): with
redis.cluster and history or stream rules, a topic's keys and its shard
channel carry the topic (a stream's: its rule) as their hash tag, so the Lua
scripts run on the slot's master with their SPUBLISH in the same slot. Three
brokers on the real 3-master, 3-replica cluster of test_redis_cluster.py:
recovery (`since`) and last value across nodes for topics on every master,
stream reads across nodes, and a master killed while history is written."""
from __future__ import annotations

import json
import os
import signal as sig
import threading
import time

from helpers import wait_for
from test_history_cluster import ack_of, messages, publish_many
from test_redis_cluster import NODE_TIMEOUT_MS, chan, nodes, redis_cluster  # noqa: F401
from wsbroker_harness import run_broker_cmd

HISTORY = json.dumps([{"pattern": "h.>", "size": 100000}])
TOPICS = json.dumps([{"pattern": "s.>", "stream": {"size": 1000}}])
RULES = ("--history", HISTORY, "--topics", TOPICS)


def tagged(name: str, rest: str) -> str:
    """A key named with a hash tag, as the broker names it on a cluster."""
    return "wsb:{" + name.replace("%", "%25").replace("}", "%7D") + "}" + rest


def history_topics(rc, per_master: int) -> dict:
    """{topic: master port}: `per_master` history topics on each master (one
    with braces and a percent sign, whose tag the broker escapes)."""
    by_master: dict = {p: [] for p in rc.masters()}
    i = 0
    while min(len(v) for v in by_master.values()) < per_master:
        t = f"h.t{i}" if i % 5 else f"h.{{x}}%.t{i}"
        m = rc.master_of(chan(t))
        if len(by_master[m]) < per_master:
            by_master[m].append(t)
        i += 1
    return {t: m for m, ts in by_master.items() for t in ts}


def test_cluster_history_and_streams_config_starts():
    res = run_broker_cmd(["--check-config", "--redis-cluster", "127.0.0.1:7000", *RULES])
    assert res.returncode == 0, res.stderr


def test_cluster_history_since_recovers_across_nodes_on_every_master(redis_cluster, nodes):
    a, b, c = nodes(3, *RULES)
    topics = history_topics(redis_cluster, 2)
    assert len(set(topics.values())) == 3, topics
    for t, master in topics.items():
        # The topic's keys and its channel are in one slot, on its master.
        slot = redis_cluster.keyslot(chan(t))
        assert redis_cluster.keyslot(tagged(t, "hist")) == slot
        assert redis_cluster.keyslot(tagged(t, "stream")) == slot
        pa, pb = a.raw_ws(), b.raw_ws()
        sub = c.raw_ws()
        ack = ack_of(sub, {"type": "subscribe", "topic": t, "id": 1})
        assert ack["seq"] == 0 and len(ack["epoch"]) == 12, ack
        epoch = ack["epoch"]
        seqs = []
        for k in range(10):
            seqs += publish_many(pa, t, [{"i": 2 * k}], first_id=100 + k)
            seqs += publish_many(pb, t, [{"i": 2 * k + 1}], first_id=200 + k)
        assert seqs == list(range(1, 21)), (t, seqs)
        live = messages(sub, 20)
        assert [m["data"]["i"] for m in live] == list(range(20)), t
        assert redis_cluster.client(master).exists(tagged(t, "hist"), tagged(t, "stream")) == 2
        for node in (a, c):  # any node recovers: the publishers' and a third one
            back = node.raw_ws()
            ack = ack_of(back, {"type": "subscribe", "topic": t, "id": 7,
                                "since": {"epoch": epoch, "seq": 5}})
            assert ack == {"type": "ack", "id": 7, "seq": 20, "epoch": epoch,
                           "recovered": True}, (t, ack)
            replay = messages(back, 15)
            assert [m["seq"] for m in replay] == list(range(6, 21)), t
            assert [m["data"]["i"] for m in replay] == list(range(5, 20)), t
            back.close()
        for w in (pa, pb, sub):
            w.close()


def test_cluster_last_value_across_nodes(redis_cluster, nodes):
    a, _, c = nodes(3, *RULES)
    topics = history_topics(redis_cluster, 1)
    pa = a.raw_ws()
    for t in topics:
        publish_many(pa, t, [{"t": t, "i": i} for i in range(5)])
    for t in topics:
        sub = c.raw_ws()
        ack = ack_of(sub, {"type": "subscribe", "topic": t, "id": 3, "history": 2})
        assert ack["type"] == "ack" and ack["seq"] == 5, ack
        got = messages(sub, 2)
        assert [(m["seq"], m["data"]) for m in got] == [(4, {"t": t, "i": 3}),
                                                        (5, {"t": t, "i": 4})], got
        sub.close()
    pa.close()


def test_cluster_stream_reads_across_nodes(redis_cluster, nodes):
    a, b, c = nodes(3, *RULES)
    master = redis_cluster.master_of(tagged("s.>", ""))
    # Every topic of the stream has its channel in the stream's slot.
    for t in ("s.a", "s.b.c"):
        assert redis_cluster.keyslot(tagged("s.>", t)) == redis_cluster.keyslot(tagged("s.>", ""))
    first = c.raw_ws()
    ack = ack_of(first, {"type": "subscribe", "topic": "s.a", "id": 1})
    assert ack["stream"] == "s.>" and ack["seq"] == 0, ack
    epoch = ack["epoch"]
    pa, pb = a.raw_ws(), b.raw_ws()
    seqs = []
    for k in range(6):
        seqs += publish_many(pa, "s.a", [{"k": k}], first_id=10 + k)
        seqs += publish_many(pb, "s.b.c", [{"k": k}], first_id=20 + k)
    assert seqs == list(range(1, 13)), seqs
    live = messages(first, 6)
    assert [m["seq"] for m in live] == [1, 3, 5, 7, 9, 11], live
    assert redis_cluster.client(master).exists(tagged("s.>", "rule.hist"),
                                               tagged("s.>", "rule.stream")) == 2
    for node, topic, want in ((c, "s.a", [5, 7, 9, 11]), (a, "s.b.c", [6, 8, 10, 12])):
        w = node.raw_ws()
        ack = ack_of(w, {"type": "subscribe", "topic": topic, "id": 2,
                         "since": {"epoch": epoch, "seq": 4}})
        assert ack["recovered"] is True and ack["seq"] == 12 and ack["epoch"] == epoch, ack
        got = messages(w, len(want))
        assert [m["seq"] for m in got] == want and all(m["topic"] == topic for m in got), got
        w.close()
    for w in (first, pa, pb):
        w.close()


def test_cluster_master_killed_during_history_writes_recovery_has_no_duplicates(
        redis_cluster, nodes):
    """A master dies while node B writes history to one of its topics: the
    publish in flight (applied or not) and those made before the replica is
    promoted are refused (`unavailable`), never applied twice; then writes resume on the
    promoted replica in the same epoch, and a recovery from seq 0 on another
    node replays each acknowledged message at most once, in seq order.
    Acknowledged writes the dead master had not yet replicated are lost
    (Redis replicates asynchronously): counted and printed."""
    a, b, c = nodes(3, *RULES)
    topic = next(t for t, m in history_topics(redis_cluster, 1).items())
    victim = redis_cluster.master_of(chan(topic))
    sub = c.raw_ws()
    epoch = ack_of(sub, {"type": "subscribe", "topic": topic, "id": 1})["epoch"]
    acked: dict = {}  # data i -> seq
    refused = []
    stop = threading.Event()
    errors = []

    def writer():
        try:
            w = b.raw_ws()
            i = 0
            while not stop.is_set():
                r = ack_of(w, {"type": "publish", "topic": topic, "data": {"i": i}, "id": i + 1})
                if r["type"] == "ack":
                    acked[i] = r["seq"]
                else:
                    assert r.get("code") == "unavailable", r
                    refused.append(i)
                i += 1
            w.close()
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    th = threading.Thread(target=writer)
    th.start()
    try:
        wait_for(lambda: len(acked) >= 50 or errors, 30.0, 0.01, "50 acked publishes")
        killed_at = time.monotonic()
        redis_cluster.kill(victim)
        # Writes come back once a replica is promoted and the brokers follow it.
        wait_for(lambda: errors or (refused and sum(1 for i in list(acked) if i > refused[-1]) >= 20),
                 60.0, 0.01, "publishes acknowledged again after the failover")
        gap_ms = (time.monotonic() - killed_at) * 1000
    finally:
        stop.set()
        th.join(30)
    assert not errors, errors
    assert refused, "the kill refused nothing: it did not hit the writes"
    redis_cluster.wait_ok()
    for node in (a, b, c):  # every broker follows the promoted replica
        wait_for(lambda node=node: node.health().get("redis") == "ok", 30.0, 0.05,
                 f"node {node.name} on the new topology")
    last_seq = max(acked.values())
    back = a.raw_ws()
    ack = ack_of(back, {"type": "subscribe", "topic": topic, "id": 9,
                        "since": {"epoch": epoch, "seq": 0}})
    assert ack["epoch"] == epoch and ack["recovered"] is True and ack["seq"] >= last_seq, ack
    replay = messages(back, ack["seq"])
    assert [m["seq"] for m in replay] == list(range(1, ack["seq"] + 1))
    data = [m["data"]["i"] for m in replay]
    assert len(data) == len(set(data)), "a publish was applied twice"
    # The one publish in flight when the master died was refused; its script
    # may or may not have run (and been replicated). No later refused one ran.
    assert set(data) & set(refused) <= {refused[0]}, "a refused publish was applied"
    assert data == sorted(data), "per-publisher order broken"
    lost = sorted(set(acked) - set(data))
    # Everything acknowledged after the failover is there.
    after = [i for i in acked if i > max(refused)]
    assert set(after) <= set(data)
    # The live subscriber saw no message twice either.
    seen = []
    publish_many(b.raw_ws(), topic, [{"i": "end"}], first_id=99999)
    while True:
        m = sub.recv_json(timeout=10)
        if m.get("type") != "message":
            continue
        if m["data"]["i"] == "end":
            break
        seen.append(m["data"]["i"])
    assert len(seen) == len(set(seen)), "a live subscriber got a message twice"
    print(f"\nhistory failover: killed master {victim}; {len(refused)} publishes refused "
          f"(unavailable) over {gap_ms:.0f} ms, {len(lost)} acknowledged lost "
          f"(not replicated), cluster-node-timeout {NODE_TIMEOUT_MS} ms")
    for w in (sub, back):
        w.close()


def test_cluster_read_waiting_on_one_master_survives_another_masters_loss(redis_cluster, nodes):
    """A `since` read waits for its channel's SSUBSCRIBE on master X (held up:
    X is stopped for a moment) while master Y dies: the read is X's business
    only, so it is answered from Redis once X answers, not refused because
    the subscriber connection to Y was lost."""
    _, b, c = nodes(3, *RULES)
    topics = history_topics(redis_cluster, 1)
    by_master = {m: t for t, m in topics.items()}
    x, y = sorted(by_master)[:2]
    topic = by_master[x]
    pb = b.raw_ws()
    publish_many(pb, topic, [{"i": i} for i in range(3)])
    epoch = ack_of(pb, {"type": "subscribe", "topic": topic, "id": 50})["epoch"]
    sub = c.raw_ws()
    wanted = c.metric("wsbroker_redis_subscriptions")
    os.kill(redis_cluster.procs[x].pid, sig.SIGSTOP)
    try:
        sub.send_json({"type": "subscribe", "topic": topic, "id": 1,
                       "since": {"epoch": epoch, "seq": 1}})
        wait_for(lambda: c.metric("wsbroker_redis_subscriptions") > wanted, 10.0, 0.005,
                 "C wants the topic's channel (its SSUBSCRIBE waits on the stopped master)")
        redis_cluster.kill(y)
        wait_for(lambda: c.health().get("redis") == "degraded", 10.0, 0.005,
                 "C lost its connections to the killed master")
    finally:
        os.kill(redis_cluster.procs[x].pid, sig.SIGCONT)
    m = sub.recv_json(timeout=15)
    assert m == {"type": "ack", "id": 1, "seq": 3, "epoch": epoch, "recovered": True}, m
    got = messages(sub, 2)
    assert [g["seq"] for g in got] == [2, 3], got
    for w in (pb, sub):
        w.close()
