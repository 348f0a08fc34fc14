"""wsbroker: the Python client of the wsbroker pub/sub WebSocket broker.

- :func:`connect` — an asyncio WebSocket client (wire protocol v1) that
  reconnects and recovers by itself: subscribe (callback or ``async for``),
  publish with acks, request/reply, presence, join/leave, token refresh.
- :func:`publish_http`, :func:`request_http`, :class:`HttpPublisher` — a
  synchronous client of the HTTP API (``POST /api/publish``,
  ``POST /api/request``) on the standard library, for WSGI apps.
- Typed errors (:class:`WsbrokerError` and one subclass per error code).

See README.md next to this package and protocol/PROTOCOL.md.
"""
from ._util import is_exact_topic, matches
from .client import PROTOCOL_VERSION, Client, connect
from .errors import (WsbrokerError, BadJson, BadType, MissingField, BadField, BadTopic, BadSince, Forbidden,
                     TooLarge, LimitExceeded, NotAvailable, NotSubscribed, RateLimited, Unauthorized,
                     Unavailable, InternalError, NoResponders, RequestTimeout, MethodNotAllowed,
                     UnsupportedMediaType, Closed, Disconnected, QueueFull, ProtocolError, ConnectError,
                     TokenError, InvalidToken, TokenExpired, OriginNotAllowed, Refused, HttpError, error_for)
from .http import HttpPublisher, publish_http, request_http
from .models import (CloseInfo, DisconnectInfo, GapInfo, Member, MemberEvent, Message, Presence, PresenceStats,
                     Reconnect, Recovery, Reply, State, SubscribeResult)
from .subscription import Subscription

__version__ = "0.1.0"

__all__ = ["connect", "Client", "Subscription", "Message", "Member", "MemberEvent", "Reply", "Presence",
           "PresenceStats", "SubscribeResult", "Recovery", "GapInfo", "DisconnectInfo", "CloseInfo",
           "Reconnect", "State", "PROTOCOL_VERSION", "matches", "is_exact_topic", "HttpPublisher",
           "publish_http", "request_http", "__version__", "WsbrokerError", "BadJson", "BadType",
           "MissingField", "BadField", "BadTopic", "BadSince", "Forbidden", "TooLarge", "LimitExceeded",
           "NotAvailable", "NotSubscribed", "RateLimited", "Unauthorized", "Unavailable", "InternalError",
           "NoResponders", "RequestTimeout", "MethodNotAllowed", "UnsupportedMediaType", "Closed",
           "Disconnected", "QueueFull", "ProtocolError", "ConnectError", "TokenError", "InvalidToken",
           "TokenExpired", "OriginNotAllowed", "Refused", "HttpError", "error_for"]
