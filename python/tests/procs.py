"""Real fray processes for tests that need more than connect("local"): a
broker on a fixed port and store (to restart it), brokers with fray auth's
roles, workers run as a given user."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import ROOT
from frayhq import _binaries


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_file(path: str | Path) -> dict[str, str]:
    """The variables of a fray auth .env file."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without FRAY_NATS_*/FRAY_OWNER, plus extra, with python/src importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAY_NATS_") and k != "FRAY_OWNER"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "python" / "src"), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


class Proc:
    """One fray process, its output in a log file; killed by stop()."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.argv, self.log, self.env = argv, log, env
        self.p = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "ab") as out:
            return subprocess.Popen(  # noqa: S603
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )

    def wait_line(self, prefix: str, timeout: float = 60.0, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[after:].decode(errors="replace")
            for line in text.splitlines():
                if line.startswith(prefix):
                    return line
            if self.p.poll() is not None:
                raise AssertionError(f"{self.argv[0]} exited {self.p.returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{self.argv[0]}: no line {prefix!r} within {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_bytes()[-3000:].decode(errors="replace")

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Broker(Proc):
    """fray-broker on a fixed port and store, so that restart() brings the same cluster back."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        # nats-server picks the port (a port reserved here and released is
        # free for anyone to take first); restart() asks for it again.
        self.store = tmp / "store"
        argv = [_binaries.find("fray-broker"), "--port", "-1", "--store", str(self.store)]
        argv += ["--log-level", "warn", *args]
        super().__init__(argv, tmp / "broker.log", clean_env(env))
        self.url = self._ready()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.argv[self.argv.index("--port") + 1] = str(self.port)

    def _ready(self, after: int = 0) -> str:
        return self.wait_line("fray-broker ready", after=after).split()[2].removeprefix("url=")

    def restart(self, down: float = 0.0) -> None:
        """SIGKILL the broker, wait down seconds, start it again on the same port and store."""
        self.kill()
        time.sleep(down)
        mark = self.log.stat().st_size
        self.p = self._start()
        self._ready(after=mark)


def worker(tmp: Path, url: str, wid: str, *args: str, env: dict[str, str] | None = None) -> Proc:
    """fray-worker with the Python runtime of this interpreter (frayhq and the tests importable)."""
    argv = [_binaries.find("fray-worker"), "--nats", url, "--id", wid, "--log-level", "warn"]
    argv += ["--drain-timeout", "2s", "--python", sys.executable]
    for d in ("src", "tests"):
        argv += ["--python-path", str(ROOT / "python" / d)]
    return Proc([*argv, *args], tmp / f"{wid}.log", clean_env(env))


def auth_init(tmp: Path, *args: str) -> Path:
    d = tmp / "auth"
    subprocess.run(
        [_binaries.find("fray"), "auth", "init", "--out", str(d), *args], check=True, capture_output=True
    )
    return d


class Proxy:
    """A TCP proxy to 127.0.0.1:port that can hold its clients off: while
    held, it cuts every connection and closes new ones at once. With split,
    it hands the client what the server sends in two parts, 5 ms apart (TLS
    records arrive cut in two); what a socket in muted sends is dropped,
    neither side closed (a black hole: a NAT entry gone, a half-open
    connection). What a socket in stalled sends is held until go is set,
    then delivered, even after its sender closed (a path delayed: TCP
    retransmitting, a congested link)."""

    def __init__(self, port: int, split: bool = False) -> None:
        self.target = port
        self.split = split
        self.muted: set[socket.socket] = set()
        self.stalled: set[socket.socket] = set()
        self.go = threading.Event()
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.held = threading.Event()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            if self.held.is_set():
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
                u.settimeout(None)  # the 2 s is for the connect only
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b, down in ((c, u, False), (u, c, True)):
                threading.Thread(target=self._pipe, args=(a, b, down), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while data := src.recv(65536):
                if src in self.muted:
                    continue
                if src in self.stalled:
                    self.go.wait()
                if down and self.split and len(data) > 1:
                    dst.sendall(data[: len(data) // 2])
                    time.sleep(0.005)
                    data = data[len(data) // 2 :]
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def hold(self) -> None:
        self.held.set()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def release(self) -> None:
        self.held.clear()

    def close(self) -> None:
        self.hold()
        self.ls.close()


class Gated:
    """An actor whose work waits for a file (the gate, or 120 s), so a test
    decides when a call returns; it writes <gate>.started when a run begins
    and counts its runs."""

    def __init__(self, gate: str) -> None:
        self.gate = gate
        self.n = 0

    def work(self, x: int = 41) -> int:
        self.n += 1
        Path(self.gate + ".started").write_text(str(self.n))
        deadline = time.monotonic() + 120
        while not Path(self.gate).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return x + 1

    def runs(self) -> int:
        return self.n
