"""Cheap futures and ids for the per-task hot path.

A concurrent.futures.Future makes its own Condition (an RLock and a
Condition, several microseconds) when created. frayhq makes one per task
or actor call, so its futures share one Condition per process instead: a
notify then wakes every thread waiting on any of them, and result() and
exception() wait again until their own future is done or their time is up.
concurrent.futures.wait and as_completed take each future's condition in
turn (the same reentrant lock here) and add their own waiters: unchanged.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures._base as _base
import itertools
import secrets
import threading
import time
from typing import Any

_SHARED = threading.Condition()  # every frayhq future's condition
_OVER = (_base.FINISHED, _base.CANCELLED, _base.CANCELLED_AND_NOTIFIED)


class SharedFuture(concurrent.futures.Future):
    """A concurrent.futures.Future on the shared condition."""

    def __init__(self) -> None:  # noqa: D107 - the base's fields, its Condition shared
        self._condition = _SHARED
        self._state = _base.PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []

    def _wait_over(self, timeout: float | None) -> None:
        """Wait until this future is over or timeout passes (others' notifies
        wake the wait too)."""
        if self._state in _OVER:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._state not in _OVER:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return
                self._condition.wait(left)

    def result(self, timeout: float | None = None) -> Any:
        self._wait_over(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_over(timeout)
        return super().exception(0)


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
        prefix = "".join(secrets.choice(_ALPHABET) for _ in range(12))
        return prefix, itertools.count(secrets.randbelow(16**9))

    def next(self) -> str:
        state = self._state
        n = next(state[1])  # atomic: itertools.count under the GIL
        if n >= _SEQ_END:
            with self._mu:
                if self._state is state:
                    self._state = self._fresh()
            return self.next()
        return f"{state[0]}{n:010x}"
