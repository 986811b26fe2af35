"""marin-fray's actor context for actors fray runs: marin code calls
``fray.actor.current_actor()`` in an actor's ``__init__`` (its handle,
index and group name) and ends the actor by setting its
``shutdown_event`` (cleanly) or calling ``fail(exc)``."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from typing import Any


class LazyHandle:
    """An actor's own handle, made on first use: the actors client's
    import (nats-py and more) is a cost an actor that never uses it does
    not pay. It pickles as the handle itself."""

    def __init__(self, namespace: str, name: str, class_name: str) -> None:
        self._args = (namespace, name, class_name)
        self._handle: Any = None

    def _real(self) -> Any:
        if self._handle is None:
            from ._actors import ActorHandle

            self._handle = ActorHandle(*self._args)
        return self._handle

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(self._real(), attr)

    def __reduce__(self) -> Any:
        return self._real().__reduce__()

    def __eq__(self, other: object) -> bool:
        return self._real() == (other._real() if isinstance(other, LazyHandle) else other)

    def __hash__(self) -> int:
        return hash(self._real())

    def __repr__(self) -> str:
        return repr(self._real())


def context(handle: Any, index: int, group: str) -> Any | None:
    """A marin ActorContext (with a shutdown event), or None when
    marin-fray is not importable."""
    try:
        from fray.actor import ActorContext  # marin-fray
    except Exception:  # noqa: BLE001 - marin-fray absent
        return None
    return ActorContext(
        handle=handle, index=max(0, index), group_name=group, shutdown_event=threading.Event()
    )


def install(ctx: Any) -> None:
    """Make ctx marin's current_actor() everywhere in this process (a
    runtime process hosts one actor: its methods and threads see it too)."""
    import fray.actor as ma  # marin-fray

    ma._current_actor_ctx = contextvars.ContextVar("actor_context", default=ctx)  # noqa: SLF001


@contextlib.contextmanager
def during(ctx: Any) -> Iterator[None]:
    """marin's current_actor() is ctx within the block (this context only)."""
    if ctx is None:
        yield
        return
    import fray.actor as ma  # marin-fray

    token = ma._set_current_actor(ctx)  # noqa: SLF001
    try:
        yield
    finally:
        ma._reset_current_actor(token)  # noqa: SLF001


def ended(ctx: Any) -> tuple[bool, BaseException | None]:
    """Whether the actor asked to end (its shutdown event is set) and the
    first error it recorded with fail(), if any."""
    if ctx is None or ctx.shutdown_event is None or not ctx.shutdown_event.is_set():
        return False, None
    errs = ctx._errors  # noqa: SLF001
    return True, (errs[0] if errs else None)
