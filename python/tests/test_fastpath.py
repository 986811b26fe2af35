"""The client's hot path: functions exported once, shared-condition
futures, ids, and publishes that skip nats-py's flusher."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time

import cloudpickle

from frayhq import _fncache
from frayhq._futures import IDs, SharedFuture


def test_a_function_runs_with_the_closure_values_of_its_first_run(client):
    k = 1

    def scaled(x):
        return x * k

    assert client.run(scaled, 2).result(60) == 2
    k = 5  # a by-value function is exported once: this run still sees k == 1
    assert client.run(scaled, 2).result(60) == 2

    def scaled_again(x):
        return x * k

    assert client.run(scaled_again, 2).result(60) == 10  # a new function: exported anew


def test_a_runtime_unpickles_an_exported_function_once(client):
    def bump():
        import os

        bump.calls = getattr(bump, "calls", 0) + 1
        return os.getpid(), bump.calls

    # More runs than the local cluster has runtime processes: some process
    # serves several, and keeps the function (and its state) it loaded.
    seen: dict[int, list[int]] = {}
    for _ in range(20):
        pid, calls = client.run(bump).result(60)
        seen.setdefault(pid, []).append(calls)
    for pid, calls in seen.items():
        assert calls == list(range(1, len(calls) + 1)), (pid, calls)
    assert max(len(c) for c in seen.values()) >= 2, seen


def test_the_runtime_cache_keeps_the_most_recently_used_functions():
    blobs = [cloudpickle.dumps(lambda i=i: i) for i in range(_fncache.MAX_LOADED + 1)]
    first = _fncache.load(blobs[0])
    assert _fncache.load(blobs[0]) is first
    for b in blobs[1:]:
        _fncache.load(b)
    assert len(_fncache._loaded) <= _fncache.MAX_LOADED  # noqa: SLF001
    again = _fncache.load(blobs[0])  # evicted: loaded anew
    assert again is not first and again() == 0
    payload = bytes(_fncache.SMALL)
    big = cloudpickle.dumps(lambda: len(payload))
    assert len(big) > _fncache.SMALL  # keyed by a digest
    assert _fncache.load(big) is _fncache.load(bytes(big))


def test_a_waiting_future_gets_its_own_result_while_others_settle():
    mine, other = SharedFuture(), SharedFuture()

    def until_waiting() -> None:  # until result() waits on mine's condition
        deadline = time.monotonic() + 30
        while not (mine._cond is not None and mine._cond._waiters) and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.001)

    def finish() -> None:
        until_waiting()
        other.set_result("other")  # same lock, another condition: mine waits on
        until_waiting()
        mine.set_exception(KeyError("mine"))

    t = threading.Thread(target=finish)
    t.start()
    try:
        mine.result(timeout=30)
    except KeyError as e:
        assert e.args == ("mine",)
    else:
        raise AssertionError("want mine's exception")
    t.join()
    assert other.result(0) == "other" and other.exception(0) is None
    assert isinstance(mine.exception(0), KeyError)
    assert concurrent.futures.wait([mine, other], timeout=0).not_done == set()


def test_ids_are_unique_and_shaped_like_nuids():
    a, b = IDs(), IDs()
    ids = [a.next() for _ in range(5000)] + [b.next() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9A-Za-z]{22}", i) for i in ids), ids[:3]


def test_writer_publishes_keep_their_order_with_nats_py_publishes(client):
    subject = "t.fastpath." + IDs().next()
    n = 300

    async def go() -> list[int]:
        nc = client.nc
        got: list[int] = []
        done = asyncio.Event()

        async def on(msg) -> None:
            got.append(int(msg.data))
            if len(got) == n:
                done.set()

        sub = await nc.subscribe(subject, cb=on)
        await nc.flush()
        for i in range(n):
            if i % 7 == 0:
                await nc.publish(subject, str(i).encode())  # queued by nats-py
            elif not client._pub.publish(subject, str(i).encode()):  # noqa: SLF001
                await nc.publish(subject, str(i).encode())
            if i % 50 == 0:
                await asyncio.sleep(0)  # let bursts end and nats-py's flusher run
        await asyncio.wait_for(done.wait(), 30)
        await sub.unsubscribe()
        return got

    assert client._run(go()) == list(range(n))  # noqa: SLF001


def test_tasks_beyond_the_puback_window_wait_for_room_and_all_run(client, monkeypatch):
    from frayhq import _tasks

    monkeypatch.setattr(_tasks, "MAX_UNACKED", 3)  # the kick stops at 3; _drain waits for PubAcks

    def double(x):
        return 2 * x

    fs = [client.run(double, i) for i in range(40)]
    assert [f.result(60) for f in fs] == [2 * i for i in range(40)]
