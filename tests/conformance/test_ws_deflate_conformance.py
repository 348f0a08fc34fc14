"""permessage-deflate conformance (RFC 7692), numbered after Autobahn's groups
12 (compressed messages of many sizes and fragmentations, with the client's
context carried over) and 13 (the same under each negotiation offer:
client_no_context_takeover, client_max_window_bits, server_max_window_bits).

Each case opens /echo offering the extension, checks the response (always
server_no_context_takeover, the offer's accepted parameters echoed), sends
MESSAGES compressed messages (RSV1 on the first frame only, fragmented when
the case says so, compressed with the window and context the offer allows),
and reads the echoes: each must be the same message, compressed (RSV1, then
inflated here without context: server_no_context_takeover) or plain. Then a
clean close 1000.
"""
from __future__ import annotations

import base64
import hashlib
import os
import random
import socket
import struct
import zlib

import pytest

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MESSAGES = 5
TIMEOUT = 10.0


class Conn:
    def __init__(self, port: int, offer: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = bytearray()
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall((
            f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: {offer}\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        end = self.buf.index(b"\r\n\r\n") + 4
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[:end]
        assert lines[0].startswith("HTTP/1.1 101"), lines[0]
        self.headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        assert self.headers["sec-websocket-accept"] == base64.b64encode(
            hashlib.sha1(key + GUID).digest()).decode()

    def _fill(self):
        data = self.sock.recv(1 << 20)
        assert data, "connection closed by the server"
        self.buf += data

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False):
        b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", b0, 0x80 | 127, n)
        key = os.urandom(4)
        k = (key * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big") if n else b""
        self.sock.sendall(head + key + masked)

    def recv_frame(self):
        b0, b1 = self._take(2)
        assert b1 & 0x80 == 0, "server frames are not masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0F, self._take(n)

    def recv_message(self):
        """(opcode, payload): one message, reassembled and inflated."""
        fin, rsv, op, data = self.recv_frame()
        assert rsv in (0, 0x40), f"unexpected RSV bits {rsv:#x}"
        compressed = rsv == 0x40
        assert op in (1, 2, 8), f"opcode {op}"
        parts = [data]
        while not fin:
            fin, rsv, cop, data = self.recv_frame()
            assert cop == 0 and rsv == 0, "continuation frames carry no RSV1"
            parts.append(data)
        payload = b"".join(parts)
        if compressed:
            # server_no_context_takeover: every message inflates on its own.
            payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
        return op, payload


def text_payload(n: int, seed: int) -> bytes:
    r = random.Random(seed)
    words = [b"price", b"bid", b"ask", b"volume", b"\xc2\xb5s", b"\xe2\x82\xac", b"{", b"}", b":"]
    out = bytearray()
    while len(out) < n:
        out += r.choice(words) + b" "
    # Cut at a character boundary, padded with ASCII to exactly n bytes.
    out = out[:n].decode("utf-8", "ignore").encode()
    return out + b"*" * (n - len(out))


def binary_payload(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# (case group, offer, the client's window bits, keep context across messages)
OFFERS = {
    "12": ("permessage-deflate", 15, True),
    "13.1": ("permessage-deflate; client_no_context_takeover", 15, False),
    "13.2": ("permessage-deflate; client_max_window_bits=9", 9, True),
    "13.3": ("permessage-deflate; client_max_window_bits=15", 15, True),
    "13.4": ("permessage-deflate; client_no_context_takeover; client_max_window_bits=9", 9, False),
    "13.5": ("permessage-deflate; server_max_window_bits=9", 15, True),
    "13.6": ("permessage-deflate; server_max_window_bits=15; client_max_window_bits", 15, True),
    "13.7": ("x-foo, permessage-deflate; server_max_window_bits=99, "
             "permessage-deflate; client_no_context_takeover", 15, False),
}
EXPECT_RESPONSE = {
    "12": "permessage-deflate; server_no_context_takeover",
    "13.1": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "13.2": "permessage-deflate; server_no_context_takeover",
    "13.3": "permessage-deflate; server_no_context_takeover",
    "13.4": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "13.5": "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
    "13.6": "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
    "13.7": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
}

SIZES_12 = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072]
SIZES_13 = [64, 4096, 65536]
FRAGS = [0, 256, 1024, 4096]  # 0: one frame per message


def cases():
    out = []
    i = 0
    for kind in ("text", "binary"):
        for size in SIZES_12:
            for frag in FRAGS:
                i += 1
                out.append((f"12.{1 if kind == 'text' else 2}.{i}", "12", kind, size, frag))
    for group in [g for g in OFFERS if g != "12"]:
        j = 0
        for kind in ("text", "binary"):
            for size in SIZES_13:
                for frag in (0, 1024):
                    j += 1
                    out.append((f"{group}.{j}", group, kind, size, frag))
    return out


CASES = cases()


@pytest.mark.parametrize("cid,group,kind,size,frag", CASES, ids=[c[0] for c in CASES])
def test_deflate_case(broker, cid, group, kind, size, frag):
    offer, wbits, keep_context = OFFERS[group]
    c = Conn(broker.port, offer)
    try:
        assert c.headers.get("sec-websocket-extensions") == EXPECT_RESPONSE[group]
        opcode = 1 if kind == "text" else 2
        comp = zlib.compressobj(6, zlib.DEFLATED, -wbits)
        sent = []
        for m in range(MESSAGES):
            payload = (text_payload if kind == "text" else binary_payload)(size, size * 31 + m)
            if not keep_context:
                comp = zlib.compressobj(6, zlib.DEFLATED, -wbits)
            z = comp.compress(payload) + comp.flush(zlib.Z_SYNC_FLUSH)
            assert z.endswith(b"\x00\x00\xff\xff")
            z = z[:-4]
            if frag == 0 or len(z) <= frag:
                c.send_frame(opcode, z, rsv1=True)
            else:
                chunks = [z[k:k + frag] for k in range(0, len(z), frag)]
                for k, chunk in enumerate(chunks):
                    c.send_frame(opcode if k == 0 else 0, chunk, fin=k == len(chunks) - 1, rsv1=k == 0)
            sent.append(payload)
        for payload in sent:
            op, got = c.recv_message()
            assert op == opcode
            assert got == payload, f"echo differs ({len(got)} vs {len(payload)} bytes)"
        c.send_frame(8, struct.pack("!H", 1000))
        op, body = c.recv_message()
        assert op == 8 and struct.unpack("!H", body[:2])[0] == 1000
    finally:
        c.sock.close()
