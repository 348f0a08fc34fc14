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


def test_every_protocol_error_code_has_its_class():
    """PROTOCOL.md section 7's codes (and the HTTP-only ones of section 11)
    each map to their own WsbrokerError subclass, so `except wsbroker.X`
    works for every code the broker documents."""
    import re

    import wsbroker
    text = (PKG_ROOT.parents[1] / "protocol" / "PROTOCOL.md").read_text()
    section = text.split("\n## 7. Error codes\n", 1)[1].split("\n## ", 1)[0]
    codes = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert len(codes) >= 17, codes
    for code in codes + ["method_not_allowed", "unsupported_media_type"]:
        err = wsbroker.error_for(code, "m", topic="t", status=400)
        assert type(err) is not wsbroker.WsbrokerError, f"no class for {code}"
        assert err.code == code and type(err).code == code and err.topic == "t" and err.status == 400
        assert type(err).__name__ in wsbroker.__all__
    unknown = wsbroker.error_for("from_a_newer_broker", "m")
    assert type(unknown) is wsbroker.WsbrokerError and unknown.code == "from_a_newer_broker"
