"""Listener dispatch shared by Client and Subscription: a tiny event emitter,
and futures whose failure is never reported as "never retrieved"."""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

from .models import Listener


def _report(exc: BaseException, what: str) -> None:
    """Hands a listener's exception to the loop's handler (it is not swallowed,
    and does not break the client's state machine)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise exc
    loop.call_exception_handler({"message": f"wsbroker: exception in {what}", "exception": exc})


def _call(fn: Listener, args: Tuple[Any, ...], what: str) -> None:
    try:
        result = fn(*args)
    except Exception as exc:  # a user's bug must not break the client
        _report(exc, what)
        return
    if inspect.isawaitable(result):
        task = asyncio.ensure_future(result)

        def done(t: "asyncio.Future[Any]") -> None:
            exc = None if t.cancelled() else t.exception()
            if exc is not None:
                _report(exc, what)
        task.add_done_callback(done)


class _Emitter:
    def __init__(self) -> None:
        self._listeners: Dict[str, List[Listener]] = {}

    def on(self, event: str, fn: Listener) -> Callable[[], None]:
        """Adds a listener for ``event``; returns a function that removes it."""
        if not callable(fn):
            raise TypeError("listener must be callable")
        self._listeners.setdefault(event, []).append(fn)
        return lambda: self.off(event, fn)

    def off(self, event: str, fn: Listener) -> None:
        """Removes a listener added with on()."""
        fns = self._listeners.get(event)
        if fns and fn in fns:
            fns.remove(fn)

    def once(self, event: str, fn: Listener) -> Callable[[], None]:
        """Like on(), for the next event only."""
        def wrapper(*args: Any) -> Any:
            self.off(event, wrapper)
            return fn(*args)
        return self.on(event, wrapper)

    def _emit(self, event: str, *args: Any) -> bool:
        fns = self._listeners.get(event)
        if not fns:
            return False
        for fn in list(fns):
            _call(fn, args, f"{event!r} listener")
        return True


def _new_future() -> "asyncio.Future[Any]":
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    # Not "never retrieved" when nobody awaits it; those who do still see it.
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return fut


def _settle(fut: "asyncio.Future[Any]", value: Any = None, exc: Optional[BaseException] = None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
