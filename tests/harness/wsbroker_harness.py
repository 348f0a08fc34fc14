"""The one launcher of the real `wsbroker` binary for every Python suite
(integration, conformance, CLI, federation, deploy, docker).

    b = Broker(tmp_path, ["--max-message-size", "1KiB"], env={"WSB_X": "1"}).start()
    ... b.port, b.ws_url, b.tls_port, b.resp_port, b.stderr() ...
    b.stop()   # SIGTERM by PID, bounded wait, exit 0, no sanitizer report

What it guarantees, whoever uses it:
- the binary is WSBROKER_BIN (default build/broker/wsbroker);
- the broker listens on 127.0.0.1 on a port the kernel picked (--port 0 and
  --port-file); start() returns once the port file is there, which the broker
  writes after its listeners are bound, so it accepts from then on. A TLS or
  RESP listener (tls=True / resp=True, or a --tls-port-file / --resp-port-file
  of the test's own) is waited for the same way;
- stdout and stderr go to files in the test's directory;
- the broker's environment is the runner's minus every WSB_* variable (the
  broker reads them all as config) plus what the test asks for;
- stop() sends SIGTERM to the broker's own PID, waits a bounded time, and
  asserts exit status 0 and no AddressSanitizer/LeakSanitizer/UBSan/TSan
  report on stderr. Nothing is ever killed by name.

Each suite's conftest puts this folder on sys.path (one line, the same in
every suite) and imports from here.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
# A broker under a wrapper (valgrind) on a loaded machine can take far longer
# to start than a plain one; the bound only limits how long a broken start is
# waited for.
START_TIMEOUT = 60.0 if os.environ.get("WSBROKER_TEST_WRAPPER") else 10.0
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


def clean_env(extra: dict | None = None, drop: tuple = ()) -> dict:
    """The test runner's environment minus WSB_* (ctest sets WSB_WEB_ROOT; a stray
    variable must not change what a test runs) and minus `drop`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSB_") and k not in drop}
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


