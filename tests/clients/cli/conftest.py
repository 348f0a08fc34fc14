"""Fixtures for the wsbroker-cli tests: the real broker on a free port and the CLI.

Every broker is started on 127.0.0.1 with --port 0 --port-file, stopped by PID
with SIGTERM at teardown, and must exit 0 with no sanitizer report. Every CLI
process is run with a bounded wait and killed by PID if it overstays.
Environment: WSBROKER_BIN (the broker), WSBROKER_CLI (the CLI), both set by
ctest (clients/c/CMakeLists.txt); defaults point into build/.
"""
from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
HOST = "127.0.0.1"

# The shared broker launcher (tests/harness), the same line in every suite.
sys.path.insert(0, str(REPO / "tests" / "harness"))

import wsbroker_harness  # noqa: E402
from wsbroker_harness import Broker, sanitizer_report, stop_all  # noqa: E402


def _bin(var: str, default: Path) -> str:
    path = os.environ.get(var) or str(default)
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} is not executable: build it or set {var}")
    return path


def clean_env(extra: dict | None = None) -> dict:
    """The runner's environment without WSB_* and WSBROKER_URL/TOKEN (they
    would change what the broker or the CLI does), plus `extra`."""
    return wsbroker_harness.clean_env(extra, drop=("WSBROKER_URL", "WSBROKER_TOKEN"))


def assert_no_sanitizer(text: str, who: str):
    rep = sanitizer_report(text)
    assert rep is None, f"sanitizer report from {who}:\n{rep}"


@pytest.fixture
def broker_factory(tmp_path):
    """Brokers on 127.0.0.1 with no web root; port=N restarts one on a port
    an earlier broker had. Stopped and checked at teardown."""
    started = []

    def start(*args, name=None, port=0):
        b = Broker(tmp_path, ["--web-root", "", *args], name=name or f"broker{len(started)}",
                   port=port, log_level=None)
        started.append(b)
        return b.start()

    yield start
    failures = stop_all(started)
    if failures:
        pytest.fail("broker teardown failed:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    return broker_factory(name="broker")


class Cli:
    """wsbroker-cli runs: `run` to completion, `start` in the background."""

    def __init__(self):
        self.path = _bin("WSBROKER_CLI", REPO / "build" / "clients" / "c" / "wsbroker-cli")
        self.procs: list[CliProc] = []

    def run(self, *args, input: bytes | str | None = None, timeout: float = 15,
            env: dict | None = None, stdin=None) -> subprocess.CompletedProcess:
        if isinstance(input, str):
            input = input.encode()
        proc = subprocess.Popen([self.path, *args], stdin=stdin if stdin is not None else
                                (subprocess.PIPE if input is not None else subprocess.DEVNULL),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(env))
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=10)
            raise AssertionError(f"wsbroker-cli {args} did not exit within {timeout} s; "
                                 f"stderr: {err.decode(errors='replace')}")
        res = subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(errors="replace"),
                                          err.decode(errors="replace"))
        assert_no_sanitizer(res.stderr, f"wsbroker-cli {args}")
        return res

    def start(self, *args, env: dict | None = None, stdin=subprocess.DEVNULL) -> "CliProc":
        p = CliProc([self.path, *args], env=clean_env(env), stdin=stdin)
        self.procs.append(p)
        return p


class CliProc:
    """A background CLI whose stdout and stderr lines are collected by threads."""

    def __init__(self, argv, env, stdin):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.out: queue.Queue[str] = queue.Queue()
        self.err_lines: list[str] = []
        self.err_q: queue.Queue[str] = queue.Queue()
        self.out_lines: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out, self.out_lines),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err_q, self.err_lines),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, q, lines):
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            q.put(line)
        stream.close()

    def wait_stderr(self, needle: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        for line in list(self.err_lines):
            if needle in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self.err_q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if needle in line:
                return line
        raise AssertionError(f"no stderr line with {needle!r} within {timeout} s; "
                             f"stderr so far: {self.err_lines}")

    def wait_stdout_lines(self, n: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.out_lines) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.out_lines) >= n, f"{len(self.out_lines)} of {n} lines: {self.out_lines}"
        return list(self.out_lines)

    def wait(self, timeout: float = 10) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError(f"{self.argv} did not exit within {timeout} s; "
                                 f"stderr: {self.err_lines}")
        # Let the pump threads drain what is left.
        deadline = time.monotonic() + 5
        while (not self.proc.stdout.closed or not self.proc.stderr.closed) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        assert_no_sanitizer("\n".join(self.err_lines), " ".join(self.argv))
        return rc

    def signal(self, sig):
        os.kill(self.proc.pid, sig)


@pytest.fixture
def cli():
    c = Cli()
    yield c
    for p in c.procs:
        if p.proc.poll() is None:
            os.kill(p.proc.pid, signal.SIGKILL)
            p.proc.wait(timeout=10)


class FakeServer:
    """A TCP listener on 127.0.0.1 that accepts, records what it receives and
    never answers (or, with listen_only, never even accepts)."""

    def __init__(self, listen_only: bool = False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.received = b""
        self.conns: list[socket.socket] = []
        self._stop = False
        self.thread = None
        if not listen_only:
            self.thread = threading.Thread(target=self._serve, daemon=True)
            self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    def _serve(self):
        self.sock.settimeout(0.05)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            self.conns.append(conn)
            conn.settimeout(0.05)
            while not self._stop:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.received += data

    def wait_received(self, marker: str, timeout: float = 30.0) -> str:
        """What it received, once that contains `marker`: the client may
        exit before this thread has read its bytes (one connection at a
        time, on a loaded machine)."""
        deadline = time.monotonic() + timeout
        while marker.encode() not in self.received and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received.decode()

    def close(self):
        self._stop = True
        if self.thread is not None:
            self.thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def fake_server():
    servers = []

    def make(listen_only: bool = False) -> FakeServer:
        s = FakeServer(listen_only)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def free_port() -> int:
    """A port nothing listens on (bound then released; the kernel will not
    hand it out again at once)."""
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port
