"""frayhq's own request types, the same shape as marin-fray's ``fray.types``
(for users without marin-fray). submit() and create_actor() accept either:
they read the attributes, not the classes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class JobStatus(enum.StrEnum):
    """A job's state; the values (and so equality) are marin's."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"

    @staticmethod
    def finished(status: Any) -> bool:
        return status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)


@dataclass(frozen=True)
class CpuConfig:
    kind: str = "cpu"
    variant: str = "cpu"


@dataclass(frozen=True)
class GpuConfig:
    variant: str
    kind: str = "gpu"
    count: int = 1


@dataclass(frozen=True)
class TpuConfig:
    """A TPU slice type such as "v5e-16"; ``count`` chips per VM (0: all of the VM's)."""

    variant: str
    kind: str = "tpu"
    topology: str | None = None
    count: int = 0
    vm_count_hint: int = 0

    def vm_count(self) -> int:
        return self.vm_count_hint or 1


@dataclass
class ResourceConfig:
    cpu: float = 1
    ram: str = "4g"
    disk: str | None = None  # unset: the backend's default (Ray has no disk resource)
    device: Any = field(default_factory=CpuConfig)
    preemptible: bool = True
    regions: Sequence[str] | None = None
    zone: str | None = None
    target_cluster: str | None = None
    replicas: int = 1
    device_alternatives: Sequence[str] | None = None
    image: str | None = None

    @staticmethod
    def with_tpu(
        tpu_type: str, *, slice_count: int = 1, vms_per_slice: int = 1, chips_per_vm: int = 0, **kwargs: Any
    ) -> ResourceConfig:
        """slice_count slices of tpu_type, one replica per VM of each slice."""
        dev = TpuConfig(variant=tpu_type, count=chips_per_vm, vm_count_hint=vms_per_slice)
        return ResourceConfig(device=dev, replicas=slice_count * vms_per_slice, **kwargs)

    @staticmethod
    def with_gpu(gpu_type: str = "auto", count: int = 1, **kwargs: Any) -> ResourceConfig:
        return ResourceConfig(device=GpuConfig(variant=gpu_type, count=count), **kwargs)

    @staticmethod
    def with_cpu(**kwargs: Any) -> ResourceConfig:
        return ResourceConfig(**kwargs)


@dataclass
class EnvironmentConfig:
    workspace: str | None = None
    docker_image: str | None = None
    pip_packages: Sequence[str] = field(default_factory=list)
    env_vars: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    extras: Sequence[str] = field(default_factory=list)
    setup_scripts: Sequence[str] | None = None
    # Names of variables each worker fills in itself (fray-worker --secret
    # NAME=FILE, else its own environment): secrets stored nowhere.
    env_from_worker: Sequence[str] = field(default_factory=list)


@dataclass(frozen=True)
class ActorConfig:
    max_concurrency: int = 1
    max_restarts: int | None = None
    max_task_retries: int | None = None
    priority: int = 0


@dataclass(frozen=True)
class BinaryEntrypoint:
    command: str
    args: Sequence[str] = ()


@dataclass(frozen=True)
class CallableEntrypoint:
    callable: Callable[..., Any]
    args: Sequence[Any] = field(default_factory=tuple)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entrypoint:
    callable_entrypoint: CallableEntrypoint | None = None
    binary_entrypoint: BinaryEntrypoint | None = None

    @staticmethod
    def from_callable(
        c: Callable[..., Any], args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None
    ) -> Entrypoint:
        return Entrypoint(callable_entrypoint=CallableEntrypoint(callable=c, args=args, kwargs=kwargs or {}))

    @staticmethod
    def from_binary(command: str, args: Sequence[str] = ()) -> Entrypoint:
        return Entrypoint(binary_entrypoint=BinaryEntrypoint(command=command, args=args))


@dataclass
class JobRequest:
    name: str
    entrypoint: Entrypoint
    resources: ResourceConfig = field(default_factory=ResourceConfig)
    environment: EnvironmentConfig | None = None
    replicas: int | None = None
    max_retries_failure: int = 0
    max_retries_preemption: int = 100
    max_task_failures: int = 0
    priority: int = 0
    timeout: float | None = None  # seconds (or an object with to_seconds())
    # fray only: a job still PENDING, unplaceable on fray's workers this
    # long, is FAILED (seconds; None waits forever).
    scheduling_timeout: float | None = None

    def __post_init__(self) -> None:
        if " " in self.name:
            raise ValueError("Job name must not contain spaces")
        if self.replicas is None:
            self.replicas = self.resources.replicas
