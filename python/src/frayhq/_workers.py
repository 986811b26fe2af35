"""The live workers of the cluster, as registered in KV FRAY_WORKERS.

The client keeps a watch on the bucket so that run() can refuse a function
no live worker of the pool serves (UnknownFunction, naming what the pool
serves) and actors can be placed, as the Go client does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import _codec
from .errors import UnknownFunction

BUCKET = "FRAY_WORKERS"


class Workers:
    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self.loaded = asyncio.Event()

    async def start(self, js: Any) -> None:
        kv = await js.key_value(BUCKET)
        watcher = await kv.watchall()
        self._task = asyncio.get_running_loop().create_task(self._run(watcher))
        try:
            await asyncio.wait_for(self.loaded.wait(), 10)
        except TimeoutError:
            pass

    async def _run(self, watcher: Any) -> None:
        async for e in watcher:
            if e is None:
                self.loaded.set()
                continue
            if e.operation in ("DEL", "PURGE") or not e.value:
                self.by_id.pop(e.key, None)
            else:
                try:
                    rec = _codec.loads_plain(e.value, "worker record")
                except Exception:  # noqa: BLE001 - a record we cannot read names no worker
                    continue
                if isinstance(rec, dict):
                    self.by_id[e.key] = rec
            if e.delta == 0:
                self.loaded.set()

    def in_pool(self, pool: str) -> list[dict[str, Any]]:
        return sorted(
            (w for w in self.by_id.values() if (w.get("pool") or "default") == pool),
            key=lambda w: str(w.get("id", "")),
        )

    def check_function(self, pool: str, fn: str) -> None:
        live = self.in_pool(pool)
        if not live:
            return  # no live worker: submit anyway, one may start
        served = sorted({h for w in live for h in (w.get("handlers") or [])})
        if fn not in served:
            raise UnknownFunction(
                f"frayhq: function {fn!r} is not served by any of the {len(live)} live workers of pool "
                f"{pool!r}; they serve: {', '.join(served) or '(nothing)'}"
            )
