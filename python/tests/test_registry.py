"""The client reads the pool directory (KV FRAY_POOLS), never the workers'
lease renewals (KV FRAY_WORKERS): no consumer, no traffic per renewal."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid

import nats
import pytest

import frayhq


def _consumers(c: frayhq.Client, stream: str) -> int:
    return c._run(c.js._jsm.stream_info(stream)).state.consumer_count


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


async def _count_renewals(url: str, want: int, timeout: float) -> int:
    """Count FRAY_WORKERS writes on a core subscription (no consumer) until want."""
    nc = await nats.connect(url)
    seen = 0
    got = asyncio.Event()

    async def cb(_msg) -> None:
        nonlocal seen
        seen += 1
        if seen >= want:
            got.set()

    try:
        await nc.subscribe("$KV.FRAY_WORKERS.>", cb=cb)
        await asyncio.wait_for(got.wait(), timeout)
        return seen
    finally:
        await nc.close()


def test_clients_hold_no_registry_consumer_and_hear_no_renewals(client):
    before = _consumers(client, "KV_FRAY_WORKERS")
    live = client._run(client._workers.live("default"))
    assert live >= 1
    others = [frayhq.connect(client.url) for _ in range(3)]
    try:
        for c in others:
            assert c.run("fray.echo", 7).result(30) == 7  # reads the pool's record
        assert _consumers(client, "KV_FRAY_WORKERS") <= before

        start = [(c.nc.stats["in_msgs"], c._workers.reads, c._workers.delivered) for c in others]
        # Two renewals of every live worker (one every 2 s each) go by...
        renewals = asyncio.run(_count_renewals(client.url, 2 * live, 30))
        assert renewals >= 2 * live
        # ...and reach none of the clients: every message each received is
        # a directory read or a directory write it asked to hear.
        for c, (msgs, reads, delivered) in zip(others, start, strict=True):
            got = c.nc.stats["in_msgs"] - msgs
            assert got == (c._workers.reads - reads) + (c._workers.delivered - delivered), (got, renewals)
    finally:
        for c in others:
            c.shutdown()


def test_actor_placement_reads_the_registry_and_keeps_no_consumer(client, name):
    before = _consumers(client, "KV_FRAY_WORKERS")
    h = client.create_actor("fray.Counter", name=name)
    assert h.Add.remote(2).result(10) == 2
    # The placement read every worker's record, then let its consumer go.
    assert _consumers(client, "KV_FRAY_WORKERS") <= before
    h.shutdown()
    with pytest.raises(frayhq.UnknownClass, match="fray.Counter"):
        client.create_actor("no.such.Class", name=name + "-x")
    assert _consumers(client, "KV_FRAY_WORKERS") <= before


def test_a_function_of_a_worker_that_joins_later_becomes_runnable(client):
    pool = "late-" + uuid.uuid4().hex[:8]
    assert client.local is not None
    go_only = client.local.add_worker("--pool", pool)
    procs = [go_only]
    try:
        _wait(lambda: client._run(client._workers.live(pool)) >= 1, 30, f"a worker in pool {pool}")
        # The pool's only worker serves the built-in functions, not Python,
        # and the error says what Python functions need.
        with pytest.raises(
            frayhq.UnknownFunction, match=rf"pool '{pool}'.*fray\.echo.*runtime \(fray-worker --python"
        ):
            client.run(len, [1, 2], pool=pool)
        procs.append(client.local.add_worker("--pool", pool, "--python", sys.executable))

        def runnable() -> bool:
            try:
                f = client.run(len, [1, 2], pool=pool)
            except frayhq.UnknownFunction:
                return False
            assert f.result(60) == 2
            return True

        # The same client, not reconnected, learns the new function.
        _wait(runnable, 60, "py.call served in pool " + pool)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(15)
