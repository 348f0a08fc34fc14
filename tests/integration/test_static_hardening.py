"""Static files and TLS hardening: no way out of the web root through a
symlinked directory (files are opened beneath the root's descriptor);
TLS key exchange limited to X25519, P-256 and P-384; Origin wildcards match
host labels only."""
from __future__ import annotations

import socket
import subprocess

import pytest

import wsraw
from helpers import wait_for
from sectools import client_ssl, make_cert


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "www"
    (root / "swap").mkdir(parents=True)
    (root / "swap" / "secret.txt").write_text("inside\n")
    (root / "page.txt").write_text("page\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE-SECRET\n")
    (root / "dir_out").symlink_to(outside)
    (root / "rel_in").symlink_to("swap")  # a relative link that stays inside
    return root, outside


def get(b, target):
    with wsraw.Conn(b.host, b.port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return wsraw.read_response(c)


def test_symlinked_directory_out_of_root_is_refused(broker_factory, roots):
    root, _ = roots
    b = broker_factory("--web-root", str(root))
    r = get(b, "/dir_out/secret.txt")
    assert r.status in (403, 404) and b"OUTSIDE" not in r.body
    assert get(b, "/rel_in/secret.txt").body == b"inside\n"


# ---- TLS key exchange groups ------------------------------------------------------------------


def tls_port(broker_factory, tmp_path):
    cert, key = make_cert(tmp_path)
    pf = tmp_path / "tlsport"
    broker_factory("--tls-cert", str(cert), "--tls-key", str(key), "--tls-port", "0",
                   "--tls-port-file", str(pf))
    return int(wait_for(lambda: pf.exists() and pf.read_text().strip(), 5, what="TLS port"))


def s_client(port, *args):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)


def test_tls13_offers_only_x25519_p256_p384(broker_factory, tmp_path):
    """OpenSSL 3's default list also accepts ffdhe2048..8192, P-521 and X448.
    (TLS 1.2 is not probed group by group: its ECDSA certificate needs the
    client to offer the certificate's curve as well.)"""
    version = "-tls1_3"
    port = tls_port(broker_factory, tmp_path)
    for group in ("X25519", "P-256", "P-384"):
        r = s_client(port, version, "-groups", group)
        assert r.returncode == 0 and "CONNECTION ESTABLISHED" in r.stderr, (group, r.stderr)
    for group in ("ffdhe2048", "ffdhe3072", "P-521", "X448"):
        r = s_client(port, version, "-groups", group)
        assert r.returncode != 0 and "CONNECTION ESTABLISHED" not in r.stderr, (group, r.stderr)


# ---- Origin wildcards ---------------------------------------------------------------------------


def origin_verdict(b, origin):
    """What a browser sending `origin` learns: "accepted" (101 and the welcome)
    or "refused" (101 and at once close 4003, PROTOCOL.md 10: a page cannot
    read a 403). Anything else fails the test."""
    c = b.conn()
    c.send(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin}\r\n\r\n").encode())
    r = wsraw.read_response(c)
    assert r.status == 101, (origin, r.status)
    frame = c.recv_frame()
    if frame.opcode == wsraw.OP_CLOSE:
        assert (frame.close_code, frame.close_reason) == (4003, "origin not allowed"), origin
        return "refused"
    assert frame.json()["type"] == "welcome", (origin, frame)
    return "accepted"


@pytest.mark.broker_args("--allowed-origins", "https://*.example.org")
def test_origin_wildcard_matches_host_labels_only(broker):
    assert origin_verdict(broker, "https://app.example.org") == "accepted"
    for origin in ("https://evil.com#.example.org", "https://evil.com?.example.org",
                   "https://evil.com\\.example.org", "https://evil.com@x.example.org"):
        assert origin_verdict(broker, origin) == "refused", origin


def test_large_file_over_tls_arrives_whole(broker_factory, tmp_path):
    """A reply larger than one 64 KiB batch of ciphertext: the kernel took the
    first batch whole and nothing flushed the rest (tls_flush wrote one batch
    per call), so the download stalled until other traffic came."""
    root = tmp_path / "www"
    root.mkdir()
    body = bytes(range(256)) * 4096  # 1 MiB
    (root / "big.bin").write_bytes(body)
    cert, key = make_cert(tmp_path)
    pf = tmp_path / "tlsport"
    broker_factory("--web-root", str(root), "--tls-cert", str(cert), "--tls-key", str(key),
                   "--tls-port", "0", "--tls-port-file", str(pf))
    port = int(wait_for(lambda: pf.exists() and pf.read_text().strip(), 5, what="TLS port"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ssl(cert).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = bytearray()
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
    head, _, got = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and got == body, (head[:80], len(got))
