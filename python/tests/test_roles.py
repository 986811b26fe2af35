"""frayhq under fray auth's roles: a broker started on `fray auth init`'s
nats.conf, a worker as the worker user, clients as the producer and the
viewer with the credentials of their .env files."""

import time

import pytest

import frayhq
import procs


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("roles")
    d = procs.auth_init(tmp, "--worker", "rw1", "--producer", "producer", "--producer", "jobs")
    b = procs.Broker(tmp, "--config", str(d / "nats.conf"), env=procs.env_file(d / "fray-admin.env"))
    w = procs.worker(
        tmp,
        b.url,
        "rw1",
        "--job-env",
        str(d / "fray-jobs.env"),
        env=procs.env_file(d / "fray-worker-rw1.env"),
    )
    yield d, b
    w.stop()
    b.stop()


def as_user(monkeypatch: pytest.MonkeyPatch, d, user: str) -> None:
    for k, v in procs.env_file(d / f"{user}.env").items():
        monkeypatch.setenv(k, v)


def wait_worker(c: frayhq.Client) -> None:
    deadline = time.monotonic() + 60
    while not c._loop.run(c._workers.live("default")):
        assert time.monotonic() < deadline, "the worker did not register within 60 s"
        time.sleep(0.1)


def test_producer_runs_tasks_and_reads_its_own_results(roles, monkeypatch):
    d, b = roles
    as_user(monkeypatch, d, "fray-producer")
    with frayhq.connect(b.url) as c:
        wait_worker(c)
        f = c.run(lambda x: x * 2, 21)
        assert f.result(60) == 42
        assert f.id.startswith("fray-producer.")
        # Looked up by id, from a second client of the same user: a direct
        # get of the result's subject, which the role allows.
        with frayhq.connect(b.url) as c2:
            assert c2.future(f.id).result(30) == 42
        # Many at once, through the pipelined submit path.
        assert c.get([c.run(pow, i, 2) for i in range(20)], timeout=60) == [i * i for i in range(20)]


def test_producer_code_on_the_worker_holds_the_job_credentials_not_the_workers(roles, monkeypatch):
    d, b = roles
    as_user(monkeypatch, d, "fray-producer")
    worker = procs.env_file(d / "fray-worker-rw1.env")
    with frayhq.connect(b.url) as c:
        wait_worker(c)
        env = c.run(lambda: dict(__import__("os").environ)).result(60)
    assert env.get("FRAY_NATS_USER") == "fray-jobs"
    assert worker["FRAY_NATS_PASSWORD"] not in env.values()
    assert "FRAY_WORKER_ID" not in env


def test_viewer_submit_fails_at_once_naming_subject_and_user(roles, monkeypatch):
    d, b = roles
    as_user(monkeypatch, d, "fray-viewer")
    with frayhq.connect(b.url) as c:
        wait_worker(c)
        began = time.monotonic()
        f = c.run(lambda: 1)
        with pytest.raises(frayhq.PermissionDenied) as ei:
            f.result(25)
        assert time.monotonic() - began < 5, "refused after the publish timeout, want at once"
        e = ei.value
        assert e.op == "publish" and e.subject == "fray.tasks.default"
        assert "fray-viewer" in e.user and "fray-viewer" in str(e) and "fray.tasks.default" in str(e)


def test_viewer_put_fails_at_once(roles, monkeypatch):
    d, b = roles
    as_user(monkeypatch, d, "fray-viewer")
    with frayhq.connect(b.url) as c:
        began = time.monotonic()
        with pytest.raises(frayhq.PermissionDenied) as ei:
            c.put(b"x" * 1000)
        assert time.monotonic() - began < 5
        # Matched by a wildcard pattern: the subject as nats-py reports it, lowercased.
        assert "fray_objects" in ei.value.subject.lower()
        assert "fray-viewer" in str(ei.value)


def test_producer_may_not_read_another_owners_result(roles, monkeypatch):
    d, b = roles
    as_user(monkeypatch, d, "fray-producer")
    with frayhq.connect(b.url) as c:
        began = time.monotonic()
        with pytest.raises(frayhq.PermissionDenied) as ei:
            c.future("someoneelse.abcdefghijklmnopqrstuv").result(25)
        assert time.monotonic() - began < 5
        assert "fray.results.someoneelse.abcdefghijklmnopqrstuv" in ei.value.subject


def test_wrong_owner_fails_connect_naming_the_stored_subject(roles, monkeypatch):
    d, b = roles
    as_user(monkeypatch, d, "fray-producer")
    monkeypatch.setenv("FRAY_OWNER", "notme")
    with pytest.raises(frayhq.PermissionDenied) as ei:
        frayhq.connect(b.url)
    assert ei.value.op == "subscribe" and ei.value.subject == "fray.stored.notme.*"
    assert "FRAY_OWNER" in str(ei.value)


def test_producer_submits_a_job_and_the_viewer_is_refused_at_once(roles, monkeypatch, name):
    d, b = roles
    req = frayhq.JobRequest(
        name=name, entrypoint=frayhq.Entrypoint.from_binary("sh", ["-c", "echo hi from $0"])
    )
    as_user(monkeypatch, d, "fray-viewer")
    with frayhq.connect(b.url) as c:
        began = time.monotonic()
        with pytest.raises(frayhq.PermissionDenied) as ei:
            c.submit(req)
        assert time.monotonic() - began < 5
        assert ei.value.subject == "fray.dispatcher.submit" and "fray-viewer" in str(ei.value)
    as_user(monkeypatch, d, "fray-producer")
    with frayhq.connect(b.url) as c:
        wait_worker(c)
        h = c.submit(req)
        h.wait(60)
        assert any("hi from" in line for line in h.logs())


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> int:
        self.n += k
        return self.n


def test_producer_runs_an_actor_and_the_viewer_may_not_call_it(roles, monkeypatch, name):
    d, b = roles
    as_user(monkeypatch, d, "fray-producer")
    with frayhq.connect(b.url) as c:
        wait_worker(c)
        h = c.create_actor(Counter, name=name)
        assert h.add.remote(5).result(60) == 5
        # A synchronous call on the lane, opened with the producer's user,
        # password and inbox prefix.
        assert h.add(1) == 6
        assert c._actors.lane.answered == 1  # noqa: SLF001
        as_user(monkeypatch, d, "fray-viewer")
        with frayhq.connect(b.url) as v:
            began = time.monotonic()
            with pytest.raises(frayhq.PermissionDenied) as ei:
                v.get_actor(name).add.remote(1).result(25)
            assert time.monotonic() - began < 5
            assert ei.value.subject.startswith("fray.actor.") and "fray-viewer" in str(ei.value)
            # Refused on the lane, then the async way reports it.
            began = time.monotonic()
            with pytest.raises(frayhq.PermissionDenied, match="fray-viewer"):
                v.get_actor(name).add(1)
            assert time.monotonic() - began < 5
            assert v._actors.lane.sent == 1  # noqa: SLF001
            with pytest.raises(frayhq.PermissionDenied):
                v.create_actor(Counter, name=name + "-v")
        h.shutdown()
