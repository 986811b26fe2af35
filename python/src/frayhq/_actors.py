"""Named actors from Python: create, get, call, stop (PROTOCOL.md, "Actors").

A Python class goes as the reserved class ``py.object`` (the constructor
argument is the pickled (cls, args, kwargs); calls send pickled (args,
kwargs)), served by the Python runtime on the worker. A class registered in
Go (``fray.Counter``) is named by its string and called with plain values.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import pickle
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import cbor2
import cloudpickle
import nats.errors
import nats.js.errors

from . import _codec, _fastpub, _lane
from ._codec import PICKLE_TAG
from ._errinfo import actor_error
from ._futures import SharedFuture, settle
from ._workers import _quiet
from .errors import (
    ActorError,
    ActorExists,
    ActorUnavailableError,
    ConfigError,
    NoEligibleWorker,
    NotFound,
    PickleFailed,
    UnknownClass,
)
from .errors import ConnectionError as FrayConnectionError
from .errors import TimeoutError as FrayTimeoutError

if TYPE_CHECKING:
    from .client import Client

PY_OBJECT = "py.object"
BUCKET = "FRAY_ACTORS"
KV_PREFIX = f"$KV.{BUCKET}."
CALL_TIMEOUT = 60.0
PLACEMENT_TIMEOUT = 10.0
CONSTRUCT_TIMEOUT = 120.0
CLAIM_TTL = 30
TOMBSTONE_TTL = "60s"
TERMINAL = ("stopped", "dead")
_NAME_OK = __import__("re").compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")


async def kv_map(kv: Any, key: str, what: str) -> tuple[dict[str, Any] | None, int]:
    """The CBOR map at key and its revision; (None, 0) when absent or deleted."""
    try:
        e = await kv.get(key)
    except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError, nats.js.errors.NotFoundError):
        return None, 0
    if not e.value:
        return None, 0
    rec = _codec.loads_plain(e.value, what)
    if not isinstance(rec, dict):
        raise ActorError(f"frayhq: {what} is not a CBOR map")
    return rec, int(e.revision or 0)


def check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME_OK.fullmatch(name):
        raise ConfigError(f"frayhq: {what} {name!r}: want [A-Za-z0-9][A-Za-z0-9_-]*, at most 200 bytes")


def record_key(ns: str, name: str) -> str:
    return f"a.{ns}.{name}"


def standing_key(ns: str, name: str) -> str:
    return f"s.{ns}.{name}"


def _pickled(obj: Any, what: str) -> cbor2.CBORTag:
    try:
        return cbor2.CBORTag(PICKLE_TAG, cloudpickle.dumps(obj))
    except Exception as e:  # noqa: BLE001
        raise PickleFailed(f"frayhq: cannot pickle {what}: {e}") from e


def encode_args(python: bool, args: tuple[Any, ...], kwargs: dict[str, Any], what: str) -> Any:
    """The call (or constructor) argument as the record embeds it."""
    if python:
        if not args and not kwargs:
            return _codec.NO_ARGS
        if _codec.plain_args(args, kwargs):
            # Plain values pickle the same way without cloudpickle's
            # Python-level pickler, which costs several times more.
            return cbor2.CBORTag(PICKLE_TAG, pickle.dumps((args, kwargs), 5))
        return _pickled((args, kwargs), f"the arguments of {what}")
    if kwargs or len(args) > 1:
        raise ConfigError(
            f"frayhq: {what}: a Go actor method takes at most one argument, "
            f"got {len(args)} positional and {len(kwargs)} keyword arguments"
        )
    return args[0] if args else _ABSENT


_ABSENT = object()
_SETTLED = object()  # a call whose reply settled the caller's future already


def _result(data: bytes, where: str) -> Any:
    """The result in a call's reply; raises the error it carries."""
    reply = _codec.loads(data, f"reply of actor call {where}")
    if not isinstance(reply, dict):
        raise ActorError(f"frayhq: reply of actor call {where} is not a CBOR map")
    if reply.get("e"):
        raise actor_error(reply["e"], where)
    return reply.get("r")


def _settle(fut: ActorFuture, data: bytes, where: str) -> bool:
    """Settle fut from a call's reply; False (fut untouched) when the reply
    needs the call's own handling (it cannot be decoded)."""
    try:
        reply = _codec.loads(data, f"reply of actor call {where}")
    except Exception:  # noqa: BLE001 - the call's task reports it
        return False
    if not isinstance(reply, dict):
        return False
    if reply.get("e"):
        settle(fut, exc=actor_error(reply["e"], where))
    else:
        settle(fut, reply.get("r"))
    return True


_EAGER = sys.version_info >= (3, 12)  # _start runs a coroutine up to its first wait at once

