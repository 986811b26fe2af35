"""The actor half of the Client API (marin's create_actor,
create_actor_group, host_actor, plus get_actor)."""

from __future__ import annotations

import logging
import time
from typing import Any

from ._actors import _ABSENT, PY_OBJECT, ActorHandle, _pickled, check_name
from .errors import ConfigError, Unsupported
from .errors import TimeoutError as FrayTimeoutError

log = logging.getLogger("frayhq")


def _get(obj: Any, attr: str, default: Any) -> Any:
    v = getattr(obj, attr, default) if obj is not None else default
    return default if v is None else v


def _with_env(actor_class: Any, environment: Any) -> Any:
    env = {str(k): str(v) for k, v in (_get(environment, "env_vars", {}) or {}).items() if v is not None}
    if not env:
        return actor_class
    if not isinstance(actor_class, type):
        raise Unsupported(f"frayhq: environment.env_vars for {actor_class!r}: only Python classes take them")
    return WithEnv(actor_class, env)


def _class_and_arg(actor_class: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    if isinstance(actor_class, str):
        if kwargs or len(args) > 1:
            raise ConfigError(
                f"frayhq: actor class {actor_class!r} (registered by name) takes at most one constructor "
                f"argument, got {len(args)} positional and {len(kwargs)} keyword arguments"
            )
        return actor_class, (args[0] if args else _ABSENT)
    if not isinstance(actor_class, type | WithEnv):
        raise TypeError(f"frayhq: create_actor wants a class or a registered class name, got {actor_class!r}")
    what = getattr(actor_class, "cls", actor_class).__qualname__
    return PY_OBJECT, _pickled((actor_class, args, kwargs), f"actor class {what} and its arguments")


def _check_environment(environment: Any) -> None:
    if environment is None:
        return
    if _get(environment, "secrets", None):
        raise Unsupported(
            "frayhq: environment.secrets: fray cannot keep secrets out of its records yet; "
            "pass them through the workers' own environment instead"
        )
    for what in ("pip_packages", "docker_image"):
        if _get(environment, what, None):
            raise Unsupported(
                f"frayhq: environment.{what} for an actor: an actor runs in its worker's Python environment; "
                "install what it needs there (or run it as a job, which takes pip_packages)"
            )


def _check_resources(resources: Any, what: str) -> None:
    """Say what actor placement cannot honour: it picks any live worker of
    the pool that offers the class (preemptible=false ones when asked), so
    a device, regions or a zone asked for are not given. A warning, not an
    error: on a cluster whose workers all have them, the actor gets them."""
    if resources is None:
        return
    from ._jobs import _device

    dev, _ = _device(_get(resources, "device", None))
    wants = []
    if dev.get("kind") != "cpu":
        wants.append(f"device {dev['kind']} {dev.get('variant', '')}".rstrip())
    if alts := _get(resources, "device_alternatives", None):
        wants.append(f"device_alternatives {list(alts)}")
    for field in ("regions", "zone"):
        if v := _get(resources, field, None):
            wants.append(f"{field} {v!r}")
    if wants:
        log.warning(
            "frayhq: %s asks for %s, which actor placement does not honour: it runs on any worker that "
            "offers its class (only preemptible=False narrows it); run the work that needs them as a job "
            "(client.submit with these resources)",
            what,
            ", ".join(wants),
        )


class WithEnv:
    """Constructs cls in the actor's own process after setting env vars
    (each Python actor has a process of its own)."""

    def __init__(self, cls: type, env: dict[str, str]) -> None:
        self.cls = cls
        self.env = env

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import os

        os.environ.update(self.env)
        return self.cls(*args, **kwargs)


class ActorGroup:
    """``count`` instances named <name>-0 … <name>-<count-1>."""

    def __init__(self, client: Any, namespace: str, name: str, handles: list[ActorHandle]) -> None:
        self._c = client
        self.namespace = namespace
        self.name = name
        self._handles = handles
        self._yielded: set[str] = set()

    def _ready(self) -> list[ActorHandle]:
        out = []
        for h in self._handles:
            rec, _ = self._c._run(self._c._actors.get_record(h.namespace, h.name))  # noqa: SLF001
            if rec is not None and rec.get("state") == "ready":
                out.append(h)
        return out

    @property
    def ready_count(self) -> int:
        return len(self._ready())

    def wait_ready(self, count: int | None = None, timeout: float = 300.0) -> list[ActorHandle]:
        want = len(self._handles) if count is None else count
        deadline = time.monotonic() + timeout
        wait = 0.01
        while True:
            ready = self._ready()
            if len(ready) >= want:
                got = ready[:want] if count is not None else ready
                self._yielded.update(h.name for h in got)
                return got
            if time.monotonic() > deadline:
                raise FrayTimeoutError(
                    f"frayhq: actor group {self.name}: {len(ready)} of {want} ready after {timeout} s"
                )
            time.sleep(wait)
            wait = min(wait * 2, 0.5)

    def discover_new(self) -> list[ActorHandle]:
        new = [h for h in self._ready() if h.name not in self._yielded]
        self._yielded.update(h.name for h in new)
        return new

    def is_done(self) -> bool:
        for h in self._handles:
            rec, _ = self._c._run(self._c._actors.get_record(h.namespace, h.name))  # noqa: SLF001
            if rec is not None and rec.get("state") not in ("stopped", "dead"):
                return False
        return True

    def shutdown(self) -> None:
        for h in self._handles:
            self._c._run(self._c._actors.stop(h.namespace, h.name, "group shut down"))  # noqa: SLF001

    @property
    def handles(self) -> list[ActorHandle]:
        return list(self._handles)

    def __len__(self) -> int:
        return len(self._handles)


class ActorAPI:
    """Mixed into Client."""

    def _actor_opts(self, resources: Any, actor_config: Any, what: str) -> dict[str, Any]:
        _check_resources(resources, what)
        max_conc = int(_get(actor_config, "max_concurrency", 1))
        if max_conc < 1:
            raise ConfigError(f"frayhq: actor_config.max_concurrency={max_conc}: want >= 1")
        max_restarts = int(_get(actor_config, "max_restarts", 0))
        if max_restarts < -1:
            raise ConfigError(f"frayhq: actor_config.max_restarts={max_restarts}: want >= -1 (-1: forever)")
        retries = int(_get(actor_config, "max_task_retries", 0))
        if retries < 0:
            raise ConfigError(f"frayhq: actor_config.max_task_retries={retries}: want >= 0")
        return {
            "nonpreempt": not bool(_get(resources, "preemptible", True)),
            "max_conc": max_conc,
            "max_restarts": max_restarts,
            "max_task_retries": retries,
        }

    def create_actor(
        self,
        actor_class: Any,
        *args: Any,
        name: str,
        resources: Any = None,
        actor_config: Any = None,
        environment: Any = None,
        get_if_exists: bool = False,
        namespace: str | None = None,
        detached: bool = False,
        **kwargs: Any,
    ) -> ActorHandle:
        """Create the named actor (placed on a worker of the pool) and return its handle.

        actor_class is a Python class (run by the workers' Python runtime)
        or the name of a class registered on the workers (e.g. "fray.Counter").
        """
        ns = namespace or self.namespace
        check_name("actor name", name)
        check_name("namespace", ns)
        _check_environment(environment)
        cls, arg = _class_and_arg(_with_env(actor_class, environment), args, kwargs)
        o = self._actor_opts(resources, actor_config, f"actor {ns}/{name}")
        return self._run(
            self._actors.create(cls, arg, ns, name, detached=detached, get_if_exists=get_if_exists, **o)
        )

    def get_actor(self, name: str, *, namespace: str | None = None) -> ActorHandle:
        """The handle of the live actor name (frayhq.NotFound if there is none)."""
        ns = namespace or self.namespace
        check_name("actor name", name)
        return self._run(self._actors.get(ns, name))

    def create_actor_group(
        self,
        actor_class: Any,
        *args: Any,
        name: str,
        count: int,
        resources: Any = None,
        actor_config: Any = None,
        environment: Any = None,
        namespace: str | None = None,
        detached: bool = False,
        **kwargs: Any,
    ) -> ActorGroup:
        """count instances <name>-<i>, spread over the eligible workers."""
        ns = namespace or self.namespace
        check_name("actor group name", name)
        if count < 1:
            raise ConfigError(f"frayhq: create_actor_group(count={count}): want >= 1")
        _check_environment(environment)
        cls, arg = _class_and_arg(_with_env(actor_class, environment), args, kwargs)
        o = self._actor_opts(resources, actor_config, f"actor group {ns}/{name}")
        import asyncio

        async def all_members() -> list[ActorHandle]:
            return list(
                await asyncio.gather(
                    *[
                        self._actors.create(
                            cls,
                            arg,
                            ns,
                            f"{name}-{i}",
                            detached=detached,
                            get_if_exists=False,
                            group=name,
                            index=i,
                            **o,
                        )
                        for i in range(count)
                    ]
                )
            )

        return ActorGroup(self, ns, name, self._run(all_members()))

    def host_actor(
        self,
        actor_class: type,
        *args: Any,
        name: str,
        actor_config: Any = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Serve an instance of actor_class from this process under name;
        returns a HostedActor (``.handle``, ``.shutdown()``)."""
        from ._host import host

        ns = namespace or self.namespace
        check_name("actor name", name)
        if not isinstance(actor_class, type):
            raise TypeError(f"frayhq: host_actor wants a class, got {actor_class!r}")
        o = self._actor_opts(None, actor_config, f"actor {ns}/{name}")
        return host(self, actor_class, args, kwargs, ns, name, o["max_conc"])
