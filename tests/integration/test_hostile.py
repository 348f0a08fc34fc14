"""Hostile input: 10,000 random or garbled frames from many connections (the
broker stays up, answers /healthz, and its RSS comes back near its baseline),
and a slowloris on the TLS handshake (timed out by header_timeout)."""
from __future__ import annotations

import os
import random
import socket
import time

import wsraw
from helpers import is_asan_build, wait_for
from sectools import make_cert


def _garbled_frame(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return os.urandom(rng.randrange(1, 64))  # pure noise
    if kind == 1:  # valid frame, random payload (often bad UTF-8 or bad JSON)
        return wsraw.build_frame(wsraw.OP_TEXT, os.urandom(rng.randrange(0, 200)), mask=True)
    if kind == 2:  # reserved opcode / RSV bits
        f = bytearray(wsraw.build_frame(wsraw.OP_TEXT, b"{}", mask=True))
        f[0] = (f[0] & 0x80) | rng.choice([0x3, 0x7, 0xB, 0x40 | 0x1])
        return bytes(f)
    if kind == 3:  # huge declared length
        return bytes([0x81, 0xFF]) + (2**62).to_bytes(8, "big") + os.urandom(4)
    if kind == 4:  # JSON-ish garbage
        junk = rng.choice([b'{"type":"subscribe","topic":"a..b"}', b'{"type":1}', b"[" * 3000,
                           b'{"type":"auth","token":"x.y.z"}', b'{"type":"publish"}'])
        return wsraw.build_frame(wsraw.OP_TEXT, junk, mask=True)
    return wsraw.build_frame(wsraw.OP_TEXT, b"x", mask=False)  # unmasked


def test_ten_thousand_garbled_frames(broker_factory):
    b = broker_factory("--rate-messages", "0")
    rng = random.Random(8)
    # Warm-up so the baseline includes the first-use allocations.
    for _ in range(3):
        c = b.raw_ws()
        c.send_json({"type": "ping"})
        c.recv_json()
        c.close()
    b.assert_healthy()
    baseline = b.rss_kib()
    deadline = time.monotonic() + 50
    sent = 0
    conns = 0
    while sent < 10_000 and time.monotonic() < deadline:
        batch = []
        for _ in range(20):  # 20 connections at a time
            try:
                batch.append(wsraw.ws_connect(b.host, b.port, read_welcome=False))
            except (AssertionError, OSError):
                pass
        conns += len(batch)
        for c in batch:
            for _ in range(25):
                try:
                    c.send(_garbled_frame(rng))
                except OSError:
                    break  # the broker closed it: fine
                sent += 1
        for c in batch:
            c.close()
    assert sent >= 10_000, f"only {sent} frames sent in time"
    assert b.alive()
    b.assert_healthy()
    assert b.get("/healthz").status == 200
    limit = baseline + (24 * 1024 if not is_asan_build() else 256 * 1024)
    wait_for(lambda: b.rss_kib() <= limit, 15, interval=0.2,
             what=f"RSS back near baseline {baseline} KiB (limit {limit}, now {b.rss_kib()})")


def test_tls_handshake_slowloris_is_timed_out(broker_factory, tmp_path):
    cert, key = make_cert(tmp_path)
    pf = tmp_path / "tls.port"
    b = broker_factory("--tls-cert", str(cert), "--tls-key", str(key), "--tls-port", "0",
                       "--tls-port-file", str(pf), "--header-timeout", "1s")
    port = int(wait_for(lambda: pf.exists() and pf.read_text().strip(), 5, what="TLS port"))
    # A ClientHello record header promising 512 bytes, then a byte at a time.
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
        socks.append(s)
    t0 = time.monotonic()
    for s in socks:
        s.settimeout(5)
        closed = False
        while time.monotonic() - t0 < 10:
            try:
                s.sendall(b"\x00")
                data = s.recv(1)
                if data == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        assert closed, "a TLS slowloris connection was not cut"
        s.close()
    assert time.monotonic() - t0 < 10
    b.assert_healthy()
