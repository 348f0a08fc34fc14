"""Fixtures of the conformance suite: one wsbroker per test module, started on
a free port of 127.0.0.1 with an echo endpoint, stopped by PID with SIGTERM
(the shared launcher, tests/harness/wsbroker_harness.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The shared broker launcher (tests/harness), the same line in every suite.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

from wsbroker_harness import Broker, broker_bin  # noqa: E402


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    try:
        broker_bin()
    except AssertionError as e:
        pytest.fail(str(e))
    # glibc's malloc checking, so that use of freed memory shows in a plain
    # build too: freed blocks are overwritten (MALLOC_PERTURB_), and with the
    # per-thread cache off every free goes through the path that does it.
    # ASan builds ignore both (their allocator replaces glibc's).
    env = {"MALLOC_PERTURB_": os.environ.get("MALLOC_PERTURB_", "165"),
           "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")}
    b = Broker(tmp_path_factory.mktemp("wsbroker"),
               ["--echo-path", "/echo", "--max-message-size", "16MiB"], env=env,
               log_level=None, start_timeout=15.0)
    try:
        b.start()
    except AssertionError as e:
        pytest.fail(str(e))
    try:
        yield b
    finally:
        try:
            if not b.start_failed:
                b.stop()
        finally:
            b.kill()


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
