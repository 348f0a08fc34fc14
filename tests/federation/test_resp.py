"""The RESP ingress with real Redis clients (redis-cli, Python redis) and raw
bytes: commands, push replies for subscribers, pipelining, bounded input and
errors as RESP error lines."""
from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest
import redis

from helpers import connect, publish, recv_json, run, subscribe, wait_for

REDIS_CLI = "redis-cli"


@pytest.fixture
def node(cluster):
    return cluster(1)[0]


def cli(node, *args, stdin=None) -> str:
    r = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(node.resp_port), *args],
                       input=stdin, capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


def raw(node, data: bytes, expect_close=False, timeout=5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", node.resp_port), timeout=timeout) as s:
        s.sendall(data)
        if not expect_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_redis_cli_commands(node):
    assert cli(node, "PING") == "PONG"
    assert cli(node, "PING", "hi") == "hi"
    assert cli(node, "ECHO", "x y") == "x y"
    assert cli(node, "HELLO", "3").startswith("NOPROTO")
    assert "wsbroker" in cli(node, "HELLO", "2")
    assert cli(node, "AUTH", "k").startswith("ERR AUTH <password> called without any password")
    assert cli(node, "FOO", "a").startswith("ERR unknown command 'FOO'")
    assert cli(node, "PUBLISH", "a").startswith("ERR wrong number of arguments for 'publish'")
    assert cli(node, "PUBLISH", "bad..topic", "1").startswith("ERR invalid topic")
    assert cli(node, "PUBLISH", "$sys.x", "1").startswith("ERR topics starting with '$'")
    assert int(cli(node, "COMMAND", "COUNT")) > 5
    assert cli(node, "PUBLISH", "cli.t", "plain text").isdigit()


def test_publish_reaches_websocket_subscribers(node):
    async def main():
        ws = await connect(node.ws_url)
        await subscribe(ws, "resp.>", 1)
        r = node.resp()
        r.publish("resp.json", '{"a":[1,2]}')
        r.publish("resp.text", "not json")
        r.publish("resp.num", "42")
        got = [await recv_json(ws) for _ in range(3)]
        assert [(m["topic"], m["data"]) for m in got] == [
            ("resp.json", {"a": [1, 2]}), ("resp.text", "not json"), ("resp.num", 42)]
        assert got[0]["seq"] >= 1
        await ws.close()

    run(main(), 20)
    assert cli(node, "PUBLISH", "resp.bin", "\xff") != ""  # redis-cli sends UTF-8 here


def test_python_redis_subscriber_gets_push_replies(node):
    r = node.resp()
    ps = r.pubsub()
    ps.subscribe("py.t")
    ps.psubscribe("py.*")
    confirmations = []
    while len(confirmations) < 2:
        m = ps.get_message(timeout=5)
        assert m is not None
        confirmations.append((m["type"], m["channel"], m["data"]))
    assert confirmations == [("subscribe", b"py.t", 1), ("psubscribe", b"py.*", 2)]

    async def pub():
        ws = await connect(node.ws_url)
        await publish(ws, "py.t", {"n": 1}, 1)
        await publish(ws, "py.u", "s", 2)
        await ws.close()

    run(pub(), 10)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        m = ps.get_message(timeout=1)
        if m is not None:
            got.append((m["type"], m.get("pattern"), m["channel"], m["data"]))
    # data is the publisher's bytes (json.dumps writes '{"n": 1}'), as sent:
    # PROTOCOL.md 4.2a.
    assert sorted(got, key=repr) == sorted([
        ("message", None, b"py.t", b'{"n": 1}'),
        ("pmessage", b"py.*", b"py.t", b'{"n": 1}'),
        ("pmessage", b"py.*", b"py.u", b'"s"'),
    ], key=repr)
    # Only subscription commands (and PING) in subscribed mode.
    with pytest.raises(redis.exceptions.ResponseError):
        ps.execute_command("PUBLISH", "x", "1")
        ps.get_message(timeout=2)
    ps.unsubscribe("py.t")
    ps.punsubscribe()
    ps.close()
    r.close()


def test_pipelined_and_inline(node):
    req = (b"*1\r\n$4\r\nPING\r\n" b"PING inline\r\n" b"*3\r\n$7\r\nPUBLISH\r\n$3\r\np.t\r\n$1\r\n1\r\n"
           b"ECHO x\r\n" b"*1\r\n$4\r\nQUIT\r\n" b"*1\r\n$4\r\nPING\r\n")
    out = raw(node, req)
    lines = out.split(b"\r\n")
    assert lines[0] == b"+PONG"
    assert lines[1:3] == [b"$6", b"inline"]
    assert lines[3].startswith(b":")
    assert lines[4:6] == [b"$1", b"x"]
    assert lines[6] == b"+OK"
    assert lines[7:] == [b""], "nothing is answered after QUIT"
    r = node.resp()
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.publish("pipe.t", str(i))
    seqs = pipe.execute()
    assert seqs == sorted(seqs) and len(set(seqs)) == 100


def test_protocol_errors_and_bounds(node):
    assert raw(node, b"*1\r\n+x\r\n", expect_close=True).startswith(
        b"-ERR Protocol error: expected '$'")
    assert raw(node, b"*99999\r\n", expect_close=True).startswith(
        b"-ERR Protocol error: too many arguments")
    big = 64 * 1024 + 1  # over the default max_message_size
    assert raw(node, b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nt\r\n$%d\r\n" % big, expect_close=True).startswith(
        b"-ERR Protocol error: too big bulk string")
    assert raw(node, b"x" * (70 * 1024), expect_close=True).startswith(
        b"-ERR Protocol error: too big inline request")
    # The node is fine afterwards.
    assert cli(node, "PING") == "PONG"
    node.assert_healthy()


def test_resp_subscriber_sees_other_nodes(redis_server, cluster):
    a, b = cluster(2)
    ps = b.resp().pubsub()
    ps.psubscribe("x.>")
    assert ps.get_message(timeout=5)["type"] == "psubscribe"
    wait_for(lambda: redis_server.numpat() == 1, 10.0, 0.02, "node B PSUBSCRIBEd")
    a.resp().publish("x.y.z", '"hi"')
    m = None
    deadline = time.monotonic() + 5
    while m is None and time.monotonic() < deadline:
        m = ps.get_message(timeout=1)
    assert m is not None and (m["type"], m["channel"], m["data"]) == ("pmessage", b"x.y.z", b'"hi"')
    ps.close()


def test_slow_resp_subscriber_is_disconnected(cluster):
    (node,) = cluster(1, "--max-outbound-bytes", "64KiB")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", node.resp_port))
    try:
        s.sendall(b"SUBSCRIBE slow.t\r\n")
        assert s.recv(100).startswith(b"*3\r\n$9\r\nsubscribe")
        wait_for(lambda: node.metric("wsbroker_resp_connections") == 1, 5.0, what="gauge")
        payload = "x" * 1000
        batch = [{"topic": "slow.t", "data": payload}] * 900
        for _ in range(12):  # ~10 MB: more than the kernel's buffers hold
            assert node.post("/api/publish", batch).status == 200
            if node.metric("wsbroker_resp_connections") == 0:
                break
        # The subscriber that never reads is cut off; everyone else goes on.
        wait_for(lambda: node.metric("wsbroker_resp_connections") == 0, 10.0, 0.05,
                 "the slow RESP subscriber to be disconnected")
    finally:
        s.close()
    assert cli(node, "PING") == "PONG"
    node.assert_healthy()


KEY_ALL = "resp-key-any-topic-0001"
KEY_CHAT = "resp-key-chat-only-0002"


def test_auth_with_api_keys(cluster):
    node = cluster(1, "--api-keys", f"{KEY_ALL},{KEY_CHAT}:chat.>")[0]
    # Keys configured: nothing but AUTH/PING/HELLO/QUIT before AUTH.
    assert cli(node, "PUBLISH", "chat.x", "1").startswith("NOAUTH")
    assert cli(node, "SUBSCRIBE", "chat.x").startswith("NOAUTH")
    assert cli(node, "AUTH", "not-a-configured-key-000").startswith("WRONGPASS")
    assert cli(node, "PING") == "PONG"
    # A key restricted to chat.> publishes there and nowhere else.
    r = node.resp(password=KEY_CHAT)
    assert r.publish("chat.room1", '{"a":1}') >= 1  # the message's seq
    with pytest.raises(redis.exceptions.NoPermissionError, match="may not publish"):
        r.publish("news.x", "1")
    r.close()
    # redis-cli's -a sends AUTH first; the unrestricted key publishes anywhere.
    out = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(node.resp_port), "--no-auth-warning",
                          "-a", KEY_ALL, "PUBLISH", "news.x", "1"],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    assert out.isdigit(), out
    # RESET forgets the key.
    out = raw(node, f"AUTH {KEY_ALL}\r\nRESET\r\nPUBLISH news.x 1\r\n".encode())
    assert out.startswith(b"+OK\r\n+RESET\r\n-NOAUTH"), out


