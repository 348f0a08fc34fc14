"""A small synchronous client of the broker's HTTP API, on the standard library only.

For code that is not asyncio (Flask, Django, scripts, cron jobs):

    seq = wsbroker.publish_http("http://127.0.0.1:8080", "orders.42", {"state": "filled"}, api_key=KEY)

- ``POST /api/publish`` (PROTOCOL.md 11): :func:`publish_http`,
  :meth:`HttpPublisher.publish` (returns the ``seq``) and
  :meth:`HttpPublisher.publish_many` (one array request; a ``seq`` or an error
  per element).
- ``POST /api/request`` (PROTOCOL.md 11.2): :func:`request_http`,
  :meth:`HttpPublisher.request` (returns a Reply; raises ``NoResponders``
  (404) or ``RequestTimeout`` (504)).
- ``GET /api/presence`` (PROTOCOL.md 11.1): :meth:`HttpPublisher.presence`.

Errors are the typed errors of :mod:`wsbroker.errors` with ``status`` set:
``Unauthorized`` (401: no or unknown API key), ``Forbidden`` (403: the key does
not cover the topic), ``BadTopic`` / ``MissingField`` / … (400), ``TooLarge``
(413), ``Unavailable`` (503); ``ConnectError`` when the broker cannot be
reached, ``HttpError`` for an answer that is not the documented shape.
Each call is one HTTP request on a new connection (thread-safe, no state).
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, urlsplit, urlunsplit

from ._util import dumps
from .client import Member, Presence, Reply
from .errors import ConnectError, HttpError, WsbrokerError, error_for

__all__ = ["HttpPublisher", "publish_http", "request_http"]


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"wsbroker: the HTTP API URL must be http(s)://host:port, got {url!r}")
    path = parts.path.rstrip("/")
    # The WebSocket URL works too: its /ws path is dropped.
    if path.endswith("/ws"):
        path = path[:-3]
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class HttpPublisher:
    """The broker's HTTP API at ``url`` (``http://host:port``; a ``ws://…/ws``
    URL is mapped to it), with an optional API key (sent as ``Authorization:
    Bearer KEY``). ``timeout``: seconds for connecting and for each read."""

    def __init__(self, url: str, api_key: Optional[str] = None, *, timeout: float = 10.0,
                 context: Any = None) -> None:
        self.url = _base_url(url)
        self.api_key = api_key
        self.timeout = timeout
        self._context = context

    def publish(self, topic: str, data: Any = None) -> int:
        """Publishes ``data`` (any JSON value) to the exact ``topic``; returns its ``seq``."""
        _, body = self._call("POST", "/api/publish", {"topic": topic, "data": data})
        seq = body.get("seq")
        if not isinstance(seq, int):
            raise HttpError("http", f"/api/publish answered without a seq: {body!r}", status=200)
        return seq

    def publish_many(self, items: Sequence[Union[Tuple[str, Any], Mapping[str, Any]]]
                     ) -> List[Union[int, WsbrokerError]]:
        """Publishes several messages in one request (``(topic, data)`` pairs or
        ``{"topic", "data"}`` dicts). Elements are independent: the result has,
        in order, the ``seq`` of each published one or the error (not raised)
        of each rejected one."""
        body_items = [dict(i) if isinstance(i, Mapping) else {"topic": i[0], "data": i[1]} for i in items]
        _, body = self._call("POST", "/api/publish", body_items)
        results = body.get("results")
        if not isinstance(results, list) or len(results) != len(body_items):
            raise HttpError("http", f"/api/publish answered an array without its results: {body!r}", status=200)
        out: List[Union[int, WsbrokerError]] = []
        for item, res in zip(body_items, results):
            if isinstance(res, dict) and isinstance(res.get("seq"), int):
                out.append(res["seq"])
            else:
                e = res.get("error") if isinstance(res, dict) else None
                e = e if isinstance(e, dict) else {}
                out.append(error_for(str(e.get("code", "http")), str(e.get("message", "")),
                                     topic=item.get("topic"), status=200))
        return out

    def request(self, topic: str, data: Any = None, *, timeout: float = 5.0) -> Reply:
        """``POST /api/request``: returns the first Reply; raises ``NoResponders``
        (nobody subscribes to ``topic``) or ``RequestTimeout`` (no reply within
        ``timeout`` seconds, 0.001 to 60)."""
        timeout_ms = int(round(timeout * 1000))
        if not 1 <= timeout_ms <= 60000:
            raise ValueError("wsbroker: request timeout must be from 0.001 to 60 seconds")
        _, body = self._call("POST", "/api/request", {"topic": topic, "data": data, "timeout_ms": timeout_ms},
                             read_timeout=max(self.timeout, timeout + 5.0))
        return Reply(body.get("data"), Member.from_json(body.get("from")))

    def presence(self, topic: str) -> Presence:
        """``GET /api/presence``: who is subscribed to the exact ``topic`` (presence rule needed)."""
        _, body = self._call("GET", "/api/presence?topic=" + quote(topic, safe=""), None)
        members = body["members"] if isinstance(body.get("members"), list) else []
        return Presence(topic, [m for m in map(Member.from_json, members) if m])

    def _call(self, method: str, path: str, payload: Any, read_timeout: Optional[float] = None
              ) -> Tuple[int, Dict[str, Any]]:
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        topic = payload.get("topic") if isinstance(payload, dict) else None
        try:
            with urllib.request.urlopen(req, timeout=read_timeout or self.timeout, context=self._context) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
            exc.close()
        except (urllib.error.URLError, socket.timeout, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectError("connect", f"{method} {self.url}{path} failed: {reason}", topic=topic) from exc
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise HttpError("http", f"{method} {path} answered {status} with a body that is not a JSON object",
                            topic=topic, status=status)
        if status != 200:
            err = body.get("error")
            if not isinstance(err, dict) or not isinstance(err.get("code"), str):
                raise HttpError("http", f"{method} {path} answered {status}: {raw[:200]!r}", topic=topic,
                                status=status)
            raise error_for(err["code"], str(err.get("message", "")), topic=topic, status=status)
        return status, body


def publish_http(url: str, topic: str, data: Any = None, *, api_key: Optional[str] = None,
                 timeout: float = 10.0) -> int:
    """``POST /api/publish`` once: publishes ``data`` to ``topic`` at the broker
    ``url`` (``http://host:port``) and returns the message's ``seq``."""
    return HttpPublisher(url, api_key, timeout=timeout).publish(topic, data)


def request_http(url: str, topic: str, data: Any = None, *, api_key: Optional[str] = None,
                 timeout: float = 5.0) -> Reply:
    """``POST /api/request`` once: returns the first Reply (see HttpPublisher.request)."""
    return HttpPublisher(url, api_key).request(topic, data, timeout=timeout)
