"""frayhq.connect and the Client: one NATS connection owned by one event
loop thread, with the blocking API on top of it."""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import os
import ssl
import sys
import threading
import weakref
from collections.abc import Iterable
from typing import Any

import nats
import nats.errors
import nats.js.errors

from . import _codec, _spec
from ._actor_api import ActorAPI
from ._codec import Ref
from ._fastpub import Writer
from ._futures import IDs
from ._jobs import JobAPI
from ._local import LocalCluster
from ._loop import LoopThread
from ._objects import ObjectStore
from ._perms import Perms
from ._tasks import Future, Tasks
from ._tasks import wait as _wait
from ._workers import Workers
from .errors import ConfigError, FrayError, PermissionDenied
from .errors import ConnectionError as FrayConnectionError

CONNECT_TIMEOUT = 10.0
DEFAULT_NAMESPACE = "default"

_current: contextvars.ContextVar[Client | None] = contextvars.ContextVar("frayhq_client", default=None)
_process_client: Client | None = None
_process_lock = threading.Lock()
_live: weakref.WeakSet[Client] = weakref.WeakSet()


def _namespace(explicit: str | None) -> str:
    if explicit:
        return explicit
    if ns := os.environ.get("FRAY_NAMESPACE"):
        return ns
    jid = os.environ.get("FRAY_JOB_ID", "")
    if jid.startswith("/"):
        ns = jid[1:].split("/", 1)[0]
        if ns:
            return ns
    return DEFAULT_NAMESPACE


def _owner() -> str | None:
    """FRAY_OWNER: the owner token of this client's task results (with fray
    auth's roles, the user name, whose results the user may read)."""
    v = os.environ.get("FRAY_OWNER", "")
    if not v:
        return None
    if any(c in v for c in " .*>\t\r\n"):
        raise ConfigError(f"frayhq: FRAY_OWNER={v!r}: want a non-empty token without spaces, '.', '*' or '>'")
    return v


def _nats_options() -> dict[str, Any]:
    """The FRAY_NATS_* credentials and TLS files, as the Go client reads them."""
    o: dict[str, Any] = {}
    env = os.environ
    if v := env.get("FRAY_NATS_CREDS"):
        o["user_credentials"] = v
    if u := env.get("FRAY_NATS_USER"):
        o["user"] = u
        o["password"] = env.get("FRAY_NATS_PASSWORD", "")
    if v := env.get("FRAY_NATS_TOKEN"):
        o["token"] = v
    if v := env.get("FRAY_NATS_INBOX"):
        # fray auth's roles let a user subscribe to its own inboxes only.
        o["inbox_prefix"] = v
    ca, cert, key = env.get("FRAY_NATS_CA"), env.get("FRAY_NATS_CERT"), env.get("FRAY_NATS_KEY")
    if ca or cert:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
        if cert:
            if not key:
                raise ConfigError("frayhq: FRAY_NATS_CERT is set without FRAY_NATS_KEY")
            ctx.load_cert_chain(cert, key)
        o["tls"] = ctx
    return o


