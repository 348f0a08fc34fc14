"""Streams (issue 19 item 2, PROTOCOL.md 3.1b): a topics rule with `stream`
gives every topic under its pattern one epoch, one seq and one log. `since`
is accepted on any subscription inside the pattern, wildcards included, and
replays exactly the missed messages that match it, then live messages with
no gap and no duplicate at the switch-over; the ack names the stream and
says recovered true|false. HTTP and RESP publishes go into the same log,
with the publisher's `from`. The log is bounded (size, max_bytes, ttl);
config errors exit 2."""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest

import wsraw
from helpers import HOST, run_broker_cmd

KEY = "streamkey-0123456789abcdef"
RULES = json.dumps([
    {"pattern": "auction.>", "stream": {"size": 1000, "ttl": "1h"}, "publisher": True},
    {"pattern": "chat.>", "history": {"size": 10}},
])
SMALL = json.dumps([{"pattern": "auction.>", "stream": {"size": 3}}])
SAFE = ["--port", "0", "--host", "127.0.0.1"]


def pub_ack(c: wsraw.Conn, topic: str, data, id: int) -> dict:
    c.send_json({"type": "publish", "topic": topic, "data": data, "id": id})
    ack = c.recv_json()
    assert ack["type"] == "ack" and ack["id"] == id, ack
    return ack


def sub_ack(c: wsraw.Conn, req: dict) -> dict:
    c.send_json(req)
    ack = c.recv_json()
    assert ack.get("type") == "ack" and ack.get("id") == req["id"], ack
    return ack


def nothing_more(c: wsraw.Conn, id: int = 999):
    c.send_json({"type": "ping", "id": id})
    m = c.recv_json()
    assert m == {"type": "pong", "id": id}, m


def resp_publish(port: int, topic: str, data: str) -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as s:
        out = b""
        for args in (["AUTH", KEY], ["PUBLISH", topic, data]):
            frame = f"*{len(args)}\r\n".encode()
            for a in args:
                b = a.encode()
                frame += b"$%d\r\n%s\r\n" % (len(b), b)
            s.sendall(frame)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(4096)
                assert chunk, "RESP connection closed"
                reply += chunk
            out += reply
        return out


def test_wildcard_recovers_missed_messages_of_several_topics_from_every_ingress(broker_factory):
    b = broker_factory("--topics", RULES, "--api-keys", f"{KEY}:auction.> name=backend",
                       "--workers", "2", resp=True)
    pub = b.raw_ws()
    c = b.raw_ws()
    ack = sub_ack(c, {"type": "subscribe", "topic": "auction.*.bid", "id": 1})
    # The position of the stream, before anything was published.
    assert ack["stream"] == "auction.>" and ack["seq"] == 0 and len(ack["epoch"]) == 12, ack
    assert "recovered" not in ack, ack
    epoch = ack["epoch"]
    assert pub_ack(pub, "auction.a1.bid", 10, 1)["seq"] == 1
    m = c.recv_json()
    assert (m["topic"], m["seq"], m["epoch"], m["data"]) == ("auction.a1.bid", 1, epoch, 10), m
    assert m["from"]["client"] is not None, m
    c.close()
    # Missed: several topics, some not matching the wildcard, three ingresses.
    assert pub_ack(pub, "auction.a2.bid", 20, 2)["seq"] == 2
    assert pub_ack(pub, "auction.a1.ask", 30, 3)["seq"] == 3  # not auction.*.bid
    r = b.post("/api/publish", {"topic": "auction.a1.bid", "data": 40},
               headers={"Authorization": f"Bearer {KEY}"})
    assert r.status == 200 and r.json()["seq"] == 4, r
    assert resp_publish(b.resp_port, "auction.a3.bid", "50").startswith(b"+OK\r\n:5")
    assert pub_ack(pub, "auction.a3.x.bid", 60, 4)["seq"] == 6  # two tokens: not matching
    d = b.raw_ws()
    ack = sub_ack(d, {"type": "subscribe", "topic": "auction.*.bid", "id": 2,
                      "since": {"epoch": epoch, "seq": 1}})
    assert ack == {"type": "ack", "id": 2, "seq": 6, "epoch": epoch, "stream": "auction.>",
                   "recovered": True}, ack
    replay = [d.recv_json() for _ in range(3)]
    # Exactly the missed matching ones, in stream order: seq jumps are normal.
    assert [(m["topic"], m["seq"], m["data"]) for m in replay] == [
        ("auction.a2.bid", 2, 20), ("auction.a1.bid", 4, 40), ("auction.a3.bid", 5, 50)], replay
    assert all(m["epoch"] == epoch for m in replay), replay
    # The log keeps who published: the WebSocket client, the API key's name.
    assert replay[1]["from"] == {"client": None, "user": "backend"}, replay
    assert replay[2]["from"] == {"client": None, "user": "backend"}, replay
    assert pub_ack(pub, "auction.a9.bid", 70, 5)["seq"] == 7
    live = d.recv_json()
    assert (live["topic"], live["seq"]) == ("auction.a9.bid", 7), live
    nothing_more(d)


