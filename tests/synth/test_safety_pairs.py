"""Safety preference pairs on the real AdvBench and HarmBench prompts, with deterministic
TEST DOUBLES for the target model, the reference model and the judge (tests/safety_doubles.py)."""

from __future__ import annotations

import json
from collections import Counter

import polars as pl
import pytest
import yaml
from click.testing import CliRunner
from safety_doubles import DoubleServer, SafetyDouble, reference_reply, target_reply

from curate.cli import main
from curate.config import validate_model
from curate.errors import ConfigError
from curate.synth.safety_pairs import SafetyPairsConfig, _Candidate, _check_disjoint, build_pairs

OFFLINE = {"target": {"backend": "offline"}, "reference": {"backend": "offline"},
           "judge": {"generator": {"backend": "offline"}}}


def pairs_config(**fields) -> SafetyPairsConfig:
    return validate_model(SafetyPairsConfig, {**OFFLINE, **fields}, where="test")


def build(config, out, catalog, data_root, **kw):
    return build_pairs(config, out, catalog=catalog, data_root=data_root, target=SafetyDouble("target"),
                       reference=SafetyDouble("reference"), judge_backend=SafetyDouble("guard"), **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory, catalog, data_root):
    out = tmp_path_factory.mktemp("pairs")
    return build(pairs_config(), out, catalog, data_root)


def test_pairs_from_every_real_prompt_with_disjoint_held_out_topics_and_styles(built):
    stats = built.stats
    assert stats["prompts"]["read"] == 920  # 520 AdvBench + 400 HarmBench
    train, test = stats["splits"]["train"], stats["splits"]["test"]
    assert not set(train["topics"]) & set(test["topics"])
    assert not set(train["styles"]) & set(test["styles"])
    assert set(test["topics"]) == set(stats["held_out"]["topics"])
    # 24 attack styles, 20% held out: 5 for the test split; 19 topics, 20%: 4 held out
    assert len(test["styles"]) == 5 and len(train["styles"]) == 19 and len(test["topics"]) == 4
    frames = {s: pl.read_parquet(getattr(built, s)) for s in ("train", "test")}
    for split, frame in frames.items():
        assert set(frame["split"]) == {split}
        assert set(frame["topic"]) <= set(stats["splits"][split]["topics"])
        assert set(frame["style"]) <= set(stats["splits"][split]["styles"])
    assert not set(frames["train"]["topic"]) & set(frames["test"]["topic"])
    assert not set(frames["train"]["style"]) & set(frames["test"]["style"])
    assert {"advbench", "harmbench"} <= set(frames["train"]["source"]) | set(frames["test"]["source"])


def test_kept_pairs_are_reference_safe_and_target_unsafe_counted_by_reason(built):
    candidates = pl.read_parquet(built.candidates)
    assert candidates.height == 920 - built.stats["prompts"]["near_duplicates_removed"]  # one style each
    expected = Counter()
    for row in candidates.iter_rows(named=True):
        # what the doubles answer and judge, recomputed by hand from their rules
        target_unsafe = target_reply(row["prompt"]).startswith("Sure, here is")
        reference_unsafe = reference_reply(row["prompt"]).startswith("Sure, here is")
        reason = "reference_unsafe" if reference_unsafe else ("target_safe" if not target_unsafe else "kept")
        expected[(row["split"], reason)] += 1
        assert (row["reason"] or "kept") == reason
    for split in ("train", "test"):
        reasons = built.stats["splits"][split]["reasons"]
        assert reasons == {r: n for (s, r), n in expected.items() if s == split}
        assert built.stats["splits"][split]["pairs"] == reasons["kept"]
    pairs = pl.read_parquet(built.train)
    assert pairs.height == built.stats["splits"]["train"]["pairs"] > 300
    assert all(r.startswith("Sure, here is") for r in pairs["rejected"])
    assert all(c.startswith("I'm sorry") for c in pairs["chosen"])
    assert set(pairs["rejected_categories"]) == {"S2"}
    assert sum(built.stats["pairs_by_topic"]["train"].values()) == pairs.height
    assert sum(built.stats["pairs_by_style"]["train"].values()) == pairs.height
    assert built.stats["pairs_by_style"]["train"] == dict(sorted(Counter(pairs["style"]).items()))
    assert built.stats["offline_or_test_double"] == ["target", "reference", "judge"]


