"""The asyncio WebSocket client (wire protocol v1, protocol/PROTOCOL.md).

    client = await wsbroker.connect("ws://127.0.0.1:8080/ws")
    sub = await client.subscribe("prices.*.usd", lambda m: print(m.topic, m.data))
    seq = await client.publish("prices.btc.usd", {"bid": 64000.5})
    await client.close()

It mirrors the JavaScript client (clients/js/wsbroker.js). Contracts:

- State is ``"connecting"``, ``"open"`` or ``"closed"``. ``"open"`` starts when
  the broker's ``welcome`` arrives; ``"closed"`` is final: close() was called,
  reconnecting is off or exhausted, or the broker closed with a code after
  which the protocol says not to reconnect (1002, 1003, 1007, 1009, and
  4000-4099 unless ``get_token`` can bring a new token after 4001/4002).
- Subscriptions live in the client, not in one socket: after a reconnect every
  live pattern is subscribed again, exact topics with ``since`` from the last
  ``{epoch, seq}`` seen (message or subscribe ack), so the broker replays what
  was missed where it keeps history (event ``recovered`` says whether it
  could). A ``gap`` notice on an exact topic, or on a subscription inside a
  stream (pattern or topic: it names the stream), is recovered the same way,
  at once; a gap with ``to`` (a stream's messages trimmed from its log, or a
  broker restart) is a ``loss`` event and the rest of the log follows.
  A pattern inside a stream keeps the stream's last seq it saw as its
  position. A pattern subscribed with ``history`` (last value on wildcards)
  asks for it again, and each subscription skips the messages it has had by
  topic position, so only what changed while offline is handed over. One broker subscription per pattern however many Subscription objects
  share it; each message is handed once to each matching Subscription.
- publish() returns the broker's ``seq`` or raises a typed WsbrokerError.
  Publishes made while not open wait in a bounded queue (``max_queue``) and are
  sent in order after the next welcome; one sent but not acknowledged when the
  socket dropped raises ``Disconnected`` and is never resent (at most once).
- request(), presence(), presence_stats() and ping() are not queued while
  offline (``Disconnected``).
- Credentials: ``get_token`` (a function, sync or async, returning a token) is
  called before every connection attempt, after the broker refused a token
  (close 4001/4002, or HTTP 403 at the handshake of a client without Origin)
  and at 85% of the token's lifetime (``exp``, read not verified), when the
  fresh token is sent on the open connection in an ``auth`` request. The
  client never reconnects with the token just refused.
- Keepalive: WebSocket Pings every ``ping_interval`` s; no Pong within
  ``ping_timeout`` s drops the socket and reconnects.

Callbacks and event listeners run in the event loop's thread, inline with the
frame that caused them; one that returns an awaitable is run as a task. An
exception in one is reported to the loop's exception handler and does not
break the client.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generator, List, Mapping, Optional, Tuple, Union

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatusCode

from ._events import _Emitter, _new_future, _report, _settle
from ._util import dumps, is_exact_topic, matches, token_times, with_query, ws_url
from .subscription import Subscription
from .models import (CloseInfo, DisconnectInfo, GapInfo, Listener, Member, MemberEvent, Message, Presence,
                    PresenceStats, Reconnect, Recovery, Reply, Since, State, SubscribeResult, TokenSource)
from .errors import (Closed, Disconnected, ProtocolError, QueueFull, RequestTimeout, TokenError,
                     TooLarge, WsbrokerError, error_for)

__all__ = ["Client", "Subscription", "Message", "Member", "MemberEvent", "Reply", "Presence",
           "PresenceStats", "SubscribeResult", "Recovery", "GapInfo", "DisconnectInfo",
           "CloseInfo", "Reconnect", "State", "connect", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1

# Close codes after which the protocol says not to reconnect (PROTOCOL.md 8).
_FATAL_CLOSE_CODES = frozenset((1002, 1003, 1007, 1009))
# A token is refreshed when this share of its lifetime has passed.
_TOKEN_REFRESH_AT = 0.85
# Errors to an unsubscribe that mean there is nothing left to remove.
_UNSUBSCRIBE_DONE = frozenset(("not_subscribed", "bad_topic", "bad_field"))
_MAX_ID = 2**53 - 1


@dataclass
class _Entry:
    """The client's record of one pattern subscribed on the broker."""
    subs: Dict[Subscription, None] = field(default_factory=dict)  # ordered set
    inflight: Optional[int] = None
    active: bool = False
    acked: bool = False
    history: Optional[int] = None
    last_value: Optional[int] = None  # history on a wildcard: asked on every resubscribe
    replays: List[Tuple[Subscription, Dict[str, Any]]] = field(default_factory=list)
    stream: Optional[str] = None  # the ack named a stream (PROTOCOL.md 3.1b)


@dataclass
class _Pending:
    kind: str
    fut: Optional["asyncio.Future[Any]"] = None
    topic: Optional[str] = None
    since: bool = False
    for_sub: Optional[Subscription] = None
    replay: Optional[Dict[str, Any]] = None
    sent_at: float = 0.0
    on_ok: Optional[Callable[[Dict[str, Any]], None]] = None
    on_err: Optional[Callable[[WsbrokerError], None]] = None


@dataclass
class _Queued:
    topic: str
    data_text: str
    fut: Optional["asyncio.Future[Any]"]


def _refusal_error(code: int, reason: str, status: Optional[int] = None) -> WsbrokerError:
    """The error for a close with a code in 4000-4099 (PROTOCOL.md 8)."""
    msg = f"the broker closed the connection with {code} ({reason})"
    if status is not None:
        msg = f"the broker refused the handshake with HTTP {status} ({reason})"
    name = {4001: "invalid_token", 4002: "token_expired", 4003: "origin_not_allowed"}.get(code, "refused")
    return error_for(name, msg, close_code=code, close_reason=reason, status=status)


