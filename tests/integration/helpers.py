"""The broker under test as a process, plus small client helpers.

Broker: the shared launcher of tests/harness/wsbroker_harness.py (the real
`wsbroker` binary on a free port, stopped by PID with SIGTERM, exit 0 and no
sanitizer report) with HTTP and raw WebSocket helpers on top. Client helpers
wrap the `websockets` library (a client nobody here wrote) with bounded waits.
"""
from __future__ import annotations

import asyncio
import json
import re
import socket

import websockets

import wsraw

from wsbroker_harness import (HOST, REPO_ROOT, SANITIZER_MARKERS, START_TIMEOUT,  # noqa: F401
                              STOP_TIMEOUT, broker_bin, clean_env, is_asan_build, is_tsan_build,
                              run_broker_cmd, sanitizer_report, wait_for)
from wsbroker_harness import Broker as _HarnessBroker


class Broker(_HarnessBroker):
    """The shared launcher (tests/harness) plus this suite's client helpers.
    Use the `broker` / `broker_factory` fixtures."""

    def get(self, path: str, **kw) -> wsraw.Response:
        return wsraw.http_request(self.host, self.port, "GET", path, **kw)

    def post(self, path: str, body, content_type: str | None = "application/json", **kw) -> wsraw.Response:
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        headers = kw.pop("headers", {}) or {}
        if content_type is not None:
            headers.setdefault("Content-Type", content_type)
        return wsraw.http_request(self.host, self.port, "POST", path, body=body, headers=headers, **kw)

    def metrics(self) -> dict:
        """Parses /metrics into {'name{labels}': float}."""
        r = self.get("/metrics")
        assert r.status == 200, r
        out = {}
        for line in r.body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, float("nan"))

    def raw_ws(self, path: str = "/ws", **kw) -> wsraw.Conn:
        return self.track(wsraw.ws_connect(self.host, self.port, path, **kw))

    def conn(self, **kw) -> wsraw.Conn:
        return self.track(wsraw.Conn(self.host, self.port, **kw))

    def assert_healthy(self, timeout: float = 10.0) -> None:
        """A fresh client pair still subscribes, publishes and receives; /healthz is ok."""
        assert self.alive(), f"wsbroker died (exit {self.proc.poll()}):\n{self.stderr()[-3000:]}"
        run(healthy_roundtrip(self), timeout)
        r = self.get("/healthz")
        assert r.status == 200 and r.json()["status"] == "ok", r


# ---- asyncio helpers (websockets 10.4, no pytest-asyncio) -----------------------------------


def run(coro, timeout: float = 30.0):
    """Runs a coroutine to completion with an overall bound."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def connect(url: str, **kw):
    """websockets client with no client pings (tests decide who talks) and the welcome read."""
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    kw.setdefault("max_size", None)
    ws = await websockets.connect(url, **kw)
    try:
        welcome = await recv_json(ws, wsraw.welcome_timeout(5.0))
    except asyncio.TimeoutError:
        wsraw.note_welcome_missed()
        raise AssertionError("no welcome message after the handshake") from None
    assert welcome["type"] == "welcome", welcome
    ws.welcome = welcome
    return ws


def worker_of(ws) -> int:
    """The worker thread holding a connection opened by connect(): the broker
    names an anonymous client NODE-WORKER-COUNTER (session.c)."""
    return int(ws.welcome["client_id"].rsplit("-", 2)[1])


async def connect_spread(url: str, workers: int, per_worker: int, max_conns: int = 400) -> list:
    """Opens connections until each of the broker's `workers` workers holds at
    least `per_worker` of them, and returns them all (extras included).

    SO_REUSEPORT spreads connections by a hash of the client's address and
    port, so which worker gets one is up to the kernel: rather than hope, the
    tests that need every worker busy open connections until the welcome of
    each (see worker_of) has named every worker enough times."""
    conns: list = []
    count = [0] * workers
    while min(count) < per_worker:
        assert len(conns) < max_conns, f"{max_conns} connections did not cover {workers} workers: {count}"
        ws = await connect(url)
        conns.append(ws)
        count[worker_of(ws)] += 1
    return conns


async def recv_json(ws, timeout: float = 5.0):
    msg = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(msg, str), f"expected a text message, got {msg!r}"
    return json.loads(msg)


async def send_json(ws, obj):
    await ws.send(json.dumps(obj))


async def request(ws, obj, timeout: float = 5.0):
    """Sends a request with an id and returns the reply carrying that id (messages in
    between are kept in ws.pending_messages)."""
    await send_json(ws, obj)
    while True:
        m = await recv_json(ws, timeout)
        if m.get("type") == "message":
            ws.__dict__.setdefault("pending_messages", []).append(m)
            continue
        return m


async def subscribe(ws, topic: str, id: int = 1):
    r = await request(ws, {"type": "subscribe", "topic": topic, "id": id})
    assert r == {"type": "ack", "id": id}, r
    return r


async def publish(ws, topic: str, data, id: int = 1):
    r = await request(ws, {"type": "publish", "topic": topic, "data": data, "id": id})
    assert r["type"] == "ack" and r["id"] == id and isinstance(r.get("seq"), int), r
    return r


async def barrier(ws, id: int = 999999):
    """Ping with an id; returns every message that arrived before the pong."""
    await send_json(ws, {"type": "ping", "id": id})
    before = list(ws.__dict__.pop("pending_messages", []))
    while True:
        m = await recv_json(ws)
        if m.get("type") == "pong" and m.get("id") == id:
            return before
        before.append(m)


_health_counter = 0


async def healthy_roundtrip(b: Broker):
    global _health_counter
    _health_counter += 1
    topic = f"health.check{_health_counter}"
    sub = await connect(b.ws_url)
    pub = await connect(b.ws_url)
    try:
        await subscribe(sub, topic, 1)
        ack = await publish(pub, topic, {"n": _health_counter}, 2)
        m = await recv_json(sub)
        assert m == {"type": "message", "topic": topic, "seq": ack["seq"], "data": {"n": _health_counter}}, m
    finally:
        await sub.close()
        await pub.close()


def metric_names_from_text(text: str) -> set:
    names = set()
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", line)
        if m and not line.startswith("#"):
            names.add(m.group(1))
    return names


def resp_command(port, *cmds):
    """Sends RESP commands on one connection and returns the raw replies."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        out = b""
        for args in cmds:
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
