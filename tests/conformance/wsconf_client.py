"""Raw WebSocket client for the conformance suite.

Frames going out are built byte by byte here (so a case can send anything,
including frames no library would produce). Frames coming back are decoded
by an independent parser: ``websockets.frames.Frame.parse`` from Debian's
python3-websockets, driven by its generator-based ``StreamReader``. Nothing
here shares code with the broker's C codec.

The socket is non-blocking and every wait is bounded by the case deadline;
while a large write is in progress, incoming bytes are read as well, so a
server that echoes while we are still sending cannot deadlock the test.
"""

from __future__ import annotations

import base64
import hashlib
import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field

from websockets.exceptions import ProtocolError
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


class CaseTimeout(AssertionError):
    """The case deadline passed while waiting for the server."""


class ServerViolation(AssertionError):
    """The server sent something RFC 6455 forbids."""


def on_alarm(signum, frame):
    """SIGALRM handler: the backstop of a case's deadline."""
    raise CaseTimeout("case timeout (backstop alarm)")


# ---- outgoing frames -------------------------------------------------------


def mask_bytes(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


@dataclass
class F:
    """One outgoing frame. `length` overrides the payload length written in
    the header (to announce more than is sent); `len_form` forces the 7-bit,
    16-bit or 64-bit length encoding (7, 16 or 64) instead of the minimal one."""

    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0  # 3 bits: 4 = RSV1, 2 = RSV2, 1 = RSV3
    masked: bool = True
    length: int | None = None
    len_form: int | None = None
    key: bytes | None = None

    def encode(self) -> bytes:
        n = len(self.payload) if self.length is None else self.length
        b0 = (0x80 if self.fin else 0) | ((self.rsv & 7) << 4) | (self.opcode & 0x0F)
        mbit = 0x80 if self.masked else 0
        form = self.len_form or (7 if n < 126 else 16 if n <= 0xFFFF else 64)
        if form == 7:
            head = struct.pack("!BB", b0, mbit | n)
        elif form == 16:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if not self.masked:
            return head + self.payload
        key = self.key if self.key is not None else os.urandom(4)
        return head + key + mask_bytes(self.payload, key)

    def describe(self) -> str:
        names = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}
        name = names.get(self.opcode, f"OP{self.opcode:X}")
        p = self.payload
        shown = p[:24].hex() + ("…" if len(p) > 24 else "")
        extra = ""
        if self.rsv:
            extra += f" rsv={self.rsv:03b}"
        if not self.masked:
            extra += " UNMASKED"
        if self.length is not None:
            extra += f" announced_len={self.length}"
        if self.len_form is not None:
            extra += f" len_form={self.len_form}bit"
        return f"{name} fin={int(self.fin)}{extra} len={len(p)} payload={shown}"


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    if code is None:
        return reason
    return struct.pack("!H", code) + reason


# ---- incoming events -------------------------------------------------------


@dataclass
class Event:
    """What the server sent, after reassembly: kind is text, binary, ping,
    pong, close or eof. `frames` counts the frames a message came in."""

    kind: str
    data: bytes = b""
    code: int | None = None  # close only; None = close without payload
    frames: int = 1

    def short(self) -> str:
        if self.kind == "eof":
            return "EOF"
        if self.kind == "close":
            c = "no-code" if self.code is None else str(self.code)
            return f"close({c}{', ' + repr(self.data[:40]) if self.data else ''})"
        d = self.data
        shown = d[:16].hex() + ("…" if len(d) > 16 else "")
        return f"{self.kind}(len={len(d)} {shown})"