def _since_of(since: Since) -> Dict[str, Any]:
    if isinstance(since, Message):
        epoch, seq = since.epoch, since.seq
    elif isinstance(since, tuple):
        epoch, seq = since
    elif isinstance(since, Mapping):
        epoch, seq = since.get("epoch"), since.get("seq")
    else:
        epoch, seq = getattr(since, "epoch", None), getattr(since, "seq", None)
    if not isinstance(epoch, str) or not epoch or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("wsbroker: since needs an epoch (non-empty str) and a seq (int >= 0)")
    return {"epoch": epoch, "seq": seq}


class Client(_Emitter):
    """A connection to one broker that reconnects by itself; make it with :func:`connect`.

    Events (``client.on(name, fn)``): ``state`` (state, previous), ``open``
    (welcome dict), ``disconnect`` (DisconnectInfo), ``close`` (CloseInfo),
    ``error`` (WsbrokerError that belongs to no request), ``message``
    (every Message, before subscriptions), ``recovered`` (Recovery), ``gap``
    (GapInfo), ``loss`` (GapInfo with ``to``: a stream's messages lost for
    good, after its ``gap``), ``unsubscribed`` (dict topic/code/message: the broker removed
    that subscription; it is not restored), ``join`` / ``leave`` (MemberEvent).
    """

    def __init__(self, url: str, *, token: Optional[str] = None, get_token: Optional[TokenSource] = None,
                 reconnect: Union[Reconnect, bool] = True, max_queue: int = 1000,
                 connect_timeout: float = 10.0, ping_interval: Optional[float] = 20.0,
                 ping_timeout: Optional[float] = 10.0, buffer_size: int = 1000,
                 origin: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
                 ssl: Any = None, compression: bool = False) -> None:
        """Starts connecting at once (call it inside a running event loop).

        ``url``: ``ws://host:port/ws`` (http(s):// is mapped to ws(s)://).
        ``token``: a fixed token, sent as the ``token`` query parameter.
        ``get_token``: a function (sync or async) returning a token; see the
        module docstring. ``reconnect``: a Reconnect, True (defaults) or False
        (never). ``max_queue``: publishes held while not connected.
        ``origin``: an Origin header (then refused tokens are closes 4001/4002
        instead of HTTP 403). ``headers``: extra handshake headers.
        ``ssl``: an SSLContext for wss://. ``compression``: offer
        permessage-deflate."""
        super().__init__()
        self._url = ws_url(url)
        if reconnect is True:
            reconnect = Reconnect()
        self._reconnect: Optional[Reconnect] = reconnect or None
        self._token_fixed = token
        self._get_token = get_token
        self._max_queue = max_queue
        self._connect_timeout = connect_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._buffer_size = buffer_size
        self._origin = origin
        self._headers = dict(headers or {})
        self._ssl = ssl
        self._compression = compression
        self._loop = asyncio.get_running_loop()
        self._ws: Optional[Any] = None
        self._outq: Optional[asyncio.Queue[Optional[str]]] = None
        self._state = State.CONNECTING
        self._welcome: Optional[Dict[str, Any]] = None
        self._next_id = 1
        self._pending: Dict[int, _Pending] = {}
        self._queue: List[_Queued] = []
        self._patterns: Dict[str, _Entry] = {}
        self._positions: Dict[str, Dict[str, Any]] = {}
        self._attempt = 0
        self._token: Optional[str] = None
        self._token_at = 0.0
        self._refused_token: Optional[str] = None
        self._refresh_handle: Optional[asyncio.TimerHandle] = None
        self._open_waiters: List[asyncio.Future[None]] = []
        self._close_error: Optional[WsbrokerError] = None
        self._closing: Optional[asyncio.Task[None]] = None
        #: Counters, for dashboards.
        self.stats: Dict[str, int] = {"messages": 0, "published": 0, "acks": 0, "errors": 0, "connects": 0,
                                      "reconnects": 0, "recovered": 0, "gaps": 0, "losses": 0,
                                      "token_refreshes": 0}
        self._task = self._loop.create_task(self._run())

    # --- properties ---

    @property
    def state(self) -> str:
        """``"connecting"``, ``"open"`` or ``"closed"``."""
        return self._state

    @property
    def welcome(self) -> Optional[Dict[str, Any]]:
        """The broker's last ``welcome`` (client_id, user, node_id, limits…), or None before the first."""
        return self._welcome

    @property
    def client_id(self) -> Optional[str]:
        """This connection's ``client_id`` (changes on each reconnect), or None before the first welcome."""
        return self._welcome.get("client_id") if self._welcome else None

    @property
    def url(self) -> str:
        """The URL the client connects to (without the token)."""
        return self._url

    @property
    def queued(self) -> int:
        """Publishes waiting for the socket to open."""
        return len(self._queue)

    async def wait_open(self) -> None:
        """Returns when the client is open (at once if it is); raises the
        closing error (or Closed) if it closes for good first."""
        if self._state == State.OPEN:
            return
        if self._state == State.CLOSED:
            raise self._close_error or Closed("closed", "the connection is closed")
        fut: asyncio.Future[None] = _new_future()
        self._open_waiters.append(fut)
        await fut

    async def __aenter__(self) -> "Client":
        await self.wait_open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # --- the API ---

    def subscribe(self, pattern: str, callback: Optional[Listener] = None, *, since: Optional[Since] = None,
                  history: Optional[int] = None, buffer_size: Optional[int] = None) -> Subscription:
        """Subscribes to ``pattern`` and returns the Subscription at once
        (``await`` it for the ack). ``callback(msg)`` gets every matching
        Message; without it, iterate with ``async for``. ``since``
        (``{"epoch", "seq"}``, a ``(epoch, seq)`` tuple or a Message) replays an
        exact topic from that position; ``history=N`` asks for the last N
        messages the broker holds (on a pattern: of every matching topic,
        only when the pattern is new on this client; a reconnect resumes it
        live). ``since`` wins over ``history``."""
        if not isinstance(pattern, str) or not pattern:
            raise TypeError("wsbroker: subscribe needs a non-empty topic pattern string")
        if callback is not None and not callable(callback):
            raise TypeError("wsbroker: the subscribe callback must be callable")
        pos = _since_of(since) if since is not None else None
        sub = Subscription(self, pattern, callback, buffer_size or self._buffer_size)
        if self._state == State.CLOSED:
            sub._end(Closed("closed", "the connection is closed", topic=pattern))
            return sub
        h = history if isinstance(history, int) and history > 0 else 0
        replay: Optional[Dict[str, Any]] = None
        if is_exact_topic(pattern):
            if pos is not None:
                replay = {"since": pos}
            elif h:
                replay = {"history": h}
        elif h and pattern not in self._patterns:
            replay = {"history": h}
        entry = self._patterns.get(pattern)
        if entry is None:
            entry = _Entry()
            self._patterns[pattern] = entry
            # A new topic: its replay is the subscribe itself (and a reconnect
            # resumes from `since` until a message moves it).
            if replay and "since" in replay:
                self._positions[pattern] = replay["since"]
            elif replay:
                entry.history = replay["history"]
                # Last value on a wildcard: every reconnect asks for it again
                # (the topics' positions are not one position a since could carry).
                if not is_exact_topic(pattern):
                    entry.last_value = replay["history"]
            replay = None
        if entry.last_value:
            sub._track_topics()
        entry.subs[sub] = None
        if replay is not None:
            # A topic this client already holds: the broker replays for a
            # subscribe with since or history all the same (PROTOCOL.md 3.1);
            # the other subscriptions skip what they have had.
            sub._hold()
            entry.replays.append((sub, replay))
            if self._state == State.OPEN:
                self._send_replays(pattern, entry)
        elif entry.active:
            self._loop.call_soon(sub._subscribed, SubscribeResult(None, False))
        elif entry.inflight is None and self._state == State.OPEN:
            self._send_subscribe(pattern, entry)
        return sub

    async def publish(self, topic: str, data: Any = None, *, ack: bool = True) -> Optional[int]:
        """Publishes ``data`` (any JSON value) to the exact ``topic``.

        With ``ack`` (default) returns the ``seq`` the broker assigned, or
        raises its error (``Forbidden``, ``BadTopic``, ``RateLimited``, …),
        ``Disconnected`` (sent, socket gone before the ack: maybe published),
        ``QueueFull``, ``TooLarge``, ``Closed``. With ``ack=False`` the publish
        is sent (or queued while offline) without an id and returns None at
        once; a failure then arrives as an ``error`` event."""
        if self._state == State.CLOSED:
            raise Closed("closed", "the connection is closed", topic=topic)
        if not isinstance(topic, str) or not topic:
            raise TypeError("wsbroker: publish needs a non-empty topic string")
        item = _Queued(topic, dumps(data), _new_future() if ack else None)
        if self._state == State.OPEN:
            self._send_publish(item)
        elif len(self._queue) < self._max_queue:
            self._queue.append(item)
        else:
            raise QueueFull("queue_full", f"offline publish queue is full (max_queue {self._max_queue}); "
                            f"not published to {topic}", topic=topic)
        if item.fut is None:
            return None
        seq: int = await item.fut
        return seq

    async def reply(self, msg: Message, data: Any = None, *, ack: bool = True) -> Optional[int]:
        """Answers a request: publishes ``data`` to ``msg.reply_to`` (ValueError if it has none)."""
        if not msg.reply_to:
            raise ValueError("wsbroker: this message is not a request (it has no reply_to)")
        return await self.publish(msg.reply_to, data, ack=ack)

    async def request(self, topic: str, data: Any = None, *, timeout: float = 5.0) -> Reply:
        """Request/reply (PROTOCOL.md 3.7): sends ``data`` to the subscribers of
        the exact ``topic``; returns the first Reply. Raises ``NoResponders``
        (nobody subscribes, at once), ``RequestTimeout`` (no reply within
        ``timeout`` seconds, 0.001 to 60, counted by the broker),
        ``Disconnected`` (the socket went away first: never resent), or the
        broker's error (``Forbidden``, ``LimitExceeded``…)."""
        timeout_ms = int(round(timeout * 1000))
        if not 1 <= timeout_ms <= 60000:
            raise ValueError("wsbroker: request timeout must be from 0.001 to 60 seconds")
        return await self._query("request", topic, {"data": data, "timeout_ms": timeout_ms})  # type: ignore[no-any-return]

    async def presence(self, topic: str) -> Presence:
        """Who is subscribed to the exact ``topic`` (its rule must have
        ``presence: true``, else ``NotAvailable``; needs the right to subscribe,
        else ``Forbidden``)."""
        return await self._query("presence", topic, {})  # type: ignore[no-any-return]

    async def presence_stats(self, topic: str) -> PresenceStats:
        """Counts of presence(topic)."""
        return await self._query("presence_stats", topic, {})  # type: ignore[no-any-return]

    async def ping(self) -> float:
        """Application-level round trip through the broker; returns it in seconds.

        A barrier too: when it returns, every message published (and acked)
        before it that matches a subscription has been handed over."""
        if self._state != State.OPEN:
            raise Disconnected("disconnected", "not connected")
        fut = _new_future()
        rid = self._take_id()
        self._pending[rid] = _Pending("ping", fut, sent_at=time.monotonic())
        self._send({"type": "ping", "id": rid})
        try:
            rtt: float = await asyncio.wait_for(asyncio.shield(fut), self._ping_timeout or 10.0)
            return rtt
        except asyncio.TimeoutError:
            self._pending.pop(rid, None)
            raise RequestTimeout("timeout", "no pong in time") from None

    async def refresh_token(self) -> None:
        """Asks ``get_token`` for a token now and sends it in an ``auth``
        request; returns on the broker's ack (raises its error, e.g. Unauthorized)."""
        await self._refresh(raise_errors=True)

    async def close(self) -> None:
        """Closes for good: queued and unanswered requests raise Closed, every
        subscription ends, a close frame is sent. Safe to call more than once."""
        if self._closing is None:
            self._closing = self._loop.create_task(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        ws = self._ws
        self._shutdown(1000, "client close", None)
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(1000, "client close"), 2.0)
            except Exception:
                pass
        if self._task is not asyncio.current_task() and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except BaseException:
                pass

    # --- internals: requests ---

    async def _query(self, kind: str, topic: str, extra: Dict[str, Any]) -> Any:
        # Not queued while offline: the answer would be stale by the time it came.
        if self._state == State.CLOSED:
            raise Closed("closed", "the connection is closed", topic=topic)
        if not isinstance(topic, str) or not topic:
            raise TypeError(f"wsbroker: {kind} needs a non-empty topic string")
        if self._state != State.OPEN:
            raise Disconnected("disconnected", "not connected", topic=topic)
        fut = _new_future()
        rid = self._take_id()
        self._pending[rid] = _Pending(kind, fut, topic=topic)
        req: Dict[str, Any] = {"type": kind, "topic": topic}
        if "data" in extra:
            req["data"] = extra["data"]
        req["id"] = rid
        if "timeout_ms" in extra:
            req["timeout_ms"] = extra["timeout_ms"]
        try:
            text = dumps(req)
        except ValueError:
            del self._pending[rid]
            raise
        self._send_text(text)
        return await fut

    def _take_id(self) -> int:
        rid = self._next_id
        self._next_id = 1 if rid >= _MAX_ID else rid + 1
        return rid

    def _send(self, obj: Dict[str, Any]) -> None:
        self._send_text(dumps(obj))

    def _send_text(self, text: str) -> None:
        # One writer task per socket keeps frames in call order.
        if self._outq is not None:
            self._outq.put_nowait(text)

    def _send_publish(self, item: _Queued) -> None:
        if item.fut is not None:
            rid = self._take_id()
            text = f'{{"type":"publish","topic":{dumps(item.topic)},"data":{item.data_text},"id":{rid}}}'
        else:
            rid = 0
            text = f'{{"type":"publish","topic":{dumps(item.topic)},"data":{item.data_text}}}'
        limits = (self._welcome or {}).get("limits")
        limit = limits.get("max_message_size") if isinstance(limits, dict) else None
        if isinstance(limit, int) and limit > 0 and len(text) * 4 > limit and len(text.encode()) > limit:
            err = TooLarge("too_large", f"publish to {item.topic} is {len(text.encode())} bytes; the broker "
                           f"accepts at most {limit}", topic=item.topic)
            if item.fut is not None:
                _settle(item.fut, exc=err)
            else:
                self._emit("error", err)
            return
        if item.fut is not None:
            self._pending[rid] = _Pending("publish", item.fut, topic=item.topic)
        self.stats["published"] += 1
        self._send_text(text)

    def _send_subscribe(self, pattern: str, entry: _Entry) -> None:
        rid = self._take_id()
        req: Dict[str, Any] = {"type": "subscribe", "topic": pattern, "id": rid}
        pos = self._positions.get(pattern)
        if pos is not None:
            req["since"] = {"epoch": pos["epoch"], "seq": pos["seq"]}
        elif entry.history:
            req["history"] = entry.history
        elif entry.last_value and entry.stream is None:
            req["history"] = entry.last_value
        entry.inflight = rid
        self._pending[rid] = _Pending("subscribe", topic=pattern, since="since" in req)
        self._send(req)

    def _send_replays(self, pattern: str, entry: _Entry) -> None:
        replays, entry.replays = entry.replays, []
        for sub, replay in replays:
            if sub.closed:
                continue
            rid = self._take_id()
            req: Dict[str, Any] = {"type": "subscribe", "topic": pattern, "id": rid, **replay}
            self._pending[rid] = _Pending("subscribe", topic=pattern, since="since" in replay, for_sub=sub,
                                          replay=replay)
            self._send(req)

    async def _unsubscribe(self, sub: Subscription) -> None:
        entry = self._patterns.get(sub.topic)
        if entry is None or sub not in entry.subs:
            return
        del entry.subs[sub]
        if entry.subs:
            return
        del self._patterns[sub.topic]
        self._positions.pop(sub.topic, None)
        # With no socket, or before anything was sent on this socket, the broker holds nothing.
        if self._state != State.OPEN or (not entry.active and entry.inflight is None):
            return
        fut = _new_future()
        rid = self._take_id()
        self._pending[rid] = _Pending("unsubscribe", fut, topic=sub.topic)
        self._send({"type": "unsubscribe", "topic": sub.topic, "id": rid})
        await fut

    # --- internals: the connection loop ---

    def _set_state(self, state: str) -> None:
        if state == self._state:
            return
        prev, self._state = self._state, state
        self._emit("state", state, prev)

    def _token_source(self) -> Optional[TokenSource]:
        return self._get_token

    async def _run(self) -> None:
        try:
            await self._connection_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug here must not leave the client "connecting" forever.
            _report(exc, "the connection loop")
            self._shutdown(1011, "client error", error_for("internal", f"the client failed: {exc!r}"))

    async def _connection_loop(self) -> None:
        while self._state != State.CLOSED:
            gone = await self._session()
            if gone is None or self._state == State.CLOSED:
                return
            code, reason, refusal = gone
            if not self._on_socket_gone(code, reason, refusal):
                return
            delay = self._next_delay()
            if delay is None:
                self._shutdown(code, reason, refusal)
                return
            self._attempt += 1
            self._set_state(State.CONNECTING)
            self._emit("disconnect", DisconnectInfo(code, reason, delay, self._attempt))
            await asyncio.sleep(delay)

    def _next_delay(self) -> Optional[float]:
        rc = self._reconnect
        if rc is None or (rc.max_attempts is not None and self._attempt >= rc.max_attempts):
            return None
        base = min(rc.max_delay, rc.min_delay * rc.factor ** self._attempt)
        return base * (1 - rc.jitter * random.random())

    async def _session(self) -> Optional[Tuple[int, str, Optional[WsbrokerError]]]:
        """One connection attempt and, once connected, its whole life. Returns
        the close code and reason (and the refusal error of a 40xx close), or
        None when the client closed for good meanwhile."""
        self._set_state(State.CONNECTING)
        url = self._url
        value: Optional[str] = self._token_fixed
        source = self._token_source()
        if source is not None:
            try:
                got = source()
                if inspect.isawaitable(got):
                    got = await got
            except Exception as exc:
                self._emit("error", TokenError("token", f"token callback failed: {exc}"))
                return 1006, "token callback failed", None
            if self._state == State.CLOSED:
                return None
            value = None if got is None else str(got)
            if value is not None and value == self._refused_token:
                # Never the credentials the broker has just refused.
                self._shutdown(1000, "token refused", TokenError(
                    "token", "the token function returned the token the broker refused; not reconnecting"))
                return None
        if value is not None:
            self._token = value
            self._token_at = time.time()
            url = with_query(url, token=value)
        try:
            ws = await asyncio.wait_for(websockets.connect(  # type: ignore[attr-defined]
                url, origin=self._origin, extra_headers=self._headers or None, ssl=self._ssl,
                compression="deflate" if self._compression else None, open_timeout=None,
                ping_interval=self._ping_interval, ping_timeout=self._ping_timeout,
                max_size=None, close_timeout=2.0), self._connect_timeout)
        except InvalidStatusCode as exc:
            if exc.status_code == 403 and value is not None:
                # A client without Origin sees a refused token as HTTP 403 (PROTOCOL.md 10).
                return 4001, "invalid credentials", _refusal_error(4001, "invalid credentials", 403)
            return 1006, f"handshake refused with HTTP {exc.status_code}", None
        except (OSError, asyncio.TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            return 1006, f"connect failed: {exc}", None
        if self._state == State.CLOSED:
            await ws.close()
            return None
        self._ws = ws
        outq: asyncio.Queue[Optional[str]] = asyncio.Queue()
        self._outq = outq
        writer = self._loop.create_task(self._write(ws, outq))
        try:
            raw = await asyncio.wait_for(ws.recv(), self._connect_timeout)
            self._safe_frame(raw)
            if self._welcome is None or self._state != State.OPEN:
                if self._state != State.CLOSED:
                    ws.transport.abort()
                    return 1006, "no welcome", None
            while self._ws is ws:
                self._safe_frame(await ws.recv())
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            ws.transport.abort()
            return 1006, "connect timeout", None
        finally:
            writer.cancel()
            if self._outq is outq:
                self._outq = None
            if self._ws is ws:
                self._ws = None
        if self._state == State.CLOSED:
            return None
        await asyncio.sleep(0)  # let the library record the close frame
        code = ws.close_code or 1006
        reason = ws.close_reason or ""
        if 4000 <= code <= 4099:
            return code, reason, _refusal_error(code, reason)
        return code, reason, None

    @staticmethod
    async def _write(ws: Any, outq: "asyncio.Queue[Optional[str]]") -> None:
        try:
            while True:
                text = await outq.get()
                if text is None:
                    return
                await ws.send(text)
        except ConnectionClosed:
            return  # the reader sees the close and handles it

    def _on_socket_gone(self, code: int, reason: str, refusal: Optional[WsbrokerError]) -> bool:
        """Fails what was pending on the socket; False when the client closed for good."""
        self._stop_refresh()
        self._fail_pending(Disconnected("disconnected", f"connection lost ({code} {reason})".strip()))
        if self._state == State.CLOSED:
            return False
        if refusal is not None:
            # "Do not reconnect with the same credentials": only with a fresh
            # token from get_token, after a refused or expired one.
            if code in (4001, 4002) and self._token_source() is not None and self._reconnect is not None:
                self._refused_token = self._token
                self._emit("error", refusal)
                return True
            self._shutdown(code, reason, refusal)
            return False
        if code in _FATAL_CLOSE_CODES:
            self._shutdown(code, reason, ProtocolError(
                "protocol", f"the broker closed the connection with {code} ({reason}); not reconnecting",
                close_code=code, close_reason=reason))
            return False
        return True

    def _fail_pending(self, err: WsbrokerError) -> None:
        # Publishes, requests and pings fail (at most once: never resent);
        # unsubscribes are done (the broker dropped everything with the
        # socket); subscribes are sent again after the next welcome.
        pending = list(self._pending.values())
        self._pending.clear()
        for req in pending:
            if req.kind == "unsubscribe":
                if req.fut is not None:
                    _settle(req.fut, None)
            elif req.kind == "auth":
                if req.on_err is not None:
                    req.on_err(err)
            elif req.kind != "subscribe":
                if req.fut is not None:
                    _settle(req.fut, exc=error_for(err.code, err.message, topic=req.topic))
            elif req.for_sub is not None and not req.for_sub.closed and req.replay is not None:
                entry = self._patterns.get(req.topic or "")
                if entry is not None:
                    entry.replays.append((req.for_sub, req.replay))
        for entry in self._patterns.values():
            entry.inflight = None
            entry.active = False
            for sub in entry.subs:
                sub._inactive()

    def _shutdown(self, code: int, reason: str, error: Optional[WsbrokerError]) -> None:
        if self._state == State.CLOSED:
            return
        self._stop_refresh()
        ws, self._ws = self._ws, None
        if self._outq is not None:
            self._outq.put_nowait(None)
        self._outq = None
        closed = Closed("closed", "the connection is closed")
        self._fail_pending(closed)
        for item in self._queue:
            if item.fut is not None:
                _settle(item.fut, exc=Closed("closed", "the connection is closed", topic=item.topic))
        self._queue.clear()
        subs = [s for e in self._patterns.values() for s in e.subs]
        self._patterns.clear()
        for sub in subs:
            sub._end(error)
        self._close_error = error
        for fut in self._open_waiters:
            _settle(fut, exc=error or closed)
        self._open_waiters.clear()
        self._set_state(State.CLOSED)
        if ws is not None and error is not None:
            # A fatal close: make sure the socket goes too.
            self._loop.create_task(ws.close())
        if error is not None:
            self._emit("error", error)
        self._emit("close", CloseInfo(code, reason, error))

    # --- internals: frames ---

    def _safe_frame(self, raw: Union[str, bytes]) -> None:
        # A frame this client cannot make sense of (or a bug in handling it)
        # is reported and skipped; it does not end the session.
        try:
            self._on_frame(raw)
        except Exception as exc:
            self._emit("error", ProtocolError("protocol", f"cannot handle a frame from the broker: {exc!r}"))

    def _on_frame(self, raw: Union[str, bytes]) -> None:
        if not isinstance(raw, str):
            return  # the broker never sends binary messages
        try:
            msg = json.loads(raw)
        except ValueError:
            self._emit("error", error_for("bad_json", "the broker sent a message that is not JSON"))
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("type")
        if kind == "message":
            self._on_message(msg)
        elif kind in ("ack", "pong", "presence", "presence_stats", "reply"):
            self._on_reply(msg, None)
        elif kind == "error":
            self.stats["errors"] += 1
            err = error_for(str(msg.get("code")), str(msg.get("message", msg.get("code"))))
            rid = msg.get("id")
            if isinstance(rid, int) and rid in self._pending:
                self._on_reply(msg, err)
            else:
                self._emit("error", err)
        elif kind == "welcome":
            self._on_welcome(msg)
        elif kind == "gap":
            self._on_gap(msg)
        elif kind == "unsubscribed":
            self._on_unsubscribed(msg)
        elif kind in ("join", "leave"):
            self._on_membership(msg)
        # Unknown types are ignored (PROTOCOL.md 12).

    def _on_welcome(self, msg: Dict[str, Any]) -> None:
        if msg.get("protocol") != PROTOCOL_VERSION:
            self._shutdown(1002, "unsupported protocol", ProtocolError(
                "protocol", f"the broker speaks protocol {msg.get('protocol')}; this client speaks "
                f"{PROTOCOL_VERSION}"))
            return
        self._welcome = msg
        if self.stats["connects"] > 0:
            self.stats["reconnects"] += 1
        self.stats["connects"] += 1
        self._attempt = 0
        self._set_state(State.OPEN)
        self._refused_token = None
        self._schedule_refresh()
        for pattern, entry in list(self._patterns.items()):
            self._send_subscribe(pattern, entry)
            self._send_replays(pattern, entry)
        queue, self._queue = self._queue, []
        for item in queue:
            self._send_publish(item)
        for fut in self._open_waiters:
            _settle(fut, None)
        self._open_waiters.clear()
        self._emit("open", msg)

    def _on_message(self, raw: Dict[str, Any]) -> None:
        self.stats["messages"] += 1
        topic = raw.get("topic")
        if not isinstance(topic, str):
            return
        seq = raw.get("seq")
        epoch = raw.get("epoch")
        msg = Message(topic=topic, data=raw.get("data"), seq=seq if isinstance(seq, int) else None,
                      epoch=epoch if isinstance(epoch, str) else None, from_=Member.from_json(raw.get("from")),
                      reply_to=raw.get("reply_to") if isinstance(raw.get("reply_to"), str) else None, raw=raw)
        self._emit("message", msg)
        if msg.epoch is not None and msg.seq is not None and topic in self._patterns:
            pos = self._positions.get(topic)
            if pos is None or pos["epoch"] != msg.epoch or pos["seq"] < msg.seq:
                self._positions[topic] = {"epoch": msg.epoch, "seq": msg.seq}
        for pattern, entry in list(self._patterns.items()):
            if pattern == topic or matches(pattern, topic):
                if entry.stream is not None and pattern != topic:
                    self._note_stream_message(pattern, msg)
                for sub in list(entry.subs):
                    sub._deliver(msg)

    def _note_stream_message(self, pattern: str, msg: Message) -> None:
        # A pattern inside a stream: the stream's one seq moves its position
        # (within the epoch the ack gave), so a reconnect or a gap resumes
        # every matching topic with one `since`.
        pos = self._positions.get(pattern)
        if msg.epoch is not None and msg.seq is not None and pos is not None \
                and pos["epoch"] == msg.epoch and pos["seq"] < msg.seq:
            self._positions[pattern] = {"epoch": msg.epoch, "seq": msg.seq}

    def _subs_matching(self, topic: str) -> List[Subscription]:
        return [s for p, e in self._patterns.items() if p == topic or matches(p, topic) for s in e.subs]

    def _on_gap(self, msg: Dict[str, Any]) -> None:
        # The broker dropped messages of `topic` for us (we read too slowly)
        # and suspended the topic until we subscribe to it again with since.
        # Inside a stream `topic` is our subscription (pattern or topic),
        # resumed the same way. A gap with `to` follows the ack of a since
        # the broker could not recover: that range is lost (event `loss`) and
        # the rest of the log follows at once: nothing to resubscribe.
        topic = msg.get("topic")
        if not isinstance(topic, str):
            return
        epoch, seq, stream, to = msg.get("epoch"), msg.get("seq"), msg.get("stream"), msg.get("to")
        info = GapInfo(topic, epoch if isinstance(epoch, str) else None, seq if isinstance(seq, int) else None,
                       stream if isinstance(stream, str) else None, to if isinstance(to, int) else None)
        self.stats["gaps"] += 1
        # A stream's gap is about one subscription; a topic's, about every
        # subscription that matches the topic.
        subs = list(self._patterns[topic].subs) if info.stream is not None and topic in self._patterns \
            else [] if info.stream is not None else self._subs_matching(topic)
        self._emit("gap", info)
        for sub in subs:
            sub._emit("gap", info)
        if info.to is not None:
            self.stats["losses"] += 1
            self._emit("loss", info)
            for sub in subs:
                sub._emit("loss", info)
        entry = self._patterns.get(topic)
        if entry is None or not info.epoch or info.seq is None:
            return
        if info.to is not None:
            # The replay that follows moves the position on from `to`.
            self._positions[topic] = {"epoch": info.epoch, "seq": info.to}
        elif self._state == State.OPEN:
            # Recover from the last message we hold.
            self._positions[topic] = {"epoch": info.epoch, "seq": info.seq}
            self._send_subscribe(topic, entry)

    def _on_membership(self, msg: Dict[str, Any]) -> None:
        topic = msg.get("topic")
        member = Member.from_json(msg.get("member"))
        if not isinstance(topic, str) or member is None:
            return
        info = MemberEvent(topic, member)
        kind = str(msg.get("type"))
        self._emit(kind, info)
        for sub in self._subs_matching(topic):
            sub._emit(kind, info)

    def _on_unsubscribed(self, msg: Dict[str, Any]) -> None:
        # The broker removed a subscription by itself (PROTOCOL.md 4.7): forget
        # the pattern, so a reconnect does not subscribe again.
        topic = msg.get("topic")
        if not isinstance(topic, str):
            return
        code = str(msg.get("code") or "forbidden")
        info = {"topic": topic, "code": code, "message": str(msg.get("message") or code)}
        entry = self._patterns.pop(topic, None)
        self._positions.pop(topic, None)
        self._emit("unsubscribed", info)
        if entry is None:
            return
        for sub in list(entry.subs):
            sub._emit("unsubscribed", info)
            sub._end(error_for(code, info["message"], topic=topic))

    def _on_reply(self, msg: Dict[str, Any], err: Optional[WsbrokerError]) -> None:
        rid = msg.get("id")
        req = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if req is None:
            return
        if err is not None:
            err.topic = req.topic
        kind = req.kind
        if kind == "subscribe":
            self._on_subscribe_reply(req, msg, err)
            return
        if kind == "auth":
            if err is not None:
                req.on_err and req.on_err(err)
            else:
                req.on_ok and req.on_ok(msg)
            return
        fut = req.fut
        if fut is None:
            return
        if kind == "unsubscribe":
            if err is not None and err.code not in _UNSUBSCRIBE_DONE:
                _settle(fut, exc=err)
            else:
                _settle(fut, None)
            return
        if err is not None:
            _settle(fut, exc=err)
            return
        expected = {"publish": "ack", "request": "reply", "presence": "presence",
                    "presence_stats": "presence_stats", "ping": "pong"}[kind]
        if msg.get("type") != expected:
            _settle(fut, exc=ProtocolError("protocol", f"the broker answered a {kind} with {msg.get('type')}"))
        elif kind == "publish":
            self.stats["acks"] += 1
            _settle(fut, msg.get("seq"))
        elif kind == "request":
            _settle(fut, Reply(msg.get("data"), Member.from_json(msg.get("from"))))
        elif kind == "presence":
            members = msg["members"] if isinstance(msg.get("members"), list) else []
            _settle(fut, Presence(req.topic or "", [m for m in map(Member.from_json, members) if m]))
        elif kind == "presence_stats":
            clients, users = msg.get("clients"), msg.get("users")
            _settle(fut, PresenceStats(req.topic or "", clients if isinstance(clients, int) else 0,
                                       users if isinstance(users, int) else 0))
        else:  # ping
            _settle(fut, time.monotonic() - req.sent_at)

    def _on_subscribe_reply(self, req: _Pending, msg: Dict[str, Any], err: Optional[WsbrokerError]) -> None:
        pattern = req.topic or ""
        if req.for_sub is not None:
            self._on_replay_reply(req, msg, err)
            return
        entry = self._patterns.get(pattern)
        if entry is None or entry.inflight != msg.get("id"):
            return  # unsubscribed meanwhile
        entry.inflight = None
        if err is not None:
            if err.code == "bad_since" and req.since:
                # A broker that refuses our position: subscribe without recovery.
                self._positions.pop(pattern, None)
                self._send_subscribe(pattern, entry)
                return
            del self._patterns[pattern]
            self._positions.pop(pattern, None)
            for sub in list(entry.subs):
                sub._end(err)
            self._emit("error", err)
            return
        rec = msg.get("recovered")
        info = SubscribeResult(rec if isinstance(rec, bool) else None, entry.acked)
        if isinstance(msg.get("stream"), str):
            entry.stream = msg["stream"]
        self._note_position(pattern, msg)
        entry.active = True
        entry.acked = True
        entry.history = None  # asked once; a reconnect resumes with since
        subs = [s for s in entry.subs if not s._held]
        for sub in subs:
            sub._subscribed(info)
        self._report_recovery(pattern, msg, subs)

    def _note_position(self, pattern: str, msg: Dict[str, Any]) -> None:
        # A topic with history: the ack says where the topic stands. After a
        # recovery the replayed messages move the position themselves, and a
        # position only moves forward within an epoch.
        epoch, seq = msg.get("epoch"), msg.get("seq")
        if isinstance(epoch, str) and epoch and isinstance(seq, int) and msg.get("recovered") is not True:
            pos = self._positions.get(pattern)
            if pos is None or pos["epoch"] != epoch or pos["seq"] < seq:
                self._positions[pattern] = {"epoch": epoch, "seq": seq}

    def _report_recovery(self, pattern: str, msg: Dict[str, Any], subs: List[Subscription]) -> None:
        rec = msg.get("recovered")
        if not isinstance(rec, bool):
            return
        ev = Recovery(pattern, rec, msg.get("epoch"), msg.get("seq"))
        if rec:
            self.stats["recovered"] += 1
        self._emit("recovered", ev)
        for sub in subs:
            sub._emit("recovered", ev)

    def _on_replay_reply(self, req: _Pending, msg: Dict[str, Any], err: Optional[WsbrokerError]) -> None:
        sub = req.for_sub
        assert sub is not None
        pattern = req.topic or ""
        entry = self._patterns.get(pattern)
        if entry is None or sub not in entry.subs:
            return  # unsubscribed meanwhile
        if err is not None:
            sub._end(err)
            self._loop.create_task(self._unsubscribe(sub))  # the others keep the topic
            self._emit("error", err)
            return
        self._note_position(pattern, msg)
        rec = msg.get("recovered")
        sub._subscribed(SubscribeResult(rec if isinstance(rec, bool) else None, False))
        self._report_recovery(pattern, msg, [sub])

    # --- internals: token refresh ---

    def _schedule_refresh(self, retry: bool = False) -> None:
        # Asks for a fresh token when 85% of the current one's lifetime has
        # passed (from `iat`, else from when we got it), and sends it in an
        # `auth` request: the session then outlives the old token's `exp`.
        self._stop_refresh()
        if self._token_source() is None or self._token is None:
            return
        exp, iat = token_times(self._token)
        if exp is None:
            return
        now = time.time()
        start = iat if iat is not None else self._token_at
        lifetime = max(0.0, exp - start)
        at = start + lifetime * _TOKEN_REFRESH_AT
        if retry:
            # The same token again (a cache in get_token): ask again a little
            # later, at the latest at exp. Once exp has passed (the broker
            # closes only after its leeway), not in a tight loop: a while later.
            at = now + max(1.0, lifetime / 10)
            if exp > now:
                at = min(exp, at)
        delay = min(2**31 / 1000, max(0.0, at - now))
        self._refresh_handle = self._loop.call_later(
            delay, lambda: self._loop.create_task(self._refresh(raise_errors=False)))

    def _stop_refresh(self) -> None:
        if self._refresh_handle is not None:
            self._refresh_handle.cancel()
            self._refresh_handle = None

    async def _refresh(self, raise_errors: bool) -> None:
        self._refresh_handle = None
        source = self._token_source()
        if source is None or self._state != State.OPEN:
            if raise_errors:
                raise Disconnected("disconnected", "not connected") if source else TypeError(
                    "wsbroker: refresh_token needs get_token")
            return
        ws = self._ws
        try:
            got = source()
            if inspect.isawaitable(got):
                got = await got
            value = str(got)
        except Exception as exc:
            # The session ends at exp (4002); the reconnect asks again.
            err = TokenError("token", f"token callback failed: {exc}")
            if raise_errors:
                raise err from exc
            self._emit("error", err)
            return
        if ws is not self._ws or self._state != State.OPEN:
            if raise_errors:
                raise Disconnected("disconnected", "the connection dropped while getting a token")
            return
        if value == self._token and not raise_errors:
            self._schedule_refresh(retry=True)
            return
        fut = _new_future()

        def ok(_msg: Dict[str, Any]) -> None:
            self._token = value
            self._token_at = time.time()
            self.stats["token_refreshes"] += 1
            self._schedule_refresh()
            _settle(fut, None)

        def failed(err: WsbrokerError) -> None:
            if not raise_errors and err.code not in ("disconnected", "closed"):
                self._emit("error", err)
            _settle(fut, exc=err)

        rid = self._take_id()
        self._pending[rid] = _Pending("auth", on_ok=ok, on_err=failed)
        self._send({"type": "auth", "token": value, "id": rid})
        try:
            await fut
        except WsbrokerError:
            if raise_errors:
                raise


class _Connect:
    """What connect() returns: ``await`` it for an open Client, or use it as
    ``async with wsbroker.connect(url) as client:`` (closed at the end)."""

    def __init__(self, url: str, options: Dict[str, Any]) -> None:
        self._url = url
        self._options = options
        self._client: Optional[Client] = None

    async def _connect(self) -> Client:
        client = Client(self._url, **self._options)
        try:
            await client.wait_open()
        except BaseException:
            await client.close()
            raise
        self._client = client
        return client

    def __await__(self) -> Generator[Any, None, Client]:
        return self._connect().__await__()

    async def __aenter__(self) -> Client:
        return await self._connect()

    async def __aexit__(self, *exc: Any) -> None:
        if self._client is not None:
            await self._client.close()


def connect(url: str, **options: Any) -> _Connect:
    """Connects to a wsbroker WebSocket endpoint and keeps connected.

    ``await wsbroker.connect(url, token=…)`` returns a :class:`Client` once the
    broker's ``welcome`` arrived (retrying with backoff meanwhile, as after a
    drop; bound it with ``asyncio.wait_for``); it raises the error that closed
    the client for good first (e.g. ``InvalidToken`` for a fixed token the
    broker refused). Options: those of :class:`Client`."""
    return _Connect(url, options)
