"""The values the client hands out: messages, members, replies, events, options."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .errors import WsbrokerError

__all__ = ["State", "Member", "Message", "Reply", "Presence", "PresenceStats", "SubscribeResult", "Recovery",
           "GapInfo", "MemberEvent", "DisconnectInfo", "CloseInfo", "Reconnect", "Listener", "TokenSource",
           "Since"]


class State:
    """Connection states."""
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class Member:
    """A presence member: ``client`` (its connection's client_id) and ``user`` (token ``sub`` or None)."""
    client: Optional[str]
    user: Optional[str]

    @staticmethod
    def from_json(value: Any) -> Optional["Member"]:
        if not isinstance(value, dict):
            return None
        return Member(value.get("client"), value.get("user"))


@dataclass
class Message:
    """A ``message`` frame (PROTOCOL.md 4.2).

    ``epoch`` is set on topics with history; ``from_`` (the broker's stamp
    ``{client, user}``) on topics whose rule has ``publisher: true`` and on
    replies; ``reply_to`` on a request (answer with ``client.reply(msg, data)``).
    ``raw`` is the whole frame as parsed."""
    topic: str
    data: Any
    seq: Optional[int] = None
    epoch: Optional[str] = None
    from_: Optional[Member] = None
    reply_to: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Reply:
    """The answer to request(): the reply's ``data`` and the responder (``from_``)."""
    data: Any
    from_: Optional[Member]


@dataclass(frozen=True)
class Presence:
    """Who is subscribed to an exact topic."""
    topic: str
    members: List[Member]


@dataclass(frozen=True)
class PresenceStats:
    """Counts of presence(): ``clients`` members, ``users`` distinct non-null users."""
    topic: str
    clients: int
    users: int


@dataclass(frozen=True)
class SubscribeResult:
    """What a subscription's ``ready`` gives: ``recovered`` (True/False after a
    subscribe with ``since``, else None) and ``resubscribed`` (after a reconnect)."""
    recovered: Optional[bool]
    resubscribed: bool


@dataclass(frozen=True)
class Recovery:
    """Event ``recovered``: the ack of a subscribe with ``since``; False = messages were lost."""
    topic: str
    recovered: bool
    epoch: Optional[str]
    seq: Optional[int]


@dataclass(frozen=True)
class GapInfo:
    """Event ``gap``: the broker dropped ``topic``'s messages after ``seq`` (slow consumer).

    Inside a stream (PROTOCOL.md 4.6) ``stream`` is the stream's rule pattern
    and ``topic`` the subscription (a pattern or a topic). With ``to`` (event
    ``loss`` too) the stream's messages after ``seq`` up to ``to`` are lost
    for good (trimmed from the log, or the broker restarted: ``seq`` 0)."""
    topic: str
    epoch: Optional[str]
    seq: Optional[int]
    stream: Optional[str] = None
    to: Optional[int] = None


@dataclass(frozen=True)
class MemberEvent:
    """Events ``join`` / ``leave``: ``member`` subscribed to / left the exact ``topic``."""
    topic: str
    member: Member


@dataclass(frozen=True)
class DisconnectInfo:
    """Event ``disconnect``: the socket closed with ``code``; next attempt in ``reconnect_in`` s."""
    code: int
    reason: str
    reconnect_in: float
    attempt: int


@dataclass(frozen=True)
class CloseInfo:
    """Event ``close``: the client closed for good (``error`` says why, None after close())."""
    code: int
    reason: str
    error: Optional[WsbrokerError]


@dataclass(frozen=True)
class Reconnect:
    """Backoff between attempts: ``min(max_delay, min_delay * factor**n)`` seconds,
    minus up to ``jitter`` of it at random; ``max_attempts`` None = forever."""
    min_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: Optional[int] = None


Listener = Callable[..., Any]
TokenSource = Callable[[], Union[str, Awaitable[str]]]
Since = Union[Mapping[str, Any], "Message", Tuple[str, int]]
