"""A local cluster started from the fray binaries: one fray-broker and
fray-worker processes, all in a temporary directory removed on stop.

The processes die with their parent: on Linux each gets a parent-death
signal (SIGTERM for the broker, SIGKILL for the workers), and stop() (called by Client.shutdown and at interpreter
exit) terminates them in order, workers first. A directory whose owner
was killed (so never ran stop) is removed by the next local cluster
started on the machine: each names its owner process in an ``owner`` file.
"""

from __future__ import annotations

import ast
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _binaries as _bin
from .errors import ConnectionError as FrayConnectionError

_PR_SET_PDEATHSIG = 1
_PREFIX = "frayhq-local-"
_OWNER = "owner"  # "<pid> <start time>" of the process whose cluster the directory is
_python_flags_cache: dict[str, bool] = {}


def _die_with_parent(sig: int) -> Callable[[], None]:
    def pre_exec() -> None:  # runs in the child between fork and exec
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        except Exception:  # noqa: BLE001 - not Linux: stop() and atexit still apply
            pass
        os.setpgid(0, 0)

    return pre_exec


def _start_time(pid: int) -> str:
    """pid's start time (clock ticks after boot, /proc/<pid>/stat field 22),
    "" where /proc cannot tell; "Z" for a zombie (it is dead)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "Z" if fields[0] == "Z" else fields[19]


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _start_time(pid)
    return now != "Z" and (not now or not start or now == start)  # a reused pid has another start time


def sweep_orphans() -> None:
    """Remove the directories of local clusters whose owner process is dead
    (killed before it could stop them); those of live owners, of other
    users and without an owner file are left alone."""
    tmp = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(_PREFIX)]
    except OSError:
        return
    for n in names:
        d = os.path.join(tmp, n)
        try:
            if os.stat(d).st_uid != os.getuid():
                continue
            with open(os.path.join(d, _OWNER), encoding="ascii") as f:
                pid, _, start = f.read().strip().partition(" ")
            if not _alive(int(pid), start):
                shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')  # one key=value of a slog text line


def _unquote(v: str) -> str:
    if not v.startswith('"'):
        return v
    try:
        return str(ast.literal_eval(v))  # Go's quoting: Python's escapes, \x and \u included
    except (ValueError, SyntaxError):
        return v[1:-1]


def output_line(log_line: str) -> tuple[str, str] | None:
    """(stream, text) for a worker log line carrying what a Python task or
    actor printed: text prefixed with the task or actor call and the pid,
    as Ray shows a worker's prints on its driver; None for other lines."""
    if " msg=output " not in log_line:
        return None
    f = {k: v for k, v in _FIELD.findall(log_line)}
    if f.get("stream") not in ("stdout", "stderr") or "line" not in f:
        return None
    who = next((f"{k}={_unquote(f[k])} " for k in ("task", "actor") if _unquote(f.get(k, ""))), "")
    return f["stream"], f"({who}pid={f.get('pid', '?')}) {_unquote(f['line'])}"


def _pump(src: Any, log: str) -> None:
    """Copy a worker's output to its log file, and what its Python tasks and
    actors print to this process's stdout or stderr, until the worker exits."""
    with src, open(log, "ab") as f:  # the pipe is closed at the worker's end, not left to the GC
        for raw in src:
            f.write(raw)
            f.flush()
            try:
                out = output_line(raw.decode("utf-8", "replace").rstrip("\n"))
                if out is not None:
                    stream = sys.stdout if out[0] == "stdout" else sys.stderr
                    stream.write(out[1] + "\n")
                    stream.flush()
            except Exception:  # noqa: BLE001, S112 - a closed or broken stream of ours: keep the log going
                continue


def worker_speaks_python(worker_bin: str) -> bool:
    """Whether this fray-worker has the Python runtime flags (--python)."""
    if worker_bin not in _python_flags_cache:
        try:
            out = subprocess.run([worker_bin, "--help"], capture_output=True, text=True, timeout=20)
            text = out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError):
            text = ""
        _python_flags_cache[worker_bin] = "-python " in text or "-python\n" in text
    return _python_flags_cache[worker_bin]


