"""Synchronous actor calls on the lane, the client's second connection
(_lane.py): it is used, it keeps a caller's order per actor, it goes the
async way when the call was not delivered, and it ends with the client."""

from __future__ import annotations

import contextlib
import json
import random
import select
import signal
import socket
import threading
import time
import types
import urllib.request
from concurrent.futures import Future
from pathlib import Path

import pytest

import frayhq
import frayhq._actors
import frayhq._lane
import procs


class Log:
    """A serial actor that records the order its calls arrive in."""

    def __init__(self) -> None:
        self.xs: list[int] = []

    def add(self, x: int) -> None:
        self.xs.append(x)

    def count(self) -> int:
        return len(self.xs)

    def arrived_in_order(self) -> bool:
        return self.xs == list(range(len(self.xs)))

    def big(self, n: int) -> str:
        return "x" * n


def test_a_sync_call_comes_after_the_callers_earlier_remote_calls(client, name):
    """Many h.add.remote(...) and then h.count(): the synchronous call sees
    every earlier call, whether it took the lane (all of them answered) or
    nats-py (some still outstanding). The rounds vary how many of the
    remote calls were waited for, so that the sync call often comes just as
    the last reply is in: the moment it may take the lane."""
    h = client.create_actor(Log, name=name)
    lane = client._actors.lane  # noqa: SLF001
    rng = random.Random(11)
    n = 0
    on_lane = 0
    try:
        for _ in range(400):
            before = lane.answered
            fs = [h.add.remote(n + i) for i in range(rng.randint(1, 8))]
            n += len(fs)
            waited = rng.choice((0, len(fs) - 1, len(fs)))
            for f in fs[:waited]:
                f.result(60)
            assert h.count() == n
            on_lane += lane.answered > before
        assert h.arrived_in_order()
    finally:
        h.shutdown()
    # Both ways were taken: the test covered the hand-over between them.
    assert 0 < on_lane < 400, on_lane


def wait_until(what: str, cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.02)


def lanes_at(http: int) -> list[dict]:
    """The lane connections the broker monitored on port http sees."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/connz?limit=1024", timeout=5) as r:  # noqa: S310
        return [c for c in json.load(r)["connections"] if c.get("name") == "frayhq-lane"]


def test_a_sync_call_goes_on_a_second_connection_that_shutdown_closes(tmp_path, name):
    http = procs.free_port()
    b = procs.Broker(tmp_path, "--http-port", str(http))
    w = procs.worker(tmp_path, b.url, "lane-w1")

    def lanes() -> list[dict]:
        return lanes_at(http)

    try:
        c = frayhq.connect(b.url)
        wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
        h = c.create_actor("fray.Counter", name=name)
        assert h.Add.remote(1).result(30) == 1
        assert lanes() == [], "a lane opened before any synchronous call"
        threads = set(threading.enumerate())
        assert h.Add(2) == 3
        assert h.Get() == 3
        (conn,) = lanes()
        assert conn["subscriptions"] == 1 and conn["in_msgs"] >= 2  # its inbox; the two calls
        assert set(threading.enumerate()) <= threads, "the lane started a thread"
        sock = c._actors.lane._sock  # noqa: SLF001
        h.shutdown()
        c.shutdown()
        assert sock.fileno() == -1
        assert not c._loop.thread.is_alive()  # noqa: SLF001
        wait_until("the server saw the lane close", lambda: lanes() == [])
    finally:
        w.stop()
        b.stop()


def in_thread(fn) -> Future:
    fut: Future = Future()

    def run() -> None:
        try:
            fut.set_result(fn())
        except BaseException as e:  # noqa: BLE001
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return fut


def test_a_sync_call_whose_host_is_killed_mid_call_is_unavailable(tmp_path, name):
    gate = tmp_path / "gate"
    c = frayhq.connect("local", workers=2)
    try:
        h = c.create_actor(procs.Gated, str(gate), name=name)
        lane = c._actors.lane  # noqa: SLF001
        sent = lane.sent
        fut = in_thread(h.work)
        wait_until("the call started", lambda: Path(str(gate) + ".started").exists())
        wait_until(
            "the call went on the lane", lambda: lane.sent == sent + 1, timeout=10
        )  # counted once written
        rec, _ = c._run(c._actors.get_record(c.namespace, name))  # noqa: SLF001
        host = next(p for p in c.local.procs[1:] if rec["host"] in p.args)
        host.send_signal(signal.SIGKILL)
        with pytest.raises(frayhq.ActorUnavailableError, match="the instance running the call is gone"):
            fut.result(60)  # the lease (10 s) ends, the sweep sees the epoch end
    finally:
        c.shutdown()


def tls_files(d: Path) -> tuple[str, dict[str, str]]:
    """A CA and a server certificate for 127.0.0.1, signed by it: the
    nats-server config line for them, and the client environment that
    trusts the CA."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=frayhq test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "ext")  # fmt: skip
    conf = f'tls {{ cert_file: "{d}/server.pem", key_file: "{d}/server-key.pem" }}\n'
    return conf, {"FRAY_NATS_CA": str(d / "ca.pem")}


