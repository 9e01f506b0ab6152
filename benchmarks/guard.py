"""The retrieval guard's similarity threshold, measured: planted copies of real benchmark items
against honest neighbours.

Test items: the first ``--items`` MedMCQA dev questions (/work/shared/data) with at least six
words. Each is planted into an example index in four forms:

- ``verbatim``: the item as it is;
- ``shuffled``: its options shuffled and relettered (the question unchanged);
- ``paraphrased``: reworded by rules (a fixed table of synonyms and rephrasings, e.g.
  "Which of the following" -> "Which one of these", "commonly" -> "frequently", and the
  clause after the first comma moved to the front): light paraphrase, no model;
- ``fifth_word``: the paraphrase with every fifth word replaced by a word drawn (seeded) from
  the other questions' vocabulary.

Honest neighbours: the questions of *other* benchmarks (MMLU medical test, MMLU-Pro health,
PubMedQA PQA-L, the MedQuAD 1,500 sample) and the rest of MedMCQA dev (other items of the same
exam; exact repeats of a test question left out), all embedded with MiniLM as an index embeds.

Printed: per form, the cosine of the planted copy to its test question (min, 5th percentile,
median); the best honest cosine per test question (max, 99th and 95th percentile); per
threshold, the share of copies of each form at or above it and the share of test questions
whose best honest neighbour is at or above it (what the guard would drop at retrieval) and of
honest records excluded from the index. Then the guard itself end to end
(``curate.rag.exclusion.check_index`` with the default ``GuardConfig``) over an index of the
honest records plus every planted copy: copies excluded per form and tier, honest records
excluded, and MedPrompt's retrieval (``Index.retrieve``) for every test question: planted
copies returned (must be 0) and honest examples the query-time guard dropped.

    PYTHONPATH=. python benchmarks/guard.py [--items 150] [--honest 0]   # 0: every honest question
    PYTHONPATH=. python benchmarks/guard.py --smoke                       # 12 items, 300 honest
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from _common import add_clean, add_work, announce, finish, parse_args

FORMS = ("verbatim", "shuffled", "paraphrased", "fifth_word")
THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
REPHRASE = [
    (r"\bWhich of the following\b", "Which one of these"),
    (r"\bwhich of the following\b", "which one of these"),
    (r"\bAll of the following\b", "Each of these"), (r"\ball of the following\b", "each of these"),
    (r"\bmost commonly\b", "most frequently"), (r"\bcommonly\b", "frequently"), (r"\bcommon\b", "frequent"),
    (r"\bis seen in\b", "is observed in"), (r"\bseen\b", "observed"), (r"\bcaused by\b", "due to"),
    (r"\bpatient\b", "individual"), (r"\bpatients\b", "individuals"), (r"\btreatment\b", "therapy"),
    (r"\bdrug\b", "medication"), (r"\bdrugs\b", "medications"), (r"\bdisease\b", "disorder"),
    (r"\bused\b", "employed"), (r"\bincreased\b", "raised"), (r"\bdecreased\b", "reduced"),
    (r"\bassociated with\b", "linked to"), (r"\bcharacteristic\b", "typical"), (r"\bfeature\b", "finding"),
    (r"\bfeatures\b", "findings"), (r"\bbest\b", "most suitable"), (r"\binvestigation\b", "test"),
    (r"\bdiagnosis\b", "identification"), (r"\bshows\b", "displays"), (r"\bexcept\b", "but not"),
    (r"\bEXCEPT\b", "BUT NOT"), (r"\btrue\b", "correct"), (r"\bfalse\b", "incorrect"),
    (r"\bTrue\b", "Correct"),
    (r"\bFalse\b", "Incorrect"), (r"\bmost likely\b", "probably"), (r"\bchild\b", "kid"),
    (r"\bfound in\b", "present in"), (r"\bpresents with\b", "comes in with"), (r"\bsyndrome\b", "condition"),
]


def paraphrase(text: str) -> str:
    """Rule-based light paraphrase (see the module docstring)."""
    out = text
    for pattern, replacement in REPHRASE:
        out = re.sub(pattern, replacement, out)
    head, comma, tail = out.partition(", ")
    if comma and len(tail.split()) >= 3:
        tail = tail.rstrip()
        end = tail[-1] if tail[-1] in "?.:" else ""
        out = f"{tail.rstrip('?.:')[:1].upper()}{tail.rstrip('?.:')[1:]}, {head[:1].lower()}{head[1:]}{end}"
    return out


def replace_fifth(text: str, vocabulary: list[str], rng: random.Random) -> str:
    """Every fifth word replaced by a word from ``vocabulary``."""
    words = text.split()
    return " ".join(rng.choice(vocabulary) if (i + 1) % 5 == 0 else w for i, w in enumerate(words))


def questions_of(name: str, root: Path) -> list[tuple[str, list[str]]]:
    """The questions of benchmark ``name`` with their options."""
    from curate.rag.build import read_benchmarks

    frame = read_benchmarks([name], data_root=root)[name]
    return [(m["question"], list(m["options"])) for m in frame.get_column("mcqa").to_list() if m["question"]]


def medquad(root: Path) -> list[tuple[str, list[str]]]:
    """MedQuAD's questions (open questions: no options)."""
    path = root / "medical" / "medquad" / "medquad_sample_1500.jsonl"
    lines = path.read_text("utf-8").splitlines()
    return [(json.loads(line)["question"], []) for line in lines if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=150, help="MedMCQA dev test items planted")
    parser.add_argument("--honest", type=int, default=0, help="honest questions (0: all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-similarity", type=float, default=None,
                        help="the guard's max_similarity [default: GuardConfig's]")
    parser.add_argument("--min-options-similarity", type=float, default=None,
                        help="the guard's min_options_similarity [default: GuardConfig's]")
    add_work(parser, "guard")
    add_clean(parser)
    args = parse_args(parser, {"items": 12, "honest": 300})
    announce("guard.py", 30 + (args.honest or 8500) / 25 + args.items * 4 / 25,
             f"{args.items} planted items x {len(FORMS)} forms, {args.honest or 'all'} honest questions")
    import torch

    from curate.catalog import resolve_data_root
    from curate.curation.embed import embed
    from curate.rag.build import read_benchmarks
    from curate.rag.config import DEFAULT_MAX_SIMILARITY, GuardConfig
    from curate.rag.exclusion import check_index
    from curate.rag.index import RECORD_SCHEMA, build_index

    torch.set_num_threads(2)
    root = resolve_data_root()
    rng = random.Random(args.seed)
    dev = read_benchmarks(["medmcqa"], data_root=root)["medmcqa"].sort("row")
    rows = [(row, m) for row, m in dev.select("row", "mcqa").iter_rows() if len(m["question"].split()) >= 6]
    tests = rows[:args.items]
    test_questions = {m["question"].strip().lower() for _, m in tests}
    others = {"mmlu_medical": questions_of("mmlu_medical", root), "mmlu_pro_health": questions_of(
        "mmlu_pro_health", root), "pubmedqa": questions_of("pubmedqa", root), "medquad": medquad(root),
        "medmcqa_other_items": [(m["question"], list(m["options"])) for _, m in rows[args.items:]
                                if m["question"].strip().lower() not in test_questions]}
    honest = [(name, q, o) for name, qs in others.items() for q, o in dict((q, o) for q, o in qs).items()]
    if args.honest:
        rng.shuffle(honest)
        honest = honest[:args.honest]
    vocabulary = sorted({w for _, q, _ in honest for w in q.split() if w.isalpha() and len(w) > 3})
    planted: list[tuple[str, int, str, list[str], int]] = []  # form, test row, question, options, answer
    for row, m in tests:
        options, answer = list(m["options"]), m["answer"]
        order = list(range(len(options)))
        rng.shuffle(order)
        para = paraphrase(m["question"])
        planted += [("verbatim", row, m["question"], options, answer),
                    ("shuffled", row, m["question"], [options[i] for i in order], order.index(answer)),
                    ("paraphrased", row, para, options, answer),
                    ("fifth_word", row, replace_fifth(para, vocabulary, rng), options, answer)]
    cache = args.work / "embeddings"
    print(f"{len(tests)} MedMCQA dev items planted in {len(FORMS)} forms; {len(honest):,} honest questions "
          f"({', '.join(f'{n} {sum(1 for h in honest if h[0] == n):,}' for n in others)}); "
          "MiniLM, 256 tokens",
          flush=True)
    test_vectors = embed([m["question"] for _, m in tests], "minilm", max_tokens=256, cache=cache)
    copy_vectors = embed([p[2] for p in planted], "minilm", max_tokens=256, cache=cache)
    honest_vectors = embed([q for _, q, _ in honest], "minilm", max_tokens=256, cache=cache)
    position = {row: i for i, (row, _) in enumerate(tests)}
    copy_cos = {f: np.array([float(copy_vectors[i] @ test_vectors[position[p[1]]])
                             for i, p in enumerate(planted) if p[0] == f]) for f in FORMS}
    sims = test_vectors @ honest_vectors.T
    best_honest = sims.max(axis=1)
    record_best = sims.max(axis=0)  # each honest record's closest test item
    print(f"\n{'cosine to the test question':34}{'min':>8}{'p5':>8}{'median':>8}")
    for f in FORMS:
        c = copy_cos[f]
        print(f"  planted {f:24}{c.min():>8.3f}{np.percentile(c, 5):>8.3f}{np.median(c):>8.3f}")
    print(f"  {'best honest neighbour':32}{'max':>8}{'p99':>8}{'p95':>8}")
    print(f"  {'':32}{best_honest.max():>8.3f}{np.percentile(best_honest, 99):>8.3f}"
          f"{np.percentile(best_honest, 95):>8.3f}")
    for name in others:
        mask = np.array([h[0] == name for h in honest])
        if mask.any():
            print(f"    from {name:26}{sims[:, mask].max():>8.3f}")
    print(f"\n{'threshold':>10}" + "".join(f"{f:>13}" for f in FORMS)
          + f"{'queries hit':>13}{'records hit':>13}")
    for t in THRESHOLDS:
        caught = "".join(f"{np.mean(copy_cos[f] >= t):>13.1%}" for f in FORMS)
        print(f"{t:>10.2f}{caught}{np.mean(best_honest >= t):>13.1%}{np.mean(record_best >= t):>13.2%}")
    print("(copies caught per form; queries hit: test questions whose best honest neighbour is at or above "
          "the threshold, i.e. dropped at retrieval; records hit: honest index records excluded)")
    lowest = min(float(c.min()) for c in copy_cos.values())
    print(f"lowest planted cosine {lowest:.3f}; best honest neighbour {best_honest.max():.3f}; "
          f"default max_similarity {DEFAULT_MAX_SIMILARITY}")

    # the guard itself, end to end
    records = [{"id": f"honest{i:06d}", "source": name, "question": q, "options": o,
                "answer": 0 if o else None} for i, (name, q, o) in enumerate(honest)]
    records += [{"id": f"planted_{p[0]}_{p[1]:05d}", "source": "planted", "question": p[2], "options": p[3],
                 "answer": p[4]} for p in planted]
    bench = {"medmcqa": dev.filter(pl.col("row").is_in([row for row, _ in tests]))}
    with tempfile.TemporaryDirectory(dir=args.work if args.work.exists() else None) as tmp:
        table = pa.Table.from_pylist(records, schema=RECORD_SCHEMA)
        built = build_index(table, Path(tmp) / "ix", input_name="guard benchmark", cache=cache)
        given = (("max_similarity", args.max_similarity),
                 ("min_options_similarity", args.min_options_similarity))
        chosen = {k: v for k, v in given if v is not None}
        guard = GuardConfig.model_validate(chosen)
        check = check_index(built.index, bench, guard, embedding_cache=cache)
        by_form: dict[str, dict[str, int]] = {f: {} for f in FORMS}
        honest_hit: dict[str, int] = {}
        for e in check.excluded:
            tier = e.tier if e.tier != "similarity" else f"similarity ({e.field})"
            if e.id.startswith("planted_"):
                form = e.id.split("_")[1] if not e.id.startswith("planted_fifth") else "fifth_word"
                by_form[form][tier] = by_form[form].get(tier, 0) + 1
            else:
                honest_hit[tier] = honest_hit.get(tier, 0) + 1
        print(f"\nguard (max_similarity {guard.max_similarity}, min_options_similarity "
              f"{guard.min_options_similarity}) over an index of "
              f"{len(honest):,} honest + {len(planted)} planted records:")
        for f in FORMS:
            total = sum(by_form[f].values())
            tiers = ", ".join(f"{t} {n}" for t, n in by_form[f].items())
            print(f"  {f:12} excluded {total}/{len(tests)} ({tiers})")
        print(f"  honest records excluded: {sum(honest_hit.values())} of {len(honest):,} "
              f"({', '.join(f'{t} {n}' for t, n in sorted(honest_hit.items())) or 'none'})")
        found = check.index.retrieve([m["question"] for _, m in tests], 5, cache=cache)
        leaked = sum(1 for r in found for h in r.hits if h.id.startswith("planted_"))
        dropped = sum(len(r.dropped) for r in found)
        print(f"  MedPrompt retrieval, k 5, {len(tests)} test questions: planted copies returned {leaked}; "
              f"honest examples dropped at query time {dropped}")
    finish(None, [args.work], args.clean)


if __name__ == "__main__":
    main()
