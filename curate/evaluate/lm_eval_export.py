"""Export a benchmark catalog entry as an lm-evaluation-harness task folder.

``export_lm_eval(benchmark, out)`` writes ``out/<task>/<task>.yaml`` and
``out/<task>/<task>.jsonl``, so ``lm_eval --include_path out --tasks <task>`` (or
``simple_evaluate(..., task_manager=TaskManager(include_path=out))``) runs on exactly the
items ``curate eval mcqa`` scores, with exactly its prompt:

- each line of the data file is one item: ``item`` (``<benchmark>:<row>``), ``id`` (record
  id), ``question``, ``choices``, ``answer`` (0-based), ``letters`` (A, B, ...), ``subject``
  and ``prompt``, the text ``curate.evaluate.prompts.build_prompt(item, "letters")`` gives;
- the YAML follows lm-eval's own MCQA tasks (``output_type: multiple_choice``, the
  ``json`` builder with ``dataset_kwargs.data_files``): ``doc_to_text: prompt``,
  ``doc_to_choice: letters``, ``doc_to_target: answer``, metrics ``acc`` and ``acc_norm``.
  lm-eval scores each letter after its default target delimiter, a space, the same
  continuation `` A`` curate's log-likelihood mode scores.

lm-eval resolves ``data_files`` against the working directory, so the YAML names the data
file by its absolute path: export again after moving the folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from curate.catalog import Catalog, resolve_data_root
from curate.errors import ConfigError
from curate.evaluate.items import read_benchmark
from curate.evaluate.prompts import TEMPLATES, build_prompt


@dataclass
class LmEvalTask:
    """An exported task: its name, folder, YAML and data file, and its item count."""

    name: str
    folder: Path
    config: Path
    data: Path
    items: int


def task_name(benchmark: str) -> str:
    """The lm-eval task name of a benchmark: ``curate_<name>`` (``.`` and ``-`` as ``_``)."""
    return "curate_" + re.sub(r"[^a-z0-9_]", "_", benchmark.lower())


def export_lm_eval(
    benchmark: str,
    out: str | os.PathLike[str],
    *,
    limit: int | None = None,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
) -> LmEvalTask:
    """Write the lm-eval task folder of ``benchmark`` (a catalog name) under ``out``."""
    catalog = Catalog.load(catalog_dirs)
    entry = catalog.benchmark(benchmark)
    items = read_benchmark(entry, data_root=resolve_data_root(data_root)).items(limit=limit)
    if not items:
        raise ConfigError(f"benchmark `{benchmark}` has no items with a gold answer to export")
    name = task_name(benchmark)
    folder = Path(out).expanduser().resolve() / name
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    template = TEMPLATES["letters"]
    with data.open("w", encoding="utf-8") as handle:
        for item in items:
            prompt = build_prompt(item, template)
            handle.write(json.dumps({
                "item": item.item, "id": item.record_id, "question": item.question,
                "choices": list(item.options), "answer": item.answer,
                "letters": list(prompt.letters), "subject": item.subject or "",
                "prompt": prompt.text,
            }, ensure_ascii=False) + "\n")
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",
        "doc_to_choice": "letters",
        "doc_to_target": "answer",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0, "curate_benchmark": entry.name,
                     "curate_benchmark_version": entry.version, "curate_template": template.name,
                     "curate_template_hash": template.hash, "items": len(items)},
    }
    path = folder / f"{name}.yaml"
    header = (f"# lm-eval task exported by `curate eval export-lm-eval {benchmark}`: the items and "
              "prompts of `curate eval mcqa`.\n")
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), "utf-8")
    return LmEvalTask(name=name, folder=folder, config=path, data=data, items=len(items))
