"""``python -m frayhq.bench tasks|actors|objects [--json]``: the Python
client's throughput and latency on a cluster (default: a local one).

tasks   --n N        Python no-op tasks (py.call): submitted all at once,
                     tasks_per_s until the last result; then p50_ms/p99_ms
                     of one task at a time (run + result).
actors  --n N        a Python actor's no-op method: calls_per_s with every
                     call in flight at once; p50_ms of synchronous calls.
objects --size S     put then get of one S-byte value (e.g. 256m):
                     mb_per_s for each and both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import frayhq


def noop() -> None:
    return None


class Noop:
    def ping(self) -> None:
        return None


def _latencies(call: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        s = time.perf_counter()
        call()
        out.append(time.perf_counter() - s)
    return out


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


def bench_tasks(c: frayhq.Client, n: int, latency_n: int) -> dict[str, Any]:
    c.run(noop).result(120)  # warm the workers' runtimes
    t = time.perf_counter()
    fs = [c.run(noop) for _ in range(n)]
    submitted = time.perf_counter() - t
    for f in fs:
        f.result(600)
    total = time.perf_counter() - t
    lat = _latencies(lambda: c.run(noop).result(60), latency_n)
    return {
        "bench": "tasks",
        "n": n,
        "tasks_per_s": round(n / total),
        "submit_per_s": round(n / submitted),
        "p50_ms": round(_pct(lat, 0.5), 3),
        "p99_ms": round(_pct(lat, 0.99), 3),
        "latency_n": latency_n,
    }


def bench_actors(c: frayhq.Client, n: int, latency_n: int) -> dict[str, Any]:
    name = f"bench-{int(time.time() * 1000)}"
    h = c.create_actor(Noop, name=name)
    try:
        h.ping()
        t = time.perf_counter()
        fs = [h.ping.remote() for _ in range(n)]
        for f in fs:
            f.result(600)
        total = time.perf_counter() - t
        lat = _latencies(h.ping, latency_n)
    finally:
        h.shutdown()
    return {
        "bench": "actors",
        "n": n,
        "calls_per_s": round(n / total),
        "p50_ms": round(_pct(lat, 0.5), 3),
        "p99_ms": round(_pct(lat, 0.99), 3),
        "latency_n": latency_n,
    }


def _size(s: str) -> int:
    s = s.strip().lower()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(s[-1:], 1)
    return int(float(s[:-1] if s[-1:] in "kmg" else s) * mult)


def bench_objects(c: frayhq.Client, size: int) -> dict[str, Any]:
    import os

    data = os.urandom(size)  # incompressible, and new: the put uploads
    t = time.perf_counter()
    ref = c._run(c.objects.put_bytes(data))  # noqa: SLF001 - the raw bytes, no encoding
    put_s = time.perf_counter() - t
    t = time.perf_counter()
    back = c._run(c.objects.get_bytes(ref))  # noqa: SLF001
    get_s = time.perf_counter() - t
    assert back == data
    c.delete(ref)
    mb = size / 1e6
    return {
        "bench": "objects",
        "size": size,
        "put_mb_per_s": round(mb / put_s),
        "get_mb_per_s": round(mb / get_s),
        "mb_per_s": round(2 * mb / (put_s + get_s)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m frayhq.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", choices=["tasks", "actors", "objects"], help="what to measure")
    p.add_argument("--n", type=int, default=20000, help="tasks or calls (default 20000)")
    p.add_argument(
        "--latency-n", type=int, default=1000, help="sequential round trips for the latency percentiles"
    )
    p.add_argument("--size", default="256m", help="objects: value size, e.g. 64m, 1g (default 256m)")
    p.add_argument(
        "--spec", default=None, help="cluster spec (default $FRAY_CLUSTER_SPEC, else a local cluster)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    if a.n < 1 or a.latency_n < 1:
        p.error("--n and --latency-n must be at least 1")
    c = frayhq.connect(a.spec)
    try:
        if a.what == "tasks":
            out = bench_tasks(c, a.n, a.latency_n)
        elif a.what == "actors":
            out = bench_actors(c, a.n, a.latency_n)
        else:
            out = bench_objects(c, _size(a.size))
    finally:
        c.shutdown()
    if a.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>14}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