def test_near_duplicate_prompts_removed_with_minhash(built):
    removed = built.stats["prompts"]["removed"]
    assert built.stats["prompts"]["near_duplicates_removed"] == len(removed) == 27
    # HarmBench rows 78 and 79 restate row 80; AdvBench rows 7 and 236 restate row 36
    assert {k.split(":")[1]: v.split(":")[1] for k, v in removed.items()
            if k.startswith(("harmbench:00007", "advbench:000007", "advbench:000236"))} == {
        "000078": "000080", "000079": "000080", "000007": "000036", "000236": "000036"}
    candidates = pl.read_parquet(built.candidates)
    assert not candidates.filter(pl.col("source") == "harmbench")["source_row"].is_in([78, 79]).any()


def test_same_seed_gives_byte_identical_pairs(tmp_path, catalog, data_root):
    config = pairs_config(max_per_source=60, styles_per_prompt=2)
    one = build(config, tmp_path / "a", catalog, data_root)
    two = build(config, tmp_path / "b", catalog, data_root)
    assert one.train.read_bytes() == two.train.read_bytes()
    assert one.test.read_bytes() == two.test.read_bytes()
    other = build(pairs_config(max_per_source=60, styles_per_prompt=2, seed=1), tmp_path / "c",
                  catalog, data_root)
    assert other.stats["held_out"] != one.stats["held_out"]
    assert pl.read_parquet(one.candidates).height == 2 * one.stats["prompts"]["kept"]


def test_explicit_held_out_topics_and_styles(tmp_path, catalog, data_root):
    config = pairs_config(max_per_source=80, test_topics=["cybercrime_intrusion"],
                          test_styles=["base64", "rot13"])
    result = build(config, tmp_path, catalog, data_root)
    test = result.stats["splits"]["test"]
    assert test["topics"] == ["cybercrime_intrusion"] and test["styles"] == ["base64", "rot13"]
    frame = pl.read_parquet(result.candidates)
    assert set(frame.filter(pl.col("split") == "test")["style"]) <= {"base64", "rot13"}
    assert set(frame.filter(pl.col("topic") == "cybercrime_intrusion")["split"]) == {"test"}


def test_bad_held_out_choices_are_errors(tmp_path, catalog, data_root):
    with pytest.raises(ConfigError, match=r"held-out topics \['cooking'\] do not occur"):
        build(pairs_config(max_per_source=30, test_topics=["cooking"]), tmp_path, catalog, data_root)
    with pytest.raises(ConfigError, match=r"`test_styles` \['poem'\] are not in `styles`"):
        pairs_config(styles=["base64", "rot13"], test_styles=["poem"])
    with pytest.raises(ConfigError, match=r"unknown attack styles \['base65'\]"):
        pairs_config(styles=["base65", "rot13"])


def test_shared_topic_between_splits_is_refused():
    from curate.synth.attacks import AdversarialPrompt

    prompt = AdversarialPrompt("advbench", 0, "x", "text", "drugs", "keywords", {})
    with pytest.raises(ConfigError, match=r"share topics \['drugs'\]"):
        _check_disjoint([_Candidate(prompt, "train", "poem", "a", 0),
                         _Candidate(prompt, "test", "rot13", "b", 0)])


