"""Typed errors of the wsbroker client.

Every error the client raises is a :class:`WsbrokerError` with a stable
``code``: one of the broker's codes (PROTOCOL.md section 7, e.g. ``forbidden``,
``bad_topic``, ``no_responders``) or one of the client's own (``closed``,
``disconnected``, ``queue_full``, ``too_large``, ``protocol``, ``timeout``,
``connect``, ``token``, ``invalid_token``, ``token_expired``,
``origin_not_allowed``, ``refused``, ``http``). Each known code has its own
subclass, so callers may write ``except wsbroker.NoResponders:`` or branch on
``err.code``; an unknown code from a newer broker is a plain
:class:`WsbrokerError` (PROTOCOL.md section 7: treat it as a failure).
"""
from __future__ import annotations

from typing import Dict, Optional, Type

__all__ = [
    "WsbrokerError", "BadJson", "BadType", "MissingField", "BadField", "BadTopic", "BadSince",
    "Forbidden", "TooLarge", "LimitExceeded", "NotAvailable", "NotSubscribed", "RateLimited",
    "Unauthorized", "Unavailable", "InternalError", "NoResponders", "RequestTimeout",
    "MethodNotAllowed", "UnsupportedMediaType", "Closed", "Disconnected", "QueueFull",
    "ProtocolError", "ConnectError", "TokenError", "InvalidToken", "TokenExpired",
    "OriginNotAllowed", "Refused", "HttpError", "error_for",
]


class WsbrokerError(Exception):
    """An error reported by the broker or by the client.

    Attributes: ``code`` (stable, branch on it), ``message`` (an English
    sentence that may change), ``topic`` (the topic of the failed request,
    when there is one), ``close_code`` / ``close_reason`` (for errors caused
    by a WebSocket close), ``status`` (the HTTP status, for the HTTP API).
    """

    code: str = "error"

    def __init__(self, code: Optional[str] = None, message: str = "", *, topic: Optional[str] = None,
                 close_code: Optional[int] = None, close_reason: Optional[str] = None,
                 status: Optional[int] = None) -> None:
        if code is not None:
            self.code = code
        self.message = message or self.code
        self.topic = topic
        self.close_code = close_code
        self.close_reason = close_reason
        self.status = status
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"



# The broker's codes (PROTOCOL.md section 7). Written out (not generated) so
# that type checkers and readers see every class.
class BadJson(WsbrokerError):
    """``bad_json``: the request was not valid JSON (or the broker sent invalid JSON)."""
    code = "bad_json"


class BadType(WsbrokerError):
    """``bad_type``: unknown request type."""
    code = "bad_type"


class MissingField(WsbrokerError):
    """``missing_field``: a required member was absent."""
    code = "missing_field"


class BadField(WsbrokerError):
    """``bad_field``: a member had the wrong type or was out of range."""
    code = "bad_field"


class BadTopic(WsbrokerError):
    """``bad_topic``: the topic or pattern breaks the grammar (PROTOCOL.md 5.1)."""
    code = "bad_topic"


class BadSince(WsbrokerError):
    """``bad_since``: a malformed or misplaced ``since`` / ``history``."""
    code = "bad_since"


class Forbidden(WsbrokerError):
    """``forbidden``: the credentials (token or API key) do not allow it."""
    code = "forbidden"


class TooLarge(WsbrokerError):
    """``too_large``: the message exceeds the broker's maximum message size."""
    code = "too_large"


class LimitExceeded(WsbrokerError):
    """``limit_exceeded``: a per-connection or per-topic bound was reached."""
    code = "limit_exceeded"


class NotAvailable(WsbrokerError):
    """``not_available``: presence is not enabled on that topic."""
    code = "not_available"


class NotSubscribed(WsbrokerError):
    """``not_subscribed``: unsubscribe of a pattern the connection does not hold."""
    code = "not_subscribed"


