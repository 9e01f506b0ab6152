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

Few-shot (``num_fewshot`` k with ``fewshot_from``, another catalog benchmark such as a dev
split): the first k items of ``fewshot_from`` (with a gold answer, in file order) go into a
``fewshot`` split, and the YAML asks lm-eval for ``num_fewshot: k`` with its fixed
``first_n`` sampler, each shot rendered as ``prompt`` + `` `` + its letter and joined by a
blank line: the text ``build_prompt(item, "letters", examples=shots)`` gives, which every
test row also carries as ``prompt_fewshot`` (a test runs lm-eval and compares).

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
from typing import Any

import yaml

from curate.catalog import Catalog, resolve_data_root
from curate.errors import ConfigError
from curate.evaluate.items import Denominator, McqaItem, read_benchmark
from curate.evaluate.prompts import TEMPLATES, build_prompt


@dataclass
class LmEvalTask:
    """An exported task: its name, folder, YAML and data file, and its item count."""

    name: str
    folder: Path
    config: Path
    data: Path
    items: int
    denominator: Denominator
    """Rows read, items exported, rows dropped by reason (also in the YAML's metadata)."""

    def to_json(self) -> dict[str, Any]:
        """``curate eval export-lm-eval --json``."""
        return {"name": self.name, "folder": str(self.folder), "config": str(self.config),
                "data": str(self.data), "items": self.items, "denominator": self.denominator.to_json()}


def task_name(benchmark: str) -> str:
    """The lm-eval task name of a benchmark: ``curate_<name>`` (``.`` and ``-`` as ``_``)."""
    return "curate_" + re.sub(r"[^a-z0-9_]", "_", benchmark.lower())


def export_lm_eval(
    benchmark: str,
    out: str | os.PathLike[str],
    *,
    limit: int | None = None,
    allow_dropped: int = 0,
    num_fewshot: int = 0,
    fewshot_from: str | None = None,
    catalog_dirs: Iterable[str | os.PathLike[str]] = (),
    data_root: str | os.PathLike[str] | None = None,
) -> LmEvalTask:
    """Write the lm-eval task folder of ``benchmark`` (a catalog name) under ``out``; a
    benchmark with more than ``allow_dropped`` rows that cannot be scored is refused, as
    ``curate eval mcqa`` refuses it."""
    catalog = Catalog.load(catalog_dirs)
    entry = catalog.benchmark(benchmark)
    root = resolve_data_root(data_root)
    shots = _shots(catalog, benchmark, num_fewshot, fewshot_from, root)
    data = read_benchmark(entry, data_root=root)
    items = data.items(limit=limit)
    if not items:
        raise ConfigError(f"benchmark `{benchmark}` has no items with a gold answer to export")
    denominator = data.count(len(items))
    denominator.refuse(allow_dropped)
    name = task_name(benchmark)
    folder = Path(out).expanduser().resolve() / name
    folder.mkdir(parents=True, exist_ok=True)
    data_file = folder / f"{name}.jsonl"
    template = TEMPLATES["letters"]
    with data_file.open("w", encoding="utf-8") as handle:
        for item in items:
            prompt = build_prompt(item, template)
            row = {
                "item": item.item, "id": item.record_id, "question": item.question,
                "choices": list(item.options), "answer": item.answer,
                "letters": list(prompt.letters), "subject": item.subject or "",
                "prompt": prompt.text,
            }
            if shots:
                row["prompt_fewshot"] = build_prompt(item, template, examples=shots).text
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    splits = {"test": str(data_file)}
    if shots:
        shot_file = folder / f"{name}_fewshot.jsonl"
        with shot_file.open("w", encoding="utf-8") as handle:
            for shot in shots:
                prompt = build_prompt(shot, template)
                handle.write(json.dumps({"item": shot.item, "id": shot.record_id, "answer": shot.answer,
                                         "letters": list(prompt.letters), "prompt": prompt.text},
                                        ensure_ascii=False) + "\n")
        splits["fewshot"] = str(shot_file)
    config = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": splits},
        "test_split": "test",
        **({"fewshot_split": "fewshot", "num_fewshot": len(shots), "fewshot_delimiter": "\n\n",
            "target_delimiter": " ", "fewshot_config": {"sampler": "first_n"}} if shots else {}),
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
                     "curate_template_hash": template.hash, "items": len(items),
                     "curate_fewshot": [s.item for s in shots],
                     "curate_denominator": {k: v for k, v in denominator.to_json().items()
                                            if k != "dropped_items"}},
    }
    path = folder / f"{name}.yaml"
    header = (f"# lm-eval task exported by `curate eval export-lm-eval {benchmark}`: the items and "
              "prompts of `curate eval mcqa`.\n")
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), "utf-8")
    return LmEvalTask(name=name, folder=folder, config=path, data=data_file, items=len(items),
                      denominator=denominator)


def _shots(catalog: Catalog, benchmark: str, num_fewshot: int, fewshot_from: str | None,
           root: Path) -> list[McqaItem]:
    """The first ``num_fewshot`` answered items of ``fewshot_from``."""
    if num_fewshot == 0:
        return []
    if fewshot_from is None:
        raise ConfigError(f"--num-fewshot {num_fewshot}: name the benchmark the examples come from with "
                          "--fewshot-from (a dev split; never the benchmark itself)")
    if fewshot_from == benchmark:
        raise ConfigError(f"--fewshot-from {fewshot_from} is the exported benchmark: its examples would be "
                          "its own test items; take them from a dev split")
    shots = read_benchmark(catalog.benchmark(fewshot_from), data_root=root).items(limit=num_fewshot)
    if len(shots) < num_fewshot:
        raise ConfigError(f"--fewshot-from {fewshot_from}: {len(shots)} answered items, fewer than "
                          f"--num-fewshot {num_fewshot}")
    return shots
