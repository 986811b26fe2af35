"""Jobs from Python (PROTOCOL.md, "Jobs"): submit through the dispatchers,
read records from KV FRAY_JOB_STATE, stop through FRAY_JOBS, read logs from
FRAY_LOGS. marin-fray's JobRequest objects are read by attribute.
"""

from __future__ import annotations

import asyncio
import math
import os
import queue
import re
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import nats.errors
import nats.js.errors

from . import _codec
from ._tasks import encode_call
from .errors import (
    ConfigError,
    FrayError,
    JobAlreadyExists,
    JobFailed,
    NotFound,
    Unsupported,
)
from .errors import TimeoutError as FrayTimeoutError

if TYPE_CHECKING:
    from .client import Client

STATE_BUCKET = "FRAY_JOB_STATE"
LOGS_STREAM = "FRAY_LOGS"
SUBMIT_SUBJECT = "fray.dispatcher.submit"
SUBMIT_TIMEOUT = 10.0
REQUEST_VERSION = 2  # timeouts in milliseconds (version 1: nanoseconds)
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def job_status_type() -> Any:
    try:
        from fray.types import JobStatus  # marin-fray

        return JobStatus
    except Exception:  # noqa: BLE001
        from .types import JobStatus

        return JobStatus


def to_status(s: str) -> Any:
    return job_status_type()(str(s).lower())


def token(job_id: str) -> str:
    return job_id.lstrip("/").replace(".", "=")


def _attr(o: Any, name: str, default: Any = None) -> Any:
    v = getattr(o, name, default) if o is not None else default
    return default if v is None else v


def _seconds(t: Any) -> float:
    if t is None:
        return 0.0
    if hasattr(t, "to_seconds"):
        return float(t.to_seconds())
    if hasattr(t, "total_seconds"):
        return float(t.total_seconds())
    return float(t)


def _device(dev: Any) -> tuple[dict[str, Any], int]:
    """The wire device and the VMs per slice (for TPU gangs)."""
    if dev is None:
        return {"kind": "cpu"}, 1
    kind = str(_attr(dev, "kind", "cpu")).lower()
    if kind == "cpu":
        return {"kind": "cpu"}, 1
    out: dict[str, Any] = {"kind": kind, "variant": str(_attr(dev, "variant", ""))}
    if kind == "gpu":
        out["count"] = int(_attr(dev, "count", 1))
        return out, 1
    if topo := _attr(dev, "topology", None):
        out["topology"] = str(topo)
    count = int(_attr(dev, "count", 0) or 0)
    vms = 1
    if hasattr(dev, "chip_count") and not count:
        try:
            count = int(dev.chip_count())
        except Exception:  # noqa: BLE001 - an unknown type: the dispatcher says so
            count = 0
    if hasattr(dev, "vm_count"):
        try:
            vms = int(dev.vm_count())
        except Exception:  # noqa: BLE001
            vms = 1
    if count:
        out["count"] = count
    return out, max(vms, 1)


