"""The runtime's main loop: read a frame, run it, answer it."""

from __future__ import annotations

import faulthandler
import io
import os
import platform
import struct
import sys
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cbor2
import cloudpickle

from .. import _codec, _decorators, _marin_actor
from .._decorators import PY_CALL, PY_OBJECT
from ..errors import PickleFailed, StopActor

PROTOCOL_VERSION = 1
MAX_FRAME = 1 << 30
IN_FD, OUT_FD = 3, 4
_PICKLE_HEAD = b"\xda" + _codec.PICKLE_TAG.to_bytes(4, "big")
_HDR = struct.Struct(">I")
_NULL = b"\xf6"  # CBOR null


class _Pipe:
    """Frames in from fd 3, out to fd 4: one read and one write per frame."""

    def __init__(self) -> None:
        self.rf = open(IN_FD, "rb", buffering=1 << 16)  # noqa: SIM115 - lives as long as the process
        self.wlock = threading.Lock()
        self.held: list[dict[str, Any]] = []  # frames read while waiting for a fetch answer
        self.fetch_id = 0

    def read(self) -> dict[str, Any] | None:
        if self.held:
            return self.held.pop(0)
        return self._read()

    def _read(self) -> dict[str, Any] | None:
        hdr = self.rf.read(4)
        if len(hdr) < 4:
            return None  # the worker closed the pipe: it is gone
        (n,) = _HDR.unpack(hdr)
        if n > MAX_FRAME:
            raise RuntimeError(f"frame of {n} bytes over the {MAX_FRAME}-byte limit")
        body = self.rf.read(n)
        if len(body) < n:
            return None
        return cbor2.loads(body)

    def write(self, frame: dict[str, Any]) -> None:
        body = cbor2.dumps(frame)
        data = _HDR.pack(len(body)) + body
        with self.wlock:
            n = os.write(OUT_FD, data)
            if n < len(data):  # a frame over the pipe's capacity
                view = memoryview(data)[n:]
                while view:
                    view = view[os.write(OUT_FD, view) :]

    def fetch(self, ref: _codec.Ref) -> Any:
        """Read object ref's value through the worker (which reads the object
        store). Only the thread running a task calls this."""
        self.fetch_id += 1
        fid = self.fetch_id
        self.write({"t": "fetch", "id": fid, "ref": ref.to_wire()})
        while True:
            f = self._read()
            if f is None:
                os._exit(0)
            if f.get("t") == "object" and f.get("id") == fid:
                err = f.get("error")
                if err:
                    raise RuntimeError(f"frayhq: cannot read object {ref}: {err.get('message')}")
                return _codec.loads(f.get("value", b""), what=f"object {ref}")
            self.held.append(f)


_local = threading.local()  # .id: the request the current thread serves
# (stream, thread) pairs holding the start of a line not yet ended: while
# there are none, a request's answer needs no flush before it.
_partial: set[tuple[str, int]] = set()


# A printed line over MAX_LINE bytes (UTF-8) is sent cut, before a
# character that would straddle the limit, and marked; the rest of it up to
# its newline is dropped (the worker cuts a line on fds 1 and 2 so too).
MAX_LINE = 1 << 20
_MARK = " …[truncated]"


class _Unended:
    """A thread's text after its last newline on one stream: b, n bytes of
    UTF-8, cut once over MAX_LINE."""

    __slots__ = ("b", "cut", "n")

    def __init__(self) -> None:
        self.b, self.n, self.cut = "", 0, False

    def add(self, s: str) -> None:
        if self.cut or not s:
            return
        self.b += s
        self.n += len(s.encode("utf-8", "replace"))
        if self.n > MAX_LINE:
            self.b = self.b.encode("utf-8", "replace")[:MAX_LINE].decode("utf-8", "ignore") + _MARK
            self.cut = True

    def take(self) -> str:
        """The text, now a line; none is held any more."""
        b = self.b
        self.b, self.n, self.cut = "", 0, False
        return b


