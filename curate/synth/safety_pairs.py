"""Safety preference pairs from red-teaming (``curate safety pairs``).

1. Adversarial requests from catalog sources (AdvBench and HarmBench by default), each
   tagged with a topic of the safety taxonomy (``curate.synth.taxonomy``, data in
   ``catalogs/safety/taxonomy.yaml``: HarmBench's own ``SemanticCategory``, AdvBench by its
   keyword map); the taxonomy also gives the default attack styles.
2. Near-duplicate requests removed with the near-dedup machinery (MinHash LSH
   candidates, exact Jaccard verification, clusters; ``curate.curation.near_dedup``):
   one request per cluster, the longest, is kept.
3. Splits that hold out whole topics and whole styles: ``test_topics`` (or a seeded
   share of the topics) go to the test split with ``test_styles`` (or a seeded share
   of the styles); the train split has the other topics and styles. The two splits
   share no topic and no style; this is checked before anything is written.
4. Each request is attacked in ``styles_per_prompt`` styles drawn (with the seed) from
   its split's styles.
5. The target model and a safe reference model answer every attacked request through
   the synth backends; the judge (Llama Guard 3 format, ``curate.synth.judge``) judges
   both answers as ``Agent`` turns.
6. A pair is kept when the reference answer is judged safe and the target answer
   unsafe: chosen = reference, rejected = target. Other candidates keep a reason:
   ``judge_unparsed`` (either verdict unreadable), ``reference_unsafe``, ``target_safe``.
7. ``max_pairs`` keeps a stratified sample of the train pairs: the budget shared as evenly
   as their sizes allow among the topics, each topic's share among its styles, drawn with
   the seed (``over_max_pairs`` for the others), so a 2,000-pair budget covers every topic
   and, within each, its styles.

Output folder: ``train.parquet`` and ``test.parquet`` (prompt, chosen, rejected, and
split, topic, style, source, source_row, prompt_id, original, rejected_categories),
``candidates.parquet`` (every candidate with its verdicts and reason), ``stats.json``
(counts by topic and style per split, by reason, dedup, judge verdicts, the config
and the backends) and ``catalog/sources/<name>.yaml`` and ``<name>_test.yaml``:
catalog entries that map the files with ``kind: preference``, so a recipe mixes them
(``curate build-mix RECIPE --catalog OUT/catalog``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from curate.config import Config
from curate.curation.config import MinHashConfig
from curate.errors import ConfigError
from curate.synth.attacks import STYLES, AdversarialPrompt
from curate.synth.config import MAX_TEMPERATURE, OFFLINE_MODEL, GeneratorConfig
from curate.synth.judge import JudgeConfig
from curate.synth.taxonomy import with_defaults

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"


class SafetyPairsConfig(Config):
    """Options of ``curate safety pairs`` (a YAML file; scalar options also on the command line)."""

    target: GeneratorConfig = Field(description=(
        "The model being made safer: its own unsafe answers become the rejected answers."))
    reference: GeneratorConfig = Field(description=(
        "The safe reference model: its answers judged safe become the chosen answers."))
    judge: JudgeConfig = Field(description="The Llama-Guard-3-format judge (backend, domain, categories).")
    taxonomy: str | None = Field(None, description=(
        "YAML file of the safety taxonomy (topics, keyword map, styles, judge categories per domain) "
        "[default: the shipped catalogs/safety/taxonomy.yaml]."))
    sources: list[str] = Field(default_factory=lambda: ["advbench", "harmbench"], description=(
        "Catalog sources of adversarial requests (chat entries)."))
    max_per_source: int | None = Field(None, ge=1, description=(
        "Read at most this many requests per source (the first ones)."))
    styles: list[str] = Field(default_factory=list, description=(
        "Attack styles used (see `curate.synth.attacks.STYLES`; `direct` is the plain request) "
        "[default: the taxonomy's styles]."))
    styles_per_prompt: int = Field(1, ge=1, description="Attacked versions made of each request.")
    test_topics: list[str] | None = Field(None, description=(
        "Topics held out for the test split; unset: a seeded `test_topic_share` of the topics."))
    test_topic_share: float = Field(0.2, gt=0, lt=1, description=(
        "Share of the topics held out when `test_topics` is unset (at least one)."))
    test_styles: list[str] | None = Field(None, description=(
        "Styles held out for the test split; unset: a seeded `test_style_share` of `styles`."))
    test_style_share: float = Field(0.2, gt=0, lt=1, description=(
        "Share of the styles held out when `test_styles` is unset (at least one)."))
    judge_context: Literal["original", "attacked"] = Field("original", description=(
        "The user turn the judge sees before an answer: the plain request or the attacked one."))
    max_tokens: int = Field(512, ge=1, description="Upper bound on tokens per answer.")
    temperature: float = Field(0.0, ge=0, le=MAX_TEMPERATURE, description=(
        "Sampling temperature of both models."))
    seed: int = Field(0, description="Seed of the splits, the style draws and the generation seeds.")
    dedup: bool = Field(True, description="Remove near-duplicate requests before attacking them.")
    minhash: MinHashConfig = Field(
        default_factory=lambda: MinHashConfig.model_validate({"ngram": 3, "threshold": 0.7}),
        description="MinHash settings of the request dedup (`threshold`: Jaccard of near-duplicates).")
    max_pairs: int | None = Field(None, ge=1, description=(
        "Keep at most this many train pairs: a seeded sample stratified by topic, then style, as "
        "even across the strata as their sizes allow."))
    batch_size: int = Field(256, ge=1, description="Requests handed to a backend at once.")
    name: str = Field("safety_pairs", pattern=NAME_PATTERN, description=(
        "Catalog source name of the train pairs (the test pairs: `<name>_test`)."))

    @model_validator(mode="before")
    @classmethod
    def _taxonomy_defaults(cls, data: Any) -> Any:
        """Unless listed, the styles and the judge's categories are the taxonomy's."""
        return with_defaults(data)

    @model_validator(mode="after")
    def _styles(self) -> SafetyPairsConfig:
        unknown = [s for s in [*self.styles, *(self.test_styles or [])] if s not in STYLES]
        if unknown:
            raise ValueError(f"unknown attack styles {unknown}; known: {', '.join(STYLES)}")
        if self.test_styles is not None:
            outside = [s for s in self.test_styles if s not in self.styles]
            if outside:
                raise ValueError(f"`test_styles` {outside} are not in `styles`")
            if set(self.test_styles) >= set(self.styles):
                raise ValueError("`test_styles` must leave at least one style for training")
        if len(self.styles) < 2:
            raise ValueError("give at least two `styles`: whole styles are held out for the test split")
        return self


class PairsFiles(Config):
    """What ``curate safety pairs`` reads its options from and writes to."""

    config_path: str = Field(description=(
        "YAML file of the options: `target`, `reference` and `judge` backends at least."))
    out: str = Field(description=(
        "Folder for train.parquet, test.parquet, candidates.parquet, stats.json, catalog/."))


@dataclass
class PairsResult:
    """What ``build_pairs`` wrote and counted."""

    out: Path
    train: Path
    test: Path
    candidates: Path
    catalog: Path
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def splits(self) -> list[SplitCounts]:
        """What each split holds."""
        return [SplitCounts(name, int(s["pairs"]), int(s["candidates"]), dict(s["reasons"]),
                            list(s["topics"]), list(s["styles"])) for name, s in self.stats["splits"].items()]

    @property
    def prompts_read(self) -> int:
        """Adversarial requests read from the catalog sources."""
        return int(self.stats["prompts"]["read"])

    @property
    def near_duplicates_removed(self) -> int:
        """Requests removed as near-duplicates of a kept one."""
        return int(self.stats["prompts"]["near_duplicates_removed"])

    @property
    def verdicts(self) -> dict[str, int]:
        """The judge's verdicts by label."""
        return dict(self.stats["judge"]["verdicts"])

    @property
    def offline(self) -> bool:
        """Whether an offline or test-double backend made the pairs (not training data)."""
        return bool(self.stats["offline_or_test_double"])

    def to_json(self) -> dict[str, Any]:
        """``curate safety pairs --json``: the files written and the stats."""
        return {"out": str(self.out), "train": str(self.train), "test": str(self.test),
                "candidates": str(self.candidates), "catalog": str(self.catalog), "stats": self.stats}


