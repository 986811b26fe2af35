"""host_actor: long-running operations, and the lease kept across a broker
outage longer than the lease (a real fray-broker killed and restarted on
the same port and store)."""

import time

import pytest

import frayhq
import procs


class Trainer:
    def __init__(self) -> None:
        self.steps = 0

    def train(self, steps: int, *, lr: float = 0.1) -> dict:
        for _ in range(steps):
            self.steps += 1
        return {"steps": self.steps, "lr": lr}

    def fail(self) -> None:
        raise KeyError("no such shard")

    def count(self) -> int:
        return self.steps


def test_host_actor_serves_long_running_operations(client, name):
    hosted = client.host_actor(Trainer, name=name)
    try:
        h = client.get_actor(name)
        assert h.train.submit(5, lr=0.5).result(30) == {"steps": 5, "lr": 0.5}
        assert h.train.submit(2).result(30) == {"steps": 7, "lr": 0.1}
        with pytest.raises(KeyError, match="no such shard"):
            h.fail.submit().result(30)
        with pytest.raises(frayhq.RemoteError, match="no method 'nope'"):
            h.nope.submit().result(30)
        assert h.count() == 7
    finally:
        hosted.shutdown()


@pytest.fixture
def broker(tmp_path):
    b = procs.Broker(tmp_path)
    yield b
    b.stop()


def test_host_actor_takes_its_lease_back_after_a_long_broker_outage(broker, name):
    with frayhq.connect(broker.url) as c:
        hosted = c.host_actor(Trainer, name=name)
        h = c.get_actor(name)
        assert h.train(1)["steps"] == 1
        # Down for longer than the 10 s lease: the restarted broker drops the key.
        broker.restart(down=12)
        deadline = time.monotonic() + 60
        while True:
            rec, _ = c._run(c._actors.get_record(c.namespace, name))  # noqa: SLF001
            if rec is not None and rec.get("state") == "ready":
                break
            assert not hosted._host.stopped, "the host gave its lease up at the first refused renewal"  # noqa: SLF001
            assert time.monotonic() < deadline, f"no ready record within 60 s: {rec}"
            time.sleep(0.1)
        assert rec["host"] == hosted._host.id  # noqa: SLF001
        assert h.train(1)["steps"] == 2  # the same instance, still serving
        hosted.shutdown()