class _FrameStream(io.TextIOBase):
    """sys.stdout / sys.stderr: each line printed goes to the worker's log
    in a log frame, tagged with the request the printing thread serves."""

    def __init__(self, pipe: _Pipe, name: str) -> None:
        self.pipe, self.stream = pipe, name
        self.bufs = threading.local()  # .u: the thread's _Unended
        # Every thread's _Unended that holds text, so that the process's
        # end sends the lines of threads that never end them (end_all).
        self.unended: set[_Unended] = set()

    def _mine(self) -> _Unended:
        u = getattr(self.bufs, "u", None)
        if u is None:
            u = self.bufs.u = _Unended()
        return u

    encoding = "utf-8"
    errors = "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        # Code that writes to the descriptor itself reaches the worker's log
        # too, as the process's own output.
        return 1 if self.stream == "stdout" else 2

    def write(self, s: str) -> int:
        u = self._mine()
        first, *rest = s.split("\n")
        u.add(first)
        if rest:
            rid = getattr(_local, "id", 0)
            for piece in rest:  # each follows a newline, which ends the held line
                line = u.take()
                if line.endswith("\r"):  # CR LF ends a line as LF does
                    line = line[:-1]
                self.pipe.write({"t": "log", "id": rid, "stream": self.stream, "line": line})
                u.add(piece)
        if u.b:
            self.unended.add(u)
            _partial.add((self.stream, threading.get_ident()))
        else:
            self.unended.discard(u)
            _partial.discard((self.stream, threading.get_ident()))
        return len(s)

    def flush(self) -> None:
        """A line goes out once its newline is written: a flush in the
        middle of one (print(..., end="", flush=True)) leaves it whole. The
        runtime sends the unended line at the request's end (end_line)."""

    def end_line(self) -> None:
        """Send the calling thread's unended line, if any, as a line."""
        u = self._mine()
        if u.b:
            buf = u.take()
            self.unended.discard(u)
            _partial.discard((self.stream, threading.get_ident()))
            self.pipe.write({"t": "log", "id": getattr(_local, "id", 0), "stream": self.stream, "line": buf})

    def end_all(self) -> None:
        """The output ends (the process does): send every thread's unended
        line, the calling thread's for its request, the others' for none."""
        self.end_line()
        for u in list(self.unended):
            buf = u.take()
            self.unended.discard(u)
            if buf:
                self.pipe.write({"t": "log", "id": 0, "stream": self.stream, "line": buf})


def _type_name(e: BaseException) -> str:
    t = type(e)
    return f"{t.__module__}.{t.__qualname__}"


def _error(e: BaseException) -> dict[str, Any]:
    """The error map of a frame: type, message, traceback (without the
    runtime's own leading frames) and the pickled exception."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    out: dict[str, Any] = {
        "type": _type_name(e),
        "message": str(e),
        "traceback": "".join(traceback.format_exception(type(e), e, tb)),
    }
    try:
        out["exc"] = cloudpickle.dumps(e)
    except Exception:  # noqa: BLE001 - an unpicklable exception still travels by type, message, traceback
        pass
    return out


def _tagged(arg: bytes | None) -> bool:
    return arg is not None and arg[:5] == _PICKLE_HEAD


def _call_args(arg: bytes | None, what: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments a frame's argument stands for: a
    Python caller sends the tag wrapping (args, kwargs); any other caller
    one plain value, the single positional argument; none, no argument."""
    if arg is None or arg == _codec.NO_ARGS_WIRE:
        return (), {}
    v = _codec.loads(arg, what=what)
    if _tagged(arg):
        if (
            isinstance(v, tuple | list)
            and len(v) == 2
            and isinstance(v[0], tuple | list)
            and isinstance(v[1], dict)
        ):
            return tuple(v[0]), v[1]
    return (v,), {}


def _encode(value: Any, what: str) -> bytes:
    if value is None:
        return _NULL  # most tasks and methods return nothing: skip the encoder
    try:
        out = _codec.dumps(value)
        if len(out) > MAX_FRAME - 4096:
            raise ValueError(
                f"its encoding is {len(out)} bytes, over the {MAX_FRAME}-byte frame limit: "
                "put it in the object store and return the Ref"
            )
        return out
    except Exception as e:  # noqa: BLE001 - the caller gets the reason, naming the type
        t = type(value)
        raise PickleFailed(
            f"{what} returned a {t.__module__}.{t.__qualname__}, which cannot be sent back: {e}"
        ) from e