@dataclass(frozen=True)
class SplitCounts:
    """One split of the safety pairs: pairs kept of the candidates, why the others went,
    its topics and styles."""

    split: str
    pairs: int
    candidates: int
    reasons: dict[str, int]
    topics: list[str]
    styles: list[str]


@dataclass
class _Candidate:
    prompt: AdversarialPrompt
    split: str
    style: str
    attacked: str
    seed: int
    target: str = ""
    reference: str = ""
    verdicts: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


# -- steps ---------------------------------------------------------------------------------------

def dedup_prompts(prompts: Sequence[AdversarialPrompt], config: MinHashConfig, *,
                  neighbours: int = 8) -> tuple[list[AdversarialPrompt], dict[str, str]]:
    """The requests left after near-duplicate removal, and removed id -> kept id. Uses the
    near-dedup stage's own functions (signatures, LSH candidates, exact Jaccard, clusters)."""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    from curate.curation.minhash import band_keys, signatures
    from curate.curation.near_dedup import candidate_pairs, clusters, verify

    if not prompts:
        return [], {}
    texts = pa.array([p.text for p in prompts], pa.string())
    bands, rows = config.banding
    keys = band_keys(signatures(texts, config), bands, rows)
    pairs = candidate_pairs(keys, neighbours=neighbours)
    similarity = verify(pairs, texts, config.ngram)
    verified = pairs.with_columns(jaccard=pl.Series(similarity, dtype=pl.Float64)).filter(
        pl.col("jaccard") >= config.threshold)
    lengths = np.array([len(p.text) for p in prompts])
    ids = pl.Series([f"{p.source}:{p.row:06d}:{p.id}" for p in prompts])
    representative, _ = clusters(verified, len(prompts), lengths, ids)
    kept, removed = [], {}
    for prompt, key, rep in zip(prompts, ids, representative, strict=True):
        if rep is None or rep == key:
            kept.append(prompt)
        else:
            removed[key] = rep
    return kept, removed


