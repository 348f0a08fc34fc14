"""The through-the-proxy pub/sub check shared by tests/deploy (nginx on this
machine) and tests/docker (the docker-compose cluster): subscribers and
publishers all connect to the proxy's WebSocket URL, land on different nodes,
and every subscriber receives every message exactly once, in order per
publisher."""
from __future__ import annotations

import asyncio
import json
import time

from helpers import connect, publish, recv_json


async def _drain_until(ws, pred, deadline):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            m = await recv_json(ws, min(left, 0.5))
        except asyncio.TimeoutError:
            continue
        if m.get("type") == "message" and pred(m):
            return True


async def pubsub_across_nodes(ws_url: str, topic: str, n_clients: int = 3,
                              per_publisher: int = 5, timeout: float = 20.0) -> dict:
    """Returns {"subscribers": [node ids], "publishers": [node ids]}."""
    subs = [await connect(ws_url) for _ in range(n_clients)]
    pubs = []
    try:
        sub_nodes = [s.welcome["node_id"] for s in subs]
        assert len(set(sub_nodes)) >= 2, f"the proxy put every subscriber on one node: {sub_nodes}"
        for i, s in enumerate(subs):
            await s.send(json.dumps({"type": "subscribe", "topic": topic, "id": 1}))
            while (await recv_json(s, 10.0)).get("id") != 1:
                pass
        pubs = [await connect(ws_url) for _ in range(n_clients)]
        pub_nodes = [p.welcome["node_id"] for p in pubs]
        assert any(p != s for p in pub_nodes for s in sub_nodes), (pub_nodes, sub_nodes)

        # A node subscribes in Redis asynchronously after its client's ack:
        # probe from every publisher until every subscriber has heard each one.
        deadline = time.monotonic() + timeout
        probe = 0
        for i, p in enumerate(pubs):
            for s in subs:
                while True:
                    probe += 1
                    await publish(p, topic, {"probe": probe}, id=100000 + probe)
                    if await _drain_until(s, lambda m: m["data"] == {"probe": probe},
                                          min(deadline, time.monotonic() + 1.0)):
                        break
                    assert time.monotonic() < deadline, \
                        f"subscriber on {s.welcome['node_id']} never heard publisher on {pub_nodes[i]}"
        # Every subscriber may still hold probes: the real messages are marked.
        sent = []
        for i, p in enumerate(pubs):
            for j in range(per_publisher):
                data = {"pub": i, "from": pub_nodes[i], "n": j}
                await publish(p, topic, data, id=j + 1)
                sent.append(data)
        for s, node in zip(subs, sub_nodes):
            got = []
            end = time.monotonic() + timeout
            while len(got) < len(sent):
                m = await recv_json(s, max(0.1, end - time.monotonic()))
                if m.get("type") == "message" and "pub" in m["data"]:
                    got.append(m["data"])
            assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, sent)), node
            for i in range(len(pubs)):
                mine = [g["n"] for g in got if g["pub"] == i]
                assert mine == list(range(per_publisher)), (node, i, mine)
        return {"subscribers": sub_nodes, "publishers": pub_nodes}
    finally:
        for w in subs + pubs:
            await w.close()
