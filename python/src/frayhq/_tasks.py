"""Tasks from Python: Task records out, Result records back, futures.

Wire: PROTOCOL.md, "Tasks". A Python callable goes as reserved function
``py.call`` with the pickled (fn, args, kwargs) as its argument; a
registered function's name goes with one plain CBOR argument.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import heapq
import pickle
import time
from typing import TYPE_CHECKING, Any

import cbor2
import cloudpickle
import nats.errors
import nats.js.errors

from . import _codec, _fastpub, _fncache
from ._codec import PICKLE_TAG, Ref
from ._errinfo import task_error
from ._futures import SharedFuture, settle, token
from ._objects import INLINE_THRESHOLD
from .errors import (
    CancelledError,
    ConfigError,
    DecodeError,
    FrayError,
    NotFound,
    PermissionDenied,
    PickleFailed,
    UnknownFunction,
)
from .errors import TimeoutError as FrayTimeoutError

if TYPE_CHECKING:
    from .client import Client

PY_CALL = "py.call"
_DEFAULT_NS = "default"
# Version 2 task records leave the task's name to the message's
# Nats-Msg-Id header, "<owner>.<task id>", and max_deliveries to the
# workers' default (5) when it is that.
TASK_VERSION = 2
RESULT_VERSION = 1
TASKS_PREFIX = "fray.tasks."
RESULTS_STREAM = "FRAY_RESULTS"
CANCELS_BUCKET = "FRAY_CANCELS"
_RETRY_PAUSES = (0.25, 0.5, 1, 2, 4)
LOOKUPS_PER_SWEEP = 100  # safety-net result lookups per half second, at most
MAX_UNACKED = 4096  # task messages awaiting their PubAck, at most


class QueueFull(FrayError):
    """The task queue (or the server's JetStream storage) is full; nothing was queued."""


class Future(SharedFuture):
    """A task's result, usable with concurrent.futures.wait / as_completed.

    ``id`` is "<owner>.<task-id>": any process can wait on it with
    ``client.future(id)`` while the result is kept (24 h by default).
    """

    def __init__(self, client: Client, owner: str, task_id: str, fn: str = "", pool: str = "") -> None:
        SharedFuture.__init__(self)
        self._client = client
        self._owner = owner
        self._task_id = task_id
        self._fn = fn
        self._pool = pool  # "" when not submitted by this client

    @property
    def id(self) -> str:
        return f"{self._owner}.{self._task_id}"

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except concurrent.futures.CancelledError:
            raise CancelledError(f"frayhq: task {self.id} was cancelled") from None
        except concurrent.futures.TimeoutError:
            if self.done():
                raise
            hint = self._client._workers.idle_hint(self._pool) if self._pool else ""  # noqa: SLF001
            raise FrayTimeoutError(f"frayhq: task {self.id} not finished within {timeout} s{hint}") from None

    def cancel(self) -> bool:
        """Cancel the task: a queued one never starts, a running one's context is cancelled."""
        if not super().cancel():
            return False
        self._client._tasks.cancel(self)  # noqa: SLF001
        return True

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<frayhq.Future {self.id} {self._fn} {state}>"

    def __reduce__(self) -> Any:
        return (_future_from_id, (self.id,))


def _future_from_id(fid: str) -> Future:
    from .client import current_client

    return current_client().future(fid)


def _pickle_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    try:
        return cloudpickle.dumps((fn, args, kwargs))
    except Exception as e:  # noqa: BLE001 - find the culprit to name it
        for i, a in enumerate((fn, *args, *kwargs.values())):
            try:
                cloudpickle.dumps(a)
            except Exception:  # noqa: BLE001
                what = "the function" if i == 0 else f"argument {_arg_name(i - 1, args, kwargs)}"
                raise PickleFailed(f"frayhq: cannot pickle {what}: {_codec._describe(a)}: {e}") from e  # noqa: SLF001
        raise PickleFailed(f"frayhq: cannot pickle the call of {fn!r}: {e}") from e


def _arg_name(i: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if i < len(args):
        return f"#{i}"
    return repr(list(kwargs)[i - len(args)])


def _export(fn: Any) -> _fncache.Exported | None:
    try:
        return _fncache.export(fn)
    except Exception as e:  # noqa: BLE001 - name the culprit, as for any pickling failure
        raise PickleFailed(f"frayhq: cannot pickle the function: {_codec._describe(fn)}: {e}") from e  # noqa: SLF001


# The task record's keys in CBOR's canonical (length-first, then bytewise)
# order: a dict built in this order encodes canonically without cbor2's
# sorting, which costs several times the encoding itself.
_TASK_KEYS = ("v", "fn", "arg", "retries", "timeout_ms", "submitted_ms", "max_deliveries")


def encode_task(rec: dict[str, Any]) -> bytes:
    """The Task record rec (scalar values) as canonical CBOR."""
    ordered = {k: rec[k] for k in _TASK_KEYS if k in rec}
    if len(ordered) != len(rec):  # a key this order does not know: let cbor2 sort
        return _codec.dumps_plain(rec)
    return cbor2.dumps(ordered)


def encode_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, export: bool = False) -> bytes:
    """The py.call argument: CBOR tag PICKLE_TAG around pickled (fn, args, kwargs).

    With export, a plain function is pickled once per process and stands in
    the call as a call of _fncache.load (see _fncache): tasks. Jobs pickle
    their callable afresh each time.
    """
    if export:
        ex = _export(fn)
        if ex is not None:
            if args or kwargs:
                if _codec.plain_args(args, kwargs):
                    # Plain values pickle the same way without cloudpickle's
                    # Python-level pickler, which costs several times more.
                    return cbor2.dumps(cbor2.CBORTag(PICKLE_TAG, pickle.dumps((ex, args, kwargs), 5)))
                return cbor2.dumps(cbor2.CBORTag(PICKLE_TAG, _pickle_call(ex, args, kwargs)))
            if ex.noargs is None:
                ex.noargs = cbor2.dumps(cbor2.CBORTag(PICKLE_TAG, _pickle_call(ex, (), {})))
            return ex.noargs
    return cbor2.dumps(cbor2.CBORTag(PICKLE_TAG, _pickle_call(fn, args, kwargs)))


class Tasks:
    """The client's task machinery; lives on the client's event loop."""

    def __init__(self, client: Client, owner: str | None = None) -> None:
        self.c = client
        # Every task's Nats-Msg-Id names it, the fast path's header block
        # below too: fixed here, never changed after.
        # A fresh owner is 12 characters, as a Go producer's: with a task id
        # of 22, a task's header block stays under 64 bytes.
        self.owner = owner or token()
        self.pending: dict[str, Future] = {}
        self._checks: list[tuple[float, str, float]] = []  # (due, task id, interval)
        self._foreign_subs: dict[str, Any] = {}
        self._outq: collections.deque[tuple[str, str, bytes]] = collections.deque()
        self._kicked = False  # a _kick is scheduled and has not started
        self._draining = False  # a _drain task is publishing
        self._unacked: dict[str, tuple[float, str, bytes]] = {}
        self._room = asyncio.Event()  # set while _unacked is under MAX_UNACKED
        self._room.set()
        self._ack_prefix = ""
        # A task's header block, up to its id.
        self._hdr_head = f"NATS/1.0\r\nNats-Msg-Id: {self.owner}.".encode()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        nc = self.c.nc
        await _fastpub.subscribe_direct(nc, f"fray.stored.{self.owner}.*", self._on_stored)
        # PubAcks of the fast path come to <inbox>.<task id>: one
        # subscription for all, no future, timer or random token per task.
        self._ack_prefix = nc.new_inbox() + "."
        await _fastpub.subscribe_direct(nc, self._ack_prefix + "*", self._on_puback)

        async def on_election(_msg: Any) -> None:
            # A leader that stepped down between storing and republishing
            # leaves results unannounced: look them up, as after a reconnect.
            await self.recheck_all()

        await nc.subscribe("$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.FRAY_RESULTS", cb=on_election)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    # ---- submitting

    def submit(
        self,
        fn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        pool: str,
        retries: int,
        timeout: float | None,
    ) -> Future:
        if isinstance(fn, str):
            name = fn
            if kwargs or len(args) > 1:
                raise ConfigError(
                    f"frayhq: run({fn!r}, ...): a registered function takes one argument, "
                    f"got {len(args)} positional and {len(kwargs)} keyword arguments"
                )
            arg = _codec.dumps(args[0]) if args else None
        elif callable(fn):
            name = PY_CALL
            if self.c.namespace != _DEFAULT_NS:
                from ._context import NamespacedCall

                fn = NamespacedCall(_export(fn) or fn, self.c.namespace)
            arg = encode_call(fn, args, kwargs, export=True)
        else:
            raise TypeError(f"frayhq: run() wants a callable or a function name, got {_codec._describe(fn)}")  # noqa: SLF001
        _check_pool(pool)
        if retries < 0:
            raise ConfigError(f"frayhq: retries={retries}: want >= 0")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"frayhq: timeout={timeout}: want > 0 seconds")
        self.c._workers.check_function(pool, name)  # noqa: SLF001
        tid = self.c._nuid()  # noqa: SLF001
        fut = Future(self.c, self.owner, tid, name, pool)
        rec: dict[str, Any] = {"v": TASK_VERSION, "fn": name, "submitted_ms": int(time.time() * 1000)}
        if timeout:
            rec["timeout_ms"] = int(timeout * 1000)
        if retries:
            rec["retries"] = retries
        self.pending[tid] = fut
        if arg is not None and len(arg) > INLINE_THRESHOLD:
            # The argument goes to the object store first: the slow path.
            self.c._loop.call_soon(self._send_soon, pool, tid, rec, arg)  # noqa: SLF001
            return fut
        if arg is not None:
            rec["arg"] = arg
        self._outq.append((TASKS_PREFIX + pool, tid, encode_task(rec)))
        if not self._kicked:
            self._kicked = True
            self.c._loop.call_soon(self._kick)  # noqa: SLF001
        return fut

    def _send_soon(self, pool: str, tid: str, rec: dict[str, Any], arg: bytes | None) -> None:
        asyncio.get_running_loop().create_task(self._send(pool, tid, rec, arg))

    def _kick(self) -> None:
        """The fast path: publish the queued tasks in this loop turn, the
        PubAcks handled by callbacks. When one must wait (the PubAck window
        is full, nats-py has commands queued) the rest go on in _drain."""
        # Down before the queue empties: a task queued after the last pop
        # schedules another kick.
        self._kicked = False
        if self._draining:
            return  # _drain takes them, and kicks again when it ends
        outq, pub = self._outq, self.c._pub  # noqa: SLF001
        while outq:
            if len(self._unacked) >= MAX_UNACKED:
                break
            subject, tid, body = outq[0]  # other threads only append
            hdr = self._header(tid)
            self._unacked[tid] = (time.monotonic(), subject, body)
            try:
                sent = pub.publish(subject, body, self._ack_prefix + tid, hdr)
            except Exception:  # noqa: BLE001 - _drain's publish says what went wrong
                sent = False
            if not sent:
                self._unacked.pop(tid, None)
                break
            outq.popleft()
        else:
            return
        self._draining = True
        asyncio.get_running_loop().create_task(self._drain())

    def _header(self, tid: str) -> bytes:
        """Task tid's NATS header block: its one header, Nats-Msg-Id (the
        stream's deduplication id), names it: "<owner>.<task id>"."""
        return self._hdr_head + tid.encode() + b"\r\n\r\n"

    def _msg_id(self, tid: str) -> dict[str, str]:
        """Task tid's headers, for nats-py's publish."""
        return {"Nats-Msg-Id": f"{self.owner}.{tid}"}

    async def _drain(self) -> None:
        """The rest of a kick's queue, waiting for room in the PubAck window
        (through nats-py when its queue is not empty); a refused or
        unanswered task goes through _publish's retries."""
        nc = self.c.nc
        try:
            while self._outq:
                if len(self._unacked) >= MAX_UNACKED:
                    self._room.clear()
                    await self._room.wait()
                    continue
                subject, tid, body = self._outq.popleft()
                self._unacked[tid] = (time.monotonic(), subject, body)
                reply = self._ack_prefix + tid
                try:
                    hdr = self._header(tid)
                    if not self.c._pub.publish(subject, body, reply, hdr):  # noqa: SLF001
                        await nc.publish(subject, body, reply=reply, headers=self._msg_id(tid))
                except Exception:  # noqa: BLE001 - the slow path says what went wrong
                    self._unacked.pop(tid, None)
                    self._retry(subject, tid, body)
        finally:
            self._draining = False
            if self._outq:  # appended after the loop ended
                self._kick()

    def _on_puback(self, msg: Any) -> None:
        tid = msg.subject[len(self._ack_prefix) :]
        sent = self._unacked.pop(tid, None)
        if len(self._unacked) < MAX_UNACKED:
            self._room.set()
        if sent is None:
            return
        data = msg.data
        # A PubAck is a JSON object naming the stream; an error, or an
        # empty no-responders status, goes through _publish's retries,
        # which say what went wrong.
        if not data or b'"error"' in data:
            self._retry(sent[1], tid, sent[2])
            return
        heapq.heappush(self._checks, (time.monotonic() + 5, tid, 5.0))

    def _retry(self, subject: str, tid: str, body: bytes) -> None:
        async def again() -> None:
            fut = self.pending.get(tid)
            if fut is None:
                return
            try:
                await self._publish(subject, body, self._msg_id(tid), what=f"task {tid}")
                heapq.heappush(self._checks, (time.monotonic() + 5, tid, 5.0))
            except Exception as e:  # noqa: BLE001 - the future carries it
                self.pending.pop(tid, None)
                settle(fut, exc=e)

        asyncio.get_running_loop().create_task(again())

    async def _send(self, pool: str, tid: str, rec: dict[str, Any], arg: bytes | None) -> None:
        fut = self.pending.get(tid)
        if fut is None:
            return
        try:
            if arg is not None:
                if len(arg) > INLINE_THRESHOLD:
                    rec["arg_ref"] = (await self.c.objects.put_bytes(arg)).to_wire()
                else:
                    rec["arg"] = arg
            body = _codec.dumps_plain(rec)
            hdr = self._msg_id(tid)
            await self._publish(TASKS_PREFIX + pool, body, hdr, what=f"task {tid}")
            heapq.heappush(self._checks, (time.monotonic() + 5, tid, 5.0))
        except Exception as e:  # noqa: BLE001 - the future carries the failure
            self.pending.pop(tid, None)
            settle(fut, exc=e)

    async def _publish(self, subject: str, body: bytes, hdr: dict[str, str], what: str) -> None:
        async with self.c.perms.guard(subject):
            await self._publish_retrying(subject, body, hdr, what)

    def denied(self, e: PermissionDenied) -> None:
        """The server refused a publish: the tasks sent there and not yet
        acknowledged fail at once (no PubAck will come)."""
        if e.op != "publish" or not e.subject.lower().startswith(TASKS_PREFIX):
            return
        for tid, (_, subject, _) in list(self._unacked.items()):
            if subject.lower() == e.subject.lower():  # nats-py lowercases the report
                self._unacked.pop(tid, None)
                fut = self.pending.pop(tid, None)
                if fut is not None:
                    settle(fut, exc=PermissionDenied(e.user, e.op, subject))

    async def _publish_retrying(self, subject: str, body: bytes, hdr: dict[str, str], what: str) -> None:
        js = self.c.js
        last: Exception | None = None
        for pause in (*_RETRY_PAUSES, None):
            try:
                # A request, not publish_async: nats-py 2.16 never completes
                # a publish_async future whose PubAck is an error.
                await js.publish(subject, body, timeout=30, headers=dict(hdr))
                return
            except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError, TimeoutError) as e:
                last = e
            except nats.js.errors.APIError as e:
                d = (e.description or "").lower()
                if any(
                    s in d
                    for s in (
                        "maximum bytes exceeded",
                        "maximum messages exceeded",
                        "resource limits exceeded",
                        "insufficient resources",
                    )
                ):
                    raise QueueFull(
                        f"frayhq: {what}: the task queue is full ({e.description}); nothing was queued"
                    ) from None
                if "temporarily unavailable" not in d:
                    raise FrayError(f"frayhq: {what}: the broker refused it: {e.description}") from None
                last = e
            if pause is None:
                break
            await asyncio.sleep(pause)
        raise FrayError(f"frayhq: {what}: no JetStream answered after 6 tries ({last!r}); is the broker up?")

    # ---- results

    def _on_stored(self, msg: Any) -> None:
        tid = msg.subject.rsplit(".", 1)[-1]
        fut = self.pending.pop(tid, None)
        if fut is None or fut.done():
            return
        # An inline value settles the future here; one in the object store
        # is read by a task.
        try:
            rec = self._result_record(msg.data, fut.id)
            if "value_ref" in rec:
                asyncio.get_running_loop().create_task(self._resolve(fut, msg.data))
                return
            value = self._inline_value(rec, fut.id)
        except BaseException as e:  # noqa: BLE001 - the future carries it
            settle(fut, exc=e)
            return
        settle(fut, value)

    async def _resolve(self, fut: Future, data: bytes) -> None:
        if fut.done():
            return
        try:
            value = await self.decode_result(data, fut.id)
        except BaseException as e:  # noqa: BLE001 - the future carries it
            settle(fut, exc=e)
            return
        settle(fut, value)

    async def decode_result(self, data: bytes, fid: str) -> Any:
        rec = self._result_record(data, fid)
        if "value_ref" in rec:
            ref = Ref.from_wire(rec["value_ref"])
            raw = await self.c.objects.get_bytes(ref)
            return _codec.loads(raw, f"result value of task {fid}")
        return self._inline_value(rec, fid)

    @staticmethod
    def _result_record(data: bytes, fid: str) -> dict[str, Any]:
        """The result record in data; raises the task's error when it failed."""
        rec = _codec.loads_plain(data, f"result record of task {fid}")
        if not isinstance(rec, dict):
            raise DecodeError(
                f"frayhq: result record of task {fid}: want a CBOR map, got {type(rec).__name__}"
            )
        if rec.get("v") != RESULT_VERSION:
            raise DecodeError(
                f"frayhq: result record of task {fid}: version {rec.get('v')}, this frayhq reads {RESULT_VERSION}"
            )
        if rec.get("error"):
            raise task_error(rec["error"], fid)
        return rec

    @staticmethod
    def _inline_value(rec: dict[str, Any], fid: str) -> Any:
        raw = rec.get("value")
        if raw is None:
            return None
        if not isinstance(raw, bytes):
            raise DecodeError(
                f"frayhq: result record of task {fid}: value is a {type(raw).__name__}, not bytes"
            )
        return _codec.loads(raw, f"result value of task {fid}")

    async def lookup(self, owner: str, tid: str) -> bytes | None:
        # The subject's last message is its one result. Asked by subject
        # ($JS.API.DIRECT.GET.FRAY_RESULTS.<subject>, no body), so that fray
        # auth's roles can let a user read only its own owner's results.
        subject = f"fray.results.{owner}.{tid}"
        try:
            async with self.c.perms.guard(f"$JS.API.DIRECT.GET.{RESULTS_STREAM}.{subject}"):
                m = await self.c.js._jsm.get_msg(RESULTS_STREAM, subject=subject, direct=True)  # noqa: SLF001
        except nats.js.errors.NotFoundError:
            return None
        return m.data

    async def _check_one(self, tid: str) -> None:
        fut = self.pending.get(tid)
        if fut is None:
            return
        data = await self.lookup(self.owner, tid)
        if data is not None and self.pending.pop(tid, None) is not None:
            await self._resolve(fut, data)

    async def _sweep(self) -> None:
        """Safety net: look each future up 5 s after submission, then at doubling intervals up to a minute."""
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for tid, (sent, subject, body) in list(self._unacked.items()):
                if now - sent > 30 and self._unacked.pop(tid, None) is not None:
                    self._retry(subject, tid, body)
            if len(self._unacked) < MAX_UNACKED:
                self._room.set()  # PubAcks lost (a reconnect): the fast path goes on
            looked = 0
            while self._checks and self._checks[0][0] <= now:
                _, tid, every = heapq.heappop(self._checks)
                if tid not in self.pending:
                    continue
                if looked >= LOOKUPS_PER_SWEEP:
                    # A long queue: the lookups of the rest wait for the next
                    # sweeps rather than load the broker with thousands at once.
                    heapq.heappush(self._checks, (now + 0.5, tid, every))
                    break
                looked += 1
                try:
                    await self._check_one(tid)
                except Exception:  # noqa: BLE001 - next time
                    pass
                if tid in self.pending:
                    nxt = min(every * 2, 60.0)
                    heapq.heappush(self._checks, (now + nxt, tid, nxt))

    async def recheck_all(self) -> None:
        """After a reconnect: results stored meanwhile reached no subscriber."""
        for tid in list(self.pending):
            fut = self.pending.get(tid)
            if fut is None:
                continue
            owner = fut._owner  # noqa: SLF001
            try:
                data = await self.lookup(owner, tid)
            except Exception:  # noqa: BLE001
                continue
            if data is not None and self.pending.pop(tid, None) is not None:
                await self._resolve(fut, data)

    # ---- futures by id

    def future(self, fid: str) -> Future:
        owner, sep, tid = fid.partition(".")
        if not sep or not owner or not tid or "." in tid:
            raise ConfigError(f"frayhq: future id {fid!r}: want <owner>.<task-id>")
        if owner == self.owner and tid in self.pending:
            return self.pending[tid]
        fut = Future(self.c, owner, tid)
        self.c._loop.run(self._watch_foreign(fut))  # noqa: SLF001
        return fut

    async def _watch_foreign(self, fut: Future) -> None:
        owner, tid = fut._owner, fut._task_id  # noqa: SLF001
        key = f"{owner}.{tid}"

        async def on_msg(msg: Any) -> None:
            if self.pending.pop(tid, None) is fut:
                await self._resolve(fut, msg.data)
            await self._drop_foreign(key)

        if owner != self.owner:
            self._foreign_subs[key] = await self.c.nc.subscribe(f"fray.stored.{key}", cb=on_msg)
        self.pending[tid] = fut
        for pause in (0, 0.25):
            await asyncio.sleep(pause)
            data = await self.lookup(owner, tid)
            if data is not None:
                if self.pending.pop(tid, None) is fut:
                    await self._resolve(fut, data)
                await self._drop_foreign(key)
                return
        heapq.heappush(self._checks, (time.monotonic() + 5, tid, 5.0))

    async def _drop_foreign(self, key: str) -> None:
        sub = self._foreign_subs.pop(key, None)
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001
                pass

    # ---- cancelling

    def cancel(self, fut: Future) -> None:
        self.pending.pop(fut._task_id, None)  # noqa: SLF001
        self.c._loop.call_soon(self._cancel_soon, fut)  # noqa: SLF001

    def _cancel_soon(self, fut: Future) -> None:
        asyncio.get_running_loop().create_task(self._cancel(fut))

    async def _cancel(self, fut: Future) -> None:
        owner, tid = fut._owner, fut._task_id  # noqa: SLF001
        try:
            kv = await self.c.kv(CANCELS_BUCKET)
            await kv.put(tid, owner.encode())
            res = {
                "v": RESULT_VERSION,
                "id": tid,
                "error": {"kind": "cancelled", "fn": fut._fn, "message": "cancelled by the caller"},
            }  # noqa: SLF001
            try:
                await self.c.js.publish(f"fray.results.{owner}.{tid}", _codec.dumps_plain(res))
            except nats.js.errors.APIError:
                pass  # a result exists already
        except Exception:  # noqa: BLE001 - the local future is cancelled either way
            pass


