"""``python -m frayhq.job --call B/D/S --result OWNER.TASK``: run a pickled
callable job entrypoint on a worker.

The runner fetches the pickled (fn, args, kwargs) from the object store,
makes the job's cluster the current client (frayhq's and marin-fray's), runs
it, and stores the outcome as a task Result on the submitter's result
subject: the return value, or the exception pickled so the submitter's
``wait()`` re-raises it. A failure exits with code 1 (the job FAILS).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Any

import cloudpickle


def _error_info(e: BaseException) -> dict[str, Any]:
    t = type(e)
    info: dict[str, Any] = {
        "kind": "handler",
        "fn": "py.job",
        "message": str(e),
        "lang": "python",
        "type": f"{t.__module__}.{t.__qualname__}",
        "traceback": "".join(traceback.format_exception(e)),
    }
    try:
        info["exc"] = cloudpickle.dumps(e)
    except Exception:  # noqa: BLE001
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m frayhq.job", description=__doc__)
    p.add_argument("--call", required=True, help="object store ref of the pickled call: BUCKET/DIGEST/SIZE")
    p.add_argument("--result", required=True, help="where the outcome goes: OWNER.TASK-ID")
    a = p.parse_args(argv)
    from . import _codec, _context
    from ._codec import Ref

    client = _context.install_from_env()
    bucket, digest, size = a.call.split("/")
    owner, _, tid = a.result.partition(".")
    started = int(time.time() * 1000)
    res: dict[str, Any] = {"v": 1, "id": tid, "worker": "job", "started_ms": started}
    code = 0
    try:
        data = client._run(client.objects.get_bytes(Ref(bucket=bucket, digest=digest, size=int(size))))  # noqa: SLF001
        fn, args, kwargs = _codec.loads(data, "job callable")
        value = fn(*args, **kwargs)
        res["value"] = _codec.dumps(value)
    except BaseException as e:  # noqa: BLE001 - reported, then the job fails
        traceback.print_exc()
        res["error"] = _error_info(e)
        code = 1
    res["finished_ms"] = int(time.time() * 1000)
    try:
        client._run(client.js.publish(f"fray.results.{owner}.{tid}", _codec.dumps_plain(res)))  # noqa: SLF001
    except Exception:  # noqa: BLE001 - a result exists already (another replica), or the broker is away
        pass
    sys.stdout.flush()
    client.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
