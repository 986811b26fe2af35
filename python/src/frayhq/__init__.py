"""frayhq: the Python face of fray.

A client for tasks, objects, actors and jobs on a fray cluster (``connect``),
speaking marin's fray Client API, and the worker-side runtime that runs
Python functions and actors (``python -m frayhq.runtime``).
"""

from ._actor_api import ActorGroup
from ._actors import ActorFuture, ActorHandle
from ._codec import PICKLE_TAG, Ref
from ._decorators import ActorContext, actor, current_actor, task
from ._host import HostedActor
from ._jobs import JobHandle, wait_all
from ._tasks import Future, QueueFull, wait
from .client import Client, connect, current_client, set_current_client
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


def put(obj: object) -> Ref:
    """current_client().put(obj)."""
    return current_client().put(obj)


def get(x: object, timeout: float | None = None) -> object:
    """current_client().get(x, timeout)."""
    return current_client().get(x, timeout)


def run(fn: object, *args: object, **kwargs: object) -> Future:
    """current_client().run(fn, *args, **kwargs)."""
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
