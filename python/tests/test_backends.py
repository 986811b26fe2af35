"""ray?/iris? specs from Python against a real Ray head and a real Iris
local cluster, started as the Go suite starts them (integration/backends,
through the headcmd helper)."""

import subprocess
import time

import pytest

import frayhq
from conftest import ROOT
from frayhq import Entrypoint, EnvironmentConfig, JobRequest, JobStatus


@pytest.fixture(scope="module", params=["ray", "iris"])
def plain_spec(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A plain spec (no nats=) of a running backend."""
    kind = request.param
    exe = tmp_path_factory.mktemp("headcmd") / "headcmd"
    subprocess.run(["go", "build", "-o", str(exe), "./integration/backends/headcmd"], cwd=ROOT, check=True)
    p = subprocess.Popen([str(exe), kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        line = p.stdout.readline().strip()  # the first start installs the backend: minutes
        assert line.startswith("address="), f"headcmd {kind}: {line!r}, exit {p.poll()}"
        addr = line.removeprefix("address=")
        yield f"ray?address={addr}&namespace=pyplain" if kind == "ray" else f"iris?controller={addr}"
    finally:
        p.stdin.close()
        p.wait(120)
    assert p.returncode == 0, f"the {kind} head left processes behind (headcmd's stderr says which)"


def wait_until(what: str, cond, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.25)


def test_plain_spec_submits_reads_and_stops_jobs_from_any_process(plain_spec, name):
    spec = plain_spec
    kind = spec.partition("?")[0]
    say = JobRequest(
        name=name,
        entrypoint=Entrypoint.from_binary("sh", ["-c", "echo py-plain-hello $PLAIN_K"]),
        environment=EnvironmentConfig(env_vars={"PLAIN_K": "v1"}),
    )
    sleeper = JobRequest(
        name=name + "-s", entrypoint=Entrypoint.from_binary("sh", ["-c", "echo up; sleep 600"])
    )
    with frayhq.connect(spec) as c:
        assert c.local is not None  # a private broker whose dispatcher runs jobs on the backend
        h = c.submit(say)
        assert h.wait(180) == JobStatus.SUCCEEDED
        rec = h.info()
        assert rec["backend"] == kind and rec["external_id"]
        wait_until("the job's output in its logs", lambda: any("py-plain-hello v1" in ln for ln in h.logs()))
        s = c.submit(sleeper)
        wait_until("the sleeper running", lambda: s.status() == JobStatus.RUNNING)
        sleeper_id = s.job_id
    # Another client (another private broker, nothing recorded there): the
    # backend is the record, so it sees both jobs, and stops the sleeper there.
    with frayhq.connect(spec) as c2:
        assert frayhq.JobHandle(c2, h.job_id).status() == JobStatus.SUCCEEDED
        assert any("py-plain-hello v1" in ln for ln in frayhq.JobHandle(c2, h.job_id).logs())
        s2 = frayhq.JobHandle(c2, sleeper_id)
        assert s2.status() == JobStatus.RUNNING
        s2.terminate()
        assert s2.status() == JobStatus.STOPPED
    with frayhq.connect(spec) as c3:
        assert frayhq.JobHandle(c3, sleeper_id).status() == JobStatus.STOPPED
