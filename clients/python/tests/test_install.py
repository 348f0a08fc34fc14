"""`pip install clients/python` works offline on Debian 12: setuptools and
wheel from the system (--no-build-isolation), websockets from the system
(--no-deps), into a temporary --target. The installed copy imports from
another directory, is the same version, ships py.typed, and publishes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import PKG_ROOT


def test_pip_install_offline(tmp_path, broker):
    # Build from a copy: a build writes build/ and *.egg-info next to the sources.
    src = tmp_path / "src"
    shutil.copytree(PKG_ROOT, src, ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSB_") and k != "PYTHONPATH"}
    env["PIP_NO_INDEX"] = "1"  # never the network
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "wsbroker" / "py.typed").is_file()
    assert (target / "wsbroker" / "client.py").is_file()

    env["PYTHONPATH"] = str(target)
    code = ("import wsbroker, sys; assert wsbroker.__file__.startswith(sys.argv[1]), wsbroker.__file__; "
            "print(wsbroker.__version__, wsbroker.publish_http(sys.argv[2], 'installed.ok', True))")
    run = subprocess.run([sys.executable, "-c", code, str(target), broker.url], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0.1.0", "1"]
