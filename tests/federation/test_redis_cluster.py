"""redis.cluster: three wsbroker nodes on a real Redis Cluster (3 masters, 3
replicas, started here on loopback). Each topic's shard channel must be
subscribed and published on its slot's master (SSUBSCRIBE/SPUBLISH), messages
cross nodes exactly once and in order whichever master serves the topic, and
after a master is killed its replica takes over and delivery resumes with no
duplicates; the loss window is measured and printed (bench/RESULTS.md)."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

from helpers import connect, recv_json, run, send_json, subscribe, wait_for
from wsbroker_harness import run_broker_cmd, stop_all

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 1000  # cluster-node-timeout: how soon a dead master is failed over


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cluster_port(taken: set) -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 <= 65535 and p not in taken and p + 10000 not in taken and _bindable(p + 10000):
            taken.update({p, p + 10000})
            return p
    raise AssertionError("no free port pair for a cluster node")


class RedisCluster:
    """Six redis-server --cluster-enabled processes joined by redis-cli --cluster create."""

    def __init__(self, workdir, extra=()):
        self.workdir = workdir
        self.extra = list(extra)
        taken: set = set()
        self.ports = [cluster_port(taken) for _ in range(6)]
        self.procs: dict[int, subprocess.Popen] = {}

    def start(self) -> "RedisCluster":
        for p in self.ports:
            d = self.workdir / f"rc-{p}"
            d.mkdir()
            log = open(d / "redis.log", "ab")
            self.procs[p] = subprocess.Popen(
                [REDIS_BIN, "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout",
                 str(NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0",
                 "--repl-diskless-sync-delay", "0", "--save", "", "--appendonly", "no",
                 "--daemonize", "no",
                 "--dir", str(d), *self.extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
        for p in self.ports:
            wait_for(lambda p=p: self._ping(p), 10.0, 0.02, f"redis-server {p} up")
        res = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
             "--cluster-replicas", "1", "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        assert res.returncode == 0, res.stdout.decode()[-3000:]
        self.wait_ok()
        # A replica takes over only once it has synced with its master.
        def synced():
            roles = [self.client(p).info("replication") for p in self.ports]
            return sum(1 for r in roles if r.get("role") == "slave" and
                       r.get("master_link_status") == "up") == 3
        wait_for(synced, 30.0, 0.05, "three replicas in sync")
        return self

    def _ping(self, p) -> bool:
        if self.procs[p].poll() is not None:
            raise AssertionError(f"redis-server {p} exited with {self.procs[p].returncode}")
        try:
            return self.client(p).ping()
        except redis.exceptions.ConnectionError:
            return False

    def client(self, port) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def alive(self) -> list:
        return [p for p in self.ports if self.procs[p].poll() is None]

    def state_ok(self, port) -> bool:
        try:
            info = self.client(port).execute_command("CLUSTER", "INFO").decode()
        except redis.exceptions.RedisError:
            return False
        return "cluster_state:ok" in info

    def wait_ok(self, timeout=30.0) -> None:
        """Every live node says cluster_state:ok and all agree on three masters."""
        def ok():
            return all(self.state_ok(p) for p in self.alive()) and all(
                len(self.masters(p)) == 3 for p in self.alive())
        wait_for(ok, timeout, 0.05, "cluster_state:ok on every node")

    def masters(self, via=None) -> dict:
        """{port: [(start, end), ...]} from CLUSTER SLOTS, asked of `via`."""
        via = via or self.alive()[0]
        out: dict = {}
        for start, end, master, *_ in self.client(via).execute_command("CLUSTER", "SLOTS"):
            out.setdefault(int(master[1]), []).append((int(start), int(end)))
        return out

    def keyslot(self, name: str) -> int:
        return int(self.client(self.alive()[0]).execute_command("CLUSTER", "KEYSLOT", name))

    def master_of(self, name: str) -> int:
        slot = self.keyslot(name)
        for port, ranges in self.masters().items():
            if any(a <= slot <= b for a, b in ranges):
                return port
        raise AssertionError(f"no master serves slot {slot}")

    def shardnumsub(self, port, channel) -> int:
        return int(self.client(port).execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])

    def kill(self, port) -> None:
        os.kill(self.procs[port].pid, signal.SIGKILL)
        self.procs[port].wait(timeout=10)

    def stop(self) -> None:
        for p, proc in self.procs.items():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def redis_cluster(tmp_path):
    rc = RedisCluster(tmp_path)
    try:
        rc.start()
        yield rc
    finally:
        rc.stop()


@pytest.fixture
def nodes(tmp_path, redis_cluster, node_class):
    started = []

    def start(n=3, *extra):
        seeds = ",".join(f"127.0.0.1:{p}" for p in redis_cluster.ports[:3])
        for name in "ABC"[:n]:
            node = node_class(tmp_path, ["--redis-cluster", seeds, "--node-id", name,
                                         "--redis-reconnect-max", "200ms",
                                         "--sys-conn-events", "false",
                                         "--sys-stats-interval", "0", *extra], name)
            started.append(node)
            node.start()
        for node in started:
            wait_for(lambda node=node: node.health().get("redis") == "ok", 15.0, 0.05,
                     f"node {node.name} connected to the redis cluster")
        return started

    yield start
    failures = stop_all(started)
    if failures:
        pytest.fail("node teardown failed:\n" + "\n".join(failures), pytrace=False)


def chan(topic: str) -> str:
    """A topic's shard channel on a Redis Cluster: the topic is its hash tag
    ('%' and '}' escaped), so its history/stream keys share the slot."""
    return "wsb:{" + topic.replace("%", "%25").replace("}", "%7D") + "}"


def topics_on_every_master(rc: RedisCluster, per_master: int) -> dict:
    """{topic: master port}: `per_master` topics for each of the three masters."""
    by_master: dict = {p: [] for p in rc.masters()}
    i = 0
    while min(len(v) for v in by_master.values()) < per_master:
        t = f"rc.t{i}"
        m = rc.master_of(chan(t))
        if len(by_master[m]) < per_master:
            by_master[m].append(t)
        i += 1
    return {t: m for m, ts in by_master.items() for t in ts}


async def collect(ws, want: int, timeout: float) -> list:
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {want} messages"
        m = await recv_json(ws, left)
        if m.get("type") == "message":
            got.append(m)
    return got


def test_cluster_exactly_once_in_order_on_every_master(redis_cluster, nodes):
    a, b, c = nodes(3)
    topics = topics_on_every_master(redis_cluster, 3)
    assert len(set(topics.values())) == 3, topics  # every master serves some of them
    n = 30

    async def main():
        subs = [await connect(a.ws_url), await connect(c.ws_url)]
        for ws in subs:
            for i, t in enumerate(sorted(topics)):
                await subscribe(ws, t, i + 1)
        # Each shard channel is subscribed by A and C on its slot's master, and
        # on no other master.
        for t, master in topics.items():
            wait_for(lambda t=t, m=master: redis_cluster.shardnumsub(m, chan(t)) == 2, 15.0,
                     0.05, f"A and C subscribed to {t} on master {master}")
        pub = await connect(b.ws_url)
        k = 0
        for i in range(n):
            for t in sorted(topics):
                k += 1
                await send_json(pub, {"type": "publish", "topic": t, "data": {"i": i}})
        for ws in subs:
            got = await collect(ws, n * len(topics), 30)
            per = {}
            for m in got:
                per.setdefault(m["topic"], []).append(m["data"]["i"])
            assert per == {t: list(range(n)) for t in topics}, per
        await asyncio.sleep(0)
        for ws in subs:  # nothing more: a ping's pong comes after any stray copy
            await send_json(ws, {"type": "ping", "id": 77})
            m = await recv_json(ws, 10)
            assert m == {"type": "pong", "id": 77}, m
        # Every master carried its topics' messages.
        for ws in [*subs, pub]:
            await ws.close()

    run(main(), 120)
    for master in set(topics.values()):
        stats = redis_cluster.client(master).info("stats")
        assert stats.get("total_commands_processed", 0) > 0
    for t, master in topics.items():
        for other in redis_cluster.masters():
            if other != master:
                assert redis_cluster.shardnumsub(other, chan(t)) == 0


def test_cluster_refuses_wildcards(redis_cluster, nodes):
    (a,) = nodes(1)

    async def main():
        ws = await connect(a.ws_url)
        await send_json(ws, {"type": "subscribe", "topic": "rc.*", "id": 1})
        err = await recv_json(ws)
        assert err["type"] == "error" and err["code"] == "forbidden", err
        assert "redis.cluster" in err["message"], err
        await ws.close()

    run(main(), 30)


def test_cluster_failover_resumes_without_duplicates(redis_cluster, nodes):
    a, b, c = nodes(3)
    topics = topics_on_every_master(redis_cluster, 1)
    by_master = {m: t for t, m in topics.items()}
    victim = sorted(by_master)[0]
    doomed = by_master[victim]  # its master is killed
    before = redis_cluster.masters()

    async def main():
        sub = await connect(c.ws_url)
        for i, t in enumerate(sorted(topics)):
            await subscribe(sub, t, i + 1)
        for t, m in topics.items():
            wait_for(lambda t=t, m=m: redis_cluster.shardnumsub(m, chan(t)) == 1, 15.0, 0.05,
                     f"C subscribed to {t}")
        pub = await connect(b.ws_url)
        received: dict = {t: [] for t in topics}
        sent_at: dict = {}
        state = {"killed_at": None, "i": 0}

        async def reader():
            while True:
                m = await recv_json(sub, 60)
                if m.get("type") == "message":
                    received[m["topic"]].append(m["data"]["i"])

        async def writer():
            # Publishes every topic every 5 ms until the doomed topic's
            # messages flow again after the kill (bounded by the run's timeout).
            while True:
                i = state["i"]
                sent_at[i] = time.monotonic()
                for t in sorted(topics):
                    await send_json(pub, {"type": "publish", "topic": t, "data": {"i": i}})
                state["i"] += 1
                if i == 50:
                    redis_cluster.kill(victim)
                    state["killed_at"] = time.monotonic()
                k = state["killed_at"]
                if k is not None:
                    after = [x for x in received[doomed] if sent_at[x] > k]
                    if len(after) >= 20:
                        return
                await asyncio.sleep(0.005)

        rtask = asyncio.ensure_future(reader())
        await writer()
        last = state["i"] - 1
        # Drain: every topic has its last message in.
        deadline = time.monotonic() + 30
        while any(not v or v[-1] != last for v in received.values()):
            assert time.monotonic() < deadline, {t: v[-3:] for t, v in received.items()}
            await asyncio.sleep(0.02)
        rtask.cancel()
        for t, got in received.items():
            assert got == sorted(set(got)), f"{t}: duplicates or reordering: {got}"
        for t in topics:
            if t != doomed:
                # A surviving master's topics may lose a message or two to
                # the shared publishing path only while nodes refresh; they
                # keep their order and have no duplicates (checked above).
                assert received[t][0] == 0
        lost = sorted(set(range(last + 1)) - set(received[doomed]))
        window_ms = 0.0
        if lost:
            window_ms = (sent_at[lost[-1]] - sent_at[lost[0]]) * 1000 + 5
        print(f"\nfailover: killed master {victim}; {len(lost)} of {last + 1} messages of "
              f"{doomed} lost, loss window {window_ms:.0f} ms "
              f"(cluster-node-timeout {NODE_TIMEOUT_MS} ms)")
        for ws in (sub, pub):
            await ws.close()

    try:
        run(main(), 100)
    except BaseException:
        print("---- C ----\n" + "\n".join(l for l in c.stderr().splitlines() if "connect failed" not in l)[-5000:])
        raise
    after = redis_cluster.masters()
    assert victim in before and victim not in after, (before, after)
    redis_cluster.wait_ok()


@pytest.mark.parametrize("extra,names", [
    (["--redis-url", "redis://127.0.0.1:6379"], ["redis.cluster", "redis.url"]),
])
def test_cluster_config_conflicts_exit_2(extra, names):
    res = run_broker_cmd(["--check-config", "--redis-cluster", "127.0.0.1:7000", *extra])
    assert res.returncode == 2, res.stderr
    for n in names:
        assert n in res.stderr, res.stderr


def test_cluster_bad_seed_exits_2():
    res = run_broker_cmd(["--check-config", "--redis-cluster", "127.0.0.1"])
    assert res.returncode == 2 and "redis.cluster" in res.stderr, res.stderr


def test_cluster_presence_across_nodes(redis_cluster, nodes):
    """Presence travels on one shard channel ("wsb: presence", on its slot's
    master): members on every node are seen from every node, and one that
    leaves on one node is gone on the other."""
    from test_presence_cluster import RULES, member, subscribe as psub, until_members

    a, b, _ = nodes(3, "--topics", RULES)
    bus_master = redis_cluster.master_of("wsb: presence")
    wait_for(lambda: redis_cluster.shardnumsub(bus_master, "wsb: presence") == 3, 15.0, 0.05,
             "three nodes on the presence bus's master")

    async def main():
        wa = await connect(a.ws_url)
        wb = await connect(b.ws_url)
        await psub(wa, "chat.room", 1)
        await psub(wb, "chat.room", 1)
        both = [member(wa), member(wb)]
        await until_members(wa, "chat.room", both)
        await until_members(wb, "chat.room", both)
        await wb.close()
        await until_members(wa, "chat.room", [member(wa)])
        await wa.close()

    run(main(), 60)


def test_cluster_request_on_a_answered_on_c(redis_cluster, nodes):
    """Request/reply across nodes: the request on the topic's shard channel,
    the reply on the requester node's inbox channel (its own slot)."""
    a, _, c = nodes(3)

    async def main():
        responder = await connect(c.ws_url)
        await subscribe(responder, "dev.c7.cmd", 1)
        master = redis_cluster.master_of(chan("dev.c7.cmd"))
        wait_for(lambda: redis_cluster.shardnumsub(master, chan("dev.c7.cmd")) == 1, 15.0, 0.05,
                 "C subscribed to dev.c7.cmd")
        req = await connect(a.ws_url)
        await send_json(req, {"type": "request", "topic": "dev.c7.cmd", "data": {"op": "on"},
                              "id": 7, "timeout_ms": 30000})
        m = await recv_json(responder, 10)
        assert m["type"] == "message" and m["data"] == {"op": "on"}, m
        await send_json(responder, {"type": "publish", "topic": m["reply_to"], "data": {"ok": 1}})
        r = await recv_json(req, 10)
        assert r["type"] == "reply" and r["id"] == 7 and r["data"] == {"ok": 1}, r
        for ws in (responder, req):
            await ws.close()

    run(main(), 60)