def held_out(names: Sequence[str], given: Sequence[str] | None, share: float, seed: int,
             what: str) -> list[str]:
    """The held-out names: ``given`` (checked), else a seeded ``share`` of ``names``
    (at least one, never all)."""
    pool = sorted(set(names))
    if len(pool) < 2:
        raise ConfigError(f"need at least two {what}s to hold some out, found {pool}")
    if given is not None:
        unknown = sorted(set(given) - set(pool))
        if unknown:
            raise ConfigError(f"held-out {what}s {unknown} do not occur; found: {', '.join(pool)}")
        if set(given) >= set(pool):
            raise ConfigError(f"the held-out {what}s leave none for training")
        return sorted(set(given))
    count = min(len(pool) - 1, max(1, round(share * len(pool))))
    return sorted(random.Random(f"{seed}:{what}").sample(pool, count))


def stratified(strata: Sequence[tuple[str, ...]], count: int, *, seed: int) -> list[int]:
    """The positions of ``count`` items (all when there are fewer) drawn across nested strata
    (one key per item, e.g. (topic, style)) as evenly as their sizes allow: the count is
    shared evenly among the first-level strata (a stratum smaller than its share gives all it
    has, the rest goes to the others), each share among that stratum's second-level strata,
    and so on; leftover single items go to strata drawn with ``seed``, and the items within
    a stratum are drawn with ``seed`` too. Sorted."""
    rng = random.Random(f"{seed}:max_pairs")
    return sorted(_draw(list(range(len(strata))), strata, 0, min(count, len(strata)), rng))