def request_map(c: Client, req: Any, callable_call: tuple[str, list[str]] | None) -> dict[str, Any]:
    """The wire JobRequest for a marin-fray (or frayhq.types) JobRequest."""
    name = _attr(req, "name", "")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"frayhq: job name {name!r}: want 1-128 of [A-Za-z0-9._-], first a letter or digit")
    res = _attr(req, "resources", None)
    env = _attr(req, "environment", None)
    if env is not None and _attr(env, "secrets", None):
        names = ", ".join(sorted(str(k) for k in _attr(env, "secrets", {})))
        raise Unsupported(
            f"frayhq: job {name}: environment.secrets ({names}) would be stored in the job record in clear, "
            "readable by every worker and viewer; name the variables in "
            "frayhq.EnvironmentConfig(env_from_worker=[...]) instead (wire environment.env_from_worker) "
            "and give each worker its value with fray-worker --secret NAME=FILE (or its own environment)"
        )
    ep = _attr(req, "entrypoint", None)
    out: dict[str, Any] = {"v": REQUEST_VERSION, "name": name}
    if callable_call is not None:
        out["entrypoint"] = {"argv": callable_call[1]}
    else:
        be = _attr(ep, "binary_entrypoint", None)
        if be is None:
            raise ConfigError(f"frayhq: job {name}: the entrypoint has neither a callable nor a binary")
        argv = [str(_attr(be, "command", "")), *[str(a) for a in (_attr(be, "args", ()) or ())]]
        if not argv[0]:
            raise ConfigError(f"frayhq: job {name}: the binary entrypoint's command is empty")
        out["entrypoint"] = {"argv": argv}
    r: dict[str, Any] = {}
    dev, vms = _device(_attr(res, "device", None))
    r["device"] = dev
    if (cpu := _attr(res, "cpu", None)) is not None:
        r["cpu"] = float(cpu)
    for k in ("ram", "disk", "zone", "target_cluster", "image"):
        if v := _attr(res, k, None):
            r[k] = str(v)
    if _attr(res, "preemptible", True) is False:
        r["preemptible"] = False
    if (regions := _attr(res, "regions", None)) is not None:
        r["regions"] = [str(x) for x in regions]
    if alts := _attr(res, "device_alternatives", None):
        r["device_alternatives"] = [str(x) for x in alts]
    if not r.get("target_cluster") and c.spec.kind in ("ray", "iris") and c.spec.urls:
        r["target_cluster"] = c.spec.kind
    out["resources"] = r
    e: dict[str, Any] = {}
    envvars = dict(_attr(env, "env_vars", {}) or {})
    envvars = {str(k): str(v) for k, v in envvars.items() if v is not None}
    if callable_call is not None and c.local is not None:
        # A local cluster's workers run here: the job imports what the caller imports.
        envvars.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    if envvars:
        e["env_vars"] = envvars
    if efw := _attr(env, "env_from_worker", None):
        if isinstance(efw, str):
            raise ConfigError(
                f"frayhq: job {name}: env_from_worker wants a list of names, got the string {efw!r}"
            )
        e["env_from_worker"] = [str(k) for k in efw]
    if ws := _attr(env, "workspace", None):
        e["workdir"] = str(ws)
    if setup := _attr(env, "setup_scripts", None):
        e["setup_commands"] = [str(s) for s in setup]
    if pips := _attr(env, "pip_packages", None):
        e["pip_packages"] = [str(p) for p in pips]
    if extras := _attr(env, "extras", None):
        e["extras"] = [str(x) for x in extras]
    if img := _attr(env, "docker_image", None):
        e["docker_image"] = str(img)
    out["environment"] = e
    replicas = int(_attr(req, "replicas", 0) or _attr(res, "replicas", 1) or 1)
    if replicas < 0:
        raise ConfigError(f"frayhq: job {name}: replicas={replicas}: want >= 1")
    # marin counts replicas in VMs (with_tpu: slices x VMs per slice); one
    # multi-VM slice is coscheduled on the VMs of one slice, as Go's WithTPU.
    if replicas > 1:
        out["replicas"] = replicas
    if dev.get("kind") == "tpu" and vms > 1 and replicas == vms:
        out["coscheduling"] = {"group_by": "tpu-name"}
    for k in ("max_retries_failure", "max_task_failures", "priority"):
        if v := int(_attr(req, k, 0) or 0):
            out[k] = v
    mrp = _attr(req, "max_retries_preemption", None)
    if mrp is not None and int(mrp) != 100:
        out["max_retries_preemption"] = int(mrp)
    for k in ("timeout", "scheduling_timeout"):
        if t := _seconds(_attr(req, k, None)):
            if t < 0:
                raise ConfigError(f"frayhq: job {name}: {k}={t}: want >= 0 seconds")
            out[k + "_ms"] = math.ceil(t * 1000)  # a partial millisecond rounds up, never to none
    return out


