"""Static files from --web-root: served when inside it, refused every way out."""
from __future__ import annotations

import pytest

import wsraw

SECRETS = [b"OUTSIDE-SECRET", b"SIBLING-SECRET", b"HIDDEN-SECRET", b"root:x:0:0"]


@pytest.fixture
def static_broker(broker_factory, web_root):
    return broker_factory("--web-root", str(web_root))


def raw_get(b, target: str) -> wsraw.Response:
    """GET with the request target sent verbatim (no client-side normalisation)."""
    with wsraw.Conn(b.host, b.port) as c:
        c.send(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return wsraw.read_response(c)


@pytest.mark.parametrize("target,body,ctype", [
    ("/", b"<h1>index page</h1>\n", "text/html"),
    ("/index.html", b"<h1>index page</h1>\n", "text/html"),
    ("/style.css", b"body{color:red}\n", "text/css"),
    ("/data.json", b'{"ok":true}\n', "application/json"),
    ("/sub/page.txt", b"sub page text\n", "text/plain"),
    ("/sub/", b"<p>sub index</p>\n", "text/html"),
    ("/sub", b"<p>sub index</p>\n", "text/html"),
    ("/sub/page.txt?v=3", b"sub page text\n", "text/plain"),
    ("/%73ub/page%2Etxt", b"sub page text\n", "text/plain"),
    ("/link_in.txt", b"sub page text\n", "text/plain"),
])
def test_static_file_served(static_broker, target, body, ctype):
    r = raw_get(static_broker, target)
    assert r.status == 200, (target, r.status, r.body)
    assert r.body == body
    assert r.header("Content-Type").startswith(ctype)
    assert int(r.header("Content-Length")) == len(body)


def test_static_head_has_headers_only(static_broker):
    c = static_broker.conn()
    c.send(b"HEAD /style.css HTTP/1.1\r\nHost: x\r\n\r\nGET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
    r = wsraw.read_response(c, head_only=True)
    assert r.status == 200 and int(r.header("Content-Length")) == len(b"body{color:red}\n")
    r2 = wsraw.read_response(c)
    assert r2.status == 200 and r2.body == b"body{color:red}\n"


def test_static_missing_file_is_404(static_broker):
    assert raw_get(static_broker, "/nope.html").status == 404
    assert raw_get(static_broker, "/sub/nope/deeper").status == 404


@pytest.mark.parametrize("target", [
    "/../outside/secret.txt",
    "/sub/../../outside/secret.txt",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/%2e%2E/outside/secret.txt",
    "/sub/%2E%2e/%2e%2E/outside/secret.txt",
    "/sub/%2e%2e/%2e%2e/outside/secret.txt",
    "/.%2e/outside/secret.txt",
    "/sub/..%2f..%2foutside/secret.txt",
    "/sub/..%2F..%2Foutside%2Fsecret.txt",
    "/..%5coutside%5csecret.txt",
    "/..\\outside\\secret.txt",
    "/link_out.txt",
    "/link_dir_out/secret.txt",
    "/link_sibling.txt",
    "/.hidden",
    "/%2ehidden",
    "/sub/../.hidden",
    "/%00",
    "/index.html%00.txt",
    "/%",
    "/%zz",
    "//etc/passwd",
    "/../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "http://x/../outside/secret.txt",
    "../outside/secret.txt",
])
def test_static_escape_attempt_is_refused(static_broker, target):
    r = raw_get(static_broker, target)
    assert r.status in (400, 403, 404), (target, r.status, r.body[:200])
    for s in SECRETS:
        assert s not in r.body, (target, r.body[:200])
    static_broker.assert_healthy()


def test_static_post_is_405(static_broker):
    r = static_broker.post("/index.html", "x", content_type="text/plain")
    assert r.status == 405
    assert "GET" in r.header("Allow")


def test_static_keep_alive_serves_several_files(static_broker):
    c = static_broker.conn()
    for path, body in [("/style.css", b"body{color:red}\n"), ("/sub/page.txt", b"sub page text\n"),
                       ("/", b"<h1>index page</h1>\n")]:
        c.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        r = wsraw.read_response(c)
        assert r.status == 200 and r.body == body
