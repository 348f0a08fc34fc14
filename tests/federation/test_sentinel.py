"""Federation through Redis Sentinel (issue 21 item 2): two nodes find the
master through three sentinels (redis.sentinels, redis.master_name), follow
a failover (SENTINEL FAILOVER, then the master killed with SIGKILL) to the
promoted replica, and deliver across nodes again: no duplicates, in order,
/healthz and /metrics naming the new master. The longest silence a remote
subscriber saw during the failover is printed (docs/deploy.md quotes it).

Everything runs on 127.0.0.1 with free ports: 1 master, 1 replica and 3
sentinels (`redis-server sentinel.conf --sentinel`, quorum 2), started here
and stopped by PID."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from helpers import connect, recv_json, run, subscribe, wait_for
from wsbroker_harness import stop_all

REDIS_BIN = "/usr/bin/redis-server"
NAME = "wsbmaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A redis-server (data node or sentinel) on 127.0.0.1, stopped by PID."""

    def __init__(self, workdir: Path, port: int, args: list):
        self.port = port
        log = open(workdir / f"redis-{port}.log", "ab")
        self.proc = subprocess.Popen([REDIS_BIN, *args], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=workdir)
        log.close()
        wait_for(self._up, 10.0, 0.02, f"redis on port {port}")

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server on {self.port} exited {self.proc.returncode}")
        try:
            return self.client().ping()
        except redis.exceptions.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def data_node(workdir: Path, replica_of: int | None = None) -> Proc:
    port = free_port()
    d = workdir / f"data-{port}"
    d.mkdir()
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(d)]
    if replica_of is not None:
        args += ["--replicaof", "127.0.0.1", str(replica_of)]
    return Proc(workdir, port, args)


def sentinel(workdir: Path, master_port: int) -> Proc:
    port = free_port()
    d = workdir / f"sentinel-{port}"
    d.mkdir()
    conf = d / "sentinel.conf"  # rewritten by the sentinel: its own file
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {d}\n"
        f"sentinel monitor {NAME} 127.0.0.1 {master_port} 2\n"
        f"sentinel down-after-milliseconds {NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {NAME} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {NAME} 1\n")
    return Proc(workdir, port, [str(conf), "--sentinel"])


class Topology:
    def __init__(self, workdir: Path):
        self.master = data_node(workdir)
        self.replica = data_node(workdir, replica_of=self.master.port)
        self.sentinels = [sentinel(workdir, self.master.port) for _ in range(3)]

    def all(self):
        return [*self.sentinels, self.replica, self.master]

    def wait_settled(self) -> None:
        """Every sentinel knows the other two and the replica in sync: a
        failover can elect a leader and has a replica to promote."""
        def settled():
            for s in self.sentinels:
                c = s.client()
                if len(c.execute_command("SENTINEL", "SENTINELS", NAME)) < 2:
                    return False
                reps = c.execute_command("SENTINEL", "REPLICAS", NAME)
                ok = [r for r in reps if _field(r, "flags") == "slave"
                      and _field(r, "master-link-status") == "ok"]
                if not ok:
                    return False
            return True
        wait_for(settled, 40.0, 0.1, "sentinels to discover each other and the replica")

    def master_addr(self) -> str:
        host, port = self.sentinels[0].client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)
        return f"{host.decode()}:{port.decode()}"

    def stop(self) -> None:
        for p in self.all():
            p.stop()


def _field(flat, key):
    """A field of a SENTINEL REPLICAS entry (a flat list of name, value)."""
    if isinstance(flat, dict):
        v = flat.get(key) or flat.get(key.encode())
        return v.decode() if isinstance(v, bytes) else v
    it = iter(flat)
    for k, v in zip(it, it):
        if (k.decode() if isinstance(k, bytes) else k) == key:
            return v.decode() if isinstance(v, bytes) else v
    return None


