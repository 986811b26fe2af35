import sys
import time

import pytest
from fray.types import EnvironmentConfig

import frayhq
from frayhq import Entrypoint, JobRequest
from frayhq._jobs import token


def _double(x):
    print("hello from the job", x, flush=True)
    return x * 2


def _fail():
    raise KeyError("missing thing")


def test_callable_job_runs_and_returns(client, name):
    h = client.submit(JobRequest(name=name, entrypoint=Entrypoint.from_callable(_double, args=(21,))))
    assert name in h.job_id
    assert h.wait(120) == frayhq.JobStatus.SUCCEEDED
    assert h.status() == "succeeded"
    assert h.result(10) == 42
    assert "hello from the job 21" in h.logs()


def test_callable_job_exception_is_reraised(client, name):
    h = client.submit(JobRequest(name=name, entrypoint=Entrypoint.from_callable(_fail)))
    with pytest.raises(KeyError, match="missing thing"):
        h.wait(120)
    assert h.wait(1, raise_on_failure=False) == frayhq.JobStatus.FAILED


def test_binary_job_logs_tail_and_terminate(client, name):
    argv = ["-c", "for i in 1 2 3 4 5; do echo line $i; done; sleep 60"]
    h = client.submit(JobRequest(name=name, entrypoint=Entrypoint.from_binary("sh", argv)))
    deadline = time.monotonic() + 60
    while len(h.logs()) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert h.logs(max_lines=2) == ("line 4", "line 5")
    h.terminate()
    assert h.status() == frayhq.JobStatus.STOPPED
    with pytest.raises(frayhq.JobFailed) as ei:
        frayhq.wait_all([h])
    assert ei.value.job_id == h.job_id


def test_a_failed_jobs_error_shows_the_end_of_its_log(client, name):
    script = "for i in $(seq 1 500); do echo line $i; done; echo 'cannot open /data/shard-7' >&2; exit 3"
    h = client.submit(JobRequest(name=name, entrypoint=Entrypoint.from_binary("sh", ["-c", script])))
    with pytest.raises(frayhq.JobFailed) as ei:
        h.wait(60)
    msg = str(ei.value)
    assert "exited with code 3" in msg
    assert "cannot open /data/shard-7" in msg
    assert "line 500" in msg and "line 1\n" not in msg  # the end, not the whole log


def test_a_callable_job_on_a_cluster_runs_with_the_workers_python(tmp_path, name, monkeypatch):
    # A cluster of its own, reached by URL: the client cannot know the
    # workers' interpreter, so it writes python3; the worker runs the job
    # with its --python and --python-path, as it runs Python tasks.
    import procs

    mods = tmp_path / "mods"
    mods.mkdir()
    mod = "jobmod_" + name.replace("-", "_")
    (mods / f"{mod}.py").write_text("import sys\n\ndef where(x):\n    return [x, sys.executable]\n")
    monkeypatch.syspath_prepend(str(mods))
    monkeypatch.delenv("FRAY_JOB_PYTHON", raising=False)
    fn = __import__(mod).where
    b = procs.Broker(tmp_path)
    w = procs.worker(tmp_path, b.url, "w-" + name, "--python-path", str(mods))
    try:
        with frayhq.connect(b.url) as c:
            h = c.submit(JobRequest(name=name, entrypoint=Entrypoint.from_callable(fn, args=(7,))))
            assert h.info()["request"]["entrypoint"]["argv"][:3] == ["python3", "-m", "frayhq.job"]
            assert h.result(120) == [7, sys.executable]
    finally:
        w.stop()
        b.stop()


def test_follow_logs_until_the_end(client, name):
    argv = ["-c", "for i in 1 2 3; do echo step $i; sleep 0.2; done"]
    h = client.submit(JobRequest(name=name, entrypoint=Entrypoint.from_binary("sh", argv)))
    assert list(h.follow_logs()) == ["step 1", "step 2", "step 3"]


def test_already_exists_carries_the_handle(client, name):
    req = JobRequest(name=name, entrypoint=Entrypoint.from_binary("sleep", ["30"]))
    h = client.submit(req)
    try:
        again = client.submit(req)  # adopt_existing=True: the same job
        assert again.job_id == h.job_id
        with pytest.raises(frayhq.JobAlreadyExists) as ei:
            client.submit(req, adopt_existing=False)
        assert ei.value.handle.job_id == h.job_id
    finally:
        h.terminate()


def test_wait_all_returns_statuses_in_order(client, name):
    hs = [
        client.submit(JobRequest(name=f"{name}-{i}", entrypoint=Entrypoint.from_binary("true", [])))
        for i in range(2)
    ]
    assert frayhq.wait_all(hs, timeout=120) == [frayhq.JobStatus.SUCCEEDED] * 2


def test_secrets_are_refused(client, name):
    env = EnvironmentConfig(workspace=".", secrets={"HF_TOKEN": "x"})
    req = JobRequest(name=name, entrypoint=Entrypoint.from_binary("true", []), environment=env)
    with pytest.raises(frayhq.Unsupported, match="secrets") as ei:
        client.submit(req)
    # The error says what to do instead.
    assert "HF_TOKEN" in str(ei.value) and "env_from_worker" in str(ei.value) and "--secret" in str(ei.value)


