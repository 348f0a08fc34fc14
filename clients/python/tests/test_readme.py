"""README.md's examples run as written: every ```python block is a complete
script, run with /usr/bin/python3 (this interpreter) against a broker started
with the README's own command line, its 127.0.0.1:8080 pointed at the test
broker's free port."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import PKG_ROOT

README = (PKG_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
COMMAND = re.search(r"```sh\n(build/broker/wsbroker .*?)\n```", README, re.S).group(1)


def test_readme_has_examples():
    assert len(BLOCKS) >= 5
    assert all("127.0.0.1:8080" in b for b in BLOCKS)


@pytest.fixture(scope="module")
def readme_broker(tmp_path_factory, wsbroker_bin):
    from wsbroker_harness import Broker, stop_all
    b = Broker(tmp_path_factory.mktemp("readme"), shlex.split(COMMAND)[1:], name="readme").start()
    yield b
    failures = stop_all([b])
    assert not failures, failures


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(readme_broker, tmp_path, index):
    code = BLOCKS[index].replace("127.0.0.1:8080", f"127.0.0.1:{readme_broker.port}")
    script = tmp_path / f"example{index}.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSB_")}
    env["PYTHONPATH"] = str(PKG_ROOT)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"example {index} failed:\n{code}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.stdout.strip(), f"example {index} printed nothing"
    assert "Traceback" not in proc.stderr and "exception" not in proc.stderr.lower(), proc.stderr


def test_top_level_readme_python_example_runs(broker, tmp_path):
    """The example of the top-level README.md's "Python client" section."""
    top = (PKG_ROOT.parents[1] / "README.md").read_text()
    section = top.split("\n### Python client\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "127.0.0.1:8080" in code
    script = tmp_path / "top.py"
    script.write_text(code.replace("127.0.0.1:8080", f"127.0.0.1:{broker.port}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSB_")}
    env["PYTHONPATH"] = str(PKG_ROOT)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "seq 1" in proc.stdout.splitlines(), proc.stdout
