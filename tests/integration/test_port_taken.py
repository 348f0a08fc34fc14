"""A taken port is refused (issue 14.2): only this process's own workers
share its listening sockets (SO_REUSEPORT). A second process, another
wsbroker included, must exit 1 with "address already in use: <addr>" instead
of joining the port and silently getting half of the connections; the first
broker keeps serving. Same for the TLS and the RESP port.
"""
from __future__ import annotations

import socket

from helpers import HOST, Broker, run_broker_cmd, wait_for
from sectools import make_cert


def second_broker(*args):
    """Runs a second broker to completion; it must exit promptly (a broker that
    joined the port would run until run_broker_cmd's timeout, which fails)."""
    return run_broker_cmd(["--host", HOST, "--log-level", "info", *args], timeout=15.0)


def assert_refused(res, port):
    assert res.returncode == 1, f"exit {res.returncode}, stderr:\n{res.stderr[-2000:]}"
    assert f"address already in use: {HOST}:{port}" in res.stderr, res.stderr[-2000:]


def test_second_broker_on_a_taken_ws_port_exits_1_and_the_first_keeps_serving(broker_factory):
    first = broker_factory("--workers", "2")
    res = second_broker("--port", str(first.port), "--workers", "2")
    assert_refused(res, first.port)
    first.assert_healthy()
    # Every publish reaches the one broker: seqs of one topic are 1, 2, 3, 4
    # (two brokers sharing the port would number 1, 1, 2, 2).
    seqs = [first.post("/api/publish", {"topic": "taken.port", "data": i}).json()["seq"]
            for i in range(4)]
    assert seqs == [1, 2, 3, 4]


def test_second_broker_with_one_worker_on_a_taken_port_exits_1(broker_factory):
    first = broker_factory("--workers", "1")
    assert_refused(second_broker("--port", str(first.port), "--workers", "1"), first.port)
    first.assert_healthy()


def test_second_broker_on_a_taken_tls_port_exits_1(broker_factory, tmp_path):
    cert, key = make_cert(tmp_path)
    pf = tmp_path / "first.tlsport"
    first = broker_factory("--tls-cert", str(cert), "--tls-key", str(key), "--tls-port", "0",
                           "--tls-port-file", str(pf), "--workers", "2")
    tls_port = int(wait_for(lambda: pf.exists() and pf.read_text().strip(), 5, what="TLS port"))
    res = second_broker("--port", "0", "--tls-cert", str(cert), "--tls-key", str(key),
                        "--tls-port", str(tls_port), "--workers", "2")
    assert_refused(res, tls_port)
    first.assert_healthy()


def test_second_broker_on_a_taken_resp_port_exits_1(broker_factory, tmp_path):
    pf = tmp_path / "first.respport"
    first = broker_factory("--resp-port", "0", "--resp-port-file", str(pf))
    resp_port = int(wait_for(lambda: pf.exists() and pf.read_text().strip(), 5, what="RESP port"))
    res = second_broker("--port", "0", "--resp-host", HOST, "--resp-port", str(resp_port))
    assert_refused(res, resp_port)
    first.assert_healthy()
    with socket.create_connection((HOST, resp_port), timeout=5) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert s.recv(64).startswith(b"+PONG")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_two_brokers_started_at_once_on_one_port_only_one_listens(tmp_path):
    """Both bind before either listens: the kernel checks the port again at
    listen(), so one of them must fail there rather than both sharing it."""
    for round_ in range(3):
        port = free_port()
        brokers = [Broker(tmp_path, ["--workers", "2"], name=f"r{round_}b{i}", port=port,
                          log_level=None).spawn() for i in range(2)]
        try:
            # One has exited (1); the other has written its port file.
            wait_for(lambda: any(not b.alive() for b in brokers), 15,
                     what="one of two brokers on one port to exit")
            exited = [b for b in brokers if not b.alive()]
            running = [b for b in brokers if b.alive()]
            assert len(exited) == 1 and len(running) == 1, [b.proc.poll() for b in brokers]
            loser = exited[0]
            loser.wait_exit()
            text = loser.stderr()
            assert loser.returncode == 1, text[-2000:]
            assert f"address already in use: {HOST}:{port}" in text, text[-2000:]
            loser.check_exit(1)
            running[0].wait_ready()
            running[0].stop()
        finally:
            for b in brokers:
                b.kill()


def test_a_restart_takes_the_port_while_the_old_broker_drains(broker_factory):
    """SIGTERM closes the listening sockets at once: the next broker on the
    same host binds the port while the old one still drains its connections
    (exclusive binding must not make restarts wait for the drain)."""
    old = broker_factory("--workers", "2", "--close-timeout", "60s", "--shutdown-timeout", "60s",
                         name="old")
    lingering = old.raw_ws()  # never answers the broker's close: keeps `old` draining
    port = old.port
    old.signal()

    def refused():
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return False
        except ConnectionResetError:
            return False  # landed in a listener's queue as it closed: not yet
        except ConnectionRefusedError:
            return True

    wait_for(refused, 10, what="the old broker to stop listening")
    new = broker_factory("--port", str(port), "--workers", "2", name="new")
    assert new.port == port
    assert old.alive(), "the old broker should still be draining"
    new.assert_healthy()
    lingering.close()
    assert old.wait_exit() == 0
