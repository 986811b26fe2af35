"""frayhq: the Python face of fray.

A client for tasks, objects, actors and jobs on a fray cluster (``connect``),
speaking marin's fray Client API, and the worker-side runtime that runs
Python functions and actors (``python -m frayhq.runtime``).
"""

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
    PickleFailed,
    RemoteError,
    TaskError,
    TimeoutError,
    UnknownClass,
    UnknownFunction,
    Unsupported,
)

__version__ = "0.1.0"

__all__ = [
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
    "PickleFailed",
    "Ref",
    "RemoteError",
    "TaskError",
    "TimeoutError",
    "UnknownClass",
    "UnknownFunction",
    "Unsupported",
]
