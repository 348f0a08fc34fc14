"""Byte-exact client helpers for the integration tests.

Raw sockets only: the tests that use these helpers want to send what a
well-behaved library would refuse to send (unmasked frames, reserved opcodes,
broken UTF-8, bad close codes, half a request head) and to see exactly what
the broker answers, byte for byte. Every wait here is bounded by a deadline.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# How long a read waits by default. A broker under a wrapper (valgrind, 10-50x
# slower) on a loaded machine needs far longer to answer; the bound only
# limits how long a broken broker is waited for.
DEFAULT_TIMEOUT = 30.0 if os.environ.get("WSBROKER_TEST_WRAPPER") else 5.0


class Timeout(AssertionError):
    """Nothing (or not enough) arrived before the deadline."""


class PeerReset(AssertionError):
    """The broker reset the connection (RST) where a clean FIN was expected."""


# ---- frames ---------------------------------------------------------------------------------


def mask_bytes(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    # XOR in bulk: 4-byte key repeated over the payload.
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    key: bytes | None = None,
    length: int | None = None,
    length_form: int | None = None,
) -> bytes:
    """A WebSocket frame as a client sends it (masked by default).

    rsv: the three RSV bits as a number 0..7 (4 = RSV1).
    length: the payload length written in the header (defaults to len(payload));
        lets a test announce more bytes than it sends.
    length_form: force the length encoding: 7 (in the first byte), 16 or 64 bits.
    """
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if length_form is None:
        length_form = 7 if n < 126 else (16 if n < 65536 else 64)
    if length_form == 7:
        head = struct.pack("!BB", b0, mbit | n)
    elif length_form == 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = key if key is not None else os.urandom(4)
        return head + key + mask_bytes(payload, key)
    return head + payload


def close_payload(code: int | None, reason: bytes | str = b"") -> bytes:
    if isinstance(reason, str):
        reason = reason.encode()
    if code is None:
        return b""
    return struct.pack("!H", code) + reason


def text_frame(obj_or_text, **kw) -> bytes:
    if not isinstance(obj_or_text, (str, bytes)):
        obj_or_text = json.dumps(obj_or_text)
    return build_frame(OP_TEXT, obj_or_text, **kw)


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> int | None:
        assert self.opcode == OP_CLOSE
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self) -> str:
        assert self.opcode == OP_CLOSE
        return self.payload[2:].decode("utf-8")

    def json(self):
        assert self.opcode == OP_TEXT, f"expected a text frame, got opcode {self.opcode:#x}"
        return json.loads(self.payload.decode("utf-8"))

    def __repr__(self) -> str:
        p = self.payload if len(self.payload) <= 80 else self.payload[:80] + b"..."
        return f"Frame(op={self.opcode:#x}, fin={self.fin}, rsv={self.rsv}, masked={self.masked}, payload={p!r})"


def parse_frame(buf: bytes | bytearray) -> tuple[Frame, int] | None:
    """Parses one frame from the front of buf: (frame, bytes used) or None if incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos : pos + 4])
        pos += 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos : pos + n])
    if masked:
        payload = mask_bytes(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload), pos + n


# ---- sockets -------------------------------------------------------------------------------


