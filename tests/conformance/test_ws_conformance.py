"""WebSocket conformance cases (Autobahn groups 1-7, 9, 10) against the
broker's echo endpoint. The cases are in wsconf_cases.py; this file runs one
case: connect, send its operations, read everything until EOF with an
independent frame parser, and compare the transcript with the expectation.
"""

from __future__ import annotations

import signal
import time

import pytest

from wsconf_cases import CASES, Case, Wait
from wsconf_client import OP_CLOSE, CaseTimeout, Event, F, WsConn, close_payload
from wsconf_client import on_alarm as _on_alarm


def _writes(ops, chop):
    """Groups the ops into writes. Yields bytes to write or Wait objects;
    `label` strings describe what was sent, for failure messages."""
    pending = bytearray()
    for op in ops:
        if isinstance(op, Wait):
            if pending:
                yield bytes(pending)
                pending.clear()
            yield op
            continue
        raw = op.encode() if isinstance(op, F) else bytes(op)
        if chop == "frame":
            yield raw
        else:
            pending += raw
    if pending:
        yield bytes(pending)


def _describe_ops(ops):
    out = []
    for op in ops[:40]:
        if isinstance(op, Wait):
            out.append(f"  <wait {'for close (fail fast)' if op.close else f'for {op.events} events'}>")
        elif isinstance(op, F):
            out.append("  " + op.describe())
        else:
            b = bytes(op)
            out.append(f"  raw {len(b)} bytes: {b[:32].hex()}{'…' if len(b) > 32 else ''}")
    if len(ops) > 40:
        out.append(f"  … {len(ops) - 40} more ops")
    return "\n".join(out)


def _fmt(events):
    if len(events) > 12:
        return ", ".join(e.short() for e in events[:10]) + f", … ({len(events)} events)"
    return ", ".join(e.short() for e in events) or "(nothing)"


def run_case(port: int, case: Case):
    """Runs one case. Returns the transcript; raises AssertionError on failure."""
    ops = case.ops() if callable(case.ops) else case.ops
    expect = case.expect() if callable(case.expect) else case.expect
    deadline = time.monotonic() + case.timeout
    conn = WsConn(port, deadline)
    transcript: list[Event] = []
    notes: list[str] = []

    def data_events():
        return [e for e in transcript if e.kind in ("text", "binary", "pong", "ping")]

    def read_one():
        ev = conn.next_event()
        transcript.append(ev)
        if ev.kind == "close" and not conn.sent_close:
            # A real client answers the server's close with its own (the
            # server may already be draining; a failed write is fine).
            conn.sent_close = True
            code = 1000 if ev.code is None else ev.code
            conn.write(F(OP_CLOSE, close_payload(code)).encode())
        return ev

    def finished():
        return transcript and transcript[-1].kind in ("close", "eof")

    try:
        writes = list(_writes(ops, case.chop))
        early = b""
        if case.early and writes and not isinstance(writes[0], Wait):
            early = writes.pop(0)  # leaves in the same write as the upgrade request
        conn.connect(early)
        stopped = False
        for w in writes:
            if isinstance(w, Wait):
                if w.close:
                    saved = conn.deadline
                    conn.deadline = min(saved, time.monotonic() + w.within)
                    try:
                        while not finished():
                            read_one()
                    except CaseTimeout:
                        raise AssertionError(
                            f"no fail-fast: the server did not close within {w.within}s of the "
                            "violating bytes (the rest of the message was not sent yet)") from None
                    finally:
                        conn.deadline = saved
                else:
                    while len(data_events()) < w.events and not finished():
                        read_one()
                    if finished():
                        stopped = True
                continue
            if stopped:
                break
            if conn.got_close and conn.send_failed:
                break
            if case.chop not in (None, "frame"):
                k = int(case.chop)
                for i in range(0, len(w), k):
                    if not conn.write(w[i : i + k]):
                        break
            else:
                conn.write(w)
            if conn.send_failed:
                notes.append("the server closed while we were still writing")
                break
        if any(isinstance(op, F) and op.opcode == OP_CLOSE for op in ops):
            conn.sent_close = True  # the case sent its own close: do not send another
        if case.client_close and not conn.got_close and not conn.sent_close:
            # As Autobahn does: the expected echoes arrive before we close.
            while len(data_events()) < len(expect) and not finished():
                read_one()
        if case.client_close and not conn.got_close and not conn.sent_close:
            conn.sent_close = True
            conn.write(F(OP_CLOSE, close_payload(1000)).encode())
        while not transcript or transcript[-1].kind != "eof":
            read_one()
    except AssertionError as e:
        raise AssertionError(_report(case, ops, expect, transcript, notes, f"{type(e).__name__}: {e}"))
    finally:
        conn.close()

    problem = _grade(case, expect, transcript, conn)
    if problem:
        raise AssertionError(_report(case, ops, expect, transcript, notes, problem))
    return transcript


def _grade(case: Case, expect, transcript, conn) -> str | None:
    if conn.reset:
        return "the connection was reset (RST) instead of closed with FIN"
    if not transcript or transcript[-1].kind != "eof":
        return "no TCP EOF"
    closes = [i for i, e in enumerate(transcript) if e.kind == "close"]
    if not closes:
        return "TCP closed without a close frame"
    ci = closes[0]
    if ci != len(transcript) - 2:
        return "frames after the server's close frame"
    got = [(e.kind, e.data) for e in transcript[:ci] if e.kind != "ping"]
    want = [tuple(x) for x in expect]
    if case.pongs_apart:
        got = [g for g in got if g[0] != "pong"] + [g for g in got if g[0] == "pong"]
        want = [w for w in want if w[0] != "pong"] + [w for w in want if w[0] == "pong"]
    if case.nonstrict:
        if got != want[: len(got)]:
            return "unexpected messages/pongs before the close (not even a prefix of the expected)"
    elif got != want:
        if len(got) == len(want):
            for i, (g, w) in enumerate(zip(got, want)):
                if g != w:
                    return (f"event {i} differs: got {g[0]} of {len(g[1])} bytes, expected "
                            f"{w[0]} of {len(w[1])} bytes")
        return f"expected {len(want)} messages/pongs before the close, got {len(got)}"
    code = transcript[ci].code
    if code not in case.close:
        shown = ["empty" if c is None else c for c in case.close]
        return f"close code {'empty' if code is None else code}, expected one of {shown}"
    return None


def _report(case, ops, expect, transcript, notes, problem):
    exp = ", ".join(f"{k}(len={len(d)} {d[:16].hex()})" for k, d in expect[:10])
    if len(expect) > 10:
        exp += f", … ({len(expect)} events)"
    closes = "/".join("empty" if c is None else str(c) for c in case.close)
    lines = [
        f"case {case.id}: {case.desc}",
        f"problem: {problem}",
        f"sent ({'one write' if case.chop is None else case.chop if case.chop == 'frame' else f'{case.chop}-byte writes'}"
        f"{', with the upgrade request' if case.early else ''}):",
        _describe_ops(ops),
        f"expected: {'prefix of ' if case.nonstrict else ''}[{exp}] then close {closes}, EOF",
        f"actual:   {_fmt(transcript)}",
    ]
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


@pytest.mark.conformance_case
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(broker, case):
    broker.check_alive("before this case: it died in an earlier one")
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, case.timeout + 5.0)
    try:
        run_case(broker.port, case)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    broker.check_alive()

