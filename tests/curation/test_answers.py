"""The answer checks on the real VQA-RAD, clean and with corruptions made here."""

from __future__ import annotations

import polars as pl
import pytest
from conftest import ingest_into

from curate.curation.answers import AnswerCheck, answer_form, question_form, wrong_type
from curate.engine.stage import StageContext
from curate.records import with_ids

pytestmark = pytest.mark.slow  # ingests VQA-RAD and loads a model: ~10 s

# VQA-RAD rows whose own answer has the wrong form (its templated "What is/are ...?"
# questions answered yes/no, and two yes/no questions answered with a place or a tissue).
NATURAL_WRONG_TYPE = {
    ("How wide is/are the cardiac shadow? -open", "No"),
    ("What is/are the hypodense mass near/in the liver?", "Yes"),
    ("What is/are the free air near/in the thorax?", "No"),
    ("Is there an acute bleed present?", "Necrotic tissue"),
    ("What is/are the EKG leads near/in the lungs?", "Yes"),
    ("What do the two small hyperintensities indicate?", "Yes"),
    ("Is the spleen present?", "On the patient's left"),
}


@pytest.fixture(scope="module")
def vqa_rad(catalog, data_root, tmp_path_factory) -> pl.DataFrame:
    _, records, quarantine = ingest_into(catalog.source("vqa_rad"), tmp_path_factory.mktemp("run"), data_root)
    assert records.height == 3515 and quarantine.height == 0
    return records.sort("row")


def _qa(records: pl.DataFrame) -> pl.DataFrame:
    return records.select("row", "id", q=pl.col("messages").list.first().struct.field("content"),
                          a=pl.col("messages").list.last().struct.field("content"),
                          meta=pl.col("meta"))


def _with_answers(records: pl.DataFrame, answers: dict[int, str]) -> pl.DataFrame:
    """``records`` with the answers of some rows replaced (ids recomputed)."""
    rows = pl.DataFrame({"row": list(answers), "_new": list(answers.values())},
                        schema={"row": pl.Int64, "_new": pl.String})
    changed = records.join(rows, on="row", how="left").with_columns(
        messages=pl.when(pl.col("_new").is_not_null()).then(pl.concat_list(
            pl.col("messages").list.first(),
            pl.struct(role=pl.lit("assistant"), content=pl.col("_new")))).otherwise("messages"),
    ).drop("_new")
    return pl.from_arrow(with_ids(changed.to_arrow()))


def _run(records: pl.DataFrame) -> pl.DataFrame:
    stage = AnswerCheck()
    return stage.decide(stage.score(records.lazy(), StageContext())).sort("row")


@pytest.fixture(scope="module")
def clean(vqa_rad) -> pl.DataFrame:
    return _run(vqa_rad)


def test_clean_vqa_rad_flags_only_its_own_wrong_type_answers(vqa_rad, clean):
    flagged = clean.filter(~pl.col("keep")).join(_qa(vqa_rad), on="row")
    assert set(flagged.get_column("reason")) == {"answer_wrong_type"}
    assert {(q, a) for q, a in flagged.select("q", "a").iter_rows()} == NATURAL_WRONG_TYPE
    assert flagged.height == 8  # "What is/are the free air near/in the thorax?" twice


def test_closed_answers_are_never_flagged_for_repetition(vqa_rad, clean):
    answers = _qa(vqa_rad).join(clean, on="row")
    yes_no = answers.filter(pl.col("a").str.to_lowercase().is_in(["yes", "no"]))
    assert yes_no.height == 1964
    assert yes_no.filter(pl.col("reason") == "pasted_answer").height == 0
    short = answers.filter(pl.col("a").str.to_lowercase().is_in(["right", "left", "axial", "one"]))
    assert short.height > 100 and short.get_column("keep").all()


def test_each_corruption_kind_is_caught_by_exact_ids(vqa_rad):
    qa = _qa(vqa_rad)
    image = vqa_rad.select("row", img=pl.col("images").list.first().struct.field("path"))
    info = qa.join(image, on="row").with_columns(
        kind=pl.col("meta").str.json_path_match("$.answer_type").str.strip_chars())
    # a long answer pasted onto five rows over five different images
    pasted_rows = info.unique("img", keep="first").sort("row").get_column("row").to_list()[10:15]
    paste = "small bowel obstruction with air fluid levels in dilated loops"
    # a yes/no question answered with a plane, and open questions answered yes
    polar = info.filter((pl.col("kind") == "CLOSED") & (pl.col("a") == "Yes")
                        & pl.col("q").str.starts_with("Is ")).get_column("row")[0]
    opened = info.filter((pl.col("kind") == "OPEN") & pl.col("q").str.starts_with("Which")
                         ).get_column("row")[:2].to_list()
    # an answer copied from another sample (on another image) whose image holds it 4 times
    source = info.filter(pl.col("a") == "ring enhancing lesion in the left occipital lobe")
    source_img = source.get_column("img")[0]
    target = info.filter((pl.col("img") != source_img) & (pl.col("kind") == "OPEN")
                         & pl.col("q").str.starts_with("Where")).get_column("row")[0]
    # an unrelated long answer
    unrelated = info.filter(pl.col("q") == "What organ system is pictured?").get_column("row")[0]
    answers = {**dict.fromkeys(pasted_rows, paste), polar: "Axial",
               **dict.fromkeys(opened, "yes"),
               target: "Ring enhancing lesion in the left occipital lobe",
               unrelated: "the stock market closed higher on tuesday after strong bank earnings"}
    corrupted = _with_answers(vqa_rad, answers)
    decided = _run(corrupted)
    reasons = {row: reason for row, reason in decided.filter(~pl.col("keep"))
               .select("row", "reason").iter_rows()}
    natural = {row for row, q, a in qa.select("row", "q", "a").iter_rows() if (q, a) in NATURAL_WRONG_TYPE}
    corrupt = {row: r for row, r in reasons.items() if row not in natural}
    owner = decided.filter(pl.col("row") == source.get_column("row")[0]).get_column("id")[0]
    assert corrupt == {
        **dict.fromkeys(pasted_rows, "pasted_answer"),
        polar: "answer_wrong_type",
        **dict.fromkeys(opened, "answer_wrong_type"),
        target: f"pasted_answer:{owner}",
        unrelated: "answer_unrelated",
    }
    assert decided.filter(pl.col("row").is_in(source.get_column("row").to_list())).get_column("keep").all()


@pytest.mark.parametrize(("question", "form"), [
    ("Is this a CT or an MRI?", "choice"), ("Is there a pneumothorax?", "polar"),
    ("Which lobe is the mass in?", "open"), ("In what plane is this image?", "open"),
    ("Describe the lesion.", "open"), ("Any evidence of fracture?", "polar"),
    ("Location of the mass?", "other"), ("Can you name the organ shown?", "open"),
])
def test_question_forms(question, form):
    assert question_form(question) == form


def test_answer_forms_and_choices():
    assert [answer_form(a) for a in ("Yes", "no.", "Maybe", "Left kidney")] == [
        "yes_no", "yes_no", "hedge", "term"]
    assert not wrong_type("Is this a CT or an MRI?", "MRI")
    assert not wrong_type("Would you suspect abcess or cancer?", "Abscess")  # a typo matches
    assert not wrong_type("Are there multiple or just 1 focus?", "one")
    assert wrong_type("Is this a CT or an MRI?", "Coronal")
    assert not wrong_type("Is the trachea midline?", "Midline")  # the question's own word
    assert not wrong_type("Location of the mass?", "yes")  # undetermined form: never judged
