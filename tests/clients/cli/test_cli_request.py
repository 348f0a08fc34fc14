"""wsbroker-cli req TOPIC JSON and reply PATTERN JSON against the real broker
(request/reply, PROTOCOL.md 3.7; issue 19 item 4).

Responders and subscribers run with -v and the test waits for their
"subscribed: PATTERN" line before sending a request, never a pause.
Exit statuses: 0 reply printed, 3 timeout, 4 no_responders, 1 other broker
refusals, 2 usage errors (cli.h, --help).
"""
from __future__ import annotations

import json
import signal

from test_cli import SUB_READY, start_sub


def start_reply(cli, broker, pattern, answer, *opts):
    p = cli.start("--url", broker.ws_url, "-v", *opts, "reply", pattern, answer)
    p.wait_stderr(SUB_READY + pattern)
    return p


def req(cli, broker, topic, data, *opts, timeout=15):
    return cli.run("--url", broker.ws_url, *opts, "req", topic, data, timeout=timeout)


def test_req_prints_the_reply_of_a_reply_responder(cli, broker):
    responder = start_reply(cli, broker, "dev.*.cmd", '{"ok": true, "n": [1, null]}',
                            "--count", "1")
    # A plain publish is no request: the responder neither prints nor answers it.
    plain = cli.run("--url", broker.ws_url, "pub", "dev.d7.cmd", '"not a request"')
    assert plain.returncode == 0, plain.stderr
    r = req(cli, broker, "dev.d7.cmd", '{"op":"reboot"}', "-v")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{"ok":true,"n":[1,null]}\n'
    # -v names the responder the broker stamped.
    line = next(ln for ln in r.stderr.splitlines() if "reply to dev.d7.cmd from " in ln)
    frm = json.loads(line.split(" from ", 1)[1])
    assert frm["user"] is None and frm["client"]
    assert responder.wait() == 0, responder.err_lines
    assert len(responder.out_lines) == 1, responder.out_lines
    m = json.loads(responder.out_lines[0])
    assert list(m) == ["topic", "seq", "reply_to", "data"]
    assert m["topic"] == "dev.d7.cmd" and m["data"] == {"op": "reboot"}
    assert m["reply_to"].startswith("_inbox.")


def test_req_nobody_subscribed_exits_4_at_once(cli, broker):
    r = req(cli, broker, "dev.nobody", "1", "--timeout", "60")
    assert r.returncode == 4, r.stderr
    assert r.stdout == ""
    assert "request to 'dev.nobody' failed: no_responders" in r.stderr


def test_req_timeout_exits_3(cli, broker):
    start_sub(cli, broker, "quiet.x")  # receives the request, never answers
    r = req(cli, broker, "quiet.x", "null", "--timeout", "0.2")
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""
    assert "request to 'quiet.x' failed: timeout: no reply within 200 ms" in r.stderr


def test_sub_shows_reply_to_and_pub_answers_it(cli, broker):
    """A shell responder: sub prints the inbox, pub answers the waiting req."""
    sub = start_sub(cli, broker, "--count", "1", "ask.>")
    asker = cli.start("--url", broker.ws_url, "--timeout", "30", "req", "ask.time", '"now?"')
    assert sub.wait() == 0, sub.err_lines
    m = json.loads(sub.out_lines[0])
    assert list(m) == ["topic", "seq", "reply_to", "data"] and m["data"] == "now?"
    p = cli.run("--url", broker.ws_url, "pub", m["reply_to"], '{"t":1}')
    assert p.returncode == 0, p.stderr
    assert asker.wait(timeout=15) == 0, asker.err_lines
    assert asker.out_lines == ['{"t":1}']


def test_req_broker_refusal_exits_1(cli, broker):
    # Inboxes are not request targets: forbidden.
    r = req(cli, broker, "_inbox.0123", "1")
    assert r.returncode == 1, r.stderr
    assert "request to '_inbox.0123' failed: forbidden" in r.stderr


def test_req_and_reply_usage_errors_exit_2(cli):
    cases = [
        (["req", "a"], "req: expected TOPIC and JSON"),
        (["req", "a", "1", "2"], "req: expected TOPIC and JSON"),
        (["reply", "a.>"], "reply: expected PATTERN and JSON"),
        (["req", "a.*", "1"], "invalid topic 'a.*'"),
        (["req", "a", "{bad"], "not valid JSON"),
        (["reply", "a..b", "1"], "invalid pattern 'a..b'"),
        (["reply", "a.>", "{bad"], "the reply is not valid JSON"),
        (["--timeout", "61", "req", "a", "1"], "over the broker's limit of 60 s"),
        (["--count", "2", "req", "a", "1"], "--count applies to sub and reply only"),
        (["--exec", "cat", "req", "a", "1"], "--exec applies to reply only"),
        (["--exec", "cat", "reply", "a", "1"], "reply --exec: expected PATTERN only"),
    ]
    for args, needle in cases:
        r = cli.run("--url", "ws://127.0.0.1:9/ws", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert r.stdout == ""


def start_exec(cli, broker, pattern, command, *opts):
    p = cli.start("--url", broker.ws_url, "-v", *opts, "reply", pattern, "--exec", command)
    p.wait_stderr(SUB_READY + pattern)
    return p


def test_reply_exec_answers_with_the_commands_output(cli, broker):
    # The request's data on stdin, the topic as $1.
    responder = start_exec(cli, broker, "calc.*",
                           'printf \'{"topic":"%s","in":%s}\\n\' "$1" "$(cat)"', "--count", "2")
    a = req(cli, broker, "calc.a", '{"x": [1, 2]}')
    b = req(cli, broker, "calc.b", '"s p"')
    assert (a.returncode, b.returncode) == (0, 0), (a.stderr, b.stderr)
    assert json.loads(a.stdout) == {"topic": "calc.a", "in": {"x": [1, 2]}}
    assert json.loads(b.stdout) == {"topic": "calc.b", "in": "s p"}
    assert responder.wait() == 0, responder.err_lines
    assert len(responder.out_lines) == 2


def test_reply_exec_failures_answer_nothing_and_exit_1(cli, broker):
    responder = start_exec(cli, broker, "bad.*", 'if [ "$1" = bad.status ]; then exit 3; fi; echo not json')
    r = req(cli, broker, "bad.status", "1", "--timeout", "0.3")
    assert r.returncode == 3, r.stderr
    responder.wait_stderr("--exec for a request on 'bad.status' exited with status 3; not answered")
    r = req(cli, broker, "bad.json", "1", "--timeout", "0.3")
    assert r.returncode == 3, r.stderr
    responder.wait_stderr("the --exec output is not valid JSON")
    responder.signal(signal.SIGTERM)
    assert responder.wait() == 1


def test_reply_exec_commands_are_stopped_when_reply_ends(cli, broker):
    # The shell's child holds the output pipe too: the whole group is stopped.
    responder = start_exec(cli, broker, "slow.x", "sleep 60; echo 1")
    r = req(cli, broker, "slow.x", "1", "--timeout", "0.3")
    assert r.returncode == 3, r.stderr
    responder.signal(signal.SIGTERM)
    assert responder.wait(timeout=10) == 1
    responder.wait_stderr("interrupted with 1 answer(s) not acknowledged")


def test_help_documents_req_and_reply(cli):
    r = cli.run("--help")
    assert "req TOPIC JSON" in r.stdout and "reply PATTERN JSON" in r.stdout
    assert "4   req: nobody subscribes to the topic (no_responders)" in r.stdout
