"""Synchronous actor calls on the lane, the client's second connection
(_lane.py): it is used, it keeps a caller's order per actor, it goes the
async way when the call was not delivered, and it ends with the client."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import threading
import time
import urllib.request
from concurrent.futures import Future
from pathlib import Path

import pytest

import frayhq
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


def test_a_sync_call_goes_on_a_second_connection_that_shutdown_closes(tmp_path, name):
    http = procs.free_port()
    b = procs.Broker(tmp_path, "--http-port", str(http))
    w = procs.worker(tmp_path, b.url, "lane-w1")

    def lanes() -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/connz?limit=1024", timeout=5) as r:  # noqa: S310
            return [c for c in json.load(r)["connections"] if c.get("name") == "frayhq-lane"]

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


class Gate:
    """Its method waits for a file, so the test decides when it returns."""

    def __init__(self, gate: str) -> None:
        self.gate = gate

    def work(self) -> int:
        Path(self.gate + ".started").write_text("1")
        deadline = time.monotonic() + 120
        while not Path(self.gate).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return 1


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
        h = c.create_actor(Gate, str(gate), name=name)
        lane = c._actors.lane  # noqa: SLF001
        sent = lane.sent
        fut = in_thread(h.work)
        wait_until("the call started", lambda: Path(str(gate) + ".started").exists())
        assert lane.sent == sent + 1, "the call did not go on the lane"
        rec, _ = c._run(c._actors.get_record(c.namespace, name))  # noqa: SLF001
        host = next(p for p in c.local.procs[1:] if rec["host"] in p.args)
        host.send_signal(signal.SIGKILL)
        with pytest.raises(frayhq.ActorUnavailableError, match="the instance running the call is gone"):
            fut.result(60)  # the lease (10 s) ends, the sweep sees the epoch end
    finally:
        c.shutdown()


def tls_files(d: Path) -> None:
    """A CA and a server certificate for 127.0.0.1, signed by it."""
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


@pytest.mark.parametrize("auth", ["token", "tls"])
def test_the_lane_connects_with_the_clients_token_and_tls(tmp_path, monkeypatch, name, auth):
    """The lane's CONNECT is nats-py's own, from the client's options: a
    broker requiring a token, or TLS, takes it."""
    if auth == "token":
        conf = 'authorization { token: "s3cret-t0ken" }\n'
        env = {"FRAY_NATS_TOKEN": "s3cret-t0ken"}
    else:
        tls_files(tmp_path)
        conf = f'tls {{ cert_file: "{tmp_path}/server.pem", key_file: "{tmp_path}/server-key.pem" }}\n'
        env = {"FRAY_NATS_CA": str(tmp_path / "ca.pem")}
    (tmp_path / "nats.conf").write_text(conf)
    b = procs.Broker(tmp_path, "--config", str(tmp_path / "nats.conf"), env=env)
    w = procs.worker(tmp_path, b.url, "lane-auth-w1", env=env)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        with frayhq.connect(b.url) as c:
            wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
            h = c.create_actor(Log, name=name)
            h.add(0)
            assert h.count() == 1
            lane = c._actors.lane  # noqa: SLF001
            assert (lane.off, lane.answered) == (False, 2)
            assert (auth == "tls") == (type(lane._sock).__name__ == "SSLSocket")  # noqa: SLF001
            h.shutdown()
    finally:
        w.stop()
        b.stop()


class SplittingProxy:
    """A TCP proxy to a local port that hands the client what the server
    sends in two parts, 5 ms apart: TLS records arrive cut in two, so the
    client's socket is readable while no whole record is there."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return  # closed
            s = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [c, s]
            threading.Thread(target=self._pump, args=(c, s, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, True), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, split: bool) -> None:
        try:
            while data := src.recv(65536):
                if split and len(data) > 1:
                    dst.sendall(data[: len(data) // 2])
                    time.sleep(0.005)
                    data = data[len(data) // 2 :]
                dst.sendall(data)
        except OSError:
            pass
        for x in (src, dst):
            with contextlib.suppress(OSError):
                x.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.ls.close()
        for x in self.socks:
            x.close()


def test_a_reply_whose_tls_records_come_in_parts_is_read_whole(tmp_path, monkeypatch, name):
    """A socket readable with only part of a TLS record in it is not a
    connection lost: the call waits for the rest on the lane."""
    tls_files(tmp_path)
    (tmp_path / "nats.conf").write_text(
        f'tls {{ cert_file: "{tmp_path}/server.pem", key_file: "{tmp_path}/server-key.pem" }}\n'
    )
    env = {"FRAY_NATS_CA": str(tmp_path / "ca.pem")}
    b = procs.Broker(tmp_path, "--config", str(tmp_path / "nats.conf"), env=env)
    w = procs.worker(tmp_path, b.url, "lane-split-w1", env=env)
    proxy = SplittingProxy(b.port)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        with frayhq.connect(f"nats://127.0.0.1:{proxy.port}") as c:
            wait_until("the worker registered", lambda: c._loop.run(c._workers.live("default")))  # noqa: SLF001
            h = c.create_actor(Log, name=name)
            lane = c._actors.lane  # noqa: SLF001
            for i in range(10):
                assert h.big(100_000 + i) == "x" * (100_000 + i)
            assert (lane.off, lane.answered, lane.broke) == (False, 10, 0)
            h.shutdown()
    finally:
        proxy.close()
        w.stop()
        b.stop()


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
