import pickle
import subprocess
import sys

import pytest

import frayhq
from conftest import child_env


class Acc:
    def __init__(self, start):
        self.total = start

    def add(self, x, y=0):
        self.total += x + y
        return self.total

    def boom(self):
        raise ValueError("bad value")

    def finish(self, x):
        # Ends this actor cleanly; the caller still gets its answer.
        raise frayhq.StopActor(self.total + x)

    def call_other(self, handle, n):
        # A handle that travelled here pickled calls through this process's client.
        return handle.Add(n)


def test_go_actor_with_plain_values(client, name):
    h = client.create_actor("fray.Counter", name=name)
    assert h.Add(5) == 5
    assert h.Add.remote(2).result(10) == 7
    assert h.Get() == 7
    assert h.Add.submit(3).result(30) == 10  # a long-running operation
    h.shutdown()
    with pytest.raises(frayhq.ActorUnavailableError, match="stopped"):
        h.Get()


def test_a_shut_down_actors_name_is_created_again_at_once(client, name):
    # The stopped record is deleted and the new claim is made over its
    # delete marker (it used to spin on the marker forever).
    h = client.create_actor("fray.Counter", name=name)
    h.Add(1)
    h.shutdown()
    again = client.create_actor("fray.Counter", name=name)
    assert again.Add(2) == 2
    again.shutdown()


def test_get_if_exists_reaches_the_same_instance(client, name):
    a = client.create_actor("fray.Counter", name=name, get_if_exists=True)
    b = client.create_actor("fray.Counter", name=name, get_if_exists=True)
    a.Add(1)
    assert b.Get() == 1
    assert client.get_actor(name).Get() == 1
    with pytest.raises(frayhq.ActorExists, match="get_if_exists"):
        client.create_actor("fray.Counter", name=name)
    a.shutdown()
    with pytest.raises(frayhq.NotFound):
        client.get_actor(name)


def test_unavailable_actor_is_marins_error(client, name):
    import fray.actor

    h = client.create_actor("fray.Counter", name=name)
    h.shutdown()
    with pytest.raises(fray.actor.ActorUnavailableError):
        h.Get()


def test_no_such_method_lists_the_methods(client, name):
    h = client.create_actor("fray.Counter", name=name)
    try:
        with pytest.raises(frayhq.RemoteError, match="Add, Get, ID"):
            h.Nope()
    finally:
        h.shutdown()


def test_unknown_class_lists_what_the_pool_offers(client, name):
    with pytest.raises(frayhq.UnknownClass, match="fray.Counter"):
        client.create_actor("no.Such", name=name)


def test_non_preemptible_actor_on_a_local_cluster(client, name):
    from fray.types import ResourceConfig

    h = client.create_actor("fray.Counter", name=name, resources=ResourceConfig(preemptible=False))
    try:
        assert h.Add(1) == 1
        rec, _ = client._run(client._actors.get_record(client.namespace, name))
        assert rec["nonpreempt"] is True
    finally:
        h.shutdown()


def test_group(client, name):
    g = client.create_actor_group("fray.Counter", name=name, count=3)
    try:
        hs = g.wait_ready(timeout=30)
        assert len(hs) == 3 and g.ready_count == 3
        assert len({h.ID() for h in hs}) == 3
        assert g.discover_new() == []
        assert not g.is_done()
    finally:
        g.shutdown()
    assert g.is_done()


def test_host_actor_serves_python_calls_and_reraises_the_original(client, name):
    hosted = client.host_actor(Acc, 10, name=name)
    try:
        h = hosted.handle
        assert h.add(1, y=2) == 13
        assert h.add.remote(3).result(10) == 16
        with pytest.raises(ValueError, match="bad value"):
            h.boom()
        assert client.get_actor(name).add(0) == 16
    finally:
        hosted.shutdown()
    with pytest.raises(frayhq.ActorUnavailableError):
        hosted.handle.add(1)


@pytest.mark.parametrize("where", ["worker", "host_actor"])
def test_a_method_raising_stop_actor_answers_then_ends_its_actor_for_good(client, name, where):
    if where == "worker":
        h = client.create_actor(Acc, 5, name=name, actor_config=frayhq.ActorConfig(max_restarts=3))
    else:
        h = client.host_actor(Acc, 5, name=name).handle
    assert h.add(1) == 6
    assert h.finish(10) == 16
    # Stopped, not crashed: no restart brings it back, whatever max_restarts.
    with pytest.raises(frayhq.ActorUnavailableError, match="stopped"):
        h.add(1)
    with pytest.raises(frayhq.NotFound):
        client.get_actor(name)
    # Its name is free again.
    again = client.create_actor("fray.Counter", name=name)
    assert again.Add(2) == 2
    again.shutdown()


