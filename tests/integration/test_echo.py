"""The optional echo endpoint (--echo-path) used by conformance suites."""
from __future__ import annotations

import pytest

import wsraw
from helpers import run
from wsraw import OP_BINARY, OP_CONT, OP_TEXT, build_frame


@pytest.mark.broker_args("--echo-path", "/echo")
def test_echo_endpoint_echoes_text_and_binary_without_welcome(broker):
    c = broker.raw_ws("/echo", read_welcome=False)
    c.send_frame(OP_TEXT, "héllo")
    f = c.recv_frame()
    assert (f.opcode, f.payload, f.fin, f.masked) == (OP_TEXT, "héllo".encode(), True, False)
    c.send_frame(OP_BINARY, bytes(range(256)) * 4)
    f = c.recv_frame()
    assert (f.opcode, f.payload) == (OP_BINARY, bytes(range(256)) * 4)
    # A fragmented message comes back as one message.
    c.send(build_frame(OP_BINARY, b"ab", fin=False) + build_frame(OP_CONT, b"cd", fin=False)
           + build_frame(OP_CONT, b"ef"))
    f = c.recv_frame()
    assert (f.opcode, f.payload, f.fin) == (OP_BINARY, b"abcdef", True)
    c.send_close(1000)
    assert c.expect_close().close_code == 1000


@pytest.mark.broker_args("--echo-path", "/echo")
def test_echo_endpoint_with_websockets_library(broker):
    import websockets

    async def go():
        async with websockets.connect(broker.ws_url_for("/echo"), ping_interval=None, max_size=None) as ws:
            for msg in ["", "x" * 60000, b"\x00\xff" * 1000]:
                await ws.send(msg)
                assert await ws.recv() == msg

    run(go())


def test_echo_path_off_by_default(broker):
    with wsraw.Conn(broker.host, broker.port) as c:
        c.send(wsraw.upgrade_request("/echo"))
        assert wsraw.read_response(c).status == 404


@pytest.mark.broker_args("--echo-path", "/echo")
def test_echo_endpoint_rejects_bad_utf8_with_1007(broker):
    c = broker.raw_ws("/echo", read_welcome=False)
    c.send_frame(OP_TEXT, b"\xc3\x28")
    assert c.expect_close().close_code == 1007
    assert c.wait_closed() == "eof"
