"""The listener: IPv6 as well as IPv4 (with the listening line DESIGN.md's
command-line contract promises) and the configurable listen backlog."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess

import pytest

from helpers import connect, recv_json, run, subscribe


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
