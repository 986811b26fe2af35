"""The decorators that register Python code with a fray worker.

A module named by ``fray-worker --python-import MODULE`` registers its task
functions and actor classes when it is imported::

    import frayhq

    @frayhq.task("resize")
    def resize(arg):
        return {"w": arg["w"] // 2}

    @frayhq.actor("Counter")
    class Counter:
        def __init__(self, start=0):
            self.n = start

        def add(self, d):
            self.n += d
            return self.n

The worker advertises them like Go handlers; a task named "resize" then runs
``resize(arg)`` in one of the worker's Python processes, and an actor of
class "Counter" is a ``Counter`` living in a process of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

# Reserved names, served by every worker started with --python.
PY_CALL = "py.call"
PY_OBJECT = "py.object"

_TASKS: dict[str, Callable[..., Any]] = {}
_ACTORS: dict[str, type] = {}


def _check(name: Any, what: str) -> str:
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 256
        or any(c.isspace() or ord(c) < 32 for c in name)
    ):
        raise ValueError(
            f"frayhq.{what}: name {name!r}: want 1 to 256 characters without spaces or control characters"
        )
    if name in (PY_CALL, PY_OBJECT):
        raise ValueError(f"frayhq.{what}: name {name!r} is reserved")
    return name


def _register(table: dict[str, Any], what: str, name: str, obj: Any, ok: bool, want: str) -> None:
    if not ok:
        raise TypeError(f"frayhq.{what}({name!r}): {obj!r} is not {want}")
    if name in table and table[name] is not obj:
        raise ValueError(f"frayhq.{what}: {name!r} is already registered to {table[name]!r}")
    table[name] = obj


def task(name: str) -> Callable[[F], F]:
    """Register the decorated function as fray task function ``name``.

    It receives the task's argument (the decoded value the caller sent) as
    its one positional argument and returns the result. Registering two
    functions under one name is an error.
    """
    _check(name, "task")

    def register(fn: F) -> F:
        _register(_TASKS, "task", name, fn, callable(fn), "callable")
        return fn

    return register


def actor(name: str) -> Callable[[C], C]:
    """Register the decorated class as fray actor class ``name``.

    Its public methods (names not starting with "_") are the actor's
    methods. An instance lives in a runtime process of its own.
    """
    _check(name, "actor")

    def register(cls: C) -> C:
        _register(_ACTORS, "actor", name, cls, isinstance(cls, type), "a class")
        return cls

    return register


def public_methods(cls: type) -> list[str]:
    """The methods an actor of class cls serves, sorted."""
    return sorted(n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None)))


@dataclass(frozen=True)
class ActorContext:
    """The actor whose process this is (``current_actor()``)."""

    namespace: str
    name: str
    class_name: str
    group: str
    index: int
    epoch: int
    host: str
    max_concurrency: int

    def handle(self) -> Any:
        """This actor's own handle (bound to this process's client when
        called), to pass to tasks and other actors."""
        from ._actors import ActorHandle

        return ActorHandle(self.namespace, self.name, self.class_name)


_current: ActorContext | None = None


def current_actor() -> ActorContext | None:
    """The actor being served by this process (its name, namespace, group,
    index, epoch and host), or None outside an actor's process."""
    return _current


def _set_current(ctx: ActorContext | None) -> None:
    global _current
    _current = ctx
