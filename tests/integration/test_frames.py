"""Hand-built WebSocket frames over raw sockets: every class of bad frame gets
the documented close code, the close frame arrives intact before a clean FIN,
and afterwards a separate healthy client still publishes and receives."""
from __future__ import annotations

import struct
import time

import pytest

import wsraw
from wsraw import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, build_frame, close_payload

PING_JSON = b'{"type":"ping","id":1}'


def expect_broker_close(c: wsraw.Conn, code: int, timeout: float = 5.0) -> wsraw.Frame:
    f = c.expect_close(timeout)
    assert f.close_code == code, f"expected close {code}, got {f.close_code} {f.payload[2:]!r}; before it: {c.skipped}"
    return f


def finish(c: wsraw.Conn, broker) -> None:
    """After a protocol-violation close the broker does not wait for our close
    frame: it shuts its side down (FIN) and drains. The FIN must be clean."""
    assert c.wait_closed() == "eof", "broker reset the connection instead of a clean FIN"
    c.close()
    broker.assert_healthy()


# (name, bytes to send after the handshake, expected close code)
BAD_FRAMES = [
    ("unmasked_client_frame", build_frame(OP_TEXT, PING_JSON, mask=False), 1002),
    ("reserved_opcode_3", build_frame(0x3, b"x"), 1002),
    ("reserved_opcode_7", build_frame(0x7, b""), 1002),
    ("reserved_control_opcode_0xB", build_frame(0xB, b""), 1002),
    ("reserved_control_opcode_0xF", build_frame(0xF, b"x"), 1002),
    ("rsv1_set", build_frame(OP_TEXT, PING_JSON, rsv=4), 1002),
    ("rsv2_set", build_frame(OP_TEXT, PING_JSON, rsv=2), 1002),
    ("rsv3_set", build_frame(OP_TEXT, PING_JSON, rsv=1), 1002),
    ("rsv_on_ping", build_frame(OP_PING, b"", rsv=4), 1002),
    ("fragmented_ping", build_frame(OP_PING, b"ab", fin=False) + build_frame(OP_CONT, b"cd"), 1002),
    ("fragmented_close", build_frame(OP_CLOSE, close_payload(1000), fin=False), 1002),
    ("ping_126_bytes", build_frame(OP_PING, b"p" * 126), 1002),
    ("pong_200_bytes", build_frame(OP_PONG, b"p" * 200), 1002),
    ("close_126_bytes", build_frame(OP_CLOSE, close_payload(1000, b"r" * 124)), 1002),
    ("ping_with_16bit_len_form_over_125", build_frame(OP_PING, b"p" * 130, length_form=16), 1002),
    ("continuation_without_start", build_frame(OP_CONT, b"x"), 1002),
    ("new_text_inside_fragmented_message",
     build_frame(OP_TEXT, b'{"type":', fin=False) + build_frame(OP_TEXT, b'"ping"}'), 1002),
    ("length_msb_set", b"\x81\xff" + struct.pack("!Q", 1 << 63) + b"\x00\x00\x00\x00", 1002),
    ("bad_utf8_text", build_frame(OP_TEXT, b'{"type":"ping","x":"\xff"}'), 1007),
    ("overlong_utf8", build_frame(OP_TEXT, b'"\xc0\xaf"'), 1007),
    ("utf16_surrogate_in_utf8", build_frame(OP_TEXT, b'"\xed\xa0\x80"'), 1007),
    ("codepoint_above_10ffff", build_frame(OP_TEXT, b'"\xf4\x90\x80\x80"'), 1007),
    ("truncated_utf8_at_message_end", build_frame(OP_TEXT, b'"\xe2\x82'), 1007),
    ("bad_utf8_split_across_fragments",
     build_frame(OP_TEXT, b'"\xe2\x82', fin=False) + build_frame(OP_CONT, b'\x28"'), 1007),
    ("bad_utf8_in_second_fragment",
     build_frame(OP_TEXT, b'{"a":"ok', fin=False) + build_frame(OP_CONT, b'\x80"}'), 1007),
    ("truncated_utf8_at_end_of_fragments",
     build_frame(OP_TEXT, b'"ab', fin=False) + build_frame(OP_CONT, b"\xf0\x9f\x98"), 1007),
    ("close_code_999", build_frame(OP_CLOSE, close_payload(999)), 1002),
    ("close_code_0", build_frame(OP_CLOSE, close_payload(0)), 1002),
    ("close_code_1004", build_frame(OP_CLOSE, close_payload(1004)), 1002),
    ("close_code_1005", build_frame(OP_CLOSE, close_payload(1005)), 1002),
    ("close_code_1006", build_frame(OP_CLOSE, close_payload(1006)), 1002),
    ("close_code_1015", build_frame(OP_CLOSE, close_payload(1015)), 1002),
    ("close_code_2999", build_frame(OP_CLOSE, close_payload(2999)), 1002),
    ("close_code_5000", build_frame(OP_CLOSE, close_payload(5000)), 1002),
    ("close_code_65535", build_frame(OP_CLOSE, close_payload(65535)), 1002),
    ("close_payload_one_byte", build_frame(OP_CLOSE, b"\x03"), 1002),
    ("close_reason_bad_utf8", build_frame(OP_CLOSE, close_payload(1000, b"bye\xff")), 1007),
    ("binary_frame", build_frame(OP_BINARY, b"\x00\x01\x02"), 1003),
    ("fragmented_binary", build_frame(OP_BINARY, b"\x00", fin=False) + build_frame(OP_CONT, b"\x01"), 1003),
    ("oversized_message_default_limit", build_frame(OP_TEXT, b"x" * 100, length=64 * 1024 + 1), 1009),
]


