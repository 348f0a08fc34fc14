"""One subscription to a pattern (made by Client.subscribe)."""
from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, AsyncIterator, Deque, Dict, Generator, Optional, Tuple

from ._events import _call, _Emitter, _new_future, _settle
from ._util import is_exact_topic
from .errors import Closed, WsbrokerError
from .models import Listener, Message, SubscribeResult

# Topics a last-value pattern subscription remembers positions of (oldest
# forgotten first): beyond that, a reconnect may hand over a topic's latest
# message once more.
SEEN_TOPICS_MAX = 10000

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Subscription"]


class Subscription(_Emitter):
    """One subscription to a pattern, made by :meth:`Client.subscribe`.

    Messages go to the callback given to subscribe() or, without one, are
    buffered (at most ``buffer_size``; the oldest is dropped and counted in
    ``dropped``) for ``async for msg in sub``. ``await sub`` (or ``await
    sub.ready``) waits for the broker's ack and raises the broker's error
    (``BadTopic``, ``Forbidden``, …). Events: ``subscribed``
    (SubscribeResult), ``recovered`` (Recovery), ``gap`` (GapInfo), ``loss``
    (GapInfo with ``to``), ``join`` /
    ``leave`` (MemberEvent), ``unsubscribed`` (dict), ``error``, ``closed``.
    ``async with sub:`` unsubscribes at the end of the block."""

    def __init__(self, client: "Client", topic: str, callback: Optional[Listener], buffer_size: int) -> None:
        super().__init__()
        self._client = client
        self._callback = callback
        self._buffer: Deque[Message] = collections.deque()
        self._buffer_size = max(1, buffer_size)
        self._waiter: Optional[asyncio.Future[None]] = None
        self._closed = False
        self._error: Optional[WsbrokerError] = None
        self._ready: asyncio.Future[SubscribeResult] = _new_future()
        self._active = False
        self._exact = is_exact_topic(topic)
        self._last: Optional[Tuple[str, int]] = None
        # topic -> (epoch, seq): a last-value pattern's positions (_track_topics)
        self._seen: Optional[Dict[str, Tuple[str, int]]] = None
        self._held = False
        #: The pattern, exactly as given to subscribe().
        self.topic = topic
        #: Messages dropped because the iteration buffer was full.
        self.dropped = 0
        #: Messages handed to this subscription.
        self.received = 0

    @property
    def ready(self) -> "asyncio.Future[SubscribeResult]":
        """Resolves with a SubscribeResult on the ack; raises if the broker refused the pattern."""
        return self._ready

    def __await__(self) -> Generator[Any, None, "Subscription"]:
        yield from self._ready.__await__()
        return self

    @property
    def active(self) -> bool:
        """True while the broker has acknowledged this pattern on the current socket."""
        return self._active and not self._closed

    @property
    def closed(self) -> bool:
        """True once unsubscribed, refused by the broker, or the client was closed."""
        return self._closed

    async def unsubscribe(self) -> None:
        """Stops the subscription; returns once the broker has acknowledged (at once when offline)."""
        if self._closed:
            return
        self._end(None)
        await self._client._unsubscribe(self)

    async def __aenter__(self) -> "Subscription":
        await self._ready
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.unsubscribe()

    def __aiter__(self) -> AsyncIterator[Message]:
        if self._callback is not None:
            raise TypeError("wsbroker: a subscription with a callback cannot also be iterated")
        return self

    async def __anext__(self) -> Message:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._closed:
                if self._error is not None:
                    err, self._error = self._error, None  # reported once; later calls just end
                    raise err
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # --- called by Client only ---

    def _deliver(self, msg: Message) -> None:
        if self._closed or self._held:
            return
        # A replay asked for by another subscription of this topic (since,
        # history) repeats messages this one has had: each gets a message once.
        if self._exact and isinstance(msg.epoch, str) and isinstance(msg.seq, int):
            if self._last is not None and self._last[0] == msg.epoch and msg.seq <= self._last[1]:
                return
            self._last = (msg.epoch, msg.seq)
        elif self._seen is not None and isinstance(msg.epoch, str) and isinstance(msg.seq, int):
            # A last-value pattern asks its replay again after a reconnect:
            # the latest message of a topic it has already had is not repeated.
            last = self._seen.pop(msg.topic, None)
            if last is not None and last[0] == msg.epoch and msg.seq <= last[1]:
                self._seen[msg.topic] = last
                return
            self._seen[msg.topic] = (msg.epoch, msg.seq)  # dicts keep insertion order
            if len(self._seen) > SEEN_TOPICS_MAX:
                del self._seen[next(iter(self._seen))]
        self.received += 1
        if self._callback is not None:
            _call(self._callback, (msg,), f"subscription callback of {self.topic!r}")
            return
        if len(self._buffer) >= self._buffer_size:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(msg)
        self._wake()

    def _track_topics(self) -> None:
        # A pattern subscribed with history (last value on wildcards):
        # remember the position per topic, so the replay a reconnect asks for
        # again hands over only what is new.
        if self._seen is None:
            self._seen = {}

    def _hold(self) -> None:
        # Messages before the ack of this subscription's own replay are in the
        # replay (the broker answers in order): none is taken until then.
        self._held = True

    def _subscribed(self, info: SubscribeResult) -> None:
        if self._closed:
            return
        self._held = False
        self._active = True
        _settle(self._ready, info)
        self._emit("subscribed", info)

    def _inactive(self) -> None:
        self._active = False

    def _end(self, err: Optional[WsbrokerError]) -> None:
        if self._closed:
            return
        self._closed = True
        self._active = False
        if err is not None:
            self._error = err
            _settle(self._ready, exc=err)
            self._emit("error", err)
        else:
            _settle(self._ready, exc=Closed("closed", "subscription closed before it was acknowledged",
                                            topic=self.topic))
        self._wake()
        self._emit("closed", err)
