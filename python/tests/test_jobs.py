import time

import pytest
from fray.types import EnvironmentConfig

import frayhq
from frayhq import Entrypoint, JobRequest


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
    with pytest.raises(frayhq.Unsupported, match="secrets"):
        client.submit(req)


def test_bad_job_name(client):
    with pytest.raises(frayhq.ConfigError, match="job name"):
        client.submit(JobRequest(name="a/b", entrypoint=Entrypoint.from_binary("true", [])))


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
