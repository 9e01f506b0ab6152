"""Run the curate CLI with fault points: SIGKILL itself at the Nth instrumented event.

Used by test_fault_injection.py as ``python fault_driver.py -- <curate args>``. The
environment says where to stop: ``CURATE_FAULT_AT`` (the 1-based event number; 0 or
unset: never) and ``CURATE_FAULT_LOG`` (a file that receives one line per event:
number, kind, path). Events are the points where a run changes what is on disk:

- ``replace-before`` / ``replace-after``: around every ``os.replace`` (each shard,
  marker, state, decision, stats file and the final rename of a release);
- ``parquet``: before every polars ``write_parquet`` (the release's data files and
  their parts, ``removed.parquet``);
- ``generate``: after every batch a generation backend returns (synthesis).

Nothing here is imported by curate: it patches the functions from outside.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    """Install the fault points, then run ``curate`` with the arguments after ``--``."""
    kill_at = int(os.environ.get("CURATE_FAULT_AT") or 0)
    log_path = os.environ.get("CURATE_FAULT_LOG")
    log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
    count = 0

    skip = os.environ.get("NUMBA_CACHE_DIR") or "\0"

    def event(kind: str, path: object) -> None:
        nonlocal count
        if str(path).startswith(skip):  # numba's own cache files: only the first build writes them
            return
        count += 1
        if log is not None:
            log.write(f"{count}\t{kind}\t{path}\n")
            log.flush()
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        event("replace-before", dst)
        real_replace(src, dst, *args, **kwargs)
        event("replace-after", dst)

    os.replace = replace  # type: ignore[assignment]

    # Compile the numba kernels once per campaign, not once per killed process: the
    # kernels are the same, only their machine code is kept (in $NUMBA_CACHE_DIR).
    import numba

    real_njit = numba.njit

    def njit(*args, **kwargs):  # type: ignore[no-untyped-def]
        if args and callable(args[0]):
            return real_njit(cache=True)(args[0])
        return real_njit(*args, **{"cache": True, **kwargs})

    numba.njit = njit

    import polars as pl

    real_write = pl.DataFrame.write_parquet

    def write_parquet(self, file, *args, **kwargs):  # type: ignore[no-untyped-def]
        event("parquet", file)
        return real_write(self, file, *args, **kwargs)

    pl.DataFrame.write_parquet = write_parquet  # type: ignore[method-assign]

    from curate.synth.offline import OfflineBackend

    real_generate = OfflineBackend.generate

    def generate(self, requests, *args, **kwargs):  # type: ignore[no-untyped-def]
        out = real_generate(self, requests, *args, **kwargs)
        event("generate", f"{len(requests)} requests")
        return out

    OfflineBackend.generate = generate  # type: ignore[method-assign]

    from curate.cli import main as curate

    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    curate(args, prog_name="curate")


if __name__ == "__main__":
    main()
