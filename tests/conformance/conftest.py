"""Fixtures of the conformance suite: one wsbroker per test module, started on
a free port of 127.0.0.1 with an echo endpoint, stopped by PID with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


@dataclass
class Broker:
    proc: subprocess.Popen
    port: int
    stderr_path: Path

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def check_alive(self, when: str = "after this case") -> None:
        rc = self.proc.poll()
        if rc is not None:
            pytest.fail(f"wsbroker is not running {when} (exit status {rc}); stderr:\n"
                        f"{self.stderr_tail()}")


def broker_binary() -> Path:
    return Path(os.environ.get("WSBROKER_BIN", REPO / "build" / "broker" / "wsbroker"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    exe = broker_binary()
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.fail(f"wsbroker binary not found at {exe} (build it or set WSBROKER_BIN)")
    tmp = tmp_path_factory.mktemp("wsbroker")
    port_file = tmp / "port"
    stderr_path = tmp / "stderr.log"
    # Our own settings only: WSB_* variables of the calling shell must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSB_")}
    # glibc's malloc checking, so that use of freed memory shows in a plain
    # build too: freed blocks are overwritten (MALLOC_PERTURB_), and with the
    # per-thread cache off every free goes through the path that does it.
    # ASan builds ignore both (their allocator replaces glibc's).
    env.setdefault("MALLOC_PERTURB_", "165")
    env.setdefault("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")
    args = [str(exe), "--port", "0", "--port-file", str(port_file), "--host", "127.0.0.1",
            "--echo-path", "/echo", "--max-message-size", "16MiB"]
    with open(stderr_path, "wb") as err, open(tmp / "stdout.log", "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
    b = Broker(proc, 0, stderr_path)
    try:
        deadline = time.monotonic() + 15.0
        while True:
            if proc.poll() is not None:
                pytest.fail(f"wsbroker exited with status {proc.returncode} before listening:\n"
                            f"{b.stderr_tail()}")
            try:
                text = port_file.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text:
                b.port = int(text)
                break
            if time.monotonic() > deadline:
                pytest.fail(f"wsbroker wrote no port file within 15 s:\n{b.stderr_tail()}")
            time.sleep(0.02)
        yield b
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15.0)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail(f"wsbroker did not exit within 15 s of SIGTERM:\n{b.stderr_tail()}")
    log = stderr_path.read_text(errors="replace")
    for marker in SANITIZER_MARKERS:
        assert marker not in log, f"sanitizer report in wsbroker stderr:\n{log[-8000:]}"
    assert proc.returncode == 0, (
        f"wsbroker exit status {proc.returncode} after SIGTERM (expected 0):\n{log[-4000:]}")


def pytest_configure(config):
    config.addinivalue_line("markers", "conformance_case: one WebSocket conformance case")


# ---- a per-case PASS/FAIL table at the end of the run ----------------------

_results: dict[str, tuple[str, float]] = {}


def pytest_runtest_logreport(report):
    if "conformance_case" not in report.keywords:
        return
    cid = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "PASS" if report.outcome == "passed" else "FAIL"
        _results[cid] = (outcome, report.duration)


def pytest_terminal_summary(terminalreporter):
    if not _results:
        return

    def key(cid):
        return [int(x) if x.isdigit() else x for x in cid.split(".")]

    tr = terminalreporter
    tr.section("WebSocket conformance cases")
    failed = [c for c, (o, _) in _results.items() if o == "FAIL"]
    for cid in sorted(_results, key=key):
        outcome, dur = _results[cid]
        if outcome == "FAIL" or tr.config.getoption("verbose") > 0:
            tr.write_line(f"{outcome} {cid} ({dur:.2f}s)")
    tr.write_line(f"{len(_results) - len(failed)} PASS, {len(failed)} FAIL"
                  + (f": {' '.join(sorted(failed, key=key))}" if failed else ""))
