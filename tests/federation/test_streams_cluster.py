"""Streams across federated nodes (PROTOCOL.md 3.1b), as wsbroker 0.1 ships
them: a stream is kept per node. A message published on a stream topic on
one node reaches the stream's subscribers on every node live, with its
`from` stamp; each node's log, seq and epoch are its own, so a `since` is
answered from the node the subscriber is on and counts that node's
publishes only."""
from __future__ import annotations

import json

import wsraw

RULES = json.dumps([{"pattern": "auction.>", "stream": {"size": 100}, "publisher": True}])


def ack_of(c, req):
    c.send_json(req)
    while True:
        m = c.recv_json()
        if m.get("type") in ("ack", "error") and m.get("id") == req["id"]:
            return m
        assert m.get("type") == "message", m


def test_stream_messages_cross_nodes_live_and_each_node_keeps_its_own_log(cluster):
    a, b = cluster(2, "--topics", RULES)
    remote = wsraw.ws_connect(b.host, b.port)
    pos_b = ack_of(remote, {"type": "subscribe", "topic": "auction.*.bid", "id": 1})
    assert pos_b["stream"] == "auction.>" and pos_b["seq"] == 0, pos_b
    pub = wsraw.ws_connect(a.host, a.port)
    # B's Redis interest may still be on its way: publish until B has one.
    n = 0
    while True:
        n += 1
        assert ack_of(pub, {"type": "publish", "topic": "auction.a1.bid", "data": n,
                            "id": 100 + n})["seq"] == n  # A's stream
        try:
            m = remote.recv_json(timeout=0.5)
            break
        except wsraw.Timeout:
            assert n < 40, "node B never received node A's stream message"
    assert m["topic"] == "auction.a1.bid" and m["from"]["client"] is not None, m
    assert "epoch" not in m, m  # the origin's seq, not a position in B's stream
    # B's own stream: its publishes only.
    pub_b = wsraw.ws_connect(b.host, b.port)
    assert ack_of(pub_b, {"type": "publish", "topic": "auction.a2.bid", "data": "b",
                          "id": 1})["seq"] == 1
    late = wsraw.ws_connect(b.host, b.port)
    ack = ack_of(late, {"type": "subscribe", "topic": "auction.*.bid", "id": 2,
                        "since": {"epoch": pos_b["epoch"], "seq": 0}})
    assert ack["recovered"] is True and ack["seq"] == 1, ack
    r = late.recv_json()
    assert (r["topic"], r["seq"], r["data"], r["epoch"]) == ("auction.a2.bid", 1, "b",
                                                               pos_b["epoch"]), r
    for c in (remote, pub, pub_b, late):
        c.close()