def read_request(req: dict[str, Any]) -> dict[str, Any]:
    """A wire JobRequest of version 1 or 2 as version 2: version 1's
    nanosecond ``timeout``/``scheduling_timeout`` become ``*_ms`` (rounded
    up) when those are absent."""
    out = dict(req)
    for k in ("timeout", "scheduling_timeout"):
        ns = out.pop(k, None)
        if not out.get(k + "_ms") and ns:
            out[k + "_ms"] = math.ceil(int(ns) / 1e6)
    return out


FIND_SUBJECT = "fray.dispatcher.find"
LOG_TAIL_LINES = 10  # of each task, in the message of a failed job's JobFailed
FIND_TIMEOUT = 45.0  # the dispatcher bounds a look-up at 40 s


class Jobs:
    def __init__(self, client: Client) -> None:
        self.c = client
        # A ray?/iris? spec without nats=: this client's broker is private,
        # the backend holds the jobs.
        self.asks_backends = client.spec.kind in ("ray", "iris") and not client.spec.urls

    async def find(self, job_id: str) -> None:
        """Ask the dispatchers to look job_id up on their backends and record
        it in FRAY_JOB_STATE before they answer; no dispatcher: nothing to do."""
        body = _codec.dumps_plain({"v": 1, "id": job_id})
        try:
            msg = await self.c.nc.request(FIND_SUBJECT, body, timeout=FIND_TIMEOUT)
        except nats.errors.NoRespondersError:
            return
        except nats.errors.TimeoutError:
            raise FrayError(
                f"frayhq: find {job_id} on the backends: no dispatcher answered within {FIND_TIMEOUT:.0f} s"
            ) from None
        rep = _codec.loads_plain(msg.data, f"find reply for {job_id}")
        if isinstance(rep, dict) and rep.get("code"):
            raise FrayError(f"frayhq: find {job_id} on the backends: {rep.get('error') or rep.get('code')}")

    async def kv(self) -> Any:
        return await self.c.kv(STATE_BUCKET)

    async def record(self, job_id: str) -> dict[str, Any] | None:
        from ._actors import kv_map

        rec, _ = await kv_map(await self.kv(), "j." + token(job_id), f"job record {job_id}")
        return rec

    async def submit(self, job_id: str, parent: str, wire: dict[str, Any]) -> tuple[str, bool]:
        body: dict[str, Any] = {"v": 1, "id": job_id, "request": wire}
        if parent:
            body["parent"] = parent
        try:
            async with self.c.perms.guard(SUBMIT_SUBJECT, "$KV.FRAY_JOB_STATE.>"):
                msg = await self.c.nc.request(SUBMIT_SUBJECT, _codec.dumps(body), timeout=SUBMIT_TIMEOUT)
        except nats.errors.NoRespondersError:
            # No dispatcher runs: record the job; one will place it when it starts.
            return await self._record_pending(job_id, parent, wire)
        except nats.errors.TimeoutError:
            raise FrayError(
                f"frayhq: submit {job_id}: no dispatcher answered within {SUBMIT_TIMEOUT:.0f} s "
                "(the job may still have been recorded)"
            ) from None
        rep = _codec.loads_plain(msg.data, f"submit reply for {job_id}")
        if not isinstance(rep, dict):
            raise FrayError(f"frayhq: submit {job_id}: the reply is not a CBOR map")
        code = rep.get("code") or ""
        if code == "unavailable":  # a stopping dispatcher
            return await self._record_pending(job_id, parent, wire)
        if code == "":
            return job_id, bool(rep.get("adopted"))
        if code == "exists":
            return job_id, None  # type: ignore[return-value]
        if code == "invalid":
            raise ConfigError(f"frayhq: job {job_id} is invalid: {rep.get('error')}")
        if code == "rejected":
            raise FrayError(f"frayhq: job {job_id} was rejected by its backend: {rep.get('error')}")
        raise FrayError(f"frayhq: submit {job_id}: {code}: {rep.get('error')}")

    async def _record_pending(
        self, job_id: str, parent: str, wire: dict[str, Any]
    ) -> tuple[str, bool | None]:
        """Create-or-adopt the PENDING record as the Go client does when no
        dispatcher answers (PROTOCOL.md, Jobs, "Subjects")."""
        kv = await self.kv()
        key = "j." + token(job_id)
        ns, _, _ = job_id.lstrip("/").partition("/")
        req = dict(wire)
        req["replicas"] = max(1, int(req.get("replicas") or 1))
        now = int(time.time() * 1000)
        rec: dict[str, Any] = {
            "v": 1,
            "id": job_id,
            "name": wire["name"],
            "ns": ns,
            "run": self.c._nuid(),  # noqa: SLF001
            "request": req,
            "status": "PENDING",
            "backend": "",
            "pending_reason": "waiting for a dispatcher",
            "attempt": 0,
            "failures": 0,
            "preemptions": 0,
            "tasks": [{"index": i, "state": "PENDING"} for i in range(req["replicas"])],
            "submitted_ms": now,
            "updated_ms": now,
        }
        if parent:
            rec["parent"] = parent
        adopt = wire.get("adopt_existing", True)
        for _ in range(20):
            try:
                await kv.create(key, _codec.dumps(rec))
                return job_id, False
            except nats.js.errors.KeyWrongLastSequenceError:
                pass
            except nats.js.errors.APIError as e:
                if "wrong last sequence" not in (e.description or "").lower():
                    raise
            try:
                e = await kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                continue
            old = _codec.loads_plain(e.value, f"job record {job_id}") if e.value else None
            if isinstance(old, dict) and old.get("status") not in TERMINAL:
                return (job_id, True) if adopt else (job_id, None)
            try:
                await self.c.js._jsm.purge_stream(LOGS_STREAM, subject=f"fray.logs.{token(job_id)}.>")  # noqa: SLF001
            except Exception:  # noqa: BLE001 - the old run's logs stay; the new run still starts
                pass
            try:
                await kv.update(key, _codec.dumps(rec), last=e.revision)
                return job_id, False
            except nats.js.errors.APIError:
                continue
        raise FrayError(f"frayhq: submit {job_id}: too many concurrent writers")

    async def stop(self, job_id: str, reason: str) -> None:
        ctl = {"v": 1, "job": job_id, "op": "stop", "reason": reason}
        subj = "fray.jobs.ctl." + token(job_id)
        async with self.c.perms.guard(subj):
            await self.c.js.publish(subj, _codec.dumps_plain(ctl))

    async def read_logs(self, job_id: str) -> list[str]:
        """Every stored line of the job's tasks, in stream order."""
        subj = f"fray.logs.{token(job_id)}.>"
        try:
            info = await self.c.js._jsm.stream_info(LOGS_STREAM, subjects_filter=subj)  # noqa: SLF001
        except nats.js.errors.NotFoundError:
            return []
        total = sum((info.state.subjects or {}).values())
        if not total:
            return []
        lines: list[str] = []
        sub = await self.c.js.subscribe(subj, stream=LOGS_STREAM, ordered_consumer=True)
        try:
            for _ in range(total):
                try:
                    m = await sub.next_msg(timeout=5)
                except nats.errors.TimeoutError:
                    break
                b = _codec.loads_plain(m.data, "log batch")
                if isinstance(b, dict):
                    lines.extend(str(x) for x in (b.get("lines") or []))
        finally:
            await sub.unsubscribe()
        return lines

    async def log_tail(self, job_id: str, n: int) -> list[str]:
        """Up to the last n lines of each of the job's tasks: the last log
        batch each wrote, one read per task, whatever the log's length."""
        subj = f"fray.logs.{token(job_id)}.>"
        try:
            info = await self.c.js._jsm.stream_info(LOGS_STREAM, subjects_filter=subj)  # noqa: SLF001
        except nats.js.errors.NotFoundError:
            return []
        lines: list[str] = []
        for s in sorted(info.state.subjects or {}):
            try:
                m = await self.c.js._jsm.get_msg(LOGS_STREAM, subject=s)  # noqa: SLF001
            except nats.js.errors.NotFoundError:
                continue
            b = _codec.loads_plain(m.data or b"", "log batch")
            if isinstance(b, dict):
                lines.extend(str(x) for x in (b.get("lines") or [])[-n:])
        return lines


