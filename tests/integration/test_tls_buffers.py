"""wss:// under load: the broker's TLS staging buffers exist only while they hold
bytes and its ciphertext goes to the socket without a copy (issue 17 item 4),
so these check that nothing is lost or reordered on the paths that changed:
large messages both ways, many small pipelined messages, a reader that pauses
(the kernel takes part of the ciphertext, the rest is written later) and a
reader that never reads (the slow-consumer close still works over TLS).
After a TLS 1.3 handshake the broker protects records itself (net/tls_record.c):
the tests at the end check what an idle wss connection costs against a ws one,
KeyUpdate with openssl s_client, and the alerts for damaged or oversized records."""
from __future__ import annotations

import json
import os
import select
import socket
import ssl
import subprocess
import time

import wsraw
from helpers import is_asan_build, wait_for
from sectools import client_ssl, make_cert


def tls_broker(broker_factory, tmp_path, *extra):
    cert, key = make_cert(tmp_path)
    b = broker_factory("--tls-cert", str(cert), "--tls-key", str(key), *extra, tls=True)
    b.ctx = client_ssl(cert)
    return b


def wss_raw(b, **kw) -> wsraw.Conn:
    return b.track(wsraw.ws_connect("127.0.0.1", b.tls_port, ssl_context=b.ctx, **kw))


def subscribe(c: wsraw.Conn, topic: str) -> None:
    c.send_json({"type": "subscribe", "topic": topic, "id": 1})
    assert c.recv_json() == {"type": "ack", "id": 1}


def publish_acked(pub: wsraw.Conn, topic: str, datas, first_id: int = 1) -> None:
    """Publishes every item pipelined in one write, then reads every ack."""
    out = bytearray()
    for i, d in enumerate(datas):
        out += wsraw.text_frame({"type": "publish", "topic": topic, "data": d, "id": first_id + i})
    pub.send(bytes(out))
    for i in range(len(datas)):
        r = pub.recv_json(30)
        assert r["type"] == "ack" and r["id"] == first_id + i, r