@dataclass
class WsConn:
    port: int
    deadline: float
    path: str = "/echo"
    sock: socket.socket | None = None
    reader: StreamReader = field(default_factory=StreamReader)
    reset: bool = False
    send_failed: bool = False
    got_close: bool = False
    sent_close: bool = False
    bytes_out: int = 0
    bytes_in: int = 0
    discard_input: bool = False  # count incoming bytes but do not keep them
    _frag_op: int | None = None
    _frag: list = field(default_factory=list)
    _frag_n: int = 0
    _raw: bytearray = field(default_factory=bytearray)

    # -- connection and handshake --

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def connect(self, early: bytes = b"") -> None:
        """Opens the connection and upgrades it; `early` is sent right behind
        the request, in the same write."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=max(0.1, self.remaining()))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        key = base64.b64encode(os.urandom(16))
        req = (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        ).encode()
        s.setblocking(False)
        self.write(req + early)
        head = bytearray()
        while b"\r\n\r\n" not in head:
            if self.reader.eof:
                raise ServerViolation(f"connection closed during the handshake: {bytes(head)!r}")
            if len(self.reader.buffer) > 16384:
                raise ServerViolation("handshake response head above 16 KiB")
            self._wait_readable("handshake response")
            head = self.reader.buffer
        end = head.index(b"\r\n\r\n") + 4
        text = bytes(head[:end]).decode("latin-1")
        del self.reader.buffer[:end]
        lines = text.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise ServerViolation(f"handshake: expected 101, got {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise ServerViolation(f"handshake: bad Sec-WebSocket-Accept {headers!r}")
        if headers.get("upgrade", "").lower() != "websocket":
            raise ServerViolation(f"handshake: bad Upgrade header {headers!r}")
        if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
            raise ServerViolation(f"handshake: bad Connection header {headers!r}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- raw I/O --

    def _pump_read(self) -> None:
        try:
            data = self.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            self.reset = True
            data = b""
        if data:
            self.bytes_in += len(data)
            if not self.discard_input:
                self.reader.feed_data(data)
        elif not self.reader.eof:
            self.reader.feed_eof()

    def _wait_readable(self, what: str) -> None:
        left = self.remaining()
        if left <= 0:
            raise CaseTimeout(f"timed out waiting for {what}")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise CaseTimeout(f"timed out waiting for {what}")
        self._pump_read()

    def write(self, data: bytes) -> bool:
        """Writes all of `data` (reading meanwhile). False if the peer is gone."""
        view = memoryview(data)
        while view:
            left = self.remaining()
            if left <= 0:
                raise CaseTimeout(f"timed out sending ({len(view)} bytes left of {len(data)})")
            rset = [] if self.reader.eof else [self.sock]
            r, w, _ = select.select(rset, [self.sock], [], left)
            if r:
                self._pump_read()
            if w:
                try:
                    n = self.sock.send(view)
                except (BlockingIOError, InterruptedError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    self.send_failed = True
                    return False
                view = view[n:]
                self.bytes_out += n
        return True

    # -- frames and events --

    def _read_exact(self, n: int):
        data = yield from self.reader.read_exact(n)
        if len(self._raw) < 14:
            self._raw += data[: 14 - len(self._raw)]
        return data

    def next_frame(self) -> Frame | None:
        """The next frame from the server, or None at a clean end of stream."""
        while not self.reader.buffer and not self.reader.eof:
            self._wait_readable("a frame")
        if not self.reader.buffer:
            return None
        self._raw = bytearray()
        gen = Frame.parse(self._read_exact, mask=False, max_size=None)
        try:
            while True:
                gen.send(None)
                self._wait_readable("the rest of a frame")
        except StopIteration as stop:
            frame = stop.value
        except EOFError as e:
            raise ServerViolation(f"stream ended inside a frame: {e}") from None
        except ProtocolError as e:
            raise ServerViolation(f"server sent an invalid frame: {e}") from None
        self._check_minimal_length(frame)
        return frame

    def _check_minimal_length(self, frame: Frame) -> None:
        # RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length".
        n = len(frame.data)
        len7 = self._raw[1] & 0x7F
        want = n if n < 126 else 126 if n <= 0xFFFF else 127
        if len7 != want:
            raise ServerViolation(f"server frame of {n} bytes uses a non-minimal length encoding")

    def next_event(self) -> Event:
        while True:
            f = self.next_frame()
            if f is None:
                if self._frag_op is not None:
                    raise ServerViolation("stream ended inside a fragmented message")
                return Event("eof")
            if self.got_close:
                raise ServerViolation(f"server sent a {f.opcode.name} frame after its close frame")
            op = f.opcode
            if op in (Opcode.TEXT, Opcode.BINARY):
                if self._frag_op is not None:
                    raise ServerViolation("server started a message inside a fragmented one")
                self._frag_op, self._frag, self._frag_n = op, [f.data], 1
            elif op == Opcode.CONT:
                if self._frag_op is None:
                    raise ServerViolation("server sent a continuation frame with no message")
                self._frag.append(f.data)
                self._frag_n += 1
            elif op == Opcode.CLOSE:
                self.got_close = True
                if len(f.data) == 0:
                    return Event("close", code=None)
                try:
                    c = Close.parse(f.data)
                except (ProtocolError, UnicodeDecodeError) as e:
                    raise ServerViolation(f"server close frame {f.data.hex()} is invalid: {e}")
                return Event("close", f.data[2:], code=c.code)
            else:
                return Event("ping" if op == Opcode.PING else "pong", f.data)
            if f.fin:
                data = b"".join(self._frag)
                kind = "text" if self._frag_op == Opcode.TEXT else "binary"
                nframes = self._frag_n
                self._frag_op, self._frag, self._frag_n = None, [], 0
                if kind == "text":
                    try:
                        data.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise ServerViolation(f"server sent a text message that is not UTF-8: {e}")
                return Event(kind, data, frames=nframes)
