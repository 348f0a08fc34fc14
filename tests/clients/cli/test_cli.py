"""wsbroker-cli against the real broker: sub, pub, pub -, exit statuses, timeouts.

Each test starts its own broker on a free port (see conftest.py). A subscriber
runs with -v so the test can wait for "subscribed: PATTERN" on its stderr
before publishing, instead of sleeping.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import free_port

SUB_READY = "subscribed: "


def start_sub(cli, broker, *args):
    """Starts `sub` with options then patterns, and waits until every pattern
    is acknowledged."""
    patterns, opts = [], []
    it = iter(args)
    for a in it:
        if a in ("--count", "--timeout"):
            opts += [a, next(it)]
        elif a.startswith("-"):
            opts.append(a)
        else:
            patterns.append(a)
    p = cli.start("--url", broker.ws_url, "-v", *opts, "sub", *patterns)
    for pat in patterns:
        p.wait_stderr(SUB_READY + pat)
    return p


def pub(cli, broker, topic, data, *extra):
    return cli.run("--url", broker.ws_url, *extra, "pub", topic, data)


# ---- the manual and usage errors ----

def test_help_is_a_manual(cli):
    r = cli.run("--help")
    assert r.returncode == 0
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES"):
        assert f"\n{section}\n" in "\n" + r.stdout, section
    for opt in ("--url", "--token", "--count", "--timeout", "--reconnect", "--verbose"):
        assert opt in r.stdout
    assert "ws://127.0.0.1:8080/ws" in r.stdout
    assert r.stderr == ""
    v = cli.run("--version")
    assert v.returncode == 0 and v.stdout.startswith("wsbroker-cli ")


def test_usage_errors_exit_2(cli):
    cases = [
        ([], "missing command"),
        (["frob"], "unknown command 'frob'"),
        (["--bogus", "sub", "a"], "unknown option '--bogus'"),
        (["sub"], "missing PATTERN"),
        (["pub", "a"], "expected TOPIC and JSON"),
        (["pub", "a", "1", "2"], "expected TOPIC and JSON"),
        (["--count", "0", "sub", "a"], "--count"),
        (["--count", "x", "sub", "a"], "--count"),
        (["--timeout", "-1", "sub", "a"], "--timeout"),
        (["--timeout", "abc", "sub", "a"], "--timeout"),
        (["--count", "2", "pub", "a", "1"], "--count applies to sub and reply only"),
        (["--url"], "needs a value"),
        (["--url", "http://127.0.0.1:1/ws", "pub", "a", "1"], "ws://"),
        (["--cafile", "/nonexistent/ca.pem", "pub", "a", "1"], "--cafile: cannot read"),
        (["--token", "two words", "pub", "a", "1"], "token"),
        (["sub", "a..b"], "invalid pattern 'a..b'"),
        (["sub", "ok", "a.>.b"], "invalid pattern 'a.>.b'"),
        (["pub", "a.*", "1"], "invalid topic 'a.*'"),
    ]
    for args, needle in cases:
        r = cli.run(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert r.stdout == ""


def test_pub_invalid_json_exits_2_before_connecting(cli, fake_server):
    srv = fake_server()
    for bad in ('{"a":', "{bad}", "1 2", '{"k":1,"k":2}', "NaN", ""):
        r = cli.run("--url", srv.url, "pub", "a.b", bad, timeout=5)
        assert r.returncode == 2, (bad, r.stderr)
        assert "not valid JSON" in r.stderr
    big = '"' + "x" * 70000 + '"'
    r = cli.run("--url", srv.url, "pub", "a.b", big, timeout=5)
    assert r.returncode == 2 and "64 KiB" in r.stderr
    # Barrier instead of a pause: a valid publish does connect. The listen
    # backlog is FIFO, so once the server has accepted that one connection,
    # any connection an invalid run had made would have been accepted before it.
    cli.run("--url", srv.url, "--timeout", "1", "pub", "a.b", "1", timeout=10)
    deadline = time.monotonic() + 10
    while srv.accepted < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.accepted == 1


# ---- pub and sub against the broker ----

def test_sub_count_receives_what_pub_sends(cli, broker):
    sub = start_sub(cli, broker, "--count", "2", "a.b")
    r1 = pub(cli, broker, "a.b", '{"bid": 64000.5, "ask":[1,"x",null]}')
    r2 = pub(cli, broker, "a.b", '"second"', "-v")
    assert r1.returncode == 0, r1.stderr
    assert r1.stdout == "" and r1.stderr == ""
    assert r2.returncode == 0, r2.stderr
    assert "published to a.b: seq 2" in r2.stderr
    assert sub.wait() == 0
    lines = sub.out_lines
    assert len(lines) == 2
    m1, m2 = (json.loads(x) for x in lines)
    assert m1 == {"topic": "a.b", "seq": 1, "data": {"bid": 64000.5, "ask": [1, "x", None]}}
    assert list(m1) == ["topic", "seq", "data"]
    assert m2 == {"topic": "a.b", "seq": 2, "data": "second"}


def test_pub_reserved_topic_fails_with_broker_code(cli, broker):
    r = pub(cli, broker, "$sys.x", "1")
    assert r.returncode == 1
    assert "forbidden" in r.stderr
    assert "publish to '$sys.x' failed: forbidden: " in r.stderr


def test_wildcard_sub_gets_each_message_once(cli, broker):
    sub = start_sub(cli, broker, "--count", "3", "w.*", "w.>")
    for topic in ("w.a", "x.y", "w.a.b", "w", "w.c"):
        assert pub(cli, broker, topic, json.dumps(topic)).returncode == 0
    assert sub.wait() == 0
    got = [json.loads(x) for x in sub.out_lines]
    assert [(m["topic"], m["data"]) for m in got] == [("w.a", "w.a"), ("w.a.b", "w.a.b"),
                                                      ("w.c", "w.c")]


def test_data_values_of_every_json_type(cli, broker):
    # "a\u0000b": regression, the client once dropped messages holding U+0000.
    values = ['null', 'true', '-3.5', '0', '"h\\u00e9 \\"q\\""', '"a\\u0000b"', '[]', '{}',
              '{"nested":{"a":[1,{"b":null}]}}', '9007199254740993']
    sub = start_sub(cli, broker, "--count", str(len(values)), "types")
    for v in values:
        assert cli.run("--url", broker.ws_url, "pub", "types", "--", v).returncode == 0, v
    assert sub.wait() == 0
    got = [json.loads(x)["data"] for x in sub.out_lines]
    assert got == [json.loads(v) for v in values]


def test_pub_stdin_lines(cli, broker):
    sub = start_sub(cli, broker, "--count", "4", "lines")
    text = '{"n":1}\n"two"\r\n\n   \n[3]\n4'  # CRLF, blank lines, no final newline
    r = cli.run("--url", broker.ws_url, "-v", "pub", "lines", "-", input=text)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("published to lines: seq") == 4
    assert sub.wait() == 0
    assert [json.loads(x)["data"] for x in sub.out_lines] == [{"n": 1}, "two", [3], 4]
    assert [json.loads(x)["seq"] for x in sub.out_lines] == [1, 2, 3, 4]


def test_pub_stdin_many_lines_from_a_file(cli, broker, tmp_path):
    n = 3000
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"i": i, "pad": "x" * 50}) + "\n" for i in range(n)))
    sub = start_sub(cli, broker, "--count", str(n), "bulk")
    with open(path, "rb") as f:
        r = cli.run("--url", broker.ws_url, "pub", "bulk", "-", stdin=f, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sub.wait(timeout=60) == 0
    assert [json.loads(x)["data"]["i"] for x in sub.out_lines] == list(range(n))


def test_pub_stdin_invalid_line_stops_with_2(cli, broker):
    sub = start_sub(cli, broker, "--count", "2", "partial")
    r = cli.run("--url", broker.ws_url, "pub", "partial", "-", input='1\n2\n{oops\n4\n')
    assert r.returncode == 2
    assert "standard input line 3 is not valid JSON" in r.stderr
    assert sub.wait() == 0
    assert [json.loads(x)["data"] for x in sub.out_lines] == [1, 2]


def test_pub_stdin_broker_refusal_exits_1_and_goes_on(cli, broker):
    r = cli.run("--url", broker.ws_url, "pub", "$sys.x", "-", input='1\n2\n')
    assert r.returncode == 1
    assert r.stderr.count("forbidden") == 2


def test_pub_stdin_line_too_long(cli, broker):
    r = cli.run("--url", broker.ws_url, "pub", "t", "-", input='"' + "x" * 70000 + '"\n')
    assert r.returncode == 2
    assert "standard input line 1: the message (70002 bytes) is larger than the limit" in r.stderr
    # Without a newline in sight the line is refused before it is complete.
    r = cli.run("--url", broker.ws_url, "pub", "t", "-", input='"' + "x" * 200000)
    assert r.returncode == 2
    assert "standard input line 1 is longer than 65536 bytes" in r.stderr


# ---- connections, timeouts, signals ----

def test_timeout_on_silent_server(cli, fake_server):
    # The port accepts TCP connections but never answers the upgrade.
    srv = fake_server(listen_only=True)
    for args in (["pub", "t", "1"], ["sub", "t"], ["--count", "1", "sub", "t"]):
        t0 = time.monotonic()
        r = cli.run("--url", srv.url, "--timeout", "1", *args, timeout=10)
        elapsed = time.monotonic() - t0
        assert r.returncode == 3, (args, r.stderr)
        assert "timed out after 1 s connecting" in r.stderr
        assert elapsed < 3.0, elapsed


def test_connect_timeout_without_overall_timeout(cli, fake_server):
    srv = fake_server(listen_only=True)
    t0 = time.monotonic()
    r = cli.run("--url", srv.url, "--connect-timeout", "0.5", "pub", "t", "1", timeout=10)
    assert r.returncode == 1
    assert "timed out after 500 ms" in r.stderr
    assert time.monotonic() - t0 < 3.0


def test_refused_port_exits_1_at_once(cli):
    port = free_port()
    t0 = time.monotonic()
    r = cli.run("--url", f"ws://127.0.0.1:{port}/ws", "--timeout", "5", "pub", "t", "1")
    assert r.returncode == 1
    assert "cannot connect" in r.stderr and "connection refused" in r.stderr
    assert time.monotonic() - t0 < 3.0


def test_wrong_path_is_a_handshake_error(cli, broker):
    r = cli.run("--url", f"ws://127.0.0.1:{broker.port}/nope", "--reconnect", "pub", "t", "1")
    assert r.returncode == 1
    assert "HTTP 404" in r.stderr


def test_token_sent_as_header_and_query(cli, fake_server):
    srv = fake_server()
    r = cli.run("--url", srv.url + "?room=1", "--token", "s3cr+t/x", "--timeout", "0.5",
                "pub", "t", "1")
    assert r.returncode == 3
    head = srv.wait_received("\r\n\r\n")
    assert head.startswith("GET /ws?room=1&token=s3cr%2Bt%2Fx HTTP/1.1\r\n"), head
    assert "\r\nAuthorization: Bearer s3cr+t/x\r\n" in head
    assert "\r\nSec-WebSocket-Version: 13\r\n" in head
    env_r = cli.run("--timeout", "0.5", "pub", "t", "1",
                    env={"WSBROKER_URL": srv.url, "WSBROKER_TOKEN": "fromenv"})
    assert env_r.returncode == 3
    assert "Authorization: Bearer fromenv" in srv.wait_received("Bearer fromenv")


def test_sub_timeout_without_count_is_a_normal_end(cli, broker):
    t0 = time.monotonic()
    p = start_sub(cli, broker, "--timeout", "1.5", "quiet.*")
    assert pub(cli, broker, "quiet.a", "1").returncode == 0
    assert p.wait() == 0
    assert 1.0 < time.monotonic() - t0 < 5.0
    assert [json.loads(x)["data"] for x in p.out_lines] == [1]


def test_sub_count_timeout_reports_progress(cli, broker):
    p = start_sub(cli, broker, "--timeout", "1", "--count", "2", "few")
    assert pub(cli, broker, "few", "1").returncode == 0
    assert p.wait() == 3
    assert "(1 of 2 messages received)" in "\n".join(p.err_lines)


def test_sigint_ends_sub_cleanly(cli, broker):
    p = start_sub(cli, broker, "sig")
    p.signal(signal.SIGINT)
    assert p.wait() == 0


def test_broker_shutdown_ends_sub_with_1(cli, broker):
    p = start_sub(cli, broker, "down")
    broker.stop()
    assert p.wait() == 1
    assert "connection lost" in "\n".join(p.err_lines)
    assert "1001" in "\n".join(p.err_lines)


def test_sub_reconnect_survives_broker_restart(cli, broker_factory):
    b = broker_factory(name="first")
    port = b.port
    p = start_sub(cli, b, "--reconnect", "--count", "1", "again.>")
    b.stop()
    p.wait_stderr("reconnecting in")
    b2 = broker_factory(name="second", port=port)
    p.wait_stderr("connected to", timeout=10)
    # The resubscription follows the connection; publish until it lands.
    deadline = time.monotonic() + 10
    while p.proc.poll() is None and time.monotonic() < deadline:
        assert pub(cli, b2, "again.x", '"back"').returncode == 0
        time.sleep(0.05)
    assert p.wait() == 0
    assert json.loads(p.out_lines[0])["data"] == "back"


def test_sub_output_to_closed_pipe_exits(cli, broker):
    # `wsbroker-cli sub ... | head -1`: once the reader is gone the CLI ends.
    r, w = os.pipe()
    proc = subprocess.Popen([cli.path, "--url", broker.ws_url, "-v", "sub", "piped"],
                            stdout=w, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(w)
    os.close(r)
    try:
        deadline = time.monotonic() + 10
        line = b""
        while SUB_READY.encode() not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert SUB_READY.encode() in line
        assert pub(cli, broker, "piped", "1").returncode == 0
        assert proc.wait(timeout=10) == 1
        rest = proc.stderr.read().decode(errors="replace")
        assert "Broken pipe" not in rest  # a closed reader ends it quietly
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stderr.close()


def test_idle_subscriber_answers_pings(cli, broker_factory):
    # Only the client's pongs keep the connection inside the idle timeout.
    b = broker_factory("--idle-timeout", "1.5", "--ping-interval", "0.5", name="pinging")
    p = start_sub(cli, b, "--timeout", "3.5", "idle")
    assert p.wait() == 0
    assert "connection lost" not in "\n".join(p.err_lines)
