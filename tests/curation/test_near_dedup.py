"""Near-duplicate dedup on real MedQuAD answers with planted, measured copies."""

from __future__ import annotations

import json
import random

import polars as pl
import pytest

from curate.curation.minhash import jaccard, shingle_sets
from curate.pipeline.adhoc import run_on_file


def edit(text: str, share: float, rng: random.Random, vocabulary: list[str]) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, int(len(words) * share))):
        words[i] = rng.choice(vocabulary)
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, data_root):
    """300 real answers, then 150 edited copies of the first 150 (0.5-5% of words
    replaced: each edit breaks up to five 5-word shingles, so copies fall on both sides of
    a 0.8 Jaccard threshold)."""
    rng = random.Random(0)
    rows = [json.loads(line) for line in
            (data_root / "medical/medquad/medquad_sample_1500.jsonl").read_text().splitlines()]
    answers = [r["answer"] for r in rows if len(r["answer"].split()) >= 60][:300]
    vocabulary = " ".join(answers).split()
    copies = [edit(a, rng.uniform(0.005, 0.05), rng, vocabulary) for a in answers[:150]]
    texts = answers + copies
    path = tmp_path_factory.mktemp("near") / "answers.jsonl"
    path.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": "Explain."},
                                 {"role": "assistant", "content": t}]}) + "\n" for t in texts))
    sets = shingle_sets(["Explain.\n" + t for t in texts], 5)
    truth = {i: jaccard(sets[i], sets[300 + i]) for i in range(150)}
    return path, truth


def test_planted_copies_are_found_and_verified(planted, tmp_path):
    path, truth = planted
    result = run_on_file(path, tmp_path / "out.parquet", {"near_dedup": {}})
    out = pl.read_parquet(result.out).sort("row")
    cluster = out.get_column("near_dup_cluster").to_list()
    ids = out.get_column("id").to_list()
    similar = [i for i, j in truth.items() if j >= 0.8]
    assert 40 <= len(similar) <= 110  # the planting gives both sides of the threshold
    found = [i for i in similar if cluster[i] is not None and cluster[i] == cluster[300 + i]]
    assert len(found) / len(similar) >= 0.98
    for i, j in truth.items():  # verified pairs only: nothing below the threshold is merged
        if j < 0.8 and cluster[i] is not None and cluster[i] == cluster[300 + i]:
            pytest.fail(f"pair {i} merged at true Jaccard {j:.2f}")
    dropped = out.filter(~pl.col("keep"))
    assert dropped.height == result.reasons["near_duplicate_of"]
    assert all(r == "near_duplicate_of" and ref == c
               for r, ref, c in dropped.select("reason", "reason_ref", "near_dup_cluster").iter_rows())
    # The representative is the longest member of its cluster.
    lengths = dict(zip(ids, [len(t) for t in path.read_text().splitlines()]))
    for rep, members in out.filter(pl.col("near_dup_cluster").is_not_null()).group_by("near_dup_cluster"):
        assert lengths[rep[0]] == max(lengths[m] for m in members.get_column("id"))


def test_dedup_removes_the_planted_copies_first_and_nothing_on_a_second_pass(planted, tmp_path):
    path, truth = planted
    first = run_on_file(path, tmp_path / "a.parquet", {"near_dedup": {}})
    decisions = pl.read_parquet(first.out).sort("row")
    keep = decisions.get_column("keep").to_list()
    similar = [i for i, j in truth.items() if j >= 0.85]  # well above the threshold: all must go
    assert len(similar) >= 20
    # one side of every such planted pair is removed on the first pass ...
    assert [i for i in similar if keep[i] == keep[300 + i]] == []
    assert first.reasons["near_duplicate_of"] == keep.count(False) >= len(similar)
    kept_rows = {i for i, k in enumerate(keep) if k}
    lines = path.read_text().splitlines(keepends=True)
    again = tmp_path / "kept.jsonl"
    again.write_text("".join(line for i, line in enumerate(lines) if i in kept_rows))
    second = run_on_file(again, tmp_path / "b.parquet", {"near_dedup": {}})
    assert second.rows == len(kept_rows) == 450 - keep.count(False)
    assert second.kept == second.rows and "near_duplicate_of" not in second.reasons