class JobHandle:
    """A submitted job: marin's JobHandle protocol plus follow_logs()."""

    def __init__(self, client: Client, job_id: str, result_id: str = "") -> None:
        self._c = client
        self._id = job_id
        self._result_id = result_id  # the pickled-exception channel of a callable job
        self._refreshed = False

    @property
    def job_id(self) -> str:
        return self._id

    def _refresh(self) -> None:
        """With a plain ray?/iris? spec the backend is the record: the first
        time the handle reads its job, the private broker's dispatcher looks
        it up there and records it (PROTOCOL.md, "The backend is the record")."""
        if self._refreshed or not self._c._jobs.asks_backends:  # noqa: SLF001
            return
        try:
            self._c._run(self._c._jobs.find(self._id))  # noqa: SLF001
        except FrayError:
            if self._c._run(self._c._jobs.record(self._id)) is None:  # noqa: SLF001
                raise
            return  # the record we have will do; ask again next time
        self._refreshed = True

    def _record(self) -> dict[str, Any]:
        self._refresh()
        rec = self._c._run(self._c._jobs.record(self._id))  # noqa: SLF001
        if rec is None:
            raise NotFound(f"frayhq: no job {self._id}")
        return rec

    def status(self) -> Any:
        return to_status(self._record().get("status", "PENDING"))

    def info(self) -> dict[str, Any]:
        """The job's record (PROTOCOL.md, "Record"); its request as version 2
        (timeouts in ``timeout_ms``/``scheduling_timeout_ms``) whichever
        version was stored."""
        rec = self._record()
        if isinstance(rec.get("request"), dict):
            rec["request"] = read_request(rec["request"])
        return rec

    def wait(self, timeout: float | None = None, *, raise_on_failure: bool = True) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.02
        while True:
            rec = self._record()
            st = str(rec.get("status", "PENDING"))
            if st in TERMINAL:
                if raise_on_failure and st in ("FAILED", "STOPPED"):
                    self._raise(rec)
                return to_status(st)
            if deadline is not None and time.monotonic() > deadline:
                raise FrayTimeoutError(f"frayhq: job {self._id} still {st} after {timeout} s")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)

    def _raise(self, rec: dict[str, Any]) -> None:
        st = str(rec.get("status"))
        if self._result_id and st == "FAILED":
            exc = self._remote_exception()
            if exc is not None:
                raise exc
        msg = f"Job {self._id} finished with status {st.lower()}: {rec.get('error') or ''}".rstrip(": ")
        if st == "FAILED":
            # What it printed last is most often why (a traceback, a
            # missing module): shown here, not left for logs() to find.
            try:
                tail = self._c._run(self._c._jobs.log_tail(self._id, LOG_TAIL_LINES))  # noqa: SLF001
            except Exception:  # noqa: BLE001 - the failure is reported without its log
                tail = []
            if tail:
                msg += "\nthe last lines of its log:\n" + "\n".join("  " + line for line in tail)
        raise JobFailed(self._id, to_status(st), msg)

    def _remote_exception(self) -> BaseException | None:
        tasks = self._c._tasks  # noqa: SLF001
        owner, _, tid = self._result_id.partition(".")
        data = self._c._run(tasks.lookup(owner, tid))  # noqa: SLF001
        if data is None:
            return None
        try:
            self._c._run(tasks.decode_result(data, self._result_id))  # noqa: SLF001
        except BaseException as e:  # noqa: BLE001 - the job's own exception
            return e
        return None

    def result(self, timeout: float | None = None) -> Any:
        """A callable job's return value (of its first replica to finish)."""
        if not self._result_id:
            raise ConfigError(f"frayhq: job {self._id} is not a callable job of this client")
        self.wait(timeout)
        return self._c.future(self._result_id).result(timeout)

    def terminate(self) -> None:
        rec = self._record()
        if str(rec.get("status")) in TERMINAL:
            return
        self._c._run(self._c._jobs.stop(self._id, "terminated by the caller"))  # noqa: SLF001
        try:
            self.wait(60, raise_on_failure=False)
        except FrayTimeoutError:
            pass

    def logs(self, max_lines: int = 0) -> tuple[str, ...]:
        self._refresh()
        lines = self._c._run(self._c._jobs.read_logs(self._id))  # noqa: SLF001
        if max_lines and max_lines > 0:
            lines = lines[-max_lines:]
        return tuple(lines)

    def follow_logs(self, settle: float = 2.0) -> Iterator[str]:
        """Every log line as it is written, until the job has ended and its
        last lines are in (``settle`` seconds of silence after the end)."""
        self._refresh()
        q: queue.Queue[str | None] = queue.Queue()
        c = self._c
        subj = f"fray.logs.{token(self._id)}.>"

        async def on_msg(m: Any) -> None:
            b = _codec.loads_plain(m.data, "log batch")
            if isinstance(b, dict):
                for line in b.get("lines") or []:
                    q.put(str(line))

        async def subscribe() -> Any:
            return await c.js.subscribe(subj, stream=LOGS_STREAM, ordered_consumer=True, cb=on_msg)

        sub = c._run(subscribe())  # noqa: SLF001
        try:
            ended_at: float | None = None
            last_line = time.monotonic()
            while True:
                try:
                    line = q.get(timeout=0.2)
                    last_line = time.monotonic()
                    if line is not None:
                        yield line
                    continue
                except queue.Empty:
                    pass
                if ended_at is None:
                    if str(self._record().get("status")) in TERMINAL:
                        ended_at = time.monotonic()
                elif time.monotonic() - max(ended_at, last_line) > settle:
                    return
        finally:
            try:
                c._run(sub.unsubscribe())  # noqa: SLF001
            except Exception:  # noqa: BLE001
                pass

    def __repr__(self) -> str:
        return f"<frayhq.JobHandle {self._id}>"

    def __reduce__(self) -> Any:
        return (_handle_from_id, (self._id, self._result_id))


