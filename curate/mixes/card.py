"""The release's dataset card (README.md) in Hugging Face format, from its manifest."""

from __future__ import annotations

from typing import Any

import yaml

_TASKS = {"text": "text-generation", "image_text": "visual-question-answering",
          "preference": "text-generation"}


OFFLINE_WARNING = (
    "> **Warning:** the `synthetic` share of this release was written by curate's offline "
    "template backend (`curate-offline-template`): deterministic template text made for "
    "tests and demos, not by a language model. It is not training data; rebuild with "
    "`synth.cot.generator.backend: vllm` or `openai` for real chain-of-thought data."
)


def _synthetic_note(synth: dict[str, Any]) -> str:
    generator = synth["generator"]
    rejected = ", ".join(f"{r}: {n:,}" for r, n in synth["rejected"].items()) or "none"
    return (f"Synthetic records: {synth['synthetic']:,} chain-of-thought rewrites of "
            f"{synth['rows']:,} parent records by `{generator['backend']}` model "
            f"`{generator['model']}` (revision {generator['revision'] or 'unpinned'}), each verified "
            f"against its gold answer; parents rejected: {rejected}; "
            f"{synth['completion_tokens_per_row']:.1f} completion tokens per parent row.")


def _size_category(rows: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if rows < bound), "10M<n<100M")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(manifest: dict[str, Any], configs: list[str]) -> str:
    """The release's dataset card (Hugging Face format) from its manifest."""
    rows = sum(c["rows"] for c in manifest["composition"])
    sources = manifest["sources_in_mix"]
    front = {
        "license": sorted({s["license"].lower() for s in sources.values()}) or ["unknown"],
        "task_categories": sorted({_TASKS[c] for c in configs}),
        "size_categories": [_size_category(rows)],
        "tags": ["curate", *sorted({s["domain"] for s in sources.values()})],
        "configs": [{"config_name": c, "data_files": [{"split": "train", "path": f"data/{c}/*.parquet"}]}
                    for c in configs],
    }
    budget = manifest["budget"]
    synthetic = manifest.get("synthetic")
    parts = [
        "---\n" + yaml.safe_dump(front, sort_keys=False).strip() + "\n---",
        f"# {manifest['name']} {manifest['version']}",
        OFFLINE_WARNING if synthetic and synthetic["offline_backend"] else "",
        manifest["recipe"]["resolved"].get("description") or "",
        f"Built by curate {manifest['packages'].get('curate', '?')} from the recipe in "
        f"`manifest.json` with seed {manifest['seed']}. Loss tokens are counted with "
        f"{budget['counting']}.",
        "## Composition",
        _table(["category", "target", "realised", "loss tokens", "rows"], [
            [c["category"], "-" if c["target"] is None else f"{c['target']:.1%}",
             f"{c['realised']:.2%}", f"{c['loss_tokens']:,}", f"{c['rows']:,}"]
            for c in manifest["composition"]]),
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
         + ", ".join(f"`{name}`" for name in manifest["stages_switched_off"]) + ".")
        if manifest.get("stages_switched_off") else "",
        "## Contamination",
        _table(["source", "benchmark", "contaminated rows", "share", "source rejected"], [
            [c["source"], c["benchmark"], f"{c['contaminated']:,}", f"{c['share']:.2%}",
             "yes" if c["source_rejected"] else "no"] for c in manifest["contamination"]])
        if manifest["contamination"] else
        "No training row matched a benchmark item"
        + (f" ({', '.join(manifest['benchmarks'])})." if manifest["benchmarks"] else
           " (no benchmark was checked)."),
        "Every ingested row that is not in the mix is in `removed.parquet` with its stage "
        "and reason.",
    ]
    return "\n\n".join(p for p in parts if p) + "\n"