class Crasher:
    def pid(self):
        import os

        return os.getpid()

    def crash(self):
        import os

        os._exit(1)


@pytest.mark.parametrize("sync", [True, False])
def test_a_call_whose_instance_crashed_and_restarted_fails_at_once(client, name, sync):
    # The instance is replaced in well under the sweep's first look: the
    # call must still be seen to have gone to the lost one, not wait out
    # its 60 s deadline in silence.
    h = client.create_actor(Crasher, name=name, actor_config=frayhq.ActorConfig(max_restarts=1))
    try:
        before = h.pid()
        with pytest.raises(frayhq.ActorUnavailableError, match="restarted"):
            if sync:
                h.crash()
            else:
                h.crash.remote().result(30)
        assert h.pid() != before  # the restarted instance answers
    finally:
        h.shutdown()


class CrashOnce:
    def crash_once(self, marker):
        import os

        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return os.getpid()

    def always_crash(self):
        import os

        os._exit(1)


@pytest.mark.parametrize("sync", [True, False])
def test_a_call_lost_with_its_instance_is_sent_to_the_next_within_max_task_retries(
    client, name, sync, tmp_path
):
    # As with Ray's max_task_retries: the instance dies running the call,
    # the actor restarts, and the call runs again on the new instance.
    h = client.create_actor(
        CrashOnce, name=name, actor_config=frayhq.ActorConfig(max_restarts=2, max_task_retries=1)
    )
    try:
        marker = str(tmp_path / "crashed")
        pid = h.crash_once(marker) if sync else h.crash_once.remote(marker).result(60)
        assert isinstance(pid, int)
        import os

        assert os.path.exists(marker)  # the first instance ran it, and died
        # Out of retries: the second loss fails the call, saying so.
        with pytest.raises(frayhq.ActorUnavailableError, match="redelivered 1 of max_task_retries=1"):
            h.always_crash() if sync else h.always_crash.remote().result(60)
    finally:
        h.shutdown()


