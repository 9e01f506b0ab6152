"""The one lifecycle (curate.lifecycle): setup once before the work, teardown once after it,
also when the work fails, as a context manager or through `running`. The engine owns a
step's lifecycle: setup before its work, teardown after it (also when the work fails),
neither when its results are reused; and it pads declared score columns, so a chain whose
first stage removes every record still runs every later stage."""

from __future__ import annotations

from typing import ClassVar

import polars as pl
import pyarrow as pa
import pyarrow.parquet  # noqa: F401 (pa.parquet)
import pytest
from conftest import ingest_into

from curate.config import Config
from curate.curation import build_stages
from curate.engine.runner import run_producer, run_stages
from curate.engine.stage import Produced, Producer, RowStage, StageContext
from curate.lifecycle import Lifecycle, running
from curate.records import SCHEMA
from curate.store import RunStore

SOURCES = ["dolly", "self_instruct"]


class CountingConfig(Config):
    fail: bool = False


class Counting(RowStage[CountingConfig]):
    """Records the lifecycle calls it receives, in order."""

    name = "counting"
    version = 1
    score_columns: ClassVar = {"counted": pl.Boolean}
    events: ClassVar[list[str]] = []

    def setup(self, context: StageContext) -> None:
        Counting.events.append("setup")

    def teardown(self) -> None:
        Counting.events.append("teardown")

    def score(self, records: pa.Table, context: StageContext) -> pa.Table:
        Counting.events.append("score")
        if self.config.fail:
            raise RuntimeError("scoring failed")
        return pa.table({"counted": [True] * records.num_rows})

    def decide(self, scores: pl.DataFrame) -> pl.DataFrame:
        return scores.with_columns(keep=pl.lit(True), reason=pl.lit(None, pl.String))


@pytest.fixture
def store(catalog, data_root, tmp_path):
    for name in SOURCES:
        ingest_into(catalog.source(name), tmp_path / "run", data_root)
    return RunStore(tmp_path / "run")


def test_setup_and_teardown_bracket_the_scoring_once_and_a_reused_stage_loads_nothing(store):
    Counting.events.clear()
    run_stages([Counting()], store, SOURCES, input_fingerprint="in")
    assert Counting.events == ["setup", "score", "score", "teardown"]  # one shard per source
    Counting.events.clear()
    assert run_stages([Counting()], store, SOURCES, input_fingerprint="in")[0].reused == "decisions"
    assert Counting.events == []


def test_teardown_runs_when_the_work_fails(store):
    Counting.events.clear()
    with pytest.raises(RuntimeError, match="scoring failed"):
        run_stages([Counting(CountingConfig(fail=True))], store, SOURCES, input_fingerprint="in")
    assert Counting.events == ["setup", "score", "teardown"]


def test_the_class_of_the_options_comes_from_the_type_argument():
    assert Counting.config_class is CountingConfig
    assert Counting().config == CountingConfig()
    with pytest.raises(TypeError, match="counting takes a CountingConfig"):
        Counting(Config())  # type: ignore[arg-type]


def test_a_chain_whose_first_stage_removes_everything_runs_every_later_stage(store):
    stages = build_stages({
        "clean": {"min_answer_words": 100_000},       # every record is a `short_answer`
        "exact_dedup": {}, "near_dedup": {},
        "decontam": {"benchmarks": []},
        "diversity": {},
    }, where="test")
    results = run_stages([*stages, Counting()], store, SOURCES, input_fingerprint="in",
                         context=StageContext(benchmarks={}))
    first, *later = results
    assert first.stats["dropped"] == first.stats["rows"] == 151 + 175
    assert first.stats["reasons"] == {"short_answer": 326}
    for stage, result in zip([*stages[1:], Counting()], later, strict=True):
        assert (result.stats["rows"], result.stats["kept"]) == (0, 0), stage.name
        decisions = pl.read_parquet(store.stage(stage.name).decisions)
        assert set(stage.score_columns) <= set(decisions.columns), stage.name


class Copies(Producer[Config]):
    """A producer that copies its input records under its own source name."""

    name = "copies"
    version = 1
    source = "copies"
    calls: ClassVar[int] = 0

    def produce(self, records, context, *, progress=None):
        Copies.calls += 1
        copied = records.set_column(records.schema.get_field_index("source"), "source",
                                    pa.array(["copies"] * records.num_rows, pa.string()))
        return Produced(copied, pa.table({"id": pa.array([], pa.string())}), {"rows": records.num_rows})


def test_a_producer_is_fingerprinted_and_resumed_like_a_stage(store):
    Copies.calls = 0
    parents = lambda: pa.concat_tables(pa.parquet.read_table(p).cast(SCHEMA)  # noqa: E731
                                       for p in store.source("dolly").files("records"))
    first = run_producer(Copies(), store, parents, input_fingerprint="kept")
    again = run_producer(Copies(), store, parents, input_fingerprint="kept")
    assert (first.reused, again.reused, Copies.calls) == ("nothing", "records", 1)
    assert first.stats == again.stats == {"rows": 151}
    made = pl.read_parquet(store.source("copies").files("records"))
    assert made.height == 151 and set(made.get_column("source")) == {"copies"}
    run_producer(Copies(), store, parents, input_fingerprint="other input")
    assert Copies.calls == 2


class Recording(Lifecycle):
    def __init__(self) -> None:
        self.events: list[str] = []

    def setup(self, *args: object) -> None:
        self.events.append(f"setup{args}" if args else "setup")

    def teardown(self) -> None:
        self.events.append("teardown")


def test_the_context_manager_sets_up_and_tears_down_once_each():
    thing = Recording()
    with thing as entered:
        assert entered is thing
        thing.events.append("work")
    assert thing.events == ["setup", "work", "teardown"]


def test_teardown_runs_once_when_the_work_fails():
    thing = Recording()
    with pytest.raises(RuntimeError, match="work failed"), thing:
        raise RuntimeError("work failed")
    assert thing.events == ["setup", "teardown"]
    step = Recording()
    with pytest.raises(RuntimeError, match="work failed"), running(step, "context"):
        raise RuntimeError("work failed")
    assert step.events == ["setup('context',)", "teardown"]


def test_running_passes_its_arguments_to_setup_and_yields_the_thing():
    thing = Recording()
    with running(thing, "context") as running_thing:
        assert running_thing is thing
    assert thing.events == ["setup('context',)", "teardown"]


def test_the_base_hooks_do_nothing():
    with Lifecycle() as plain:
        assert isinstance(plain, Lifecycle)


def test_a_step_has_the_one_lifecycle():
    Counting.events.clear()
    with running(Counting(), StageContext()) as step:
        assert isinstance(step, Lifecycle)
    assert Counting.events == ["setup", "teardown"]
