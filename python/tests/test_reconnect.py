"""Actor calls across a broker restart: a reply published while the caller
was disconnected is lost (core NATS), and the barrier the client sends
after its reconnect finds the call lost at once instead of at its deadline.
Each runs as a call on nats-py (.remote) and as a synchronous call on the
lane, whose own connection breaks and comes back too."""

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

import frayhq
import procs


@pytest.fixture
def cluster(tmp_path):
    b = procs.Broker(tmp_path)
    w = procs.worker(tmp_path, b.url, "rc-w1")
    p = procs.Proxy(b.port)
    yield tmp_path, b, p
    p.close()
    w.stop()
    b.stop()


def wait_until(what: str, cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)


def sync_call(c: frayhq.Client, method) -> Future:
    """method(41) called synchronously in a thread of its own (on the lane)."""
    fut: Future = Future()
    sent = c._actors.lane.sent  # noqa: SLF001

    def run() -> None:
        try:
            fut.set_result(method(41))
        except BaseException as e:  # noqa: BLE001
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    wait_until("the call went on the lane", lambda: c._actors.lane.sent > sent)  # noqa: SLF001
    return fut


def lose_the_reply(
    tmp_path: Path, b: procs.Broker, p: procs.Proxy, c: frayhq.Client, h, gate: Path, sync: bool
) -> Future:
    """Start h.work, restart the broker with the caller held off, let the
    method return (its reply published with nobody subscribed), then let the
    caller reconnect. Returns the call's future."""
    fut = sync_call(c, h.work) if sync else h.work.remote(41)
    inbox = c._actors.lane.inbox if sync else c._actors._inbox  # noqa: SLF001
    wait_until("the call started", lambda: Path(str(gate) + ".started").exists())
    seen = threading.Event()

    async def on_msg(_m) -> None:
        seen.set()

    with frayhq.connect(b.url) as watcher:
        # A direct connection sees the reply go by: nobody else hears it.
        watcher._run(watcher.nc.subscribe(inbox + ".*", cb=on_msg))  # noqa: SLF001
        p.hold()
        b.restart()
        wait_until("the watcher reconnected", lambda: watcher.nc.is_connected)
        watcher._run(watcher.nc.flush())  # noqa: SLF001 - its subscription is back
        assert not c.nc.is_connected
        gate.write_text("go")
        wait_until("the reply published", seen.is_set)
    p.release()
    return fut


@pytest.mark.parametrize("sync", [False, True], ids=["remote", "sync"])
def test_a_call_whose_reply_was_lost_fails_at_once_after_the_reconnect(cluster, name, sync):
    tmp_path, b, p = cluster
    gate = tmp_path / "gate"
    with frayhq.connect(p.url) as c:
        wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
        h = c.create_actor(procs.Gated, str(gate), name=name)
        fut = lose_the_reply(tmp_path, b, p, c, h, gate, sync)
        began = time.monotonic()
        with pytest.raises(frayhq.ActorUnavailableError, match="in flight when the connection"):
            fut.result(30)  # without a barrier: the call's 60 s deadline
        assert time.monotonic() - began < 15


@pytest.mark.parametrize("sync", [False, True], ids=["remote", "sync"])
def test_a_lost_call_is_redelivered_within_max_task_retries(cluster, name, sync):
    tmp_path, b, p = cluster
    gate = tmp_path / "gate"
    with frayhq.connect(p.url) as c:
        wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
        h = c.create_actor(
            procs.Gated, str(gate), name=name, actor_config=frayhq.ActorConfig(max_task_retries=1)
        )
        fut = lose_the_reply(tmp_path, b, p, c, h, gate, sync)
        assert fut.result(30) == 42
        if sync:
            # The lane broke with the call in flight: the call moved to the
            # main connection, which the redelivery's reply came on.
            assert c._actors.lane.broke == 1  # noqa: SLF001
        assert h.runs() == 2  # run again: the first run's reply was lost
