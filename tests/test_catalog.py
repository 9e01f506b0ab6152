from __future__ import annotations

import pytest
from conftest import write_yaml

from curate.catalog import Catalog, Recipe, Source, resolve_data_root
from curate.config import load_model
from curate.errors import ConfigError

GOOD = """
name: mini
version: 1
license: MIT
domain: medical
task: qa
location: {path: medical/medquad/medquad_sample_1500.jsonl}
mapping: {kind: chat, question: question, answer: answer}
"""


def test_shipped_catalogs_cover_every_shared_dataset(catalog):
    folders = {"medquad", "self_instruct", "dolly", "advbench", "harmbench", "xstest", "vqa_rad"}
    assert folders <= set(catalog.sources)
    assert {"pubmedqa", "mmlu_medical", "medmcqa"} <= set(catalog.benchmarks)
    hub = [s for s in catalog.sources.values() if s.location.hf is not None]
    assert len(hub) >= 5
    for source in hub:  # pinned: a full commit sha, never a branch
        assert len(source.location.hf.revision) == 40, source.name


def test_a_good_entry_loads(tmp_path):
    source = load_model(Source, write_yaml(tmp_path / "mini.yaml", GOOD))
    assert source.version == "1" and source.origin == "real"
    assert source.location.file_format == "jsonl"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("license: MIT", "licence: MIT"), r"unknown key `licence`; did you mean `license`\?"),
        (("question: question,", "questoin: question,"),
         r"unknown key `mapping.chat.questoin`; did you mean `question`\?"),
        (("{path: medical", "{paht: medical"), r"unknown key `location.paht`; did you mean `path`\?"),
    ],
)
def test_unknown_keys_name_file_key_and_the_closest_valid_key(tmp_path, change, message):
    path = write_yaml(tmp_path / "bad.yaml", GOOD.replace(*change))
    with pytest.raises(ConfigError, match=message) as info:
        load_model(Source, path)
    assert str(path) in str(info.value)


def test_missing_and_conflicting_fields_are_explained(tmp_path):
    path = write_yaml(tmp_path / "bad.yaml", GOOD.replace("license: MIT\n", ""))
    with pytest.raises(ConfigError, match="`license` is required"):
        load_model(Source, path)
    path = write_yaml(tmp_path / "bad2.yaml", GOOD.replace(
        "{kind: chat, question: question, answer: answer}",
        "{kind: mcqa, question: q, options: [a, b], answer: x}"))
    with pytest.raises(ConfigError, match="give `answer` and `answer_format` together"):
        load_model(Source, path)


def test_a_key_given_twice_is_an_error(tmp_path):
    path = write_yaml(tmp_path / "twice.yaml", GOOD + "license: MIT\n")
    with pytest.raises(ConfigError, match="key `license` appears twice"):
        load_model(Source, path)


def test_user_catalogs_add_entries_and_clash_loudly(tmp_path):
    write_yaml(tmp_path / "mine/sources/mini.yaml", GOOD)
    catalog = Catalog.load([tmp_path / "mine"])
    assert catalog.source("mini").name == "mini"
    write_yaml(tmp_path / "clash/sources/medquad.yaml", GOOD.replace("name: mini", "name: medquad"))
    with pytest.raises(ConfigError, match="source `medquad` is already defined in"):
        Catalog.load([tmp_path / "clash"])


def test_recipe_names_must_resolve_with_a_suggestion(tmp_path, catalog):
    path = write_yaml(tmp_path / "mix.yaml", "name: m\nversion: 1\nsources: [medqad]\n")
    with pytest.raises(ConfigError, match=r"mix.yaml: unknown source `medqad`.*did you mean `medquad`"):
        catalog.recipe(path)
    assert isinstance(catalog.recipe("demo"), Recipe)


def test_data_root_override_order(monkeypatch, tmp_path):
    monkeypatch.setenv("CURATE_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_root() == tmp_path / "env"
    monkeypatch.delenv("CURATE_DATA_ROOT")
    assert resolve_data_root().parts[-2:] == ("shared", "data")
