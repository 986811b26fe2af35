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

from . import _codec
from ._actors import PY_OBJECT, TERMINAL, ActorHandle, record_key, standing_key
from .errors import ActorError, ActorExists

LEASE_TTL = 10.0


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
        self.renewer: asyncio.Task[None] | None = None

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
        self.rev = await a.kv_write(self.key, rec, self.rev, f"{int(LEASE_TTL)}s")
        nc = self.c.nc
        self.subs.append(await nc.subscribe(f"fray.actor._ctl.{self.ns}.{self.name}", cb=self._on_ctl))
        self.subs.append(
            await nc.subscribe(f"fray.actor.{self.ns}.{self.name}", queue="fray-actor", cb=self._on_call)
        )
        await nc.flush()
        rec["state"] = "ready"
        rec["started_ms"] = int(time.time() * 1000)
        self.rev = await a.kv_write(self.key, rec, self.rev, f"{int(LEASE_TTL)}s")
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
        a = self.c._actors  # noqa: SLF001
        while not self.stopped:
            await asyncio.sleep(LEASE_TTL / 3)
            if self.stopped:
                return
            rec = dict(self.rec)
            rec["calls"] = self.calls
            try:
                self.rev = await a.kv_write(self.key, rec, self.rev, f"{int(LEASE_TTL)}s")
            except nats.js.errors.APIError:
                # Someone else wrote the key (a stop, a creator): the lease is gone.
                await self._unserve()
                return
            except Exception:  # noqa: BLE001 - broker away: try again next time
                continue

    async def _on_ctl(self, msg: Any) -> None:
        try:
            ctl = _codec.loads_plain(msg.data, "actor control record")
        except Exception:  # noqa: BLE001
            ctl = {}
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
        self.calls += 1
        if msg.reply:
            self.running.add(msg.reply)
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self.pool, self._invoke, msg.data)
        finally:
            self.running.discard(msg.reply)
        if msg.reply and not self.stopped:
            await self.c.nc.publish(msg.reply, body)

    def _invoke(self, data: bytes) -> bytes:
        ep = self.rec.get("epoch", 1)
        try:
            call = _codec.loads(data, "actor call record")
            method = call.get("m") if isinstance(call, dict) else None
            if (
                not isinstance(method, str)
                or method.startswith("_")
                or not callable(getattr(self.inst, method, None))
            ):
                names = sorted(
                    n for n in dir(self.inst) if not n.startswith("_") and callable(getattr(self.inst, n))
                )
                return _codec.dumps_plain(
                    {
                        "v": 1,
                        "ep": ep,
                        "e": {
                            "t": "fray.NoSuchMethod",
                            "host": self.id,
                            "msg": f"{type(self.inst).__qualname__} has no method {method!r} (methods: {', '.join(names)})",
                        },
                    }
                )
            if call.get("op"):
                return _codec.dumps_plain(
                    {
                        "v": 1,
                        "ep": ep,
                        "e": {
                            "t": "fray.BadArgument",
                            "host": self.id,
                            "msg": "long-running operations (submit) are not served by host_actor; call remote() instead",
                        },
                    }
                )
            a = call.get("a")
            fn = getattr(self.inst, method)
            if (
                isinstance(a, tuple | list)
                and len(a) == 2
                and isinstance(a[1], dict)
                and "a" in call
                and isinstance(a[0], tuple)
            ):
                result = fn(*a[0], **a[1])
            elif "a" in call:
                result = fn(a)
            else:
                result = fn()
            out: dict[str, Any] = {"v": 1, "ep": ep}
            if result is not None:
                out["r"] = result
            return _codec.dumps(out)
        except BaseException as e:  # noqa: BLE001 - every failure is the caller's answer
            return _codec.dumps({"v": 1, "ep": ep, "e": error_map(e, self.id)})

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
    inst = cls(*args, **kwargs)
    h = Host(client, inst, ns, name, max_conc)
    client._run(h.start(max_conc))  # noqa: SLF001
    client._actors.hosted.append(h)  # noqa: SLF001
    return HostedActor(ActorHandle(ns, name, PY_OBJECT, client), h)
