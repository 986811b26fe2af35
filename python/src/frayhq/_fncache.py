"""Task functions exported once, as Ray exports a remote function.

The client pickles a plain function once per process (the first time it is
run) and reuses those bytes for every later task: a function defined in
``__main__`` (or a lambda, a closure) pickles by value, which costs more
than a no-op task's whole round trip otherwise. So the globals and closure
values such a function captured are those of its first ``run``.

On the wire the pickled (callable, args, kwargs) of ``py.call`` holds the
function as a call of :func:`load` with the function's own pickled bytes;
the runtime keeps what it loaded under those bytes (a digest of them when
large) in a bounded LRU, so a worker unpickles each function once, not once per task. The key
is computed by the loading process from the bytes themselves: a caller
cannot make it run another caller's function.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import types
import weakref
from typing import Any

import cloudpickle

MAX_LOADED = 256  # functions a process keeps loaded, least recently used dropped first
SMALL = 4096  # bytes: a pickled function up to this size is its own cache key


class Exported:
    """A function's pickled bytes; pickles as a call of :func:`load`."""

    __slots__ = ("blob", "noargs", "__weakref__")

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.noargs: bytes | None = None  # the whole encoded call without arguments, once built

    def __reduce__(self) -> Any:
        return (load, (self.blob,))


_exports: weakref.WeakKeyDictionary[Any, Exported] = weakref.WeakKeyDictionary()
_exports_mu = threading.Lock()


def export(fn: Any) -> Exported | None:
    """fn's export (pickled on first use), or None when fn is not a plain
    function (a bound method, a partial, a callable object: their state may
    change between calls, so they are pickled with every call)."""
    if type(fn) is not types.FunctionType:
        return None
    try:
        return _exports[fn]
    except KeyError:
        pass
    ex = Exported(cloudpickle.dumps(fn))
    with _exports_mu:
        return _exports.setdefault(fn, ex)


_loaded: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
_loaded_mu = threading.Lock()


def load(blob: bytes) -> Any:
    """The function pickled in blob, unpickled once per process while it
    stays among the MAX_LOADED most recently used."""
    # A small function's bytes are their own key (hashing them is cheaper
    # than a digest); a large one's, a digest (not kept twice).
    # (a pickle never starts with a zero byte, so the two kinds never meet).
    key = blob if len(blob) <= SMALL else b"\0" + hashlib.blake2b(blob, digest_size=16).digest()
    with _loaded_mu:
        fn = _loaded.get(key)
        if fn is not None:
            _loaded.move_to_end(key)
            return fn
    fn = cloudpickle.loads(blob)
    with _loaded_mu:
        _loaded[key] = fn
        while len(_loaded) > MAX_LOADED:
            _loaded.popitem(last=False)
    return fn
