"""The frayhq suite runs against real local clusters started from the fray
binaries: $FRAY_BIN_DIR when set (make test builds them into bin/), else
built here with Go once per session."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python" / "src"))

import frayhq  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def fray_bin_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = os.environ.get("FRAY_BIN_DIR")
    if not d:
        out = tmp_path_factory.mktemp("bin")
        subprocess.run(
            ["go", "build", "-o", f"{out}/", "./cmd/fray", "./cmd/fray-broker", "./cmd/fray-worker"],
            cwd=ROOT,
            check=True,
        )
        d = str(out)
        os.environ["FRAY_BIN_DIR"] = d
    return d


@pytest.fixture(scope="session")
def client(fray_bin_dir: str) -> frayhq.Client:
    c = frayhq.connect("local")
    yield c
    c.shutdown()


@pytest.fixture
def name() -> str:
    """A fresh actor or job name."""
    return "t-" + uuid.uuid4().hex[:10]


def child_env() -> dict[str, str]:
    """The environment of a Python child process that imports frayhq from the checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python" / "src"), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return env
