"""Fixtures: the real wsbroker on a free port, stopped by PID and checked.

    @pytest.mark.broker_args("--max-message-size", "1KiB")
    def test_x(broker): ...

`broker` starts one broker with the marker's flags (and env from the
`broker_env` marker). `broker_factory(*args, env=..., name=..., tls=..., resp=...)`
starts more (tls/resp: a TLS/RESP listener on a free port too, see
tests/harness/wsbroker_harness.py, the launcher every suite shares).
With WSBROKER_TEST_WORKERS=N in the environment (ctest's integration.w1 /
integration.w4) every broker gets --workers N unless the test sets it.
Every broker is stopped at teardown with SIGTERM; it must exit 0 and its
stderr must hold no AddressSanitizer / UBSan report, else the test errors.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The shared broker launcher (tests/harness), the same line in every suite.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Broker, broker_bin  # noqa: E402
from wsbroker_harness import stop_all  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "broker_args(*flags): extra command-line flags for the `broker` fixture")
    config.addinivalue_line("markers", "broker_env(**vars): extra environment for the `broker` fixture")


@pytest.fixture(scope="session")
def wsbroker_bin():
    return broker_bin()


@pytest.fixture
def broker_factory(tmp_path, wsbroker_bin):
    started = []

    def start(*args, env=None, name=None, tls=False, resp=False):
        b = Broker(tmp_path, list(args), env=env, name=name or f"broker{len(started)}", tls=tls,
                   resp=resp)
        started.append(b)
        b.start()
        return b

    yield start

    failures = stop_all(started)
    if failures:
        pytest.fail("broker teardown failed:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture
def broker(request, broker_factory):
    m = request.node.get_closest_marker("broker_args")
    e = request.node.get_closest_marker("broker_env")
    args = list(m.args) if m else []
    env = dict(e.kwargs) if e else None
    return broker_factory(*args, env=env, name="broker")


@pytest.fixture
def web_root(tmp_path):
    """A web root with files, a hidden file, and symlinks that point outside it."""
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>index page</h1>\n")
    (root / "style.css").write_text("body{color:red}\n")
    (root / "data.json").write_text('{"ok":true}\n')
    (root / "sub" / "page.txt").write_text("sub page text\n")
    (root / "sub" / "index.html").write_text("<p>sub index</p>\n")
    (root / ".hidden").write_text("HIDDEN-SECRET\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE-SECRET\n")
    # A sibling whose name starts with the root's name: a prefix check without
    # a '/' boundary would let "www2" pass as "below www".
    sibling = tmp_path / "www2"
    sibling.mkdir()
    (sibling / "secret.txt").write_text("SIBLING-SECRET\n")
    (root / "link_out.txt").symlink_to(outside / "secret.txt")
    (root / "link_dir_out").symlink_to(outside)
    (root / "link_sibling.txt").symlink_to(sibling / "secret.txt")
    (root / "link_in.txt").symlink_to(root / "sub" / "page.txt")
    return root