if _EAGER:

    def _start(loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        """Run coro up to its first wait now (the call is published in this
        loop turn, not the next), then as a task."""
        asyncio.Task(coro, loop=loop, eager_start=True)

else:

    def _start(loop: asyncio.AbstractEventLoop, coro: Any) -> None:
        loop.create_task(coro)


def encode_call(method: str, arg: Any) -> bytes:
    """The call record {v, m, a} as canonical CBOR."""
    if arg is _ABSENT:
        return cbor2.dumps({"m": method, "v": 1})  # canonical order: by length, then bytewise
    if type(arg) is cbor2.CBORTag:  # a Python caller's pickled arguments: nothing to sort inside
        return cbor2.dumps({"a": arg, "m": method, "v": 1})
    return _codec.dumps({"v": 1, "m": method, "a": arg})


_UNSEEN = object()  # a waiting call's epoch before the sweep first read the record
_FALLBACK = object()  # a call the lane did not deliver: it goes the async way

LANE_HANDOVER = 0.4  # a call on the lane unanswered this long is watched by the sweep too
LANE_POLL = 0.05  # how often a watched call on the lane looks at its watch
LANE_PONG_WAIT = 5.0  # a lane that answers no PING within this, with a call waiting, has gone silent
LANE_PING_EVERY = 5.0  # how often the lane is pinged while a call waits on it
_ON_LANE = sys.maxsize  # the generation of a call on the lane: nats-py's barriers skip it

BARRIER_RESEND = 3.0  # a barrier unanswered this long is replaced by another
BARRIER_WAIT_MAX = 2.0  # the longest pause between barriers the actor refused (no responders)


class _Call:
    """A call waiting for its reply: what the sweep and the barriers need."""

    __slots__ = (
        "fut",
        "sent",
        "epoch",
        "gen",
        "subj",
        "body",
        "reply",
        "redelivered",
        "timer",
        "sub",
        "silent",
        "resending",
    )

    def __init__(
        self, fut: asyncio.Future[Any], sent: float, gen: int, subj: str, body: bytes, reply: str
    ) -> None:
        self.fut = fut
        self.sent = sent
        self.epoch: Any = _UNSEEN
        self.gen = gen  # the connection generation it was (last) sent in
        self.subj = subj
        self.body = body
        self.reply = reply
        self.redelivered = 0
        self.timer: asyncio.TimerHandle | None = None  # its deadline
        self.sub: Any = None  # a moved lane call's subscription to its reply subject on nats-py
        # Moved off a lane gone silent: its PUB may still be on its way, so
        # a barrier that does not see it running proves nothing: it is
        # never sent again.
        self.silent = False
        # Lost with its instance and waiting for a newer one to be sent to
        # (max_task_retries): the sweep leaves it be meanwhile.
        self.resending = False

    def resent(self, gen: int, sent: float) -> None:
        """Sent again (a barrier's redelivery) in connection generation gen
        at sent (the loop's clock): it goes to whichever instance serves now."""
        self.redelivered += 1
        self.gen = gen
        self.sent = sent

    def lost(self, rec: dict[str, Any] | None) -> str | None:
        """Why the call is lost, given the actor's record now ("" when it is
        not), learning on the way which epoch it went to: one whose record
        says it started before the call was (last) sent has it."""
        live = rec is not None and rec.get("state") not in (*TERMINAL, "failed", "restarting")
        if not live or rec is None:
            if rec is None:
                return " (its record expired)"
            if rec.get("state") == "restarting":
                return self._restarted(rec)
            err = rec.get("error")
            return f" ({rec.get('state')}: {err})" if err else f" ({rec.get('state')})"
        epoch, started = rec.get("epoch"), rec.get("started_ms")
        if rec.get("state") == "placing":
            # No instance started yet: look again once one is ready.
            return "" if self.epoch is _UNSEEN or epoch == self.epoch else self._restarted(rec)
        # When it was (last) sent, in Unix ms like started_ms: worked out
        # here, off the call's hot path, from the loop's clock.
        sent_ms = time.time() * 1000 - (time.monotonic() - self.sent) * 1000
        after = isinstance(started, int) and started <= sent_ms
        # An instance that is the actor's first (no restarts) had no earlier
        # one to take the call: it has it, whatever the clocks of its host
        # and of this process say (a host's clock ahead of ours would make a
        # call sent just after the start look older than the instance).
        first = not rec.get("restarts")
        if self.epoch is _UNSEEN and (after or first or not isinstance(started, int)):
            self.epoch = epoch
        elif after and isinstance(epoch, int) and isinstance(self.epoch, int) and epoch > self.epoch:
            self.epoch = epoch  # sent again after this instance started: it has the call
        # Otherwise a call sent before this instance started went to an
        # earlier one, which is gone (a restart as quick as the sweep), as
        # PROTOCOL.md says.
        return "" if epoch == self.epoch else self._restarted(rec)

    @staticmethod
    def _restarted(rec: dict[str, Any]) -> str:
        return f" (the actor restarted: now epoch {rec.get('epoch')}, restarts {rec.get('restarts', 0)})"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class ActorFuture(SharedFuture):
    """The result of an actor call (usable with concurrent.futures.wait)."""

    # A synchronous call (h.method(...)): its caller waits for it at once.
    sync = False
    # The actor (ns, name) while the call counts as outstanding (Actors.count).
    actor: tuple[str, str] | None = None

    def result(self, timeout: float | None = None) -> Any:
        try:
            return super().result(timeout)
        except concurrent.futures.TimeoutError:
            if self.done():
                raise
            raise FrayTimeoutError(f"frayhq: actor call not answered within {timeout} s") from None


class ActorMethod:
    def __init__(self, handle: ActorHandle, method: str) -> None:
        self._h = handle
        self._m = method

    def remote(self, *args: Any, **kwargs: Any) -> ActorFuture:
        """Call the method; returns a future at once."""
        return self._h._call(self._m, args, kwargs)  # noqa: SLF001

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method and wait for its result."""
        return self._h._call_sync(self._m, args, kwargs)  # noqa: SLF001

    def submit(self, *args: Any, **kwargs: Any) -> ActorFuture:
        """Run the method as a long-running operation (durable record, polled)."""
        return self._h._submit(self._m, args, kwargs)  # noqa: SLF001

    def __repr__(self) -> str:
        return f"<frayhq actor method {self._h.qualified_name}.{self._m}>"


class ActorHandle:
    """A handle to a named actor: ``h.method.remote(...)``, ``h.method(...)``.

    Handles pickle: they travel into tasks, jobs and other actors and bind
    to the current client where they land.
    """

    def __init__(self, namespace: str, name: str, class_name: str, client: Client | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.class_name = class_name
        self._client = client

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def is_python(self) -> bool:
        return self.class_name == PY_OBJECT

    def _c(self) -> Client:
        if self._client is None:
            from .client import current_client

            self._client = current_client()  # a handle that travelled here
        elif self._client._closed:  # noqa: SLF001
            # Its client was shut down: another live one may take over, but
            # none is made (connect() would start a new local cluster).
            from .client import live_client

            c = live_client()
            if c is None:
                raise FrayConnectionError(
                    f"frayhq: the client of actor handle {self.qualified_name} is shut down; "
                    "connect again and call get_actor"
                )
            self._client = c
        return self._client

    def __getattr__(self, method: str) -> ActorMethod:
        if method.startswith("__") and method.endswith("__"):
            raise AttributeError(method)
        return ActorMethod(self, method)

    def _call(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], sync: bool = False
    ) -> ActorFuture:
        c = self._c()
        arg = encode_args(self.is_python, args, kwargs, f"{self.qualified_name}.{method}")
        body = encode_call(method, arg)
        fut = ActorFuture()
        fut.sync = sync
        c._actors.enqueue(self, method, body, fut)  # noqa: SLF001
        return fut

    def _call_sync(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        c = self._c()
        arg = encode_args(self.is_python, args, kwargs, f"{self.qualified_name}.{method}")
        return c._actors.call_sync(self, method, encode_call(method, arg))  # noqa: SLF001

    def _submit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActorFuture:
        c = self._c()
        arg = encode_args(self.is_python, args, kwargs, f"{self.qualified_name}.{method}")
        fut = ActorFuture()
        c._actors.count(fut, self)  # noqa: SLF001
        c._loop.call_soon(c._actors.submit_soon, self, method, arg, fut)  # noqa: SLF001
        return fut

    def shutdown(self) -> None:
        """Stop the actor (a stopped tombstone, then stop on its control subject)."""
        c = self._c()
        c._run(c._actors.stop(self.namespace, self.name))  # noqa: SLF001

    def __reduce__(self) -> Any:
        return (ActorHandle, (self.namespace, self.name, self.class_name))

    def __repr__(self) -> str:
        return f"<frayhq.ActorHandle {self.qualified_name} ({self.class_name})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other.qualified_name == self.qualified_name

    def __hash__(self) -> int:
        return hash(self.qualified_name)


class Actors:
    """The client's actor machinery, on its event loop."""

    def __init__(self, client: Client) -> None:
        self.c = client
        self.kv: Any = None
        self.hosted: list[Any] = []

    async def start(self) -> None:
        self.kv = await self.c.kv(BUCKET)
        self._inbox = self.c.nc.new_inbox()
        self._replies: dict[str, asyncio.Future[Any]] = {}
        self._outers: dict[str, tuple[ActorFuture, str]] = {}  # token -> the caller's future, what it calls
        self._ntok = 0
        await _fastpub.subscribe_direct(self.c.nc, self._inbox + ".*", self._on_reply)
        self._calls: dict[tuple[str, str], dict[str, _Call]] = {}
        self._intake: collections.deque[tuple[ActorHandle, str, bytes, ActorFuture]] = collections.deque()
        self._kicked = False
        # The connection generation: the reconnects seen so far. A call of
        # an earlier one may have been lost with the connection; barriers
        # (one task per actor at a time) find out.
        self._gen = self._reconnects()
        self._barriers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_calls())
        # Calls enqueued and not yet settled, per actor: a synchronous call
        # takes the lane only when its actor has none (NATS keeps order per
        # connection; PROTOCOL.md, "Python client").
        self._out: dict[tuple[str, str], int] = {}
        self._out_mu = threading.Lock()
        self.lane = _lane.Lane(self.c.nc, self.c.nc.new_inbox())

    def _reconnects(self) -> int:
        return int(self.c.nc.stats.get("reconnects", 0))

    async def close(self) -> None:
        for h in list(self.hosted):
            try:
                await h.stop()
            except Exception:  # noqa: BLE001
                pass

    # ---- records

    async def get_record(self, ns: str, name: str) -> tuple[dict[str, Any] | None, int]:
        return await kv_map(self.kv, record_key(ns, name), f"actor record {ns}/{name}")

    async def _standing(self, ns: str, name: str) -> tuple[dict[str, Any] | None, int]:
        return await kv_map(self.kv, standing_key(ns, name), f"standing actor record {ns}/{name}")

    async def _marker_rev(self, key: str) -> int:
        """The revision of key's delete or purge marker, which a claim over
        a deleted record must expect (0 when the key holds nothing)."""
        try:
            e = await self.kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError) as err:
            entry = getattr(err, "entry", None)
            return int(entry.revision or 0) if entry is not None else 0
        except nats.js.errors.NotFoundError:
            return 0
        return int(e.revision or 0)

    async def kv_write(
        self,
        key: str,
        rec: dict[str, Any],
        last: int | None,
        ttl: str | None,
        extra: dict[str, str] | None = None,
    ) -> int:
        hdr: dict[str, str] = dict(extra or {})
        if last is not None:
            hdr["Nats-Expected-Last-Subject-Sequence"] = str(last)
        if ttl:
            hdr["Nats-TTL"] = ttl
        async with self.c.perms.guard(KV_PREFIX + key):
            ack = await self.c.js.publish(
                KV_PREFIX + key, _codec.dumps_plain(rec) if rec is not None else b"", headers=hdr or None
            )
        return int(ack.seq)

    # ---- create

    async def create(
        self,
        class_name: str,
        arg: Any,
        ns: str,
        name: str,
        *,
        nonpreempt: bool,
        max_conc: int,
        max_restarts: int,
        max_task_retries: int,
        detached: bool,
        get_if_exists: bool,
        group: str = "",
        index: int = -1,
        pool: str = "default",
    ) -> ActorHandle:
        import os

        key = record_key(ns, name)
        claim_last = 0  # the revision a claim expects: 0, or a deleted record's marker
        while True:
            rec: dict[str, Any] = {
                "v": 1,
                "ns": ns,
                "name": name,
                "class": class_name,
                "state": "placing",
                "epoch": 1,
                "max_conc": max_conc,
                "index": index,
                "calls": 0,
                "created_ms": int(time.time() * 1000),
            }
            if arg is not _ABSENT:
                rec["arg"] = arg
            if pool:
                rec["pool"] = pool
            if nonpreempt:
                rec["nonpreempt"] = True
            if max_restarts:
                rec["max_restarts"] = max_restarts
            if max_task_retries:
                rec["max_task_retries"] = max_task_retries
            if detached:
                rec["detached"] = True
            if job := os.environ.get("FRAY_JOB_ID"):
                rec["creator_job"] = job
            if group:
                rec["group"] = group
            try:
                rev = await self.kv_write(key, rec, claim_last, f"{int(PLACEMENT_TIMEOUT) + CLAIM_TTL}s")
            except nats.js.errors.APIError as e:
                if "wrong last sequence" not in (e.description or "").lower():
                    raise ActorError(f"frayhq: claim {ns}/{name}: {e.description}") from None
                cur, cur_rev = await self.get_record(ns, name)
                if cur is None:
                    # A deleted record leaves a marker: claim over it.
                    claim_last = await self._marker_rev(key)
                    continue
                if cur.get("state") in TERMINAL:
                    try:
                        await self.kv.delete(key, last=cur_rev)
                    except Exception:  # noqa: BLE001 - someone else did; claim again
                        pass
                    continue
                if cur.get("class") != class_name:
                    raise ActorExists(
                        f"frayhq: actor {ns}/{name} exists with class {cur.get('class')!r}, not {class_name!r}"
                    ) from None
                if not get_if_exists:
                    raise ActorExists(
                        f"frayhq: actor {ns}/{name} already exists (class {cur.get('class')!r}, "
                        f"state {cur.get('state')}); pass get_if_exists=True to use it"
                    ) from None
                if await self._wait_ready(ns, name) is None:
                    continue  # its creation failed and freed the name
                return ActorHandle(ns, name, class_name, self.c)
            try:
                await self._place(rec, rev, unknown_class_fails=True)
            except BaseException:
                try:
                    await self.kv.delete(key, last=rev)
                except Exception:  # noqa: BLE001 - a host took it over and freed it itself
                    pass
                raise
            return ActorHandle(ns, name, class_name, self.c)

    async def _wait_ready(self, ns: str, name: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + PLACEMENT_TIMEOUT + CONSTRUCT_TIMEOUT
        wait = 0.005
        while True:
            rec, _ = await self.get_record(ns, name)
            if rec is None or rec.get("state") in TERMINAL:
                return None
            if rec.get("state") == "ready":
                return rec
            if time.monotonic() > deadline:
                raise ActorUnavailableError(f"frayhq: actor {ns}/{name} not ready (state {rec.get('state')})")
            await asyncio.sleep(wait)
            wait = min(2 * wait, 0.1)

    async def _eligible(
        self, rec: dict[str, Any], tried: set[str]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        pool = rec.get("pool") or "default"
        live = await self.c._workers.list_pool(pool)  # noqa: SLF001
        cls = rec["class"]
        with_class = [w for w in live if cls in (w.get("actor_classes") or []) and not w.get("draining")]
        ok = with_class
        if rec.get("nonpreempt"):
            ok = [w for w in ok if (w.get("attrs") or {}).get("preemptible") == "false"]
        diag = {
            "pool": pool,
            "live": len(live),
            "with_class": len(with_class),
            "nonpreempt": len(ok),
            "classes": sorted({c for w in live for c in (w.get("actor_classes") or [])}),
        }
        return [w for w in ok if w.get("id") not in tried], diag

    async def _place(self, rec: dict[str, Any], rev: int, unknown_class_fails: bool) -> str:
        deadline = time.monotonic() + PLACEMENT_TIMEOUT
        tried: set[str] = set()
        wait = 0.02
        ns, name = rec["ns"], rec["name"]
        while True:
            cands, diag = await self._eligible(rec, tried)
            if unknown_class_fails and diag["live"] > 0 and diag["with_class"] == 0:
                raise UnknownClass(
                    f"frayhq: actor class {rec['class']!r}: no live worker of pool {diag['pool']!r} offers it "
                    f"(they offer: {', '.join(diag['classes']) or 'none'})"
                    + (
                        "; Python classes need workers started with the Python runtime (--python)"
                        if rec["class"] == PY_OBJECT
                        else ""
                    )
                )
            if cands:
                idx = rec.get("index", -1)
                w = cands[idx % len(cands)] if idx >= 0 else cands[int(time.monotonic_ns()) % len(cands)]
                wid = str(w.get("id"))
                tried.add(wid)
                req = {
                    "v": 1,
                    "op": "place",
                    "ns": ns,
                    "name": name,
                    "rev": rev,
                    "epoch": rec.get("epoch", 1),
                }
                subj = "fray.actor._host." + "".join("_" if (c in "*> " or ord(c) < 32) else c for c in wid)
                try:
                    msg = await self.c.nc.request(subj, _codec.dumps_plain(req), timeout=CONSTRUCT_TIMEOUT)
                except nats.errors.NoRespondersError:
                    # Registered but not subscribed yet (starting, or
                    # reconnecting): ask it again after a pause.
                    if time.monotonic() < deadline:
                        tried.discard(wid)
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, 0.5)
                    continue
                except nats.errors.TimeoutError:
                    raise ActorError(
                        f"frayhq: actor {ns}/{name}: worker {wid} did not answer the placement "
                        f"within {CONSTRUCT_TIMEOUT:.0f} s"
                    ) from None
                reply = _codec.loads(msg.data, f"placement reply for {ns}/{name}")
                e = reply.get("e") if isinstance(reply, dict) else None
                if e:
                    if isinstance(e, dict) and e.get("t") == "fray.UnknownClass":
                        raise UnknownClass(f"frayhq: actor {ns}/{name} on {wid}: {e.get('msg')}")
                    raise actor_error(e, f"frayhq: constructing actor {ns}/{name} on {wid}")
                return wid
            if time.monotonic() > deadline:
                why = (
                    f"{diag['live']} live workers in pool {diag['pool']!r}, {diag['with_class']} offer class "
                    f"{rec['class']!r}"
                )
                if rec.get("nonpreempt"):
                    why += f", {diag['nonpreempt']} of those have preemptible=false"
                raise NoEligibleWorker(
                    f"frayhq: no eligible worker for actor {ns}/{name} within "
                    f"{PLACEMENT_TIMEOUT:.0f} s: {why}"
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, 0.5)

    # ---- get

    async def get(self, ns: str, name: str) -> ActorHandle:
        rec, _ = await self.get_record(ns, name)
        if rec is None or rec.get("state") in TERMINAL:
            raise NotFound(f"frayhq: no live actor {ns}/{name}")
        return ActorHandle(ns, name, str(rec.get("class")), self.c)

    # ---- calls

    def count(self, fut: ActorFuture, h: ActorHandle) -> None:
        """Count fut's call as outstanding to h's actor until release(fut)
        (on the caller's thread, before the call is queued)."""
        key = fut.actor = (h.namespace, h.name)
        with self._out_mu:
            self._out[key] = self._out.get(key, 0) + 1

    def release(self, fut: ActorFuture) -> None:
        """The call of fut is answered (or over): once per count(), on the loop."""
        key = fut.actor
        if key is None:
            return
        fut.actor = None
        with self._out_mu:
            n = self._out[key] - 1
            if n:
                self._out[key] = n
            else:
                del self._out[key]

    def enqueue(self, h: ActorHandle, method: str, body: bytes, fut: ActorFuture) -> None:
        """Queue a call from any thread; the loop is woken once per burst."""
        self.count(fut, h)
        self._intake.append((h, method, body, fut))
        if self.c._closed:  # noqa: SLF001 - no loop will take it
            self.fail_queued()
            return
        if not self._kicked:
            self._kicked = True
            self.c._loop.call_soon(self._take)  # noqa: SLF001

    def fail_queued(self) -> None:
        """Fail the calls queued and not taken (the client shut down)."""
        while True:
            try:
                _, _, _, fut = self._intake.popleft()
            except IndexError:
                return
            if not fut.done():
                settle(fut, exc=FrayConnectionError("frayhq: the client is shut down"))

    def _take(self) -> None:
        # The flag drops before the queue is emptied: a call queued after
        # the last pop finds it down and wakes the loop again.
        self._kicked = False
        loop = asyncio.get_running_loop()
        intake = self._intake
        while intake:
            h, method, body, fut = intake.popleft()
            sent = None
            if _EAGER:
                # Sent now, before its task is made; the task, started
                # eagerly, registers it within this turn of the loop.
                try:
                    sent = self._send(f"fray.actor.{h.namespace}.{h.name}", body)
                except Exception:  # noqa: BLE001 - the task sends it again and reports
                    sent = None
            _start(loop, self._call(h, method, body, fut, sent))

    def _send(self, subj: str, body: bytes) -> tuple[str, str, bool]:
        """Publish a call on a new reply token: (token, reply subject,
        whether it went out; False: nats-py must send it)."""
        self._ntok += 1
        tok = _base36(self._ntok)
        reply = f"{self._inbox}.{tok}"
        return tok, reply, self.c._pub.publish(subj, body, reply)  # noqa: SLF001

    # ---- synchronous calls on the lane (_lane.py)

    def call_sync(self, h: ActorHandle, method: str, body: bytes) -> Any:
        """A synchronous call's result: on the lane when the call may take
        it, else (or when the lane did not deliver it) the async way."""
        if self.c._closed:  # noqa: SLF001
            raise FrayConnectionError("frayhq: the client is shut down")
        lane = self.lane
        if (
            lane.off
            # An earlier call of this client to the actor outstanding on
            # nats-py: this one could overtake it. (A read of the dict:
            # this thread's own count() is in it already.)
            or (h.namespace, h.name) in self._out
            or self.c._loop.in_loop()  # noqa: SLF001
            or not lane.lock.acquire(blocking=False)  # busy: another thread's call is on it
        ):
            return self._call_async(h, method, body)
        try:
            value = self._lane_call(lane, h, method, body)
        finally:
            lane.lock.release()
        if isinstance(value, _Call):
            value = self._wait_moved(value, h.namespace, h.name, method)
        if value is _FALLBACK:
            return self._call_async(h, method, body)
        return value

    def _call_async(self, h: ActorHandle, method: str, body: bytes) -> Any:
        fut = ActorFuture()
        fut.sync = True
        self.enqueue(h, method, body, fut)
        return fut.result()

    def _lane_call(self, lane: _lane.Lane, h: ActorHandle, method: str, body: bytes) -> Any:
        """The call on the lane: its result; _FALLBACK when it was not
        delivered (no responders, refused for permissions, nothing sent);
        or, when the lane's connection broke or went silent with the call
        in flight, the call moved to nats-py (_move) for the caller to wait
        on there (_wait_moved). A call not answered within LANE_HANDOVER is
        watched by the sweep (a dead instance, the deadline) as a call on
        nats-py is, but never by the barriers of nats-py's reconnects: it
        did not travel there."""
        if not lane.ready():
            return _FALLBACK
        ns, name = h.namespace, h.name
        subj = f"fray.actor.{ns}.{name}"
        tok = lane.send(subj, body)
        if tok is None:
            return _FALLBACK
        sent = time.monotonic()
        call: _Call | None = None
        loop = self.c._loop  # noqa: SLF001
        moved = False
        try:
            while True:
                left = sent + LANE_HANDOVER - time.monotonic() if call is None else LANE_POLL
                kind, data = lane.wait(tok, subj, left)
                if kind is _lane.REPLY:
                    return _result(data, f"{ns}/{name}.{method}")
                if kind is _lane.NO_RESPONDERS or kind is _lane.DENIED:
                    return _FALLBACK  # the async way retries, or reports the refusal
                if call is None:
                    call = _Call(loop.loop.create_future(), sent, _ON_LANE, subj, body, f"{lane.inbox}.{tok}")
                    loop.call_soon(self._watch_lane, ns, name, call)
                if kind is _lane.TIMEOUT:
                    if not lane.silent(LANE_PONG_WAIT):
                        if lane.ping_due(LANE_PING_EVERY):
                            lane.ping()  # a lane gone silent answers no PING
                        if call.fut.done():
                            raise call.fut.exception()  # type: ignore[misc] - the sweep or the deadline failed it
                        continue
                    lane.drop()
                    call.silent = True
                elif kind is _lane.DROPPED:
                    call.silent = True  # dropped by us: its PUB may still be on its way
                # Broken or silent: whatever it was, the call may be running.
                moved = True
                loop.call_soon(lambda c=call: asyncio.ensure_future(self._move(ns, name, c)))
                return call
        finally:
            if call is not None and not moved:
                loop.call_soon(self._unwatch_lane, ns, name, call)

    def _wait_moved(self, call: _Call, ns: str, name: str, method: str) -> Any:
        """The result of a lane call moved to nats-py (_move), waited for
        outside the lane's lock; _FALLBACK when its redelivery met no
        responders (it is then not running: made again the ordinary way)."""
        loop = self.c._loop  # noqa: SLF001
        try:
            while not call.fut.done():
                if self.lane.closed:
                    raise FrayConnectionError("frayhq: the client is shut down")
                time.sleep(LANE_POLL)
            msg = call.fut.result()
        finally:
            loop.call_soon(self._unwatch_lane, ns, name, call)
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            return _FALLBACK
        return _result(msg.data, f"{ns}/{name}.{method}")

    def _watch_lane(self, ns: str, name: str, call: _Call) -> None:
        left = CALL_TIMEOUT - (time.monotonic() - call.sent)
        self._watch(ns, name, call.reply, call, left)

    def _unwatch_lane(self, ns: str, name: str, call: _Call) -> None:
        """The caller is done with call (answered, failed or given up)."""
        self._unwatch(ns, name, call.reply, call)
        if not call.fut.done():
            call.fut.cancel()  # given up: a _move still to run sees it
        elif not call.fut.cancelled():
            call.fut.exception()  # seen by its caller, or answered as it failed
        sub = call.sub
        if sub is not None:
            call.sub = None
            asyncio.ensure_future(_quiet(_fastpub.unsubscribe_direct(self.c.nc, sub)))

    async def _move(self, ns: str, name: str, call: _Call) -> None:
        """A lane call whose connection broke (or went silent) in flight
        becomes a call on nats-py: its reply subject, on the lane's inbox,
        is subscribed there, and it counts as a call of an earlier
        connection, so that the sweep's next barrier, sent after that
        subscription on the same connection, finds out whether it is still
        running (its reply will come) or was lost (redelivered with the same
        reply subject, or failed), exactly as for a call on nats-py
        (PROTOCOL.md, actors: "Connection lost")."""
        fut = call.fut
        if fut.done():  # given up (or failed) before the move
            return

        def on_reply(msg: Any) -> None:
            if not fut.done():
                fut.set_result(msg)

        try:
            call.sub = await _fastpub.subscribe_direct(self.c.nc, call.reply, on_reply)
        except Exception as e:  # noqa: BLE001 - the client is closing
            if not fut.done():
                fut.set_exception(FrayConnectionError(f"frayhq: actor call to {ns}/{name}: {e}"))
            return
        if fut.done():  # unwatched meanwhile
            self._unwatch_lane(ns, name, call)
            return
        call.gen = -1  # older than any: the next sweep sends a barrier

    async def _call(
        self, h: ActorHandle, method: str, body: bytes, fut: ActorFuture, sent: tuple[str, str, bool] | None
    ) -> None:
        try:
            value = await self.call(h, method, body, outer=fut, sent=sent)
            self.release(fut)
            if value is not _SETTLED:
                settle(fut, value)
        except BaseException as e:  # noqa: BLE001 - the future carries it
            self.release(fut)
            settle(fut, exc=e)

    async def call(
        self,
        h: ActorHandle,
        method: str,
        body: bytes,
        timeout: float = CALL_TIMEOUT,
        outer: ActorFuture | None = None,
        sent: tuple[str, str, bool] | None = None,
    ) -> Any:
        """The method's result. With outer, the reply may settle outer as it
        arrives (see _on_reply); then this returns _SETTLED. With sent, the
        first attempt was published already (_send)."""
        ns, name = h.namespace, h.name
        subj = f"fray.actor.{ns}.{name}"
        where = f"{ns}/{name}.{method}"
        deadline = time.monotonic() + timeout
        wait = 0.01
        refused_epoch = None
        absent_since: float | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ActorUnavailableError(f"frayhq: actor call {where}: no answer within {timeout:.0f} s")
            try:
                # A pre-sent call serves the first attempt only: a retry
                # (after no responders) sends again.
                first, sent = sent, None
                msg = await self._request_watching(subj, body, left, ns, name, outer, where, first)
            except nats.errors.NoRespondersError:
                rec, _ = await self.get_record(ns, name)
                if rec is None:
                    now = time.monotonic()
                    absent_since = absent_since or now
                    standing, _ = await self._standing(ns, name)
                    limit = 3.0 if standing is None else 4 * (standing.get("lease_ms") or 10000) / 1000
                    if now - absent_since > limit:
                        raise ActorUnavailableError(
                            f"frayhq: actor {ns}/{name} not found (call {where})"
                        ) from None
                elif rec.get("state") in TERMINAL:
                    raise ActorUnavailableError(
                        f"frayhq: actor {ns}/{name} is {rec.get('state')}"
                        + (f": {rec.get('error')}" if rec.get("error") else "")
                    ) from None
                else:
                    absent_since = None
                    if (
                        rec.get("state") == "ready"
                        and rec.get("epoch") != refused_epoch
                        and refused_epoch is not None
                    ):
                        wait = 0.01
                    refused_epoch = rec.get("epoch")
                await asyncio.sleep(wait)
                wait = min(wait * 2, 0.2)
                continue
            if msg is _SETTLED:
                return _SETTLED
            return _result(msg.data, where)

    async def _request_watching(
        self,
        subj: str,
        body: bytes,
        left: float,
        ns: str,
        name: str,
        outer: ActorFuture | None = None,
        where: str = "",
        sent: tuple[str, str, bool] | None = None,
    ) -> Any:
        """A call request on the client's one reply inbox (``<inbox>.<token>``).
        A call still waiting after 500 ms is checked against the record by
        the sweep: if the instance running it ended (host died, actor
        stopped) it fails with ActorUnavailableError instead of waiting out
        its deadline."""
        loop = asyncio.get_running_loop()
        # Sent first (here, or before the call's task was made): what
        # follows runs while the call travels. Its reply, its refusal, a
        # reconnect are all handled on this loop, so none can come before
        # this turn ends, after the bookkeeping below.
        tok, reply, went = sent or self._send(subj, body)
        fut: asyncio.Future[Any] = loop.create_future()
        self._replies[tok] = fut
        if outer is not None:
            self._outers[tok] = (outer, where)
        call = _Call(fut, loop.time(), self._gen, subj, body, reply)
        self._watch(ns, name, tok, call, left)
        try:
            async with self.c.perms.guard(subj):  # a refused call fails at once
                if not went:
                    await self.c.nc.publish(subj, body, reply=reply)
                msg = await fut
        finally:
            self._replies.pop(tok, None)
            self._outers.pop(tok, None)
            self._unwatch(ns, name, tok, call)
        if msg is not _SETTLED and not msg.data and msg.headers and msg.headers.get("Status") == "503":
            raise nats.errors.NoRespondersError
        return msg

    def _watch(self, ns: str, name: str, tok: str, call: _Call, left: float) -> None:
        """Put a waiting call where the sweep and the barriers see it, with
        its deadline left seconds away (on the loop)."""
        self._calls.setdefault((ns, name), {})[tok] = call
        fut = call.fut

        def expire() -> None:
            if not fut.done():
                fut.set_exception(
                    ActorUnavailableError(f"frayhq: actor call to {ns}/{name}: no answer in time")
                )

        call.timer = asyncio.get_running_loop().call_later(left, expire)

    def _unwatch(self, ns: str, name: str, tok: str, call: _Call) -> None:
        calls = self._calls.get((ns, name))
        if calls is not None and calls.get(tok) is call:
            del calls[tok]
            if not calls:
                del self._calls[(ns, name)]
        if call.timer is not None:
            call.timer.cancel()

    def _on_reply(self, msg: Any) -> None:
        tok = msg.subject.rsplit(".", 1)[-1]
        fut = self._replies.pop(tok, None)
        if fut is None or fut.done():
            return
        outer = self._outers.pop(tok, None)
        if outer is not None and msg.data:
            # Answered: a later synchronous call may take the lane (before
            # the settle below wakes the caller).
            self.release(outer[0])
        if outer is not None and msg.data and _settle(outer[0], msg.data, outer[1]):
            # The caller's future is settled now, not a loop turn later when
            # the call's task resumes (a synchronous call's latency).
            if outer[0].sync:
                # A synchronous call's thread was just woken; it would wait
                # for the GIL until this loop next blocks, a second wake-up.
                # Dropping the GIL now lets it return at once. (Not for
                # futures waited on one after another: handing the GIL over
                # at each of thousands of replies slows the loop down.)
                time.sleep(0)
            fut.set_result(_SETTLED)
            return
        fut.set_result(msg)

    async def _sweep_calls(self) -> None:
        """Every 250 ms, one record read per actor with calls waiting over
        500 ms: a call fails once the epoch it was waiting on has ended."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.25)
            self.lane.tend()
            self._barrier_after_reconnect()
            now = loop.time()
            for (ns, name), calls in list(self._calls.items()):
                stale = [
                    c
                    for c in list(calls.values())
                    if now - c.sent > 0.5 and not c.fut.done() and not c.resending
                ]
                if not stale:
                    continue
                try:
                    rec, _ = await self.get_record(ns, name)
                except Exception:  # noqa: BLE001 - broker away: look again next time
                    continue
                retries = int(rec.get("max_task_retries") or 0) if rec is not None else 0
                for c in stale:
                    why = c.lost(rec)
                    if not why or c.fut.done():
                        continue
                    if (
                        rec is not None
                        and rec.get("state") not in TERMINAL
                        and c.redelivered < retries
                        and not c.silent
                    ):
                        # The instance it went to is gone and may have
                        # started it: sent again to the next one, as the
                        # actor's max_task_retries allows.
                        c.resending = True
                        loop.create_task(self._redeliver(ns, name, c))
                        continue
                    c.fut.set_exception(
                        ActorUnavailableError(
                            f"frayhq: actor {ns}/{name}: the instance running the call is gone{why}"
                            + (
                                f" (redelivered {c.redelivered} of max_task_retries={retries} times)"
                                if retries
                                else ""
                            )
                        )
                    )

    async def _redeliver(self, ns: str, name: str, c: _Call) -> None:
        """Send call c, lost with the instance it went to, again once a newer
        instance of the actor is ready; fail it if the actor ends first. The
        call's deadline bounds the wait."""
        loop = asyncio.get_running_loop()
        lost_epoch = c.epoch
        pause = 0.05
        try:
            while not c.fut.done():
                try:
                    rec, _ = await self.get_record(ns, name)
                except Exception:  # noqa: BLE001 - broker away: look again
                    rec = None
                state = rec.get("state") if rec is not None else None
                if state in TERMINAL:
                    err = rec.get("error") if rec is not None else None
                    c.fut.set_exception(
                        ActorUnavailableError(
                            f"frayhq: actor {ns}/{name}: the instance running the call is gone, and the actor "
                            f"is {state}{': ' + str(err) if err else ''}"
                        )
                    )
                    return
                epoch = rec.get("epoch") if rec is not None else None
                if (
                    state == "ready"
                    and isinstance(epoch, int)
                    and (not isinstance(lost_epoch, int) or epoch > lost_epoch)
                ):
                    c.resent(c.gen if c.gen == _ON_LANE else self._gen, loop.time())
                    c.epoch = epoch
                    await self.c.nc.publish(c.subj, c.body, reply=c.reply)
                    return
                await asyncio.sleep(pause)
                pause = min(2 * pause, 1.0)
        finally:
            c.resending = False

    # ---- barriers (PROTOCOL.md, actors: "Connection lost")

    def _barrier_after_reconnect(self) -> None:
        """After a reconnect, a barrier to each actor with calls of an
        earlier generation still unanswered (one at a time per actor)."""
        gen = self._reconnects()
        if gen != self._gen:
            self._gen = gen
        loop = asyncio.get_running_loop()
        for key, calls in list(self._calls.items()):
            if key in self._barriers:
                continue
            if any(c.gen < self._gen and not c.fut.done() for c in calls.values()):
                self._barriers[key] = loop.create_task(self._barrier(*key))

    async def _barrier(self, ns: str, name: str) -> None:
        try:
            await self._barrier_rounds(ns, name)
        except Exception:  # noqa: BLE001 - the next sweep sends another
            await asyncio.sleep(1)
        finally:
            self._barriers.pop((ns, name), None)

    async def _barrier_rounds(self, ns: str, name: str) -> None:
        loop = asyncio.get_running_loop()
        wait = 0.05
        while True:
            gen = self._gen
            calls = self._calls.get((ns, name)) or {}
            named = [c for c in calls.values() if c.gen < gen and not c.fut.done()]
            if not named:
                return
            self._ntok += 1
            tok = _base36(self._ntok)
            fut: asyncio.Future[Any] = loop.create_future()
            self._replies[tok] = fut
            body = _codec.dumps_plain({"v": 1, "replies": [c.reply for c in named]})
            try:
                await self.c.nc.publish(
                    named[0].subj, body, reply=f"{self._inbox}.{tok}", headers={"Fray-Barrier": "1"}
                )
                msg = await asyncio.wait_for(fut, BARRIER_RESEND)
            except TimeoutError:
                continue  # lost too, or behind a long call of a serial instance: ask again
            finally:
                self._replies.pop(tok, None)
            if not msg.data and msg.headers and msg.headers.get("Status") == "503":
                # No instance subscribed (its host reconnecting, or gone).
                await asyncio.sleep(wait)
                wait = min(wait * 2, BARRIER_WAIT_MAX)
                continue
            rep = _codec.loads_plain(msg.data, f"barrier reply of actor {ns}/{name}")
            if not isinstance(rep, dict) or rep.get("e"):
                # A host older than barriers took it for a call: the calls
                # are left to their replies and deadlines.
                for c in named:
                    c.gen = max(c.gen, gen)
                return
            running = set(rep.get("running") or ())
            lost = []
            for c in named:
                if c.fut.done():
                    continue  # its reply came first
                if c.reply in running:
                    c.gen = max(c.gen, gen)  # its reply will come
                else:
                    lost.append(c)
            if not lost:
                continue
            rec, _ = await self.get_record(ns, name)
            if rec is None:
                # The record is missing (a broker restart dropped expired
                # lease keys): the next barrier asks again a second later;
                # the sweep fails the calls past the absence limit.
                await asyncio.sleep(1)
                continue
            retries = int(rec.get("max_task_retries") or 0)
            for c in lost:
                if c.fut.done():
                    continue
                if c.silent:
                    c.fut.set_exception(
                        ActorUnavailableError(
                            f"frayhq: actor {ns}/{name}: the connection the call went out on went silent "
                            "with it in flight; it may have run, and is not sent again"
                        )
                    )
                elif c.redelivered < retries:
                    c.resent(self._gen, loop.time())
                    await self.c.nc.publish(c.subj, c.body, reply=c.reply)
                else:
                    c.fut.set_exception(
                        ActorUnavailableError(
                            f"frayhq: actor {ns}/{name}: the call was in flight when the connection to the "
                            f"broker was lost (redelivered {c.redelivered} of max_task_retries={retries} times)"
                        )
                    )

    # ---- long-running operations

    def submit_soon(self, h: ActorHandle, method: str, arg: Any, fut: ActorFuture) -> None:
        asyncio.get_running_loop().create_task(self._submit(h, method, arg, fut))

    async def _submit(self, h: ActorHandle, method: str, arg: Any, fut: ActorFuture) -> None:
        try:
            settle(fut, await self.submit(h, method, arg, fut))
        except BaseException as e:  # noqa: BLE001
            self.release(fut)
            settle(fut, exc=e)

    async def submit(self, h: ActorHandle, method: str, arg: Any, counted: ActorFuture | None = None) -> Any:
        ns, name = h.namespace, h.name
        op = self.c._nuid()  # noqa: SLF001
        key = f"a_op.{ns}.{name}.{op}"
        now = int(time.time() * 1000)
        oprec = {
            "v": 1,
            "id": op,
            "ns": ns,
            "actor": name,
            "method": method,
            "state": "pending",
            "created_ms": now,
            "updated_ms": now,
        }
        await self.kv_write(key, oprec, 0, "24h")
        call: dict[str, Any] = {"v": 1, "m": method, "op": op}
        if arg is not _ABSENT:
            call["a"] = arg
        try:
            await self.call(h, method, _codec.dumps(call))
        finally:
            if counted is not None:
                self.release(counted)  # the operation's start is answered: later calls come after it
        wait = 0.01
        where = f"{ns}/{name}.{method} (operation {op})"
        while True:
            try:
                e = await self.kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                raise ActorUnavailableError(f"frayhq: {where}: the operation record is gone") from None
            rec = _codec.loads(e.value, f"operation record {where}")
            st = rec.get("state")
            if st == "succeeded":
                return rec.get("result")
            if st == "failed":
                raise actor_error(rec.get("e"), where)
            if st == "canceled":
                from .errors import CancelledError

                raise CancelledError(f"frayhq: {where} was cancelled")
            if rec.get("epoch"):
                cur, _ = await self.get_record(ns, name)
                if cur is None or cur.get("state") in TERMINAL or cur.get("epoch") != rec.get("epoch"):
                    raise ActorUnavailableError(f"frayhq: {where}: the instance running it is gone")
            await asyncio.sleep(wait)
            wait = min(wait * 2, 0.5)

    # ---- stop

    async def stop(self, ns: str, name: str, reason: str = "shut down by the caller") -> None:
        rec = await self.tombstone(ns, name, reason)
        if rec is not None:
            await self._send_stop(ns, name, rec.get("epoch"))

    async def tombstone(self, ns: str, name: str, reason: str) -> dict[str, Any] | None:
        """Mark the actor stopped (a stopped tombstone in place of its
        record; its standing record removed) and return the record it
        replaced, or None when it was already gone. Its host is not told:
        stop does that."""
        key = record_key(ns, name)
        for _ in range(10):
            rec, rev = await self.get_record(ns, name)
            if rec is None or rec.get("state") in TERMINAL:
                return None
            tomb = dict(rec)
            tomb["state"] = "stopped"
            tomb["error"] = reason
            try:
                await self.kv_write(key, tomb, rev, TOMBSTONE_TTL)
            except nats.js.errors.APIError as e:
                if "wrong last sequence" in (e.description or "").lower():
                    continue
                raise
            await self._remove_standing(ns, name, rec)
            return rec
        return None

    async def _remove_standing(self, ns: str, name: str, rec: dict[str, Any]) -> None:
        try:
            st, srev = await self._standing(ns, name)
            if st is None or not isinstance(st, dict) or st.get("created_ms") != rec.get("created_ms"):
                return
            if (st.get("epoch") or 0) > (rec.get("epoch") or 0):
                return
            hdr = {"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(srev), "Nats-TTL": "60s"}
            await self.c.js.publish(KV_PREFIX + standing_key(ns, name), b"", headers=hdr)
        except Exception:  # noqa: BLE001 - the supervisor's sweep removes it too
            pass

    async def _send_stop(self, ns: str, name: str, epoch: Any) -> None:
        ctl: dict[str, Any] = {"v": 1, "op": "stop"}
        if epoch:
            ctl["epoch"] = epoch
        body = _codec.dumps_plain(ctl)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                await self.c.nc.request(f"fray.actor._ctl.{ns}.{name}", body, timeout=0.5)
                return
            except nats.errors.NoRespondersError:
                return
            except nats.errors.TimeoutError:
                continue