@contextlib.contextmanager
def configured(tmp_path: Path, monkeypatch, conf: str, env: dict[str, str], wid: str):
    """A broker with nats-server config conf and a worker, both given env,
    which this process's clients get too. Yields the broker."""
    (tmp_path / "nats.conf").write_text(conf)
    b = procs.Broker(tmp_path, "--config", str(tmp_path / "nats.conf"), env=env)
    w = procs.worker(tmp_path, b.url, wid, env=env)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        yield b
    finally:
        w.stop()
        b.stop()


@pytest.mark.parametrize("auth", ["token", "tls"])
def test_the_lane_connects_with_the_clients_token_and_tls(tmp_path, monkeypatch, name, auth):
    """The lane's CONNECT is nats-py's own, from the client's options: a
    broker requiring a token, or TLS, takes it."""
    if auth == "token":
        conf = 'authorization { token: "s3cret-t0ken" }\n'
        env = {"FRAY_NATS_TOKEN": "s3cret-t0ken"}
    else:
        conf, env = tls_files(tmp_path)
    with configured(tmp_path, monkeypatch, conf, env, "lane-auth-w1") as b, frayhq.connect(b.url) as c:
        wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
        h = c.create_actor(Log, name=name)
        h.add(0)
        assert h.count() == 1
        lane = c._actors.lane  # noqa: SLF001
        assert (lane.off, lane.answered) == (False, 2)
        assert (auth == "tls") == (type(lane._sock).__name__ == "SSLSocket")  # noqa: SLF001
        h.shutdown()


def test_a_reply_whose_tls_records_come_in_parts_is_read_whole(tmp_path, monkeypatch, name):
    """A socket readable with only part of a TLS record in it is not a
    connection lost: the call waits for the rest on the lane."""
    conf, env = tls_files(tmp_path)
    with configured(tmp_path, monkeypatch, conf, env, "lane-split-w1") as b:
        proxy = procs.Proxy(b.port, split=True)
        try:
            with frayhq.connect(proxy.url) as c:
                wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
                h = c.create_actor(Log, name=name)
                lane = c._actors.lane  # noqa: SLF001
                for i in range(10):
                    assert h.big(100_000 + i) == "x" * (100_000 + i)
                assert (lane.off, lane.answered, lane.broke) == (False, 10, 0)
                h.shutdown()
        finally:
            proxy.close()


def test_an_idle_lane_answers_the_servers_pings_and_stays_open(tmp_path, name):
    """Nobody reads the lane between calls but the client's sweep, which
    answers the server's PINGs (every 250 ms): a server pinging every 100 ms
    and closing a connection that leaves 5 unanswered keeps the idle lane
    (without the sweep's answers it closes it within a second)."""
    (tmp_path / "nats.conf").write_text('ping_interval: "100ms"\nping_max: 5\n')
    b = procs.Broker(tmp_path, "--config", str(tmp_path / "nats.conf"))
    w = procs.worker(tmp_path, b.url, "lane-ping-w1")
    try:
        with frayhq.connect(b.url) as c:
            wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
            h = c.create_actor("fray.Counter", name=name)
            assert h.Add(1) == 1
            lane = c._actors.lane  # noqa: SLF001
            sock = lane._sock  # noqa: SLF001
            wait_until("the idle lane answered 10 PINGs", lambda: lane.pongs >= 10, timeout=30)
            assert h.Add(1) == 2
            assert lane._sock is sock and lane.answered == 2  # noqa: SLF001 - the same connection
            h.shutdown()
    finally:
        w.stop()
        b.stop()