def _handle_from_id(job_id: str, result_id: str) -> JobHandle:
    from .client import current_client

    return JobHandle(current_client(), job_id, result_id)


def callable_argv(c: Client, req: Any, owner: str, tid: str) -> tuple[str, list[str]]:
    """Stores the pickled callable; the argv of ``python -m frayhq.job``."""
    ep = _attr(req, "entrypoint", None)
    ce = _attr(ep, "callable_entrypoint", None)
    fn = _attr(ce, "callable", None)
    if not callable(fn):
        raise ConfigError(f"frayhq: job {_attr(req, 'name', '')}: the callable entrypoint is not callable")
    call = encode_call(fn, tuple(_attr(ce, "args", ()) or ()), dict(_attr(ce, "kwargs", {}) or {}))
    ref = c._run(c.objects.put_bytes(call))  # noqa: SLF001
    # A local cluster runs here, and a job's child runs on a worker like its
    # parent: both use this interpreter; elsewhere the workers' python3.
    here = c.local is not None or os.environ.get("FRAY_JOB_ID", "").startswith("/")
    python = os.environ.get("FRAY_JOB_PYTHON") or (sys.executable if here else "python3")
    return python, [
        python,
        "-m",
        "frayhq.job",
        "--call",
        f"{ref.bucket}/{ref.digest}/{ref.size}",
        "--result",
        f"{owner}.{tid}",
    ]


