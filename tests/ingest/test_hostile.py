"""Issue 20: a careless or hostile catalog, recipe or data file never escapes its root,
never loses or duplicates rows on a resume, and never crashes the reader."""

from __future__ import annotations

import io
import json
import os
import shutil

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import ingest_into, write_yaml

from curate.catalog import Catalog, Recipe, Source, confined, resolve_files
from curate.cli import main
from curate.config import load_model
from curate.errors import ConfigError
from curate.ingest import ingest
from curate.progress import Tick
from curate.store import RunStore


def counts(quarantine: pl.DataFrame) -> dict[str, int]:
    return dict(quarantine.group_by("reason").len().sort("reason").iter_rows())


def entry(loc: dict, mapping: dict | None = None, **extra) -> Source:
    return Source.model_validate({
        "name": "s", "version": "1", "license": "MIT", "domain": "general", "task": "qa",
        "location": loc, "mapping": mapping or {"kind": "chat", "question": "question", "answer": "answer"},
        **extra})


# -- 1. names and versions ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["/some/absolute/path", "../../x", "a/b", "..", ".hidden", "1.0/..", ""])
def test_unsafe_recipe_versions_are_refused(tmp_path, version):
    path = write_yaml(tmp_path / "r.yaml", f"""
        name: r
        version: {json.dumps(version)}
        sources: [dolly]
    """)
    with pytest.raises(ConfigError, match=r"r\.yaml: `version`: .*not a safe folder name"):
        load_model(Recipe, path)


def test_a_hostile_version_creates_and_deletes_nothing_outside(tmp_path):
    victim = tmp_path / "victim"
    (victim / "ingest/dolly").mkdir(parents=True)
    (victim / "ingest/dolly/precious.txt").write_text("keep me")
    recipe = write_yaml(tmp_path / "r.yaml", f"""
        name: r
        version: "{victim}"
        sources: [dolly]
    """)
    out = CliRunner().invoke(main, ["build-mix", str(recipe), "--runs", str(tmp_path / "runs"),
                                    "--releases", str(tmp_path / "releases")])
    assert out.exit_code == 2
    assert "not a safe folder name" in out.output
    assert (victim / "ingest/dolly/precious.txt").read_text() == "keep me"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "releases").exists()


def test_run_ids_and_store_folders_stay_under_their_root(tmp_path):
    with pytest.raises(ConfigError, match="run id `../x` is not a safe folder name"):
        RunStore.for_recipe(tmp_path / "runs", "r", "../x")
    with pytest.raises(ConfigError, match="source name `../../etc` is not a safe folder name"):
        RunStore(tmp_path / "run").source("../../etc")
    # a symlinked folder inside the run that points out of it: nothing is wiped there
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (tmp_path / "run/ingest").mkdir(parents=True)
    os.symlink(outside, tmp_path / "run/ingest/dolly")
    with pytest.raises(ConfigError, match="run-store folder .* outside .*; refused"):
        RunStore(tmp_path / "run").source("dolly").open("fp")
    assert (outside / "precious.txt").read_text() == "keep me"
    os.symlink(outside, tmp_path / "link")
    with pytest.raises(ConfigError, match="release folder .*link/x resolves to .*outside"):
        confined(tmp_path / "link/x", tmp_path / "releases", what="release folder")


# -- 2. paths stay under the data root --------------------------------------------------------


