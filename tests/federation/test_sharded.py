"""redis.sharded: Redis 7 sharded pub/sub (SSUBSCRIBE/SPUBLISH) between nodes,
against a real redis-server (a single non-cluster server accepts the sharded
commands). Exact topics travel on shard channels; wildcard subscribers are
served by a classic PUBLISH sent in the same MULTI/EXEC (redis.sharded_patterns,
default true), so a node holding both kinds of subscription for a topic still
delivers each message once; with sharded_patterns false, wildcard
subscriptions are refused."""
from __future__ import annotations

import asyncio
import json
import socket
import time

from helpers import connect, publish, recv_json, run, subscribe, wait_for
from test_federation import (collect, nothing_more, publish_three_ways_and_check, sentinel_via,
                             sentinel_via_redis, until_sentinels)

SHARDED = ("--redis-sharded", "true")
N = 20


def shard_channels(redis_server) -> set:
    r = redis_server.client()
    return {c.decode() for c in r.execute_command("PUBSUB", "SHARDCHANNELS", "wsb:*")
            if c != b"wsb: admin"}  # the admin bus (PROTOCOL.md 16), from each node's start


def wait_shard(redis_server, name, present=True):
    wait_for(lambda: (name in shard_channels(redis_server)) == present, 10.0, 0.02,
             f"shard channel {name} {'present' if present else 'gone'}")


