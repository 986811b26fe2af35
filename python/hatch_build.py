"""Hatch build hook: the frayhq wheel carries the fray binaries.

``make wheel`` builds them and passes their directory in
$FRAY_WHEEL_BIN_DIR; ``pip install ./python`` from a checkout builds them
here with Go (the module root is this directory's parent). The wheel is
then tagged py3-none-<this platform>: the binaries are native, the Python
is not version-specific.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BINARIES = ("fray", "fray-broker", "fray-worker")


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        bin_dir = os.environ.get("FRAY_WHEEL_BIN_DIR")
        if not bin_dir:
            bin_dir = self._go_build()
        for name in BINARIES:
            p = Path(bin_dir) / name
            if not p.is_file():
                raise RuntimeError(f"frayhq wheel: {p} is missing (FRAY_WHEEL_BIN_DIR={bin_dir})")
            build_data["force_include"][str(p)] = f"frayhq/_bin/{name}"
        build_data["pure_python"] = False
        plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{plat}"

    def _go_build(self) -> str:
        root = Path(self.root).resolve().parent
        if not (root / "go.mod").is_file():
            raise RuntimeError(
                "frayhq wheel: no fray binaries: set FRAY_WHEEL_BIN_DIR to a directory holding "
                f"{', '.join(BINARIES)}, or build from a fray checkout (no go.mod above {self.root})"
            )
        go = shutil.which("go")
        if go is None:
            raise RuntimeError(
                "frayhq wheel: building the fray binaries needs Go (https://go.dev/dl) on PATH"
            )
        out = tempfile.mkdtemp(prefix="frayhq-bin-")
        subprocess.run(
            [go, "build", "-trimpath", "-o", out + os.sep, *(f"./cmd/{b}" for b in BINARIES)],
            cwd=root,
            check=True,
        )
        return out