@pytest.mark.parametrize("name,data,code", BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_frame_closes_with_documented_code(broker, name, data, code):
    c = broker.raw_ws()
    c.send(data)
    expect_broker_close(c, code)
    # Nothing but (at most) replies came before the close; no message was processed
    # from the bad frame itself.
    for s in c.skipped:
        assert s.opcode in (OP_TEXT, OP_PING, OP_PONG), s
    if code == 1003:
        # Not a violation of RFC 6455: the broker waits for our close reply.
        c.send_close(1003)
    finish(c, broker)


def test_binary_frame_close_waits_for_client_close_then_fin(broker):
    c = broker.raw_ws()
    c.send_frame(OP_BINARY, b"\x01")
    expect_broker_close(c, 1003)
    # Text sent after the broker's close is ignored (no reply), then our close
    # completes the handshake.
    c.send_json({"type": "ping", "id": 1})
    c.send_close(1000)
    assert c.read_to_eof() == b"", "data after the broker's close frame"
    c.close()
    broker.assert_healthy()


def test_client_that_keeps_sending_after_the_brokers_close_still_receives_it(broker):
    """Closing a socket that still has unread input makes the kernel send RST,
    which destroys the output not yet delivered, the close frame included.
    Here the close frame is stuck behind replies the client has not read
    while the client goes on sending for a second: the broker must keep
    draining (and discarding) its input so that, once the client reads, the
    1002 close arrives intact and is followed by a clean FIN."""
    c = broker.raw_ws(rcvbuf=4096)
    # Replies the client does not read yet fill its receive window, so the
    # close frame waits in the broker's socket and queue.
    c.send(b"".join(build_frame(OP_TEXT, b'{"type":"ping","id":%d}' % i) for i in range(2000)))
    c.send(build_frame(OP_TEXT, PING_JSON, rsv=4))  # RSV1 without an extension: 1002
    junk = build_frame(OP_TEXT, b'{"type":"ping","id":7}') * 256
    c.sock.setblocking(False)
    sent = 0
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        try:
            sent += c.sock.send(junk)
        except BlockingIOError:
            time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError) as e:
            pytest.fail(f"the broker reset the connection after {sent} bytes sent behind the bad frame: {e!r}")
    c.sock.setblocking(True)
    f = expect_broker_close(c, 1002)
    assert all(s.opcode == OP_TEXT for s in c.skipped), c.skipped[-3:]
    assert f.payload[2:], "the close frame carries a reason"
    finish(c, broker)


@pytest.mark.broker_args("--max-message-size", "1KiB")
def test_message_over_max_message_size_closes_1009(broker):
    c = broker.raw_ws()
    assert c.welcome["limits"]["max_message_size"] == 1024
    # Exactly at the limit is fine (a valid JSON document padded with spaces).
    body = b'{"type":"ping","id":1}'
    c.send_frame(OP_TEXT, body + b" " * (1024 - len(body)))
    assert c.recv_json() == {"type": "pong", "id": 1}
    # One byte more is too big; checked at the frame header, before the payload.
    c.send(build_frame(OP_TEXT, b"", length=1025))
    expect_broker_close(c, 1009)
    finish(c, broker)


@pytest.mark.broker_args("--max-message-size", "1KiB")
def test_fragmented_message_over_max_message_size_closes_1009(broker):
    c = broker.raw_ws()
    c.send(build_frame(OP_TEXT, b" " * 600, fin=False))
    c.send(build_frame(OP_CONT, b" " * 600, fin=True))
    expect_broker_close(c, 1009)
    finish(c, broker)


@pytest.mark.broker_args("--max-message-size", "1KiB")
def test_websockets_client_sending_too_big_message_sees_1009(broker):
    from helpers import connect, run

    async def go():
        import websockets
        ws = await connect(broker.ws_url)
        await ws.send("x" * 2000)
        try:
            await ws.recv()
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        return ws.close_code

    assert run(go()) == 1009
    broker.assert_healthy()


