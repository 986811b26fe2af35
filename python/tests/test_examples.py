"""The examples in examples/python, each run as its own program."""

import subprocess
import sys

import pytest

from conftest import ROOT, child_env


def _run(name: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / name), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=child_env(),
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_mapreduce_counts_a_corpus(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat and the hat\n" * 300 + "a dog\n" * 7)
    lines = _run("mapreduce.py", str(corpus)).splitlines()
    counts = {w: int(n) for n, w in (line.split() for line in lines)}
    assert counts["the"] == 600 and counts["cat"] == 300 and counts["dog"] == 7


def test_curriculum_is_one_instance_for_every_job():
    out = _run("curriculum.py")
    summary = eval(out.strip().splitlines()[-1])  # noqa: S307 - the example prints a dict literal
    assert sum(summary.values()) == 12


@pytest.mark.parametrize("n", [4])
def test_tpu_gang_runs_one_replica_per_vm(n):
    lines = _run("tpu_gang.py").splitlines()
    assert sorted(line.split()[1] for line in lines) == [f"{i}/{n}" for i in range(n)]
    assert all(line.endswith("chips 0,1,2,3") for line in lines)
