"""Fixtures for the Python client's tests: the real wsbroker on a free port of
127.0.0.1, started and stopped by PID through the harness every suite shares
(tests/harness/wsbroker_harness.py: no WSB_* variable of the runner reaches
the broker, exit status 0 and a clean stderr checked at teardown).

    def test_x(broker_factory):
        b = broker_factory("--topics", RULES)
        run(main(b))            # an asyncio test body, bounded in time

The package under test is imported from the source tree (clients/python).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO_ROOT = PKG_ROOT.parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "harness"))
sys.path.insert(0, str(PKG_ROOT))

from wsbroker_harness import Broker, broker_bin, stop_all  # noqa: E402

# Every test body is bounded: a hang fails the test instead of the suite.
TEST_TIMEOUT = 60.0


def run(coro: Awaitable[Any], timeout: float = TEST_TIMEOUT) -> Any:
    """Runs an asyncio test body to completion, at most `timeout` seconds."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def wait_until(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Yields to the loop until pred() is truthy (returns it) or fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_hs256(claims: dict, secret: str) -> str:
    """An HS256 JWT (the broker verifies it; the client only reads exp/iat)."""
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


@pytest.fixture(scope="session")
def wsbroker_bin() -> str:
    return broker_bin()


@pytest.fixture
def broker_factory(tmp_path, wsbroker_bin):
    """Starts brokers (flags as arguments, `port=` to restart on a known port);
    all are stopped and checked at teardown."""
    started = []

    def start(*args, env=None, name=None, port=0):
        b = Broker(tmp_path, list(args), env=env, name=name or f"broker{len(started)}", port=port)
        started.append(b)
        b.start()
        return b

    yield start

    failures = stop_all(started)
    if failures:
        pytest.fail("broker teardown failed:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    return broker_factory()
