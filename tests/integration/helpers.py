"""The broker under test as a process, plus small client helpers.

Broker: starts the real `wsbroker` binary on a free port (--port 0 and
--port-file), stops it by PID with SIGTERM and checks that it exited 0 with no
sanitizer report on stderr. Client helpers wrap the `websockets` library (a
client nobody here wrote) with bounded waits.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sys
import subprocess
import time
from pathlib import Path

import websockets

import wsraw

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0  # > default shutdown_timeout (5 s) + close_timeout (3 s)

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "ThreadSanitizer",
)


def broker_bin() -> str:
    path = os.environ.get("WSBROKER_BIN") or str(REPO_ROOT / "build" / "broker" / "wsbroker")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"wsbroker binary not found at {path}: build it or set WSBROKER_BIN")
    return path


def is_asan_build() -> bool:
    """True for a sanitizer build (ASan or TSan): both add shadow memory, so
    RSS bounds are scaled for them."""
    try:
        data = Path(broker_bin()).read_bytes()
        return b"__asan_init" in data or b"__tsan_init" in data
    except OSError:
        return False


def is_tsan_build() -> bool:
    try:
        return b"__tsan_init" in Path(broker_bin()).read_bytes()
    except OSError:
        return False


def clean_env(extra: dict | None = None) -> dict:
    """The test runner's environment minus WSB_* (ctest sets WSB_WEB_ROOT; a stray
    variable must not change what a test runs), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSB_")}
    # Leak checking stays on; sanitizer reports go to stderr where we look for them.
    if extra:
        env.update(extra)
    return env


def sanitizer_report(text: str) -> str | None:
    for m in SANITIZER_MARKERS:
        if m in text:
            i = text.index(m)
            return text[max(0, i - 200) : i + 3000]
    return None


def wait_for(pred, timeout: float, interval: float = 0.01, what: str = "condition"):
    """Polls pred() until it returns a truthy value; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def run_broker_cmd(args: list, env: dict | None = None, timeout: float = 10.0, cwd=None) -> subprocess.CompletedProcess:
    """Runs the binary to completion (config errors, --help); kills only its own PID on timeout."""
    proc = subprocess.Popen([broker_bin(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=clean_env(env), cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"wsbroker {args} did not exit within {timeout}s; stderr: {err.decode()[-2000:]}")
    res = subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(errors="replace"),
                                      err.decode(errors="replace"))
    rep = sanitizer_report(res.stderr)
    assert rep is None, f"sanitizer report from wsbroker {args}:\n{rep}"
    return res


class Broker:
    """One running broker. Use the `broker` / `broker_factory` fixtures."""

    def __init__(self, workdir: Path, args: list, env: dict | None = None, name: str = "broker"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.env = clean_env(env)
        self.name = name
        # A test may pick the address (e.g. --host ::1); the last --host wins.
        self.host = HOST
        for i, a in enumerate(self.args[:-1]):
            if a == "--host":
                self.host = str(self.args[i + 1])
        self.port = None
        self.proc = None
        self.port_file = self.workdir / f"{name}.port"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.stdout_path = self.workdir / f"{name}.stdout"
        self.stopped = False
        self.start_failed = False
        self.returncode = None
        self._closables = []

    # -- lifecycle --
    def start(self) -> "Broker":
        cmd = [broker_bin(), "--port", "0", "--port-file", str(self.port_file), "--host", HOST,
               "--log-level", "debug", *self.args]
        # ctest runs the suite with 1 and with 4 workers too (tests/CMakeLists.txt);
        # a test that sets --workers itself keeps its own.
        workers = os.environ.get("WSBROKER_TEST_WORKERS", "")
        if workers and not any(str(a).startswith("--workers") for a in self.args):
            cmd += ["--workers", workers]
        # e.g. "valgrind --leak-check=full --error-exitcode=99" (tests/CMakeLists.txt)
        wrapper = os.environ.get("WSBROKER_TEST_WRAPPER", "")
        if wrapper:
            cmd = shlex.split(wrapper) + cmd
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, env=self.env,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.port_file.exists():
                text = self.port_file.read_text().strip()
                if text:
                    self.port = int(text)
                    break
            if self.proc.poll() is not None:
                self.stopped = True
                self.start_failed = True
                self.returncode = self.proc.returncode
                raise AssertionError(f"wsbroker exited with {self.proc.returncode} before listening:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                self.start_failed = True
                self.kill()
                raise AssertionError(f"wsbroker did not write its port file within {START_TIMEOUT}s:\n{self.stderr()[-3000:]}")
            time.sleep(0.005)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{wsraw.host_port(self.host, self.port)}"

    @property
    def ws_url(self) -> str:
        return f"ws://{wsraw.host_port(self.host, self.port)}/ws"

    def ws_url_for(self, path: str) -> str:
        return f"ws://{wsraw.host_port(self.host, self.port)}{path}"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def track(self, closable):
        """Registers a socket/Conn to close before the broker is stopped."""
        self._closables.append(closable)
        return closable

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM) -> None:
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"wsbroker (pid {self.pid}) did not exit within {timeout}s after SIGTERM")
        self.stopped = True
        self.returncode = rc
        self._close_logs()
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.stopped = True
        self._close_logs()

    def _close_logs(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    def close_tracked(self):
        for c in self._closables:
            try:
                c.close()
            except Exception:
                pass
        self._closables.clear()

    def stop(self) -> None:
        """SIGTERM, bounded wait, then asserts exit 0 and a clean stderr."""
        self.close_tracked()
        if not self.stopped:
            if self.proc.poll() is None:
                self.signal(signal.SIGTERM)
                self._tsan_resignal()
            self.wait_exit()
        self.check_exit()

    def _tsan_resignal(self) -> None:
        """Under ThreadSanitizer only: about one broker in a few hundred
        never runs its SIGTERM handler (the signal is caught by TSan's
        interceptor and its deferred delivery does not happen; a second
        SIGTERM is taken at once; never seen without TSan). When the broker
        has not even logged the signal after 5 s, send it once more; a broker
        that took the signal and then hangs in its drain still fails."""
        if not is_tsan_build():
            return
        try:
            self.proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass
        if "signal received" not in self.stderr():
            print(f"wsbroker (pid {self.pid}, TSan) did not take SIGTERM in 5 s: sending it again",
                  file=sys.stderr)
            self.signal(signal.SIGTERM)

    def check_exit(self, expected: int = 0) -> None:
        rep = sanitizer_report(self.stderr())
        assert rep is None, f"sanitizer report from wsbroker:\n{rep}"
        assert self.returncode == expected, (
            f"wsbroker exited with {self.returncode}, expected {expected}; stderr tail:\n{self.stderr()[-3000:]}")

    # -- observations --
    def status(self) -> dict:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k] = v.strip()
        return out

    def rss_kib(self) -> int:
        return int(self.status()["VmRSS"].split()[0])

    def hwm_kib(self) -> int:
        return int(self.status()["VmHWM"].split()[0])

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