class LocalCluster:
    """fray-broker plus ``workers`` fray-worker processes on this machine."""

    def __init__(
        self,
        workers: int = 2,
        concurrency: int | None = None,
        worker_args: Sequence[str] = (),
        python: str | None = None,
        python_path: Sequence[str] | None = None,
        verbose: bool = False,
        broker_args: Sequence[str] = (),
        log_to_driver: bool = True,
    ) -> None:
        sweep_orphans()
        self.dir = tempfile.mkdtemp(prefix=_PREFIX)
        with open(os.path.join(self.dir, _OWNER), "w", encoding="ascii") as f:
            f.write(f"{os.getpid()} {_start_time(os.getpid())}\n")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.url = ""
        self._lock = threading.Lock()
        self._stopped = False
        self._verbose = verbose
        self._broker_args = list(broker_args)
        self._log_to_driver = log_to_driver
        self._pumps: list[threading.Thread] = []
        try:
            self._start(workers, concurrency, list(worker_args), python, python_path)
        except BaseException:
            self.stop()
            raise

    def _popen(
        self, argv: list[str], log: str, death_signal: int = signal.SIGKILL, forward: bool = False
    ) -> subprocess.Popen[bytes]:
        pump = forward and not self._verbose
        out: Any = None
        if pump:
            out = subprocess.PIPE
        elif not self._verbose:
            out = open(os.path.join(self.dir, log), "wb")  # noqa: SIM115
        env = dict(os.environ)
        # The workers' Python runtime (python -m frayhq.runtime) imports this
        # frayhq, wherever it was imported from.
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
        # The local cluster has no TLS nor auth: credentials meant for a
        # remote cluster must not be offered to it.
        for k in list(env):
            if k.startswith("FRAY_NATS_"):
                del env[k]
        p = subprocess.Popen(  # noqa: S603 - argv built here from the found binaries
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent(death_signal) if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        if pump:
            t = threading.Thread(
                target=_pump,
                args=(p.stdout, os.path.join(self.dir, log)),
                name="frayhq-local-log",
                daemon=True,
            )
            t.start()
            self._pumps.append(t)
        elif out is not None:
            out.close()
        self.procs.append(p)
        return p

    def _start(
        self,
        workers: int,
        concurrency: int | None,
        worker_args: list[str],
        python: str | None,
        python_path: Sequence[str] | None,
    ) -> None:
        broker = _bin.find("fray-broker")
        worker = _bin.find("fray-worker")
        # When this process dies the broker gets SIGTERM (it stops cleanly at
        # once) and the workers SIGKILL: with their broker gone a drain
        # could only wait out its timeouts.
        b = self._popen(
            [broker, "--port", "-1", "--store", os.path.join(self.dir, "store"), *self._broker_args],
            "broker.log",
            death_signal=signal.SIGTERM,
        )
        self.url = self._wait_ready(b, os.path.join(self.dir, "broker.log"))
        wargs = ["--nats", self.url, "--attr", "preemptible=false", "--drain-timeout", "2s", *worker_args]
        if concurrency:
            wargs += ["--concurrency", str(concurrency)]
        if python and worker_speaks_python(worker):
            wargs += ["--python", python]
            seen: set[str] = set()
            for d in python_path or ():
                d = os.path.abspath(d or os.getcwd())
                if d not in seen and os.path.isdir(d):
                    seen.add(d)
                    wargs += ["--python-path", d]
        for i in range(workers):
            self._popen(
                [worker, "--id", f"local-{os.getpid()}-{i}", *wargs],
                f"worker-{i}.log",
                forward=self._log_to_driver,
            )

    def _wait_ready(self, p: subprocess.Popen[bytes], log: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise FrayConnectionError(
                    f"frayhq: the local fray-broker exited with code {p.returncode}: {self._tail(log)}"
                )
            try:
                with open(log, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        if line.startswith("fray-broker ready url="):
                            return line.split()[2].removeprefix("url=")
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        raise FrayConnectionError(
            f"frayhq: the local fray-broker was not ready within {timeout} s: {self._tail(log)}"
        )

    @staticmethod
    def _tail(log: str) -> str:
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-8:]).strip()
        except OSError:
            return "(no log)"

    def logs(self) -> str:
        """The last lines of each process's log (for error messages)."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log"):
                out.append(f"--- {name}\n{self._tail(os.path.join(self.dir, name))}")
        return "\n".join(out)

    def add_worker(self, *args: str) -> subprocess.Popen[bytes]:
        """Start one more fray-worker with extra flags (e.g. --tpu, --pool)."""
        worker = _bin.find("fray-worker")
        n = len(self.procs)
        return self._popen(
            [worker, "--nats", self.url, "--drain-timeout", "2s", "--id", f"local-{os.getpid()}-x{n}", *args],
            f"worker-x{n}.log",
            forward=self._log_to_driver,
        )

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        # Workers first (they drain), then the broker.
        for group in (self.procs[1:], self.procs[:1]):
            for p in group:
                if p.poll() is None:
                    try:
                        p.send_signal(signal.SIGTERM)
                    except ProcessLookupError:
                        pass
            for p in group:
                try:
                    p.wait(8)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        p.kill()
                    p.wait(5)
        for t in self._pumps:
            t.join(5)  # what the workers printed last is shown before stop returns
        shutil.rmtree(self.dir, ignore_errors=True)