@pytest.fixture
def sentinel_cluster(tmp_path, node_class):
    topo = Topology(tmp_path)
    nodes = []

    def start(n=2, *extra):
        topo.wait_settled()
        sentinels = ",".join(s.addr for s in topo.sentinels)
        for name in "AB"[:n]:
            node = node_class(tmp_path, ["--redis-sentinels", sentinels, "--redis-master-name",
                                         NAME, "--node-id", name, "--redis-reconnect-max",
                                         "500ms", "--sys-conn-events", "false",
                                         "--sys-stats-interval", "0", *extra], name)
            nodes.append(node)
            node.start()
        for node in nodes:
            wait_for(lambda node=node: node.health().get("redis") == "ok", 15.0, 0.02,
                     f"node {node.name} connected to the master")
        return nodes

    yield topo, start
    failures = stop_all(nodes)
    topo.stop()
    if failures:
        pytest.fail("node teardown failed:\n" + "\n".join(failures), pytrace=False)


def server_of(node) -> dict:
    return node.health().get("redis_server", {})


def server_metric(node) -> str:
    """The addr label of wsbroker_redis_server_info."""
    for name, v in node.metrics().items():
        if name.startswith("wsbroker_redis_server_info{") and v == 1:
            assert 'mode="sentinel"' in name, name
            return name.split('addr="', 1)[1].split('"', 1)[0]
    return ""


