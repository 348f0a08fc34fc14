"""permessage-deflate (RFC 7692, issue 20): negotiation, the shared compressed
frame of a published message, compressed messages in (fragmented, with and
without context takeover), and the failures: RSV1 without the extension or on
a continuation (1002), a zip bomb (1009), data that is not deflate (1007).
Raw sockets for byte-exact frames (zlib compresses and inflates), Python
`websockets` and Node `ws` for real clients that negotiate the extension.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

import wsraw
from helpers import run
from wsraw import OP_CONT, OP_TEXT, build_frame

ROOT = Path(__file__).resolve().parents[2]
PMD = "permessage-deflate"


def deflate(data: bytes, obj=None) -> bytes:
    """A message compressed as RFC 7692 7.2.1 says (the sync flush's tail removed)."""
    c = obj or zlib.compressobj(6, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(payload: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


def connect(broker, offer: str | None, path: str = "/ws", read_welcome: bool = True):
    """A raw connection offering `offer`; returns (conn, the response's extension header)."""
    c = broker.conn()
    key = wsraw.new_key()
    headers = {"Sec-WebSocket-Extensions": offer} if offer is not None else None
    c.send(wsraw.upgrade_request(path, wsraw.host_port(broker.host, broker.port), key, headers=headers))
    resp = wsraw.read_response(c)
    assert resp.status == 101, resp
    assert resp.header("Sec-WebSocket-Accept") == wsraw.accept_key(key)
    if read_welcome:
        c.welcome = recv_json(c)
        assert c.welcome["type"] == "welcome"
    return c, resp.header("Sec-WebSocket-Extensions")


def recv_msg(c) -> tuple[wsraw.Frame, bytes]:
    """The next data frame and its payload, inflated when RSV1 is set."""
    while True:
        f = c.recv_frame()
        if f.opcode in (0x9, 0xA):
            continue
        assert f.fin and f.opcode == OP_TEXT, f
        return f, inflate(f.payload) if f.rsv & 4 else f.payload


def recv_json(c):
    return json.loads(recv_msg(c)[1])


def subscribe(c, topic: str):
    c.send(wsraw.text_frame({"type": "subscribe", "topic": topic, "id": 1}))
    assert recv_json(c) == {"type": "ack", "id": 1}


def payload_of(size: int) -> dict:
    # JSON like a market feed: repetitive keys, varying numbers.
    rows = []
    i = 0
    while len(json.dumps(rows)) < size:
        rows.append({"symbol": f"SYM{i % 50}", "bid": 100 + i * 0.25, "ask": 100.5 + i * 0.25, "volume": i * 7})
        i += 1
    return {"rows": rows}


@pytest.mark.parametrize("offer,expect", [
    (PMD, f"{PMD}; server_no_context_takeover"),
    (f"{PMD}; client_max_window_bits", f"{PMD}; server_no_context_takeover"),
    (f"{PMD}; client_no_context_takeover", f"{PMD}; server_no_context_takeover; client_no_context_takeover"),
    (f"{PMD}; server_max_window_bits=10", f"{PMD}; server_no_context_takeover; server_max_window_bits=10"),
    (f"{PMD}; server_max_window_bits=16, {PMD}", f"{PMD}; server_no_context_takeover"),
    (f"{PMD}; nonsense", None),
    ("x-webkit-deflate-frame", None),
    (None, None),
])
def test_negotiation_answers_first_acceptable_offer(broker, offer, expect):
    c, ext = connect(broker, offer)
    assert ext == expect


@pytest.mark.broker_args("--compression-enabled", "false")
def test_compression_disabled_declines_and_rsv1_is_a_protocol_error(broker):
    c, ext = connect(broker, PMD)
    assert ext is None
    # RSV1 without the extension negotiated: 1002.
    c.send(build_frame(OP_TEXT, deflate(b'{"type":"ping"}'), rsv=4))
    assert c.expect_close().close_code == 1002


def test_rsv1_without_negotiation_closes_1002(broker):
    c, _ = connect(broker, None)
    c.send(build_frame(OP_TEXT, deflate(b'{"type":"ping"}'), rsv=4))
    assert c.expect_close().close_code == 1002


def test_plain_and_deflate_subscribers_share_one_compressed_frame(broker):
    """One topic, three deflate subscribers and one plain: the deflate ones get
    the same RSV1 frame, the plain one the plain frame, all the same message;
    a message under compression.min_size goes out plain to everyone."""
    subs = [connect(broker, PMD)[0] for _ in range(3)]
    plain, _ = connect(broker, None)
    for c in subs + [plain]:
        subscribe(c, "feed")
    pub, _ = connect(broker, None)
    before = broker.metrics()
    big = payload_of(1024)
    pub.send(wsraw.text_frame({"type": "publish", "topic": "feed", "data": big, "id": 2}))
    assert recv_json(pub)["type"] == "ack"
    pf, pbytes = recv_msg(plain)
    assert pf.rsv == 0
    assert json.loads(pbytes)["data"] == big
    frames = []
    for c in subs:
        f, body = recv_msg(c)
        assert f.rsv == 4, f  # RSV1: compressed
        assert body == pbytes  # the same bytes the plain subscriber got
        assert len(f.payload) < len(pbytes) / 2
        frames.append(f.payload)
    assert frames[0] == frames[1] == frames[2]
    after = broker.metrics()
    # Compressed at most once per worker, whatever the number of subscribers.
    workers = int(after.get("wsbroker_workers", 1))
    ran = after["wsbroker_deflate_messages_total"] - before.get("wsbroker_deflate_messages_total", 0)
    assert 1 <= ran <= min(workers, 3)
    assert after["wsbroker_deflate_deliveries_total"] - before.get("wsbroker_deflate_deliveries_total", 0) == 3
    assert after["wsbroker_deflate_bytes_out_total"] < after["wsbroker_deflate_bytes_in_total"]
    # Below min_size (128 B by default): plain for everyone.
    pub.send(wsraw.text_frame({"type": "publish", "topic": "feed", "data": "small", "id": 3}))
    assert recv_json(pub)["type"] == "ack"
    for c in subs + [plain]:
        f, body = recv_msg(c)
        assert f.rsv == 0 and json.loads(body)["data"] == "small"


@pytest.mark.broker_args("--compression-min-size", "0")
def test_small_window_client_gets_only_messages_that_fit_it(broker):
    """server_max_window_bits=8: a message longer than 256 bytes cannot be
    compressed for it by a shared 32 KiB-window compressor, so it goes plain;
    a short one is compressed (its references stay inside it)."""
    c, ext = connect(broker, f"{PMD}; server_max_window_bits=8")
    assert ext.endswith("server_max_window_bits=8")
    subscribe(c, "w")
    pub, _ = connect(broker, None)
    pub.send(wsraw.text_frame({"type": "publish", "topic": "w", "data": "ab" * 40}))
    f, body = recv_msg(c)
    assert f.rsv == 4 and json.loads(body)["data"] == "ab" * 40
    pub.send(wsraw.text_frame({"type": "publish", "topic": "w", "data": payload_of(1024)}))
    f, body = recv_msg(c)
    assert f.rsv == 0 and json.loads(body)["data"] == payload_of(1024)


def test_compressed_fragmented_publish_in(broker):
    c, _ = connect(broker, PMD)
    subscribe(c, "in")
    data = payload_of(3000)
    msg = json.dumps({"type": "publish", "topic": "in", "data": data, "id": 9}).encode()
    z = deflate(msg)
    third = len(z) // 3
    # RSV1 on the first frame only (RFC 7692 6.1).
    c.send(build_frame(OP_TEXT, z[:third], fin=False, rsv=4)
           + build_frame(OP_CONT, z[third:2 * third], fin=False)
           + build_frame(0x9, b"between")  # a control frame between fragments
           + build_frame(OP_CONT, z[2 * third:]))
    got = {}
    while len(got) < 2:
        f = c.recv_frame()
        if f.opcode == 0xA:
            assert f.payload == b"between"
            continue
        m = json.loads(inflate(f.payload) if f.rsv & 4 else f.payload)
        got[m["type"]] = m
    assert got["ack"]["id"] == 9
    assert got["message"]["data"] == data


def test_context_takeover_in_both_modes(broker):
    """Without client_no_context_takeover the broker keeps the client's
    context across messages (the second refers back into the first); with
    it, every message stands alone."""
    c, ext = connect(broker, PMD)
    assert "client_no_context_takeover" not in ext
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    for i in range(3):
        c.send(build_frame(OP_TEXT, deflate(json.dumps({"type": "ping", "id": i}).encode(), comp), rsv=4))
        assert recv_json(c) == {"type": "pong", "id": i}
    c2, ext = connect(broker, f"{PMD}; client_no_context_takeover")
    assert ext.endswith("client_no_context_takeover")
    for i in range(3):
        c2.send(build_frame(OP_TEXT, deflate(json.dumps({"type": "ping", "id": i}).encode()), rsv=4))
        assert recv_json(c2) == {"type": "pong", "id": i}


def test_rsv1_on_continuation_closes_1002(broker):
    c, _ = connect(broker, PMD)
    z = deflate(b'{"type":"ping","id":1}')
    c.send(build_frame(OP_TEXT, z[:4], fin=False, rsv=4) + build_frame(OP_CONT, z[4:], rsv=4))
    assert c.expect_close().close_code == 1002


def test_rsv1_on_control_frame_closes_1002(broker):
    c, _ = connect(broker, PMD)
    c.send(build_frame(0x9, b"", rsv=4))
    assert c.expect_close().close_code == 1002


@pytest.mark.broker_args("--max-message-size", "64KiB")
def test_zip_bomb_closes_1009(broker):
    """10 MB of spaces deflate to ~10 KB, well under max_message_size on the
    wire; the broker stops inflating at 64 KiB and closes with 1009."""
    c, _ = connect(broker, PMD)
    bomb = deflate(b"[" + b" " * 10_000_000 + b"]")
    assert len(bomb) < 64 * 1024
    c.send(build_frame(OP_TEXT, bomb, rsv=4))
    assert c.expect_close().close_code == 1009
    broker.assert_healthy()


@pytest.mark.broker_args("--max-message-size", "64KiB")
def test_inflated_exactly_at_limit_is_accepted(broker):
    c, _ = connect(broker, PMD)
    msg = json.dumps({"type": "ping", "id": 5, "pad": ""}).encode()
    msg = msg[:-2] + b" " * (64 * 1024 - len(msg)) + msg[-2:]
    assert len(msg) == 64 * 1024
    c.send(build_frame(OP_TEXT, deflate(msg), rsv=4))
    assert recv_json(c) == {"type": "pong", "id": 5}


def test_invalid_deflate_data_closes_1007(broker):
    c, _ = connect(broker, PMD)
    c.send(build_frame(OP_TEXT, b"\xff\xff\xff\xff", rsv=4))
    assert c.expect_close().close_code == 1007


def test_inflated_invalid_utf8_closes_1007(broker):
    c, _ = connect(broker, PMD)
    c.send(build_frame(OP_TEXT, deflate(b'{"type":"ping","x":"\xff"}'), rsv=4))
    assert c.expect_close().close_code == 1007


def test_websockets_library_both_directions(broker):
    """python3-websockets negotiates the extension and compresses its own
    sends: publishes in, messages out, intact."""
    import websockets

    async def go():
        async with websockets.connect(broker.ws_url, ping_interval=None, max_size=None) as sub, \
                websockets.connect(broker.ws_url, ping_interval=None, max_size=None) as pub:
            for ws in (sub, pub):
                assert ws.response_headers["Sec-WebSocket-Extensions"].startswith(PMD)
                assert json.loads(await ws.recv())["type"] == "welcome"
            await sub.send(json.dumps({"type": "subscribe", "topic": "lib", "id": 1}))
            assert json.loads(await sub.recv()) == {"type": "ack", "id": 1}
            for size in (10, 1024, 40000):
                data = payload_of(size)
                await pub.send(json.dumps({"type": "publish", "topic": "lib", "data": data}))
                m = json.loads(await sub.recv())
                assert m["data"] == data

    run(go())


def test_node_ws_both_directions(broker):
    node = shutil.which("node")
    ws_pkg = ROOT / "clients" / "js" / "node_modules" / "ws"
    assert node and ws_pkg.is_dir(), "needs node and `make deps-npm` (clients/js/node_modules/ws)"
    script = r"""
import { createRequire } from 'node:module';
const require = createRequire(process.argv[2]);
const WebSocket = require('ws');
const url = process.argv[3];
const opts = { perMessageDeflate: { threshold: 0 } };
function open() {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, opts);
    const q = []; let wait = null;
    ws.on('message', (d) => { const m = JSON.parse(d.toString()); if (wait) { const w = wait; wait = null; w(m); } else q.push(m); });
    ws.next = () => q.length ? Promise.resolve(q.shift()) : new Promise((r) => { wait = r; });
    ws.on('open', () => res(ws)); ws.on('error', rej);
  });
}
const sub = await open(), pub = await open();
if (!/permessage-deflate/.test(sub.extensions)) throw new Error('not negotiated: ' + sub.extensions);
await sub.next(); await pub.next();
sub.send(JSON.stringify({ type: 'subscribe', topic: 'node', id: 1 }));
await sub.next();
const data = { text: 'node '.repeat(2000), n: [1, 2, 3] };
pub.send(JSON.stringify({ type: 'publish', topic: 'node', data, id: 2 }));
const m = await sub.next();
if (JSON.stringify(m.data) !== JSON.stringify(data)) throw new Error('mismatch');
console.log('ok ' + sub.extensions);
sub.close(); pub.close();
"""
    path = broker.workdir / "deflate_ws.mjs"
    path.write_text(script)
    r = subprocess.run([node, str(path), str(ROOT / "clients" / "js" / "package.json"), broker.ws_url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok permessage-deflate")


@pytest.mark.broker_args("--echo-path", "/echo")
def test_echo_endpoint_inflates(broker):
    c, ext = connect(broker, PMD, path="/echo", read_welcome=False)
    assert ext is not None
    msg = "héllo " * 500
    c.send(build_frame(OP_TEXT, deflate(msg.encode()), rsv=4))
    f, body = recv_msg(c)
    assert body.decode() == msg
