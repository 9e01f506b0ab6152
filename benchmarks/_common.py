"""What every benchmark script prints the same way: the expected run time at start, the
machine and its load, and where its scratch data is (and how big), or that it was removed.

Imported by the scripts in this folder when run as ``python benchmarks/<name>.py`` (the
folder is then first on ``sys.path``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


_STARTED: list[float] = []


def announce(script: str, expected_seconds: float, size: str) -> float:
    """Print the expected run time and the load; return the start time for :func:`finish`.

    The estimates come from runs on the project's 2-core machine while it was shared (load
    average 10-25): an idle machine is faster."""
    load = os.getloadavg()[0]
    print(f"{script}: {size}; expected run time about {_duration(expected_seconds)} (estimated from "
          f"runs on a shared 2-core machine; idle is faster; load average now {load:.2f} on "
          f"{os.cpu_count()} cores)", flush=True)
    _STARTED.append(time.perf_counter())
    return _STARTED[-1]


def folder_size(folder: Path) -> int:
    """Bytes under ``folder`` (0 when it does not exist)."""
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def human(size: int) -> str:
    """``size`` bytes as KB, MB or GB."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def finish(started: float | None, scratch: list[Path], clean: bool) -> None:
    """Print the wall time (since ``started``, or the last :func:`announce`); remove the
    scratch folders or files (``clean``) or say where they are and how big."""
    if started is None:
        started = _STARTED[-1] if _STARTED else time.perf_counter()
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if not scratch:
        print("scratch: none left behind (temporary folders only, removed as it went)")
    for folder in scratch:
        if not folder.exists():
            continue
        size = folder.stat().st_size if folder.is_file() else folder_size(folder)
        if clean:
            if folder.is_file():
                folder.unlink()
            else:
                shutil.rmtree(folder, ignore_errors=True)
            print(f"scratch: removed {folder} ({human(size)})")
        else:
            print(f"scratch: {folder} holds {human(size)} (reused by the next run; "
                  "pass --clean to remove it at the end, or delete it)")


def add_clean(parser) -> None:
    """The ``--clean`` flag every script takes."""
    parser.add_argument("--clean", action="store_true",
                        help="remove this script's scratch data under benchmarks/_work at the end")
