"""Launch a TPU gang job: one v5litepod-16 slice is 4 VMs of 4 chips, so
the job runs 4 replicas, coscheduled on the VMs of one slice (workers with
the same tpu-name), each told its chips (TPU_VISIBLE_CHIPS) and its rank.

    python examples/python/tpu_gang.py

Here the "slice" is four fray-workers on this machine declaring --tpu
v5e-16 and --attr tpu-name=slice-a; on real TPU VMs each VM runs one
fray-worker so declared.
"""

from __future__ import annotations

import os

import frayhq
from frayhq import Entrypoint, JobRequest

try:
    from fray.types import ResourceConfig  # marin's, with its TPU table
except ImportError:  # pragma: no cover
    from frayhq import ResourceConfig


def train_step() -> str:
    rank = os.environ["FRAY_TASK_INDEX"]
    line = f"rank {rank}/{os.environ['FRAY_NUM_TASKS']} chips {os.environ.get('TPU_VISIBLE_CHIPS')}"
    print(line, flush=True)
    return line


def main() -> list[str]:
    client = frayhq.connect("local", workers=0)
    try:
        for _ in range(4):  # one slice of four VMs
            client.local.add_worker("--tpu", "v5e-16", "--attr", "tpu-name=slice-a",
                                    "--cpu", "64", "--ram", "256g")
        if hasattr(ResourceConfig, "with_tpu") and ResourceConfig.__module__.startswith("fray"):
            res = ResourceConfig.with_tpu("v5litepod-16")
        else:
            res = ResourceConfig.with_tpu("v5e-16", vms_per_slice=4, chips_per_vm=4, cpu=8, ram="16g")
        job = client.submit(JobRequest(name="tpu-gang", entrypoint=Entrypoint.from_callable(train_step),
                                       resources=res))
        job.wait(300)
        return sorted(job.logs())
    finally:
        client.shutdown()


if __name__ == "__main__":
    for line in main():
        print(line)