def a_call_under_way(c: frayhq.Client, name: str, gate: Path, retries: int = 1):
    """A procs.Gated actor whose first synchronous call opened the lane, and
    a synchronous call of its work now running on the lane (the gate
    closed): (handle, lane, the call's future)."""
    h = c.create_actor(
        procs.Gated, str(gate), name=name, actor_config=frayhq.ActorConfig(max_task_retries=retries)
    )
    assert h.runs() == 0  # opens the lane
    lane = c._actors.lane  # noqa: SLF001
    sent = lane.sent
    fut = in_thread(lambda: h.work(41))
    wait_until("the call started", lambda: Path(str(gate) + ".started").exists())
    wait_until("the call went on the lane", lambda: lane.sent == sent + 1, timeout=10)  # counted once written
    return h, lane, fut


def test_a_lane_call_is_no_call_of_the_main_connection_it_did_not_travel_on(tmp_path, name):
    """The client's main connection (nats-py) reconnects while a long call
    waits on the lane. Barriers ask about calls that travelled on the lost
    connection; this one did not, so none names it. (When one did, the
    barrier's reply on nats-py could be read before the call's reply on the
    lane, the call judged lost and, with max_task_retries, run twice.)"""
    gate = tmp_path / "gate"
    c = frayhq.connect("local")
    try:
        h, lane, fut = a_call_under_way(c, name, gate)
        key = (c.namespace, name)
        wait_until("the call was handed to the sweep", lambda: key in c._actors._calls)  # noqa: SLF001
        reconnects = c.nc.stats["reconnects"]
        c._loop.call_soon(c.nc._transport._io_writer.transport.abort)  # noqa: SLF001 - nats-py's socket only
        wait_until("nats-py reconnected", lambda: c.nc.stats["reconnects"] > reconnects)
        # The sweep has seen the reconnect (and would have sent its barriers).
        wait_until("the sweep saw it", lambda: c._actors._gen == c.nc.stats["reconnects"])  # noqa: SLF001
        assert key not in c._actors._barriers  # noqa: SLF001
        gate.write_text("1")
        assert fut.result(30) == 42
        assert h.runs.remote().result(30) == 1, "the answered call was run again"
        # The lane follows the main connection: opened again once it moved.
        opened = lane.opened
        assert h.runs() == 1
        assert lane.opened == opened + 1
    finally:
        c.shutdown()


def test_a_lane_call_whose_lane_breaks_is_answered_on_the_main_connection(tmp_path, name):
    """The lane's connection breaks while a call runs: the call moves to
    the main connection (its reply subject subscribed there, then a
    barrier), and its reply comes there; it runs once."""
    gate = tmp_path / "gate"
    c = frayhq.connect("local")
    try:
        h, lane, fut = a_call_under_way(c, name, gate)
        lane._sock.shutdown(socket.SHUT_RDWR)  # noqa: SLF001 - the lane's connection breaks mid-call
        wait_until("the call moved", lambda: lane.broke == 1 and not lane.lock.locked())
        gate.write_text("1")
        assert fut.result(30) == 42
        assert h.runs() == 1, "the call was run again"  # on a lane opened again
    finally:
        c.shutdown()


def test_a_moved_lane_call_ends_at_client_shutdown(tmp_path, name):
    """A call moved off a broken lane still waits when the client shuts
    down: it ends then, with an error, and shutdown does not wait for it."""
    gate = tmp_path / "gate"
    c = frayhq.connect("local")
    caller = None
    try:
        _, lane, caller = a_call_under_way(c, name, gate, retries=0)
        lane._sock.shutdown(socket.SHUT_RDWR)  # noqa: SLF001
        wait_until("the call moved", lambda: lane.broke == 1 and not lane.lock.locked())
    finally:
        began = time.monotonic()
        c.shutdown()
        shut = time.monotonic() - began
        gate.write_text("1")
    assert caller is not None
    with pytest.raises(frayhq.FrayError):
        caller.result(20)
    assert shut < 5, f"shutdown waited {shut:.1f} s"