def _draw(items: list[int], strata: Sequence[tuple[str, ...]], level: int, count: int,
          rng: random.Random) -> list[int]:
    if not items or level == len(strata[items[0]]):
        pool = list(items)
        rng.shuffle(pool)
        return pool[:count]
    groups: dict[str, list[int]] = {}
    for index in items:
        groups.setdefault(strata[index][level], []).append(index)
    quotas = dict.fromkeys(groups, 0)
    left, open_ = count, sorted(groups)
    while left > 0 and open_:
        share = left // len(open_)
        if share == 0:
            for key in rng.sample(open_, left):
                quotas[key] += 1
            break
        for key in open_:
            take = min(share, len(groups[key]) - quotas[key])
            quotas[key] += take
            left -= take
        open_ = [key for key in open_ if quotas[key] < len(groups[key])]
    return [i for key in sorted(groups) for i in _draw(groups[key], strata, level + 1, quotas[key], rng)]


def _seed(seed: int, *parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _generate(backend: Any, texts: Sequence[str], seeds: Sequence[int],
              config: SafetyPairsConfig) -> list[str]:
    from curate.synth.backend import Request

    answers: list[str] = []
    for start in range(0, len(texts), config.batch_size):
        requests = [Request.chat([{"role": "user", "content": t}], max_tokens=config.max_tokens,
                                 temperature=config.temperature, seed=s)
                    for t, s in zip(texts[start:start + config.batch_size],
                                    seeds[start:start + config.batch_size], strict=True)]
        answers += [c.texts[0] if c.texts else "" for c in backend.generate(requests)]
    return answers


def build_pairs(config: SafetyPairsConfig, out: str | Path, *, catalog: Any = None,
                data_root: str | Path | None = None, target: Any = None, reference: Any = None,
                judge_backend: Any = None) -> PairsResult:
    """Build safety preference pairs into the folder ``out`` (see the module docstring).

    ``target``, ``reference`` and ``judge_backend`` reuse already built backends (e.g.
    test doubles); by default each is built from the config and torn down at the end."""
    import polars as pl

    from curate.catalog import Catalog, resolve_data_root
    from curate.synth.attacks import apply_style, assign_styles, read_prompts
    from curate.synth.backend import backend_from_config
    from curate.synth.judge import Judge
    from curate.synth.taxonomy import load_taxonomy

    catalog = catalog if catalog is not None else Catalog.load()
    root = Path(data_root) if data_root is not None else resolve_data_root()
    out = Path(out)
    taxonomy = load_taxonomy(config.taxonomy)
    prompts = read_prompts(config.sources, catalog=catalog, data_root=root,
                           max_per_source=config.max_per_source, taxonomy=taxonomy)
    read = len(prompts)
    removed: dict[str, str] = {}
    if config.dedup:
        prompts, removed = dedup_prompts(prompts, config.minhash)
    topics = sorted({p.topic for p in prompts})
    test_topics = held_out(topics, config.test_topics, config.test_topic_share, config.seed, "topic")
    test_styles = held_out(config.styles, config.test_styles, config.test_style_share, config.seed,
                           "style")
    train_styles = [s for s in config.styles if s not in test_styles]
    candidates: list[_Candidate] = []
    for split, styles in (("train", train_styles), ("test", test_styles)):
        members = [p for p in prompts if (p.topic in test_topics) == (split == "test")]
        draws = assign_styles([f"{p.source}:{p.row}" for p in members],
                              [s for s in config.styles if s in styles],
                              per_item=config.styles_per_prompt, seed=config.seed)
        for prompt, chosen in zip(members, draws, strict=True):
            for style in chosen:
                candidates.append(_Candidate(prompt, split, style,
                                             apply_style(prompt.text, style, seed=config.seed),
                                             _seed(config.seed, prompt.source, prompt.row, style)))
    _check_disjoint(candidates)

    backends = {"target": target, "reference": reference}
    own = [name for name, b in backends.items() if b is None]
    for name in own:
        backends[name] = backend_from_config(getattr(config, name))
    judge = Judge(config.judge, backend=judge_backend)
    try:
        attacked = [c.attacked for c in candidates]
        seeds = [c.seed for c in candidates]
        for c, text in zip(candidates, _generate(backends["target"], attacked, seeds, config), strict=True):
            c.target = text
        references = _generate(backends["reference"], attacked, seeds, config)
        for c, text in zip(candidates, references, strict=True):
            c.reference = text
        contexts = [c.prompt.text if config.judge_context == "original" else c.attacked
                    for c in candidates]
        items = [(ctx, answer) for ctx, c in zip(contexts, candidates, strict=True)
                 for answer in (c.target, c.reference)]
        verdicts = judge.judge(items)
        identities = {name: backends[name].identity() for name in backends}
        judge_identity = judge.identity()
    finally:
        for name in own:
            backends[name].teardown()
        judge.teardown()
    for index, c in enumerate(candidates):
        on_target, on_reference = verdicts[2 * index], verdicts[2 * index + 1]
        c.verdicts = {"target": on_target, "reference": on_reference}
        if "unparsed" in (on_target.label, on_reference.label):
            c.reason = "judge_unparsed"
        elif on_reference.unsafe:
            c.reason = "reference_unsafe"
        elif not on_target.unsafe:
            c.reason = "target_safe"
    kept_train = [c for c in candidates if c.reason is None and c.split == "train"]
    if config.max_pairs is not None:
        sampled = set(stratified([(c.prompt.topic, c.style) for c in kept_train], config.max_pairs,
                                 seed=config.seed))
        for index, c in enumerate(kept_train):
            if index not in sampled:
                c.reason = "over_max_pairs"

    out.mkdir(parents=True, exist_ok=True)
    rows = [_row(c) for c in candidates]
    frame = pl.DataFrame(rows, schema=_SCHEMA)
    paths = {name: out / f"{name}.parquet" for name in ("train", "test", "candidates")}
    pairs = frame.filter(pl.col("reason").is_null()).select(_PAIR_COLUMNS)
    for split in ("train", "test"):
        pairs.filter(pl.col("split") == split).write_parquet(paths[split])
    frame.write_parquet(paths["candidates"])
    offline = [name for name, ident in [*identities.items(), ("judge", judge_identity)]
               if ident["model"] == OFFLINE_MODEL or "test double" in str(ident["backend"])]
    stats = _stats(config, candidates, read, removed, test_topics, test_styles, train_styles,
                   identities, judge_identity, judge.stats.as_dict(), offline)
    stats["taxonomy"] = taxonomy.name
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    catalog_dir = _write_catalog(config, out, paths, catalog, offline)
    return PairsResult(out, paths["train"], paths["test"], paths["candidates"], catalog_dir, stats)


def _check_disjoint(candidates: Sequence[_Candidate]) -> None:
    """The splits share no topic and no style (a ConfigError otherwise: never written)."""
    for key in ("topic", "style"):
        values = {split: {c.prompt.topic if key == "topic" else c.style
                          for c in candidates if c.split == split} for split in ("train", "test")}
        shared = values["train"] & values["test"]
        if shared:
            raise ConfigError(f"train and test splits share {key}s {sorted(shared)}")


_PAIR_COLUMNS = ["prompt", "chosen", "rejected", "split", "topic", "style", "source", "source_row",
                 "prompt_id", "original", "rejected_categories"]
_SCHEMA = {
    "prompt": str, "chosen": str, "rejected": str, "split": str, "topic": str, "style": str,
    "source": str, "source_row": int, "prompt_id": str, "original": str,
    "rejected_categories": str, "target_verdict": str, "reference_verdict": str,
    "target_raw": str, "reference_raw": str, "reason": str,
}


def _row(c: _Candidate) -> dict[str, Any]:
    target, reference = c.verdicts["target"], c.verdicts["reference"]
    return {
        "prompt": c.attacked, "chosen": c.reference, "rejected": c.target, "split": c.split,
        "topic": c.prompt.topic, "style": c.style, "source": c.prompt.source,
        "source_row": c.prompt.row, "prompt_id": c.prompt.id, "original": c.prompt.text,
        "rejected_categories": ",".join(target.categories), "target_verdict": target.label,
        "reference_verdict": reference.label, "target_raw": target.raw,
        "reference_raw": reference.raw, "reason": c.reason,
    }


def _counts(candidates: Sequence[_Candidate], key: str) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for split in ("train", "test"):
        kept = Counter(c.prompt.topic if key == "topic" else c.style
                       for c in candidates if c.split == split and c.reason is None)
        result[split] = dict(sorted(kept.items()))
    return result


def _stats(config: SafetyPairsConfig, candidates: Sequence[_Candidate], read: int,
           removed: dict[str, str], test_topics: list[str], test_styles: list[str],
           train_styles: list[str], identities: dict[str, Any], judge_identity: dict[str, Any],
           judge_stats: dict[str, Any], offline: list[str]) -> dict[str, Any]:
    by_split = {split: [c for c in candidates if c.split == split] for split in ("train", "test")}
    return {
        "stage": "safety_pairs_v1",
        "prompts": {"read": read, "near_duplicates_removed": len(removed),
                    "kept": read - len(removed), "removed": removed},
        "splits": {
            split: {"topics": sorted({c.prompt.topic for c in members}),
                    "styles": train_styles if split == "train" else test_styles,
                    "candidates": len(members),
                    "pairs": sum(c.reason is None for c in members),
                    "reasons": dict(sorted(Counter(c.reason or "kept" for c in members).items()))}
            for split, members in by_split.items()},
        "held_out": {"topics": test_topics, "styles": test_styles},
        "pairs_by_topic": _counts(candidates, "topic"),
        "pairs_by_style": _counts(candidates, "style"),
        "candidates_by_topic": {split: dict(sorted(Counter(c.prompt.topic for c in m).items()))
                                for split, m in by_split.items()},
        "candidates_by_style": {split: dict(sorted(Counter(c.style for c in m).items()))
                                for split, m in by_split.items()},
        "judge": {**judge_identity, **judge_stats},
        "backends": identities,
        "offline_or_test_double": offline,
        "config": config.model_dump(mode="json"),
    }


def _write_catalog(config: SafetyPairsConfig, out: Path, paths: dict[str, Path], catalog: Any,
                   offline: list[str]) -> Path:
    """Catalog entries mapping the pair files as ``kind: preference`` sources."""
    import yaml

    licenses = sorted({catalog.source(s).license for s in config.sources})
    folder = out / "catalog" / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    note = (" Built with offline or test-double backends: not training data."
            if offline else "")
    for split, name in (("train", config.name), ("test", f"{config.name}_test")):
        digest = hashlib.sha256(paths[split].read_bytes()).hexdigest()[:12]
        entry = {
            "name": name, "version": digest,
            "license": licenses[0] if len(licenses) == 1 else "mixed",
            "domain": "safety", "origin": "synthetic", "task": "preference",
            "description": (f"Safety preference pairs ({split} split) from {', '.join(config.sources)}: "
                            "chosen = reference answers judged safe, rejected = target answers "
                            "judged unsafe." + note),
            "tags": ["safety", f"split_{split}", *(["offline_backend"] if offline else [])],
            # this command's own output, named by absolute path wherever --out is
            "location": {"path": str(paths[split].resolve()), "allow_outside_data_root": True},
            "mapping": {"kind": "preference", "prompt": "prompt", "chosen": "chosen",
                        "rejected": "rejected",
                        "meta": ["split", "topic", "style", "source", "source_row", "prompt_id",
                                 "rejected_categories"]},
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(entry, sort_keys=False), encoding="utf-8")
    return out / "catalog"

