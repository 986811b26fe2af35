"""What the cluster's pools serve, read as the Go client reads it.

run() refuses a function no live worker of the pool serves (UnknownFunction,
naming what the pool serves). That is answered from the pool directory, KV
FRAY_POOLS: one small record per pool (PROTOCOL.md, "Pool directory"),
which fray-broker rewrites only when a pool's membership or function set
changes. A pool's record is read with a direct get the first time it is
asked about; later writes arrive on one core subscription to
``$KV.FRAY_POOLS.>``. No JetStream consumer, and none of the workers' lease
renewals (every 2 s each, in KV FRAY_WORKERS) ever reaches a client.

Actor placement needs every worker's own record (its classes, attributes,
draining): it reads FRAY_WORKERS once per look, on demand (list_pool), like
the Go actors client, and holds no watch of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

from . import _codec
from ._decorators import PY_CALL
from .errors import UnknownFunction

POOLS = "FRAY_POOLS"
WORKERS = "FRAY_WORKERS"
POOL_SUBJECT = "$KV." + POOLS + "."

# A View reads its pools again after a reconnect and, as a safety net,
# every REFRESH_EVERY less up to a quarter (so that clients spread out).
REFRESH_EVERY = 30.0
# Bounds the direct get of a pool asked about for the first time.
FETCH_TIMEOUT = 2.0
# Bounds one on-demand read of FRAY_WORKERS.
LIST_TIMEOUT = 5.0

log = logging.getLogger("frayhq")


class Workers:
    """One client's copy of the pool directory, for the pools it asked about."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop  # the client's LoopThread
        self.pools: dict[str, dict[str, Any] | None] = {}  # None: asked, no record
        self.delivered = 0  # directory writes heard on the subscription
        self.reads = 0  # direct gets made
        self._kv: Any = None
        self._js: Any = None
        self._sub: Any = None
        self._refresher: asyncio.Task[None] | None = None
        self._warned: set[str] = set()  # pools said to have no live worker

    async def start(self, nc: Any, js: Any) -> None:
        self._js = js
        try:
            self._kv = await js.key_value(POOLS)
        except Exception as e:  # noqa: BLE001 - said plainly
            from .errors import ConnectionError as FrayConnectionError

            raise FrayConnectionError(
                f"frayhq: bucket {POOLS}: {e or type(e).__name__} (is the cluster provisioned by a fray-broker "
                "of this version?)"
            ) from None
        self._sub = await nc.subscribe(POOL_SUBJECT + ">", cb=self._on_msg)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    # ---- the directory

    async def _on_msg(self, msg: Any) -> None:
        self.delivered += 1
        pool = msg.subject[len(POOL_SUBJECT) :]
        if pool not in self.pools:
            return  # read with a direct get when first asked about
        hdr = msg.headers or {}
        if hdr.get("KV-Operation") or hdr.get("Nats-Marker-Reason"):
            self.pools[pool] = None
            return
        self._set(pool, _decode(msg.data), force=False)

    def _set(self, pool: str, d: dict[str, Any] | None, force: bool) -> None:
        cur = self.pools.get(pool)
        if not force and cur is not None and d is not None and _gen(cur) >= _gen(d):
            return
        if d is None and not force:
            return  # unreadable: keep what we have
        self.pools[pool] = d

    async def _fetch(self, pool: str) -> None:
        import nats.js.errors

        self.reads += 1
        try:
            e = await self._kv.get(pool)
        except nats.js.errors.KeyNotFoundError:
            self.pools.setdefault(pool, None)
            return
        d = _decode(e.value or b"")
        if d is not None:
            self._set(pool, d, force=False)

    async def pool(self, pool: str) -> dict[str, Any] | None:
        """pool's directory record (None: no record), read the first time."""
        if pool not in self.pools:
            # Known from here on, so that a write arriving during the read
            # is kept (the higher gen wins) rather than dropped.
            self.pools[pool] = None
            try:
                await asyncio.wait_for(self._fetch(pool), FETCH_TIMEOUT)
            except BaseException:
                if self.pools.get(pool) is None:
                    del self.pools[pool]  # asked again next time
                raise
        return self.pools[pool]

    async def live(self, pool: str) -> int:
        """The number of live workers of pool, as the directory says (0 when
        it cannot be read: none as far as this client knows)."""
        try:
            d = await self.pool(pool)
        except Exception:  # noqa: BLE001 - asked again next time
            return 0
        return int(d.get("workers") or 0) if d else 0

    async def refresh(self) -> None:
        """Read every pool asked about again (after a reconnect: writes made
        meanwhile reached no subscriber)."""
        for p in list(self.pools):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._fetch(p), FETCH_TIMEOUT)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY - random.uniform(0, REFRESH_EVERY / 4))
            await self.refresh()

    def check_function(self, pool: str, fn: str) -> None:
        """Raise UnknownFunction when pool has live workers and none serves fn.

        Answered from memory once the pool is known; the first time, read
        from any thread but the client's loop (from there, where it cannot
        wait, the read is started and the task submitted anyway). A pool
        that cannot be read refuses nothing."""
        if pool in self.pools:
            d = self.pools[pool]
        elif self._loop.in_loop():
            asyncio.get_running_loop().create_task(_quiet(self.pool(pool)))
            return
        else:
            try:
                d = self._loop.run(self.pool(pool), timeout=FETCH_TIMEOUT + 1)
            except Exception:  # noqa: BLE001 - as with no live worker: submit, one may serve it
                return
        if not d or not d.get("workers"):
            # No live worker: submit anyway, one may start. Said once per
            # pool, so that a mistyped pool does not wait in silence.
            if pool not in self._warned:
                self._warned.add(pool)
                log.warning(
                    "frayhq: pool %r has no live workers: its tasks wait in its queue until one starts",
                    pool,
                )
            return
        served = [str(f) for f in (d.get("functions") or [])]
        if fn not in served:
            n = int(d.get("workers") or 0)
            hint = ""
            if fn == PY_CALL:
                hint = (
                    "; Python functions need workers started with the Python runtime "
                    "(fray-worker --python PYTHON, whose interpreter has frayhq installed)"
                )
            raise UnknownFunction(
                f"frayhq: function {fn!r} is not served by any of the {n} live workers of pool "
                f"{pool!r}; they serve: {', '.join(served) or '(nothing)'}{hint}"
            )

    def idle_hint(self, pool: str) -> str:
        """For a wait that timed out: that pool has no live worker, when the
        directory as last read says so; else "". Never waits."""
        if pool in self.pools and not (self.pools[pool] or {}).get("workers"):
            return f" (pool {pool!r} has no live workers)"
        return ""

    # ---- the registry, on demand

    async def list_pool(self, pool: str) -> list[dict[str, Any]]:
        """The records of pool's live workers, sorted by id: one read of
        FRAY_WORKERS (a consumer that lives for the read and is deleted
        after it), for actor placement."""
        kv = await self._js.key_value(WORKERS)
        w = await kv.watchall(ignore_deletes=True, inactive_threshold=LIST_TIMEOUT)
        out: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(LIST_TIMEOUT):
                async for e in w:
                    if e is None:
                        break
                    rec = _decode(e.value or b"")
                    if rec is not None and (rec.get("pool") or "default") == pool:
                        out.append(rec)
        finally:
            with contextlib.suppress(Exception):
                await w.stop()
            with contextlib.suppress(Exception):
                await self._js._jsm.delete_consumer(w._sub._stream, w._sub._consumer)  # noqa: SLF001
        return sorted(out, key=lambda r: str(r.get("id", "")))


def _decode(data: bytes) -> dict[str, Any] | None:
    try:
        rec = _codec.loads_plain(data, "registry record")
    except Exception:  # noqa: BLE001 - a record we cannot read says nothing
        return None
    return rec if isinstance(rec, dict) else None


def _gen(d: dict[str, Any]) -> int:
    g = d.get("gen")
    return g if isinstance(g, int) else 0


async def _quiet(coro: Any) -> None:
    with contextlib.suppress(Exception):
        await coro
