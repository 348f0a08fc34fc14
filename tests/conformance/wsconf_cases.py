"""Case table of the conformance suite, numbered after the Autobahn testsuite.

A case is a list of operations (frames to send, waits) and the expected
transcript: the messages/pongs the server sends back, in order, followed by
exactly one close frame with an acceptable code and then TCP EOF.

Expectations follow Autobahn's rules for an echo server:
  * valid input is echoed unchanged (content compared after reassembly, so
    the server may re-fragment), then our close 1000 is answered with 1000;
  * a protocol violation fails the connection with close 1002, bad UTF-8
    with 1007, a message above max_message_size with 1009, then TCP EOF;
  * `nonstrict=True` only where Autobahn grades an early failure NON-STRICT:
    the echoes listed before the violation may then be missing (a prefix),
    but nothing may arrive that is not listed.
Ids of cases with no Autobahn counterpart are marked "(extra)" in the
description; README.md lists them.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

from wsconf_client import (F, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                           close_payload, mask_bytes)

KIB = 1024
MIB = 1024 * 1024
MAX_MESSAGE = 16 * MIB  # the broker is started with --max-message-size 16MiB


@dataclass
class Wait:
    """Pause sending: `events` waits until that many messages/pongs have been
    received in total; `close` waits (at most `within` s) for the server's
    close frame, i.e. checks that the server fails fast before we send on."""

    events: int | None = None
    close: bool = False
    within: float = 2.0


@dataclass
class Case:
    id: str
    desc: str
    ops: object  # list, or a function returning it (large payloads are built lazily)
    expect: object  # [(kind, bytes)], kind text/binary/pong; or a function returning it
    close: tuple = (1000,)  # acceptable server close codes; None = empty close
    chop: object = None  # None: one write; "frame": a write per frame; int k: k-byte writes
    client_close: bool = True  # after the ops, start the closing handshake with 1000
    nonstrict: bool = False
    timeout: float = 5.0
    early: bool = False  # send the first write in the same segment as the upgrade request
    # RFC 6455 orders neither pongs against echoes of messages that were
    # complete before the ping, so such cases compare the two streams apart.
    pongs_apart: bool = False
    tags: list = field(default_factory=list)


CASES: list[Case] = []


def add(case: Case) -> None:
    assert all(c.id != case.id for c in CASES), case.id
    CASES.append(case)


def echo(id, desc, ops, expect, **kw):
    add(Case(id, desc, ops, expect, **kw))


def fail(id, desc, ops, code, before=(), nonstrict=False, **kw):
    add(Case(id, desc, ops, list(before), close=(code,), client_close=False, nonstrict=nonstrict,
             **kw))


def text(payload, fin=True, **kw):
    return F(OP_TEXT, payload, fin=fin, **kw)


def binary(payload, fin=True, **kw):
    return F(OP_BINARY, payload, fin=fin, **kw)


def cont(payload, fin=True, **kw):
    return F(OP_CONT, payload, fin=fin, **kw)


def ping(payload=b"", **kw):
    return F(OP_PING, payload, **kw)


def pong(payload=b"", **kw):
    return F(OP_PONG, payload, **kw)


def close(code=None, reason=b"", **kw):
    return F(OP_CLOSE, close_payload(code, reason), **kw)


def fragments(opcode, payload, size):
    """`payload` as a message of frames of `size` bytes (at least one frame)."""
    parts = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    out = []
    for i, p in enumerate(parts):
        out.append(F(opcode if i == 0 else OP_CONT, p, fin=i == len(parts) - 1))
    return out


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


UNIT = "Hello-µ@ßöäüàá-κόσμε-𝄞-€!".encode()  # 1, 2, 3 and 4-byte code points


def utf8_text(n):
    """Valid UTF-8 of exactly n bytes, mostly multi-byte code points."""
    reps = n // len(UNIT)
    body = UNIT * reps
    return body + b"*" * (n - len(body))


# ---- 1 Framing ---------------------------------------------------------------

LENGTHS = [0, 125, 126, 127, 128, 65535, 65536, MIB]
for i, n in enumerate(LENGTHS, 1):
    t = b"*" * n
    b = rand_bytes(n, n)
    echo(f"1.1.{i}", f"text message of {n} bytes in one write", [text(t)], [("text", t)])
    echo(f"1.2.{i}", f"binary message of {n} bytes in one write", [binary(b)], [("binary", b)])
    chop = 1 if n <= 128 else 997
    echo(f"1.3.{i}", f"(extra) text message of {n} bytes written in {chop}-byte chunks",
         [text(t)], [("text", t)], chop=chop, timeout=10.0)
    echo(f"1.4.{i}", f"(extra) binary message of {n} bytes written in {chop}-byte chunks",
         [binary(b)], [("binary", b)], chop=chop, timeout=10.0)

# ---- 2 Pings/Pongs -----------------------------------------------------------

HELLO = b"Hello, world!"
BIN8 = bytes([0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF])
P125 = bytes(range(125))
echo("2.1", "ping without payload", [ping()], [("pong", b"")])
echo("2.2", "ping with small text payload", [ping(HELLO)], [("pong", HELLO)])
echo("2.3", "ping with small binary (non UTF-8) payload", [ping(BIN8)], [("pong", BIN8)])
echo("2.4", "ping with 125-byte binary payload", [ping(P125)], [("pong", P125)])
fail("2.5", "ping with 126-byte payload (control frame too long)", [ping(bytes(126))], 1002)
echo("2.6", "ping with 125-byte payload written in 1-byte chunks", [ping(P125)],
     [("pong", P125)], chop=1)
echo("2.7", "unsolicited pong without payload is ignored", [pong()], [])
echo("2.8", "unsolicited pong with payload is ignored", [pong(b"unsolicited pong payload")], [])
echo("2.9", "unsolicited pong, then ping: only the ping is answered",
     [pong(b"unsolicited pong payload"), ping(b"ping payload")], [("pong", b"ping payload")])
TEN = [f"payload-{i}".encode() for i in range(10)]
echo("2.10", "10 pings in one write: 10 pongs in order", [ping(p) for p in TEN],
     [("pong", p) for p in TEN])
echo("2.11", "10 pings written in 1-byte chunks: 10 pongs in order", [ping(p) for p in TEN],
     [("pong", p) for p in TEN], chop=1)

# ---- 3 Reserved bits ---------------------------------------------------------
# rsv is the 3-bit field as Autobahn numbers it: 4 = RSV1, 2 = RSV2, 1 = RSV3.

fail("3.1", "text with RSV=1 (RSV3 bit)", [text(HELLO, rsv=1)], 1002)
fail("3.2", "text, text with RSV=2, ping: first echoed, then fail, no pong",
     [text(HELLO), text(HELLO, rsv=2), ping(HELLO)], 1002, [("text", HELLO)], nonstrict=True)
fail("3.3", "as 3.2 with RSV=3, a write per frame",
     [text(HELLO), text(HELLO, rsv=3), ping(HELLO)], 1002, [("text", HELLO)], nonstrict=True,
     chop="frame")
fail("3.4", "as 3.2 with RSV=4 (RSV1, no extension negotiated), 1-byte writes",
     [text(HELLO), text(HELLO, rsv=4), ping(HELLO)], 1002, [("text", HELLO)], nonstrict=True,
     chop=1)
fail("3.5", "binary with RSV=5", [binary(BIN8, rsv=5)], 1002)
fail("3.6", "ping with RSV=6", [ping(HELLO, rsv=6)], 1002)
fail("3.7", "close with RSV=7", [close(1000, rsv=7)], 1002)
fail("3.8", "(extra) ping with RSV1 only", [ping(HELLO, rsv=4)], 1002)
fail("3.9", "(extra) continuation frame with RSV2 inside a fragmented text",
     [text(b"frag1", fin=False), cont(b"frag2", rsv=2)], 1002)

# ---- 4 Opcodes ---------------------------------------------------------------

for grp, ops in (("4.1", (3, 4, 5, 6, 7)), ("4.2", (0xB, 0xC, 0xD, 0xE, 0xF))):
    kind = "non-control" if grp == "4.1" else "control"
    o1, o2, o3, o4, o5 = ops
    rp = b"reserved opcode payload"
    fail(f"{grp}.1", f"frame with reserved {kind} opcode {o1}", [F(o1)], 1002)
    fail(f"{grp}.2", f"frame with reserved {kind} opcode {o2} and payload", [F(o2, rp)], 1002)
    fail(f"{grp}.3", f"text, reserved opcode {o3}, ping: echo, then fail",
         [text(HELLO), F(o3), ping()], 1002, [("text", HELLO)], nonstrict=True)
    fail(f"{grp}.4", f"text, reserved opcode {o4} with payload, ping: echo, then fail",
         [text(HELLO), F(o4, rp), ping()], 1002, [("text", HELLO)], nonstrict=True,
         chop="frame")
    fail(f"{grp}.5", f"text, reserved opcode {o5} with payload, ping, 1-byte writes",
         [text(HELLO), F(o5, rp), ping()], 1002, [("text", HELLO)], nonstrict=True, chop=1)

# ---- 5 Fragmentation ---------------------------------------------------------

FR1, FR2 = b"fragment1", b"fragment2"
fail("5.1", "ping in 2 fragments", [F(OP_PING, FR1, fin=False), cont(FR2)], 1002)
fail("5.2", "pong in 2 fragments", [F(OP_PONG, FR1, fin=False), cont(FR2)], 1002)
for cid, chop, how in (("5.3", None, "one write"), ("5.4", 1, "1-byte writes"),
                       ("5.5", "frame", "a write per frame")):
    echo(cid, f"text in 2 fragments, {how}", [text(FR1, fin=False), cont(FR2)],
         [("text", FR1 + FR2)], chop=chop)
PINGP = b"ping payload"
echo("5.6", "text in 2 fragments with a ping in between: pong, then echo",
     [text(FR1, fin=False), ping(PINGP), cont(FR2)], [("pong", PINGP), ("text", FR1 + FR2)])
echo("5.7", "as 5.6, 1-byte writes", [text(FR1, fin=False), ping(PINGP), cont(FR2)],
     [("pong", PINGP), ("text", FR1 + FR2)], chop=1)
echo("5.8", "as 5.6, and the pong is awaited before the second fragment is sent",
     [text(FR1, fin=False), ping(PINGP), Wait(events=1), cont(FR2)],
     [("pong", PINGP), ("text", FR1 + FR2)])
for cid, chop, how in (("5.9", None, "one write"), ("5.10", "frame", "a write per frame"),
                       ("5.11", 1, "1-byte writes")):
    fail(cid, f"continuation FIN=1 with nothing to continue, then text; {how}",
         [cont(FR1), text(FR2)], 1002, chop=chop)
for cid, chop, how in (("5.12", None, "one write"), ("5.13", "frame", "a write per frame"),
                       ("5.14", 1, "1-byte writes")):
    fail(cid, f"continuation FIN=0 with nothing to continue, then text; {how}",
         [cont(FR1, fin=False), text(FR2)], 1002, chop=chop)
FR3, FR4 = b"fragment3", b"fragment4"
fail("5.15", "text in 2 fragments, then continuation FIN=0 with nothing to continue, then text",
     [text(FR1, fin=False), cont(FR2), cont(FR3, fin=False), text(FR4)], 1002,
     [("text", FR1 + FR2)], nonstrict=True)
fail("5.16", "2x: continuation FIN=0 with nothing to continue, then text in 2 fragments",
     [cont(FR1, fin=False), text(FR2, fin=False), cont(FR3)] * 2, 1002)
fail("5.17", "2x: continuation FIN=1 with nothing to continue, then text in 2 fragments",
     [cont(FR1), text(FR2, fin=False), cont(FR3)] * 2, 1002)
fail("5.18", "text in 2 fragments, both with opcode TEXT", [text(FR1, fin=False), text(FR2)],
     1002)
F5 = [f"fragment{i}".encode() for i in range(1, 6)]
P1, P2 = b"pongme 1!", b"pongme 2!"
echo("5.19", "text in 5 fragments, pings after the 2nd and 4th, each pong awaited",
     [text(F5[0], fin=False), cont(F5[1], fin=False), ping(P1), Wait(events=1),
      cont(F5[2], fin=False), cont(F5[3], fin=False), ping(P2), Wait(events=2), cont(F5[4])],
     [("pong", P1), ("pong", P2), ("text", b"".join(F5))], chop="frame")
echo("5.20", "as 5.19 in one write",
     [text(F5[0], fin=False), cont(F5[1], fin=False), ping(P1), cont(F5[2], fin=False),
      cont(F5[3], fin=False), ping(P2), cont(F5[4])],
     [("pong", P1), ("pong", P2), ("text", b"".join(F5))])
MANY = utf8_text(100 * 37)
echo("5.21", "(extra) text in 100 fragments of 37 bytes (split inside code points)",
     fragments(OP_TEXT, MANY, 37), [("text", MANY)])
echo("5.22", "(extra) binary with 0-length first, middle and last fragments",
     [binary(b"", fin=False), cont(b"abc", fin=False), cont(b"", fin=False), cont(b"def", fin=False),
      cont(b"")], [("binary", b"abcdef")])
fail("5.23", "(extra) binary while a text message is fragmented",
     [text(FR1, fin=False), binary(FR2)], 1002)
pings = []
for i in range(10):
    pings += [F(OP_TEXT if i == 0 else OP_CONT, F5[i % 5], fin=i == 9), ping(TEN[i])]
echo("5.24", "(extra) 10 fragments, a ping after each: 9 pongs, the echo, the 10th pong", pings,
     [("pong", p) for p in TEN[:9]] + [("text", b"".join(F5) * 2), ("pong", TEN[9])],
     pongs_apart=True)  # the last ping follows the complete message: either order is right
fail("5.25", "(extra) close in 2 fragments", [F(OP_CLOSE, b"\x03\xe8", fin=False), cont(b"")],
     1002)

# ---- 6 UTF-8 handling --------------------------------------------------------

echo("6.1.1", "empty text message", [text(b"")], [("text", b"")])
echo("6.1.2", "text in 3 empty fragments", [text(b"", fin=False), cont(b"", fin=False), cont(b"")],
     [("text", b"")])
MID = b"middle frame payload"
echo("6.1.3", "text in 3 fragments, first and last empty",
     [text(b"", fin=False), cont(MID, fin=False), cont(b"")], [("text", MID)])

VALID = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \U0001F600 \uFFFF \U0010FFFF \uFFFD".encode()
KOSME = "κόσμε".encode()
echo("6.2.1", "valid UTF-8 (2, 3 and 4-byte code points, U+FFFF, U+10FFFF) in one frame",
     [text(VALID)], [("text", VALID)])
cut = VALID.index("𝄞".encode())
echo("6.2.2", "valid UTF-8 in 2 fragments split at a code point boundary",
     [text(VALID[:cut], fin=False), cont(VALID[cut:])], [("text", VALID)])
echo("6.2.3", "valid UTF-8 in 1-byte fragments (split inside every code point)",
     fragments(OP_TEXT, VALID, 1), [("text", VALID)])
E4 = "\U0001F600\U0010FFFF\U00010000".encode()
echo("6.2.4", "4-byte code points in 1-byte fragments, 1-byte writes",
     fragments(OP_TEXT, E4, 1), [("text", E4)], chop=1)

BAD = KOSME + b"\xed\xa0\x80" + b"edited"
fail("6.3.1", "invalid UTF-8 (surrogate ED A0 80) in one frame", [text(BAD)], 1007)
fail("6.3.2", "invalid UTF-8 (surrogate) in 1-byte fragments", fragments(OP_TEXT, BAD, 1), 1007)

# 6.4: fail fast. The codec validates streaming, so it must close after the
# bad bytes without waiting for the rest of the message (Wait(close=True)).
fail("6.4.1", "3 fragments, the 2nd (F4 90 80 80 > U+10FFFF) invalid: fail before the 3rd",
     [text(KOSME, fin=False), cont(b"\xf4\x90\x80\x80", fin=False), Wait(close=True),
      cont(b"edited")], 1007, chop="frame")
fail("6.4.2", "3 fragments, 1st ends with F4, 2nd is 90: fail before the 3rd",
     [text(KOSME + b"\xf4", fin=False), cont(b"\x90", fin=False), Wait(close=True),
      cont(b"\x80\x80edited")], 1007, chop="frame")
P6 = KOSME + b"\xf4\x90\x80\x80" + b"edited"
h = F(OP_TEXT, P6, key=b"\x11\x22\x33\x44").encode()
hl = 2 + 4
a, b_ = hl + len(KOSME), hl + len(KOSME) + 4
fail("6.4.3", "one frame written in 3 parts, the 2nd invalid: fail before the 3rd part",
     [h[:a], h[a:b_], Wait(close=True), h[b_:]], 1007)
a2 = hl + len(KOSME) + 1
fail("6.4.4", "one frame, written up to F4, then 90: fail before the rest",
     [h[:a2], h[a2 : a2 + 1], Wait(close=True), h[a2 + 1 :]], 1007)


def utf8_sequences():
    """(group description, [(valid, bytes)]) after Markus Kuhn's UTF-8 decoder
    stress test, in Autobahn's 6.5-6.23 order. Validity is double-checked
    against Python's strict decoder below."""
    seqs = []
    seqs.append(("Some valid UTF-8 sequences", [
        (True, b"hello\x24world"), (True, b"hello\xc2\xa2world"),
        (True, b"hello\xe2\x82\xacworld"), (True, b"hello\xf0\xa4\xad\xa2world"), (True, KOSME)]))
    seqs.append(("All prefixes of a valid UTF-8 string with multi-byte code points",
                 [(None, KOSME[:i]) for i in range(1, len(KOSME) + 1)]))
    seqs.append(("First possible sequence of a certain length", [
        (True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"), (True, b"\xf0\x90\x80\x80")]))
    seqs.append(("First possible sequence of length 5/6 (invalid code points)", [
        (False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")]))
    seqs.append(("Last possible sequence of a certain length", [
        (True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"), (True, b"\xf4\x8f\xbf\xbf")]))
    seqs.append(("Last possible sequence of length 4/5/6 (invalid code points)", [
        (False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"),
        (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")]))
    seqs.append(("Other boundary conditions", [
        (True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
        (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")]))
    cont_bytes = [b"\x80", b"\xbf", b"\x80\xbf", b"\x80\xbf\x80", b"\x80\xbf\x80\xbf",
                  b"\x80\xbf\x80\xbf\x80", b"\x80\xbf\x80\xbf\x80\xbf", bytes(range(0x80, 0xC0))]
    seqs.append(("Unexpected continuation bytes", [(False, s) for s in cont_bytes]))
    lonely = []
    for lo, hi in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD)):
        lonely.append((False, b"".join(bytes([c, 0x20]) for c in range(lo, hi + 1))))
    seqs.append(("Lonely start characters, each followed by a space", lonely))
    missing = [b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80", b"\xfc\x80\x80\x80\x80",
               b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf", b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf"]
    seqs.append(("Sequences with the last continuation byte missing",
                 [(False, s) for s in missing]))
    seqs.append(("Concatenation of incomplete sequences", [(False, b"".join(missing))]))
    seqs.append(("Impossible bytes", [(False, b"\xfe"), (False, b"\xff"),
                                      (False, b"\xfe\xfe\xff\xff")]))
    seqs.append(("Overlong ASCII character", [
        (False, b"\xc0\xaf"), (False, b"\xe0\x80\xaf"), (False, b"\xf0\x80\x80\xaf"),
        (False, b"\xf8\x80\x80\x80\xaf"), (False, b"\xfc\x80\x80\x80\x80\xaf")]))
    seqs.append(("Maximum overlong sequences", [
        (False, b"\xc1\xbf"), (False, b"\xe0\x9f\xbf"), (False, b"\xf0\x8f\xbf\xbf"),
        (False, b"\xf8\x87\xbf\xbf\xbf"), (False, b"\xfc\x83\xbf\xbf\xbf\xbf")]))
    seqs.append(("Overlong NUL", [
        (False, b"\xc0\x80"), (False, b"\xe0\x80\x80"), (False, b"\xf0\x80\x80\x80"),
        (False, b"\xf8\x80\x80\x80\x80"), (False, b"\xfc\x80\x80\x80\x80\x80")]))
    singles = [b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf", b"\xed\xb0\x80",
               b"\xed\xbe\x80", b"\xed\xbf\xbf"]
    seqs.append(("Single UTF-16 surrogates", [(False, s) for s in singles]))
    highs, lows = singles[:4], [b"\xed\xb0\x80", b"\xed\xbf\xbf"]
    seqs.append(("Paired UTF-16 surrogates", [(False, hi + lo) for hi in highs for lo in lows]))
    nonchars = [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")]
    for plane in range(1, 17):
        for last in (0xFFFE, 0xFFFF):
            nonchars.append((True, chr(plane * 0x10000 + last).encode()))
    seqs.append(("Non-character code points (valid UTF-8)", nonchars))
    seqs.append(("Unicode specials (valid UTF-8)",
                 [(True, chr(c).encode()) for c in range(0xFFF9, 0x10000)]))
    out = []
    for desc, items in seqs:
        checked = []
        for valid, s in items:
            try:
                s.decode("utf-8")
                ok = True
            except UnicodeDecodeError:
                ok = False
            assert valid is None or valid == ok, (desc, s.hex())
            checked.append((ok, s))
        out.append((desc, checked))
    return out


for gi, (gdesc, items) in enumerate(utf8_sequences(), 5):
    for j, (valid, s) in enumerate(items, 1):
        cid = f"6.{gi}.{j}"
        d = f"{gdesc}: {'valid' if valid else 'invalid'} payload {s.hex()}"
        if valid:
            echo(cid, d, [text(s)], [("text", s)])
        else:
            fail(cid, d, [text(s)], 1007)

# 6.24/6.25 (extra): a code point split across fragments at every position.
splits = [("\u00e9", "2-byte U+00E9"), ("\u0800", "3-byte U+0800 (E0 A0 80)"),
          ("\u20ac", "3-byte U+20AC"), ("\ud7ff", "3-byte U+D7FF (ED 9F BF)"),
          ("\ue000", "3-byte U+E000 (EE 80 80)"), ("\uffff", "3-byte U+FFFF"),
          ("\U00010000", "4-byte U+10000 (F0 90 80 80)"), ("\U0001F600", "4-byte U+1F600"),
          ("\U0010FFFF", "4-byte U+10FFFF (F4 8F BF BF)")]
j = 0
for ch, name in splits:
    s = b"a" + ch.encode() + b"z"
    for k in range(2, len(s) - 1):
        j += 1
        echo(f"6.24.{j}", f"(extra) {name} split across 2 fragments after byte {k - 1} of it",
             [text(s[:k], fin=False), cont(s[k:])], [("text", s)])
bad_splits = [
    (b"ab\xed", b"\xa0\x80cd", "surrogate ED | A0 80"),
    (b"ab\xf4", b"\x90\x80\x80cd", "F4 | 90 80 80 (> U+10FFFF)"),
    (b"ab\xf0\x80", b"\x80\x80cd", "overlong F0 80 | 80 80"),
    (b"ab\xe0", b"\x80\xafcd", "overlong E0 | 80 AF"),
    (b"ab\xc3", b"(cd", "C3 | 28: missing continuation"),
    (b"abcd", b"\x80cd", "lone continuation byte at the start of fragment 2"),
    (b"ab\xf0", b"\x8f\xbf\xbfcd", "overlong F0 | 8F BF BF"),
    (b"ab\xed\x9f", b"\xc0cd", "ED 9F | C0: a lead byte where a continuation belongs"),
    (b"ab\xf0\x9f", b"\x98", "truncated: F0 9F | 98 then end of message"),
]
for j, (p1, p2, name) in enumerate(bad_splits, 1):
    last = name.startswith("truncated")
    ops = [text(p1, fin=False), cont(p2, fin=last)]
    if not last:
        ops += [Wait(close=True), cont(b"more text")]
    fail(f"6.25.{j}", f"(extra) invalid UTF-8 across fragments: {name}; fail fast", ops, 1007,
         chop="frame")

# 6.26 (extra): bytes that never start a sequence (C0, C1, F5-FF), each
# followed by continuation bytes that would otherwise complete it.
for j, lead in enumerate([0xC0, 0xC1] + list(range(0xF5, 0x100)), 1):
    s = b"ok " + bytes([lead]) + b"\x80\x80\x80" + b" end"
    fail(f"6.26.{j}", f"(extra) lead byte {lead:02X} followed by continuation bytes", [text(s)],
         1007)

# 6.27 (extra): the whole Kuhn table again, each byte in its own fragment, so
# every sequence is split at every position across frames.
j = 0
for gdesc, items in utf8_sequences():
    for valid, s in items:
        j += 1
        d = f"(extra) 1-byte fragments: {gdesc}: {'valid' if valid else 'invalid'} {s.hex()}"
        if valid:
            echo(f"6.27.{j}", d, fragments(OP_TEXT, s, 1), [("text", s)])
        else:
            fail(f"6.27.{j}", d, fragments(OP_TEXT, s, 1), 1007)

# ---- 7 Close handling --------------------------------------------------------

HW = b"Hello World!"
closed_by_us = dict(client_close=False)
echo("7.1.1", "text, then close 1000: echo, then close 1000", [text(HW), close(1000)],
     [("text", HW)], **closed_by_us)
echo("7.1.2", "close twice: one close back", [close(1000), close(1000)], [], **closed_by_us)
echo("7.1.3", "close, then ping: no pong", [close(1000), ping(HW)], [], **closed_by_us)
echo("7.1.4", "close, then text: no echo", [close(1000), text(HW)], [], **closed_by_us)
echo("7.1.5", "text fragment 1, close, fragment 2: no echo",
     [text(FR1, fin=False), close(1000), cont(FR2)], [], **closed_by_us)
BIG = utf8_text(256 * KIB)
echo("7.1.6", "256 KiB text, close, ping: echo, close, no pong",
     [text(BIG), close(1000), ping(HW)], [("text", BIG)], **closed_by_us)
echo("7.3.1", "close without payload: empty close or 1000 back", [close()], [],
     close=(None, 1000), **closed_by_us)
fail("7.3.2", "close with a 1-byte payload", [F(OP_CLOSE, b"\x03")], 1002)
echo("7.3.3", "close 1000 without reason", [close(1000)], [], **closed_by_us)
echo("7.3.4", "close 1000 with a reason", [close(1000, HW)], [], **closed_by_us)
echo("7.3.5", "close 1000 with a 123-byte reason (125-byte payload)",
     [close(1000, b"*" * 123)], [], **closed_by_us)
echo("7.3.7", "(extra) close 1000 with a multi-byte UTF-8 reason", [close(1000, VALID[:120])],
     [], **closed_by_us)
fail("7.3.6", "close 1000 with a 124-byte reason (126-byte payload)",
     [close(1000, b"*" * 124)], 1002)
fail("7.5.1", "close 1000 with a reason that is not UTF-8", [close(1000, BAD)], 1007)
fail("7.5.2", "(extra) close 1000 with a reason truncated inside a code point",
     [close(1000, b"bye \xf0\x9f\x98")], 1007)

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
for j, code in enumerate(VALID_CODES, 1):
    echo(f"7.7.{j}", f"close with valid code {code}: echoed", [close(code)], [], close=(code,),
         **closed_by_us)
# 1012 Service Restart, 1013 Try Again Later, 1014 Bad Gateway: registered in
# the IANA "WebSocket Close Code Number Registry" after RFC 6455, so a peer
# may send them (wsb_ws_close_code_valid accepts 1012-1014 too).
for j, code in enumerate((1012, 1013, 1014), len(VALID_CODES) + 1):
    echo(f"7.7.{j}", f"(extra) close with IANA-registered code {code}: echoed", [close(code)], [],
         close=(code,), **closed_by_us)
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]
for j, code in enumerate(INVALID_CODES, 1):
    fail(f"7.9.{j}", f"close with invalid code {code}", [close(code)], 1002)
# 1015 (TLS handshake failure) is reserved: never on the wire (RFC 6455 7.4.1).
fail("7.9.10", "(extra) close with reserved code 1015", [close(1015)], 1002)
fail("7.9.11", "(extra) close with unassigned code 1099", [close(1099)], 1002)
fail("7.13.1", "close with code 5000", [close(5000)], 1002)
fail("7.13.2", "close with code 65535", [close(65535)], 1002)
echo("7.14.1", "(extra) the server closes TCP promptly after the close exchange",
     [close(1000)], [], timeout=1.0, **closed_by_us)
echo("7.14.2", "(extra) text, then close; nothing sent after the server's close",
     [text(HW), close(1000), text(HW), binary(BIN8)], [("text", HW)], chop="frame",
     **closed_by_us)

# ---- 9 Limits / performance --------------------------------------------------
# Payloads here are large: ops and expectations are built when the case runs.


@functools.lru_cache(maxsize=4)
def big_text(n):
    return utf8_text(n)


@functools.lru_cache(maxsize=4)
def big_binary(n, seed=0):
    return rand_bytes(n, seed)


SIZES = [64 * KIB, 256 * KIB, MIB, 4 * MIB, 8 * MIB, 16 * MIB]
for j, n in enumerate(SIZES, 1):
    echo(f"9.1.{j}", f"text message of {n} bytes", lambda n=n: [text(big_text(n))],
         lambda n=n: [("text", big_text(n))], timeout=30.0)
    echo(f"9.2.{j}", f"binary message of {n} bytes", lambda n=n: [binary(big_binary(n))],
         lambda n=n: [("binary", big_binary(n))], timeout=30.0)
FRAG_SIZES = [64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB]
for j, fs in enumerate(FRAG_SIZES, 1):
    echo(f"9.3.{j}", f"4 MiB text in fragments of {fs} bytes",
         lambda fs=fs: fragments(OP_TEXT, big_text(4 * MIB), fs),
         lambda: [("text", big_text(4 * MIB))], timeout=30.0)
    echo(f"9.4.{j}", f"4 MiB binary in fragments of {fs} bytes",
         lambda fs=fs: fragments(OP_BINARY, big_binary(4 * MIB), fs),
         lambda: [("binary", big_binary(4 * MIB))], timeout=30.0)
for j, ch in enumerate([64, 128, 256, 512, KIB, 2 * KIB], 1):
    echo(f"9.5.{j}", f"1 MiB text written in {ch}-byte chunks", lambda: [text(big_text(MIB))],
         lambda: [("text", big_text(MIB))], chop=ch, timeout=30.0)
    echo(f"9.6.{j}", f"1 MiB binary written in {ch}-byte chunks",
         lambda: [binary(big_binary(MIB))], lambda: [("binary", big_binary(MIB))], chop=ch,
         timeout=30.0)


def round_trips(op, payload, count=1000):
    ops = []
    for i in range(count):
        ops += [F(op, payload), Wait(events=i + 1)]
    return ops


for j, n in enumerate([0, 16, 64, 256, KIB, 4 * KIB], 1):
    echo(f"9.7.{j}", f"1000 text messages of {n} bytes, each echo awaited",
         lambda n=n: round_trips(OP_TEXT, utf8_text(n)),
         lambda n=n: [("text", utf8_text(n))] * 1000, timeout=30.0)
    echo(f"9.8.{j}", f"1000 binary messages of {n} bytes, each echo awaited",
         lambda n=n: round_trips(OP_BINARY, rand_bytes(n, n)),
         lambda n=n: [("binary", rand_bytes(n, n))] * 1000, timeout=30.0)


def over_limit(op, announced, sent):
    """A frame header announcing `announced` bytes and the first `sent` of
    them; then wait for the close before sending any more."""
    key = b"\x01\x02\x03\x04"
    first = utf8_text(sent) if op == OP_TEXT else rand_bytes(sent, 99)
    return [F(op, b"", length=announced, key=key).encode() + mask_bytes(first, key),
            Wait(close=True)]


# Over the limit: the header announces max_message_size + 1 bytes; only the
# first 64 KiB are sent and the close 1009 must arrive before the rest.
fail("9.9.1", "text frame of max_message_size + 1 bytes: 1009 before the payload is sent",
     over_limit(OP_TEXT, MAX_MESSAGE + 1, 64 * KIB), 1009, timeout=10.0)
fail("9.9.2", "binary frame of max_message_size + 1 bytes: 1009 before the payload is sent",
     over_limit(OP_BINARY, MAX_MESSAGE + 1, 64 * KIB), 1009, timeout=10.0)
fail("9.9.3", "(extra) max_message_size exactly in a first fragment, then 1 more byte",
     lambda: [binary(big_binary(MAX_MESSAGE), fin=False), cont(b"x")], 1009, timeout=30.0)
fail("9.9.4", "(extra) frame announcing 2^62 bytes: 1009 at once",
     over_limit(OP_BINARY, 1 << 62, 0), 1009)
echo("9.9.5", "(extra) max_message_size exactly, in 2 fragments",
     lambda: [binary(big_binary(MAX_MESSAGE // 2, 5), fin=False),
              cont(big_binary(MAX_MESSAGE // 2, 5))],
     lambda: [("binary", big_binary(MAX_MESSAGE // 2, 5) * 2)], timeout=30.0)
fail("9.9.6", "(extra) 3 fragments whose sum exceeds max_message_size by 1: 1009 at the 3rd header",
     lambda: [binary(big_binary(MAX_MESSAGE // 2, 5), fin=False),
              cont(big_binary(MAX_MESSAGE // 2, 5), fin=False),
              over_limit(OP_CONT, 1, 0)[0], Wait(close=True), b"y"], 1009, timeout=30.0)
SMALL = utf8_text(16 * 1000)
echo("9.10.1", "(extra) 1000 text fragments of 16 bytes reassembled",
     fragments(OP_TEXT, SMALL, 16), [("text", SMALL)], timeout=10.0)
SMALLB = rand_bytes(16 * 1000, 6)
echo("9.10.2", "(extra) 1000 binary fragments of 16 bytes, 16-byte writes",
     fragments(OP_BINARY, SMALLB, 16), [("binary", SMALLB)], chop=16, timeout=10.0)

# ---- 10 Misc -----------------------------------------------------------------

T64 = utf8_text(65536)
echo("10.1.1", "65536-byte text auto-fragmented into 1300-byte frames; echo compared "
     "after reassembly", fragments(OP_TEXT, T64, 1300), [("text", T64)])
fail("10.2.1", "(extra) unmasked client frame (RFC 6455 5.1)", [text(HELLO, masked=False)], 1002)
fail("10.2.2", "(extra) 64-bit length with the most significant bit set",
     [F(OP_BINARY, b"", length=1 << 63), Wait(close=True)], 1002)
echo("10.2.3", "(extra) 13-byte text with a non-minimal 16-bit length (accepted, see ws_frame.h)",
     [text(HELLO, len_form=16)], [("text", HELLO)])
echo("10.2.4", "(extra) 13-byte text with a non-minimal 64-bit length (accepted, see ws_frame.h)",
     [text(HELLO, len_form=64)], [("text", HELLO)])
echo("10.2.5", "(extra) frames in the same write as the upgrade request",
     [text(HELLO), ping(PINGP), binary(BIN8)],
     [("text", HELLO), ("pong", PINGP), ("binary", BIN8)], early=True, pongs_apart=True)
echo("10.2.6", "(extra) text and binary messages interleaved with pings, 3-byte writes",
     [text(KOSME), ping(b"1"), binary(BIN8), ping(b"2"), text(b"")],
     [("text", KOSME), ("pong", b"1"), ("binary", BIN8), ("pong", b"2"), ("text", b"")], chop=3,
     pongs_apart=True)
echo("10.2.7", "(extra) a 200 KiB text message in 3 fragments, sent with the upgrade request",
     fragments(OP_TEXT, utf8_text(200 * KIB), 70 * KIB), [("text", utf8_text(200 * KIB))],
     early=True)
