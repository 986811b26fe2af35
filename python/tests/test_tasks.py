import concurrent.futures
import logging
import subprocess
import sys
import threading
import time

import pytest

import frayhq
from conftest import child_env


def test_registered_function_takes_one_plain_argument(client):
    f = client.run("fray.echo", {"a": [1, 2], "b": b"x"})
    assert f.result(30) == {"a": [1, 2], "b": b"x"}
    assert f.done() and "." in f.id


def test_large_argument_and_result_go_through_the_object_store(client):
    # Over the 256 KiB inline threshold both ways: the Go worker (nats.go)
    # reads the object frayhq wrote, metadata and all, and frayhq reads the
    # one the worker wrote.
    big = "x" * (600 << 10)
    assert client.run("fray.echo", big).result(30) == big


def test_put_get_round_trip_and_content_addressing(client):
    value = {"rows": list(range(200_000)), "tag": {1, 2}}
    r1 = client.put(value)
    r2 = client.put(value)
    assert r1 == r2 and r1.size > 256 << 10
    assert client.get(r1) == value
    assert client.get([r1, client.run("fray.echo", 5)]) == [value, 5]


def test_wait_has_ray_semantics_in_input_order(client):
    slow = client.run("fray.sleep", 3)
    fast = [client.run("fray.echo", i) for i in range(3)]
    ready, pending = client.wait([slow, *fast], num_returns=2, timeout=20)
    assert len(ready) == 2 and all(f in fast for f in ready)
    assert ready == [f for f in fast if f in ready]  # input order
    assert pending[0] is slow
    ready, pending = client.wait([slow], num_returns=1, timeout=0.1)
    assert ready == [] and pending == [slow]
    assert slow.result(30) == 3


def test_futures_work_with_concurrent_futures(client):
    fs = [client.run("fray.echo", i) for i in range(20)]
    got = sorted(f.result() for f in concurrent.futures.as_completed(fs, timeout=30))
    assert got == list(range(20))
    done, not_done = concurrent.futures.wait(fs, timeout=30)
    assert len(done) == 20 and not not_done


