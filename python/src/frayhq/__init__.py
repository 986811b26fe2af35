"""frayhq: the Python face of fray.

A client for tasks, objects, actors and jobs on a fray cluster (``connect``),
speaking marin's fray Client API, and the worker-side runtime that runs
Python functions and actors (``python -m frayhq.runtime``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._codec import PICKLE_TAG, Ref
from ._decorators import ActorContext, actor, current_actor, task
from .errors import (
    ActorError,
    ActorExists,
    ActorUnavailableError,
    CancelledError,
    ConfigError,
    ConnectionError,
    DecodeError,
    FrayError,
    JobAlreadyExists,
    JobFailed,
    NoEligibleWorker,
    NotFound,
    PermissionDenied,
    PickleFailed,
    RemoteError,
    StopActor,
    TaskError,
    TimeoutError,
    UnknownClass,
    UnknownFunction,
    Unsupported,
)
from .types import (
    ActorConfig,
    BinaryEntrypoint,
    CallableEntrypoint,
    CpuConfig,
    Entrypoint,
    EnvironmentConfig,
    GpuConfig,
    JobRequest,
    JobStatus,
    ResourceConfig,
    TpuConfig,
)

__version__ = "0.1.0"

# The client's names load on first use (PEP 562): they pull in nats-py and
# aiohttp, which a runtime process (python -m frayhq.runtime) or a Python
# actor that never connects does not need, and whose import costs a large
# part of a second on a loaded machine.
_LAZY = {
    "ActorGroup": "._actor_api",
    "ActorFuture": "._actors",
    "ActorHandle": "._actors",
    "HostedActor": "._host",
    "JobHandle": "._jobs",
    "wait_all": "._jobs",
    "Future": "._tasks",
    "QueueFull": "._tasks",
    "wait": "._tasks",
    "Client": ".client",
    "connect": ".client",
    "current_client": ".client",
    "set_current_client": ".client",
}

if TYPE_CHECKING:
    from ._actor_api import ActorGroup
    from ._actors import ActorFuture, ActorHandle
    from ._host import HostedActor
    from ._jobs import JobHandle, wait_all
    from ._tasks import Future, QueueFull, wait
    from .client import Client, connect, current_client, set_current_client


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'frayhq' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def put(obj: object) -> Ref:
    """current_client().put(obj)."""
    from .client import current_client

    return current_client().put(obj)


def get(x: object, timeout: float | None = None) -> object:
    """current_client().get(x, timeout)."""
    from .client import current_client

    return current_client().get(x, timeout)


def run(fn: object, *args: object, **kwargs: object) -> Future:
    """current_client().run(fn, *args, **kwargs)."""
    from .client import current_client

    return current_client().run(fn, *args, **kwargs)


__all__ = [
    "ActorConfig",
    "ActorFuture",
    "ActorGroup",
    "ActorHandle",
    "BinaryEntrypoint",
    "CallableEntrypoint",
    "Client",
    "CpuConfig",
    "Entrypoint",
    "EnvironmentConfig",
    "Future",
    "GpuConfig",
    "HostedActor",
    "JobHandle",
    "JobRequest",
    "JobStatus",
    "QueueFull",
    "ResourceConfig",
    "TpuConfig",
    "connect",
    "current_client",
    "get",
    "put",
    "run",
    "set_current_client",
    "wait",
    "wait_all",
    "PICKLE_TAG",
    "ActorContext",
    "actor",
    "current_actor",
    "task",
    "ActorError",
    "ActorExists",
    "ActorUnavailableError",
    "CancelledError",
    "ConfigError",
    "ConnectionError",
    "DecodeError",
    "FrayError",
    "JobAlreadyExists",
    "JobFailed",
    "NoEligibleWorker",
    "StopActor",
    "NotFound",
    "PermissionDenied",
    "PickleFailed",
    "Ref",
    "RemoteError",
    "TaskError",
    "TimeoutError",
    "UnknownClass",
    "UnknownFunction",
    "Unsupported",
]