@contextlib.contextmanager
def proxied_lane(tmp_path: Path, name: str, wid: str):
    """A broker (monitored), a worker, and a client reaching them through a
    procs.Proxy, with a procs.Gated actor (max_task_retries=1) whose first
    synchronous call opened the lane. Yields a namespace: c, h, proxy, gate,
    pair (the proxy's two sockets of the lane: facing the client, facing
    the server) and lanes() (the lane connections the broker sees)."""
    http = procs.free_port()
    b = procs.Broker(tmp_path, "--http-port", str(http))
    w = procs.worker(tmp_path, b.url, wid)
    proxy = procs.Proxy(b.port)
    gate = tmp_path / "gate"
    try:
        with frayhq.connect(proxy.url) as c:
            wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
            h = c.create_actor(
                procs.Gated, str(gate), name=name, actor_config=frayhq.ActorConfig(max_task_retries=1)
            )
            with proxy.lock:
                before = list(proxy.conns)
            assert h.runs() == 0  # opens the lane: the proxy's newest pair
            with proxy.lock:
                pair = [s for s in proxy.conns if s not in before]
            assert len(pair) == 2, pair
            yield types.SimpleNamespace(
                c=c, h=h, proxy=proxy, gate=gate, pair=pair, lanes=lambda: lanes_at(http)
            )
    finally:
        proxy.close()
        w.stop()
        b.stop()


def test_a_lane_gone_silent_moves_its_call_which_fails_without_being_sent_again(tmp_path, monkeypatch, name):
    """The lane's connection goes silent without closing (a black hole). A
    call waiting on it pings the lane; no PONG comes, so the lane is dropped
    and the call moved to the main connection, where a barrier does not find
    it running. Whether it arrived cannot be known (its PUB may still be on
    its way), so it is not sent again, whatever max_task_retries: it fails in
    seconds, saying it may have run, not at its 60 s deadline. The next call
    opens a new lane."""
    monkeypatch.setattr(frayhq._actors, "LANE_PONG_WAIT", 1.0)  # noqa: SLF001
    with proxied_lane(tmp_path, name, "mute-w1") as r:
        lane = r.c._actors.lane  # noqa: SLF001
        r.proxy.muted.update(r.pair)
        t = time.monotonic()
        with pytest.raises(frayhq.ActorUnavailableError, match="may have run"):
            in_thread(r.h.runs).result(30)
        assert time.monotonic() - t < 15
        assert lane.broke == 0  # no end was seen: the PING found it out
        opened = lane.opened
        assert r.h.runs() == 0  # never arrived; a new lane carries this one
        assert lane.opened == opened + 1


@pytest.mark.parametrize("way", ["to-server", "to-client"])
def test_a_call_on_a_lane_judged_silent_but_only_slow_runs_once(tmp_path, monkeypatch, name, way):
    """The lane's path is slow, not dead (TCP retransmitting with backoff,
    a congested link), so no PONG comes in time and the lane is judged
    silent, dropped, its call moved. to-server: the call's PUB, already
    handed to the kernel, reaches the server after the drop (closing a
    socket does not take back what it holds) and the actor runs it.
    to-client: the actor ran the call and its reply was on its way on the
    lane when the lane was dropped. Either way the barrier on the main
    connection does not find the call running; it must not be redelivered
    (max_task_retries=1), which would run it twice: it fails, saying it may
    have run."""
    monkeypatch.setattr(frayhq._actors, "LANE_PONG_WAIT", 1.0)  # noqa: SLF001
    with proxied_lane(tmp_path, name, "stall-w1") as r:
        r.gate.write_text("1")  # work returns at once
        r.proxy.stalled.add(r.pair[0] if way == "to-server" else r.pair[1])
        with pytest.raises(frayhq.ActorUnavailableError, match="may have run"):
            in_thread(lambda: r.h.work(41)).result(30)
        r.proxy.go.set()  # the slow path delivers what it held (the PUB, then the close)
        wait_until("the server saw the old lane close", lambda: r.lanes() == [])
        # Everything the old lane carried was routed before its close; a
        # call on the main connection now comes after it.
        assert r.h.runs.remote().result(30) == 1, "the call ran twice, or never"


def test_a_sync_call_that_meets_the_clients_shutdown_ends(tmp_path, name):
    """A synchronous call that reaches the client as it shuts down (its
    handle bound it just before) ends with an error; it does not wait
    forever for a loop that is gone. (Calls call_sync as h.method(...) does
    after ActorHandle._c() returned the client.)"""
    c = frayhq.connect("local")
    h = c.create_actor(Log, name=name)
    assert h.count() == 0
    from frayhq._actors import encode_args, encode_call

    body = encode_call("count", encode_args(True, (), {}, "count"))
    c.shutdown()
    caller = in_thread(lambda: c._actors.call_sync(h, "count", body))  # noqa: SLF001
    with pytest.raises(frayhq.FrayError):
        caller.result(10)


