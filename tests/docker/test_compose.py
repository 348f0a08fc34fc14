"""make test-docker: the Dockerfile and docker-compose.yml for real (issue 9).

Starts its own dockerd (state under $WSB_DOCKER_STATE, default build-docker/;
sockets under a temp dir), provides the base image itself when it is missing
(debootstrap from this machine's apt mirror, imported as debian:bookworm-slim:
Docker Hub is not reachable here), builds the images, brings the compose
cluster up with nginx published on 127.0.0.1 only, runs the through-nginx
pub/sub check of tests/deploy against it, waits for every broker's
HEALTHCHECK to say healthy, then tears everything down and stops dockerd by
its PID.

dockerd runs with --iptables=false --ip-forward=false --bridge=none: it leaves
the host's firewall (FORWARD policy) alone, so network namespaces that other
tests make keep working. Containers still reach each other on the compose
network, and published ports go through docker-proxy. Image builds use the
host network (the build needs the apt mirror; without NAT a bridged build
container cannot reach it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The shared harness (tests/harness), the integration suite's client helpers
# and the deploy suite's proxy checks.
sys.path[:0] = [str(REPO / "tests" / "harness"), str(REPO / "tests" / "integration"),
                str(REPO / "tests" / "deploy")]

from helpers import run, wait_for  # noqa: E402
from through_proxy import pubsub_across_nodes  # noqa: E402

DOCKER = "/usr/bin/docker"  # Debian's docker.io client, matching its daemon
DOCKERD = "/usr/sbin/dockerd"
COMPOSE = "/usr/bin/docker-compose"
STATE = Path(os.environ.get("WSB_DOCKER_STATE", REPO / "build-docker")).resolve()
BASE_TAG = "debian:bookworm-slim"


def log(msg: str) -> None:
    print(f"[test-docker] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forward_policy() -> str | None:
    try:
        out = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


class Dockerd:
    def __init__(self):
        self.run_dir = Path(tempfile.mkdtemp(prefix="wsbd."))  # short: socket paths
        self.sock = self.run_dir / "docker.sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        self.env.pop("DOCKER_CONTEXT", None)
        self.proc = None
        self.policy_before = forward_policy()

    def start(self):
        (STATE / "data").mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "daemon.json"
        config.write_text("{}")  # not /etc/docker/daemon.json: this daemon is the test's
        self.log_path = self.run_dir / "dockerd.log"
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [DOCKERD, "--config-file", str(config), "--data-root", str(STATE / "data"),
             "--exec-root", str(self.run_dir / "exec"), "--pidfile", str(self.run_dir / "dockerd.pid"),
             "-H", f"unix://{self.sock}", "--iptables=false", "--ip6tables=false",
             "--ip-forward=false", "--ip-masq=false", "--bridge=none"],
            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        logf.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"dockerd exited with {self.proc.returncode}:\n"
                                     f"{self.log_path.read_text(errors='replace')[-3000:]}")
            return self.sock.exists() and self.docker("info", check=False, timeout=10).returncode == 0

        try:
            wait_for(up, 60.0, 0.2, "dockerd to answer")
        except AssertionError as e:
            self.stop()
            if os.environ.get("WSB_DOCKER_OPTIONAL"):
                pytest.skip(f"dockerd cannot run on this machine: {e}")
            raise
        log(f"dockerd pid {self.proc.pid} on {self.sock}")
        return self

    def docker(self, *args, check=True, timeout=600, capture=True):
        r = subprocess.run([DOCKER, *args], env=self.env, capture_output=capture, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{(r.stderr or '')[-3000:]}\n{(r.stdout or '')[-2000:]}")
        return r

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            log(f"dockerd pid {self.proc.pid} stopped")
        # dockerd was told to leave iptables alone; make sure of it.
        after = forward_policy()
        if self.policy_before and after and after != self.policy_before:
            subprocess.run(["iptables", "-P", "FORWARD", self.policy_before], timeout=10)
            log(f"FORWARD policy restored to {self.policy_before} (was {after})")
        # dockerd leaves its default network namespace bind-mounted under the
        # exec root: unmount what is under our run dir, then remove it.
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f]
        for m in reversed(mounts):
            if m.startswith(str(self.run_dir) + "/"):
                subprocess.run(["umount", m], timeout=30)
        shutil.rmtree(self.run_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def dockerd():
    for exe in (DOCKERD, DOCKER, COMPOSE, "/usr/sbin/debootstrap"):
        if not Path(exe).exists():
            pytest.fail(f"{exe} missing: run `make test-docker`, which installs docker.io, "
                        "docker-compose and debootstrap")
    d = Dockerd().start()
    try:
        yield d
    finally:
        d.stop()


def ensure_base_image(d: Dockerd) -> None:
    if d.docker("image", "inspect", BASE_TAG, check=False).returncode == 0:
        log(f"{BASE_TAG}: present")
        return
    tar = STATE / "base-bookworm.tar"
    t0 = time.monotonic()
    r = subprocess.run([str(HERE / "base_rootfs.sh"), str(tar)], text=True, timeout=1800)
    assert r.returncode == 0, "building the base rootfs failed (output above)"
    d.docker("import", "--change", 'CMD ["bash"]', str(tar), BASE_TAG, timeout=600)
    log(f"{BASE_TAG}: imported from debootstrap in {time.monotonic() - t0:.0f}s")


def build(d: Dockerd, tag: str, dockerfile: str, context: Path) -> float:
    t0 = time.monotonic()
    d.docker("build", "--network", "host", "-t", tag, "-f", dockerfile, str(context),
             timeout=1800)
    return time.monotonic() - t0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def test_compose_cluster_behind_nginx(dockerd, tmp_path):
    d = dockerd
    ensure_base_image(d)
    t = build(d, "wsbroker:latest", str(REPO / "Dockerfile"), REPO)
    size = int(d.docker("image", "inspect", "-f", "{{.Size}}", "wsbroker:latest").stdout)
    base = int(d.docker("image", "inspect", "-f", "{{.Size}}", BASE_TAG).stdout)
    log(f"wsbroker:latest built in {t:.0f}s: {size / 1e6:.1f} MB "
        f"({(size - base) / 1e6:.1f} MB over the {base / 1e6:.1f} MB base)")
    build(d, "wsbroker-redis:latest", str(REPO / "deploy" / "redis.Dockerfile"), REPO / "deploy")
    build(d, "wsbroker-nginx:latest", str(REPO / "deploy" / "nginx.Dockerfile"), REPO / "deploy")

    # The image itself: non-root, the documented defaults.
    cfg = json.loads(d.docker("image", "inspect", "wsbroker:latest").stdout)[0]["Config"]
    assert cfg["User"] == "wsbroker" and cfg["StopSignal"] == "SIGTERM", cfg
    assert cfg["Healthcheck"]["Test"][-1] == "/usr/local/bin/wsbroker-healthcheck", cfg
    assert "8080/tcp" in cfg["ExposedPorts"]

    port = free_port()
    project = f"wsbtest{os.getpid()}"
    env = {**d.env, "WSB_HTTP_PORT": str(port), "WSB_HTTP_BIND": "127.0.0.1",
           "COMPOSE_PROJECT_NAME": project}

    def compose(*args, check=True, timeout=300):
        r = subprocess.run([COMPOSE, "-f", str(REPO / "docker-compose.yml"), *args], env=env,
                           capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if check and r.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{r.stderr[-3000:]}")
        return r

    try:
        t0 = time.monotonic()
        compose("up", "-d", "--no-build")
        log(f"compose up in {time.monotonic() - t0:.0f}s (nginx waits for healthy brokers)")

        # Published on 127.0.0.1 only.
        nginx_id = compose("ps", "-q", "nginx").stdout.strip()
        ports = json.loads(d.docker("inspect", nginx_id).stdout)[0]["NetworkSettings"]["Ports"]
        binds = ports["8080/tcp"]
        assert binds and all(b["HostIp"] == "127.0.0.1" for b in binds), binds
        published = {k for k, v in ports.items() if v}
        for svc in ("redis", "wsbroker1", "wsbroker2", "wsbroker3"):
            cid = compose("ps", "-q", svc).stdout.strip()
            p = json.loads(d.docker("inspect", cid).stdout)[0]["NetworkSettings"]["Ports"]
            assert not any(p.values()), f"{svc} publishes a port: {p}"
        assert published == {"8080/tcp"}

        base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ok(base_url + "/healthz"), 60.0, 0.5, "nginx -> broker /healthz")
        status, page = http_get(base_url + "/")
        assert status == 200 and b"<html" in page.lower()
        status, js = http_get(base_url + "/js/wsbroker.js")
        assert status == 200 and b"export" in js

        seen = run(pubsub_across_nodes(f"ws://127.0.0.1:{port}/ws", "docker.chat"), 90)
        log(f"pub/sub through nginx: subscribers on {seen['subscribers']}, "
            f"publishers on {seen['publishers']}")
        assert set(seen["subscribers"]) <= {"node1", "node2", "node3"}

        def healthy():
            states = {}
            for svc in ("wsbroker1", "wsbroker2", "wsbroker3"):
                cid = compose("ps", "-q", svc).stdout.strip()
                states[svc] = d.docker("inspect", "-f", "{{.State.Health.Status}}", cid).stdout.strip()
            return states if all(s == "healthy" for s in states.values()) else None

        wait_for(healthy, 60.0, 1.0, "every broker's HEALTHCHECK to report healthy")

        # SIGTERM (the image's STOPSIGNAL) ends a broker cleanly: exit 0.
        cid = compose("ps", "-q", "wsbroker3").stdout.strip()
        compose("stop", "wsbroker3")
        code = d.docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip()
        assert code == "0", compose("logs", "wsbroker3", check=False).stdout[-3000:]
    except BaseException:
        log("compose logs:\n" + compose("logs", "--no-color", "--tail", "50", check=False).stdout[-8000:])
        raise
    finally:
        compose("down", "-v", "--remove-orphans", "-t", "10", check=False)


def _ok(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False