class Client(ActorAPI, JobAPI):
    """A connection to a fray cluster. Make one with frayhq.connect()."""

    def __init__(
        self,
        spec: str | None = None,
        *,
        namespace: str | None = None,
        workers: int = 2,
        concurrency: int | None = None,
        log_to_driver: bool = True,
    ) -> None:
        self.spec = _spec.parse(spec)
        self.owner = _owner()
        self.namespace = _namespace(namespace)
        _check_namespace(self.namespace)
        self.local: LocalCluster | None = None
        self._closed = False
        self._ids = IDs()
        self._kvs: dict[str, Any] = {}
        self._loop = LoopThread()
        try:
            self._loop.run(self._open(workers, concurrency, log_to_driver), timeout=60)
        except BaseException:
            self._teardown()
            raise
        _live.add(self)

    def _nuid(self) -> str:
        return self._ids.next()

    async def _open(self, workers: int, concurrency: int | None, log_to_driver: bool) -> None:
        sp = self.spec
        urls = list(sp.urls)
        opts: dict[str, Any] = {}
        if not urls:
            # Started from this (long-lived) loop thread, so that the
            # processes' parent-death signal follows the client, not a
            # short-lived caller thread.
            if sp.kind == "local":
                self.local = LocalCluster(
                    workers=workers,
                    concurrency=concurrency,
                    python=sys.executable,
                    python_path=list(sys.path),
                    log_to_driver=log_to_driver,
                )
            else:
                self.local = LocalCluster(workers=0, broker_args=_broker_args(sp))
            urls = [self.local.url]
        else:
            opts = _nats_options()
        self.url = ",".join(urls)
        self.perms = Perms(opts.get("user", ""))
        self.nc = await self._dial(urls, opts)
        self.perms.nc = self.nc
        self.js = self.nc.jetstream()
        self._pub = Writer(self.nc)  # the hot paths' publishes (tasks, actor calls)
        try:
            await self.js._jsm.stream_info("FRAY_RESULTS")  # noqa: SLF001
        except nats.js.errors.NotFoundError:
            raise FrayConnectionError(
                f"frayhq: {self.url} is not a provisioned fray cluster (no stream FRAY_RESULTS); start fray-broker there"
            ) from None
        self.objects = ObjectStore(self.nc, self.js, self.perms)
        self._workers = Workers(self._loop)
        await self._workers.start(self.nc, self.js)
        if self.local is not None and sp.kind == "local" and workers > 0:
            await self._wait_local_workers(workers)
        self._tasks = Tasks(self, self.owner)
        self.perms.listen(self._tasks.denied)
        await self._tasks.start()
        await self.perms.roundtrip()
        stored = f"fray.stored.{self._tasks.owner}.*"
        if stored.lower() in self.perms.refused_subs:
            raise PermissionDenied(
                await self.perms.user(),
                "subscribe",
                stored,
                "this client's task results arrive there: with fray auth's roles, "
                "FRAY_OWNER must be the user name (as in the user's .env file)",
            )
        from ._actors import Actors
        from ._jobs import Jobs

        self._actors = Actors(self)
        await self._actors.start()
        self._jobs = Jobs(self)

    async def _wait_local_workers(self, n: int, timeout: float = 60.0) -> None:
        """Until the local cluster's n workers have registered (their Python
        runtime started), or one of them died: then its log says why."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (live := await self._workers.live("default")) < n:
            assert self.local is not None
            if any(p.poll() is not None for p in self.local.procs):
                raise FrayConnectionError(f"frayhq: the local cluster did not start:\n{self.local.logs()}")
            if asyncio.get_running_loop().time() > deadline:
                raise FrayConnectionError(
                    f"frayhq: {live} of {n} local workers registered within {timeout:.0f} s:\n"
                    f"{self.local.logs()}"
                )
            await asyncio.sleep(0.05)

    async def _dial(self, urls: list[str], opts: dict[str, Any]) -> Any:
        errors: list[str] = []

        async def on_error(e: Exception) -> None:
            if self.perms.on_error(e):
                return
            errors.append(str(e) or type(e).__name__)

        async def on_reconnect() -> None:
            await self._workers.refresh()
            await self._tasks.recheck_all()

        try:
            return await asyncio.wait_for(
                nats.connect(
                    servers=urls,
                    name="frayhq",
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    connect_timeout=3,
                    error_cb=on_error,
                    reconnected_cb=on_reconnect,
                    pending_size=64 * 1024 * 1024,
                    **opts,
                ),
                CONNECT_TIMEOUT,
            )
        except (TimeoutError, OSError, nats.errors.Error) as e:
            why = errors[-1] if errors else (str(e) or type(e).__name__)
            raise FrayConnectionError(
                f"frayhq: cannot connect to {','.join(urls)} within {CONNECT_TIMEOUT:.0f} s: {why}"
            ) from None

    async def kv(self, bucket: str) -> Any:
        kv = self._kvs.get(bucket)
        if kv is None:
            kv = self._kvs[bucket] = await self.js.key_value(bucket)
        return kv

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        if self._closed:
            coro.close()
            raise FrayConnectionError("frayhq: the client is shut down")
        return self._loop.run(coro, timeout)

    # ---- objects

    def put(self, obj: Any) -> Ref:
        """Store obj (encoded as a value) in the object store; returns its Ref."""
        data = _codec.dumps(obj)
        return self._run(self.objects.put_bytes(data))

    def get(self, x: Any, timeout: float | None = None) -> Any:
        """The value of a Ref or a Future, or a list of them (in order)."""
        if isinstance(x, list | tuple):
            return [self.get(i, timeout) for i in x]
        if isinstance(x, Ref):
            return _codec.loads(self._run(self.objects.get_bytes(x), timeout), f"object {x}")
        if isinstance(x, Future) or hasattr(x, "result"):
            return x.result(timeout)
        raise TypeError(f"frayhq: get() wants a Ref, a Future or a list of them, got {type(x).__name__}")

    def delete(self, ref: Ref) -> None:
        """Delete an object (for every holder of a Ref to the same bytes)."""
        self._run(self.objects.delete(ref))

    # ---- tasks

    def run(
        self,
        fn: Any,
        *args: Any,
        pool: str = "default",
        retries: int = 0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Future:
        """Run fn(*args, **kwargs) on a worker of the pool; returns a Future.

        fn is a Python callable (pickled, run by the Python runtime) or the
        name of a function registered on the workers in any language, which
        then takes one plain argument.
        """
        if self._closed:
            raise FrayConnectionError("frayhq: the client is shut down")
        return self._tasks.submit(fn, args, kwargs, pool, retries, timeout)

    def wait(
        self, futures: Iterable[Any], num_returns: int = 1, timeout: float | None = None
    ) -> tuple[list[Any], list[Any]]:
        """ray.wait semantics: (ready, pending), both in input order."""
        return _wait(list(futures), num_returns, timeout)

    def future(self, fid: str) -> Future:
        """The future of task id "<owner>.<task-id>" (from any process)."""
        return self._tasks.future(fid)

    # ---- lifecycle

    def shutdown(self, wait: bool = True) -> None:
        """Close the connection; stop the local cluster this client started."""
        if self._closed:
            return
        self._closed = True
        actors = getattr(self, "_actors", None)
        if actors is not None and hasattr(actors, "lane"):
            actors.lane.close()  # from this thread: a call waiting on it may hold it a moment
        try:
            self._loop.run(self._close(), timeout=15)
        except Exception:  # noqa: BLE001 - tearing down regardless
            pass
        self._teardown()

    close = shutdown

    async def _close(self) -> None:
        try:
            await self._actors.close()
        except Exception:  # noqa: BLE001
            pass
        await self._workers.stop()
        try:
            await self.nc.drain()
        except Exception:  # noqa: BLE001
            try:
                await self.nc.close()
            except Exception:  # noqa: BLE001
                pass

    def _teardown(self) -> None:
        self._closed = True
        self._loop.stop()
        actors = getattr(self, "_actors", None)
        if actors is not None and hasattr(actors, "_intake"):
            actors.fail_queued()  # calls queued as it stopped: no loop takes them now
        if self.local is not None:
            self.local.stop()
            self.local = None
        global _process_client
        with _process_lock:
            if _process_client is self:
                _process_client = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<frayhq.Client {self.spec.kind} {getattr(self, 'url', '')} ns={self.namespace}>"

    def __reduce__(self) -> Any:
        # A client travels as "the current client where it lands".
        return (current_client, ())


def _check_namespace(ns: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}", ns):
        raise ConfigError(f"frayhq: namespace {ns!r}: want [A-Za-z0-9][A-Za-z0-9_-]*, at most 200 bytes")


def _broker_args(sp: _spec.Spec) -> list[str]:
    q = "&".join(f"{k}={v}" for k, v in sp.params.items() if k != "nats")
    args = ["--backend", f"{sp.kind}={sp.kind}?{q}"]
    return args


def connect(spec: str | None = None, *, namespace: str | None = None, **options: Any) -> Client:
    """Connect to the cluster named by spec (default: $FRAY_CLUSTER_SPEC, else "local").

    "local" starts a local cluster (fray-broker and workers) from the fray
    binaries, stopped by shutdown() and at interpreter exit; "nats://..."
    connects to a running cluster with the FRAY_NATS_* credentials and TLS;
    "ray?..." / "iris?..." run jobs on that backend. The first client made
    becomes the process's current client.
    """
    c = Client(spec, namespace=namespace, **options)
    global _process_client
    with _process_lock:
        if _process_client is None:
            _process_client = c
    return c


def live_client() -> Client | None:
    """current_client() when there is one open; never makes one."""
    c = _current.get()
    if c is not None and not c._closed:  # noqa: SLF001
        return c
    with _process_lock:
        if _process_client is not None and not _process_client._closed:  # noqa: SLF001
            return _process_client
    return None


def current_client() -> Client:
    """The client of this context or process: set by set_current_client(),
    else the first one connect() made, else one made now from
    $FRAY_CLUSTER_SPEC (inside a fray job, task or actor: its cluster)."""
    c = _current.get()
    if c is not None and not c._closed:  # noqa: SLF001
        return c
    global _process_client
    with _process_lock:
        if _process_client is not None and not _process_client._closed:  # noqa: SLF001
            return _process_client
    c = Client(None)
    with _process_lock:
        if _process_client is None or _process_client._closed:  # noqa: SLF001
            _process_client = c
        else:
            c.shutdown()
        return _process_client


class _Setter:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.token = _current.set(client)

    def __enter__(self) -> Client:
        return self.client

    def __exit__(self, *exc: object) -> None:
        try:
            _current.reset(self.token)
        except ValueError:
            _current.set(None)


def set_current_client(client: Client) -> _Setter:
    """Make client the current one (usable as a context manager that restores the previous one)."""
    if not isinstance(client, Client):
        raise TypeError(f"frayhq: set_current_client wants a frayhq.Client, got {type(client).__name__}")
    return _Setter(client)


def _shutdown_all() -> None:
    for c in list(_live):
        try:
            c.shutdown()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_shutdown_all)

__all__ = ["Client", "FrayError", "connect", "current_client", "set_current_client"]
