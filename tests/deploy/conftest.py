"""Fixtures for the deployment suite: the docker-compose topology without
Docker. A real nginx (Debian's package) runs deploy/nginx.conf with its port,
upstreams and pid/log/temp paths rewritten into the test's temp dir, in front
of three broker nodes federated through a real redis-server.

The redis-server and node fixtures are the federation suite's (loaded from
tests/federation/conftest.py, not copied). Every process is started here and
stopped by its PID.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The shared broker launcher (tests/harness), the same line in every suite,
# and the integration suite's client helpers.
sys.path.insert(0, str(REPO / "tests" / "harness"))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from helpers import wait_for  # noqa: E402

_spec = importlib.util.spec_from_file_location("federation_conftest",
                                               REPO / "tests" / "federation" / "conftest.py")
federation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(federation)

# Re-exported so pytest finds them here: a redis-server on a free port and
# cluster(n, *extra_args) starting n nodes connected to it.
redis_server = federation.redis_server
cluster = federation.cluster
free_port = federation.free_port

NGINX_CONF = REPO / "deploy" / "nginx.conf"
NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"


def render_nginx_conf(text: str, workdir: Path, port: int, upstreams: list[int]) -> str:
    """deploy/nginx.conf for this machine: nginx on 127.0.0.1:port, the upstream
    pool on 127.0.0.1:upstreams, one worker, every path in workdir. Each
    rewrite must match: if the file changes shape the test says so."""

    def sub(pattern, repl, s, count=1, flags=re.M):
        out, n = re.subn(pattern, repl, s, flags=flags)
        assert n == count, f"deploy/nginx.conf: expected {count} match(es) of {pattern!r}, got {n}"
        return out

    text = sub(r"^worker_processes .*;$", "worker_processes 1;", text)
    text = sub(r"^pid .*;$", f"pid {workdir}/nginx.pid;", text)
    text = sub(r"^error_log .*;$", f"error_log {workdir}/nginx-error.log info;", text)
    text = sub(r"^(\s*)access_log .*;$", rf"\1access_log {workdir}/nginx-access.log;", text)
    text = sub(r"^(\s*)listen 8080;$", rf"\1listen 127.0.0.1:{port};", text)
    servers = re.findall(r"^\s*server wsbroker\d+:8080 .*;$", text, flags=re.M)
    assert len(servers) == 3, f"deploy/nginx.conf: expected three upstream servers, got {servers}"
    options = re.search(r"server wsbroker\d+:8080( .*);$", servers[0]).group(1)
    block = "\n".join(f"        server 127.0.0.1:{p}{options};" for p in upstreams)
    text = sub(r"(^\s*server wsbroker\d+:8080 .*;\n)+", block + "\n", text)
    temps = "".join(f"    {d}_temp_path {workdir}/{d}_temp;\n"
                    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = sub(r"^http \{\n", "http {\n" + temps, text)
    return text


class Nginx:
    def __init__(self, workdir: Path, upstreams: list[int]):
        self.workdir = workdir
        self.port = free_port()
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(render_nginx_conf(NGINX_CONF.read_text(), workdir, self.port, upstreams))
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log(self) -> str:
        p = self.workdir / "nginx-error.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self) -> "Nginx":
        check = subprocess.run([NGINX_BIN, "-t", "-q", "-p", str(self.workdir), "-c", str(self.conf),
                                "-e", str(self.workdir / "nginx-error.log")],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t refused the rendered config:\n{check.stderr}"
        out = open(self.workdir / "nginx.stdout", "wb")
        # In the foreground (daemon off) so that Popen's PID is the master's.
        self.proc = subprocess.Popen(
            [NGINX_BIN, "-p", str(self.workdir), "-c", str(self.conf),
             "-e", str(self.workdir / "nginx-error.log"), "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            import socket
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(up, 10.0, 0.02, "nginx to accept connections")
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGQUIT)  # graceful: workers finish, master exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def topology(tmp_path, redis_server, cluster):
    """redis-server, three nodes trusting 127.0.0.1 as their proxy, nginx in
    front. Yields (nginx, nodes)."""
    if not Path(NGINX_BIN).exists():
        pytest.fail("nginx is not installed: run `make deps` (Debian package nginx)")
    nodes = cluster(3, "--trusted-proxies", "127.0.0.1")
    ngx = Nginx(tmp_path, [n.port for n in nodes]).start()
    yield ngx, nodes
    ngx.stop()