async def failover_run(a, b, trigger, new_master):
    """Messages published on A every few milliseconds while `trigger()`
    fails the master over; B's subscriber sees them. Returns the longest
    silence at B (ms). Checks: B's messages unique and in order, A's local
    subscriber all of them, both nodes on `new_master()` afterwards."""
    sub_b = await connect(b.ws_url)
    sub_a = await connect(a.ws_url)
    await subscribe(sub_b, "so.t", 1)
    await subscribe(sub_a, "so.t", 1)
    pub = await connect(a.ws_url)
    got_b: list = []  # (i, time received)
    got_a: list = []
    state = {"i": 0, "stop": False}

    async def produce():
        while not state["stop"]:
            state["i"] += 1
            await pub.send('{"type":"publish","topic":"so.t","data":%d}' % state["i"])
            await asyncio.sleep(0.005)  # pacing only: the loop ends on a condition

    async def consume(ws, out):
        while True:
            m = await recv_json(ws, 60)
            if m.get("type") == "message":
                out.append((m["data"], time.monotonic()))

    tasks = [asyncio.create_task(produce()), asyncio.create_task(consume(sub_b, got_b)),
             asyncio.create_task(consume(sub_a, got_a))]
    loop = asyncio.get_running_loop()

    async def until(pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not await loop.run_in_executor(None, pred):
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            for t in tasks:
                if t.done():
                    t.result()
            await asyncio.sleep(0.02)

    # Flowing across nodes before the failover.
    await until(lambda: len(got_b) >= 20, 20, "B to receive from A")
    old = server_of(a)["addr"]
    await loop.run_in_executor(None, trigger)
    target = await loop.run_in_executor(None, new_master)
    assert target != old
    for n in (a, b):
        await until(lambda n=n: server_of(n).get("addr") == target and
                    n.health().get("redis") == "ok", 40, f"{n.name} on the new master")
    # Flowing again: something published after both moved reaches B.
    mark = state["i"]
    await until(lambda: got_b and got_b[-1][0] > mark, 20, "B to receive after the failover")
    state["stop"] = True
    await tasks[0]
    last = state["i"]
    await until(lambda: got_a and got_a[-1][0] == last, 20, "A's local subscriber to catch up")
    await until(lambda: got_b and got_b[-1][0] == last, 20, "B to get the last message")
    for t in tasks[1:]:
        t.cancel()
    ids_b = [i for i, _ in got_b]
    assert len(ids_b) == len(set(ids_b)), "duplicates at B"
    assert ids_b == sorted(ids_b), "out of order at B"
    assert [i for i, _ in got_a] == list(range(1, last + 1)), "A's local delivery lost some"
    for n in (a, b):
        assert server_metric(n) == target
        assert server_of(n)["mode"] == "sentinel" and server_of(n)["master_name"] == NAME
    times = [t for _, t in got_b]
    gap_ms = max((t1 - t0) * 1000 for t0, t1 in zip(times, times[1:]))
    print(f"\nsentinel failover: longest silence at the remote subscriber {gap_ms:.0f} ms; "
          f"{last} published, {len(ids_b)} delivered across nodes, {last - len(ids_b)} lost")
    for w in (sub_a, sub_b, pub):
        await w.close()
    return gap_ms


def test_nodes_find_the_master_through_the_sentinels(sentinel_cluster):
    topo, start = sentinel_cluster
    a, b = start(2)
    for n in (a, b):
        s = server_of(n)
        assert s == {"mode": "sentinel", "addr": topo.master.addr, "master_name": NAME}, s
        assert server_metric(n) == topo.master.addr
    # Subscribed on the master (each node's inbox channel), nothing on the replica.
    assert topo.master.client().pubsub_channels("wsb:*")
    assert topo.replica.client().pubsub_channels("wsb:*") == []


def test_forced_failover_moves_both_nodes(sentinel_cluster):
    topo, start = sentinel_cluster
    a, b = start(2)

    def trigger():
        topo.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", NAME)

    def new_master():
        wait_for(lambda: topo.master_addr() == topo.replica.addr, 30.0, 0.05,
                 "the sentinels to promote the replica")
        return topo.replica.addr

    gap = run(failover_run(a, b, trigger, new_master), 90)
    assert gap > 0
    # The old master is made a replica of the new one, and stays unused.
    wait_for(lambda: topo.master.client().execute_command("ROLE")[0] == b"slave", 30.0, 0.05,
             "the old master to be reconfigured as a replica")
    assert topo.master.client().pubsub_channels("wsb:*") == []
    for n in (a, b):
        assert server_of(n)["addr"] == topo.replica.addr


def test_master_killed_then_replica_promoted(sentinel_cluster):
    topo, start = sentinel_cluster
    a, b = start(2)

    def new_master():
        wait_for(lambda: topo.master_addr() == topo.replica.addr, 40.0, 0.05,
                 "the sentinels to promote the replica")
        return topo.replica.addr

    gap = run(failover_run(a, b, topo.master.kill, new_master), 90)
    assert gap >= DOWN_AFTER_MS * 0.5  # the master was really gone for a while


# ---- configuration: exit 2 naming the key ---------------------------------------------------

SAFE = ["--port", "0", "--host", "127.0.0.1"]
S3 = "127.0.0.1:26379,[::1]:26380,sentinel-3.example:26381"


@pytest.mark.parametrize("args,key", [
    (["--redis-sentinels", S3, "--redis-master-name", "m", "--redis-url", "redis://x"],
     "redis.sentinels"),
    (["--redis-sentinels", S3], "redis.master_name"),
    (["--redis-master-name", "m"], "redis.master_name"),
    (["--redis-sentinel-password", "p"], "redis.sentinel_password"),
    (["--redis-password", "p"], "redis.password"),
    (["--redis-url", "redis://127.0.0.1:1", "--redis-password", "p"], "redis.password"),
    (["--redis-sentinels", S3, "--redis-master-name", "m", "--redis-user", "u"], "redis.user"),
    (["--redis-sentinels", "127.0.0.1", "--redis-master-name", "m"], "redis.sentinels"),
    (["--redis-sentinels", "127.0.0.1:0", "--redis-master-name", "m"], "redis.sentinels"),
    (["--redis-sentinels", "::1:26379", "--redis-master-name", "m"], "redis.sentinels"),
    (["--redis-sentinels", "a:1,,b:2", "--redis-master-name", "m"], "redis.sentinels"),
    (["--redis-sentinels", ",".join(["h:1"] * 17), "--redis-master-name", "m"],
     "redis.sentinels"),
    (["--redis-sentinels", S3, "--redis-master-name", "two words"], "redis.master_name"),
])
def test_bad_sentinel_configuration_exits_2_naming_the_key(args, key):
    from helpers import run_broker_cmd
    res = run_broker_cmd(SAFE + args)
    assert res.returncode == 2, f"exit {res.returncode}, stderr: {res.stderr}"
    assert key in res.stderr, res.stderr


def test_sentinel_keys_from_env_and_file_and_passwords_redacted(tmp_path):
    from helpers import clean_env, run_broker_cmd
    conf = tmp_path / "c.json"
    conf.write_text('{"redis": {"sentinels": ["127.0.0.1:26379", "[::1]:26380"], '
                    '"password": "master-secret-1"}}')
    env = clean_env({"WSB_REDIS_MASTER_NAME": "mymaster",
                     "WSB_REDIS_SENTINEL_PASSWORD": "sentinel-secret-2"})
    res = run_broker_cmd(["--check-config", "--config", str(conf)], env=env)
    assert res.returncode == 0, res.stderr
    assert "master-secret-1" not in res.stdout and "sentinel-secret-2" not in res.stdout
    lines = dict(line.split(" = ", 1) for line in res.stdout.splitlines() if " = " in line)
    assert lines["redis.sentinels"] == '"127.0.0.1:26379,[::1]:26380" (file)'
    assert lines["redis.master_name"] == '"mymaster" (env)'
    assert lines["redis.password"] == "<redacted> (file)"
    assert lines["redis.sentinel_password"] == "<redacted> (env)"


# ---- a scripted sentinel: the ROLE check, +switch-master, AUTH, dead sentinels ------------

import socket  # noqa: E402
import threading  # noqa: E402


def _bulk(s: str) -> bytes:
    b = s.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


class FakeSentinel:
    """Speaks just enough of the sentinel protocol: AUTH (when `password`),
    SENTINEL get-master-addr-by-name (answers `self.answer()`), SUBSCRIBE
    +switch-master (then `switch()` pushes to every subscribed connection).
    `silent`: accepts and never answers (a hung sentinel)."""

    def __init__(self, answer, password=None, silent=False):
        self.answer = answer
        self.password = password
        self.silent = silent
        self.asked = 0
        self.refused_auth = 0
        self.subscribers = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_command(f):
        line = f.readline()
        if not line:
            return None
        assert line.startswith(b"*"), line
        args = []
        for _ in range(int(line[1:])):
            n = int(f.readline()[1:])
            args.append(f.read(n + 2)[:-2].decode())
        return args

    def _serve(self, c):
        f = c.makefile("rb")
        authed = self.password is None
        try:
            while True:
                cmd = self._read_command(f)
                if cmd is None or self.silent:
                    if cmd is None:
                        return
                    continue
                name = cmd[0].upper()
                if name == "AUTH":
                    authed = cmd[-1] == self.password
                    c.sendall(b"+OK\r\n" if authed else b"-WRONGPASS invalid password\r\n")
                elif not authed:
                    with self.lock:
                        self.refused_auth += 1
                    c.sendall(b"-NOAUTH Authentication required.\r\n")
                elif name == "SENTINEL":
                    with self.lock:
                        self.asked += 1
                    host, port = self.answer()
                    c.sendall(b"*2\r\n" + _bulk(host) + _bulk(str(port)))
                elif name == "SUBSCRIBE":
                    c.sendall(b"*3\r\n" + _bulk("subscribe") + _bulk(cmd[1]) + b":1\r\n")
                    with self.lock:
                        self.subscribers.append(c)
                else:
                    c.sendall(b"-ERR unknown command\r\n")
        except (OSError, ValueError):
            return

    def switch(self, old_port, new_port):
        msg = f"{NAME} 127.0.0.1 {old_port} 127.0.0.1 {new_port}"
        frame = b"*3\r\n" + _bulk("message") + _bulk("+switch-master") + _bulk(msg)
        with self.lock:
            subs = list(self.subscribers)
        for c in subs:
            try:
                c.sendall(frame)
            except OSError:
                pass
        return len(subs)

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def scripted(tmp_path, node_class):
    made, nodes = [], []

    def redis_node(replica_of=None):
        p = data_node(tmp_path, replica_of)
        made.append(p)
        return p

    def sentinel_(*a, **kw):
        s = FakeSentinel(*a, **kw)
        made.append(s)
        return s

    def node(sentinels, *extra):
        n = node_class(tmp_path, ["--redis-sentinels", ",".join(sentinels), "--redis-master-name",
                                  NAME, "--node-id", "S", "--redis-reconnect-max", "500ms",
                                  *extra], "S")
        nodes.append(n)
        n.start()
        return n

    yield redis_node, sentinel_, node
    failures = stop_all(nodes)
    for p in made:
        p.stop() if isinstance(p, Proc) else p.close()
    if failures:
        pytest.fail("node teardown failed:\n" + "\n".join(failures), pytrace=False)


def test_a_replica_named_by_a_sentinel_is_not_used(scripted):
    """A sentinel naming a node that is not a master (a demoted master that
    still accepts connections, a stale answer): ROLE refuses it and the node
    asks again. Dead and hung sentinels before it are skipped."""
    redis_node, sentinel_, node = scripted
    master = redis_node()
    replica = redis_node(replica_of=master.port)
    calls = {"n": 0}

    def answer():  # the replica first, the master from the second question on
        calls["n"] += 1
        return ("127.0.0.1", replica.port if calls["n"] == 1 else master.port)

    dead = free_port()  # nothing listens there
    hung = sentinel_(answer, silent=True)
    good = sentinel_(answer)
    n = node([f"127.0.0.1:{dead}", hung.addr, good.addr])
    wait_for(lambda: n.health().get("redis") == "ok" and
             server_of(n).get("addr") == master.addr, 30.0, 0.05, "the node on the master")
    assert good.asked >= 2
    assert replica.client().pubsub_channels("wsb:*") == []
    assert master.client().pubsub_channels("wsb:*")
    assert "not a master" in n.stderr()


def test_switch_master_moves_the_node_and_its_subscriptions(scripted):
    """+switch-master on the subscribed sentinel connection moves both
    connections at once, and interest follows; AUTH with
    redis.sentinel_password comes first."""
    redis_node, sentinel_, node = scripted
    first, second = redis_node(), redis_node()
    where = {"port": first.port}
    s = sentinel_(lambda: ("127.0.0.1", where["port"]), password="sentinel-pw")
    n = node([s.addr], "--redis-sentinel-password", "sentinel-pw")
    wait_for(lambda: n.health().get("redis") == "ok", 15.0, 0.02, "the node on the first master")
    assert server_of(n)["addr"] == first.addr and s.refused_auth == 0

    async def main():
        ws = await connect(n.ws_url)
        await subscribe(ws, "sw.t", 1)
        wait_for(lambda: b"wsb:sw.t" in first.client().pubsub_channels("wsb:*"), 10.0, 0.02,
                 "subscribed on the first master")
        wait_for(lambda: s.subscribers, 10.0, 0.02, "the node watching +switch-master")
        where["port"] = second.port
        assert s.switch(first.port, second.port) >= 1
        wait_for(lambda: server_of(n).get("addr") == second.addr and
                 n.health().get("redis") == "ok", 15.0, 0.02, "the node on the second master")
        wait_for(lambda: b"wsb:sw.t" in second.client().pubsub_channels("wsb:*"), 10.0, 0.02,
                 "resubscribed on the second master")
        assert server_metric(n) == second.addr
        # A message from "another node" through the new master arrives.
        env = '{"v":1,"node":"X","topic":"sw.t","seq":1,"data":"via second"}'
        second.client().publish("wsb:sw.t", env)
        m = await recv_json(ws, 10)
        assert m["type"] == "message" and m["data"] == "via second", m
        await ws.close()

    run(main(), 60)
    wait_for(lambda: first.client().pubsub_channels("wsb:*") == [], 10.0, 0.02,
             "nothing left on the first master")


def test_single_redis_is_reported_as_such(redis_server, cluster):
    """The same report for redis.url: mode "single" and its address."""
    (a,) = cluster(1)
    assert server_of(a) == {"mode": "single", "addr": f"127.0.0.1:{redis_server.port}"}
    m = a.metrics()
    assert m.get(f'wsbroker_redis_server_info{{mode="single",addr="127.0.0.1:{redis_server.port}"}}') == 1
