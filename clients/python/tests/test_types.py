"""The package is typed (py.typed): `mypy --strict` accepts it (Debian's mypy)."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import PKG_ROOT


def test_mypy_strict(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSB_")}
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
                           "wsbroker"], cwd=PKG_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
