"""What every benchmark script does the same way: the expected run time at start, the
machine and its load, where its scratch data is (and how big) or that it was removed, and
``--smoke``, the size the test suite runs it at (tests/test_benchmarks.py).

Imported by the scripts in this folder when run as ``python benchmarks/<name>.py`` (the
folder is then first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


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
    scratch folders or files (``clean``) or say where they are and how big. A ``--smoke``
    run's temporary work folder is removed whatever ``clean`` says."""
    if started is None:
        started = _STARTED[-1] if _STARTED else time.perf_counter()
    print(f"wall time {time.perf_counter() - started:.0f} s")
    scratch = [s for s in scratch if not any(s.is_relative_to(t) for t in _TEMPORARY)] + _TEMPORARY
    if not scratch:
        print("scratch: none left behind (temporary folders only, removed as it went)")
    for folder in scratch:
        if not folder.exists():
            continue
        size = folder.stat().st_size if folder.is_file() else folder_size(folder)
        if clean or folder in _TEMPORARY:
            if folder.is_file():
                folder.unlink()
            else:
                shutil.rmtree(folder, ignore_errors=True)
            print(f"scratch: removed {folder} ({human(size)})")
        else:
            print(f"scratch: {folder} holds {human(size)} (reused by the next run; "
                  "pass --clean to remove it at the end, or delete it)")


def add_clean(parser) -> None:
    """The ``--clean`` flag every script with scratch data takes."""
    parser.add_argument("--clean", action="store_true",
                        help="remove this script's scratch data (its --work folder) at the end")


def add_work(parser: argparse.ArgumentParser, name: str, *, emptied: bool = False) -> None:
    """``--work``: the folder a script keeps its scratch data in, by default
    ``benchmarks/_work/<name>``; under ``--smoke`` a new temporary folder. ``emptied``: the
    script removes what the folder holds at the start (say so), else the next run reuses it."""
    default = HERE / "_work" / name
    kept = "emptied at the start" if emptied else "reused by the next run"
    parser.add_argument("--work", type=Path, default=default,
                        help=f"the folder for scratch data, {kept} (default {default}; with --smoke a "
                        "new temporary folder, removed at the end)")


_TEMPORARY: list[Path] = []
"""Temporary work folders made for ``--smoke``, removed by :func:`finish`."""


def parse_args(parser: argparse.ArgumentParser, smoke: Mapping[str, object],
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line with ``--smoke`` added: the size the test suite runs the script at
    (seconds; the real code path and the peer when it is installed). Under ``--smoke`` the
    values of ``smoke`` (option dest -> value) are the defaults, arguments given still win, and
    ``--work`` (when the script has one and it is not given) is a new temporary folder that
    :func:`finish` removes."""
    shown = " ".join(f"--{dest.replace('_', '-')}" + ("" if value is True else " " + (
        " ".join(map(str, value)) if isinstance(value, list) else str(value)))
        for dest, value in smoke.items())
    parser.add_argument("--smoke", action="store_true",
                        help=f"the test suite's size, seconds long: {shown or 'the defaults'}; scratch "
                        "data in a temporary folder, removed at the end; the figures mean nothing")
    args = parser.parse_args(argv)
    if not args.smoke:
        return args
    defaults = dict(smoke)
    if getattr(args, "work", None) is not None and args.work == parser.get_default("work"):
        defaults["work"] = Path(tempfile.mkdtemp(prefix=f"{parser.prog.removesuffix('.py')}-smoke-"))
        _TEMPORARY.append(defaults["work"])
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def installed(module: str, peer: str, extra: str = "bench") -> bool:
    """Whether ``module`` can be imported; if not, print that ``peer`` is skipped and how to
    install it."""
    if importlib.util.find_spec(module) is not None:
        return True
    print(f"peer skipped: {peer} needs `{module}`, which is not installed "
          f"(pip install -e '.[{extra}]')", flush=True)
    return False