def test_wss_large_messages_both_ways(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path, "--max-message-size", "2MiB", "--max-outbound-bytes", "4MiB")
    sub = wss_raw(b)
    subscribe(sub, "big")
    pub = wss_raw(b)
    # 1.5 MB: about a hundred TLS records each way, more than the 64 KiB of
    # ciphertext the broker encrypts ahead of the socket.
    datas = ["".join(chr(97 + (i + k) % 26) for k in range(26)) * (1_500_000 // 26) for i in range(3)]
    for i, d in enumerate(datas):
        publish_acked(pub, "big", [d], first_id=i + 1)
        m = sub.recv_json(30)
        assert m["type"] == "message" and m["topic"] == "big", {k: v for k, v in m.items() if k != "data"}
        assert m["data"] == d, f"message {i} differs"
    b.assert_healthy()


def test_wss_many_small_pipelined_messages(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path)
    sub = wss_raw(b)
    subscribe(sub, "small")
    pub = wss_raw(b)
    n = 5000
    publish_acked(pub, "small", list(range(n)))
    got = [sub.recv_json(30)["data"] for _ in range(n)]
    assert got == list(range(n))
    b.assert_healthy()


def test_wss_reader_that_pauses_gets_everything_in_order(broker_factory, tmp_path):
    # Room for the whole burst in the broker's queue, far more than the
    # kernel's socket buffers take: the broker writes ciphertext that the
    # kernel takes only in part and finishes it as the reader catches up.
    b = tls_broker(broker_factory, tmp_path, "--max-outbound-bytes", "32MiB",
                   "--max-message-size", "1MiB")
    sub = wss_raw(b, rcvbuf=4096)
    subscribe(sub, "burst")
    pub = wss_raw(b)
    n, size = 400, 20_000  # 8 MB
    datas = [f"{i:06d}" + "y" * size for i in range(n)]
    for start in range(0, n, 50):  # acked in slices, so the publisher never blocks on its own acks
        publish_acked(pub, "burst", datas[start:start + 50], first_id=start + 1)
    # Everything is queued or in flight now; only then does `sub` read.
    for i in range(n):
        m = sub.recv_json(30)
        assert m["type"] == "message" and m["data"] == datas[i], f"message {i}: {str(m)[:80]}"
    assert b.metric("wsbroker_slow_consumer_closes_total") == 0
    b.assert_healthy()


def test_wss_reader_that_never_reads_is_closed_1013(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path, "--max-outbound-bytes", "64KiB", "--close-timeout", "1s")
    slow = wss_raw(b, rcvbuf=4096)
    subscribe(slow, "flood")
    # From here on `slow` reads nothing.
    pub = wss_raw(b)
    payload = "z" * 16_000
    deadline = time.monotonic() + 60
    i = 0
    while b.metric("wsbroker_slow_consumer_closes_total") < 1:
        assert time.monotonic() < deadline, f"no slow-consumer close after {i} messages of 16 kB"
        publish_acked(pub, "flood", [payload] * 4, first_id=i + 1)
        i += 4
    m = b.metrics()
    assert m["wsbroker_slow_consumer_closes_total"] == 1
    assert m['wsbroker_close_frames_total{code="1013"}'] == 1
    # The publisher is unaffected, and the broker still serves wss://.
    publish_acked(pub, "flood", ["after"], first_id=i + 1)
    fresh = wss_raw(b)
    subscribe(fresh, "flood")
    publish_acked(pub, "flood", ["fresh"], first_id=i + 2)
    assert fresh.recv_json()["data"] == "fresh"
    # pub, fresh and the metrics request itself: the slow reader is gone.
    wait_for(lambda: b.metric("wsbroker_connections") == 3, 30, 0.05, "the slow reader to be gone")
    b.assert_healthy()


# ---- TLS 1.3 after the handshake: the broker's own record layer ----------
# After a TLS 1.3 handshake the broker frees OpenSSL's SSL object and seals
# and opens records itself (net/tls_record.c), so an idle wss:// connection
# costs about what a ws:// one does; these check that cost and the record
# layer's answers to KeyUpdate, a damaged record and an oversized one.

def test_idle_wss_connection_costs_about_a_ws_one(broker_factory, tmp_path):
    # A small ASan quarantine: freed handshake memory is reused as it is
    # without ASan, so the RSS growth is what the connections hold.
    cert, key = make_cert(tmp_path)
    b = broker_factory("--tls-cert", str(cert), "--tls-key", str(key), "--workers", "1", tls=True,
                       env={"ASAN_OPTIONS": "quarantine_size_mb=1:detect_leaks=1"})
    b.ctx = client_ssl(cert)
    held = []

    def open_idle(n: int, tls: bool, base: int) -> None:
        for i in range(n):
            c = wss_raw(b) if tls else b.track(wsraw.ws_connect("127.0.0.1", b.port))
            subscribe(c, f"idle.{base + i}")
            held.append(c)

    open_idle(20, False, 0)  # warm both paths: first allocations, arenas
    open_idle(20, True, 20)
    n = 250
    rss0 = b.rss_kib()
    open_idle(n, False, 1000)
    rss1 = b.rss_kib()
    open_idle(n, True, 2000)
    rss2 = b.rss_kib()
    ws_per = (rss1 - rss0) * 1024 / n
    wss_per = (rss2 - rss1) * 1024 / n
    # OpenSSL 3.0 keeps ~14 KB per established SSL object even with
    # SSL_MODE_RELEASE_BUFFERS; without one a wss:// connection adds only
    # its TLS state, keys and counters (~1.8 KB in bench/peer.sh's idle
    # rows) to what a ws:// one costs. The bound sits between the two, with
    # room for a sanitizer's shadow memory (TSan: ws 5.7 KB, wss 9.1 KB).
    bound = 6144 * (2 if is_asan_build() else 1)
    assert wss_per - ws_per < bound, f"ws {ws_per:.0f} B, wss {wss_per:.0f} B per idle connection"
    # They all still work.
    pub = wss_raw(b)
    publish_acked(pub, "idle.2000", ["still here"])
    assert held[40 + n].recv_json()["data"] == "still here"
    b.assert_healthy()


def test_key_update_from_openssl_s_client(broker_factory, tmp_path):
    """`openssl s_client`'s "K" command sends a KeyUpdate asking for ours:
    the broker must take the client's new key and answer with its own (a
    broker that kept the old read key cannot open the request that follows,
    one that ignores the request is caught by s_client's next read)."""
    cert, key = make_cert(tmp_path)
    b = broker_factory("--tls-cert", str(cert), "--tls-key", str(key), tls=True)
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{b.tls_port}", "-tls1_3",
                          "-CAfile", str(cert), "-crlf"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = b""

        def wait_count(marker: bytes, n: int) -> None:
            nonlocal out
            deadline = time.monotonic() + 30
            while out.count(marker) < n:
                assert time.monotonic() < deadline, f"no {marker!r} x{n} in {out[-400:]!r}"
                r, _, _ = select.select([p.stdout], [], [], 1)
                if r:
                    chunk = os.read(p.stdout.fileno(), 65536)
                    assert chunk, f"s_client ended: {out[-400:]!r}"
                    out += chunk

        wait_count(b"Verify return code: 0", 1)
        for n in range(1, 4):
            p.stdin.write(b"K\n")
            p.stdin.flush()
            wait_count(b"KEYUPDATE", n)
            # A keep-alive request after each update: the answer proves both
            # directions work under the keys after it.
            p.stdin.write(b"GET /healthz HTTP/1.1\nHost: x\n\n")
            p.stdin.flush()
            wait_count(b'"status":"ok"', n)
        assert p.poll() is None, out[-400:]
    finally:
        p.kill()
        p.wait()
    b.assert_healthy()


def tls13_raw(b):
    """A TLS 1.3 session over a plain socket through ssl's memory BIOs, so a
    test can change the ciphertext it sends."""
    sock = socket.create_connection(("127.0.0.1", b.tls_port), timeout=10)
    ctx = b.ctx
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outg.read())
            data = sock.recv(65536)
            assert data, "broker closed during the handshake"
            inc.write(data)
    sock.sendall(outg.read())
    return sock, obj, inc, outg


def alert_after(sock, obj, inc) -> str:
    """What the broker sends before closing: the alert's reason, or "closed
    without an alert"."""
    sock.settimeout(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            return "closed without an alert"
        inc.write(data)
        try:
            obj.read(65536)
        except ssl.SSLWantReadError:
            continue
        except ssl.SSLError as e:
            return str(e)
    return "no answer"


def test_corrupted_record_closes_with_bad_record_mac(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path)
    sock, obj, inc, outg = tls13_raw(b)
    assert obj.version() == "TLSv1.3"
    obj.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    rec = bytearray(outg.read())
    rec[10] ^= 0x20
    sock.sendall(bytes(rec))
    assert "BAD_RECORD_MAC" in alert_after(sock, obj, inc).upper()
    sock.close()
    b.assert_healthy()


def test_oversized_record_closes_at_its_header(broker_factory, tmp_path):
    b = tls_broker(broker_factory, tmp_path)
    sock, obj, inc, outg = tls13_raw(b)
    # A header announcing 65,535 bytes, and nothing after: the broker answers
    # at the header rather than waiting for (and buffering) the body.
    sock.sendall(b"\x17\x03\x03\xff\xff")
    assert "RECORD_OVERFLOW" in alert_after(sock, obj, inc).upper()
    sock.close()
    b.assert_healthy()
