"""The data contract of training: a dataset in one of TRL's formats, checked before any
model loads.

Training reads a release (any of its configs: ``text``, ``image_text``, ``preference``)
or any dataset file or folder (jsonl, json, parquet, csv, or a ``save_to_disk`` folder).
SFT takes conversational ``messages``, ``prompt``/``completion`` or plain ``text``; DPO
takes ``prompt``/``chosen``/``rejected`` (conversational or plain strings). A dataset in
another shape fails with one line naming the wrong or missing column, so a typo is
caught in a second rather than after TRL has loaded a model and started mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from curate.errors import ConfigError, MissingDependencyError
from curate.read.releases import Release
from curate.store import ReleaseFolder

Task = Literal["sft", "dpo"]
Format = Literal["messages", "prompt_completion", "text", "preference"]
ROLES = ("system", "user", "assistant", "tool")
SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class TrainingData:
    """A checked training dataset and where it came from."""

    dataset: Any
    """The ``datasets.Dataset`` handed to TRL as it is (the training rows)."""
    where: str
    """The path given, for errors and the run record."""
    format: Format
    vision: bool
    """Rows carry images (an ``images`` or ``image`` column): TRL's vision-language path."""
    release: dict[str, Any] | None = None
    """For a release: name, version, config and ``manifest_sha256`` (of manifest.json)."""
    conversational: bool = False
    """Rows are lists of messages (a chat template renders them), not plain text."""
    eval_dataset: Any = None
    """The validation rows held out by ``hold_out`` (None: no validation split)."""
    held_out: dict[str, Any] | None = None
    """How the validation rows were drawn: ``share``, ``seed``, ``rows``."""

    def describe(self) -> dict[str, Any]:
        """What the run record says about the data."""
        return {"path": self.where, "format": self.format, "vision": self.vision,
                "conversational": self.conversational, "rows": len(self.dataset), "release": self.release,
                "eval": self.held_out}

    def hold_out(self, share: float, *, seed: int) -> TrainingData:
        """The same data with a seeded ``share`` of its rows (at least one) held out as the
        validation split (``datasets``' ``train_test_split``; the same rows for the same data
        and seed, whatever TRL's training seed)."""
        rows = len(self.dataset)
        if rows < 2:
            raise ConfigError(f"{self.where}: {rows} row(s) cannot be split into training and "
                              "validation rows")
        count = min(rows - 1, max(1, round(share * rows)))
        parts = self.dataset.train_test_split(test_size=count, seed=seed, shuffle=True)
        return replace(self, dataset=parts["train"], eval_dataset=parts["test"],
                       held_out={"share": share, "seed": seed, "rows": count})


def read_training_data(path: str | Path, *, task: Task, config: str | None = None) -> TrainingData:
    """Load and check the dataset at ``path`` for ``task``. For a release, ``config``
    picks the part (default: ``text`` for SFT, else ``image_text``; ``preference`` for
    DPO); for any other dataset, ``config`` is an error."""
    root = Path(path)
    if ReleaseFolder(root).manifest.is_file():
        dataset, release = _release_part(Release.open(root), task, config)
    else:
        if config is not None:
            raise ConfigError(f"{root}: `--release-config {config}` applies to a release (a folder with "
                              "manifest.json); this is a plain dataset")
        dataset, release = _plain_dataset(root), None
    where = str(root)
    fmt = check_format(dataset, task, where=where)
    columns = set(dataset.column_names)
    first = {"messages": "messages", "preference": "prompt", "prompt_completion": "prompt"}.get(fmt)
    conversational = first is not None and _text_or_messages(dataset, first, where) == "messages"
    return TrainingData(dataset, where, fmt, bool(columns & {"images", "image"}), release, conversational)


def _release_part(release: Release, task: Task, config: str | None) -> tuple[Any, dict[str, Any]]:
    root = release.path
    parts = release.dataset()
    if config is None:
        wanted = ["preference"] if task == "dpo" else ["text", "image_text"]
        config = next((c for c in wanted if c in parts), wanted[0])
    if config not in parts:
        raise ConfigError(f"{root}: the release has no `{config}` data (it has "
                          f"{', '.join(f'`{c}`' for c in parts) or 'none'}); pick one with --release-config")
    described = {"name": release.name, "version": release.version, "config": config,
                 "manifest_sha256": release.digest}
    return parts[config], described


