"""Write ``medquad_contaminated_demo.jsonl``: a small DEMO source showing decontamination.

120 real MedQuAD pairs (from ``../shared/data/medical/medquad/medquad_answered.jsonl``,
outside the 1,500-pair demo sample, answers cut to their first 60 words) with 6 real
benchmark items planted (2 each of PubMedQA, MMLU-medical and MedMCQA, from
``../shared/data/benchmarks``) in the forms of ``benchmarks/decontam.py``: a copied
question with its options, a question without options with its label, a question
quoted inside an answer. 6 of 126 rows is 4.8%, above the 0.5% rule, so the demo
rejects the source. Licences: MedQuAD CC BY 4.0; PubMedQA, MMLU, MedMCQA MIT.

    .venv/bin/python catalogs/data/make_demo_contaminated.py
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))

import decontam as plantings  # noqa: E402  (benchmarks/decontam.py)
import polars as pl  # noqa: E402

from curate.curation.config import DecontamConfig  # noqa: E402
from curate.curation.decontam import BenchmarkIndex, load_items  # noqa: E402
from curate.engine.stage import StageContext  # noqa: E402

PLANTS = {"pubmedqa": ("no_options", "in_answer"), "mmlu_medical": ("verbatim", "in_answer"),
          "medmcqa": ("template", "no_options")}


def main() -> None:
    """Write the demo file beside this script."""
    rng = random.Random(0)
    hosts = plantings.hosts(400)[151:]  # MedQuAD only (the first 151 are Dolly)
    rows = [{"question": q, "answer": " ".join(a.split()[:60])} for q, a in hosts[:120]]
    with tempfile.TemporaryDirectory() as tmp:
        files = plantings.ingest_benchmarks(Path(tmp))
        index = BenchmarkIndex(load_items(StageContext(benchmarks=files), list(plantings.BENCHMARKS)),
                               DecontamConfig())
        items = plantings.sample_items(index, 2, seed=7)
    vocab = " ".join(r["answer"] for r in rows).split()
    for k, item in enumerate(items.iter_rows(named=True)):
        form = PLANTS[item["benchmark"]][k % 2]
        entry = {"question": item["question"], "options": item["options"].split("\n"),
                 "answer_text": item["answer"]}
        turns = plantings.plant(entry, form, (rows[k]["question"], rows[k]["answer"]), rng, vocab)
        rows.insert(10 + 20 * k, {"question": turns[0]["content"], "answer": turns[1]["content"],
                                  "planted": f"{item['item']} ({form})"})
    out = HERE / "medquad_contaminated_demo.jsonl"
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"{out}: {len(rows)} rows, {pl.DataFrame(rows)['planted'].drop_nulls().to_list()}")


if __name__ == "__main__":
    main()
