"""`cmake --install` / `make install` (issue 22, item 4), for real: the build
tree is installed into a temporary DESTDIR; a C program is built against the
installed library with `pkg-config --cflags --libs wsbroker-client` (its
sysroot handling pointing into the DESTDIR) and run against the installed
broker; the man pages carry every option of --help; the systemd unit passes
`systemd-analyze verify` and its offline security check.

Environment: WSB_BUILD_DIR, the configured and built CMake tree (set by ctest)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("WSB_BUILD_DIR") or REPO / "build")
sys.path.insert(0, str(REPO / "tests" / "harness"))

from wsbroker_harness import Broker, clean_env, stop_all  # noqa: E402


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 240)
    res = subprocess.run(cmd, **kw)
    assert res.returncode == 0, f"{cmd} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def dest(tmp_path_factory):
    """(DESTDIR, prefix) after `cmake --install` of the build tree."""
    d = tmp_path_factory.mktemp("destdir")
    run(["cmake", "--install", str(BUILD)], env={**os.environ, "DESTDIR": str(d)})
    pcs = list(d.rglob("wsbroker-client.pc"))
    assert len(pcs) == 1, pcs
    prefix = re.search(r"^prefix=(.*)$", pcs[0].read_text(), re.M).group(1)
    return d, Path(prefix)


def inside(dest, path: Path) -> Path:
    return dest / path.relative_to("/")


def test_everything_is_installed(dest):
    d, prefix = dest
    root = inside(d, prefix)
    for rel in ["bin/wsbroker", "bin/wsbroker-cli", "bin/wsbench"]:
        assert os.access(root / rel, os.X_OK), rel
    for rel in ["include/wsb/client.h", "include/wsb/common.h", "include/wsb/tls_client.h",
                "share/man/man1/wsbroker.1", "share/man/man1/wsbroker-cli.1",
                "share/wsbroker/js/wsbroker.js", "share/wsbroker/js/wsbroker.d.ts",
                "share/wsbroker/js/package.json", "share/doc/wsbroker/wsbroker.example.json",
                "share/doc/wsbroker/examples/hello.c", "lib/systemd/system/wsbroker.service"]:
        assert (root / rel).is_file(), rel
    assert list(root.glob("lib*/libwsbroker-client.a")), "the client library"
    out = run([str(root / "bin/wsbroker"), "--version"], env=clean_env()).stdout
    assert out.startswith("wsbroker ")


def test_client_example_builds_with_pkg_config_and_talks_to_the_broker(dest, tmp_path,
                                                                      monkeypatch):
    d, prefix = dest
    pcdir = next(d.rglob("wsbroker-client.pc")).parent
    env = {**os.environ, "PKG_CONFIG_PATH": str(pcdir), "PKG_CONFIG_SYSROOT_DIR": str(d)}
    flags = run(["pkg-config", "--cflags", "--libs", "wsbroker-client"], env=env).stdout.split()
    assert f"-I{inside(d, prefix)}/include" in flags, flags
    assert "-lwsbroker-client" in flags
    src = inside(d, prefix) / "share/doc/wsbroker/examples/hello.c"
    exe = tmp_path / "hello"
    # Nothing from the source tree: only the DESTDIR's headers and library.
    run(["cc", "-Wall", "-Werror", str(src), *flags, "-o", str(exe)], cwd=tmp_path)
    monkeypatch.setenv("WSBROKER_BIN", str(inside(d, prefix) / "bin/wsbroker"))
    b = Broker(tmp_path, ["--web-root", ""], name="installed", log_level=None)
    try:
        b.start()
        res = run([str(exe), b.ws_url], timeout=30)
        assert res.stdout == 'hello.world {"text":"hello from C"}\n'
    finally:
        failures = stop_all([b])
    assert not failures, failures


def help_flags(exe: Path) -> set:
    text = run([str(exe), "--help"], env=clean_env()).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", text))


@pytest.mark.parametrize("name", ["wsbroker", "wsbroker-cli"])
def test_man_page_is_the_help_text(dest, name):
    d, prefix = dest
    page = (inside(d, prefix) / f"share/man/man1/{name}.1").read_text()
    assert re.search(rf'^\.TH "{name}" "1"', page, re.M)
    assert re.search(r"^\.SH NAME\n.*\\-", page, re.M)
    text = page.replace("\\-", "-").replace("\\e", "\\")
    flags = help_flags(inside(d, prefix) / "bin" / name)
    assert len(flags) > 10
    missing = sorted(f for f in flags if f not in text)
    assert not missing, f"{name}.1 lacks {missing}"


def test_systemd_unit_verifies_and_is_hardened(dest, tmp_path):
    d, prefix = dest
    unit = (inside(d, prefix) / "lib/systemd/system/wsbroker.service").read_text()
    for directive in ["DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict",
                      "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID"]:
        assert directive in unit
    assert f"ExecStart={prefix}/bin/wsbroker" in unit
    # systemd-analyze checks that ExecStart exists: point it at the DESTDIR's copy.
    local = tmp_path / "wsbroker.service"
    local.write_text(unit.replace(f"ExecStart={prefix}/bin/", f"ExecStart={inside(d, prefix)}/bin/"))
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: make deps-test installs Debian's systemd"
    res = run([analyze, "verify", "--man=no", str(local)])
    assert res.stderr.strip() == "", res.stderr
    # Exposure score 0 (best) .. 10; the unit must stay in "OK" territory.
    run([analyze, "security", "--offline=yes", "--threshold=20", str(local)])