def host_port(host: str, port: int) -> str:
    """host:port as a URL authority writes it ([::1]:80 for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


def _arg_value(args: list, flag: str):
    """The value of the last `flag VALUE` in args, or None."""
    value = None
    for i, a in enumerate(args[:-1]):
        if a == flag:
            value = str(args[i + 1])
    return value


class Broker:
    """One broker process.

    args: extra command-line flags (after the harness's own, so a test's
    --host or --workers wins). env: variables added to the cleaned
    environment. port: the port to bind (0: a free one; a restart on a port
    known from an earlier broker passes it). tls / resp: also listen for TLS /
    RESP on a free port, whose number lands in tls_port / resp_port.
    log_level: --log-level, or None to leave the broker's default. workers:
    --workers from WSBROKER_TEST_WORKERS (ctest's worker-count variants)
    unless the test sets --workers itself."""

    def __init__(self, workdir: Path, args: list, env: dict | None = None, name: str = "broker",
                 port: int = 0, tls: bool = False, resp: bool = False,
                 log_level: str | None = "debug", start_timeout: float = START_TIMEOUT):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port_file = self.workdir / f"{name}.port"
        self.stderr_path = self.workdir / f"{name}.stderr"
        self.stdout_path = self.workdir / f"{name}.stdout"
        self.args = list(args)
        if tls:
            self.args += ["--tls-port", "0", "--tls-port-file", str(self.workdir / f"{name}.tls-port")]
        if resp:
            self.args += ["--resp-port", "0", "--resp-port-file", str(self.workdir / f"{name}.resp-port")]
        self.env = clean_env(env)
        self.requested_port = port
        self.log_level = log_level
        self.start_timeout = start_timeout
        # A test may pick the address (e.g. --host ::1); the last --host wins.
        self.host = _arg_value(self.args, "--host") or HOST
        self.port = None
        self.tls_port = None
        self.resp_port = None
        self.proc = None
        self.stopped = False
        self.start_failed = False
        self.killed = False
        self.returncode = None
        self._closables = []

    # -- lifecycle --
    def command(self) -> list:
        cmd = [broker_bin(), "--port", str(self.requested_port), "--port-file", str(self.port_file),
               "--host", HOST]
        if self.log_level is not None:
            cmd += ["--log-level", self.log_level]
        cmd += self.args
        # ctest runs the integration suite with 1 and with 4 workers too
        # (tests/CMakeLists.txt); a test that sets --workers itself keeps its own.
        workers = os.environ.get("WSBROKER_TEST_WORKERS", "")
        if workers and not any(str(a).startswith("--workers") for a in self.args):
            cmd += ["--workers", workers]
        # e.g. "valgrind --leak-check=full --error-exitcode=99" (tests/CMakeLists.txt)
        wrapper = os.environ.get("WSBROKER_TEST_WRAPPER", "")
        if wrapper:
            cmd = shlex.split(wrapper) + cmd
        return cmd

    def start(self) -> "Broker":
        """spawn() and wait_ready(): returns a broker that accepts."""
        return self.spawn().wait_ready()

    def spawn(self) -> "Broker":
        """Starts the process and returns at once (for tests that start
        several brokers together); wait_ready() then waits for its ports."""
        self.port_file.unlink(missing_ok=True)
        extra_files = [Path(p) for p in (_arg_value(self.args, "--tls-port-file"),
                                         _arg_value(self.args, "--resp-port-file")) if p]
        for p in extra_files:
            p.unlink(missing_ok=True)
        self.stopped = self.start_failed = self.killed = False
        self.returncode = None
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdout=self._out, stderr=self._err, env=self.env,
                                     stdin=subprocess.DEVNULL)
        return self

    def wait_ready(self) -> "Broker":
        self.port = self._wait_port_file(self.port_file, self.start_timeout)
        tls_file = _arg_value(self.args, "--tls-port-file")
        if tls_file:
            self.tls_port = self._wait_port_file(Path(tls_file), 5.0)
        resp_file = _arg_value(self.args, "--resp-port-file")
        if resp_file:
            self.resp_port = self._wait_port_file(Path(resp_file), 5.0)
        return self

    def _wait_port_file(self, path: Path, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = path.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text:
                return int(text)
            if self.proc.poll() is not None:
                self.stopped = True
                self.start_failed = True
                self.returncode = self.proc.returncode
                self._close_logs()
                raise AssertionError(f"wsbroker exited with {self.proc.returncode} before writing "
                                     f"{path.name}:\n{self.stderr()[-3000:]}")
            if time.monotonic() > deadline:
                self.start_failed = True
                self.kill()
                raise AssertionError(f"wsbroker did not write {path.name} within {timeout}s:\n"
                                     f"{self.stderr()[-3000:]}")
            time.sleep(0.005)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{host_port(self.host, self.port)}"

    @property
    def ws_url(self) -> str:
        return f"ws://{host_port(self.host, self.port)}/ws"

    def ws_url_for(self, path: str) -> str:
        return f"ws://{host_port(self.host, self.port)}{path}"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, n: int = 4000) -> str:
        return self.stderr()[-n:]

    def track(self, closable):
        """Registers a socket/Conn to close before the broker is stopped."""
        self._closables.append(closable)
        return closable

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, when: str = "after this case") -> None:
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError(f"wsbroker is not running {when} (exit status {rc}); stderr:\n"
                                 f"{self.stderr_tail()}")

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
        """SIGKILL by PID; a broker killed on purpose is not checked at teardown."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.killed = True
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


def stop_all(brokers: list) -> list:
    """Teardown of every broker a test started, newest first: each one not
    killed on purpose and not failed at start is stopped and checked; every
    one is then sure to be gone. Returns the failures, one line each, for
    the fixture to report."""
    failures = []
    for b in reversed(brokers):
        try:
            if b.proc is not None and not b.start_failed and not b.killed:
                b.stop()
        except AssertionError as e:
            failures.append(f"{b.name} (pid {b.pid}): {e}")
        finally:
            b.kill()
    return failures
