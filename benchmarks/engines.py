"""The same `curate build-mix` with the in-process executor and with Ray: wall time, peak
memory, and that every engine writes the same release.

The corpus and recipe are `build_mix.py`'s (real MedQuAD, Dolly and Self-Instruct answers,
perturbed copies; exact dedup, near dedup, decontamination against MMLU-medical, a 60/40
mix). Engines, each a fresh `curate build-mix` process with its own run folder:

- `local`: in this process, one shard at a time;
- `ray 1` and `ray 2`: a local Ray cluster the build starts, 1 and 2 workers;
- `ray 2 nodes`: two Ray "nodes" on this machine (`ray start --block --head --num-cpus 1`
  and `ray start --block --address ... --num-cpus 1`, under a temporary folder of their
  own), joined with `--ray-address`, so objects really cross between raylets and object
  stores; stopping them stops those two nodes only, never another Ray on the machine.

Memory is the peak of the summed proportional set size (PSS: shared pages counted once
across processes) of the build and every Ray process, sampled ten times a second; Ray's
workers are counted with it. On 2 cores Ray cannot be faster than one process: what this
measures is its overhead (at 1M records the target is Ray on 2 workers within 1.5x of
in-process), and its fixed cost on a small input.

    .venv/bin/python benchmarks/engines.py --rows 20000 1000000   # about 40 min on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import add_clean, add_work, announce, finish, installed, parse_args
from build_mix import DATA, FULL, make_corpus, write_catalog

ENGINES = ("local", "ray 1", "ray 2", "ray 2 nodes")
RAY_PROCESSES = ("raylet", "gcs_server", "ray::", "default_worker", "dashboard", "log_monitor",
                 "runtime_env", "monitor.py", "ray_client_server")


def _pss(process) -> int:
    try:
        info = process.memory_full_info()
        return int(getattr(info, "pss", info.rss))
    except Exception:  # gone, or not ours to read: it counts nothing
        return 0


class Sampler:
    """The peak, over time, of the summed PSS of a build's process tree and every Ray process."""

    def __init__(self, pid: int):
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _processes(self) -> list:
        found = {}
        try:
            for p in [self.root, *self.root.children(recursive=True)]:
                found[p.pid] = p
        except self.psutil.NoSuchProcess:
            pass
        for p in self.psutil.process_iter(["cmdline"]):
            line = " ".join(p.info.get("cmdline") or [])
            if any(name in line for name in RAY_PROCESSES):
                found[p.pid] = p
        return list(found.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_pss(p) for p in self._processes()))
            self._stop.wait(0.1)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def release_digest(folder: Path) -> str:
    """One hash of a release's data files and removed.parquet (what every engine must agree on)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.parquet")):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(32).hex()}
"""What the nodes and the build share: Ray authenticates every client of a `ray start` cluster
with a token (as the Slurm script does, one per run)."""


class TwoNodes:
    """A head and a second node on this machine, one CPU each, each a `ray start --block`
    process of its own (as the Slurm script starts them), under a temporary folder of their
    own: a driver elsewhere on the machine never joins them by chance (`ray.init()` joins
    the cluster recorded under its temporary folder), and stopping them stops these two
    nodes only (`ray stop` would stop every Ray on the machine, a test suite's included)."""

    address = "127.0.0.1:6390"

    def __enter__(self) -> TwoNodes:
        self.folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # sockets: 107 bytes at most
        self.env = {**os.environ, **RAY_ENV, "RAY_TMPDIR": str(self.folder)}
        self.nodes: list[subprocess.Popen] = []
        try:
            for start in (["--head", "--port", "6390", "--include-dashboard", "false"],
                          ["--address", self.address]):
                with open(self.folder / f"node-{len(self.nodes)}.log", "w") as log:
                    self.nodes.append(subprocess.Popen(
                        [ray_cli(), "start", "--block", *start, "--node-ip-address", "127.0.0.1",
                         "--num-cpus", "1", "--disable-usage-stats"],
                        stdout=log, stderr=subprocess.STDOUT, env=self.env))
                self._wait_for(len(self.nodes))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_for(self, nodes: int, timeout: float = 180) -> None:
        """Until `ray status` counts ``nodes`` live nodes (a node process that ends fails)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, node in enumerate(self.nodes):
                if node.poll() is not None:
                    log = (self.folder / f"node-{i}.log").read_text()
                    raise SystemExit(f"ray start failed:\n{log[-2000:]}")
            status = subprocess.run([ray_cli(), "status", "--address", self.address], capture_output=True,
                                    text=True, env=self.env)
            active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
            if status.returncode == 0 and active.count("node_") >= nodes:
                return
            time.sleep(1)
        raise SystemExit(f"ray start: {nodes} node(s) not up after {timeout:.0f} s")

    def __exit__(self, *_: object) -> None:
        for node in reversed(self.nodes):  # `ray start --block` stops its node's processes on SIGTERM
            node.terminate()
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def build(engine: str, rows: int, work: Path) -> dict:
    """One build-mix of the corpus with ``engine``: wall time, peak PSS, the release's digest."""
    corpus = make_corpus(rows, work)
    catalog, recipe = write_catalog(corpus, FULL)
    folder = corpus / engine.replace(" ", "_")
    shutil.rmtree(folder, ignore_errors=True)
    options = ["--engine", "local"]
    nodes: TwoNodes | None = None
    env = {**os.environ, **RAY_ENV}
    if engine.startswith("ray"):
        options = ["--engine", "ray", "--workers", "2" if "2" in engine else "1", "--partitions", "4"]
        if engine == "ray 2 nodes":
            nodes = TwoNodes().__enter__()
            options += ["--ray-address", nodes.address]
            env = nodes.env
    command = [sys.executable, "-m", "curate.cli", "build-mix", str(recipe), "--catalog", str(catalog),
               "--data-root", str(DATA), "--runs", str(folder / "runs"),
               "--releases", str(folder / "releases"), "--json", *options]
    started = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=env)
        with Sampler(process.pid) as memory:
            out, err = process.communicate()
        seconds = time.perf_counter() - started
    finally:
        if nodes is not None:
            nodes.__exit__()
    if process.returncode != 0:
        raise SystemExit(f"{engine}: build-mix failed:\n{err[-3000:]}")
    summary = json.loads(out)
    stages = [s["stage"].rsplit("_v", 1)[0] for s in summary["stages"]]
    release = folder / "releases" / "bench" / "1"
    return {"seconds": seconds, "peak_mb": memory.peak / 2**20, "digest": release_digest(release),
            "stages": stage_seconds(folder / "runs", stages)}