def test_a_moved_call_given_up_before_its_move_leaves_no_subscription(tmp_path, name):
    """The caller gives up a moved call (KeyboardInterrupt in _wait_moved)
    before the loop has run _move: the call is unwatched first, then _move
    subscribes its reply subject on nats-py. That subscription must not
    outlive the call."""
    import ctypes

    gate = tmp_path / "gate"
    c = frayhq.connect("local")
    try:
        h = c.create_actor(procs.Gated, str(gate), name=name)
        assert h.runs() == 0  # opens the lane
        lane = c._actors.lane  # noqa: SLF001
        subs = len(c.nc._subs)  # noqa: SLF001
        fut: Future = Future()

        def run() -> None:
            try:
                fut.set_result(h.work(41))
            except BaseException as e:  # noqa: BLE001
                fut.set_exception(e)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_until("the call started", lambda: Path(str(gate) + ".started").exists())
        # The loop is busy a moment (another callback runs long).
        entered, go = threading.Event(), threading.Event()
        c._loop.call_soon(lambda: (entered.set(), go.wait(10)))  # noqa: SLF001
        assert entered.wait(10)
        lane._sock.shutdown(socket.SHUT_RDWR)  # noqa: SLF001 - the lane breaks mid-call
        wait_until("the call moved", lambda: lane.broke == 1 and not lane.lock.locked())
        # Ctrl-C in the caller, waiting for its moved call.
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(t.ident), ctypes.py_object(KeyboardInterrupt)
        )
        with pytest.raises(KeyboardInterrupt):
            fut.result(10)
        go.set()
        gate.write_text("1")
        assert h.runs.remote().result(30) == 1
        # Leaked: <lane inbox>.<token> stays subscribed on nats-py, the call in no _calls.
        wait_until("the moved call's subscription is gone", lambda: len(c.nc._subs) == subs, timeout=10)  # noqa: SLF001
    finally:
        c.shutdown()


def test_a_call_whose_lane_is_dropped_because_a_ping_cannot_be_written_runs_once(tmp_path, monkeypatch, name):
    """The path to the server is slow and the lane's send buffer is full
    behind a call's PUB, so the caller's PING cannot be written within
    SEND_TIMEOUT and the lane drops its socket itself. That is no close by
    the server: the PUB, handed to the kernel whole, may still reach it. So
    the call, moved to the main connection, is not sent again (it would run
    twice): it is answered there, or fails saying it may have run."""
    monkeypatch.setattr(frayhq._lane, "SEND_TIMEOUT", 1.0)  # noqa: SLF001 - the 10 s, shortened
    monkeypatch.setattr(frayhq._actors, "LANE_HANDOVER", 1.5)  # noqa: SLF001 - the first PING after the filling
    with proxied_lane(tmp_path, name, "fill-w1") as r:
        lane = r.c._actors.lane  # noqa: SLF001
        sock = lane._sock  # noqa: SLF001
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # a small send buffer: filled fast
        r.proxy.stalled.add(r.pair[0])  # the path to the server is slow
        sent = lane.sent
        caller = in_thread(lambda: r.h.work(41))
        wait_until("the call's PUB was written", lambda: lane.sent == sent + 1, timeout=10)
        # More to send fills the path behind the PUB (publishes nobody reads).
        filler = b"PUB fray-test-filler 8192\r\n" + b"x" * 8192 + b"\r\n"
        small = b"PUB fray-test-filler 0\r\n\r\n"
        try:
            while select.select([], [sock], [], 0.1)[1]:  # whole fillers, until it takes none for 100 ms
                view = memoryview(filler)
                while view:
                    try:
                        view = view[sock.send(view) :]
                    except BlockingIOError:
                        select.select([], [sock], [], 1.0)
            while not caller.done():  # and small ones take any room freed, until the lane is dropped
                try:
                    sock.send(small)
                except BlockingIOError:
                    select.select([], [sock], [], 0.01)
        except OSError:
            pass  # the caller closed it
        started = Path(str(r.gate) + ".started")
        # Redelivered (it runs: its PUB is held), or failed as one that may have run.
        wait_until("the call's verdict", lambda: started.exists() or caller.done(), timeout=30)
        assert lane.broke == 1, "the PING was written after all: the scenario did not happen"
        r.proxy.go.set()  # the slow path delivers what it held: the PUB, then the close
        wait_until("the server saw the old lane close", lambda: r.lanes() == [])
        r.gate.write_text("1")
        try:
            assert caller.result(30) == 42
        except frayhq.ActorUnavailableError as e:
            assert "may have run" in str(e)
        assert r.h.runs.remote().result(30) == 1, "the call ran twice"