class RateLimited(WsbrokerError):
    """``rate_limited``: the connection exceeded its rate limit; the request was dropped."""
    code = "rate_limited"


class Unauthorized(WsbrokerError):
    """``unauthorized``: a refused token, or no (valid) API key over HTTP (401)."""
    code = "unauthorized"


class Unavailable(WsbrokerError):
    """``unavailable``: clustered history and Redis is unreachable; retry later."""
    code = "unavailable"


class InternalError(WsbrokerError):
    """``internal``: the broker failed for a reason not caused by the request."""
    code = "internal"


class NoResponders(WsbrokerError):
    """``no_responders``: a request on a topic nobody subscribes to."""
    code = "no_responders"


class RequestTimeout(WsbrokerError, TimeoutError):
    """``timeout``: no reply in time (a request), or no pong (ping()).

    Also a :class:`TimeoutError`, so ``except TimeoutError`` catches it."""
    code = "timeout"


class MethodNotAllowed(WsbrokerError):
    """``method_not_allowed`` (HTTP 405)."""
    code = "method_not_allowed"


class UnsupportedMediaType(WsbrokerError):
    """``unsupported_media_type`` (HTTP 415)."""
    code = "unsupported_media_type"


# The client's own codes.
class Closed(WsbrokerError):
    """``closed``: the client was closed (by close() or for good after a fatal close code)."""
    code = "closed"


class Disconnected(WsbrokerError):
    """``disconnected``: the connection dropped before the reply (never resent: the
    request may or may not have taken effect), or a query made while offline."""
    code = "disconnected"


class QueueFull(WsbrokerError):
    """``queue_full``: the offline publish queue is at ``max_queue``."""
    code = "queue_full"


class ProtocolError(WsbrokerError):
    """``protocol``: unsupported protocol version, an unexpected answer, or a
    close code after which the client must not reconnect (1002, 1003, 1007, 1009)."""
    code = "protocol"


class ConnectError(WsbrokerError, ConnectionError):
    """``connect``: the WebSocket (or HTTP request) could not be made."""
    code = "connect"


class TokenError(WsbrokerError):
    """``token``: ``get_token`` raised, or returned the token the broker just refused."""
    code = "token"


class InvalidToken(WsbrokerError):
    """``invalid_token``: the broker refused the token (close 4001, or HTTP 403 at the handshake)."""
    code = "invalid_token"


class TokenExpired(WsbrokerError):
    """``token_expired``: the token expired (close 4002)."""
    code = "token_expired"


class OriginNotAllowed(WsbrokerError):
    """``origin_not_allowed``: the Origin is not in the broker's allowlist (close 4003)."""
    code = "origin_not_allowed"


class Refused(WsbrokerError):
    """``refused``: another close code in 4000-4099 ("do not reconnect with these credentials")."""
    code = "refused"


class HttpError(WsbrokerError):
    """``http``: the HTTP API answered something that is not its documented error shape."""
    code = "http"


_BY_CODE: Dict[str, Type[WsbrokerError]] = {
    cls.code: cls
    for cls in (BadJson, BadType, MissingField, BadField, BadTopic, BadSince, Forbidden, TooLarge,
                LimitExceeded, NotAvailable, NotSubscribed, RateLimited, Unauthorized, Unavailable,
                InternalError, NoResponders, RequestTimeout, MethodNotAllowed, UnsupportedMediaType,
                Closed, Disconnected, QueueFull, ProtocolError, ConnectError, TokenError, InvalidToken,
                TokenExpired, OriginNotAllowed, Refused, HttpError)
}


def error_for(code: str, message: str = "", **extra: object) -> WsbrokerError:
    """The typed error for ``code`` (a plain :class:`WsbrokerError` for an unknown code).

    ``extra`` may hold ``topic``, ``close_code``, ``close_reason`` and ``status``."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return WsbrokerError(code, message, **extra)  # type: ignore[arg-type]
    return cls(None, message, **extra)  # type: ignore[arg-type]
