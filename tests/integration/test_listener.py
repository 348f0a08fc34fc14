"""The listener: IPv6 as well as IPv4 (with the listening line DESIGN.md's
command-line contract promises), the configurable listen backlog, and the
socket options issue 3 names (TCP_NODELAY on accepted sockets, SO_REUSEADDR
on listeners), read from the broker's own sockets."""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import socket
import subprocess

import pytest

from helpers import connect, recv_json, run, subscribe, wait_for


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.broker_args("--host", "::1")
def test_ipv6_loopback_listener_serves_websocket_and_http(broker):
    if not ipv6_loopback_available():
        pytest.fail("this machine has no ::1; the IPv6 listener cannot be tested here")
    assert broker.host == "::1"
    assert re.search(rf"msg=listening addr=\[::1\]:{broker.port}\b", broker.stderr()), broker.stderr()[-2000:]

    # Plain HTTP over IPv6, with the bracketed Host header a client sends.
    r = broker.get("/healthz")
    assert r.status == 200 and r.json()["status"] == "ok", r

    # WebSocket pub/sub over IPv6 with the websockets library; HTTP publish too.
    async def go():
        sub = await connect(broker.ws_url)
        assert sub.remote_address[0] == "::1"
        await subscribe(sub, "v6.topic", 1)
        resp = broker.post("/api/publish", {"topic": "v6.topic", "data": "over ::1"})
        assert resp.status == 200, resp
        m = await recv_json(sub)
        assert m == {"type": "message", "topic": "v6.topic", "seq": 1, "data": "over ::1"}, m
        await sub.close()

    run(go())

    # The IPv6 listener does not also answer on 127.0.0.1.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", broker.port))
    broker.assert_healthy()


def listen_backlogs(port: int) -> list:
    """The accept-queue size of every socket listening on `port`, as ss(8)
    reports it (the Send-Q column of a LISTEN socket is its backlog)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    return [int(line.split()[2]) for line in out.splitlines() if line.startswith("LISTEN")]


@pytest.mark.broker_args("--backlog", "37")
def test_backlog_is_the_listen_queue_of_every_worker(broker):
    if shutil.which("ss") is None:
        pytest.fail("ss(8) (iproute2) is needed to read the listen backlog")
    backlogs = listen_backlogs(broker.port)
    workers = int(broker.metric("wsbroker_workers"))
    assert backlogs == [37] * workers, f"listening sockets on {broker.port}: backlogs {backlogs}, workers {workers}"


def test_default_backlog_is_511(broker):
    if shutil.which("ss") is None:
        pytest.fail("ss(8) (iproute2) is needed to read the listen backlog")
    assert set(listen_backlogs(broker.port)) == {511}


SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (since 5.6)


def broker_socket(pid: int, pred, what: str) -> socket.socket:
    """A duplicate (pidfd_getfd(2)) of the first TCP socket of process `pid`
    for which pred(sock) holds, so that the test can read its options. The
    kernel completes a client's connect before the broker's loop has called
    accept(), so the socket is looked for until it appears (bounded)."""
    return wait_for(lambda: find_broker_socket(pid, pred), 5.0, 0.02,
                    f"pid {pid} to have a socket that is {what}")


def find_broker_socket(pid: int, pred) -> socket.socket | None:
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                pytest.fail(f"pidfd_getfd: {os.strerror(ctypes.get_errno())} (Linux >= 5.6 and ptrace rights needed)")
            s = socket.socket(fileno=fd)
            try:
                if s.type == socket.SOCK_STREAM and pred(s):
                    return s
            except OSError:
                pass
            s.close()
    finally:
        os.close(pidfd)
    return None


def test_accepted_sockets_have_tcp_nodelay_and_listeners_so_reuseaddr(broker):
    # Small frames (acks, pongs, single messages) must not wait for Nagle.
    for raw in (broker.conn(), broker.raw_ws()):
        ours = raw.sock.getsockname()
        s = broker_socket(broker.pid, lambda s: s.getpeername() == ours, f"connected to {ours}")
        try:
            assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            s.close()

    # SO_REUSEADDR lets a restart bind while old connections sit in TIME_WAIT.
    def listening(s):
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and s.getsockname()[1] == broker.port

    s = broker_socket(broker.pid, listening, f"listening on port {broker.port}")
    try:
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
    finally:
        s.close()
