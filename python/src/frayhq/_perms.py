"""Permission violations, turned into errors for the calls that caused them.

nats-server refuses a publish or subscription the connection's user may
not make with ``-ERR 'Permissions Violation for Publish to "<subject>"'``;
nats-py hands that only to the connection's error callback, and a request
to a refused subject just waits for its timeout. ``Perms`` reads those
reports and fails at once the calls that listen for the subject, naming
the subject and the user (as the Go client's broker.PermissionError does).

nats-py lowercases the server's error line before reporting it, so the
subject heard here is lowercased: listeners compare case-insensitively
and report the subject as they sent it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from .errors import PermissionDenied

USER_INFO_SUBJECT = "$SYS.REQ.USER.INFO"
_VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]+)"', re.IGNORECASE)


def matches(pattern: str, subject: str) -> bool:
    """Whether subject matches the NATS pattern (wildcards * and >)."""
    pt, st = pattern.split("."), subject.split(".")
    for i, p in enumerate(pt):
        if p == ">":
            return len(st) > i
        if i >= len(st) or (p != "*" and p != st[i]):
            return False
    return len(pt) == len(st)


class Perms:
    """One connection's permission violations, handed to listeners."""

    def __init__(self, fallback_user: str = "") -> None:
        self.nc: Any = None
        self._listeners: dict[int, Callable[[PermissionDenied], None]] = {}
        self._next = 0
        self._user = fallback_user
        self._user_known = False
        self.refused_subs: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def on_error(self, e: Exception) -> bool:
        """Called (on the loop) with every error the connection reports;
        True when it was a violation. The listeners hear of it from a task
        of their own: asking the server for the user's name needs the
        connection's reader, which is busy calling this."""
        m = _VIOLATION.search(str(e))
        if m is None:
            return False
        op = "publish" if m.group(1).lower() == "publish" else "subscribe"
        if op == "subscribe":
            self.refused_subs.add(m.group(2).lower())
        t = asyncio.get_running_loop().create_task(self._dispatch(op, m.group(2)))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return True

    async def _dispatch(self, op: str, subject: str) -> None:
        err = PermissionDenied(await self.user(), op, subject)
        for f in list(self._listeners.values()):
            f(err)

    async def user(self) -> str:
        """The connection's user, as the server knows it (asked once)."""
        if self._user_known or self.nc is None:
            return self._user
        self._user_known = True
        try:
            msg = await self.nc.request(USER_INFO_SUBJECT, b"", timeout=1)
            d = json.loads(msg.data).get("data") or {}
        except Exception:  # noqa: BLE001 - the name we were given will do
            return self._user
        if d.get("user"):
            self._user = d.get("user_name") or d["user"]
            acct = d.get("account", "")
            if acct and acct != "$G":
                self._user += f" (account {acct})"
        return self._user

    def listen(self, f: Callable[[PermissionDenied], None]) -> Callable[[], None]:
        """Call f (on the loop; it must not block) with every violation from now on; returns stop."""
        i = self._next
        self._next += 1
        self._listeners[i] = f
        return lambda: self._listeners.pop(i, None)

    def guard(self, *patterns: str) -> _Guard:
        """``async with perms.guard(...)``: cancel the enclosed await at once,
        raising PermissionDenied, when a publish to a subject one of patterns
        matches is refused meanwhile. (A class, not a generator: it wraps
        every actor call.)"""
        return _Guard(self, patterns)

    async def roundtrip(self) -> None:
        """A round trip to the server after everything sent so far, after
        which any refusal of it has been reported. (nats-py's flush writes
        its PING ahead of the commands still buffered, so those are written
        out first.)"""
        await self.nc._flush_pending(force_flush=True)  # noqa: SLF001 - waits until written
        await self.nc.flush(timeout=10)

    async def subscribe(self, subject: str, **kw: Any) -> Any:
        """Subscribe and wait for the server's verdict: a refused subscription
        raises PermissionDenied instead of silently never receiving."""
        self.refused_subs.discard(subject.lower())
        sub = await self.nc.subscribe(subject, **kw)
        await self.roundtrip()
        if subject.lower() in self.refused_subs:
            await sub.unsubscribe()
            raise PermissionDenied(await self.user(), "subscribe", subject)
        return sub


class _Guard:
    __slots__ = ("perms", "patterns", "task", "hit", "key")

    def __init__(self, perms: Perms, patterns: tuple[str, ...]) -> None:
        self.perms = perms
        self.patterns = patterns
        self.hit: PermissionDenied | None = None

    def _on(self, e: PermissionDenied) -> None:
        if self.hit is not None or e.op != "publish":
            return
        for p in self.patterns:
            if matches(p.lower(), e.subject.lower()):
                literal = "*" not in p.split(".") and ">" not in p.split(".")
                self.hit = PermissionDenied(e.user, e.op, p) if literal else e
                self.task.cancel()
                return

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        pm = self.perms
        self.key = pm._next  # noqa: SLF001
        pm._next += 1  # noqa: SLF001
        pm._listeners[self.key] = self._on  # noqa: SLF001

    async def __aexit__(self, et: Any, e: Any, tb: Any) -> bool:
        self.perms._listeners.pop(self.key, None)  # noqa: SLF001
        if et is not None and issubclass(et, asyncio.CancelledError) and self.hit is not None:
            self.task.uncancel()
            raise self.hit from None
        return False