class RawRedis:
    """A RESP2 connection that records what a plain Redis subscriber sees."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, *args):
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.s.sendall(out)

    def read_until(self, *needles: bytes, timeout=10.0) -> bytes:
        """Reads until every needle has arrived; returns what was read."""
        deadline = time.monotonic() + timeout
        data = b""
        while not all(n in data for n in needles):
            left = deadline - time.monotonic()
            assert left > 0, f"no {needles} within {timeout}s in {data!r}"
            self.s.settimeout(left)
            chunk = self.s.recv(65536)
            assert chunk, f"redis closed the connection; read {data!r}"
            data += chunk
        return data

    def close(self):
        self.s.close()


def test_sharded_exactly_once_in_order_from_ws_http_and_resp(redis_server, cluster):
    # No $sys messages: the Redis counters below count these publishes only.
    a, b, c = cluster(3, *SHARDED, "--sys-conn-events", "false", "--sys-stats-interval", "0")

    async def main():
        sub_c = await connect(c.ws_url)
        sub_a = await connect(a.ws_url)
        await subscribe(sub_c, "fed.order", 1)
        await subscribe(sub_a, "fed.order", 1)
        wait_for(lambda: redis_server.shardnumsub("wsb:fed.order") == 2, 10.0, 0.02,
                 "A and C subscribed in Redis")
        assert redis_server.channels() == set(), "exact topics must not use classic channels"
        pub = await publish_three_ways_and_check(a, b, sub_c, sub_a)
        for ws in (sub_c, sub_a, pub):
            await ws.close()

    run(main(), 60)
    # (+1 each for the sentinels)
    assert a.metric("wsbroker_redis_published_total") == 2 * N + 1
    assert c.metric("wsbroker_redis_received_total") == 3 * N + 2
    for n in (a, b, c):
        assert n.metric("wsbroker_redis_dropped_total") == 0


def test_sharded_exact_and_wildcard_subscribers_get_each_message_once(redis_server, cluster):
    """Two publishers on two nodes interleave; on node C one client holds an
    exact subscription and two matching patterns (it gets the shard copy and
    the classic copy back to back: one delivery), another only a pattern,
    and on node B a client only the exact topic."""
    a, b, c = cluster(3, *SHARDED)

    async def main():
        both = await connect(c.ws_url)
        await subscribe(both, "s.t", 1)
        await subscribe(both, "s.*", 2)
        await subscribe(both, "s.>", 3)
        only_pat = await connect(c.ws_url)
        await subscribe(only_pat, "s.*", 1)
        only_exact = await connect(b.ws_url)
        await subscribe(only_exact, "s.t", 1)
        wait_for(lambda: redis_server.shardnumsub("wsb:s.t") == 2, 10.0, 0.02,
                 "B and C subscribed in Redis")
        wait_for(lambda: redis_server.numpat() == 1, 10.0, 0.02, "one glob for s.* and s.>")
        pa = await connect(a.ws_url)
        pb = await connect(b.ws_url)
        for i in range(N):
            await asyncio.gather(publish(pa, "s.t", {"p": "a", "i": i}, i + 1),
                                 publish(pb, "s.t", {"p": "b", "i": i}, i + 1))
        await publish(pa, "s.other", "pattern only", N + 1)
        sentinel_via(a, "s.t")  # one per publishing node, each on both buses
        sentinel_via(b, "s.t")
        for ws, who in ((both, "both"), (only_pat, "pattern"), (only_exact, "exact")):
            # Everything up to both sentinels: a node's sentinel follows its
            # messages on their path, but A's may overtake B's messages, so
            # the messages are not collected by count before the sentinels.
            want = 2 * N + (0 if who == "exact" else 1)
            got = await until_sentinels(ws, 2)
            assert len(got) == want, f"{who}: {len(got)} messages, want {want} (one came twice?)"
            for p in ("a", "b"):
                seq = [m["data"]["i"] for m in got if m["topic"] == "s.t" and m["data"]["p"] == p]
                assert seq == list(range(N)), f"{who} from {p}: {seq}"
        for ws in (both, only_pat, only_exact, pa, pb):
            await ws.close()

    run(main(), 60)


def test_sharded_last_unsubscribe_ends_the_shard_subscription(redis_server, cluster):
    (c,) = cluster(1, *SHARDED)

    async def main():
        s1 = await connect(c.ws_url)
        s2 = await connect(c.ws_url)
        await subscribe(s1, "u.t", 1)
        await subscribe(s2, "u.t", 1)
        wait_shard(redis_server, "wsb:u.t")
        # Barrier, not a pause: once s1's close is through (the gauge drops)
        # a shard subscription made after it is in Redis, so an unsubscribe
        # that close had ordered would be through too.
        before = c.metric("wsbroker_connections")
        await s1.close()
        wait_for(lambda: c.metric("wsbroker_connections") == before - 1, 10.0, 0.02, "s1 closed")
        await subscribe(s2, "u.barrier", 2)
        wait_shard(redis_server, "wsb:u.barrier")
        assert "wsb:u.t" in shard_channels(redis_server), "unsubscribed while a client remains"
        await s2.close()
        wait_shard(redis_server, "wsb:u.t", present=False)

    run(main(), 30)
    assert c.metric("wsbroker_redis_subscriptions") == 0


def test_sharded_redis_restart_resubscribes(redis_server, cluster):
    a, c = cluster(2, *SHARDED)

    async def main():
        sub_c = await connect(c.ws_url)
        await subscribe(sub_c, "r.t", 1)
        wait_shard(redis_server, "wsb:r.t")
        pub = await connect(a.ws_url)
        await publish(pub, "r.t", "before", 1)
        assert [m["data"] for m in await collect(sub_c, 1)] == ["before"]
        redis_server.kill()
        wait_for(lambda: c.health()["redis"] == "degraded", 10.0, 0.02, "C degraded")
        redis_server.start()
        for n in (a, c):
            wait_for(lambda n=n: n.health()["redis"] == "ok", 15.0, 0.05, f"{n.name} ok again")
        wait_shard(redis_server, "wsb:r.t")
        await publish(pub, "r.t", "after", 2)
        assert [m["data"] for m in await collect(sub_c, 1)] == ["after"]
        sentinel_via(a, "r.t")
        assert await nothing_more(sub_c) is None
        for w in (sub_c, pub):
            await w.close()

    run(main(), 60)


def test_sharded_envelopes_straight_from_redis(redis_server, cluster):
    """The node keeps one copy of a MULTI'd SPUBLISH + PUBLISH pair, and
    delivers an identical envelope SPUBLISHed twice twice (a new publish)."""
    (c,) = cluster(1, *SHARDED)

    async def main():
        ws = await connect(c.ws_url)
        await subscribe(ws, "d.t", 1)
        await subscribe(ws, "d.*", 2)
        wait_shard(redis_server, "wsb:d.t")
        wait_for(lambda: redis_server.numpat() == 1, 10.0, 0.02, "the glob")
        r = redis_server.client()
        env = '{"v":1,"node":"X","topic":"d.t","seq":7,"data":1}'
        p = r.pipeline(transaction=True)
        p.execute_command("SPUBLISH", "wsb:d.t", env)
        p.publish("wsb:d.t", env)
        assert p.execute() == [1, 1]
        r.execute_command("SPUBLISH", "wsb:d.t", env)
        r.execute_command("SPUBLISH", "wsb:d.t", env)
        r.publish("wsb:d.t", '{"v":1,"node":"X","topic":"d.t","seq":8,"data":"last"}')
        got = await collect(ws, 4)
        assert [(m["seq"], m["data"]) for m in got] == [(7, 1), (7, 1), (7, 1), (8, "last")]
        # A sentinel on each bus (two publishes): each subscription's path is drained.
        sentinel_via_redis(redis_server, "d.t", 9, "SPUBLISH")
        sentinel_via_redis(redis_server, "d.t", 10)
        assert await nothing_more(ws, 2) is None
        await ws.close()

    run(main(), 30)


def test_sharded_publishes_on_both_buses_unless_patterns_are_off(redis_server, cluster,
                                                                node_class):
    """What a plain Redis subscriber sees of one publish: the shard channel
    always; the classic channel only with sharded_patterns on."""
    a, b = cluster(2, *SHARDED)
    z = node_class(a.workdir, ["--redis-url", redis_server.url, "--node-id", "Z", *SHARDED,
                         "--redis-sharded-patterns", "false"], "Z").start()
    try:
        wait_for(lambda: z.health().get("redis") == "ok", 10.0, 0.02, "Z connected")
        spy = RawRedis(redis_server.port)
        spy.send("SSUBSCRIBE", "wsb:x.t")
        spy.send("PSUBSCRIBE", "wsb:x.*")
        spy.read_until(b"ssubscribe", b"psubscribe")
        assert a.post("/api/publish", {"topic": "x.t", "data": "from-a"}).status == 200
        seen = spy.read_until(b"smessage", b"pmessage")
        assert seen.count(b"from-a") == 2, seen
        assert z.post("/api/publish", {"topic": "x.t", "data": "from-z"}).status == 200
        seen = spy.read_until(b"smessage")
        # A barrier for "no pmessage": Z's two publishes would run in one
        # MULTI/EXEC, so a publish made once its smessage is in comes after both.
        redis_server.client().publish("wsb:x.sentinel", "sentinel")
        seen += spy.read_until(b"wsb:x.sentinel")
        assert b"from-z" in seen and b"pmessage\r\n$7\r\nwsb:x.*\r\n$7\r\nwsb:x.t" not in seen, seen
        assert seen.count(b"pmessage") == 1, seen  # the sentinel's
        spy.close()

        async def main():
            ws = await connect(z.ws_url)
            await ws.send(json.dumps({"type": "subscribe", "topic": "x.*", "id": 1}))
            err = await recv_json(ws)
            assert err["type"] == "error" and err["code"] == "forbidden", err
            assert "sharded_patterns" in err["message"], err
            await subscribe(ws, "x.t", 2)  # exact topics are fine
            await ws.close()

        run(main(), 30)
        resp = z.resp()
        ps = resp.pubsub()
        try:
            ps.psubscribe("x.*")
            msg = ps.get_message(timeout=5)
            raise AssertionError(f"PSUBSCRIBE accepted: {msg}")
        except Exception as e:  # redis.exceptions.ResponseError
            assert "sharded_patterns" in str(e), e
        finally:
            ps.close()
        ps = resp.pubsub()
        ps.psubscribe("x.t")  # no wildcard: an exact topic, allowed
        assert ps.get_message(timeout=5)["type"] == "psubscribe"
        ps.close()
    finally:
        z.stop()
