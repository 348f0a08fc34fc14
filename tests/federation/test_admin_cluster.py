"""The admin API across a federated cluster (issue 22 item 1, PROTOCOL.md
16): asked on one node, GET /api/topics, GET /api/connections and POST
/api/disconnect cover every node, through the Redis admin bus; `nodes` lists
the nodes that answered. Topics sum their subscribers over the nodes,
connection pages run over the nodes in order, a user is disconnected (4008)
and banned on every node."""
from __future__ import annotations

import asyncio

import wsraw
from helpers import connect, request, run, wait_for
from sectools import jwt_hs256, now

SECRET = "admin-cluster-test-secret-0123456789"
ADMIN_KEY = "cluster-admin-key-0123456789"


def token(sub):
    return jwt_hs256({"sub": sub, "subscribe": [">"], "publish": [">"], "exp": now() + 600}, SECRET)


def admin_get(node, path):
    r = node.get(path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status == 200, r
    return r.json()


def all_nodes_answer(node, path, names):
    """The first calls may not hear every node yet (the bus subscription is
    being confirmed): ask until all answered, bounded."""
    out = {}

    def answered():
        out["body"] = admin_get(node, path)
        return sorted(out["body"]["nodes"]) == sorted(names)

    wait_for(answered, 15.0, 0.05, f"every node answers {path}")
    return out["body"]


def test_topics_connections_and_disconnect_cover_every_node(cluster):
    a, b, c = cluster(3, "--auth-jwt-secret", SECRET, "--admin-keys", ADMIN_KEY)

    async def go():
        alice_a = await connect(a.ws_url + f"?token={token('alice')}")
        bob_b = await connect(b.ws_url + f"?token={token('bob')}")
        alice_c = await connect(c.ws_url + f"?token={token('alice')}")
        anon_c = await connect(c.ws_url)
        everyone = [alice_a, bob_b, alice_c, anon_c]
        for i, ws in enumerate(everyone):
            r = await request(ws, {"type": "subscribe", "topic": "room.1", "id": i + 1})
            assert r["type"] == "ack", r
        r = await request(bob_b, {"type": "subscribe", "topic": "only.b", "id": 9})
        assert r["type"] == "ack", r

        topics = all_nodes_answer(a, "/api/topics", ["A", "B", "C"])
        by_topic = {t["topic"]: t for t in topics["topics"]}
        assert by_topic["room.1"]["subscribers"] == 4, topics
        assert by_topic["only.b"]["subscribers"] == 1, topics
        assert topics["nodes"][0] == "A"  # the node asked answers first

        # Pages of 1 walk every node's connections once, in node order.
        seen, after = [], None
        for _ in range(10):
            page = admin_get(a, "/api/connections?limit=1" + (f"&after={after}" if after else ""))
            assert sorted(page["nodes"]) == ["A", "B", "C"], page
            seen += page["connections"]
            after = page["next"]
            if after is None:
                break
        # Order: node, then worker, then connection (client ids are NODE-WORKER-COUNTER).
        def key(cid):
            node, w, n = cid.rsplit("-", 2)
            return (node, int(w), int(n))

        ids = [ws.welcome["client_id"] for ws in everyone]
        assert [x["client"] for x in seen] == sorted(ids, key=key)
        users = {ws.welcome["client_id"]: ws.welcome["user"] for ws in everyone}
        assert [x["user"] for x in seen] == [users[x["client"]] for x in seen]
        assert [x["node"] for x in seen] == ["A", "B", "C", "C"]

        # Disconnect alice everywhere from node B, with a ban on every node.
        r = b.post("/api/disconnect", {"user": "alice", "ban_s": 600},
                   headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status == 200 and r.json()["disconnected"] == 2, r
        assert sorted(r.json()["nodes"]) == ["A", "B", "C"]
        for ws in (alice_a, alice_c):
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 4008, ws.close_code
        for node in (a, b, c):
            conn = node.conn()
            conn.send(wsraw.upgrade_request("/ws", f"127.0.0.1:{node.port}",
                                            headers={"Authorization": f"Bearer {token('alice')}"}))
            assert wsraw.read_response(conn).status == 403, node.name
            conn.close()
        assert (await request(bob_b, {"type": "ping", "id": 50}))["type"] == "pong"
        for ws in (bob_b, anon_c):
            await ws.close()

    run(go())


def test_shutdown_while_a_request_waits_for_a_silent_node(cluster):
    """A node stopped (SIGSTOP) cannot answer: the node asked waits for it
    (it answered before) up to the timeout. SIGTERM meanwhile must end the
    wait cleanly: exit 0, no sanitizer report (the harness checks both)."""
    import signal
    import socket

    a, b = cluster(2, "--admin-keys", ADMIN_KEY)
    all_nodes_answer(a, "/api/topics", ["A", "B"])  # A now waits for B
    b.signal(signal.SIGSTOP)
    try:
        s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
        s.sendall(f"GET /api/topics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n".encode())
        a.signal(signal.SIGTERM)  # while the request waits for B
        data = b""
        try:
            while True:  # the answer (A alone) or the close, whichever shutdown gives
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        s.close()
        assert data == b"" or data.startswith(b"HTTP/1.1 200"), data[:200]
        assert a.wait_exit() == 0, a.stderr_tail()
        assert "Sanitizer" not in a.stderr_tail()
    finally:
        b.signal(signal.SIGCONT)