def test_unparsed_judge_output_is_counted_never_a_pair(tmp_path, catalog, data_root):
    class Garbling(SafetyDouble):
        def generate(self, requests, **kw):
            done = super().generate(requests, **kw)
            return [type(c)(texts=("not a verdict",), prompt_tokens=0, completion_tokens=3)
                    if i % 4 == 0 else c for i, c in enumerate(done)]

    result = build_pairs(pairs_config(max_per_source=40), tmp_path, catalog=catalog, data_root=data_root,
                         target=SafetyDouble("target"), reference=SafetyDouble("reference"),
                         judge_backend=Garbling("guard"))
    unparsed = result.stats["judge"]["verdicts"]["unparsed"]
    frame = pl.read_parquet(result.candidates)
    assert unparsed > 0 and frame.filter(pl.col("reason") == "judge_unparsed").height > 0
    unparsed_kept = pl.col("reason").is_null() & ((pl.col("target_verdict") == "unparsed")
                                                  | (pl.col("reference_verdict") == "unparsed"))
    assert frame.filter(unparsed_kept).height == 0


def test_build_mix_mixes_the_pairs_as_a_preference_source(built, tmp_path):
    from curate.read.releases import load_release

    entry = yaml.safe_load((built.catalog / "sources/safety_pairs.yaml").read_text())
    assert entry["mapping"]["kind"] == "preference" and "offline_backend" in entry["tags"]
    recipe = tmp_path / "safety-dpo.yaml"
    recipe.write_text(yaml.safe_dump({"name": "safety-dpo", "version": "0.1.0", "seed": 0,
                                      "sources": ["safety_pairs"],
                                      "mix": {"targets": {"synthetic": 1.0}, "unit": "rows"}}))
    result = CliRunner().invoke(main, ["build-mix", str(recipe), "--catalog", str(built.catalog),
                                       "--runs", str(tmp_path / "runs"), "--releases", str(tmp_path / "rel")])
    assert result.exit_code == 0, result.output
    release = load_release(tmp_path / "rel/safety-dpo/0.1.0")
    pairs = pl.read_parquet(built.train)
    preference = release["preference"]
    assert preference.num_rows == pairs.height
    assert set(preference.column_names) >= {"prompt", "chosen", "rejected"}
    row = preference[0]
    assert row["chosen"][0]["role"] == "assistant" and row["chosen"][0]["content"] in set(pairs["chosen"])
    assert {r["prompt"][0]["content"] for r in preference} == set(pairs["prompt"])


def test_cli_safety_pairs_through_openai_backends(tmp_path):
    server = DoubleServer()
    try:
        config = tmp_path / "pairs.yaml"
        config.write_text(yaml.safe_dump({
            "target": server.backend("target"), "reference": server.backend("reference"),
            "judge": {"generator": server.backend("guard"), "categories": ["S1", "S2", "S10"]},
            "sources": ["advbench"]}))
        result = CliRunner().invoke(main, ["safety", "pairs", "--config", str(config), "--out",
                                           str(tmp_path / "out"), "--max-per-source", "40", "--seed", "3",
                                           "--test-topic", "cybercrime_intrusion"])
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "out/stats.json").read_text())
    assert stats["config"]["seed"] == 3 and stats["config"]["max_per_source"] == 40
    assert stats["held_out"]["topics"] == ["cybercrime_intrusion"]
    assert stats["judge"]["categories"] == ["S1", "S2", "S10"]
    assert stats["backends"]["target"] == {"backend": "openai", "model": "target-double", "revision": None}
    assert "train:" in result.output and "--catalog" in result.output
    judged = [b for b in server.bodies if b["model"] == "guard-double"]
    assert len(judged) == 2 * (stats["splits"]["train"]["candidates"] + stats["splits"]["test"]["candidates"])
    assert judged[0]["messages"][0]["content"].startswith("Task: Check if there is unsafe content in 'Agent'")


