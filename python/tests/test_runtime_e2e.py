"""Python callables and classes end to end: the client pickles them, the
workers' Python runtime (fray-worker --python) runs them."""

import os

import pytest

import frayhq


def _square(x):
    return x * x


def _fail(msg):
    raise ValueError(msg)


def _whoami():
    import fray.current_client

    c = frayhq.current_client()
    return c.namespace, type(fray.current_client.current_client()).__module__.split(".")[0]


class Acc:
    def __init__(self, start, step=1):
        self.total = start
        self.step = step

    def add(self, n=None):
        self.total += self.step if n is None else n
        return self.total

    def pid(self):
        return os.getpid()

    def fail(self):
        raise KeyError("no such key")


def test_run_python_callables(client):
    assert client.run(_square, 7).result(60) == 49
    assert client.run(lambda a, b=0: a - b, 10, b=3).result(60) == 7
    fs = [client.run(_square, i) for i in range(50)]
    assert sum(client.get(fs)) == sum(i * i for i in range(50))


def test_remote_exception_is_reraised_as_itself(client):
    with pytest.raises(ValueError, match="from the worker"):
        client.run(_fail, "from the worker").result(60)


def test_refs_in_arguments_resolve_on_the_worker(client):
    r = client.put(list(range(1000)))
    assert client.run(sum, r).result(60) == sum(range(1000))


def test_large_python_values_both_ways(client):
    big = {"blob": b"z" * (1 << 20), "s": {1, 2, 3}}
    assert client.run(lambda v: v, big).result(60) == big


def test_inside_a_task_current_client_is_fray_for_both_apis(client):
    other = frayhq.connect(client.url, namespace="team-b")
    try:
        ns, mod = other.run(_whoami).result(60)
    finally:
        other.shutdown()
    assert ns == "team-b" and mod == "frayhq"


def test_python_actor_from_the_client(client, name):
    h = client.create_actor(Acc, 10, name=name, step=2)
    try:
        assert h.add() == 12
        assert h.add.remote(5).result(30) == 17
        assert h.add(n=1) == 18
        assert h.pid() != os.getpid()
        with pytest.raises(KeyError, match="no such key"):
            h.fail()
        assert h.add.submit(2).result(60) == 20
        # The handle travels into a task and is called from there.
        assert client.run(lambda hh: hh.add(100), h).result(60) == 120
    finally:
        h.shutdown()
    with pytest.raises(frayhq.ActorUnavailableError):
        h.add()


def test_python_actor_group(client, name):
    g = client.create_actor_group(Acc, 0, name=name, count=2)
    try:
        hs = g.wait_ready(timeout=60)
        assert len({h.pid() for h in hs}) == 2
    finally:
        g.shutdown()


class WhoAmI:
    def which(self):
        import fray.current_client

        return frayhq.current_client().namespace, type(fray.current_client.current_client()).__module__.split(
            "."
        )[0]


def test_inside_a_python_actor_current_client_is_fray_in_its_namespace(client, name):
    h = client.create_actor(WhoAmI, name=name, namespace="team-c")
    try:
        assert h.which() == ["team-c", "frayhq"]
    finally:
        h.shutdown()


def test_call_to_an_actor_whose_host_was_killed_is_unavailable(fray_bin_dir, name):
    import signal
    import time

    import fray.actor

    c = frayhq.connect("local", workers=2)
    try:
        h = c.create_actor(Acc, 0, name=name)
        assert h.add() == 1
        rec, _ = c._run(c._actors.get_record(c.namespace, name))
        host = next(p for p in c.local.procs[1:] if rec["host"] in p.args)
        host.send_signal(signal.SIGKILL)
        t = time.monotonic()
        with pytest.raises(fray.actor.ActorUnavailableError):
            while time.monotonic() - t < 60:  # calls fail once the lease (10 s) is gone
                h.add()
    finally:
        c.shutdown()


class EnvReader:
    def get(self, k):
        return os.environ.get(k)


def test_actor_environment_env_vars_reach_its_process(client, name):
    from fray.types import EnvironmentConfig

    env = EnvironmentConfig(workspace=".", env_vars={"CURRICULUM_SEED": "7"})
    h = client.create_actor(EnvReader, name=name, environment=env)
    try:
        assert h.get("CURRICULUM_SEED") == "7"
    finally:
        h.shutdown()
    with pytest.raises(frayhq.Unsupported, match="pip_packages"):
        client.create_actor(
            EnvReader, name=name, environment=EnvironmentConfig(workspace=".", pip_packages=["x"])
        )
