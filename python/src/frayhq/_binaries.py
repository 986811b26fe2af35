"""Where frayhq finds the fray binaries, and the console-script shims.


A wheel built by ``make wheel`` carries ``fray``, ``fray-broker`` and
``fray-worker`` in ``frayhq/_bin/``; the console scripts of the same names
exec them. Otherwise they are looked up in $FRAY_BIN_DIR, then on $PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .errors import ConfigError

BINARIES = ("fray", "fray-broker", "fray-worker")


def find(name: str) -> str:
    """The path of fray binary ``name``; ConfigError saying where it looked."""
    looked: list[str] = []
    for d in (os.environ.get("FRAY_BIN_DIR"), str(Path(__file__).parent / "_bin")):
        if not d:
            continue
        p = Path(d) / name
        looked.append(str(p))
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    w = shutil.which(name)
    if w and not _is_shim(w):
        return w
    looked.append(f"{name} on $PATH")
    raise ConfigError(
        f"frayhq: cannot find the {name} binary (looked at {', '.join(looked)}); "
        "install a frayhq wheel built by `make wheel`, `pip install ./python` from a checkout, "
        "or set FRAY_BIN_DIR to a directory holding fray, fray-broker and fray-worker"
    )


def _is_shim(path: str) -> bool:
    # A console script of this package is a Python file, not the binary.
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return False


def _exec(name: str) -> None:
    binary = Path(__file__).parent / "_bin" / name
    if not binary.is_file():
        sys.stderr.write(f"frayhq: this installation carries no {name} binary ({binary} is missing)\n")
        raise SystemExit(127)
    os.execv(str(binary), [name, *sys.argv[1:]])


def fray() -> None:
    _exec("fray")


def fray_broker() -> None:
    _exec("fray-broker")


def fray_worker() -> None:
    _exec("fray-worker")
