"""Word count over a text corpus with put/run/wait: the corpus goes into
the object store once, map tasks count words in their share of it, and a
reduce merges the counts as the maps finish (frayhq.wait, ray.wait style).

    python examples/python/mapreduce.py [FILE ...]

Without files it counts a built-in corpus. FRAY_CLUSTER_SPEC picks the
cluster (default: a local one started from the fray binaries).
"""

from __future__ import annotations

import collections
import re
import sys

import frayhq

CORPUS = """It was the best of times, it was the worst of times, it was the age of
wisdom, it was the age of foolishness, it was the epoch of belief, it was the
epoch of incredulity, it was the season of Light, it was the season of
Darkness, it was the spring of hope, it was the winter of despair."""


def count_words(corpus: list[str], start: int, stop: int) -> dict[str, int]:
    """Map: the word counts of lines [start, stop) of the corpus (a Ref resolved on the worker)."""
    c: collections.Counter[str] = collections.Counter()
    for line in corpus[start:stop]:
        c.update(w.lower() for w in re.findall(r"[A-Za-z']+", line))
    return dict(c)


def main(paths: list[str]) -> dict[str, int]:
    text = "\n".join(open(p, encoding="utf-8").read() for p in paths) if paths else CORPUS * 200
    lines = text.splitlines()
    client = frayhq.connect()
    try:
        corpus = client.put(lines)  # stored once, fetched by each worker
        step = max(1, len(lines) // 16)
        pending = [client.run(count_words, corpus, i, i + step) for i in range(0, len(lines), step)]
        total: collections.Counter[str] = collections.Counter()
        while pending:
            ready, pending = client.wait(pending, num_returns=1, timeout=120)
            for f in ready:
                total.update(f.result())
        return dict(total)
    finally:
        client.shutdown()


if __name__ == "__main__":
    counts = main(sys.argv[1:])
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]:
        print(f"{n:8d} {word}")