@pytest.mark.broker_args("--topics", RULES)
def test_exact_topic_and_history_in_a_stream(broker):
    pub = broker.raw_ws()
    epoch = None
    for i, t in enumerate(["auction.a1.bid", "auction.a2.bid", "auction.a1.bid",
                           "auction.a1.ask", "auction.a1.bid"]):
        pub_ack(pub, t, i, i + 1)
    c = broker.raw_ws()
    ack = sub_ack(c, {"type": "subscribe", "topic": "auction.a1.bid", "id": 1, "history": 2})
    epoch = ack["epoch"]
    assert ack == {"type": "ack", "id": 1, "seq": 5, "epoch": epoch, "stream": "auction.>"}, ack
    # history N: the last N messages of the log that match the subscription.
    assert [c.recv_json()["seq"] for _ in range(2)] == [3, 5]
    nothing_more(c)
    d = broker.raw_ws()
    ack = sub_ack(d, {"type": "subscribe", "topic": "auction.a1.bid", "id": 2,
                      "since": {"epoch": epoch, "seq": 0}})
    assert ack["recovered"] is True and ack["stream"] == "auction.>", ack
    assert [d.recv_json()["seq"] for _ in range(3)] == [1, 3, 5]
    nothing_more(d)
    e = broker.raw_ws()
    ack = sub_ack(e, {"type": "subscribe", "topic": "auction.>", "id": 3, "history": 100})
    assert [e.recv_json()["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]
    nothing_more(e)
    # A since at the stream's last seq: recovered, nothing to replay.
    ack = sub_ack(e, {"type": "subscribe", "topic": "auction.*.ask", "id": 4,
                      "since": {"epoch": epoch, "seq": 5}})
    assert ack["recovered"] is True, ack
    nothing_more(e)


@pytest.mark.broker_args("--topics", SMALL)
def test_loss_is_recovered_false_with_nothing_replayed(broker):
    pub = broker.raw_ws()
    for i in range(5):
        pub_ack(pub, f"auction.a{i % 2}.bid", i, i + 1)
    c = broker.raw_ws()
    epoch = sub_ack(c, {"type": "subscribe", "topic": "auction.>", "id": 1})["epoch"]
    # The log holds seqs 3..5: a since of 2 or more is recovered, 1 is not.
    ack = sub_ack(c, {"type": "subscribe", "topic": "auction.a0.bid", "id": 2,
                      "since": {"epoch": epoch, "seq": 2}})
    assert ack["recovered"] is True, ack
    assert [c.recv_json()["seq"] for _ in range(2)] == [3, 5]
    last = 5
    for why in ("trimmed", "other epoch", "in the future"):
        since = {"trimmed": {"epoch": epoch, "seq": last - 4},
                 "other epoch": {"epoch": "000000000000", "seq": last},
                 "in the future": {"epoch": epoch, "seq": last + 1}}[why]
        d = broker.raw_ws()
        ack = sub_ack(d, {"type": "subscribe", "topic": "auction.*.bid", "id": 3, "since": since})
        assert ack["recovered"] is False and ack["stream"] == "auction.>", (why, ack)
        assert ack["seq"] == last and ack["epoch"] == epoch, ack
        nothing_more(d)  # nothing replayed
        last = pub_ack(pub, "auction.a1.bid", "live", 50)["seq"]
        assert d.recv_json()["data"] == "live"  # then live
        c.recv_json()
    assert broker.metric('wsbroker_history_recoveries_total{result="failed"}') == 3


@pytest.mark.broker_args("--topics", json.dumps([{"pattern": "auction.>",
                                                   "stream": {"max_bytes": "1KiB"}}]))
def test_log_is_bounded_by_bytes(broker):
    pub = broker.raw_ws()
    for i in range(20):
        pub_ack(pub, "auction.a.bid", "x" * 200, i + 1)
    c = broker.raw_ws()
    ack = sub_ack(c, {"type": "subscribe", "topic": "auction.>", "id": 1, "history": 100})
    held = []
    nothing_more_id = 77
    c.send_json({"type": "ping", "id": nothing_more_id})
    while True:
        m = c.recv_json()
        if m["type"] == "pong":
            break
        held.append(m["seq"])
    # At most 1 KiB of frames (each is over 200 bytes): the newest few.
    assert 1 <= len(held) <= 4 and held[-1] == 20, held
    assert held == list(range(21 - len(held), 21)), held
    ack = sub_ack(c, {"type": "subscribe", "topic": "auction.>", "id": 2,
                      "since": {"epoch": ack["epoch"], "seq": 1}})
    assert ack["recovered"] is False, ack


@pytest.mark.broker_args("--topics", json.dumps([{"pattern": "auction.>",
                                                   "stream": {"ttl": "1s"}}]))
def test_log_is_bounded_by_ttl(broker):
    pub = broker.raw_ws()
    pub_ack(pub, "auction.a.bid", 1, 1)
    c = broker.raw_ws()
    epoch = sub_ack(c, {"type": "subscribe", "topic": "auction.>", "id": 1})["epoch"]
    # Held at first, then expired (worker 0's heartbeat or the next read):
    # the condition drives the loop, the deadline only bounds it.
    deadline = time.monotonic() + 30
    rid = 2
    while True:
        ack = sub_ack(c, {"type": "subscribe", "topic": "auction.>", "id": rid,
                          "since": {"epoch": epoch, "seq": 0}})
        if ack["recovered"] is False:
            break
        assert c.recv_json()["seq"] == 1
        assert time.monotonic() < deadline, "the stream's ttl never dropped the message"
        rid += 1
        time.sleep(0.1)  # polling pace, not synchronisation
    nothing_more(c)


@pytest.mark.broker_args("--topics", RULES)
def test_since_on_a_pattern_outside_every_stream_is_bad_since(broker):
    c = broker.raw_ws()
    for topic in ("chat.*", ">", "other.>"):
        c.send_json({"type": "subscribe", "topic": topic, "id": 1,
                     "since": {"epoch": "abc", "seq": 1}})
        err = c.recv_json()
        assert err["type"] == "error" and err["code"] == "bad_since" and err["id"] == 1, err
        assert "stream" in err["message"], err
    # ">" is wider than the stream: plain subscribe without a stream position.
    ack = sub_ack(c, {"type": "subscribe", "topic": ">", "id": 2})
    assert ack == {"type": "ack", "id": 2}, ack
    # An exact topic outside the stream keeps its own history seqs.
    pub = broker.raw_ws()
    assert pub_ack(pub, "chat.r1", "x", 3)["seq"] == 1
    assert pub_ack(pub, "auction.z", "x", 4)["seq"] == 1
    assert pub_ack(pub, "chat.r1", "x", 5)["seq"] == 2


@pytest.mark.parametrize("rules,names", [
    ([{"pattern": "auction.>", "stream": {"size": 0}}], ["topics[0].stream.size", "1000000"]),
    ([{"pattern": "auction.>", "stream": {"size": 1000001}}], ["topics[0].stream.size"]),
    ([{"pattern": "a", "stream": {"sizes": 3}}], ["topics[0].stream", '"sizes"']),
    ([{"pattern": "a", "stream": {"ttl": "soon"}}], ["topics[0].stream.ttl"]),
    ([{"pattern": "a", "stream": {"max_bytes": "2GiB"}}], ["topics[0].stream.max_bytes"]),
    ([{"pattern": "a", "stream": {"max_bytes": 10}}], ["topics[0].stream.max_bytes"]),
    ([{"pattern": "a", "stream": 5}], ["topics[0].stream"]),
    ([{"pattern": "a", "stream": {}, "history": {"size": 1}}], ["topics[0]", "stream", "history"]),
])
def test_bad_stream_options_exit_2_naming_the_rule_and_key(rules, names):
    res = run_broker_cmd(SAFE + ["--topics", json.dumps(rules)])
    assert res.returncode == 2, f"exit {res.returncode}, stderr: {res.stderr}"
    for n in names:
        assert n in res.stderr, (n, res.stderr)


PUBLISHERS = ["auction.t0.bid", "auction.t1.bid", "auction.t2.bid", "auction.t0.ask"]
SESSIONS = 60


@pytest.mark.broker_args("--topics", json.dumps([{"pattern": "auction.>",
                                                   "stream": {"size": 100000}}]),
                         "--workers", "4")
def test_switch_over_has_no_gap_and_no_duplicate_under_load(broker):
    """Publishers on four topics pump while sessions recover auction.*.bid
    with `since`: each session receives exactly the matching seqs after its
    since (replay then live), in order, compared with an observer that saw
    the whole stream."""
    observer = broker.raw_ws()
    epoch = sub_ack(observer, {"type": "subscribe", "topic": "auction.>", "id": 1})["epoch"]
    all_msgs = []  # (seq, topic) as the observer saw them
    stop = threading.Event()
    errors = []
    deadline = time.monotonic() + 120

    def pump(topic):
        try:
            c = wsraw.ws_connect(broker.host, broker.port)
            n = 0
            while not stop.is_set() and time.monotonic() < deadline:
                for k in range(20):
                    c.send_json({"type": "publish", "topic": topic, "data": n, "id": n + k + 1})
                for k in range(20):
                    assert c.recv_json(timeout=30)["type"] == "ack"
                n += 20
            c.close()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    def observe():
        try:
            while True:
                m = observer.recv_json(timeout=30)
                if m.get("topic") == "auction.end":
                    return
                all_msgs.append((m["seq"], m["topic"]))
        except Exception as e:
            errors.append(e)

    obs = threading.Thread(target=observe)
    obs.start()
    threads = [threading.Thread(target=pump, args=(t,)) for t in PUBLISHERS]
    for t in threads:
        t.start()
    sessions = []  # (since, [seqs received])
    while len(sessions) < SESSIONS and not errors and time.monotonic() < deadline:
        since = all_msgs[-1][0] - 30 if len(all_msgs) > 40 else 0
        c = wsraw.ws_connect(broker.host, broker.port)
        ack = sub_ack(c, {"type": "subscribe", "topic": "auction.*.bid", "id": 1,
                          "since": {"epoch": epoch, "seq": since}})
        assert ack["recovered"] is True, ack
        got = []
        for _ in range(60):  # replay, then live
            m = c.recv_json(timeout=30)
            assert m["type"] == "message" and m["epoch"] == epoch, m
            got.append(m["seq"])
        sessions.append((since, got))
        c.close()
    stop.set()
    for t in threads:
        t.join(60)
    pub_ack(broker.raw_ws(), "auction.end", 0, 1)
    obs.join(60)
    assert not errors, errors
    assert len(sessions) == SESSIONS
    seqs = [s for s, _ in all_msgs]
    assert seqs == list(range(1, len(seqs) + 1)), "the observer missed part of the stream"
    matching = [s for s, t in all_msgs if t.endswith(".bid")]
    for since, got in sessions:
        want = [s for s in matching if s > since][:len(got)]
        assert got == want, (since, got[:10], want[:10])
