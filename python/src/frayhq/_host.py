"""host_actor: serve a Python object as a named actor from this process.

The process is the actor's host (id ``proc-<nuid>``): it claims the name,
holds the lease (a sequence-checked KV write every LeaseTTL/3), answers
calls on ``fray.actor.<ns>.<name>`` in queue group ``fray-actor``, barriers
and control requests, as PROTOCOL.md's host does. The record is ``pinned``:
the supervisor never restarts it elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import traceback
from typing import Any

import cloudpickle
import nats.js.errors

from . import _codec, _marin_actor
from ._actors import PY_OBJECT, TERMINAL, ActorHandle, record_key, standing_key
from .errors import ActorError, ActorExists, StopActor

LEASE_TTL = 10.0
# How long after its last write a host may take back a lease that expired
# under it: well within the stop tombstone's TTL (60 s).
RECLAIM_WITHIN = 50.0


def _hosted_base() -> type:
    try:
        from fray.actor import HostedActor  # marin-fray

        return HostedActor
    except Exception:  # noqa: BLE001
        return object


class HostedActor(_hosted_base()):  # type: ignore[misc]
    """An actor served by this process: ``.handle``, ``.shutdown()``."""

    def __init__(self, handle: ActorHandle, host: Host) -> None:
        self.handle = handle
        self._host = host
        self._stop = None

    def shutdown(self) -> None:
        c = self._host.c
        if c._closed:  # noqa: SLF001
            return
        c._run(self._host.shutdown())  # noqa: SLF001


def error_map(e: BaseException, host: str) -> dict[str, Any]:
    t = type(e)
    out: dict[str, Any] = {
        "t": f"{t.__module__}.{t.__qualname__}",
        "msg": str(e),
        "host": host,
        "lang": "python",
        "traceback": "".join(traceback.format_exception(e)),
    }
    try:
        out["exc"] = cloudpickle.dumps(e)
    except Exception:  # noqa: BLE001 - the caller gets a RemoteError instead
        pass
    return out


class Host:
    def __init__(self, client: Any, instance: Any, ns: str, name: str, max_conc: int) -> None:
        self.c = client
        self.inst = instance
        self.ns = ns
        self.name = name
        self.key = record_key(ns, name)
        self.id = "proc-" + client._nuid()  # noqa: SLF001
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_conc, thread_name_prefix=f"frayhq-actor-{name}"
        )
        self.rec: dict[str, Any] = {}
        self.rev = 0
        self.subs: list[Any] = []
        self.running: set[str] = set()
        self.calls = 0
        self.stopped = False
        self.stop_asked = False  # a method raised StopActor
        self.marin: Any = None  # marin-fray's ActorContext of the instance, when marin-fray is there
        self.renewer: asyncio.Task[None] | None = None
        self.ops: dict[str, asyncio.Task[None]] = {}
        self.running_ops: set[str] = set()
        self.canceled_ops: set[str] = set()
        self.written = 0.0  # monotonic time of the last record write that went through

    async def start(self, max_conc: int) -> None:
        a = self.c._actors  # noqa: SLF001
        while True:
            rec = {
                "v": 1,
                "ns": self.ns,
                "name": self.name,
                "class": PY_OBJECT,
                "state": "placing",
                "epoch": 1,
                "max_conc": max_conc,
                "index": -1,
                "calls": 0,
                "pinned": True,
                "created_ms": int(time.time() * 1000),
            }
            try:
                self.rev = await a.kv_write(self.key, rec, 0, "30s")
                break
            except nats.js.errors.APIError as e:
                if "wrong last sequence" not in (e.description or "").lower():
                    raise ActorError(f"frayhq: host_actor {self.ns}/{self.name}: {e.description}") from None
                cur, cur_rev = await a.get_record(self.ns, self.name)
                if cur is not None and cur.get("state") not in TERMINAL:
                    raise ActorExists(
                        f"frayhq: actor {self.ns}/{self.name} already exists "
                        f"(class {cur.get('class')!r}, state {cur.get('state')})"
                    ) from None
                if cur is not None:
                    try:
                        await a.kv.delete(self.key, last=cur_rev)
                    except Exception:  # noqa: BLE001
                        pass
        rec["host"] = self.id
        rec["lease_ms"] = int(LEASE_TTL * 1000)
        await self._write(rec, self.rev)
        nc = self.c.nc
        self.subs.append(await nc.subscribe(f"fray.actor._ctl.{self.ns}.{self.name}", cb=self._on_ctl))
        self.subs.append(
            await nc.subscribe(f"fray.actor.{self.ns}.{self.name}", queue="fray-actor", cb=self._on_call)
        )
        await nc.flush()
        rec["state"] = "ready"
        rec["started_ms"] = int(time.time() * 1000)
        await self._write(rec, self.rev)
        self.rec = rec
        await self._write_standing()
        self.renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _write_standing(self) -> None:
        a = self.c._actors  # noqa: SLF001
        st = dict(self.rec)
        st["calls"] = 0
        try:
            await a.kv_write(standing_key(self.ns, self.name), st, 0, None)
        except nats.js.errors.APIError:
            try:
                e = await a.kv.get(standing_key(self.ns, self.name))
                await a.kv_write(standing_key(self.ns, self.name), st, int(e.revision), None)
            except Exception:  # noqa: BLE001 - retried by nobody: calls still work, restarts do not apply
                pass

    async def _renew(self) -> None:
        while not self.stopped:
            await asyncio.sleep(LEASE_TTL / 3)
            if self.stopped:
                return
            rec = dict(self.rec)
            rec["calls"] = self.calls
            try:
                await self._write(rec, self.rev)
            except nats.js.errors.APIError:
                try:
                    found = await self._recover_lease(rec)
                except Exception:  # noqa: BLE001 - can't tell yet: look again at the next renewal
                    continue
                if found is None:
                    # Someone else wrote the key (a stop, a creator): the lease is gone.
                    await self._unserve()
                    return
            except Exception:  # noqa: BLE001 - broker away: try again next time
                continue

    async def _write(self, rec: dict[str, Any], last: int) -> None:
        self.rev = await self.c._actors.kv_write(self.key, rec, last, f"{int(LEASE_TTL)}s")  # noqa: SLF001
        self.written = time.monotonic()

    async def _recover_lease(self, rec: dict[str, Any]) -> str | None:
        """After a renewal's sequence check failed: take the lease back when
        the key holds this host's own unacknowledged write, or nothing / an
        expiry marker (the broker was away longer than the lease and dropped
        the key), as the Go host does (actors/instance.go recoverLeaseLocked);
        None when someone else wrote it. An expired key is taken back only
        within RECLAIM_WITHIN of the last write that went through, so an
        expired stop tombstone is never mistaken for an expired lease."""
        try:
            last = await self.c.js._jsm.get_msg(  # noqa: SLF001
                "KV_FRAY_ACTORS", subject="$KV.FRAY_ACTORS." + self.key, direct=True
            )
        except nats.js.errors.NotFoundError:
            last = None
        hdrs = (last.headers or {}) if last is not None else {}
        if last is None or hdrs.get("Nats-Marker-Reason") == "MaxAge":
            if not self.written or time.monotonic() - self.written >= RECLAIM_WITHIN:
                return None
            found, expect = "expired", (last.seq if last is not None else 0)
        else:
            try:
                cur = _codec.loads_plain(last.data or b"", "actor record")
            except Exception:  # noqa: BLE001
                cur = None
            if (
                hdrs.get("Nats-Marker-Reason")
                or hdrs.get("KV-Operation")
                or not isinstance(cur, dict)
                or cur.get("host") != self.id
                or cur.get("epoch") != self.rec.get("epoch")
                or cur.get("state") != self.rec.get("state")
            ):
                return None
            found, expect = "own unacknowledged write", last.seq
        try:
            await self._write(rec, expect or 0)
        except nats.js.errors.APIError:
            return None  # a supervisor or creator won the free key
        return found

    async def _on_ctl(self, msg: Any) -> None:
        try:
            ctl = _codec.loads_plain(msg.data, "actor control record")
        except Exception:  # noqa: BLE001
            ctl = {}
        if isinstance(ctl, dict) and ctl.get("op") == "cancel" and isinstance(ctl.get("op_id"), str):
            self.cancel_op(ctl["op_id"])
        if isinstance(ctl, dict) and ctl.get("op") == "stop":
            ep = ctl.get("epoch")
            if ep and ep != self.rec.get("epoch"):
                return
            await self._unserve()
        if msg.reply:
            await self.c.nc.publish(msg.reply, b"")

    async def _on_call(self, msg: Any) -> None:
        if msg.headers and msg.headers.get("Fray-Barrier"):
            try:
                b = _codec.loads_plain(msg.data, "barrier")
                asked = set(b.get("replies") or [])
            except Exception:  # noqa: BLE001
                asked = set()
            reply = {"v": 1, "ep": self.rec.get("epoch", 1)}
            running = sorted(asked & self.running)
            if running:
                reply["running"] = running
            if msg.reply:
                await self.c.nc.publish(msg.reply, _codec.dumps_plain(reply))
            return
        if self.stop_asked:
            return  # stopping: the caller learns it from the record
        self.calls += 1
        try:
            peek = _codec.loads_plain(msg.data, "actor call record")
        except Exception:  # noqa: BLE001 - _invoke answers the decode error
            peek = None
        if isinstance(peek, dict) and isinstance(peek.get("op"), str) and peek["op"]:
            await self._accept_op(msg, peek)
            return
        if msg.reply:
            self.running.add(msg.reply)
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self.pool, self._invoke, msg.data)
        finally:
            self.running.discard(msg.reply)
        if self.stop_asked and not self.stopped:
            # A method raised StopActor: the actor ends as if shut down.
            # Its record says so before its caller has the answer, so that
            # caller's next call finds it stopped; calls that arrive
            # meanwhile go unanswered and learn it from the record.
            await self.c._actors.tombstone(self.ns, self.name, "stopped by its method raising StopActor")  # noqa: SLF001
            if msg.reply:
                await self.c.nc.publish(msg.reply, body)
            await self._unserve()
            return
        if msg.reply and not self.stopped:
            await self.c.nc.publish(msg.reply, body)

    def _invoke(self, data: bytes) -> bytes:
        ep = self.rec.get("epoch", 1)
        try:
            call = _codec.loads(data, "actor call record")
            err = self._no_method(call.get("m") if isinstance(call, dict) else None)
            if err is not None:
                return _codec.dumps_plain({"v": 1, "ep": ep, "e": err})
            try:
                result = self._apply(call)
            except StopActor as stop:
                self.stop_asked, result = True, stop.value
            if _marin_actor.ended(self.marin)[0]:
                self.stop_asked = True  # marin's shutdown_event or fail(): a hosted actor just ends
            out: dict[str, Any] = {"v": 1, "ep": ep}
            if result is not None:
                out["r"] = result
            return _codec.dumps(out)
        except BaseException as e:  # noqa: BLE001 - every failure is the caller's answer
            return _codec.dumps({"v": 1, "ep": ep, "e": error_map(e, self.id)})

    def _apply(self, call: dict[str, Any]) -> Any:
        """Run the call's method on the instance (a Python caller's
        (args, kwargs), or one plain argument from another language)."""
        a = call.get("a")
        fn = getattr(self.inst, call["m"])
        if isinstance(a, tuple | list) and len(a) == 2 and isinstance(a[1], dict) and isinstance(a[0], tuple):
            return fn(*a[0], **a[1])
        if "a" in call:
            return fn(a)
        return fn()

    def _no_method(self, method: Any) -> dict[str, Any] | None:
        if (
            isinstance(method, str)
            and not method.startswith("_")
            and callable(getattr(self.inst, method, None))
        ):
            return None
        names = sorted(n for n in dir(self.inst) if not n.startswith("_") and callable(getattr(self.inst, n)))
        return {
            "t": "fray.NoSuchMethod",
            "host": self.id,
            "msg": f"{type(self.inst).__qualname__} has no method {method!r} (methods: {', '.join(names)})",
        }

    # ---- long-running operations (PROTOCOL.md, actors: a_op.<ns>.<name>.<id>)

    async def _accept_op(self, msg: Any, peek: dict[str, Any]) -> None:
        """Reply at once (accepted, or the no-such-method error), then queue
        the operation under the actor's concurrency limit."""
        ep = self.rec.get("epoch", 1)
        err = self._no_method(peek.get("m"))
        reply: dict[str, Any] = {"v": 1, "ep": ep}
        if err is not None:
            reply["e"] = err
        if msg.reply:
            await self.c.nc.publish(msg.reply, _codec.dumps_plain(reply))
        if err is not None:
            return
        op = peek["op"]
        key = f"a_op.{self.ns}.{self.name}.{op}"
        loop = asyncio.get_running_loop()
        t = loop.create_task(self._run_op(key, op, msg.data, loop))
        self.ops[op] = t
        t.add_done_callback(lambda _t: self.ops.pop(op, None))

    async def _run_op(self, key: str, op: str, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        await loop.run_in_executor(self.pool, self._op_turn, key, op, data, loop)

    def _op_turn(self, key: str, op: str, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """In a pool thread, so that operations and calls share the actor's
        concurrency limit (a serial actor runs them in arrival order)."""

        def on_loop(coro: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(coro, loop).result(30)

        if self.stopped or op in self.canceled_ops:
            on_loop(self._op_finish(key, op, "canceled", None, None))
            return
        rev = on_loop(self._op_start(key))
        if rev is None:
            return  # withdrawn, cancelled or taken: the operation does not run
        self.running_ops.add(op)
        try:
            result = self._apply(_codec.loads(data, "actor call record"))
            err = None
        except BaseException as e:  # noqa: BLE001 - recorded as the operation's failure
            result, err = None, error_map(e, self.id)
        finally:
            self.running_ops.discard(op)
        state = "canceled" if op in self.canceled_ops else ("failed" if err else "succeeded")
        on_loop(self._op_finish(key, op, state, result, err))

    async def _op_start(self, key: str) -> int | None:
        a = self.c._actors  # noqa: SLF001
        try:
            e = await a.kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        rec = _codec.loads_plain(e.value, f"operation record {key}")
        if not isinstance(rec, dict) or rec.get("state") != "pending":
            return None
        rec.update(
            state="running", epoch=self.rec.get("epoch", 1), host=self.id, updated_ms=int(time.time() * 1000)
        )
        try:
            return await a.kv_write(key, rec, int(e.revision), "24h")
        except nats.js.errors.APIError:
            return None  # someone else wrote it first (a withdrawal)

    async def _op_finish(
        self, key: str, op: str, state: str, result: Any, err: dict[str, Any] | None
    ) -> None:
        a = self.c._actors  # noqa: SLF001
        for _ in range(5):
            try:
                e = await a.kv.get(key)
                rec = _codec.loads_plain(e.value, f"operation record {key}")
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                return
            rec.update(state=state, updated_ms=int(time.time() * 1000))
            rec.setdefault("epoch", self.rec.get("epoch", 1))
            rec.setdefault("host", self.id)
            if err is not None:
                rec["e"] = err
            body = _codec.dumps(
                {**rec, "result": result} if state == "succeeded" and result is not None else rec
            )
            try:
                await a.c.js.publish(
                    "$KV.FRAY_ACTORS." + key,
                    body,
                    headers={"Nats-Expected-Last-Subject-Sequence": str(e.revision), "Nats-TTL": "24h"},
                )
                return
            except nats.js.errors.APIError:
                continue
            except Exception:  # noqa: BLE001 - broker away: try again
                await asyncio.sleep(1)

    def cancel_op(self, op: str) -> None:
        self.canceled_ops.add(op)

    async def _unserve(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for s in self.subs:
            try:
                await s.unsubscribe()
            except Exception:  # noqa: BLE001
                pass
        self.subs.clear()
        self.pool.shutdown(wait=False)
        if self in self.c._actors.hosted:  # noqa: SLF001
            self.c._actors.hosted.remove(self)  # noqa: SLF001

    async def shutdown(self) -> None:
        await self.c._actors.stop(self.ns, self.name, "hosted actor shut down")  # noqa: SLF001
        await self._unserve()

    async def stop(self) -> None:
        await self.shutdown()


def host(
    client: Any, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any], ns: str, name: str, max_conc: int
) -> HostedActor:
    marin = _marin_actor.context(ActorHandle(ns, name, PY_OBJECT, client), 0, name)
    with _marin_actor.during(marin):
        inst = cls(*args, **kwargs)
    h = Host(client, inst, ns, name, max_conc)
    h.marin = marin
    client._run(h.start(max_conc))  # noqa: SLF001
    client._actors.hosted.append(h)  # noqa: SLF001
    return HostedActor(ActorHandle(ns, name, PY_OBJECT, client), h)