def test_a_handle_whose_client_was_shut_down_says_so_and_starts_nothing(client, name):
    h = client.create_actor(Acc, 1, name=name)
    code = (
        "import sys, time, frayhq\n"
        "c = frayhq.connect(sys.argv[1])\n"
        "h = c.get_actor(sys.argv[2])\n"
        "assert h.add(1) == 2\n"
        "c.shutdown()\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    h.add(1)\n"
        "except frayhq.ConnectionError as e:\n"
        "    print('raised', e)\n"
        "import frayhq.client as fc\n"
        "print('new client', fc._process_client not in (None, c))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, client.url, name],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert out.returncode == 0, out.stderr
    assert f"raised frayhq: the client of actor handle default/{name} is shut down" in out.stdout
    assert "new client False" in out.stdout  # no local cluster was started behind the caller's back
    h.shutdown()


def test_handles_pickle_and_travel(client, name):
    counter = client.create_actor("fray.Counter", name=name + "-c")
    hosted = client.host_actor(Acc, 0, name=name)
    try:
        h2 = pickle.loads(pickle.dumps(counter))
        assert h2 == counter
        assert hosted.handle.call_other(counter, 4) == 4
        assert counter.Get() == 4
    finally:
        hosted.shutdown()
        counter.shutdown()


def test_environment_secrets_are_refused(client, name):
    from fray.types import EnvironmentConfig

    env = EnvironmentConfig(workspace=".", secrets={"TOKEN": "x"})
    with pytest.raises(frayhq.Unsupported, match="secrets"):
        client.create_actor("fray.Counter", name=name, environment=env)


def test_bad_names_are_refused(client):
    with pytest.raises(frayhq.ConfigError, match="actor name"):
        client.create_actor("fray.Counter", name="a.b")


@pytest.mark.parametrize("sync", [False, True], ids=["remote", "sync"])
def test_a_call_answered_no_responders_is_sent_again(client, name, sync):
    """A call that meets "no responders" (the actor's host not subscribed
    yet: starting, restarting, reconnecting) is published again after a
    pause, and is answered once something listens on the actor's subject.
    A synchronous call meets it on the lane, then goes the async way."""
    import threading
    from concurrent.futures import Future

    import cbor2
    import nats

    from frayhq._actors import ActorHandle

    subj = f"fray.actor.{client.namespace}.{name}"
    refused = threading.Event()
    calls = []

    # A call met "no responders" when it looks the actor's record up.
    actors = client._actors
    get_record = actors.get_record

    async def looked_up(ns, n):
        if n == name:
            refused.set()
        return await get_record(ns, n)

    async def serve():
        nc = await nats.connect(client.url)

        async def on_call(msg):
            calls.append(msg.data)
            await nc.publish(msg.reply, cbor2.dumps({"v": 1, "r": 42}))

        await nc.subscribe(subj, cb=on_call)
        await nc.flush()
        return nc

    actors.get_record = looked_up
    server = None
    try:
        h = ActorHandle(client.namespace, name, "fray.Counter", client)
        if sync:
            sent = client._actors.lane.sent
            fut = Future()
            threading.Thread(target=lambda: fut.set_result(h.Get()), daemon=True).start()
        else:
            fut = h.Get.remote()
        assert refused.wait(10), "the first attempt met no 503"
        if sync:
            assert client._actors.lane.sent == sent + 1, "the call did not go on the lane first"
        server = client._loop.submit(serve()).result(10)
        assert fut.result(30) == 42
        assert calls, "the call was never published again"
    finally:
        actors.get_record = get_record
        if server is not None:
            client._loop.submit(server.close()).result(10)


def test_a_call_sent_again_to_a_restarted_instance_is_not_taken_for_lost():
    # A barrier's redelivery sends a call again, to whichever instance
    # serves now: an instance that started before the resend has it, so
    # the sweep must wait for its answer, not fail it as gone.
    import time

    from frayhq._actors import _Call

    c = _Call(None, time.monotonic() - 10, 0, "fray.actor.default.a", b"", "inbox.1")
    c.epoch = 1  # it first went to epoch 1
    now_ms = time.time() * 1000
    rec = {"state": "ready", "epoch": 2, "restarts": 1, "started_ms": int(now_ms - 5000)}
    assert "restarted: now epoch 2" in c.lost(rec)  # sent before epoch 2 started: lost with epoch 1
    c.resent(1, time.monotonic())  # the barrier redelivered it, epoch 2 serving
    assert c.lost(rec) == ""
    assert c.epoch == 2
    assert c.redelivered == 1


def test_a_call_sent_before_its_instance_started_is_lost_and_says_why():
    import time

    from frayhq._actors import _Call

    c = _Call(None, time.monotonic() - 2, 0, "s", b"", "r")
    started = int(time.time() * 1000) - 1000  # after the send
    assert c.lost({"state": "placing", "epoch": 2}) == ""  # nothing started yet: wait
    assert "now epoch 2, restarts 1" in c.lost(
        {"state": "ready", "epoch": 2, "restarts": 1, "started_ms": started}
    )
    assert (
        c.lost({"state": "restarting", "epoch": 3, "restarts": 2})
        == " (the actor restarted: now epoch 3, restarts 2)"
    )
    assert c.lost({"state": "stopped", "epoch": 2}) == " (stopped)"
    assert c.lost(None) == " (its record expired)"
    old = _Call(None, time.monotonic() - 2, 0, "s", b"", "r")
    assert old.lost({"state": "ready", "epoch": 1}) == ""  # a host writing no started_ms: taken as its
    assert old.epoch == 1


def test_a_call_to_an_actors_first_instance_is_its_whatever_the_clocks():
    # The host's clock runs ahead of ours: its started_ms follows our send,
    # yet the actor never restarted, so no earlier instance took the call.
    import time

    from frayhq._actors import _Call

    c = _Call(None, time.monotonic() - 0.6, 0, "s", b"", "r")
    ahead = int(time.time() * 1000) + 5  # 5 ms of skew
    assert c.lost({"state": "ready", "epoch": 1, "started_ms": ahead}) == ""
    assert c.epoch == 1
    # Once it restarted, the same send time goes to an earlier instance.
    d = _Call(None, time.monotonic() - 0.6, 0, "s", b"", "r")
    assert "restarted" in d.lost({"state": "ready", "epoch": 2, "restarts": 1, "started_ms": ahead})
