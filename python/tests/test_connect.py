import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

import frayhq
from conftest import child_env
from frayhq._local import LocalCluster


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_unreachable_cluster_is_a_connection_error_within_10s(fray_bin_dir):
    t = time.monotonic()
    with pytest.raises(ConnectionError) as ei:
        frayhq.connect("nats://127.0.0.1:1")
    assert time.monotonic() - t < 11
    assert isinstance(ei.value, frayhq.FrayError)


def test_bad_spec_lists_the_accepted_forms():
    with pytest.raises(frayhq.ConfigError, match="accepted forms"):
        frayhq.connect("http://x")
    with pytest.raises(frayhq.ConfigError, match="address"):
        frayhq.connect("ray?namespace=x")


def test_shutdown_stops_the_local_cluster(fray_bin_dir):
    c = frayhq.connect("local", workers=1)
    pids = [p.pid for p in c.local.procs]
    assert all(_alive(p) for p in pids)
    c.shutdown()
    assert not any(_alive(p) for p in pids)


def test_a_stopped_local_cluster_leaves_no_worker_pipe_open(fray_bin_dir):
    c = frayhq.connect("local", workers=2)
    pipes = [p.stdout for p in c.local.procs if p.stdout is not None]
    assert len(pipes) == 2  # the workers' output, read by the log pumps
    c.shutdown()
    assert all(f.closed for f in pipes)


def test_local_cluster_dies_with_its_parent(fray_bin_dir, tmp_path):
    code = (
        "import frayhq, sys, time\n"
        "c = frayhq.connect('local', workers=1)\n"
        "print(c.local.dir, ' '.join(str(p.pid) for p in c.local.procs), flush=True)\n"
        "time.sleep(600)\n"
    )
    err = tmp_path / "stderr"
    line: list[str] = []
    with open(err, "w") as ef:
        p = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=ef, text=True, env=child_env()
        )
    try:
        line = p.stdout.readline().split()
        assert line, err.read_text()
        tmp, pids = line[0], [int(x) for x in line[1:]]
        assert pids and all(_alive(x) for x in pids), err.read_text()
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(x) for x in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(x) for x in pids)
        # Its parent could not remove its directory: the next local cluster
        # started on the machine does.
        assert os.path.isdir(tmp)
        LocalCluster(workers=0).stop()
        assert not os.path.exists(tmp)
    finally:
        p.kill()
        if line:
            shutil.rmtree(tmp, ignore_errors=True)


def test_a_local_cluster_leaves_the_directories_of_live_owners_alone(fray_bin_dir, client):
    mine = LocalCluster(workers=0)
    try:
        assert os.path.isdir(client.local.dir) and os.path.isdir(mine.dir)
    finally:
        mine.stop()
    assert os.path.isdir(client.local.dir)
    assert not os.path.exists(mine.dir)


def test_what_tasks_and_actors_print_on_a_local_cluster_shows_here(fray_bin_dir):
    code = (
        "import sys, frayhq\n"
        "def shout(x):\n"
        "    print('task-out', x)\n"
        "    print('task-err', x, file=sys.stderr)\n"
        "    return x\n"
        "class Talker:\n"
        "    def say(self):\n"
        "        print('actor-out')\n"
        "c = frayhq.connect('local', workers=1)\n"
        "assert c.run(shout, 1).result(60) == 1\n"
        "c.create_actor(Talker, name='talker').say()\n"
        "c.shutdown()\n"
        "q = frayhq.connect('local', workers=1, log_to_driver=False)\n"
        "assert q.run(shout, 2).result(60) == 2\n"
        "q.shutdown()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=child_env()
    )
    assert out.returncode == 0, out.stderr
    # Shown on this process's own streams, tagged as Ray's driver does,
    # before shutdown() returns; not with log_to_driver=False.
    assert re.search(r"^\(task=\S+ pid=\d+\) task-out 1$", out.stdout, re.M), out.stdout
    assert re.search(r"^\(task=\S+ pid=\d+\) task-err 1$", out.stderr, re.M), out.stderr
    assert re.search(r"^\(actor=default/talker\.say pid=\d+\) actor-out$", out.stdout, re.M), out.stdout
    assert "task-out 2" not in out.stdout and "task-err 2" not in out.stderr


def test_a_worker_output_line_is_read_back_as_printed():
    from frayhq._local import output_line

    rt = 'time=t level=INFO msg=output lang=python runtime="/py -m frayhq.runtime"'
    assert output_line(f'{rt} task=T1 pid=7 stream=stdout line="said \\"hi\\"\\tline=x é"') == (
        "stdout",
        '(task=T1 pid=7) said "hi"\tline=x é',
    )
    assert output_line(f'{rt} actor="" pid=8 stream=stderr line=bare') == ("stderr", "(pid=8) bare")
    assert output_line('time=t level=INFO msg="worker registered" worker=w1') is None


def test_current_client_is_the_first_connected(client):
    assert frayhq.current_client() is client
    other = frayhq.connect(client.url, namespace="other")
    try:
        with frayhq.set_current_client(other):
            assert frayhq.current_client() is other
        assert frayhq.current_client() is client
    finally:
        other.shutdown()


def test_namespace_from_job_id(client, monkeypatch):
    monkeypatch.setenv("FRAY_JOB_ID", "/teamx/job1")
    monkeypatch.delenv("FRAY_NAMESPACE", raising=False)
    c = frayhq.connect(client.url)
    try:
        assert c.namespace == "teamx"
    finally:
        c.shutdown()


def test_every_exception_class_subclasses_fray_error():
    import inspect

    for _, cls in inspect.getmembers(frayhq, inspect.isclass):
        if issubclass(cls, BaseException):
            assert issubclass(cls, frayhq.FrayError), cls


def test_ray_spec_sends_jobs_to_the_ray_backend(fray_bin_dir):
    # No Ray head listens there: the job is recorded on backend ray, not run natively.
    c = frayhq.connect("ray?address=http://127.0.0.1:9")
    try:
        h = c.submit(frayhq.JobRequest(name="to-ray", entrypoint=frayhq.Entrypoint.from_binary("true")))
        rec = h.info()
        assert rec["backend"] == "ray"
        assert h.status() != frayhq.JobStatus.SUCCEEDED
    finally:
        c.shutdown()
