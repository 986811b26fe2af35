"""The wheel: built from python/ with the binaries inside, installed on its
own, it is a whole cluster (console scripts and connect('local'))."""

import os
import subprocess
import sys

from conftest import ROOT


def test_wheel_carries_the_binaries_and_runs_a_local_cluster(fray_bin_dir, tmp_path):
    env = dict(os.environ, FRAY_WHEEL_BIN_DIR=fray_bin_dir)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT / "python"),
        ],
        check=True,
        env=env,
        timeout=600,
    )
    (wheel,) = (tmp_path / "dist").glob("frayhq-*.whl")
    assert (
        wheel.name.startswith("frayhq-") and "-py3-none-" in wheel.name and not wheel.name.endswith("any.whl")
    )
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    # Only the installed wheel: no checkout on the path, no FRAY_BIN_DIR.
    clean = {
        k: v for k, v in os.environ.items() if k not in ("FRAY_BIN_DIR", "PYTHONPATH", "FRAY_CLUSTER_SPEC")
    }
    clean["PYTHONPATH"] = str(target)
    out = subprocess.run(
        [str(target / "bin" / "fray-worker"), "--help"], capture_output=True, text=True, env=clean, timeout=60
    )
    assert "Usage: fray-worker" in out.stdout + out.stderr
    code = (
        "import frayhq\n"
        "c = frayhq.connect('local', workers=1)\n"
        "print(c.run(lambda: 'ran').result(120), c.local.procs[0].args[0])\n"
        "c.shutdown()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    ran, broker = out.stdout.split()
    assert ran == "ran"
    assert broker == str(target / "frayhq" / "_bin" / "fray-broker")
