"""The release's dataset card (README.md) in Hugging Face format, from its manifest.

The card's YAML makes the release folder a Hub dataset: ``configs`` (one ``default``),
``dataset_info`` (features, images as ``Image``, split sizes), ``language``,
``pretty_name`` and ``source_datasets``, so ``datasets.load_dataset(<release>)`` reads it
as it is. Every text that comes from a recipe, a catalog or the data is untrusted: it is
escaped for markdown and HTML (:func:`escape`) before it enters the card's body, and it
enters the YAML only through ``yaml.safe_dump``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from curate.errors import ConfigError
from curate.read.views import Budget

_TASKS = {"text": "text-generation", "image_text": "visual-question-answering",
          "preference": "text-generation"}


OFFLINE_WARNING = (
    "> **Warning:** the `synthetic` share of this release was written by curate's offline "
    "template backend (`curate-offline-template`): deterministic template text made for "
    "tests and demos, not by a language model. It is not training data; rebuild with "
    "`synth.cot.generator.backend: vllm` or `openai` for real chain-of-thought data."
)


_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")
_LINE_START = re.compile(r"^([#+=-])")  # a heading, list item, rule or `---` block
_ORDERED = re.compile(r"^(\d+)([.)])(?=\s|$)")  # an ordered list item
_PLAIN = re.compile(r"[\w.:/@+-]+")
_HUB_LABEL = re.compile(r"[a-z0-9][a-z0-9.+-]*")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_HUB_PAGE = re.compile(r"https?://huggingface\.co/datasets/([A-Za-z0-9][\w.-]*/[\w.-]+?)/?(?:[?#].*)?")


def escape(text: object) -> str:
    """``text`` as inert inline card text on one line: markdown's inline marks (links,
    images, emphasis, code, table pipes) are backslash-escaped and HTML is escaped, so a
    recipe, catalog or data string renders as the characters it holds."""
    line = " ".join(str(text).split())
    return html.escape(_MARKDOWN.sub(r"\\\1", line), quote=False)


def escape_paragraphs(text: object) -> str:
    """Untrusted prose (a recipe's description) as card paragraphs: each paragraph on one
    line, escaped inline (:func:`escape`) and at its start (no heading, rule, ``---``
    block, list or quote can begin)."""
    paragraphs = [escape(p) for p in re.split(r"\n\s*\n", str(text)) if p.strip()]
    return "\n\n".join(_ORDERED.sub(r"\1\\\2", _LINE_START.sub(r"\\\1", p)) for p in paragraphs)


def _code(text: object) -> str:
    """A name or id in backticks when it is plain characters, else escaped text."""
    value = str(text)
    return f"`{value}`" if _PLAIN.fullmatch(value) else escape(value)


def _hub_label(text: str) -> str:
    """A licence id or tag for the card's YAML (lower case); text that is no id becomes
    ``other`` (the card's tables show it as written, escaped)."""
    value = text.strip().lower()
    return value if _HUB_LABEL.fullmatch(value) else "other"


def hub_dataset(repo: str | None, homepage: str | None) -> str | None:
    """The Hub dataset a source comes from: its ``hf`` repository, or the dataset its
    homepage links to on huggingface.co; None for other sources."""
    if repo and _REPO_ID.fullmatch(repo) and not Path(repo).exists():
        return repo
    match = _HUB_PAGE.fullmatch(homepage or "")
    return match.group(1) if match else None


def _synthetic_note(synth: dict[str, Any]) -> str:
    generator = synth["generator"]
    rejected = ", ".join(f"{escape(r)}: {n:,}" for r, n in synth["rejected"].items()) or "none"
    return (f"Synthetic records: {synth['synthetic']:,} chain-of-thought rewrites of "
            f"{synth['rows']:,} parent records by {_code(generator['backend'])} model "
            f"{_code(generator['model'])} (revision {escape(generator['revision'] or 'unpinned')}), "
            f"each verified against its gold answer; parents rejected: {rejected}; "
            f"{synth['completion_tokens_per_row']:.1f} completion tokens per parent row.")


ITEMS_SHOWN = 5


def _items(items: list[str]) -> str:
    """A few item ids (``mmlu_medical:60``), then how many more: the card names the items
    a row matched and never quotes them."""
    shown = ", ".join(items[:ITEMS_SHOWN])
    return (shown + (f" and {len(items) - ITEMS_SHOWN:,} more" if len(items) > ITEMS_SHOWN else "")) or "-"


def _size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if rows < bound), "10M<n<100M")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def dataset_info(folder: str | Path, configs: Sequence[str]) -> list[dict[str, Any]]:
    """The card's ``dataset_info`` for the data files under ``folder``: each config's
    features (read from its parquet schema; ``images`` as a list of ``Image``) and its
    ``train`` split (rows, uncompressed bytes from the parquet metadata, file sizes)."""
    import datasets
    import pyarrow.parquet as pq
    from datasets.info import DatasetInfo, DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from huggingface_hub import DatasetCardData

    infos = {}
    for config in configs:
        files = sorted((Path(folder) / "data" / config).glob("*.parquet"))
        if not files:
            raise ConfigError(f"release config `{config}` has no data files under {folder}/data/{config}")
        metadata = [pq.ParquetFile(f).metadata for f in files]
        features = datasets.Features.from_arrow_schema(pq.read_schema(files[0]))
        if "images" in features:
            features["images"] = datasets.List(datasets.Image())
        size = sum(m.row_group(i).total_byte_size for m in metadata for i in range(m.num_row_groups))
        splits = SplitDict()
        splits.add(SplitInfo(name="train", num_bytes=size, num_examples=sum(m.num_rows for m in metadata)))
        infos[config] = DatasetInfo(features=features, splits=splits, config_name=config, dataset_size=size,
                                    download_size=sum(f.stat().st_size for f in files))
    data = DatasetCardData()
    DatasetInfosDict(infos).to_dataset_card_data(data)
    return list(data.to_dict()["dataset_info"])


