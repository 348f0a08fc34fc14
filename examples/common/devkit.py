"""Shared plumbing of the example backends (development only).

Every example page is served by its backend, which also signs the user in: it
mints a short-lived HS256 JWT for the name the user typed, with the
permissions that example grants, signed with the `auth.jwt_secret` of the
example's own wsbroker.json. A real app checks a password or a session first;
here any name is accepted, which is why these configs and secrets are for
development only.

The backend is started by examples/run with the broker's URLs:

    backend.py --broker-ws ws://127.0.0.1:P/ws --broker-http http://127.0.0.1:P
               --config examples/NAME/wsbroker.json --port 0 --port-file FILE

and writes its bound port to --port-file once it accepts connections.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import mimetypes
import os
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

EXAMPLES = Path(__file__).resolve().parent.parent
REPO = EXAMPLES.parent
sys.path.insert(0, str(REPO / "clients" / "python"))  # `import wsbroker` without installing it

# Files every example page shares: the demo page's stylesheet, the JS client
# and the gallery's own small CSS/JS kit.
SHARED = {
    "/style.css": REPO / "web" / "style.css",
    "/js/wsbroker.js": REPO / "clients" / "js" / "wsbroker.js",
    "/example.css": EXAMPLES / "common" / "example.css",
    "/example.js": EXAMPLES / "common" / "example.js",
}
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint(secret: str, sub: str, subscribe: List[str], publish: List[str], ttl: int = 3600,
         **claims: Any) -> str:
    """An HS256 JWT for `sub` with the broker's permission claims."""
    now = int(time.time())
    body = {"sub": sub, "iat": now, "exp": now + ttl, "subscribe": subscribe, "publish": publish, **claims}
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing = f"{head}.{b64url(json.dumps(body).encode())}"
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64url(sig)}"


def verify(secret: str, token: str) -> Optional[Dict[str, Any]]:
    """The claims of an HS256 token signed with `secret` and not expired, else None
    (for a backend's own HTTP API, which takes the same tokens as the broker)."""
    try:
        head, body, sig = token.split(".")
        want = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(b64url(want), sig):
            return None
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        return None
    return claims


def parse_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--broker-ws", required=True, help="the broker's WebSocket URL (ws://host:port/ws)")
    ap.add_argument("--broker-http", required=True, help="the broker's HTTP base URL")
    ap.add_argument("--config", type=Path, required=True, help="the example's wsbroker.json")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", type=Path)
    return ap.parse_args()


def secret_of(config: Path) -> str:
    return json.loads(config.read_text())["auth"]["jwt_secret"]


def write_port_file(path: Optional[Path], port: int) -> None:
    """Atomically, as the broker does: readers never see a half-written file."""
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def static_file(example_dir: Path, url_path: str) -> Optional[Tuple[bytes, str]]:
    """The bytes and content type of a page file: the example's own files
    (index.html, app.js, …) or a shared one; None when there is none."""
    if url_path in SHARED:
        f = SHARED[url_path]
    else:
        rel = "index.html" if url_path == "/" else url_path.lstrip("/")
        # Only plain names of the example's directory: no paths, no dotfiles.
        if "/" in rel or rel.startswith(".") or not rel.endswith((".html", ".js", ".css", ".png", ".svg")):
            return None
        f = example_dir / rel
    if not f.is_file():
        return None
    ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
    if ctype in ("text/javascript", "application/javascript"):
        ctype = "text/javascript"
    return f.read_bytes(), ctype


def serve(example_dir: Path, args: argparse.Namespace,
          grants: Callable[[str, Dict[str, str]], Optional[Dict[str, Any]]]) -> None:
    """A stdlib server for an example without an app framework: its page,
    /config.json (the broker's URL) and /api/token?user=NAME[&…] (a dev token
    with `grants(name, query)`: {"subscribe": […], "publish": […]}, or None:
    400, e.g. an unknown role)."""
    secret = secret_of(args.config)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *a: Any) -> None:  # quiet: examples/run shows the URL
            pass

        def send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlsplit(self.path)
            if url.path == "/config.json":
                body = json.dumps({"ws": args.broker_ws, "http": args.broker_http}).encode()
                return self.send(200, body, "application/json")
            if url.path == "/api/token":
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                user = query.get("user", "")
                granted = grants(user, query) if valid_name(user) else None
                if granted is None:
                    return self.send(400, b'{"error":"user: 1 to 32 letters, digits, . _ -"}', "application/json")
                token = mint(secret, user, **granted)
                return self.send(200, json.dumps({"token": token, "user": user}).encode(), "application/json")
            found = static_file(example_dir, url.path)
            if found is None:
                return self.send(404, b"not found\n", "text/plain")
            self.send(200, found[0], found[1])

    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    write_port_file(args.port_file, httpd.server_address[1])
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