@pytest.fixture
def roots(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret.jsonl").write_text('{"question": "secret?", "answer": "s3cr3t"}\n')
    return data, tmp_path


@pytest.mark.parametrize("path", ["../secret.jsonl", "{tmp}/secret.jsonl", "/etc/passwd",
                                  "../../../../etc/passwd", "{up}etc/passwd", "../*.jsonl"])
def test_catalog_paths_outside_the_data_root_are_refused(roots, path):
    data, tmp = roots
    path = path.format(tmp=tmp, up="../" * len(data.parts))
    source = entry({"path": path, "format": "jsonl"})
    result, records, _ = ingest_into(source, tmp / "run", data)
    assert result.error is not None and "outside the data root" in result.error
    assert "`s`" in result.error and path in result.error
    assert "allow_outside_data_root: true" in result.error
    assert records.is_empty()


def test_a_symlink_that_leaves_the_root_is_refused_and_an_opt_in_reads_it(roots):
    data, tmp = roots
    os.symlink(tmp / "secret.jsonl", data / "link.jsonl")
    result, _, _ = ingest_into(entry({"path": "link.jsonl"}), tmp / "run", data)
    assert "link.jsonl" in result.error and "symlink" in result.error
    opted = entry({"path": "link.jsonl"}, allow_outside_data_root=True)  # on the entry
    result, records, _ = ingest_into(opted, tmp / "run2", data)
    assert (result.error, records.height) == (None, 1)
    absolute = entry({"path": str(tmp / "secret.jsonl"), "allow_outside_data_root": True})
    assert resolve_files(absolute.location, data) == [tmp / "secret.jsonl"]


def test_the_cli_flag_opts_every_entry_in(roots):
    data, tmp = roots
    write_yaml(tmp / "cat/sources/outside.yaml", f"""
        name: outside
        version: 1
        license: MIT
        domain: general
        task: qa
        location: {{path: {tmp / 'secret.jsonl'}}}
        mapping: {{kind: chat, question: question, answer: answer}}
    """)
    recipe = write_yaml(tmp / "r.yaml", "name: r\nversion: '1'\nsources: [outside]\n")
    base = ["ingest", str(recipe), "--catalog", str(tmp / "cat"), "--data-root", str(data),
            "--runs", str(tmp / "runs")]
    refused = CliRunner().invoke(main, base)
    assert refused.exit_code == 1
    allowed = CliRunner().invoke(main, [*base, "--allow-outside-data-root"])
    assert allowed.exit_code == 0, allowed.output
    assert Catalog.load([tmp / "cat"], allow_outside_data_root=True).source("outside").allow_outside_data_root


def test_shipped_catalog_prefix_and_the_shared_data_root_still_resolve(catalog, data_root):
    demo = catalog.source("medquad_contaminated_demo")
    assert demo.location.path.startswith("catalog:")
    assert resolve_files(demo.location, data_root)[0].is_file()
    assert resolve_files(catalog.benchmark("mmlu_medical_csv").location, data_root)


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def test_image_paths_in_rows_stay_under_the_roots(roots):
    data, tmp = roots
    (tmp / "outside.png").write_bytes(_png())
    (data / "imgs").mkdir()
    (data / "imgs/in.png").write_bytes(_png())
    (data / "shared.png").write_bytes(_png())
    os.symlink(tmp / "outside.png", data / "imgs/link.png")
    rows = [{"image": "in.png"}, {"image": "../../outside.png"}, {"image": str(tmp / "outside.png")},
            {"image": "link.png"}, {"image": "../shared.png"}]
    (data / "imgs/v.jsonl").write_text("".join(json.dumps({**r, "q": "What?", "a": "That."}) + "\n"
                                               for r in rows))
    mapping = {"kind": "image_text", "image": "image", "question": "q", "answer": "a"}
    result, records, quarantine = ingest_into(entry({"path": "imgs/v.jsonl"}, mapping), tmp / "run", data)
    assert records.get_column("row").to_list() == [0, 4]  # under the data root is fine
    assert counts(quarantine) == {"image_outside_root": 3}
    bad = quarantine.filter(row=1).row(0, named=True)
    assert bad["source"] == "s"
    assert bad["detail"] == (f"../../outside.png resolves to {tmp / 'outside.png'}, outside {data} "
                             f"and {data / 'imgs'}; refused")
    # an image_root outside the data root needs the opt-in
    outside_root = dict(mapping, image_root=str(tmp))
    result, _, _ = ingest_into(entry({"path": "imgs/v.jsonl"}, outside_root), tmp / "run2", data)
    assert "`s`: `mapping.image_root`" in result.error and "outside" in result.error
    _, opted, _ = ingest_into(entry({"path": "imgs/v.jsonl"}, mapping, allow_outside_data_root=True),
                              tmp / "run3", data)
    assert opted.height == 5


# -- 3. resumes keyed on shard size and file content ------------------------------------------


class Interrupted(Exception):
    pass


def stop_after(shards: int):
    seen: list[int] = []

    def progress(tick: Tick) -> None:
        seen.append(tick.done)
        if len(seen) == shards:
            raise Interrupted

    return progress


@pytest.mark.parametrize("resume_rows", [500, 100])
def test_a_resume_with_another_batch_size_starts_over(catalog, data_root, tmp_path, caplog, resume_rows):
    source = catalog.source("medquad_sample")
    with pytest.raises(Interrupted):
        ingest_into(source, tmp_path / "run", data_root, batch_rows=200, progress=stop_after(2))
    result, records, _ = ingest_into(source, tmp_path / "run", data_root, batch_rows=resume_rows)
    assert result.records == records.height == 1500
    assert records.get_column("row").to_list() == list(range(1500))
    assert result.resumed_shards == 0
    assert result.restarted == f"--batch-rows is {resume_rows}, the kept shards were cut at 200 rows"
    assert f"source medquad_sample starts over: --batch-rows is {resume_rows}" in caplog.text


def test_a_file_changed_with_the_same_size_and_mtime_is_read_again(tmp_path):
    rows = [{"question": f"Question {i}?", "answer": f"Answer {i}."} for i in range(30)]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = entry({"path": "qa.jsonl"})
    ingest_into(source, tmp_path / "run", tmp_path, batch_rows=10)
    before = path.stat()
    text = path.read_text().replace("Answer 7.", "Answer 9.")
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    result, records, _ = ingest_into(source, tmp_path / "run", tmp_path, batch_rows=10)
    assert result.restarted == "the content of qa.jsonl changed"
    answers = records.get_column("messages").list.get(1).struct.field("content").to_list()
    assert answers.count("Answer 9.") == 2
    # touched but not changed: the finished source is kept
    os.utime(path)
    again, _, _ = ingest_into(source, tmp_path / "run", tmp_path, batch_rows=10)
    assert again.restarted is None and again.resumed_shards == 3


# -- 4. readers never crash -------------------------------------------------------------------


def test_invalid_utf8_is_quarantined_on_the_fast_path(tmp_path):
    lines = [b'{"question": "Fine?", "answer": "Yes."}', b'{"question": "Bad \xff\xfe", "answer": "x"}',
             b'{"question": "Also fine?", "answer": "Yes."}']
    (tmp_path / "qa.jsonl").write_bytes(b"\n".join(lines) + b"\n")  # no blank line anywhere
    result, records, quarantine = ingest_into(entry({"path": "qa.jsonl"}), tmp_path / "run", tmp_path)
    assert result.error is None
    assert records.get_column("row").to_list() == [0, 2]
    assert quarantine.select("row", "reason").rows() == [(1, "invalid_utf8")]


MESSAGES = [
    [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
    5,
    json.dumps([{"role": "user", "content": "As JSON text?"}, {"role": "assistant", "content": "Yes."}]),
    "not json at all",
    [1, 2],
    {"role": "user"},
    [[{"role": "user"}]],
    None,
]


def test_a_messages_column_of_the_wrong_type_is_quarantined_row_by_row(tmp_path):
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in MESSAGES))
    source = entry({"path": "m.jsonl"}, {"kind": "chat", "messages": "messages"})
    result, records, quarantine = ingest_into(source, tmp_path / "run", tmp_path)
    assert result.error is None
    assert records.get_column("row").to_list() == [0, 2]
    assert counts(quarantine) == {"missing_field:messages": 1, "wrong_type:messages": 5}


