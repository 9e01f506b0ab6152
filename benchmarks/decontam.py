"""Decontamination on real plantings: recall per benchmark x form x tiers, false positives,
the lm-eval-style 13-gram baseline, and the embedder's backends and cache, in one run.

Real items of PubMedQA (its short question: a training row copies the question and its
label, not the abstract), MMLU-medical and MedMCQA (from ``../shared/data``) are planted
into real MedQuAD and Dolly rows in nine forms (``FORMS``). Every planted row and every
clean row (MedQuAD pairs outside the 1,500 sample, and the Dolly rows) goes through
``BenchmarkIndex.match`` with the three benchmarks indexed; a row counts as caught by a
tier set when any tier of the set fires at the stage's default thresholds.

The baseline is lm-eval's decontamination as its docs describe it (``Janitor``): the
benchmark documents' text (question and options) lower-cased, punctuation removed, split
on whitespace; a training row is contaminated when it shares any 13-gram with it.

    .venv/bin/python benchmarks/decontam.py --items 100 --clean 10000 --seed 1
    .venv/bin/python benchmarks/decontam.py --items 100 --clean 6000 --embedder --demo 1000
    .venv/bin/python benchmarks/decontam.py --smoke     # 3 items, 100 clean rows, tiers 1-3 (test suite)

``--embedder`` adds tier 4 (MiniLM) to the table; ``--demo N`` times tier 4 on N demo
records: the cache (first vs second call), and torch bfloat16 and ONNX float32 against
torch float32 (speed, per-text cosine, identical decisions).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from curate.catalog import Catalog, resolve_data_root  # noqa: E402
from curate.curation.config import DecontamConfig  # noqa: E402
from curate.curation.decontam import BenchmarkIndex, folded, load_items, turn_texts  # noqa: E402
from curate.curation.text import all_text  # noqa: E402
from curate.engine.stage import StageContext  # noqa: E402
from curate.ingest import ingest_source  # noqa: E402
from curate.store import RunStore  # noqa: E402

BENCHMARKS = ("pubmedqa", "mmlu_medical", "medmcqa")
FORMS = ("verbatim", "template", "shuffled", "edited", "no_options", "in_answer", "in_document",
         "case_punct", "multi_turn")
TIER_SETS = {"1 ngram": ("ngram",), "1-3 lexical": ("ngram", "containment", "stem"),
             "1-4 all": ("ngram", "containment", "stem", "embedding")}
"""Tier sets in the table: the stage's tiers 1-3 are lexical (the issue's "tiers 1+2"),
tier 4 the embedding (the issue's "tier 3")."""


def letters(options: list[str]) -> str:
    return "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def edit(text: str, share: float, rng: random.Random, vocab: list[str]) -> str:
    """Replace ``share`` of the words (at least one) by words of the host corpus."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, round(len(words) * share))):
        words[i] = rng.choice(vocab)
    return " ".join(words)


def case_punct(text: str, rng: random.Random) -> str:
    """Change case and punctuation: upper-case some words, strip or add punctuation."""
    out = []
    for word in text.split(" "):
        roll = rng.random()
        word = word.upper() if roll < 0.2 else word.lower() if roll < 0.5 else word
        word = word.strip(string.punctuation) if rng.random() < 0.5 else word
        out.append(word + (rng.choice([",", ";", " -"]) if rng.random() < 0.1 else ""))
    return " ".join(out)


def plant(item: dict, form: str, host: tuple[str, str], rng: random.Random,
          vocab: list[str]) -> list[dict[str, str]]:
    """One training conversation holding ``item`` (question, options, answer) in ``form``,
    built around a real ``host`` row (question, answer)."""
    question, options, gold = item["question"], item["options"], item["answer_text"]
    hq, ha = host
    if form == "verbatim":
        turns = [question + "\n" + letters(options), f"{gold}"]
    elif form == "template":
        turns = ["Answer the following multiple choice question.\nQuestion: " + question + "\nOptions: "
                 + " ".join(f"({chr(97 + i)}) {o}" for i, o in enumerate(options))
                 + "\nAnswer with the letter only.", f"The answer is {gold}."]
    elif form == "shuffled":
        shuffled = options[:]
        rng.shuffle(shuffled)
        turns = [question + "\n" + "\n".join(f"{i + 1}) {o}" for i, o in enumerate(shuffled)), gold]
    elif form == "edited":
        turns = [edit(question + "\n" + letters(options), 0.15, rng, vocab), gold]
    elif form == "no_options":
        turns = [question, f"{gold}. {ha[:300]}"]
    elif form == "in_answer":
        words = ha.split(" ")
        cut = len(words) // 2
        quote = f' A classic exam question asks: "{question}" The expected answer is {gold}. '
        turns = [hq, " ".join(words[:cut]) + quote + " ".join(words[cut:])]
    elif form == "in_document":
        words = ha.split(" ")
        cut = len(words) // 2
        inner = edit(question + " " + " ".join(options), 0.10, rng, vocab)
        turns = [hq, " ".join(words[:cut]) + "\n\n" + inner + "\n\n" + " ".join(words[cut:])]
    elif form == "case_punct":
        turns = [case_punct(question + "\n" + letters(options), rng), gold]
    elif form == "multi_turn":
        turns = [hq, ha, "Another one: " + question + "\n" + letters(options), f"It is {gold}."]
    else:
        raise ValueError(form)
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


# -- the 13-gram baseline (lm-eval's Janitor: lower case, no punctuation, 13-grams) ---------

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def janitor_ngrams(text: str, n: int = 13) -> set[int]:
    words = _PUNCT.sub("", text.lower()).split()
    return {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}


class ThirteenGram:
    """lm-eval-style decontamination: any shared 13-gram with a benchmark document."""

    def __init__(self, documents: list[str]):
        self.grams: set[int] = set()
        for doc in documents:
            self.grams |= janitor_ngrams(doc)

    def flags(self, texts: list[str]) -> np.ndarray:
        return np.array([bool(janitor_ngrams(t) & self.grams) for t in texts])


# -- data ------------------------------------------------------------------------------------


def ingest_benchmarks(work: Path) -> dict[str, list[Path]]:
    catalog, root = Catalog.load(), resolve_data_root()
    store = RunStore(work)
    files = {}
    for name in BENCHMARKS:
        folder = store.benchmark(name)
        ingest_source(catalog.benchmark(name), folder, data_root=root)
        files[name] = folder.files("records")
    return files


def hosts(count: int, *, skip_sample: bool = True) -> list[tuple[str, str]]:
    """Real MedQuAD pairs outside the 1,500 sample (so the demo's rows stay clean), then
    every Dolly row, interleaved."""
    root = resolve_data_root()
    sample = {json.loads(line)["id"] for line in
              (root / "medical/medquad/medquad_sample_1500.jsonl").read_text().splitlines()}
    medquad = [(r["question"], r["answer"]) for r in map(json.loads, (
        root / "medical/medquad/medquad_answered.jsonl").read_text().splitlines())
        if not (skip_sample and r["id"] in sample) and r.get("answer")]
    dolly = [(r["instruction"] + ("\n\n" + r["context"] if r["context"] else ""), r["response"])
             for r in map(json.loads, (root / "general/dolly/dolly_151.jsonl").read_text().splitlines())]
    random.Random(0).shuffle(medquad)
    return (dolly + medquad)[:count] if count > len(dolly) else dolly[:count]


def sample_items(index: BenchmarkIndex, per_benchmark: int, seed: int = 0) -> pl.DataFrame:
    items = index.items.with_row_index("idx")
    return pl.concat([items.filter(pl.col("benchmark") == b).sample(
        min(per_benchmark, items.filter(pl.col("benchmark") == b).height), seed=seed) for b in BENCHMARKS])


def planted_rows(items: pl.DataFrame, host_rows: list[tuple[str, str]], vocab: list[str],
                 seed: int = 0) -> pl.DataFrame:
    """Every sampled item in every form, with its host row (one row per item x form)."""
    rng = random.Random(seed)
    rows = []
    for k, item in enumerate(items.iter_rows(named=True)):
        entry = {"question": item["question"], "options": item["options"].split("\n"),
                 "answer_text": item["answer"] or item["options"].split("\n")[0]}
        for j, form in enumerate(FORMS):
            host = host_rows[(k * len(FORMS) + j) % len(host_rows)]
            rows.append({"benchmark": item["benchmark"], "item": item["item"], "form": form,
                         "messages": plant(entry, form, host, rng, vocab)})
    return pl.DataFrame(rows)


def chats(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"messages": [[{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                                      for q, a in pairs]})


def with_texts(frame: pl.DataFrame) -> pl.DataFrame:
    turns = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    frame = frame.with_columns(chosen=pl.lit(None, turns), rejected=pl.lit(None, turns))
    return frame.with_columns(text=all_text(), turns=turn_texts(DecontamConfig().embedding_roles))


def same_question(index: BenchmarkIndex) -> dict[str, str]:
    """Each item id's question, lower-cased with punctuation and spaces folded: a tier that
    names another item with the same question (benchmarks repeat some) found the copy."""
    return dict(index.items.select("item", folded("question")).iter_rows())


def fired(index: BenchmarkIndex, frame: pl.DataFrame,
          expected: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per tier: whether it fired on each row (at the config's thresholds), and the item.
    With ``expected`` (the planted item of each row), a tier counts only when the item it
    names is the planted one or has the same question."""
    c = index.config
    question = same_question(index) if expected is not None else {}
    found = index.match(frame.get_column("text"), frame.get_column("turns"))
    limits = {"ngram": c.ngram_min_matches, "containment": c.min_containment,
              "stem": c.min_stem_containment, "embedding": c.embedding_threshold}
    out = {}
    for tier, (item, score, _field) in found.items():
        hit = np.nan_to_num(score, nan=-1) >= limits[tier]
        named = index.item_of(item).to_pylist()
        if expected is not None:
            hit &= np.array([n is not None and question[n] == question[e] for n, e in zip(named, expected,
                                                                                       strict=True)])
        out[tier] = hit
        out[f"{tier}_item"] = np.array(named, dtype=object)
    return out


def demo_texts(work: Path, rows: int) -> pl.DataFrame:
    """The first ``rows`` text records of the demo recipe's sources, as the stage sees them."""
    catalog, root = Catalog.load(), resolve_data_root()
    store = RunStore(work)
    frames = []
    for name in ("medquad_sample", "medquad_contaminated_demo", "self_instruct", "self_instruct_user",
                 "dolly", "vqa_rad"):
        folder = store.source(name)
        ingest_source(catalog.source(name), folder, data_root=root)
        frames.append(pl.read_parquet(folder.files("records")).select("messages", "chosen", "rejected"))
    records = pl.concat(frames)
    return records.sample(min(rows, records.height), seed=0).with_columns(
        text=all_text(), turns=turn_texts(DecontamConfig().embedding_roles))


VARIANTS = {"torch float32": ("torch", "float32"), "torch bfloat16": ("torch", "bfloat16"),
            "onnx float32": ("onnx", "float32")}
"""The embedder's backends and precisions, each against torch float32."""


def time_embedder(files: dict[str, list[Path]], work: Path, rows: int, repeats: int = 3) -> None:
    """Decontamination of demo records with an empty cache and again (the cache), then each
    embedder variant against torch float32 on the texts tier 4 embeds for them (the demo
    records' user turns, and the benchmark items' questions and whole stems): texts/s (the
    same texts, no cache, each variant's model loaded and warmed first, alternating, best of
    ``repeats``), per-text cosine, and whether tier 4 flags the same records with the same
    items."""
    from curate.curation.embed import _encode, native_bfloat16, nearest

    frame = demo_texts(work, rows)
    items = load_items(StageContext(benchmarks=files), list(BENCHMARKS))
    default = DecontamConfig(embedding_model="minilm")
    seconds = {}
    for label in ("empty cache", "second run"):
        index = BenchmarkIndex(items, default, cache=work / "cache")
        started = time.perf_counter()
        index.match(frame.get_column("text"), frame.get_column("turns"))
        seconds[label] = time.perf_counter() - started
    turns = frame.get_column("turns").explode().drop_nulls()
    turns = turns.filter(turns.str.count_matches(r"\S+") >= default.embedding_min_words)
    sets = {"user turns": list(dict.fromkeys(turns.to_list())),
            "benchmark items": index.embedding_key_texts.get_column("text").to_list()}
    tokens = default.embedding_max_tokens

    def encode(variant: str, texts: list[str]) -> np.ndarray:
        backend, precision = VARIANTS[variant]
        return _encode(texts, "minilm", batch_size=64, max_tokens=tokens, backend=backend,  # type: ignore[arg-type]
                       precision=precision, onnx_folder=work / "onnx")  # type: ignore[arg-type]

    for variant in VARIANTS:  # load, export and warm every variant before any clock starts
        encode(variant, sets["user turns"][:64])
    rate: dict[tuple[str, str], float] = {}
    vectors: dict[tuple[str, str], np.ndarray] = {}
    for _ in range(repeats):
        for name, texts in sets.items():
            for variant in VARIANTS:
                started = time.perf_counter()
                vectors[name, variant] = encode(variant, texts)
                rate[name, variant] = max(rate.get((name, variant), 0.0),
                                          len(texts) / (time.perf_counter() - started))
    flagged = {}  # the decision: which turns reach the threshold, and the item each names
    for variant in VARIANTS:
        best, cosine = nearest(vectors["user turns", variant], vectors["benchmark items", variant])
        flagged[variant] = [(t, int(best[t])) for t in np.flatnonzero(cosine >= default.embedding_threshold)]
    print(f"\ntier 4 on {frame.height} demo records ({len(sets['user turns'])} distinct user turns, "
          f"{len(sets['benchmark items'])} benchmark item texts), MiniLM at {tokens} tokens; "
          f"native bfloat16 on this CPU: {native_bfloat16()}")
    print(f"  decontamination, default config (precision auto): empty cache {seconds['empty cache']:.1f} s, "
          f"second run {seconds['second run']:.1f} s: {seconds['empty cache'] / seconds['second run']:.1f}x "
          "(target >= 10x)")
    print(f"  {'variant':<16} " + " ".join(f"{n + ' texts/s':>24}" for n in sets)
          + f" {'min cosine':>11} {'tier-4 decisions':>17}")
    for variant in VARIANTS:
        cosine = min(float((vectors[n, variant] * vectors[n, "torch float32"]).sum(axis=1).min())
                     for n in sets)
        same = flagged[variant] == flagged["torch float32"]
        hits = len(flagged[variant])
        print(f"  {variant:<16} " + " ".join(
            f"{rate[n, variant]:>12.1f} ({rate[n, variant] / rate[n, 'torch float32']:.2f}x)" + " " * 4
            for n in sets) + f" {cosine:>11.5f} {('identical' if same else 'DIFFERENT') + f' ({hits})':>17}")
    print("  targets: a faster variant >= 1.5x torch float32 on both sets with min cosine >= 0.999 and "
          "identical tier-4 decisions")


def main() -> None:
    # imported here: the tests load this file without benchmarks/ on the path
    from _common import announce, finish, parse_args

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=60, help="items per benchmark")
    parser.add_argument("--clean", type=int, default=3000, help="clean host rows (MedQuAD + Dolly)")
    parser.add_argument("--embedder", action="store_true", help="tier 4 (MiniLM) and backend timings")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--demo", type=int, default=0,
                        help="time tier 4 on this many demo records: cache and ONNX vs torch")
    parser.add_argument("--min-containment", type=float, default=DecontamConfig().min_containment)
    parser.add_argument("--seed", type=int, default=0,
                        help="which items are planted, and how they are edited and placed")
    args = parse_args(parser, {"items": 3, "clean": 100})
    # measured on this machine: about 60 s at the defaults, +90 s with --embedder, +6 min with --demo
    announce("decontam.py", 20 + 0.005 * args.clean + 0.2 * args.items + 90 * args.embedder
             + (300 + 0.1 * args.demo) * bool(args.demo),
             f"{args.items} items per benchmark, {args.clean} clean rows"
             + (", tier 4 (MiniLM)" if args.embedder else ""))
    with tempfile.TemporaryDirectory(prefix="decontam-bench-") as tmp:
        files = ingest_benchmarks(Path(tmp))
        if args.demo:
            time_embedder(files, Path(tmp), args.demo)
        config = DecontamConfig(embedding_model="minilm" if args.embedder else None,
                                embedding_backend=args.backend, embedding_precision=args.precision,
                                min_containment=args.min_containment)
        context = StageContext(benchmarks=files)
        index = BenchmarkIndex(load_items(context, list(BENCHMARKS)), config,
                               cache=Path(tmp) / "cache" if args.embedder else None)
        pool = hosts(args.clean + 2000)
        clean_pairs, host_rows = pool[:args.clean], pool[args.clean:]
        vocab = " ".join(a for _, a in host_rows[:300]).split()
        items = sample_items(index, args.items, args.seed)
        planted = with_texts(planted_rows(items, host_rows, vocab, args.seed))
        clean = with_texts(chats(clean_pairs))
        print(f"sizes: {args.items} items per benchmark x {len(FORMS)} forms = {planted.height} "
              "planted rows; "
              f"{clean.height} clean rows (MedQuAD outside the demo sample, Dolly); "
              f"{len(index.items)} benchmark items indexed")
        started = time.perf_counter()
        hit_planted = fired(index, planted, planted.get_column("item").to_list())
        hit_clean = fired(index, clean)
        seconds = time.perf_counter() - started
        documents = index.items.select(pl.concat_str([index.whole_stems, pl.col("options")],
                                                     separator="\n")).to_series().to_list()
        baseline = ThirteenGram(documents)
        base_planted = baseline.flags(planted.get_column("text").to_list())
        base_clean = baseline.flags(clean.get_column("text").to_list())
        sets = {k: v for k, v in TIER_SETS.items() if args.embedder or "embedding" not in v}
        table = planted.select("benchmark", "item", "form").with_columns(
            **{f"tiers {k}": np.logical_or.reduce([hit_planted[t] for t in v]) for k, v in sets.items()},
            baseline=base_planted)
        print(f"\nrecall (share of planted rows flagged), curate tiers vs the 13-gram baseline; "
              f"scoring {planted.height + clean.height} rows took {seconds:.1f} s")
        summary = table.group_by("benchmark", "form", maintain_order=True).agg(
            pl.col(c).mean() for c in [*(f"tiers {k}" for k in sets), "baseline"])
        header = f"{'benchmark':<13} {'form':<12} " + " ".join(f"{'tiers ' + k:>17}" for k in sets) + \
            f" {'13-gram':>8} {'ahead':>6}"
        print(header)
        worst = {k: 1.0 for k in sets}
        ahead_all = True
        for row in summary.iter_rows(named=True):
            best = row[f"tiers {list(sets)[-1]}"]
            ahead = best > row["baseline"] or best == 1.0
            ahead_all &= ahead
            for k in sets:
                worst[k] = min(worst[k], row[f"tiers {k}"])
            print(f"{row['benchmark']:<13} {row['form']:<12} "
                  + " ".join(f"{row[f'tiers {k}']:>17.3f}" for k in sets)
                  + f" {row['baseline']:>8.3f} {'yes' if ahead else 'NO':>6}")
        flagged = np.logical_or.reduce([hit_clean[t] for t in TIER_SETS[list(sets)[-1]]])
        print("\nworst form: " + ", ".join(f"tiers {k} {v:.3f}" for k, v in worst.items()))
        print(f"false positives on clean rows: {int(flagged.sum())} of {clean.height} "
              f"({flagged.mean():.3%}); 13-gram baseline {int(base_clean.sum())} ({base_clean.mean():.3%})")
        for t in TIER_SETS["1-4 all"]:
            if t in hit_clean and hit_clean[t].any():
                rows = np.flatnonzero(hit_clean[t])[:3]
                for r in rows:
                    print(f"  FP {t}: {clean_pairs[r][0][:80]!r} ~ {hit_clean[f'{t}_item'][r]}")
        print(f"targets: all tiers >= 0.95 every form: {worst[list(sets)[-1]] >= 0.95}; "
              f"tiers 1-3 >= 0.9: {worst['1-3 lexical'] >= 0.9}; FP <= 0.1%: {flagged.mean() <= 0.001}; "
              f"ahead of 13-gram everywhere: {ahead_all}")
    finish(None, [], False)


if __name__ == "__main__":
    main()