class Runtime:
    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe
        self.instance: Any = None
        self.pool: ThreadPoolExecutor | None = None
        self.out: Any = None  # the _FrameStreams main installed as sys.stdout and sys.stderr
        self.err: Any = None
        self.marin: Any = None  # marin-fray's ActorContext of the actor this process hosts
        self.failed: BaseException | None = None  # what that actor's fail() recorded

    # -- start -----------------------------------------------------------

    def hello(self, start: dict[str, Any]) -> bool:
        reply: dict[str, Any] = {
            "t": "hello",
            "v": PROTOCOL_VERSION,
            "lang": "python",
            "lang_version": platform.python_version(),
            "pid": os.getpid(),
        }
        if start.get("t") != "start" or start.get("v") != PROTOCOL_VERSION:
            reply["error"] = {
                "type": "fray.ProtocolError",
                "message": f"first frame {start.get('t')!r} version {start.get('v')!r}: "
                f"want start version {PROTOCOL_VERSION}",
            }
            self.pipe.write(reply)
            return False
        for p in reversed(start.get("paths") or []):
            sys.path.insert(0, p)
        for mod in start.get("imports") or []:
            try:
                __import__(mod)  # the C import path leaves importlib's frames out of a traceback
            except BaseException as e:  # noqa: BLE001 - reported to the worker, which exits 2
                err = _error(e)
                err["message"] = f"import {mod}: {err['message']}"
                err.pop("exc", None)
                reply["error"] = err
                self.pipe.write(reply)
                return False
        reply["functions"] = sorted(_decorators._TASKS) + [PY_CALL]
        reply["classes"] = [
            {"name": n, "methods": _decorators.public_methods(c)}
            for n, c in sorted(_decorators._ACTORS.items())
        ] + [{"name": PY_OBJECT, "methods": []}]
        self.pipe.write(reply)
        return True

    # -- tasks -----------------------------------------------------------

    def _answer(self, rid: int, body: Any, f: dict[str, Any]) -> None:
        """Serve request rid: body(f) returns the result frame's extra keys;
        any exception (SystemExit too) is the request's error."""
        _local.id = rid
        try:
            frame = body(f)
            if _partial or sys.stdout is not self.out or sys.stderr is not self.err:
                self._flush()
        except BaseException as e:  # noqa: BLE001 - every failure is the request's
            self._flush()
            frame = {"t": "error", "error": _error(e)}
        finally:
            _local.id = 0
        frame["id"] = rid
        self.pipe.write(frame)

    def run(self, f: dict[str, Any]) -> None:
        self._answer(f["id"], self._run, f)

    def _run(self, f: dict[str, Any]) -> dict[str, Any]:
        fn, arg = f.get("fn", ""), f.get("arg")
        if fn == PY_CALL:
            value = self._run_pickled(arg)
        else:
            func = _decorators._TASKS.get(fn)
            if func is None:
                raise LookupError(
                    f"no task function {fn!r} in this runtime (it has {sorted(_decorators._TASKS)})"
                )
            value = func(None if arg is None else _codec.loads(arg, what=f"argument of {fn}"))
        return {"t": "result", "value": _encode(value, f"task {fn}")}

    def _run_pickled(self, arg: bytes | None) -> Any:
        if not _tagged(arg):
            raise TypeError(f"{PY_CALL}: the argument must be the pickled (callable, args, kwargs)")
        fn, args, kwargs = _codec.loads(arg, what=f"argument of {PY_CALL}")  # type: ignore[arg-type]
        args = [self.pipe.fetch(a) if isinstance(a, _codec.Ref) else a for a in args]
        kwargs = {
            k: self.pipe.fetch(v) if isinstance(v, _codec.Ref) else v for k, v in (kwargs or {}).items()
        }
        return fn(*args, **kwargs)

    def _flush(self) -> None:
        # Streams the code put in place flush to wherever they go; the
        # runtime's own send the request's unended lines.
        sys.stdout.flush()
        sys.stderr.flush()
        for s in (self.out, self.err):
            if s is not None:
                s.end_line()

    def _end_output(self) -> None:
        """The process ends: its output too, every thread's unended line
        with it."""
        self._flush()
        for s in (self.out, self.err):
            if s is not None:
                s.end_all()

    # -- actors ----------------------------------------------------------

    def new(self, f: dict[str, Any]) -> None:
        self._answer(f["id"], self._new, f)

    def _new(self, f: dict[str, Any]) -> dict[str, Any]:
        cls_name = f.get("fn", "")
        info = f.get("actor") or {}
        if self.instance is not None:
            raise RuntimeError("this runtime process already hosts an actor")
        arg = f.get("arg")
        if cls_name == PY_OBJECT:
            if not _tagged(arg):
                raise TypeError(f"{PY_OBJECT}: the argument must be the pickled (class, args, kwargs)")
            cls, args, kwargs = _codec.loads(arg, what=f"argument of {PY_OBJECT}")  # type: ignore[arg-type]
            args, kwargs = tuple(args), dict(kwargs or {})
        else:
            cls = _decorators._ACTORS.get(cls_name)
            if cls is None:
                raise LookupError(
                    f"no actor class {cls_name!r} in this runtime (it has {sorted(_decorators._ACTORS)})"
                )
            args, kwargs = _call_args(arg, f"constructor argument of {cls_name}")
        conc = max(1, int(info.get("max_conc") or 1))
        if info.get("ns"):
            # This process hosts this one actor: its code's current_client()
            # (frayhq's and marin's) works in the actor's namespace.
            os.environ["FRAY_NAMESPACE"] = str(info["ns"])
        _decorators._set_current(
            _decorators.ActorContext(
                namespace=info.get("ns", ""),
                name=info.get("name", ""),
                class_name=cls_name,
                group=info.get("group", ""),
                index=int(info.get("index", -1)),
                epoch=int(info.get("epoch", 0)),
                host=info.get("host", ""),
                max_concurrency=conc,
            )
        )
        self.marin = _marin_actor.context(
            _marin_actor.LazyHandle(str(info.get("ns", "")), str(info.get("name", "")), cls_name),
            int(info.get("index", -1)),
            str(info.get("group") or info.get("name", "")),
        )
        if self.marin is not None:
            _marin_actor.install(self.marin)
        self.instance = cls(*args, **kwargs)
        if conc > 1:
            self.pool = ThreadPoolExecutor(max_workers=conc, thread_name_prefix="fray-actor")
        return {"t": "result", "value": b"\xf6", "methods": _decorators.public_methods(type(self.instance))}

    def call(self, f: dict[str, Any]) -> None:
        if self.pool is not None:
            self.pool.submit(self._call, f)
        else:
            self._call(f)

    def _call(self, f: dict[str, Any]) -> None:
        self._answer(f["id"], self._call_method, f)
        if self.failed is not None:
            # The call is answered; the actor fails as a crash does, so the
            # worker restarts it per its max_restarts.
            e = self.failed
            self.err.write("frayhq.runtime: the actor failed by its context's fail(): ")
            self.err.write("".join(traceback.format_exception(type(e), e, e.__traceback__)))
            self._end_output()
            os._exit(1)

    def _call_method(self, f: dict[str, Any]) -> dict[str, Any]:
        method = f.get("fn", "")
        if self.instance is None:
            raise RuntimeError("no actor constructed in this runtime process")
        m = getattr(self.instance, method, None) if not method.startswith("_") else None
        if m is None or not callable(m):
            raise AttributeError(f"actor has no method {method!r}")
        args, kwargs = _call_args(f.get("arg"), f"argument of {method}")
        try:
            value = m(*args, **kwargs)
        except StopActor as stop:
            # The caller gets the value; the worker then stops the actor
            # cleanly (Go's actors.ErrStop).
            return {"t": "result", "value": _encode(stop.value, f"method {method}"), "stop": True}
        out = {"t": "result", "value": _encode(value, f"method {method}")}
        end, err = _marin_actor.ended(self.marin)
        if end and err is None:
            out["stop"] = True  # marin's shutdown_event: the actor ends cleanly, as with StopActor
        elif end:
            self.failed = err  # marin's fail(exc): answered, then the process fails (restart policy)
        return out

    # -- loop ------------------------------------------------------------

    def serve(self) -> None:
        read, run, call = self.pipe.read, self.run, self.call
        while True:
            f = read()
            if f is None:
                return
            t = f.get("t")
            if t == "run":
                run(f)
            elif t == "call":
                call(f)
            elif t == "new":
                self.new(f)
            elif t == "stop":
                return
            elif t == "object":
                pass  # the answer to a fetch whose task is over
            else:
                print(f"frayhq.runtime: ignoring unknown frame type {t!r}", file=sys.__stderr__)


def main() -> None:
    faulthandler.enable(file=sys.__stderr__)  # a native crash leaves its stack on fd 2
    pipe = _Pipe()
    rt = Runtime(pipe)
    start = pipe.read()
    if start is None:
        return
    sys.stdout = rt.out = _FrameStream(pipe, "stdout")
    sys.stderr = rt.err = _FrameStream(pipe, "stderr")
    if not rt.hello(start):
        os._exit(1)
    # frayhq.current_client() and marin-fray's current_client() reach the
    # cluster that runs this process (connecting on first use).
    from .._context import install_lazy

    install_lazy()
    try:
        rt.serve()
    finally:
        rt._end_output()
    # Threads an actor's code started must not keep the process alive.
    os._exit(0)