def stage_seconds(runs: Path, stages: list[str]) -> dict[str, tuple[float, int]]:
    """Each stage's wall time (scoring and deciding) and the rows it decided, from its
    ``stats.json``, in the recipe's order."""
    stats = {path.parent.name: json.loads(path.read_text()) for path in runs.glob("*/*/*/stats.json")}
    return {name: (stats[name]["seconds"], stats[name]["rows"]) for name in stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 1_000_000],
                        help="corpus sizes (records); each is built by every engine")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES,
                        help="the engines to run (default: all)")
    add_work(parser, "engines")
    add_clean(parser)
    args = parse_args(parser, {"rows": [2000], "engines": ["local", "ray 2"]})
    if not installed("psutil", "peak memory (psutil)") or not installed("ray", "the Ray executor", "ray"):
        args.engines = [e for e in args.engines if e == "local"] if installed("psutil", "") else []
        if not args.engines:
            return
    # measured on the shared 2-core machine: about 25 s of fixed cost per Ray build, 300 s per 1M local
    started = announce("engines.py", sum(len(args.engines) * (30 + 4e-4 * n) for n in args.rows),
                       f"records {', '.join(f'{n:,}' for n in args.rows)}; engines {', '.join(args.engines)}")
    for rows in args.rows:
        print(f"{rows:>10,} records")
        results = {}
        for engine in args.engines:
            results[engine] = r = build(engine, rows, args.work)
            print(f"  {engine:<12} {r['seconds']:8.1f} s   peak PSS {r['peak_mb']:7.0f} MB (build and Ray "
                  f"processes summed)   release {r['digest']}", flush=True)
            stages = r["stages"].items()
            print("               stages: " + ", ".join(
                f"{name} {seconds:.1f} s ({rows / seconds:,.0f} rows/s)" for name, (seconds, rows) in stages))
        if "local" in results:
            base = results["local"]
            for engine, r in results.items():
                if engine != "local":
                    print(f"  ratio {engine} / local: time {r['seconds'] / base['seconds']:.2f}x, "
                          f"peak memory {r['peak_mb'] / base['peak_mb']:.2f}x")
        same = len({r["digest"] for r in results.values()}) == 1
        print(f"  releases: {'identical' if same else 'DIFFERENT'} across {', '.join(results)}")
        if not same:
            raise SystemExit("the engines wrote different releases")
    print("2 cores cannot show a speed-up: these figures are Ray's overhead over one process.")
    finish(started, [args.work], args.clean)


if __name__ == "__main__":
    main()
