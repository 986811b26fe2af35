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