def _plain_dataset(root: Path) -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("datasets", "ml") from None
    if not root.exists():
        raise ConfigError(f"{root}: no such file or folder (give a release folder, a jsonl/json/parquet/"
                          "csv file or folder, or a `save_to_disk` folder)")
    if root.is_dir() and ((root / "dataset_info.json").exists() or (root / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(root))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise ConfigError(f"{root}: a DatasetDict without a `train` split (has {', '.join(loaded)})")
            loaded = loaded["train"]
        return loaded
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES)
    kinds = {SUFFIXES.get(p.suffix) for p in files}
    if not files or None in kinds or len(kinds) != 1:
        raise ConfigError(f"{root}: give one kind of data file ({', '.join(SUFFIXES)}); found "
                          f"{', '.join(sorted({p.suffix or p.name for p in files})) or 'none'}")
    return datasets.load_dataset(kinds.pop(), data_files=[str(p) for p in files], split="train")


# -- the format check ------------------------------------------------------------------------


def check_format(dataset: Any, task: Task, *, where: str) -> Format:
    """The TRL format of ``dataset`` for ``task``, or a one-line ConfigError naming the
    missing or wrong column (and the row, for a bad message)."""
    columns = list(dataset.column_names)
    found = f"(columns: {', '.join(f'`{c}`' for c in columns)})"
    if task == "dpo":
        missing = [c for c in ("prompt", "chosen", "rejected") if c not in columns]
        if missing:
            raise ConfigError(f"{where}: DPO needs `prompt`, `chosen` and `rejected` columns; "
                              f"`{missing[0]}` is missing {found}")
        shapes = {c: _text_or_messages(dataset, c, where) for c in ("prompt", "chosen", "rejected")}
        if len(set(shapes.values())) != 1:
            raise ConfigError(f"{where}: `prompt`, `chosen` and `rejected` must all be text or all be "
                              f"lists of messages; got {', '.join(f'`{c}` {s}' for c, s in shapes.items())}")
        if shapes["chosen"] == "messages":
            for column in ("chosen", "rejected"):
                _check_messages(dataset, column, where, need_assistant=True)
        return "preference"
    if "messages" in columns:
        if _text_or_messages(dataset, "messages", where) != "messages":
            raise ConfigError(f"{where}: `messages` must be a list of {{role, content}} turns, not text")
        _check_messages(dataset, "messages", where, need_assistant=True)
        return "messages"
    if "prompt" in columns or "completion" in columns:
        missing = [c for c in ("prompt", "completion") if c not in columns]
        if missing:
            raise ConfigError(f"{where}: SFT on prompt-completion data needs `prompt` and `completion`; "
                              f"`{missing[0]}` is missing {found}")
        shapes = {c: _text_or_messages(dataset, c, where) for c in ("prompt", "completion")}
        if len(set(shapes.values())) != 1:
            raise ConfigError(f"{where}: `prompt` and `completion` must both be text or both be lists of "
                              f"messages; got `prompt` {shapes['prompt']}, "
                              f"`completion` {shapes['completion']}")
        return "prompt_completion"
    if "text" in columns:
        if _text_or_messages(dataset, "text", where) != "text":
            raise ConfigError(f"{where}: `text` must hold strings")
        return "text"
    raise ConfigError(f"{where}: SFT needs a `messages` column (conversational), `prompt` and "
                      f"`completion` columns, or a `text` column; none is there {found}")


def _text_or_messages(dataset: Any, column: str, where: str) -> str:
    """`text` or `messages` by the column's Arrow type; anything else is an error."""
    import pyarrow as pa

    kind = dataset.data.schema.field(column).type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    item = kind.value_type if pa.types.is_list(kind) or pa.types.is_large_list(kind) else None
    if item is not None and pa.types.is_struct(item) and {"role", "content"} <= {f.name for f in item}:
        return "messages"
    raise ConfigError(f"{where}: `{column}` holds {kind}, not text or a list of {{role, content}} messages")


def _check_messages(dataset: Any, column: str, where: str, *, need_assistant: bool) -> None:
    """Every turn has a known role; every row has an assistant turn (what TRL trains on)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    turns = dataset.data.column(column).combine_chunks()
    if isinstance(turns, pa.ChunkedArray):  # empty tables stay chunked
        turns = turns.chunk(0) if turns.num_chunks else pa.array([], turns.type)
    roles = pc.struct_field(turns.flatten(), "role")
    owners = pc.list_parent_indices(turns)
    known = pc.is_in(roles, value_set=pa.array(ROLES))
    bad = pc.indices_nonzero(pc.invert(pc.fill_null(known, False)))
    if len(bad):
        at = bad[0].as_py()
        raise ConfigError(f"{where}: row {owners[at].as_py()}: `{column}` has a turn with role "
                          f"`{roles[at].as_py()}`; roles are {', '.join(ROLES)}")
    if need_assistant:
        with_answer = set(pc.filter(owners, pc.equal(roles, "assistant")).to_pylist())
        empty = next((row for row in range(len(turns)) if row not in with_answer), None)
        if empty is not None:
            raise ConfigError(f"{where}: row {empty}: `{column}` has no assistant turn, so it has nothing "
                              "to train on")