class Conn:
    """A TCP connection with a receive buffer and deadline-bounded reads."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT, rcvbuf: int | None = None,
                 ssl_context=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the window the broker sees is small from the start.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        if ssl_context is not None:  # TLS over the same socket (its rcvbuf stays small)
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=host)
        self.buf = bytearray()
        self.eof = False
        self.closed = False

    # -- plumbing --
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, deadline: float) -> bool:
        """Reads once more into buf. False on EOF. Raises Timeout / PeerReset."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout("deadline passed")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            raise Timeout("no data before the deadline") from None
        except ConnectionResetError:
            raise PeerReset("connection reset by the broker") from None
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_exact(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise AssertionError(f"EOF after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, marker: bytes, timeout: float = DEFAULT_TIMEOUT, limit: int = 1 << 20) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise AssertionError(f"no {marker!r} in the first {limit} bytes")
            if not self._fill(deadline):
                raise AssertionError(f"EOF before {marker!r}; got {bytes(self.buf[:200])!r}")

    def read_to_eof(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Reads until the broker's FIN. Raises PeerReset on RST, Timeout if it stays open."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            self._fill(deadline)
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Waits until the broker ends the connection: 'eof' or 'reset'. Discards data."""
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                self._fill(deadline)
                self.buf.clear()
        except PeerReset:
            return "reset"
        return "eof"

    # -- WebSocket --
    def recv_frame(self, timeout: float = DEFAULT_TIMEOUT) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            got = parse_frame(self.buf)
            if got is not None:
                frame, used = got
                del self.buf[:used]
                return frame
            if not self._fill(deadline):
                raise AssertionError(f"EOF inside/before a frame; {len(self.buf)} bytes pending: {bytes(self.buf[:60])!r}")

    def send_frame(self, opcode: int, payload: bytes | str = b"", **kw) -> None:
        self.send(build_frame(opcode, payload, **kw))

    def send_json(self, obj, **kw) -> None:
        self.send(text_frame(obj, **kw))

    def send_close(self, code: int | None = 1000, reason: bytes | str = b"") -> None:
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def recv_json(self, timeout: float = DEFAULT_TIMEOUT, skip_pings: bool = True):
        """Next text frame as JSON; server pings are answered-free skipped when asked."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if skip_pings and f.opcode in (OP_PING, OP_PONG):
                continue
            assert not f.masked, f"server frame is masked: {f}"
            assert f.opcode == OP_TEXT, f"expected a text frame, got {f}"
            return f.json()

    def expect_close(self, timeout: float = DEFAULT_TIMEOUT) -> Frame:
        """Reads frames until a close frame (others are collected in self.skipped)."""
        deadline = time.monotonic() + timeout
        self.skipped = []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                assert f.fin and not f.masked and f.rsv == 0, f"malformed close frame {f}"
                assert len(f.payload) != 1 and len(f.payload) <= 125, f"bad close payload {f}"
                if len(f.payload) > 2:
                    f.payload[2:].decode("utf-8")  # must be valid UTF-8
                return f
            self.skipped.append(f)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(
    path: str = "/ws",
    host: str = "127.0.0.1",
    key: str | None = None,
    *,
    method: str = "GET",
    version: str = "HTTP/1.1",
    headers: dict | None = None,
    drop: tuple = (),
) -> bytes:
    """An upgrade request; `headers` overrides/adds fields, `drop` removes them by name."""
    h = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or new_key(),
        "Sec-WebSocket-Version": "13",
    }
    if headers:
        h.update(headers)
    lines = [f"{method} {path} {version}"]
    for k, v in h.items():
        if k in drop:
            continue
        if isinstance(v, (list, tuple)):
            lines += [f"{k}: {x}" for x in v]
        else:
            lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Response:
    status: int
    reason: str
    version: str
    headers: list = field(default_factory=list)  # [(name, value)] in order
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode())


def read_response(conn: Conn, timeout: float = DEFAULT_TIMEOUT, head_only: bool = False) -> Response:
    """Reads one HTTP response (Content-Length bodies; HEAD/101 have none)."""
    head = conn.read_until(b"\r\n\r\n", timeout).decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), f"bad status line {lines[0]!r}"
    resp = Response(int(parts[1]), parts[2] if len(parts) > 2 else "", parts[0])
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        resp.headers.append((k.strip(), v.strip()))
    if head_only or resp.status == 101 or resp.status == 204 or resp.status == 304:
        return resp
    cl = resp.header("Content-Length")
    if cl is not None:
        resp.body = conn.read_exact(int(cl), timeout)
    else:
        assert resp.header("Transfer-Encoding") is None, "chunked responses not expected"
        resp.body = conn.read_to_eof(timeout)
    return resp


def host_port(host: str, port: int) -> str:
    """host:port as a Host header or URL authority writes it ([::1]:80 for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def http_request(
    host: str,
    port: int,
    method: str = "GET",
    path: str = "/",
    body: bytes | str | None = None,
    headers: dict | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Response:
    """One request on a fresh connection with Connection: close."""
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": f"{host_port(host, port)}", "Connection": "close"}
    if body is not None:
        h["Content-Length"] = str(len(body))
    if headers:
        h.update(headers)
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items() if v is not None) + "\r\n"
    with Conn(host, port, timeout) as c:
        c.send(req.encode() + (body or b""))
        return read_response(c, timeout, head_only=(method == "HEAD"))


def ws_connect(host: str, port: int, path: str = "/ws", timeout: float = DEFAULT_TIMEOUT,
               rcvbuf: int | None = None, read_welcome: bool = True, extra: bytes = b"",
               ssl_context=None) -> Conn:
    """Opens a raw WebSocket connection (over TLS with `ssl_context`), checks the
    101 and (optionally) reads the welcome."""
    c = Conn(host, port, timeout, rcvbuf=rcvbuf, ssl_context=ssl_context)
    key = new_key()
    c.send(upgrade_request(path, host_port(host, port), key) + extra)
    resp = read_response(c, timeout)
    assert resp.status == 101, f"upgrade refused: {resp.status} {resp.body!r}"
    assert resp.header("Sec-WebSocket-Accept") == accept_key(key)
    c.welcome = None
    if read_welcome:
        c.welcome = read_welcome_frame(lambda t: c.recv_json(t), timeout)
    return c


# The welcome leaves in the same write as the 101, so it is normally there at
# once. Once one has been missed in this test run the broker is known broken:
# later waits are cut to 1 s so a broken build fails the suite in minutes, not
# in hours of 5 s timeouts.
_welcome_missed = False


def welcome_timeout(timeout: float) -> float:
    return min(timeout, 1.0) if _welcome_missed else timeout


def note_welcome_missed() -> None:
    global _welcome_missed
    _welcome_missed = True


def read_welcome_frame(recv, timeout: float):
    try:
        w = recv(welcome_timeout(timeout))
    except Timeout:
        note_welcome_missed()
        raise AssertionError("no welcome message after the 101 response") from None
    assert w["type"] == "welcome", w
    return w
