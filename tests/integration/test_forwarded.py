"""X-Forwarded-For and trusted_proxies: per-IP limits behind a reverse proxy.

A raw client on 127.0.0.1 plays both roles: an untrusted client that writes
the header itself (ignored: counted under its own address), and a trusted
proxy (counted under the rightmost address of the header that is not a
trusted proxy). SECURITY.md describes the policy.
"""
from __future__ import annotations

import re

import wsraw
from helpers import wait_for


def upgrade(b, xff=None):
    """An upgrade from 127.0.0.1 with X-Forwarded-For `xff` (str or list of
    header values). Returns (status, conn); the conn stays open on 101."""
    headers = {"X-Forwarded-For": xff} if xff is not None else None
    c = b.conn()
    c.send(wsraw.upgrade_request("/ws", f"127.0.0.1:{b.port}", headers=headers))
    r = wsraw.read_response(c)
    if r.status != 101:
        c.close()
    return r.status, c


def test_header_from_an_untrusted_peer_is_ignored(broker_factory):
    # 10.0.0.0/8 is trusted, 127.0.0.1 is not: its header is the client's own claim.
    b = broker_factory("--max-connections-per-ip", "2", "--trusted-proxies", "10.0.0.0/8")
    s1, c1 = upgrade(b, "203.0.113.1")
    s2, _ = upgrade(b, "203.0.113.2")
    assert (s1, s2) == (101, 101)
    # A third address claimed in the header does not buy a third slot.
    s3, _ = upgrade(b, "203.0.113.3")
    assert s3 == 429
    c1.close()
    wait_for(lambda: b.get("/healthz").status == 200, 5.0, 0.05, "a slot to be released")


def test_trusted_proxy_counts_the_forwarded_client(broker_factory):
    b = broker_factory("--max-connections-per-ip", "2", "--trusted-proxies", "127.0.0.1",
                       "--log-level", "debug")
    # Two connections of client A through the proxy fill A's slots...
    a1 = upgrade(b, "203.0.113.7")
    a2 = upgrade(b, "203.0.113.7")
    assert (a1[0], a2[0]) == (101, 101)
    assert upgrade(b, "203.0.113.7")[0] == 429
    # ...not the proxy's, nor anybody else's: client B and the proxy itself
    # (a request without the header) still get in.
    assert upgrade(b, "203.0.113.8")[0] == 101
    assert upgrade(b)[0] == 101
    # The rightmost untrusted hop is the client: what A wrote on the left of
    # the proxy's entry (a forged address) does not make it someone else.
    assert upgrade(b, "198.51.100.99, 203.0.113.7")[0] == 429
    # Several headers concatenate; trusted hops on the right are skipped.
    assert upgrade(b, ["198.51.100.99", "203.0.113.7, 127.0.0.1"])[0] == 429
    # A malformed hop stops the walk: the connection is the proxy's.
    assert upgrade(b, "203.0.113.9, garbage")[0] == 101
    # Closing one of A's connections gives its slot back.
    a1[1].close()
    wait_for(lambda: upgrade(b, "203.0.113.7")[0] == 101, 5.0, 0.05, "A's slot to be released")
    # The log names the client and the proxy it came through.
    wait_for(lambda: re.search(r"reason=max_connections_per_ip.*peer=203\.0\.113\.7,via=127\.0\.0\.1:\d+|"
                               r"peer=203\.0\.113\.7,via=127\.0\.0\.1:\d+.*reason=max_connections_per_ip",
                               b.stderr()), 5.0, 0.05, "the rejection log line")


def test_plain_http_requests_are_counted_per_forwarded_client(broker_factory):
    # An upstream keep-alive connection may carry requests of different
    # clients: each request is admitted under its own client.
    b = broker_factory("--max-connections-per-ip", "1", "--trusted-proxies", "127.0.0.1")
    held = upgrade(b, "203.0.113.7")
    assert held[0] == 101
    c = b.conn()
    for xff, want in (("203.0.113.8", 200), ("203.0.113.9", 200)):
        c.send(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\n\r\n".encode())
        assert wsraw.read_response(c).status == want
    c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
    assert wsraw.read_response(c).status == 429
    c.close()
