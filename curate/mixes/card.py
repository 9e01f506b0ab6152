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
from curate.store import ReleaseFolder

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


EXAMPLES_SHOWN = 2
"""Example rows per config on the card."""
EXAMPLE_CHARS = 400
"""Characters of a turn an example shows."""


def example_rows(folder: str | Path, configs: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The first ``EXAMPLES_SHOWN`` rows of each config's first data file under ``folder``
    (the release's seeded order), without image bytes: the card's example rows. They are
    rows the stages kept, so decontamination checked each of them."""
    import pyarrow.parquet as pq

    examples: dict[str, list[dict[str, Any]]] = {}
    for config in configs:
        files = sorted((Path(folder) / "data" / config).glob("*.parquet"))
        if not files:
            continue
        table = pq.ParquetFile(files[0]).read_row_group(0).slice(0, EXAMPLES_SHOWN)
        images = (table.column("images").to_pylist() if "images" in table.column_names
                  else [None] * table.num_rows)
        rows = [{**row, "images": len(found or [])} for row, found in zip(
            table.drop_columns([c for c in ("images",) if c in table.column_names]).to_pylist(), images,
            strict=True)]
        examples[config] = rows
    return examples


def _turns(turns: Any) -> list[list[str]]:
    """(role, content) rows of a conversation (or a bare answer), contents clipped."""
    if isinstance(turns, str):
        turns = [{"role": "assistant", "content": turns}]
    out = []
    for turn in turns or []:
        text = " ".join(str(turn.get("content") or "").split())
        out.append([turn.get("role") or "-", text if len(text) <= EXAMPLE_CHARS
                    else text[: EXAMPLE_CHARS - 1] + "…"])
    return out


def _examples(examples: dict[str, list[dict[str, Any]]]) -> str:
    """The card's example rows: per config, each row's turns as a role / content table."""
    blocks = []
    for config, rows in examples.items():
        for n, row in enumerate(rows, 1):
            count = row.get("images") or 0
            head = (f"**{_code(config)}**, row {n} (source {_code(row.get('source') or '-')}, category "
                    f"{_code(row.get('category') or '-')}"
                    + (f", {count} image{'s' if count != 1 else ''}" if count else "") + "):")
            if config == "preference":
                table = _table(["part", "role", "content"], [
                    [part, *turn] for part in ("prompt", "chosen", "rejected")
                    for turn in _turns(row.get(part))])
            else:
                table = _table(["role", "content"], _turns(row.get("messages")))
            blocks.append(head + "\n\n" + table)
    return "\n\n".join(blocks)


_LOADERS = {"text": "TRL's conversational format: SFTTrainer(..., train_dataset=text)",
            "image_text": "images decoded: SFTTrainer(..., train_dataset=image_text), a vision model",
            "preference": "TRL's preference format: DPOTrainer(..., train_dataset=preference)"}


def _loading(name: str, configs: Sequence[str]) -> str:
    """A snippet that loads each config with ``datasets``, and what TRL trainer takes it."""
    lines = ["```python", "from datasets import load_dataset", "",
             f'REPO = "<owner>/{name}"  # this dataset on the Hub, or the path of the release folder']
    lines += [f'{config} = load_dataset(REPO, "{config}", split="train")  # {_LOADERS[config]}'
              for config in configs]
    return "\n".join([*lines, "```"])


def _fenced(text: str, info: str = "") -> str:
    """``text`` as a fenced code block whose fence no backtick run inside can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.strip()}\n{fence}"


def _uses(manifest: dict[str, Any], configs: Sequence[str]) -> str:
    card = manifest["recipe"]["resolved"].get("card") or {}
    default = {"text": "Supervised fine-tuning of language models on conversations (TRL's "
                       "conversational format).",
               "image_text": "Fine-tuning vision-language models on image-text conversations.",
               "preference": "Preference tuning (DPO) of language models."}
    uses = [escape(u) for u in card.get("uses") or [default[c] for c in configs]]
    uses.append("Studying data curation: every ingested row that is not in the mix is in "
                "`removed.parquet` with the stage and reason that removed it.")
    out = [escape(o) for o in card.get("out_of_scope") or []]
    domains = {s["domain"] for s in manifest["sources_in_mix"].values()}
    if "medical" in domains:
        out.append("Not for clinical use: the answers are not medical advice, and a model trained on "
                   "this data must not inform the diagnosis or treatment of patients without clinical "
                   "validation and oversight.")
    checked = sorted(manifest.get("benchmarks") or {})
    out.append("Measuring a model on a benchmark not listed under Contamination"
               + (f" ({', '.join(escape(b) for b in checked)})" if checked else "")
               + ": the release was not checked against it.")
    return ("### Direct use\n\n" + "\n".join(f"- {u}" for u in uses)
            + "\n\n### Out-of-scope use\n\n" + "\n".join(f"- {o}" for o in out))


def _personal_data(manifest: dict[str, Any]) -> str:
    """What curate did about personal data: which stage rewrote what, and what it did not do."""
    clean = next((s["options"] for s in manifest["stages"] if s["stage"].startswith("clean")), None)
    removed = [what for option, what in (("remove_emails", "e-mail addresses"), ("remove_urls", "URLs"))
               if clean and clean.get(option)]
    did = (f"The `clean` stage deleted {' and '.join(removed)} from every turn." if removed else
           "No stage removed e-mail addresses or URLs (`clean`'s `remove_emails` and `remove_urls` "
           "are off)." if clean is not None else
           "No `clean` stage ran: no e-mail address or URL was removed.")
    medical = any(s["domain"] == "medical" for s in manifest["sources_in_mix"].values())
    return (f"{did} No de-identification stage ran: names, dates, phone numbers, record numbers and "
            "addresses in the sources' text are in this release as the sources published them."
            + (" Medical text can describe patients: check each source's own statement on consent and "
               "de-identification (its homepage, under Sources) before publishing a model trained on it."
               if medical else ""))


def _limitations(manifest: dict[str, Any]) -> str:
    card = manifest["recipe"]["resolved"].get("card") or {}
    items = [escape(x) for x in card.get("limitations") or []]
    if manifest.get("benchmarks"):
        items.append("Contamination was checked only against the benchmarks listed under Contamination, "
                     "with n-gram, containment, question-stem and (when configured) embedding matches; a "
                     "paraphrase below every threshold is not caught.")
    if manifest["budget"]["counting"].startswith("whitespace"):
        items.append("Loss tokens are estimated from word counts (no tokenizer was given): shares in "
                     "a model's own tokens differ.")
    if any(s["stage"].startswith("near_dedup") for s in manifest["stages"]):
        items.append("Near-duplicate removal compares whole records (MinHash over word shingles): records "
                     "that share long boilerplate can be removed although they state different facts.")
    synthetic = manifest.get("synthetic")
    if synthetic and synthetic.get("offline_backend"):
        items.append("The synthetic share is template text from curate's offline backend, not model output.")
    if manifest.get("stages_switched_off"):
        off = manifest["stages_switched_off"]
        items.append("Switched off in this recipe: " + ", ".join(_code(n) for n in off) + ".")
    items.append("The data keeps its sources' errors, gaps and biases; curation removes rows, it does not "
                 "correct them.")
    return "\n".join(f"- {item}" for item in items)


def _citations(sources: dict[str, Any]) -> str:
    blocks = []
    for name, source in sorted(sources.items()):
        if source.get("citation"):
            blocks.append(f"{_code(name)}:\n\n" + _fenced(str(source["citation"]), "bibtex"))
        elif source.get("origin") != "synthetic":
            blocks.append(f"{_code(name)}: no citation in its catalog entry"
                          + (f"; see {escape(source['homepage'])}." if source.get("homepage") else "."))
    return "\n\n".join(blocks)


CARD_SIZES = ("1B", "8B", "72B")
"""The model sizes the card's "Cost to train" table plans for."""
CARD_ACCELERATOR = "h100-sxm"


def training_cost(folder: str | Path, manifest: dict[str, Any], configs: Sequence[str]) -> str:
    """The card's "Cost to train" section: ``curate plan``'s estimate (``curate.plan``) of
    training each of ``CARD_SIZES`` on the release's data in ``folder`` with its defaults
    (3 epochs on H100s, the shipped table's figures), and the assumptions. Arithmetic on
    the data's words, so the same data give the same text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.plan.estimate import PlanConfig, fmt, model_size, parts_of, plan_parts, read_accelerators

    tables = {}
    for config in configs:
        files = sorted(Path(folder).glob(ReleaseFolder.data_pattern(config)))
        if files:
            names = pq.read_schema(files[0]).names
            columns = [c for c in ("messages", "prompt", "chosen", "rejected") if c in names]
            tables[config] = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    parts, assumptions = parts_of(tables, manifest)
    if not parts:
        return ""
    rows, plans = [], []
    for size in CARD_SIZES:
        plan = plan_parts(parts, model_size(size), PlanConfig(model=size, accelerator=CARD_ACCELERATOR))
        total = plan.total
        if total is None:
            return ""
        plans.append(plan)
        rows.append([size, f"{total.flops:.2g}", fmt(total.accelerator_hours, "h"),
                     fmt(total.cost_usd, "USD"), fmt(total.energy_kwh, "kWh"), fmt(total.emissions_kg, "kg")])
    defaults = PlanConfig(model=CARD_SIZES[0])
    entry = plans[0].accelerator_note
    price = read_accelerators()[CARD_ACCELERATOR].price_per_hour
    work = ", ".join(f"{p.method.upper()} on `{p.part}` ({p.tokens:,} tokens per epoch)" for p in parts)
    flops = "; ".join(f for method, f in (
        ("sft", "SFT 8·N FLOPs per token (forward, backward, the forward again: activation checkpointing, "
                "TRL's default)"),
        ("dpo", "DPO 10·N (the policy's on chosen and rejected, and the reference's forward)"))
        if any(p.method == method for p in parts))
    return "\n\n".join([
        "## Cost to train",
        "What training a model of each size on this release costs, estimated by `curate plan` "
        "(`curate plan RELEASE --model SIZE_OR_CONFIG --accelerator NAME` for another model, "
        "accelerator or price):",
        _table(["model", "FLOPs", "H100 time", "cost (USD)", "energy", "CO2e"], rows),
        f"Assumed: {work}; {defaults.epochs:g} epochs; {flops}, plus attention; full fine-tuning; "
        f"{CARD_ACCELERATOR} at {defaults.mfu:.0%} MFU and ${price:.2f} per hour ({escape(entry)}); PUE "
        f"{defaults.pue:g}; {defaults.grid_intensity:g} kg CO2e per kWh; a shape assumed for each "
        f"size (L = (N / (12·128²))^(1/3) layers, hidden size 128·L). "
        + escape(assumptions[0][0].upper() + assumptions[0][1:]) + "."])


def render_card(manifest: dict[str, Any], configs: list[str],
                info: list[dict[str, Any]] | None = None, *,
                examples: dict[str, list[dict[str, Any]]] | None = None, cost: str = "") -> str:
    """The release's dataset card (Hugging Face format) from its manifest; ``info`` is
    the ``dataset_info`` of its data files (:func:`dataset_info`), ``examples`` a few of
    its rows per config (:func:`example_rows`), ``cost`` its "Cost to train" section
    (:func:`training_cost`)."""
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
        f"`recipe.yaml` (resolved in `manifest.json`) with seed {manifest['seed']}. Loss tokens are "
        f"counted with {budget['counting']}.",
        "## Loading",
        _loading(manifest["name"], configs) if configs else "",
        "## Uses",
        _uses(manifest, configs),
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
        "## Example rows" if examples else "",
        _examples(examples) if examples else "",
        cost,
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
        "## Personal and sensitive information",
        _personal_data(manifest),
        "## Limitations",
        _limitations(manifest),
        "## Citations" if any(s.get("origin") != "synthetic" for s in sources.values()) else "",
        _citations(sources),
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