def test_cli_config_error_names_the_key(tmp_path):
    config = tmp_path / "pairs.yaml"
    config.write_text(yaml.safe_dump({**OFFLINE, "styels": ["base64"]}))
    result = CliRunner().invoke(main, ["safety", "pairs", "--config", str(config),
                                       "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown key `styels`; did you mean `styles`?" in result.output


def test_max_pairs_keeps_a_stratified_seeded_sample_not_the_first_pairs(built, tmp_path, catalog, data_root):
    """Issue 27, item 8: `max_pairs` used to keep the first N kept pairs (the sources' first
    rows); it now shares the budget evenly among the topics (a topic with fewer pairs gives
    all it has), and each topic's share evenly among its styles."""
    from curate.synth.safety_pairs import stratified

    everything = pl.read_parquet(built.train)
    topics = Counter(everything["topic"])
    limited = build(pairs_config(max_pairs=60), tmp_path, catalog, data_root)
    pairs = pl.read_parquet(limited.train)
    assert pairs.height == 60
    assert limited.stats["splits"]["train"]["reasons"]["over_max_pairs"] == everything.height - 60
    taken = Counter(pairs["topic"])
    quota = max(taken.values())
    assert set(taken) == set(topics)  # every topic is there
    assert all(taken[t] in (min(n, quota), min(n, quota - 1)) for t, n in topics.items())
    for topic in taken:  # within a topic, its styles as evenly
        styles = Counter(pairs.filter(pl.col("topic") == topic)["style"])
        assert max(styles.values()) - min(styles.values()) <= 1
    assert pairs["prompt_id"].to_list() != everything["prompt_id"].head(60).to_list()
    assert build(pairs_config(max_pairs=60), tmp_path / "again", catalog, data_root).train.read_bytes() == \
        limited.train.read_bytes()
    keys = [("a", "x")] * 10 + [("a", "y")] * 1 + [("b", "x")] * 2 + [("c", "y")] * 5
    picked = Counter(keys[i] for i in stratified(keys, 9, seed=0))
    # 9 over topics a, b, c: b gives its 2, a and c share 7 (4 and 3, or 3 and 4); a's share
    # over its styles x and y: y gives its 1
    assert picked[("b", "x")] == 2 and picked[("a", "y")] == 1
    assert sorted([picked[("a", "x")] + 1, picked[("c", "y")]]) == [3, 4]
    assert stratified(keys, 9, seed=0) == stratified(keys, 9, seed=0)
    assert stratified(keys, 100, seed=0) == list(range(len(keys)))


def test_judge_categories_follow_the_domain_medical_leaves_out_specialized_advice(tmp_path):
    """Issue 27, item 8: the judge's categories come from the taxonomy's table per domain
    (the shipped `medical` leaves out S6); they used to be all 14 unless listed."""
    general = validate_model(SafetyPairsConfig, OFFLINE, where="test").judge
    medical = pairs_config(judge={"generator": {"backend": "offline"}, "domain": "medical"}).judge
    assert general.domain == "general" and "S6" in general.categories and len(general.categories) == 14
    assert medical.categories == [c for c in general.categories if c != "S6"]
    listed = pairs_config(judge={"generator": {"backend": "offline"}, "domain": "medical",
                                 "categories": ["S6", "S1"]}).judge
    assert listed.categories == ["S1", "S6"]  # listed outright: the list wins, in code order
    with pytest.raises(ConfigError, match=r"`judge.domain`: no judge categories for domain `legal`; the "
                                          r"taxonomy `curate-safety-v1` has general, medical \(or give "
                                          r"`categories`\)"):
        pairs_config(judge={"generator": {"backend": "offline"}, "domain": "legal"})
    # a taxonomy file of the config decides both the styles and the judge's categories
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({
        "name": "mine", "topics": {"cyber": ["hack"]}, "styles": {"base64": "b", "rot13": "r", "poem": "p"},
        "judge_categories": {"legal": ["S2", "S5"]}}, sort_keys=False))
    mine = pairs_config(taxonomy=str(tmp_path / "mine.yaml"),
                        judge={"generator": {"backend": "offline"}, "domain": "legal"})
    assert mine.styles == ["base64", "rot13", "poem"] and mine.judge.categories == ["S2", "S5"]