def test_cluster_slot_moved_follows_moved_and_resubscribes(redis_cluster, nodes):
    """Resharding: the slot of a subscribed topic moves to another master.
    The subscribing node (C) is dropped by the old master (an unsolicited
    sunsubscribe) and subscribes again on the new one; the publishing node
    (B) still routes to the old master, gets -MOVED and sends the message
    again to the new one: delivered once, nothing dropped."""
    _, b, c = nodes(3)
    topic = "rc.mv"
    ch = chan(topic)
    slot = redis_cluster.keyslot(ch)
    src = redis_cluster.master_of(ch)
    dst = next(p for p in sorted(redis_cluster.masters()) if p != src)
    ids = {p: redis_cluster.client(p).execute_command("CLUSTER", "MYID").decode()
           for p in (src, dst)}

    async def main():
        sub = await connect(c.ws_url)
        await subscribe(sub, topic, 1)
        wait_for(lambda: redis_cluster.shardnumsub(src, ch) == 1, 15.0, 0.05,
                 "C subscribed on the slot's master")
        pub = await connect(b.ws_url)
        await send_json(pub, {"type": "publish", "topic": topic, "data": 0})
        assert (await recv_json(sub, 10))["data"] == 0  # B's map knows the slot now
        # Move the (keyless) slot from src to dst, as redis-cli --cluster reshard does.
        redis_cluster.client(dst).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
        redis_cluster.client(src).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
        for p in redis_cluster.masters():
            redis_cluster.client(p).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[dst])
        wait_for(lambda: redis_cluster.shardnumsub(dst, ch) == 1, 15.0, 0.05,
                 "C subscribed again on the slot's new master")
        for i in range(1, 11):
            await send_json(pub, {"type": "publish", "topic": topic, "data": i})
        got = [(await recv_json(sub, 10))["data"] for _ in range(10)]
        assert got == list(range(1, 11)), got
        await send_json(sub, {"type": "ping", "id": 5})
        assert await recv_json(sub, 10) == {"type": "pong", "id": 5}  # no duplicate before it
        for ws in (sub, pub):
            await ws.close()

    run(main(), 60)
    assert b.metric("wsbroker_redis_dropped_total") == 0