def test_requests_are_written_as_version_2_with_millisecond_timeouts(client, name):
    req = frayhq.JobRequest(name=name, entrypoint=frayhq.Entrypoint.from_binary("sleep", ["30"]), timeout=1.5)
    h = client.submit(req)
    r = h.info()["request"]
    raw = client._run(client._jobs.record(h.job_id))["request"]  # noqa: SLF001 - the stored bytes, not read_request's
    assert raw["v"] == 2 and raw["timeout_ms"] == 1500 and "timeout" not in raw
    assert r["timeout_ms"] == 1500
    assert h.wait(60, raise_on_failure=False) == frayhq.JobStatus.STOPPED
    assert "timed out after 1.5s" in h.info().get("error", "")
    # A scheduling timeout (fray's own field) travels in milliseconds too.
    req = frayhq.JobRequest(
        name=name + "-s", entrypoint=frayhq.Entrypoint.from_binary("true", []), scheduling_timeout=0.0015
    )
    h = client.submit(req)
    assert client._run(client._jobs.record(h.job_id))["request"]["scheduling_timeout_ms"] == 2  # noqa: SLF001
    assert h.wait(60) == frayhq.JobStatus.SUCCEEDED


def test_version_1_requests_are_read(client, name):
    """A record written before version 2 (nanosecond timeouts) reads as version 2."""
    jid = f"/{client.namespace}/{name}"
    rec = {
        "v": 1,
        "id": jid,
        "status": "SUCCEEDED",
        "request": {"v": 1, "name": name, "timeout": 90_000_000_000, "scheduling_timeout": 600_001_500_000},
    }

    async def put() -> None:
        kv = await client._jobs.kv()  # noqa: SLF001
        await kv.put("j." + token(jid), frayhq._codec.dumps_plain(rec))  # noqa: SLF001

    client._run(put())  # noqa: SLF001
    r = frayhq.JobHandle(client, jid).info()["request"]
    assert r["timeout_ms"] == 90_000 and r["scheduling_timeout_ms"] == 600_002 and "timeout" not in r


def test_env_from_worker_is_filled_by_the_worker_and_stored_nowhere(tmp_path, name):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    with frayhq.connect("local", workers=0) as c:
        c.local.add_worker("--secret", f"HF_TOKEN={secret}")
        deadline = time.monotonic() + 60
        while not c._loop.run(c._workers.live("default")):  # noqa: SLF001
            assert time.monotonic() < deadline, c.local.logs()
            time.sleep(0.1)
        env = frayhq.EnvironmentConfig(env_from_worker=["HF_TOKEN"])
        ep = frayhq.Entrypoint.from_binary("sh", ["-c", 'echo "token=$HF_TOKEN"'])
        h = c.submit(frayhq.JobRequest(name=name, entrypoint=ep, environment=env))
        assert h.wait(60) == frayhq.JobStatus.SUCCEEDED
        assert any("token=s3cr3t-value" in line for line in h.logs())
        assert h.info()["request"]["environment"]["env_from_worker"] == ["HF_TOKEN"]
        assert "s3cr3t-value" not in repr(h.info())


def test_bad_job_name(client):
    with pytest.raises(frayhq.ConfigError, match="job name"):
        client.submit(JobRequest(name="a/b", entrypoint=Entrypoint.from_binary("true", [])))


@pytest.mark.parametrize("where", ["request", "resources"])
def test_negative_replicas_are_refused_naming_them(client, name, where):
    from fray.types import Entrypoint as MarinEntrypoint
    from fray.types import JobRequest as MarinJobRequest
    from fray.types import ResourceConfig

    ep = MarinEntrypoint.from_binary("true", [])
    if where == "request":
        req = MarinJobRequest(name=name, entrypoint=ep, replicas=-2)
    else:
        req = MarinJobRequest(name=name, entrypoint=ep, resources=ResourceConfig(replicas=-2))
    with pytest.raises(frayhq.ConfigError, match=r"replicas=-2: want >= 1"):
        client.submit(req)
    with pytest.raises(frayhq.ConfigError, match=r"replicas=-1"):
        client.submit(JobRequest(name=name, entrypoint=Entrypoint.from_binary("true", []), replicas=-1))


def _submit_child(name):
    import frayhq as f

    c = f.current_client()
    h = c.submit(f.JobRequest(name="child", entrypoint=f.Entrypoint.from_callable(_child_env)))
    h.wait(120)
    return h.job_id, h.result(30)


def _child_env():
    import os

    return os.environ.get("FROM_PARENT"), os.environ["FRAY_JOB_ID"]


def test_a_job_submitted_inside_a_job_is_its_child(client, name):
    env = frayhq.EnvironmentConfig(env_vars={"FROM_PARENT": "yes"})
    h = client.submit(
        JobRequest(
            name=name, entrypoint=Entrypoint.from_callable(_submit_child, args=(name,)), environment=env
        )
    )
    h.wait(300)
    child_id, (inherited, seen_id) = h.result(30)
    assert child_id == f"{h.job_id}/child" == seen_id
    assert inherited == "yes"


def test_without_a_dispatcher_the_job_is_recorded_pending(fray_bin_dir, name):
    from frayhq._local import LocalCluster

    lc = LocalCluster(workers=0, broker_args=["--no-dispatcher"])
    try:
        c = frayhq.connect(lc.url)
        try:
            req = JobRequest(name=name, entrypoint=Entrypoint.from_binary("true", []))
            h = c.submit(req)
            assert h.status() == frayhq.JobStatus.PENDING
            assert h.info()["pending_reason"] == "waiting for a dispatcher"
            assert c.submit(req).job_id == h.job_id  # adopted
            with pytest.raises(frayhq.JobAlreadyExists):
                c.submit(req, adopt_existing=False)
        finally:
            c.shutdown()
    finally:
        lc.stop()
