"""Fixtures for the federation suite: a real redis-server on a free loopback
port (no persistence) and wsbroker nodes pointed at it.

    def test_x(redis_server, cluster):
        a, b, c = cluster(3)

Every process is started here and stopped by its PID; brokers must exit 0 on
SIGTERM with no sanitizer report (the integration suite's rules), except a
node a test killed on purpose.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# The shared broker launcher (tests/harness), the same line in every suite,
# and the integration suite's client helpers.
sys.path.insert(0, str(HERE.parent / "harness"))
sys.path.insert(0, str(HERE.parent / "integration"))

from helpers import Broker, wait_for  # noqa: E402
from wsbroker_harness import stop_all  # noqa: E402

import redis  # noqa: E402  (Debian python3-redis)

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1:port, no persistence; restartable on the same port."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> "RedisServer":
        log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            try:
                return self.client().ping()
            except redis.exceptions.ConnectionError:
                return False

        wait_for(up, 10.0, 0.02, "redis-server to accept connections")
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    # -- what the nodes asked Redis for --
    def channels(self) -> set:
        """Topic channels: without each node's own inbox channel
        (wsb:_inbox.<tag>, subscribed from its start, PROTOCOL.md 13.3) and
        the admin bus (`wsb: admin`, PROTOCOL.md 16)."""
        return {c.decode() for c in self.client().pubsub_channels("wsb:*")
                if not c.startswith(b"wsb:_inbox.") and c != b"wsb: admin"}

    def numpat(self) -> int:
        return int(self.client().pubsub_numpat())

    # Per-node counts: a channel or glob several nodes want is "present" as
    # soon as the first of them subscribed, so waiting on presence races.
    def numsub(self, name) -> int:
        return int(self.client().pubsub_numsub(name)[0][1])

    def shardnumsub(self, name) -> int:
        return int(self.client().execute_command("PUBSUB", "SHARDNUMSUB", name)[1])

    def psubs(self) -> int:
        """Pattern subscriptions summed over every client connection."""
        return sum(int(c.get("psub", 0)) for c in self.client().client_list())


class Node(Broker):
    """A broker node with the RESP listener on a free port (resp_port)."""

    def __init__(self, workdir, args, name):
        super().__init__(workdir, args, name=name, resp=True)

    def resp(self, **kw) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.resp_port, socket_timeout=5, **kw)

    def health(self) -> dict:
        r = self.get("/healthz")
        return r.json()


@pytest.fixture
def redis_server(tmp_path):
    r = RedisServer(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture
def node_class():
    """The Node class, for tests that start a node of their own: a fixture,
    because `from conftest import Node` finds tests/integration's conftest
    when both suites run in one pytest."""
    return Node


@pytest.fixture
def cluster(tmp_path, redis_server):
    nodes = []

    def start(n=3, *extra):
        names = "ABCDEFGH"
        for i in range(n):
            node = Node(tmp_path, ["--redis-url", redis_server.url, "--node-id", names[i],
                                   "--redis-reconnect-max", "500ms", *extra], names[i])
            nodes.append(node)
            node.start()
        for node in nodes:
            wait_for(lambda node=node: node.health().get("redis") == "ok", 10.0, 0.02,
                     f"node {node.name} connected to redis")
        return nodes

    yield start

    failures = stop_all(nodes)
    if failures:
        pytest.fail("node teardown failed:\n" + "\n".join(failures), pytrace=False)
