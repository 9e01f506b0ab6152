"""Kill a generation run mid-flight (SIGKILL from the server), resume it, run it again.

Nothing that finished is regenerated, nothing is duplicated, and the third run sends
no request at all: asserted by the server's request log and by record ids.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time

import pyarrow.parquet as pq
from fake_openai import make_mcqa, server  # noqa: F401 (fixtures)

from curate.synth.config import SynthCotConfig
from curate.synth.cot import enhance_file

ROWS = 40
CONCURRENCY = 4


def signature(body: dict) -> str:
    return json.dumps([body["messages"], body["seed"], body["temperature"]], sort_keys=True)


def test_killed_run_resumes_without_regenerating_or_duplicating(server, tmp_path, make_mcqa):
    from curate.store import write_parquet

    inputs = tmp_path / "records.parquet"
    write_parquet(make_mcqa(ROWS), inputs)
    cache = tmp_path / "cache"
    generator = {"backend": "openai", "model": "tiny", "base_url": server.url,
                 "concurrency": CONCURRENCY, "backoff": 0.01}
    config = SynthCotConfig(generator=generator)
    script = textwrap.dedent(f"""
        from curate.synth.config import SynthCotConfig
        from curate.synth.cot import enhance_file
        config = SynthCotConfig.model_validate_json({config.model_dump_json()!r})
        enhance_file({str(inputs)!r}, {str(tmp_path / "killed")!r}, config=config,
                     cache_dir={str(cache)!r})
    """)
    server.delay = 0.02
    server.kill_at = 15
    child = subprocess.Popen([sys.executable, "-c", script])
    server.kill_pid = child.pid
    assert child.wait(timeout=120) == -9, "the run should have been killed"
    assert not (tmp_path / "killed").exists()
    time.sleep(0.2)  # let the server's in-flight handlers finish
    first = [signature(b) for b in server.bodies]
    with sqlite3.connect(cache / "completions.sqlite") as db:
        finished = db.execute("select count(*) from completions").fetchone()[0]
    # lost: at most the requests in flight, and replies received but not yet committed
    assert 15 - 2 * CONCURRENCY <= finished < 15

    server.kill_at = None
    resumed = enhance_file(inputs, tmp_path / "resumed", config=config, cache_dir=cache)
    second = [signature(b) for b in server.bodies[len(first):]]
    assert resumed.stats["requests"] == {"sent": ROWS - finished, "cached": finished}
    assert len(second) == ROWS - finished and len(set(second)) == len(second)
    assert set(first) | set(second) == {signature(b) for b in server.bodies}
    assert len(set(first) | set(second)) == ROWS  # every parent asked for once at attempt 1
    regenerated = set(first) & set(second)
    assert len(regenerated) == len(first) - finished  # only those killed in flight, asked again

    synthetic = pq.read_table(resumed.synthetic)
    ids = synthetic.column("id").to_pylist()
    parents = [json.loads(m)["parent_id"] for m in synthetic.column("meta").to_pylist()]
    assert len(ids) == len(set(ids)) == ROWS
    assert sorted(parents) == sorted(make_mcqa(ROWS).column("id").to_pylist())

    before = server.count
    again = enhance_file(inputs, tmp_path / "again", config=config, cache_dir=cache)
    assert server.count == before and again.stats["requests"] == {"sent": 0, "cached": ROWS}
    assert pq.read_table(again.synthetic).equals(synthetic)
