"""Inside what fray runs (a callable job, a py.call task, a Python actor):
the process's client for the cluster and namespace that started it.

The Python runtime and ``python -m frayhq.job`` call install_from_env() at
process start. It connects to $FRAY_CLUSTER_SPEC in the namespace of
$FRAY_NAMESPACE / $FRAY_JOB_ID and makes that client the current one for
frayhq.current_client() and, when marin-fray is importable, for marin's
fray.current_client.current_client() too.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

_installed: Any = None


def install_from_env(spec: str | None = None) -> Any:
    """Connect to this process's cluster (lazily reused) and make it current."""
    global _installed
    if _installed is not None and not _installed._closed:  # noqa: SLF001
        return _installed
    from . import client as _client

    spec = spec if spec is not None else os.environ.get("FRAY_CLUSTER_SPEC", "")
    if not spec or spec == "local":
        raise RuntimeError("frayhq: install_from_env: FRAY_CLUSTER_SPEC names no running cluster")
    c = _client.connect(spec)
    with _client._process_lock:  # noqa: SLF001
        _client._process_client = c  # noqa: SLF001
    install_marin(c)
    _installed = c
    return c


def install_marin(c: Any) -> bool:
    """Make c marin-fray's current client for this process (all contexts)."""
    try:
        import fray.current_client as mcc  # marin-fray
    except Exception:  # noqa: BLE001 - marin-fray absent
        return False
    if getattr(mcc, "_current_client_var", None) is None:
        return False
    # Replace marin's context variable with one whose default is c: every
    # thread and context of this process then resolves to c, and marin's own
    # set_current_client() still overrides it where it is used.
    mcc._current_client_var = contextvars.ContextVar("_current_client_var", default=c)  # noqa: SLF001
    return True


class _LazyClient:
    """Stands for this process's client until first used, then connects
    (install_from_env) and forwards to it: a runtime process pays for a
    connection only if its code asks for the client."""

    def _target(self) -> Any:
        return install_from_env()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __repr__(self) -> str:
        return "<frayhq client of this process (connects on first use)>"


def install_lazy() -> None:
    """At process start in what fray runs: frayhq.current_client() already
    connects from $FRAY_CLUSTER_SPEC; make marin-fray's current_client()
    resolve to this process's fray client too, connecting on first use."""
    if not os.environ.get("FRAY_CLUSTER_SPEC"):
        return
    install_marin(_LazyClient())


class NamespacedCall:
    """A py.call callable that runs fn with the submitting client's
    namespace current (frayhq's and marin's current_client())."""

    def __init__(self, fn: Any, namespace: str) -> None:
        self.fn = fn
        self.namespace = namespace

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        c = client_for_namespace(self.namespace)
        if c is None:
            return self.fn(*args, **kwargs)
        from .client import _current

        token = _current.set(c)
        mtoken = None
        try:
            import fray.current_client as mcc  # marin-fray

            mtoken = mcc._current_client_var.set(c)  # noqa: SLF001
        except Exception:  # noqa: BLE001
            mcc = None
        try:
            return self.fn(*args, **kwargs)
        finally:
            _current.reset(token)
            if mcc is not None and mtoken is not None:
                mcc._current_client_var.reset(mtoken)  # noqa: SLF001


_by_namespace: dict[str, Any] = {}


def client_for_namespace(ns: str) -> Any:
    """This process's client for namespace ns (one connection per namespace)."""
    if not os.environ.get("FRAY_CLUSTER_SPEC"):
        return None
    c = _by_namespace.get(ns)
    if c is None or c._closed:  # noqa: SLF001
        base = install_from_env()
        if base.namespace == ns:
            c = base
        else:
            from . import client as _client

            c = _client.Client(os.environ["FRAY_CLUSTER_SPEC"], namespace=ns)
        _by_namespace[ns] = c
    return c
