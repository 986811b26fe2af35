"""marin-fray 0.2.227's own API running on fray: set_current_client with a
frayhq client, marin's JobRequest/ResourceConfig objects, marin's wait_all,
marin's JobStatus."""

import time

import pytest
from fray.actor import ActorUnavailableError, current_actor
from fray.client import JobAlreadyExists, JobFailed, wait_all
from fray.current_client import current_client, set_current_client
from fray.types import ActorConfig, Entrypoint, JobRequest, JobStatus, ResourceConfig


def _job(x):
    return x + 1


def _crash():
    raise RuntimeError("job crashed")


def test_marin_submit_and_wait_all(client, name):
    with set_current_client(client):
        c = current_client()
        assert c is client
        jobs = [
            c.submit(JobRequest(name=f"{name}-{i}", entrypoint=Entrypoint.from_callable(_job, args=(i,))))
            for i in range(2)
        ]
        statuses = wait_all(jobs, timeout=300)
    assert statuses == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    assert all(JobStatus.finished(s) for s in statuses)
    assert jobs[0].status() is JobStatus.SUCCEEDED


def test_marin_wait_all_raises_jobfailed(client, name):
    with set_current_client(client):
        h = current_client().submit(
            JobRequest(name=name, entrypoint=Entrypoint.from_binary("sh", ["-c", "exit 3"]))
        )
        with pytest.raises(JobFailed) as ei:
            wait_all([h], timeout=300)
    assert ei.value.failed_status == JobStatus.FAILED


def test_callable_job_exception_via_marin_handle(client, name):
    h = client.submit(JobRequest(name=name, entrypoint=Entrypoint.from_callable(_crash)))
    with pytest.raises(RuntimeError, match="job crashed"):
        h.wait(300)


def test_marin_job_already_exists(client, name):
    req = JobRequest(name=name, entrypoint=Entrypoint.from_binary("sleep", ["30"]))
    h = client.submit(req)
    try:
        with pytest.raises(JobAlreadyExists) as ei:
            client.submit(req, adopt_existing=False)
        assert ei.value.handle.job_id == h.job_id
    finally:
        h.terminate()


def test_marin_create_actor_non_preemptible(client, name):
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self, k=1):
            self.n += k
            return self.n

    with set_current_client(client):
        h = current_client().create_actor(
            Counter,
            name=name,
            resources=ResourceConfig(preemptible=False),
            actor_config=ActorConfig(max_concurrency=1),
        )
        try:
            assert h.incr.remote(2).result() == 2
            assert h.incr() == 3
        finally:
            h.shutdown()
        with pytest.raises(ActorUnavailableError):
            h.incr()


class _Sampler:
    """An actor as marin code writes it: its context read in __init__."""

    def __init__(self):
        import os

        ctx = current_actor()
        self.ctx, self.pid = ctx, os.getpid()

    def who(self):
        return [self.ctx.group_name, self.ctx.index, self.pid]

    def finish(self):
        self.ctx.shutdown_event.set()
        return "done"

    def give_up(self):
        self.ctx.fail(RuntimeError("sampler gave up"))
        return "failing"

    def me(self):
        return self.ctx.handle.name


def test_marin_current_actor_in_fray_actors(client, name):
    with set_current_client(client):
        group = current_client().create_actor_group(
            _Sampler, name=name, count=2, actor_config=ActorConfig(max_restarts=1)
        )
        try:
            a, b = group.wait_ready(timeout=60)
            assert sorted(h.who()[:2] for h in (a, b)) == [[name, 0], [name, 1]]
            assert a.me() == a.name  # the context's handle is the actor's own
            # shutdown_event: the actor ends cleanly, no restart.
            assert a.finish() == "done"
            with pytest.raises(ActorUnavailableError, match="stopped"):
                a.who()
            # fail(exc): answered, then the actor fails and restarts per its policy.
            pid = b.who()[2]
            assert b.give_up() == "failing"
            deadline = time.monotonic() + 60
            while True:  # a call racing the failing instance is lost with it
                try:
                    now = b.who()[2]
                    break
                except ActorUnavailableError:
                    assert time.monotonic() < deadline, "the failed actor was not restarted"
            assert now != pid
        finally:
            group.shutdown()
        hosted = current_client().host_actor(_Sampler, name=name + "-h")
        try:
            assert hosted.handle.who()[:2] == [name + "-h", 0]
            assert hosted.handle.finish() == "done"
            with pytest.raises(ActorUnavailableError):
                hosted.handle.who()
        finally:
            hosted.shutdown()


def test_an_actor_asking_for_a_device_is_told_placement_does_not_give_it(client, name, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="frayhq"):
        h = client.create_actor(_Sampler, name=name, resources=ResourceConfig.with_tpu("v5litepod-16"))
        plain = client.create_actor(_Sampler, name=name + "-cpu", resources=ResourceConfig(preemptible=False))
    try:
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1, said
        assert f"actor default/{name} asks for device tpu v5litepod-16" in said[0]
        assert "does not honour" in said[0] and "as a job" in said[0]
        assert h.who()[0] == name  # still created: on a cluster of TPU workers it has one
    finally:
        h.shutdown()
        plain.shutdown()


def test_with_tpu_request_is_accepted_as_is(client):
    from frayhq._jobs import request_map

    req = JobRequest(
        name="tpu",
        entrypoint=Entrypoint.from_binary("true", []),
        resources=ResourceConfig.with_tpu("v5litepod-16"),
    )
    wire = request_map(client, req, None)
    assert wire["resources"]["device"] == {"kind": "tpu", "variant": "v5litepod-16", "count": 4}
    assert wire["replicas"] == 4 and wire["coscheduling"] == {"group_by": "tpu-name"}