_GOOD_POOLS: set[str] = set()  # pool names already checked


def _check_pool(pool: str) -> None:
    if type(pool) is not str or pool not in _GOOD_POOLS:
        _check_token("pool", pool)
        if len(_GOOD_POOLS) < 1024:
            _GOOD_POOLS.add(pool)


def _check_token(what: str, s: str) -> None:
    if not isinstance(s, str) or not s or len(s) > 128 or any(c in s for c in " \t\r\n.*>"):
        raise ConfigError(f"frayhq: {what} {s!r}: want 1-128 bytes without white space, '.', '*' or '>'")


def wait(
    futures: list[Any], num_returns: int = 1, timeout: float | None = None
) -> tuple[list[Any], list[Any]]:
    """ray.wait: block until num_returns of futures are done (or timeout);
    returns (ready, pending), each in input order."""
    futures = list(futures)
    if num_returns < 0 or num_returns > len(futures):
        raise ConfigError(f"frayhq: wait(num_returns={num_returns}) of {len(futures)} futures")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        done = [f for f in futures if f.done()]
        if len(done) >= num_returns:
            break
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        concurrent.futures.wait(
            [f for f in futures if not f.done()], timeout=left, return_when=concurrent.futures.FIRST_COMPLETED
        )
    ready_ids = {id(f) for f in [f for f in futures if f.done()][:num_returns]}
    return [f for f in futures if id(f) in ready_ids], [f for f in futures if id(f) not in ready_ids]


__all__ = ["Future", "NotFound", "QueueFull", "wait", "UnknownFunction"]