def test_cluster_topology_read_does_not_stall_the_bridge(tmp_path, node_class):
    """Reading the topology (CLUSTER SLOTS) runs on the bridge loop, not
    blocking it: with a slot served by no master (require-full-coverage off)
    every refresh, every 200 ms, goes on to the seeds, twenty of which accept
    and never answer. Messages still cross from B to C one after the other
    at once; a blocking read stalled both bridges 500 ms per hung seed."""
    hung = []
    started = []
    rc = None
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen(1024)  # the kernel completes the handshakes; nobody answers
            hung.append(s)
        rc = RedisCluster(tmp_path, ["--cluster-require-full-coverage", "no"])  # ports not hung's
        rc.start()
        seeds = ",".join([f"127.0.0.1:{rc.ports[0]}"] +
                         [f"127.0.0.1:{s.getsockname()[1]}" for s in hung])
        for name in "BC":
            node = node_class(tmp_path, ["--redis-cluster", seeds, "--node-id", name,
                                         "--sys-conn-events", "false",
                                         "--sys-stats-interval", "0"], name)
            started.append(node)
            node.start()
        for node in started:
            wait_for(lambda node=node: node.health().get("redis") == "ok", 15.0, 0.05,
                     f"node {node.name} connected to the redis cluster")
        b, c = started
        topic = "rc.live"

        async def main():
            sub = await connect(c.ws_url)
            await subscribe(sub, topic, 1)
            master = rc.master_of(chan(topic))
            wait_for(lambda: rc.shardnumsub(master, chan(topic)) == 1, 15.0, 0.05,
                     "C subscribed")
            # One slot (not the topic's) loses its master on every node's view.
            orphan = (rc.keyslot(chan(topic)) + 1) % 16384
            for p in rc.ports:
                rc.client(p).execute_command("CLUSTER", "DELSLOTS", orphan)
            for node in started:  # they read the incomplete topology: refreshes go to the seeds
                wait_for(lambda node=node: node.health().get("redis") == "degraded", 30.0, 0.05,
                         f"node {node.name} sees a slot without a master")
            pub = await connect(b.ws_url)
            for i in range(5):
                await send_json(pub, {"type": "publish", "topic": topic, "data": i})
                m = await recv_json(sub, 3)
                assert m["type"] == "message" and m["data"] == i, m
            for ws in (sub, pub):
                await ws.close()

        run(main(), 90)
    finally:
        failures = stop_all(started)
        if rc is not None:
            rc.stop()
        for s in hung:
            s.close()
    assert not failures, failures