def test_flooding_resp_publisher_is_paused_not_dropped(tmp_path, node_class):
    """A RESP publisher pipelining thousands of PUBLISHes is paused while a
    worker's inbox fills, as a WebSocket publisher is: no inbox drops (before,
    a pipelined burst was handled in one go and overflowed the other worker's
    16-message inbox: some 15,000 of 20,000 dropped)."""
    n = node_class(tmp_path, ["--workers", "2", "--worker-queue-size", "16"], "flood").start()
    try:
        total = 20000
        cmd = b"*3\r\n$7\r\nPUBLISH\r\n$7\r\nflood.t\r\n$2\r\n{}\r\n"
        with socket.create_connection(("127.0.0.1", n.resp_port), timeout=30) as s:
            s.sendall(cmd * total)
            out = b""
            while out.count(b"\r\n") < total:
                chunk = s.recv(1 << 20)
                assert chunk, "connection closed"
                out += chunk
        assert out.split(b"\r\n")[:-1] == [b":%d" % i for i in range(1, total + 1)]
        assert n.metric("wsbroker_inbox_dropped_total") == 0
        assert n.metric("wsbroker_messages_published_total") == total
    finally:
        n.stop()


def test_sigterm_drains_resp_output_then_closes(tmp_path, node_class):
    """On SIGTERM a RESP subscriber gets every push already queued for it,
    then a clean EOF, and the broker exits 0 (before, RESP connections were
    closed at once and the queued pushes were lost)."""
    # A long shutdown timeout: writing 8 MB under TSan on a loaded machine
    # took more than 20 s once; the drain, not the timer, must end it.
    n = node_class(tmp_path, ["--workers", "1", "--max-outbound-bytes", "64MiB",
                        "--shutdown-timeout", "90s"], "drain").start()
    total, payload = 8000, '"' + "x" * 1000 + '"'
    sub = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # the rest queues in the broker
    sub.connect(("127.0.0.1", n.resp_port))
    sub.settimeout(10)
    try:
        sub.sendall(b"SUBSCRIBE drain.t\r\n")
        got = b""
        while b"subscribe" not in got or not got.endswith(b":1\r\n"):
            got += sub.recv(4096)
        pub = n.resp()
        p = pub.pipeline(transaction=False)
        for _ in range(total):
            p.publish("drain.t", payload)
        assert p.execute()[-1] == total  # every push is queued by now (one worker)
        pub.close()
        n.signal(signal.SIGTERM)
        # Read only once the broker is draining (it says so), not after a pause.
        wait_for(lambda: "shutting down" in n.stderr(), 10.0, 0.01, "the drain to start")
        data = b""
        while True:
            chunk = sub.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        assert data.count(b"$7\r\nmessage\r\n") == total
        assert n.wait_exit(120) == 0
        n.check_exit()
    finally:
        sub.close()
        n.kill()