def test_valid_utf8_split_across_fragments_is_accepted(broker):
    sub = broker.raw_ws()
    sub.send_json({"type": "subscribe", "topic": "utf8", "id": 1})
    assert sub.recv_json() == {"type": "ack", "id": 1}
    c = broker.raw_ws()
    msg = '{"type":"publish","topic":"utf8","data":"€😀","id":2}'.encode()
    cut = msg.index("€".encode()) + 1  # inside the 3-byte euro sign
    cut2 = msg.index("😀".encode()) + 2  # inside the 4-byte emoji
    c.send(build_frame(OP_TEXT, msg[:cut], fin=False))
    c.send(build_frame(OP_CONT, msg[cut:cut2], fin=False))
    c.send(build_frame(OP_CONT, msg[cut2:], fin=True))
    assert c.recv_json() == {"type": "ack", "id": 2, "seq": 1}
    assert sub.recv_json()["data"] == "€😀"


def test_control_frames_interleaved_in_fragmented_message(broker):
    c = broker.raw_ws()
    c.send(build_frame(OP_TEXT, b'{"type":', fin=False))
    c.send(build_frame(OP_PING, b"mid"))
    c.send(build_frame(OP_PONG, b"unsolicited"))
    c.send(build_frame(OP_CONT, b'"ping",', fin=False))
    c.send(build_frame(OP_CONT, b'"id":5}', fin=True))
    f = c.recv_frame()
    assert f.opcode == OP_PONG and f.payload == b"mid" and f.fin and not f.masked
    assert c.recv_json() == {"type": "pong", "id": 5}


def test_ping_payload_is_echoed_in_pong(broker):
    c = broker.raw_ws()
    for payload in (b"", b"hello", bytes(range(125))):
        c.send_frame(OP_PING, payload)
        f = c.recv_frame()
        assert (f.opcode, f.payload, f.fin, f.masked) == (OP_PONG, payload, True, False)


def test_unsolicited_pong_is_ignored(broker):
    c = broker.raw_ws()
    c.send_frame(OP_PONG, b"whatever")
    c.send_json({"type": "ping", "id": 3})
    assert c.recv_json(skip_pings=False) == {"type": "pong", "id": 3}


def test_empty_fragments_and_zero_length_frames(broker):
    c = broker.raw_ws()
    c.send(build_frame(OP_TEXT, b"", fin=False))
    c.send(build_frame(OP_CONT, PING_JSON, fin=False))
    c.send(build_frame(OP_CONT, b"", fin=True))
    assert c.recv_json() == {"type": "pong", "id": 1}


def test_non_minimal_length_encodings_are_accepted(broker):
    c = broker.raw_ws()
    c.send(build_frame(OP_TEXT, PING_JSON, length_form=16))
    assert c.recv_json() == {"type": "pong", "id": 1}
    c.send(build_frame(OP_TEXT, PING_JSON, length_form=64))
    assert c.recv_json() == {"type": "pong", "id": 1}


def test_frames_split_at_every_byte_boundary(broker):
    c = broker.raw_ws()
    frame = build_frame(OP_TEXT, b'{"type":"ping","id":9}' + b" " * 200, length_form=64)
    for i in range(len(frame)):
        c.send(frame[i : i + 1])
    assert c.recv_json() == {"type": "pong", "id": 9}


def test_message_spanning_reads_is_reassembled(broker):
    sub = broker.raw_ws()
    sub.send_json({"type": "subscribe", "topic": "span", "id": 1})
    assert sub.recv_json()["type"] == "ack"
    c = broker.raw_ws()
    data = "".join(chr(0x41 + i % 26) for i in range(60000))
    msg = ('{"type":"publish","topic":"span","data":"%s","id":2}' % data).encode()
    frame = build_frame(OP_TEXT, msg)
    # Separate writes with a pause so the broker sees several reads: the first
    # slice of a message is borrowed from its read buffer and must be copied
    # before the next read overwrites it.
    for part in (frame[:10], frame[10:30000], frame[30000:]):
        c.send(part)
        time.sleep(0.05)
    assert c.recv_json() == {"type": "ack", "id": 2, "seq": 1}
    m = sub.recv_json()
    assert m["data"] == data


def test_many_fragments_reassembled(broker):
    c = broker.raw_ws()
    msg = b'{"type":"ping","id":11}' + b" " * 3000
    pieces = [msg[i : i + 7] for i in range(0, len(msg), 7)]
    out = b""
    for i, p in enumerate(pieces):
        op = OP_TEXT if i == 0 else OP_CONT
        out += build_frame(op, p, fin=(i == len(pieces) - 1))
    c.send(out)
    assert c.recv_json() == {"type": "pong", "id": 11}


def test_two_bad_clients_do_not_affect_a_subscribed_client(broker):
    good = broker.raw_ws()
    good.send_json({"type": "subscribe", "topic": "steady", "id": 1})
    assert good.recv_json()["type"] == "ack"
    for data in (build_frame(0x3, b""), build_frame(OP_TEXT, b"\xff")):
        bad = broker.raw_ws()
        bad.send(data)
        bad.expect_close()
        bad.close()
    r = broker.post("/api/publish", {"topic": "steady", "data": "still here"})
    assert r.status == 200 and r.json() == {"seq": 1}, r
    assert good.recv_json()["data"] == "still here"
