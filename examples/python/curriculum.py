"""A trainer and rollout workers sharing one curriculum actor (the RL
pattern): every job calls current_client().create_actor(Curriculum,
name="curriculum", get_if_exists=True, resources=ResourceConfig(
preemptible=False)) and reaches the same instance, placed on a
non-preemptible worker. The jobs are marin-style callables; the code
inside them is what marin code does today, unchanged. An actor created
from inside a job ends with that job unless detached=True, so the driver,
which outlives them all, calls it first.

    python examples/python/curriculum.py
"""

from __future__ import annotations

import frayhq
from frayhq import Entrypoint, JobRequest, ResourceConfig

try:  # marin's own types and client resolution when marin-fray is installed
    from fray.current_client import current_client, set_current_client
    from fray.types import ResourceConfig as MarinResourceConfig
except ImportError:  # pragma: no cover - without marin-fray, frayhq's own
    from frayhq import current_client, set_current_client

    MarinResourceConfig = ResourceConfig


class Curriculum:
    """Hands out lessons in order and records the rollouts' rewards."""

    def __init__(self, lessons: int) -> None:
        self.next = 0
        self.lessons = lessons
        self.rewards: list[tuple[str, int, float]] = []

    def lesson(self) -> int | None:
        if self.next >= self.lessons:
            return None
        self.next += 1
        return self.next - 1

    def report(self, who: str, lesson: int, reward: float) -> None:
        self.rewards.append((who, lesson, reward))

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for who, _, _ in self.rewards:
            out[who] = out.get(who, 0) + 1
        return out


def _curriculum():
    return current_client().create_actor(
        Curriculum, 12, name="curriculum", get_if_exists=True,
        resources=MarinResourceConfig(preemptible=False),
    )


def rollout(worker: str) -> int:
    cur = _curriculum()
    done = 0
    while (lesson := cur.lesson()) is not None:
        cur.report(worker, lesson, reward=lesson * 0.5)
        done += 1
    return done


def trainer() -> dict[str, int]:
    cur = _curriculum()
    return cur.summary()


def main() -> dict[str, int]:
    client = frayhq.connect()
    try:
        # The driver makes sure it exists first: an actor a job creates ends
        # with that job (unless detached), and here the jobs come and go.
        with set_current_client(client):
            _curriculum()
        jobs = [
            client.submit(JobRequest(name=f"rollout-{i}", entrypoint=Entrypoint.from_callable(rollout, args=(f"r{i}",))))
            for i in range(2)
        ]
        frayhq.wait_all(jobs, timeout=300)
        t = client.submit(JobRequest(name="trainer", entrypoint=Entrypoint.from_callable(trainer)))
        t.wait(300)
        summary = t.result(30)
        # One curriculum served every job: its lessons were handed out once.
        assert sum(summary.values()) == 12, summary
        return summary
    finally:
        client.shutdown()


if __name__ == "__main__":
    print(main())
