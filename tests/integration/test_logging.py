"""Logging and start-up: logfmt, one line per event, nothing per message at
info level; the soft open-file limit raised to the hard one and logged."""
from __future__ import annotations

import re
import resource

import pytest

from helpers import connect, recv_json, run, subscribe

# ts=… level=… msg=… then key=value pairs; a value is bare or a quoted string.
VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^\s"=]+)'
LOGFMT = re.compile(rf"^ts=\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z level=(error|warn|info|debug) "
                    rf"msg={VALUE}(?: [a-z_][a-z0-9_.]*={VALUE}?)*$")
N_MESSAGES = 200


def publish_and_receive(broker, topic: str, n: int) -> None:
    async def go():
        sub = await connect(broker.ws_url)
        pub = await connect(broker.ws_url)
        await subscribe(sub, topic, 1)
        for i in range(n):
            await pub.send(f'{{"type":"publish","topic":"{topic}","data":{i}}}')
            assert broker.post("/api/publish", {"topic": topic, "data": -i}).status == 200
        for _ in range(2 * n):
            await recv_json(sub)
        await sub.close()
        await pub.close()

    run(go())


@pytest.mark.broker_args("--log-level", "info")
def test_info_log_is_logfmt_one_line_per_event_and_nothing_per_message(broker):
    publish_and_receive(broker, "log.quiet", N_MESSAGES)
    broker.stop()
    lines = broker.stderr().splitlines()
    bad = [l for l in lines if not LOGFMT.match(l)]
    assert not bad, f"not logfmt: {bad[:5]}"
    assert not [l for l in lines if "level=debug" in l], "debug lines at --log-level info"
    # 2 x 200 messages through 3 connections and 200 HTTP requests: at info
    # level none of them is an event worth a line.
    assert not [l for l in lines if "log.quiet" in l], "a line per message at info level"
    assert len(lines) < 20, f"{len(lines)} lines at info for {N_MESSAGES} messages:\n" + "\n".join(lines[:40])
    for msg in ("msg=starting", "msg=listening", 'msg="shutting down"'):
        assert any(msg in l for l in lines), f"no {msg} line"


def test_debug_log_is_logfmt_too(broker):
    # The fixture's brokers run at debug level: per-connection events then.
    publish_and_receive(broker, "log.debug", 3)
    broker.stop()
    lines = broker.stderr().splitlines()
    assert any("level=debug" in l for l in lines)
    bad = [l for l in lines if not LOGFMT.match(l)]
    assert not bad, f"not logfmt: {bad[:5]}"


def test_soft_open_file_limit_is_raised_to_the_hard_limit_and_logged(broker_factory):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 256
    if hard != resource.RLIM_INFINITY and hard <= low:
        pytest.fail(f"the hard open-file limit {hard} leaves nothing to raise")
    # The broker inherits the lowered soft limit from this process.
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        b = broker_factory("--log-level", "info")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = open(f"/proc/{b.pid}/limits").read()
    row = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    got_soft, got_hard = row.split()[3:5]
    want = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert (got_soft, got_hard) == (want, want), row
    line = next(l for l in b.stderr().splitlines() if 'msg="open file limit"' in l)
    assert f"previous={low}" in line and "level=info" in line, line
    if hard != resource.RLIM_INFINITY:
        assert f"soft={hard} " in line + " ", line
