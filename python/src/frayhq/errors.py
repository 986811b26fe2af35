"""frayhq's exceptions. Every one subclasses FrayError.

Where marin-fray (the ``fray`` package) is importable, the actor, job and
"already exists" errors also subclass marin's own classes, so marin code that
catches ``fray.actor.ActorUnavailableError`` catches frayhq's.
"""

from __future__ import annotations

import builtins
from typing import Any


def _marin(module: str, name: str) -> type:
    try:
        mod = __import__(module, fromlist=[name])
        cls = getattr(mod, name)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            return cls
    except Exception:  # noqa: BLE001 - marin-fray absent or not the package we know
        pass
    return RuntimeError


class FrayError(Exception):
    """The base of every error frayhq raises (re-raised remote errors aside)."""


class ConnectionError(FrayError, builtins.ConnectionError):  # noqa: A001
    """The cluster cannot be reached, or the connection was lost."""


class PermissionDenied(FrayError, builtins.PermissionError):
    """The server refused a publish or subscription to this connection's user
    (fray auth's roles): ``user``, ``op`` ("publish" or "subscribe") and
    ``subject`` say which."""

    def __init__(self, user: str, op: str, subject: str, hint: str = ""):
        who = f"user {user}" if user else "this connection's user"
        super().__init__(
            f"permission denied: {who} may not {op} to {subject!r} (the server's permissions refuse it; see fray auth)"
            + (f"; {hint}" if hint else "")
        )
        self.user = user
        self.op = op
        self.subject = subject


class TimeoutError(FrayError, builtins.TimeoutError):  # noqa: A001
    """A wait ran out of time."""


class DecodeError(FrayError, ValueError):
    """A record or value could not be decoded; the message names the record."""


class PickleFailed(FrayError, TypeError):
    """A value could not be pickled or encoded; the message names the object."""


class ConfigError(FrayError, ValueError):
    """A bad cluster spec, option or request."""


class UnknownFunction(FrayError, LookupError):
    """No live worker of the pool serves the function; the message lists what it serves."""


class UnknownClass(FrayError, LookupError):
    """No live worker of the pool offers the actor class."""


class NotFound(FrayError, LookupError):
    """A task, object, actor or job that does not exist (or is no longer kept)."""


class CancelledError(FrayError):
    """The task or call was cancelled."""


class TaskError(FrayError):
    """A task failed without a re-raisable remote exception.

    ``kind`` is the fray error kind ("handler", "timeout", "worker_lost",
    "runtime_crashed", ...), ``info`` the decoded ErrorInfo map.
    """

    def __init__(self, message: str, kind: str = "", info: dict[str, Any] | None = None):
        super().__init__(message)
        self.kind = kind
        self.info = info or {}


class RemoteError(FrayError):
    """A remote error that could not be re-raised as its own type.

    Carries the remote ``type`` name, ``lang`` ("go", "python"), the
    message and the remote ``traceback`` when there is one.
    """

    def __init__(self, message: str, type: str = "", lang: str = "", traceback: str = ""):  # noqa: A002
        super().__init__(message)
        self.type = type
        self.lang = lang
        self.traceback = traceback

    def __str__(self) -> str:
        s = super().__str__()
        if self.type:
            s = f"{self.type}: {s}"
        if self.traceback:
            s = f"{s}\n\nRemote traceback:\n{self.traceback}"
        return s


_MarinActorUnavailable = _marin("fray.actor", "ActorUnavailableError")
_MarinJobFailed = _marin("fray.client", "JobFailed")
_MarinJobAlreadyExists = _marin("fray.client", "JobAlreadyExists")


class ActorUnavailableError(FrayError, _MarinActorUnavailable):  # type: ignore[misc,valid-type]
    """The actor is gone (stopped, or its host died and it will not restart)."""


class ActorError(FrayError):
    """An actor call failed on the fray side (not an exception of the method)."""


class JobFailed(FrayError, _MarinJobFailed):  # type: ignore[misc,valid-type]
    """A job ended FAILED or STOPPED while waiting with raise_on_failure."""

    def __init__(self, job_id: str, status: Any, message: str = ""):
        RuntimeError.__init__(self, message or f"Job {job_id} finished with status {status}")
        self.job_id = job_id
        self.failed_status = status


class JobAlreadyExists(FrayError, _MarinJobAlreadyExists):  # type: ignore[misc,valid-type]
    """A live job already has the name; ``handle`` is that job's handle."""

    def __init__(self, job_name: str, handle: Any = None):
        RuntimeError.__init__(self, f"Job {job_name} already exists")
        self.job_name = job_name
        self.handle = handle


class Unsupported(FrayError, NotImplementedError):
    """Something fray does not support (yet); the message says what."""


class StopActor(FrayError):
    """Raised by an actor's method to end its actor cleanly: the call
    returns ``value`` to its caller, then the actor stops for good, as if
    shut down (no restart, whatever its max_restarts; its name is free to
    create again). The counterpart of Go's ``actors.ErrStop``."""

    def __init__(self, value: Any = None):
        super().__init__("actor stopped by its method")
        self.value = value


class ActorExists(FrayError):
    """create_actor of a live name without get_if_exists=True."""


class NoEligibleWorker(FrayError):
    """No live worker could host the actor in time; the message says why."""
