"""Small helpers shared by the WebSocket client and the HTTP publisher."""
from __future__ import annotations

import base64
import json
from typing import Any, Dict, Optional, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` matches ``pattern`` (PROTOCOL.md section 5.2).

    ``*`` matches one token, ``>`` one or more trailing tokens; a wildcard in
    the first position never matches a reserved ``$`` topic."""
    p = pattern.split(".")
    t = topic.split(".")
    if p[0] in ("*", ">") and t[0].startswith("$"):
        return False
    for i, tok in enumerate(p):
        if tok == ">":
            return len(t) > i
        if i >= len(t):
            return False
        if tok != "*" and tok != t[i]:
            return False
    return len(p) == len(t)


def is_exact_topic(pattern: str) -> bool:
    """True when ``pattern`` has no wildcard token (it names one topic)."""
    return not any(tok in ("*", ">") for tok in pattern.split("."))


def dumps(value: Any) -> str:
    """Compact JSON as the broker parses it: UTF-8 text, no NaN/Infinity (ValueError)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def token_times(token: str) -> Tuple[Optional[float], Optional[float]]:
    """``(exp, iat)`` of a JWT, read WITHOUT verifying it (only to know when to
    ask for a fresh one); ``(None, None)`` for anything else."""
    try:
        part = str(token).split(".")[1]
        part += "=" * (-len(part) % 4)
        claims = json.loads(base64.urlsafe_b64decode(part.encode()))
    except (IndexError, ValueError, TypeError):
        return None, None
    if not isinstance(claims, dict):
        return None, None

    def num(v: Any) -> Optional[float]:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return num(claims.get("exp")), num(claims.get("iat"))


def ws_url(url: str) -> str:
    """``url`` with http(s):// mapped to ws(s)://; ValueError for another scheme."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"wsbroker: URL must be ws://, wss://, http:// or https:// with a host, got {url!r}")
    return urlunsplit((scheme, parts.netloc, parts.path or "/ws", parts.query, ""))


def with_query(url: str, **params: str) -> str:
    """``url`` with the query parameters set (replacing ones of the same name)."""
    parts = urlsplit(url)
    query: Dict[str, str] = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