@pytest.mark.parametrize("value", [5, "text", {"a": 1}, [1, 2]])
def test_a_messages_column_of_one_wrong_type_fails_no_source(tmp_path, value):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"messages": value}) + "\n")
    (tmp_path / "good.jsonl").write_text(json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    bad = entry({"path": "bad.jsonl"}, {"kind": "chat", "messages": "messages"})
    good = entry({"path": "good.jsonl"}).model_copy(update={"name": "good"})
    result = ingest([bad, good], RunStore(tmp_path / "run"), data_root=tmp_path)
    assert [(r.name, r.error, r.records) for r in result.sources] == [("s", None, 0), ("good", None, 1)]
    assert result.sources[0].quarantined == {"wrong_type:messages": 1}


def test_one_unreadable_source_never_stops_the_others(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "broken.json").write_bytes(b'[{"question": "a", ')
    (tmp_path / "good.jsonl").write_text(json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    sources = [entry({"path": "broken.parquet"}).model_copy(update={"name": "p"}),
               entry({"path": "broken.json"}).model_copy(update={"name": "j"}),
               entry({"path": "good.jsonl"}).model_copy(update={"name": "g"})]
    result = ingest(sources, RunStore(tmp_path / "run"), data_root=tmp_path)
    errors = {r.name: r.error for r in result.sources}
    assert "broken.parquet: not a readable parquet file" in errors["p"]
    assert "broken.json: line 1, column" in errors["j"]
    assert "\n" not in errors["p"] + errors["j"]
    assert errors["g"] is None and result.sources[2].records == 1


def test_a_record_over_the_size_limit_is_quarantined_unparsed(tmp_path):
    big = json.dumps({"question": "x" * (3 << 20), "answer": "y"})
    (tmp_path / "big.jsonl").write_text(big + "\n" + json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    (tmp_path / "big.csv").write_text(f"question,answer\n{'x' * (3 << 20)},y\nQ?,A.\n")
    for name in ("big.jsonl", "big.csv"):
        result, records, quarantine = ingest_into(entry({"path": name}), tmp_path / f"run-{name}", tmp_path,
                                                  max_record_bytes=1 << 20)
        assert result.error is None and records.get_column("row").to_list() == [1]
        assert quarantine.select("row", "reason").rows() == [(0, "record_too_large")]
        assert "more than the limit of 1,048,576" in quarantine.get_column("detail")[0]


def test_mcqa_index_answers_must_be_whole_numbers(tmp_path):
    golds = [2, 2.5, "2.5", "1", 3.0, -1, "x", "1e0"]
    (tmp_path / "mc.jsonl").write_text("".join(
        json.dumps({"q": "Which?", "o": ["a", "b", "c", "d"], "g": g}) + "\n" for g in golds))
    mapping = {"kind": "mcqa", "question": "q", "options": "o", "answer": "g", "answer_format": "index"}
    _, records, quarantine = ingest_into(entry({"path": "mc.jsonl"}, mapping), tmp_path / "run", tmp_path)
    assert [(r, m["answer"]) for r, m in records.select("row", "mcqa").rows()] == [(0, 2), (3, 1), (4, 3)]
    assert quarantine.select("row", "reason").rows() == [
        (1, "non_integer_answer"), (2, "non_integer_answer"), (5, "answer_out_of_range"),
        (6, "unknown_answer"), (7, "non_integer_answer")]


def test_a_numeric_parquet_question_is_not_text(tmp_path):
    pq.write_table(pa.table({"question": pa.array([1, 2], pa.int64()), "answer": ["a", "b"]}),
                   tmp_path / "i.parquet")
    _, records, quarantine = ingest_into(entry({"path": "i.parquet"}), tmp_path / "run", tmp_path)
    assert records.is_empty()
    assert counts(quarantine) == {"wrong_type:question": 2}


def test_an_empty_input_file_is_warned_about_in_ingest(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/empty.jsonl").write_text("")
    write_yaml(tmp_path / "cat/sources/empty.yaml", """
        name: empty
        version: 1
        license: MIT
        domain: general
        task: qa
        location: {path: empty.jsonl}
        mapping: {kind: chat, question: question, answer: answer}
    """)
    recipe = write_yaml(tmp_path / "r.yaml", "name: r\nversion: '1'\nsources: [empty]\n")
    out = CliRunner().invoke(main, ["ingest", str(recipe), "--catalog", str(tmp_path / "cat"),
                                    "--data-root", str(tmp_path / "data"), "--runs", str(tmp_path / "runs")])
    assert out.exit_code == 0
    assert f"warning: source empty: no rows: {tmp_path / 'data/empty.jsonl'} is empty" in out.output


def test_image_quarantine_details_are_deterministic(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_bytes(b"not an image at all")
    (tmp_path / "cut.png").write_bytes(_png()[:30])
    rows = [{"image": name, "q": "What?", "a": "That."} for name in ("zero.png", "text.png", "cut.png")]
    (tmp_path / "v.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = {"kind": "image_text", "image": "image", "question": "q", "answer": "a"}
    details = []
    for run in ("a", "b"):
        _, _, quarantine = ingest_into(entry({"path": "v.jsonl"}, mapping), tmp_path / run, tmp_path)
        details.append(quarantine.select("row", "reason", "detail").rows())
    assert details[0] == details[1]
    assert details[0][:2] == [(0, "unreadable_image", "zero.png: empty (0 bytes)"),
                              (1, "unreadable_image", "text.png: not an image (no known image format)")]
    assert not any("0x" in d for _, _, d in details[0])


def test_a_copied_source_folder_keeps_its_file_hashes(catalog, data_root, tmp_path):
    """The content hash is cached in the source folder's state: a resume re-reads no file
    whose identity (size, mtime, ctime, inode) is unchanged."""
    source = catalog.source("dolly")
    ingest_into(source, tmp_path / "run", data_root)
    state = json.loads((tmp_path / "run/ingest/dolly/_state.json").read_text())
    (path, info), = state["files"].items()
    assert path.endswith("dolly_151.jsonl") and len(info["sha256"]) == 64
    assert state["batch_rows"] == 20_000
    shutil.rmtree(tmp_path / "run")


def test_a_value_that_breaks_the_mapping_query_quarantines_only_its_row():
    """The last line of defence: a DuckDB error on one value maps the batch again in halves."""
    from curate.ingest.mapping import _query
    from curate.records import id_connection

    raw = pa.table({"x": ["1", "2", "oops", "4", "5"], "__row": pa.array(range(5), pa.int64())})
    con = id_connection()
    con.register("raw", raw)
    mapped = _query(con, raw, 'SELECT r."__row" AS row, NULL::VARCHAR AS __reason, '
                              'CAST(r.x AS INTEGER) AS v FROM raw r')
    rows = sorted(mapped.select(["row", "__reason", "v"]).to_pylist(), key=lambda r: r["row"])
    assert [(r["row"], r["__reason"], r["v"]) for r in rows] == [
        (0, None, 1), (1, None, 2), (2, "unmappable", None), (3, None, 4), (4, None, 5)]
    detail = mapped.filter(pc.equal(mapped.column("row"), 2)).column("__detail")[0].as_py()
    assert "oops" in detail and "\n" not in detail