def inherit(req: dict[str, Any], parent: dict[str, Any]) -> None:
    """A child job takes its parent's env vars, constraints (on keys it does
    not constrain) and regions (when it has none); its own settings win."""
    penv = (parent.get("environment") or {}).get("env_vars") or {}
    if penv:
        env = req.setdefault("environment", {})
        env["env_vars"] = {**penv, **(env.get("env_vars") or {})}
    pefw = (parent.get("environment") or {}).get("env_from_worker") or []
    if pefw:
        env = req.setdefault("environment", {})
        have_vars, efw = env.get("env_vars") or {}, list(env.get("env_from_worker") or [])
        efw += [k for k in pefw if k not in have_vars and k not in efw]
        env["env_from_worker"] = efw
    have = {c.get("key") for c in req.get("constraints") or []}
    extra = [c for c in parent.get("constraints") or [] if c.get("key") not in have]
    if extra:
        req["constraints"] = [*(req.get("constraints") or []), *extra]
    pres = parent.get("resources") or {}
    if "regions" not in req.get("resources", {}) and pres.get("regions") is not None:
        req.setdefault("resources", {})["regions"] = pres["regions"]


class JobAPI:
    """Mixed into Client: submit()."""

    def submit(self, request: Any, adopt_existing: bool = True) -> JobHandle:
        """Submit a job (marin-fray's JobRequest or frayhq.types.JobRequest)."""
        c: Client = self  # type: ignore[assignment]
        ep = _attr(request, "entrypoint", None)
        result_id = ""
        call = None
        if _attr(ep, "callable_entrypoint", None) is not None:
            owner, tid = c._tasks.owner, c._nuid()  # noqa: SLF001
            result_id = f"{owner}.{tid}"
        wire = request_map(c, request, ("", []) if result_id else None)
        if result_id:
            call = callable_argv(c, request, *result_id.split("."))
            wire["entrypoint"] = {"argv": call[1]}
        if not adopt_existing:
            wire["adopt_existing"] = False
        parent = os.environ.get("FRAY_JOB_ID", "")
        job_id = f"{parent}/{wire['name']}" if parent.startswith("/") else f"/{c.namespace}/{wire['name']}"
        if parent.startswith("/"):
            prec = c._run(c._jobs.record(parent))  # noqa: SLF001
            if prec is not None:
                inherit(wire, read_request(prec.get("request") or {}))
        jid, adopted = c._run(c._jobs.submit(job_id, parent if parent.startswith("/") else "", wire))  # noqa: SLF001
        if adopted is None:
            raise JobAlreadyExists(job_id, JobHandle(c, job_id))
        return JobHandle(c, jid, result_id if not adopted else "")


def wait_all(jobs: Any, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
    """Wait for every job; statuses in input order. The first FAILED or
    STOPPED job raises (its own exception for a callable job, else JobFailed)."""
    jobs = list(jobs)
    deadline = None if timeout is None else time.monotonic() + timeout
    results: list[Any] = [None] * len(jobs)
    remaining = set(range(len(jobs)))
    pause = 0.02
    while remaining:
        for i in sorted(remaining):
            s = jobs[i].status()
            if str(s).lower() in ("succeeded", "failed", "stopped"):
                remaining.discard(i)
                results[i] = s
                if raise_on_failure and str(s).lower() in ("failed", "stopped"):
                    jobs[i].wait(0, raise_on_failure=True)
        if not remaining:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise FrayTimeoutError(
                f"frayhq: wait_all: {len(remaining)} of {len(jobs)} jobs still running after {timeout} s"
            )
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)
    return results


def _unused() -> None:  # keep asyncio import for type checkers of older Pythons
    asyncio.get_event_loop_policy()
