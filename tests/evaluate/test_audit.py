"""`curate audit` on the shipped benchmarks (known flaws by exact item ids) and on crafted files."""

from __future__ import annotations

import json

import pytest
from conftest import write_mcqa_benchmark

from curate.evaluate.audit import audit
from curate.evaluate.config import AuditConfig


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    names = ["medmcqa", "medmcqa_singlechoice", "mmlu_medical", "pubmedqa", "pubmedqa_test_mcq"]
    return audit(names, out=tmp_path_factory.mktemp("audit"))


@pytest.mark.slow
def test_mmlu_medical_repeats_stems_and_items(shipped):
    b = shipped.benchmarks["mmlu_medical"]
    assert b["rows"] == 1089 and b["stem_repeats"] == 79
    # "Which of the following statements is false?" with two different option sets
    assert b["notes"]["repeated_stem"] == ["mmlu_medical:147", "mmlu_medical:176", "mmlu_medical:667",
                                           "mmlu_medical:714"]
    # row 547 repeats row 329 (phosphocreatine resynthesis), stem, options and answer
    assert len(b["flaws"]["duplicate_item"]) == 78
    assert b["flaws"]["duplicate_item"][:3] == ["mmlu_medical:547", "mmlu_medical:549", "mmlu_medical:552"]
    # three stems hold their gold answer's text (row 502: "... attributed to (A) hydrogen bonding
    # between the peptide backbone atoms", and that is option A)
    assert b["flaws"]["gold_in_stem"] == ["mmlu_medical:502", "mmlu_medical:842", "mmlu_medical:867"]
    assert b["flawed"] == 81 and b["share"] == pytest.approx(81 / 1089) and b["fit"] is False


@pytest.mark.slow
def test_medmcqa_dev_repeats_questions_some_with_other_answers(shipped):
    b = shipped.benchmarks["medmcqa"]
    assert b["flaws"]["conflicting_answers"] == ["medmcqa:455", "medmcqa:2966"]
    assert b["flaws"]["duplicate_item"] == [f"medmcqa:{r}" for r in (
        1234, 1663, 1852, 1885, 2342, 2472, 2653, 3146, 3212, 3331, 3560, 4177)]
    assert b["flaws"]["truncated_option"] == ["medmcqa:3779"]  # "Remove Lymph node I-II along with"
    # row 44 offers "Not Recalled" twice, row 161 "Ventral part of 3rd pouch." twice
    assert len(b["flaws"]["duplicate_options"]) == 31
    assert b["flaws"]["duplicate_options"][:2] == ["medmcqa:44", "medmcqa:161"]
    assert b["flaws"]["gold_in_stem"][0] == "medmcqa:503"  # "... citation impact ...": B. Citation
    assert len(b["notes"]["all_none_key"]) == 60
    assert b["flawed"] == 51 and b["fit"] is True


@pytest.mark.slow
def test_items_shared_between_benchmarks_come_from_the_decontam_tiers(shipped):
    single = shipped.benchmarks["medmcqa_singlechoice"]
    assert single["shared_items"] == 2816  # the single-choice dev set is a subset of the full one
    assert single["notes"]["shared_with:medmcqa"][:2] == ["medmcqa_singlechoice:0=medmcqa:2",
                                                          "medmcqa_singlechoice:1=medmcqa:5"]
    test_mcq = shipped.benchmarks["pubmedqa_test_mcq"]
    assert test_mcq["shared_items"] == 500
    assert test_mcq["notes"]["shared_with:pubmedqa"][0] == "pubmedqa_test_mcq:0=pubmedqa:534"
    assert shipped.benchmarks["pubmedqa"]["flawed"] == 0
    written = json.loads((shipped.out / "audit.json").read_text())
    assert written["benchmarks"]["medmcqa"]["flaws"]["conflicting_answers"] == ["medmcqa:455", "medmcqa:2966"]
    report = (shipped.out / "audit.md").read_text()
    assert "| mmlu_medical | 1089 | 81 | 7.4% | **unfit** |" in report
    assert (shipped.out / "audit.png").read_bytes()[:4] == b"\x89PNG"


def test_crafted_flaws_are_found_by_row(tmp_path, data_root):
    rows = [
        {"q": "Which organ pumps blood?", "opts": ["Heart", "Liver", "Lung"], "a": "A"},
        {"q": "Which organ filters blood?", "opts": ["Kidney", "", "Lung"], "a": "A"},
        {"q": "Which bone is longest?", "opts": ["Femur", "Tibia", "Ulna"], "a": "E"},
        {"q": "Insulin is made by the", "opts": ["beta cells of the", "alpha cells", "liver"], "a": "A"},
        {"q": "which ORGAN pumps blood", "opts": ["Liver", "Heart", "Lung"], "a": "B"},
        {"q": "Which organ pumps blood?", "opts": ["Heart", "Liver", "Lung"], "a": "C"},
        {"q": "Which of these is false?", "opts": ["x is y", "y is z"], "a": "A"},
        {"q": "Which of these is false?", "opts": ["p is q", "q is r"], "a": "B"},
        {"q": "Which vessel carries blood?", "opts": ["Aorta", "aorta.", "Vein"], "a": "C"},
        {"q": "Insulin deficiency causes diabetes mellitus; what does it cause?",
         "opts": ["Diabetes mellitus", "Gout", "Anemia"], "a": "A"},
        {"q": "Which are cranial nerves?", "opts": ["Vagus", "Facial", "All of the above"], "a": "C"},
        {"q": "Which drug treats gout?", "opts": ["Allopurinol", "Insulin", "None of the above"], "a": "A"},
    ]
    catalog = write_mcqa_benchmark(tmp_path, "crafted", rows)
    result = audit(["crafted"], AuditConfig(unfit_above=0.5), catalog_dirs=[catalog],
                   data_root=data_root)
    b = result.benchmarks["crafted"]
    assert b["flaws"]["empty_option"] == ["crafted:1"]
    assert b["flaws"]["answer_not_in_options"] == ["crafted:2"]
    assert b["flaws"]["truncated_option"] == ["crafted:3"]
    # rows 0, 4, 5: one stem and option set (case, punctuation and order folded), two answers
    assert b["flaws"]["conflicting_answers"] == ["crafted:0", "crafted:4", "crafted:5"]
    assert b["notes"]["repeated_stem"] == ["crafted:6", "crafted:7"]
    assert b["flaws"]["duplicate_options"] == ["crafted:8"]  # "Aorta" and "aorta." fold to one option
    assert b["flaws"]["gold_in_stem"] == ["crafted:9"]
    # row 11 offers "none of the above", but its key is another option
    assert b["notes"]["all_none_key"] == ["crafted:10"]
    assert (b["rows"], b["flawed"], b["fit"]) == (12, 8, False)
