#!/usr/bin/env python3
"""Mints a DEVELOPMENT token for `make run`'s broker: an HS256 JWT signed with
the public dev secret of tools/dev/run.json.

    tools/dev/dev_token.py alice            # valid 24 h
    tools/dev/dev_token.py bob --ttl 3600

Paste it into the demo page's "dev token" box: the page then connects as
`alice` (the token's `sub`), which presence, join/leave and the broker's
`from` stamp show. Development only: the secret is in the repository, so
anyone can mint these. A real app's backend signs tokens with its own secret
(see README.md, "Tokens for a real app").
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parent / "run.json"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint(secret: str, sub: str, ttl: int, now: int | None = None) -> str:
    now = int(time.time()) if now is None else now
    head = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": sub, "iat": now, "exp": now + ttl, "subscribe": [">"], "publish": [">"]}
    signing = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64url(sig)}"


def main() -> int:
    ap = argparse.ArgumentParser(description="mint a dev token for make run's broker (development only)")
    ap.add_argument("name", help="the user name: the token's sub (1 to 64 letters, digits, . _ -)")
    ap.add_argument("--ttl", type=int, default=86400, help="lifetime in seconds (default 86400)")
    ap.add_argument("--config", type=Path, default=CONFIG, help="the broker config holding auth.jwt_secret")
    a = ap.parse_args()
    name = a.name.strip()
    if not (1 <= len(name) <= 64) or not all(ch.isalnum() or ch in "._-" for ch in name):
        print(f"dev_token: name {a.name!r}: use 1 to 64 letters, digits, '.', '_' or '-'", file=sys.stderr)
        return 2
    if a.ttl <= 0:
        print("dev_token: --ttl must be > 0", file=sys.stderr)
        return 2
    secret = json.loads(a.config.read_text())["auth"]["jwt_secret"]
    print(mint(secret, name, a.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
