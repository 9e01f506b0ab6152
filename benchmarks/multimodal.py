"""Multimodal checks on VQA-RAD (3,515 real QA pairs over 315 images): a labelled
corruption set built here, precision and recall per corruption kind, and images/s.

Each kind is applied (seeded) to its own copy of the ingested VQA-RAD records, the
stage runs over all 3,515+ rows, and a flag with the kind's reason counts as a true
positive on a corrupted row and a false positive anywhere else (VQA-RAD's own 8
wrong-type answers count against precision). Kinds text can reveal:

- pasted: one long answer pasted onto 60 rows over 60 other images, (a) a report
  sentence found nowhere in VQA-RAD, (b) a real VQA-RAD answer ("ring enhancing lesion in
  the left occipital lobe", 4 rows on its own image);
- copied: 50 single copies of a random long answer (4+ content words) onto a row of
  another image (reported; no target);
- wrong type: 150 yes/no questions (labelled CLOSED, answered yes/no) given the answer of
  an OPEN plane/organ/modality/position question, and 150 OPEN questions answered yes
  or no. The labels (`answer_type`, `question_type`) choose the rows; the check never
  reads them.

Kinds text cannot reveal (reported honestly: the answer keeps its form):
- same-type swaps: 150 yes<->no flips, and left<->right swaps where they occur.

Images: 100 images re-encoded (JPEG quality 30-80) and resized (50-90%), added as new
records; recall of ``duplicate_image``, precision over every flag. Speed: the image
stage's scoring (decode, checks, phash, duplicate search) against the peer, imagehash
called per image in a plain loop (``imagehash.phash(Image.open(...))``, its README's
usage), over the same distinct images, timed the same way.

    .venv/bin/python benchmarks/multimodal.py
    .venv/bin/python benchmarks/multimodal.py --smoke     # 30 images' rows, seconds (the test suite's size)
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from _common import announce, finish, parse_args
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from curate.catalog import Catalog, resolve_data_root  # noqa: E402
from curate.curation.answers import AnswerCheck  # noqa: E402
from curate.curation.config import ImageConfig  # noqa: E402
from curate.curation.image import ImageCheck, score_images  # noqa: E402
from curate.engine.stage import StageContext  # noqa: E402
from curate.ingest import ingest_source  # noqa: E402
from curate.records import with_ids  # noqa: E402
from curate.store import RunStore  # noqa: E402

REPORT_SENTENCE = "no acute cardiopulmonary process is identified on this examination"
REAL_ANSWER = "ring enhancing lesion in the left occipital lobe"


def load(tmp: Path) -> pl.DataFrame:
    store = RunStore(tmp)
    ingest_source(Catalog.load().source("vqa_rad"), store.source("vqa_rad"), data_root=resolve_data_root())
    records = pl.read_parquet(store.source("vqa_rad").files("records")).sort("row")
    return records.with_columns(
        q=pl.col("messages").list.first().struct.field("content"),
        a=pl.col("messages").list.last().struct.field("content"),
        img=pl.col("images").list.first().struct.field("path"),
        atype=pl.col("meta").str.json_path_match("$.answer_type").str.strip_chars(),
        qtype=pl.col("meta").str.json_path_match("$.question_type").str.strip_chars(),
    )


def with_answers(records: pl.DataFrame, answers: dict[int, str]) -> pl.DataFrame:
    new = pl.DataFrame(
        {"row": list(answers), "_new": list(answers.values())}, schema={"row": pl.Int64, "_new": pl.String}
    )
    changed = records.join(new, on="row", how="left").with_columns(
        messages=pl.when(pl.col("_new").is_not_null())
        .then(
            pl.concat_list(
                pl.col("messages").list.first(), pl.struct(role=pl.lit("assistant"), content=pl.col("_new"))
            )
        )
        .otherwise("messages")
    )
    table = changed.drop("_new", "q", "a", "img", "atype", "qtype").to_arrow()
    return pl.from_arrow(with_ids(table))


def pr(flagged: set[int], truth: set[int]) -> dict[str, float | int]:
    tp = len(flagged & truth)
    return {
        "corrupted": len(truth),
        "flagged": len(flagged),
        "true_pos": tp,
        "precision": round(tp / len(flagged), 4) if flagged else 0.0,
        "recall": round(tp / len(truth), 4) if truth else 0.0,
    }


def answers_run(records: pl.DataFrame, answers: dict[int, str], prefix: str | tuple[str, ...],
                context: StageContext) -> dict:
    stage = AnswerCheck()
    data = with_answers(records, answers)
    decided = stage.decide(stage.score(data.lazy(), context))
    flagged = set(
        decided.filter(
            pl.col("reason").fill_null("").str.starts_with(prefix)
            if isinstance(prefix, str)
            else pl.col("reason").is_not_null()
        )
        .get_column("row")
        .to_list()
    )
    return pr(flagged, set(answers))


def long_answers(records: pl.DataFrame) -> pl.DataFrame:
    from curate.curation.answers import content_words

    return records.filter(
        pl.col("a").map_elements(lambda a: len(content_words(a)) >= 4, return_dtype=pl.Boolean)
    )


def subset(records: pl.DataFrame, images: int) -> pl.DataFrame:
    """The rows of the first ``images`` images (in row order), the pasted real answer's image
    among them."""
    order = records.get_column("img").unique(maintain_order=True).to_list()
    real = records.filter(pl.col("a") == REAL_ANSWER).get_column("img")[0]
    chosen = [real, *[i for i in order if i != real][: images - 1]]
    return records.filter(pl.col("img").is_in(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=None,
                        help="use the QA rows of this many VQA-RAD images only (the first in row order, "
                        "the pasted real answer's among them); the corruption counts shrink with the "
                        "rows (4 at least). Default: all 314 images, the counts in this docstring")
    parser.add_argument("--reencoded", type=int, default=100,
                        help="images re-encoded and resized, added as duplicate images")
    args = parse_args(parser, {"images": 30, "reencoded": 10})
    announce("multimodal.py", 120 if args.images is None else 15 + 0.3 * args.images,  # measured here
             ("all 3,515 VQA-RAD rows" if args.images is None
              else f"the rows of {args.images} VQA-RAD images") + f", {args.reencoded} re-encoded images")
    with tempfile.TemporaryDirectory(prefix="multimodal-bench-") as tmp:
        records = load(Path(tmp))
        # the answers stage reads and fills an embedding cache: this run's own, so every run embeds
        context = StageContext(embedding_cache=Path(tmp) / "embeddings")
        run(records if args.images is None else subset(records, args.images), records.height, args,
            context)


def run(records: pl.DataFrame, total: int, args: argparse.Namespace, context: StageContext) -> None:
    """Every corruption kind on ``records`` (``total`` rows in all of VQA-RAD), then the image
    stage against the peer."""
    rng = random.Random(args.seed)

    def count(n: int) -> int:  # the docstring's counts on all rows, in proportion on fewer
        return n if records.height == total else max(4, round(n * records.height / total))

    print(
        f"VQA-RAD: {records.height:,} QA pairs over {records.get_column('img').n_unique()} images"
        f"{'' if records.height == total else f' (of {total:,} rows)'}; seed {args.seed}"
    )
    results: dict[str, dict] = {}

    # -- text can reveal ------------------------------------------------------------
    by_image = records.unique("img", keep="first", maintain_order=True)
    real_img = records.filter(pl.col("a") == REAL_ANSWER).get_column("img")[0]
    others = by_image.filter(pl.col("img") != real_img).get_column("row").to_list()
    for name, text in (
        ("pasted (report sentence)", REPORT_SENTENCE),
        ("pasted (real answer)", REAL_ANSWER),
    ):
        rows = rng.sample(others, min(count(60), len(others)))
        results[name] = answers_run(records, dict.fromkeys(rows, text), "pasted_answer", context)
    longs = long_answers(records)
    copies = {}
    for _ in range(count(50)):
        src = longs.row(rng.randrange(longs.height), named=True)
        elsewhere = records.filter(pl.col("img") != src["img"])
        # an image has at most 23 rows, so on all of VQA-RAD the bound is records.height - 40
        dst = elsewhere.row(rng.randrange(min(records.height - 40, elsewhere.height)), named=True)
        if dst["row"] not in copies:
            copies[dst["row"]] = src["a"]
    results["copied (single copies)"] = answers_run(records, copies, "pasted_answer", context)

    yes_no = records.filter(
        (pl.col("atype") == "CLOSED") & pl.col("a").str.to_lowercase().is_in(["yes", "no"])
    )
    open_terms = records.filter(
        (pl.col("atype") == "OPEN")
        & pl.col("qtype").is_in(["PLANE", "ORGAN", "MODALITY", "POS"])
        & ~pl.col("a").str.to_lowercase().is_in(["yes", "no"])
    )
    open_q = records.filter(
        (pl.col("atype") == "OPEN") & ~pl.col("a").str.to_lowercase().is_in(["yes", "no"])
    )
    terms = open_terms.get_column("a").to_list()
    kind = count(150)
    wrong = {r: rng.choice(terms) for r in rng.sample(yes_no.get_column("row").to_list(), kind)}
    wrong.update(
        {
            r: rng.choice(["yes", "no", "Yes", "No"])
            for r in rng.sample(open_q.get_column("row").to_list(), kind)
        }
    )
    results[f"wrong type ({2 * kind}: {kind} yes/no<-term, {kind} open<-yes/no)"] = answers_run(
        records, wrong, "answer_wrong_type", context
    )

    # -- text cannot reveal ---------------------------------------------------------
    flips = {
        r: ("No" if a.lower() == "yes" else "Yes")
        for r, a in yes_no.sample(kind, seed=args.seed).select("row", "a").iter_rows()
    }
    results["same-type swaps: yes<->no (any text flag)"] = answers_run(records, flips, ("",), context)
    sides = records.filter(pl.col("a").str.to_lowercase().is_in(["left", "right"]))
    swaps = {
        r: ("right" if a.lower() == "left" else "left") for r, a in sides.select("row", "a").iter_rows()
    }
    results[f"same-type swaps: left<->right, {len(swaps)} (any text flag)"] = answers_run(
        records, swaps, ("",), context
    )

    # -- images -----------------------------------------------------------------------
    firsts = by_image.sample(args.reencoded, seed=args.seed)
    extra = []
    for i, rec in enumerate(firsts.iter_rows(named=True)):
        image = Image.open(io.BytesIO(rec["images"][0]["bytes"])).convert("RGB")
        scale = rng.uniform(0.5, 0.9)
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=rng.randrange(30, 81))
        extra.append(
            {**rec, "row": 10_000 + i, "images": [{"bytes": out.getvalue(), "path": f"copy{i}.jpg"}]}
        )
    base = records.drop("q", "a", "img", "atype", "qtype")
    copies_df = pl.from_arrow(
        with_ids(
            pl.DataFrame(extra)
            .drop("q", "a", "img", "atype", "qtype")
            .select(base.columns)
            .cast(base.schema)
            .to_arrow()
        )
    )
    data = pl.concat([base, copies_df])
    config = ImageConfig()
    started = time.perf_counter()
    decided = ImageCheck(config).decide(score_images(data.lazy(), config))
    ours = time.perf_counter() - started
    flagged = set(
        decided.filter(pl.col("reason").fill_null("").str.starts_with("duplicate_image"))
        .get_column("row")
        .to_list()
    )
    results[f"duplicate images ({args.reencoded} re-encoded + resized)"] = pr(
        flagged, set(range(10_000, 10_000 + args.reencoded)))
    distinct = {i["bytes"] for imgs in data.get_column("images").to_list() for i in imgs}
    import hashlib

    import imagehash

    started = time.perf_counter()
    for blob in distinct:
        hashlib.sha256(blob).hexdigest()
        imagehash.phash(Image.open(io.BytesIO(blob)))
    peer = time.perf_counter() - started

    print(json.dumps(results, indent=2))
    n = len(distinct)
    print(
        f"image stage: {n} distinct images ({data.height:,} records) in {ours:.2f} s = "
        f"{n / ours:.0f} images/s "
        f"(full decode, checks, phash, duplicate search)"
    )
    print(
        f"peer, imagehash.phash per image in a plain loop (+ sha256): {peer:.2f} s = {n / peer:.0f} images/s "
        f"(hash only, no duplicate search); stage / peer speed: {peer / ours:.2f}x"
    )


if __name__ == "__main__":
    main()
    finish(None, [], False)
