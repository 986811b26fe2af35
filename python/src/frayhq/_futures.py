"""Cheap futures and ids for the per-task hot path.

A concurrent.futures.Future makes its own Condition (an RLock and a
Condition, several microseconds) when created. frayhq makes one per task
or actor call, so its futures share one lock instead, and make their
Condition (over that lock) only when a thread first waits on them or
takes their condition (concurrent.futures.wait, as_completed): settling a
future nobody waits on wakes no one and builds nothing.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures._base as _base
import itertools
import secrets
import threading
import time
from typing import Any

_LOCK = threading.RLock()  # every frayhq future's lock
_OVER = frozenset((_base.FINISHED, _base.CANCELLED, _base.CANCELLED_AND_NOTIFIED))


class SharedFuture(concurrent.futures.Future):
    """A concurrent.futures.Future on the shared lock, its Condition made on demand."""

    def __init__(self) -> None:  # noqa: D107 - the base's fields, without its Condition
        self._cond: threading.Condition | None = None
        self._state = _base.PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []

    @property
    def _condition(self) -> threading.Condition:  # what the base class and concurrent.futures use
        c = self._cond
        if c is None:
            with _LOCK:
                if self._cond is None:
                    self._cond = threading.Condition(_LOCK)
                c = self._cond
        return c

    def done(self) -> bool:
        return self._state in _OVER

    def cancelled(self) -> bool:
        return self._state in (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED)

    def running(self) -> bool:
        return self._state == _base.RUNNING

    def _settle(self, result: Any, exc: BaseException | None, failed: bool) -> None:
        with _LOCK:
            if self._state in _OVER:
                raise concurrent.futures.InvalidStateError(f"{self._state}: {self!r}")
            self._result, self._exception = result, exc
            self._state = _base.FINISHED
            for waiter in self._waiters:
                if failed:
                    waiter.add_exception(self)
                else:
                    waiter.add_result(self)
            if self._cond is not None:
                self._cond.notify_all()
        self._invoke_callbacks()

    def set_result(self, result: Any) -> None:
        self._settle(result, None, False)

    def set_exception(self, exception: BaseException | None) -> None:
        self._settle(None, exception, True)

    def _wait_over(self, timeout: float | None) -> None:
        """Wait until this future is over or timeout passes."""
        if self._state in _OVER:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._condition
        with cond:
            while self._state not in _OVER:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                cond.wait(left)

    def result(self, timeout: float | None = None) -> Any:
        self._wait_over(timeout)
        state = self._state
        if state == _base.FINISHED:
            if self._exception is not None:
                try:
                    raise self._exception
                finally:
                    self = None  # noqa: PLW0642 - no reference cycle through the traceback, as the base does
            return self._result
        if state in _OVER:
            raise concurrent.futures.CancelledError
        raise concurrent.futures.TimeoutError

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_over(timeout)
        state = self._state
        if state == _base.FINISHED:
            return self._exception
        if state in _OVER:
            raise concurrent.futures.CancelledError
        raise concurrent.futures.TimeoutError


def settle(fut: concurrent.futures.Future, value: Any = None, exc: BaseException | None = None) -> None:
    """Set fut's exception (exc given) or result, unless it is done already
    (cancelled, or settled by whoever came first)."""
    if fut.done():
        return
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)
    except concurrent.futures.InvalidStateError:
        pass


_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SEQ_DIGITS = 10
_SEQ_END = 16**_SEQ_DIGITS


def token(n: int = 12) -> str:
    """n random characters of [0-9A-Za-z] (12: 71 bits, as a Go producer's
    default owner)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


class IDs:
    """Unique ids shaped like NUIDs (22 characters of [0-9A-Za-z]): a
    random 12-character prefix (71 bits) and a 10-hex-digit counter from a
    random start, a new prefix should it ever run out. A counter and one
    format call per id: a fraction of nats-py's NUID."""

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._state = self._fresh()

    @staticmethod
    def _fresh() -> tuple[str, itertools.count[int]]:
        return token(), itertools.count(secrets.randbelow(16**9))

    def next(self) -> str:
        state = self._state
        n = next(state[1])  # atomic: itertools.count under the GIL
        if n >= _SEQ_END:
            with self._mu:
                if self._state is state:
                    self._state = self._fresh()
            return self.next()
        return f"{state[0]}{n:010x}"