def _languages(sources: dict[str, Any]) -> list[str]:
    return sorted({code for s in sources.values() for code in s.get("language", ["en"])}) or ["en"]


def render_card(manifest: dict[str, Any], configs: list[str],
                info: list[dict[str, Any]] | None = None) -> str:
    """The release's dataset card (Hugging Face format) from its manifest; ``info`` is
    the ``dataset_info`` of its data files (:func:`dataset_info`)."""
    rows = sum(c["rows"] for c in manifest["composition"])
    sources = manifest["sources_in_mix"]
    default = "text" if "text" in configs else configs[0] if configs else None
    hub = sorted({s["hub"] for s in sources.values() if s.get("hub")})
    front: dict[str, Any] = {
        "license": sorted({_hub_label(s["license"]) for s in sources.values()}) or ["unknown"],
        "language": _languages(sources),
        "pretty_name": f"{manifest['name']} {manifest['version']}",
        "task_categories": sorted({_TASKS[c] for c in configs}),
        "size_categories": [_size_category(rows)],
        **({"source_datasets": hub} if hub else {}),
        "tags": ["curate", *sorted({_hub_label(s["domain"]) for s in sources.values()})],
        "configs": [{"config_name": c, **({"default": True} if c == default else {}),
                     "data_files": [{"split": "train", "path": f"data/{c}/*.parquet"}]}
                    for c in configs],
        **({"dataset_info": info} if info else {}),
    }
    budget = manifest["budget"]
    synthetic = manifest.get("synthetic")
    parts = [
        "---\n" + yaml.safe_dump(front, sort_keys=False).strip() + "\n---",
        f"# {escape(manifest['name'])} {escape(manifest['version'])}",
        OFFLINE_WARNING if synthetic and synthetic["offline_backend"] else "",
        escape_paragraphs(manifest["recipe"]["resolved"].get("description") or ""),
        f"Built by curate {manifest['packages'].get('curate', '?')} from the recipe in "
        f"`manifest.json` with seed {manifest['seed']}. Loss tokens are counted with "
        f"{budget['counting']}.",
        "## Composition",
        _table(["category", "target", "realised", "loss tokens", "rows", "of rows kept"], [
            [c["category"], "-" if c["target"] is None else f"{c['target']:.1%}",
             f"{c['realised']:.2%}", f"{c['loss_tokens']:,}", f"{c['rows']:,}",
             "-" if c.get("kept_rows") is None else f"{c['kept_rows']:,}"]
            for c in manifest["composition"]]),
        Budget.from_json(budget).binding(_code) or "",
        _synthetic_note(synthetic) if synthetic else "",
        "## Modality",
        "Text-only records, image-text records, and grounding records (image-text with "
        "bounding boxes):",
        _table(["modality", "target", "loss tokens", "share of loss tokens", "rows", "share of rows"], [
            [name, f"{m['target']:.1%}" if m.get("target") is not None else "-", f"{m['loss_tokens']:,}",
             f"{m['loss_tokens_share']:.2%}", f"{m['rows']:,}", f"{m['rows_share']:.2%}"]
            for name, m in manifest.get("modality", {}).items()]),
        "## Sources",
        _table(["source", "license", "domain", "origin", "rows", "loss tokens", "repeated rows"], [
            [name, s["license"], s["domain"], s["origin"], f"{s['rows']:,}", f"{s['loss_tokens']:,}",
             f"{s['repeated_rows']:,}"] for name, s in sorted(sources.items())]),
        "## Curation",
        _table(["stage", "in", "kept", "removed by reason"], [
            [s["stage"], f"{s['rows']:,}", f"{s['kept']:,}",
             ", ".join(f"{r}: {n:,}" for r, n in s["reasons"].items()) or "-"]
            for s in manifest["stages"]]),
        ("Switched off in this recipe (shown with the options a user would set): "
         + ", ".join(_code(name) for name in manifest["stages_switched_off"]) + ".")
        if manifest.get("stages_switched_off") else "",
        "## Contamination",
        _table(["source", "benchmark", "contaminated rows", "share", "source rejected", "items matched"], [
            [c["source"], c["benchmark"], f"{c['contaminated']:,}", f"{c['share']:.2%}",
             "yes" if c["source_rejected"] else "no", _items(c.get("items") or [])]
            for c in manifest["contamination"]])
        if manifest["contamination"] else
        "No training row matched a benchmark item"
        + (f" ({', '.join(escape(b) for b in manifest['benchmarks'])})." if manifest["benchmarks"] else
           " (no benchmark was checked)."),
        "Every ingested row that is not in the mix is in `removed.parquet` with its stage "
        "and reason.",
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _known(name: str) -> set[str]:
    """A list of metadata values known to ``datasets`` (``languages``, ``size_categories``)."""
    text = resources.files("datasets.utils.resources").joinpath(f"{name}.json").read_text("utf-8")
    return set(json.loads(text))


def validate_card(text: str, *, where: str = "README.md") -> Any:
    """Check a dataset card offline, as the Hub and ``datasets`` read it: its YAML parsed
    into ``huggingface_hub``'s ``DatasetCardData``, ``configs`` read by ``datasets``'
    ``MetadataConfigs`` (exactly one ``default``), ``dataset_info`` read by
    ``DatasetInfosDict`` with features for every config, and known ``language`` and
    ``size_categories`` values. Returns the ``DatasetCard``; a ConfigError lists what is wrong."""
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    try:
        card = DatasetCard(text, ignore_metadata_errors=False)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: the card's YAML block does not parse: "
                          f"{' '.join(str(exc).split())}") from None
    data: Any = card.data  # a DatasetCardData
    problems = []
    if not data.to_dict():
        problems.append("no YAML metadata block")
    try:
        configs = MetadataConfigs.from_dataset_card_data(data)
    except ValueError as exc:
        configs = MetadataConfigs()
        problems.append(f"`configs` is invalid: {' '.join(str(exc).split())[:200]}")
    if not configs:
        problems.append("no `configs`")
    elif sum(bool(c.get("default")) for c in configs.values()) != 1:
        problems.append("`configs` needs exactly one `default: true` config")
    if data.get("dataset_info") is None:
        problems.append("no `dataset_info` (features); rebuild the release with this curate version")
    else:
        try:
            infos = DatasetInfosDict.from_dataset_card_data(data)
        except (ValueError, TypeError, KeyError) as exc:
            infos = DatasetInfosDict()
            problems.append(f"`dataset_info` is invalid: {exc}")
        for name in configs:
            if name not in infos or infos[name].features is None:
                problems.append(f"`dataset_info` has no features for config `{name}`")
    languages, sizes = _known("languages"), _known("size_categories")
    problems += [f"unknown `language` {code!r}" for code in data.language or [] if code not in languages]
    problems += [f"unknown `size_categories` {size!r}" for size in _as_list(data.size_categories)
                 if size not in sizes]
    problems += [f"`license` {value!r} is not a Hub licence id" for value in _as_list(data.license)
                 if not _HUB_LABEL.fullmatch(str(value))]
    if not data.pretty_name:
        problems.append("no `pretty_name`")
    if problems:
        raise ConfigError(f"{where} is not a valid Hub dataset card: " + "; ".join(problems))
    return card


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]
