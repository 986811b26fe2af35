"""Turning fray's error records (task ErrorInfo, actor wire errors) into
Python exceptions: the original exception when the record carries it
pickled (``exc``), else a frayhq error carrying type, message and traceback.
"""

from __future__ import annotations

from typing import Any

import cloudpickle

from .errors import CancelledError, RemoteError, TaskError, UnknownFunction


def _unpickle_exc(info: dict[str, Any]) -> BaseException | None:
    exc = info.get("exc")
    if not isinstance(exc, bytes | bytearray) or not exc:
        return None
    try:
        e = cloudpickle.loads(exc)
    except Exception:  # noqa: BLE001 - cannot unpickle here: fall back to RemoteError
        return None
    if not isinstance(e, BaseException):
        return None
    tb = info.get("traceback")
    if isinstance(tb, str) and tb:
        try:
            e.add_note(f"Remote traceback (fray):\n{tb}")
        except AttributeError:
            pass
    return e


def task_error(info: Any, task_id: str = "") -> BaseException:
    """The exception for a task result's ErrorInfo map."""
    if not isinstance(info, dict):
        return TaskError(f"frayhq: task {task_id} failed with an undecodable error record: {info!r}")
    e = _unpickle_exc(info)
    if e is not None:
        return e
    kind = str(info.get("kind") or "")
    msg = str(info.get("message") or "")
    fn = info.get("fn") or ""
    where = f"task {task_id}" + (f" ({fn})" if fn else "")
    if kind == "unknown_function":
        return UnknownFunction(f"{where}: {msg}")
    if kind == "cancelled":
        return CancelledError(f"{where}: {msg or 'cancelled'}")
    if info.get("lang") and info.get("lang") != "go" or info.get("traceback"):
        return RemoteError(
            msg,
            type=str(info.get("type") or ""),
            lang=str(info.get("lang") or ""),
            traceback=str(info.get("traceback") or ""),
        )
    typ = info.get("type")
    text = f"{where} failed ({kind}" + (f", {typ}" if typ else "") + f"): {msg}"
    return TaskError(text, kind=kind, info=info)


def actor_error(e: Any, where: str) -> BaseException:
    """The exception for an actor reply's ``e`` map."""
    if not isinstance(e, dict):
        return RemoteError(f"{where}: undecodable error {e!r}")
    x = _unpickle_exc(e)
    if x is not None:
        return x
    t = str(e.get("t") or e.get("type") or "")
    msg = str(e.get("msg") or "")
    return RemoteError(
        f"{where}: {msg}", type=t, lang=str(e.get("lang") or ""), traceback=str(e.get("traceback") or "")
    )