def test_future_by_id_from_another_process(client):
    f = client.run("fray.echo", "shared")
    f.result(30)
    code = (
        "import frayhq, sys\n"
        f"c = frayhq.connect({client.url!r})\n"
        f"print(c.future({f.id!r}).result(30))\n"
        "c.shutdown()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=child_env()
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "shared"


def test_future_by_id_waits_for_a_task_still_running(client):
    f = client.run("fray.sleep", 1)
    other = frayhq.connect(client.url)
    try:
        assert other.future(f.id).result(30) == 1
    finally:
        other.shutdown()


def test_cancel_a_running_task(client):
    f = client.run("fray.sleep", 30)
    time.sleep(0.5)
    assert f.cancel()
    with pytest.raises(frayhq.CancelledError):
        f.result(5)
    # Another process sees the cancellation as the task's result.
    other = frayhq.connect(client.url)
    try:
        with pytest.raises(frayhq.CancelledError):
            other.future(f.id).result(10)
    finally:
        other.shutdown()


def test_unknown_function_names_what_the_pool_serves(client):
    with pytest.raises(frayhq.UnknownFunction, match="fray.echo"):
        client.run("no.such.fn", 1)


def test_a_pool_without_workers_is_named_once_and_in_a_timed_out_wait(client, name, caplog):
    pool = "empty-" + name
    with caplog.at_level(logging.WARNING, logger="frayhq"):
        f = client.run(len, [1], pool=pool)
        client.run(len, [2], pool=pool)
    said = [r.getMessage() for r in caplog.records if pool in r.getMessage()]
    assert said == [
        f"frayhq: pool {pool!r} has no live workers: its tasks wait in its queue until one starts"
    ]
    with pytest.raises(frayhq.TimeoutError, match=f"pool {pool!r} has no live workers"):
        f.result(0.05)
    # A pool with workers is not said to have none.
    g = client.run("fray.sleep", 2)
    with pytest.raises(frayhq.TimeoutError) as ei:
        g.result(0.05)
    assert "no live workers" not in str(ei.value)
    assert not [r for r in caplog.records if "'default'" in r.getMessage()]


def test_a_task_message_is_named_by_its_one_header(client, name):
    # A version-2 task record: the message's one header, Nats-Msg-Id, is
    # the future id; the record says what to run, not who asked. Both the
    # fast path and the slow one (an argument in the object store).
    import queue

    import cbor2
    import nats

    pool = "spy-" + name
    got: queue.Queue = queue.Queue()

    async def spy():
        nc = await nats.connect(client.url)

        async def on(msg):
            got.put(msg)

        await nc.subscribe(f"fray.tasks.{pool}", cb=on)
        await nc.flush()
        return nc

    nc = client._loop.submit(spy()).result(10)
    try:
        futs = [client.run("fray.echo", 1, pool=pool), client.run("fray.echo", "x" * (300 << 10), pool=pool)]
        msgs = {}
        for _ in futs:
            msg = got.get(timeout=30)
            msgs[msg.headers.get("Nats-Msg-Id")] = msg
        for f in futs:
            msg = msgs[f.id]
            assert msg.headers == {"Nats-Msg-Id": f.id}
            # Under 64 bytes, the block nats-server searches in one pass.
            assert len(f"NATS/1.0\r\nNats-Msg-Id: {f.id}\r\n\r\n") <= 64, f.id
            rec = cbor2.loads(msg.data)
            assert rec["v"] == 2 and rec["fn"] == "fray.echo", rec
            assert not {"id", "owner", "max_deliveries"} & set(rec), rec
        assert "arg_ref" in cbor2.loads(msgs[futs[1].id].data)
    finally:
        for f in futs:
            f.cancel()
        client._loop.submit(nc.close()).result(10)


def test_tasks_are_named_by_the_owner_fray_owner_gives(client, name, monkeypatch):
    # FRAY_OWNER (with fray auth's roles, the user name) is the owner every
    # task's Nats-Msg-Id names, on the fast path too: the workers answer
    # it, and its results reach the client.
    owner = "own-" + name
    monkeypatch.setenv("FRAY_OWNER", owner)
    other = frayhq.connect(client.url)
    try:
        futs = [other.run("fray.echo", i) for i in range(5)]
        assert [f.result(30) for f in futs] == list(range(5))
        assert all(f.id.startswith(owner + ".") for f in futs), [f.id for f in futs]
    finally:
        other.shutdown()


def test_unpicklable_argument_fails_before_sending(client):
    with pytest.raises(TypeError, match="argument #0.*_thread.lock"):
        client.run(len, threading.Lock())


def test_task_timeout_is_a_task_error(client):
    f = client.run("fray.sleep", 30, timeout=0.5)
    with pytest.raises(frayhq.TaskError) as ei:
        f.result(30)
    assert ei.value.kind == "timeout"


def test_result_timeout_is_a_fray_timeout(client):
    f = client.run("fray.sleep", 2)
    with pytest.raises(frayhq.TimeoutError):
        f.result(0.05)
    assert f.result(30) == 2


def test_undecodable_result_names_the_record(client):
    f = client.run("fray.sleep", 2)
    owner, tid = f.id.split(".")
    client._run(client.js.publish(f"fray.results.{owner}.{tid}", b"\xff not cbor"))
    with pytest.raises(frayhq.DecodeError, match="result record of task"):
        f.result(10)


def test_bad_options_are_refused(client):
    with pytest.raises(frayhq.ConfigError, match="pool"):
        client.run("fray.echo", 1, pool="a.b")
    with pytest.raises(frayhq.ConfigError, match="one argument"):
        client.run("fray.echo", 1, 2)
    with pytest.raises(frayhq.ConfigError, match="retries"):
        client.run("fray.echo", 1, retries=-1)


def test_a_refused_task_fails_its_future_with_the_brokers_reason(fray_bin_dir):
    # The fast path's PubAcks come on the client's own reply subscription:
    # a negative one must reach the future (through the slow path's
    # retries), not leave it pending.
    c = frayhq.connect("local", workers=1)
    try:
        assert c.run(_double, 4).result(60) == 8

        async def limit(size):
            jsm = c.js._jsm
            cfg = (await jsm.stream_info("FRAY_TASKS")).config
            cfg.max_msg_size = size
            await jsm.update_stream(cfg)

        c._run(limit(4096))
        f = c.run(_double, b"x" * 20000)  # inline (under 256 KiB), over the stream's limit
        with pytest.raises(frayhq.FrayError, match="refused"):
            f.result(60)
        assert c.run(_double, 5).result(60) == 10  # a task within the limit still runs
    finally:
        c.shutdown()


def _double(x):
    return x * 2


def test_submits_past_the_pubacks_bound_all_complete(client, monkeypatch):
    # The fast path stops publishing while MAX_UNACKED tasks await their
    # PubAck and goes on as they come: with a bound of 2, 60 submissions
    # in a burst must wait on it and still all run.
    from frayhq import _tasks

    monkeypatch.setattr(_tasks, "MAX_UNACKED", 2)
    fs = [client.run(_double, i) for i in range(60)]
    assert [f.result(60) for f in fs] == [2 * i for i in range(60)]
