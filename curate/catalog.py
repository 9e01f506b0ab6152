"""Catalogs: YAML entries for sources, benchmarks and mix recipes, validated strictly.

A catalog folder holds ``sources/``, ``benchmarks/`` and ``mixes/``; one YAML file per
entry. The shipped ``catalogs/`` folder is always loaded; ``--catalog DIR`` adds more.
An unknown key is an error that names the file, the key and the closest valid key.
Catalogs never import code.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from curate.config import Config, EngineConfig, load_model
from curate.errors import ConfigError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-]*$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$"
"""Versions (and run ids) become folder names: no separator, no `..`, never absolute."""
FORMATS = ("jsonl", "json", "csv", "parquet")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
                   ".parquet": "parquet"}
DATA_ROOT_ENV = "CURATE_DATA_ROOT"


# -- locations ------------------------------------------------------------------------


class HubLocation(Config):
    """A dataset on the Hugging Face hub, read through ``datasets.load_dataset``."""

    repo: str = Field(description="Hub repository id (or a local dataset folder).")
    config: str | None = Field(None, description="Dataset configuration (subset) name.")
    split: str = Field("train", description="Split to read.")
    revision: str = Field(description="Pinned commit sha or tag, so a catalog entry never drifts.")
    data_files: list[str] | None = Field(None, description="Files inside the repository, if needed.")


class Location(Config):
    """Where a source's rows live: local files (``path``, a glob) or the hub (``hf``)."""

    path: str | None = Field(
        None, description="File or glob, relative to the data root unless absolute; "
        "`catalog:<path>` is relative to the shipped catalogs folder."
    )
    hf: HubLocation | None = Field(None, description="A Hugging Face hub dataset.")
    format: Literal["jsonl", "json", "csv", "parquet"] | None = Field(
        None, description="File format; inferred from the file suffix when omitted."
    )
    key_field: str | None = Field(
        None,
        description="For a JSON object of records (keys are ids): the column that receives the key.",
    )
    allow_outside_data_root: bool = Field(
        False, description="Let `path` (absolute, or with `..`) and the image paths of its rows "
        "lie outside the data root; off, such a path is an error. Also settable on the entry.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> Location:
        if (self.path is None) == (self.hf is None):
            raise ValueError("give exactly one of `path` (local files) or `hf` (hub dataset)")
        if self.path is not None and self.format is None:
            if Path(self.path).suffix.lower() not in _SUFFIX_FORMATS:
                raise ValueError(
                    f"cannot infer the format of `{self.path}`; set `format` to one of "
                    + ", ".join(FORMATS)
                )
        return self

    @property
    def file_format(self) -> str:
        """The file format: as given, else from the path's suffix."""
        if self.format is not None:
            return self.format
        assert self.path is not None
        return _SUFFIX_FORMATS[Path(self.path).suffix.lower()]


# -- mappings: raw columns -> record fields ---------------------------------------------
# Values are column references: a column name, with `.field` for a struct field and
# `[i]` for a list element (``instances[0].output``).


class ChatMapping(Config):
    """A conversation: question/answer, instruction/input/output, or a messages column."""

    kind: Literal["chat"]
    question: str | None = Field(None, description="Column of the user turn (or the instruction).")
    context: str | None = Field(None, description="Column put before the user turn (text or list).")
    input: str | None = Field(None, description="Column appended to the user turn (an `input`).")
    answer: str | None = Field(
        None, description="Column of the assistant turn; omit it for a prompt-only source."
    )
    messages: str | None = Field(None, description="Column already holding [{role, content}, ...].")
    meta: list[str] = Field(default_factory=list, description="Columns kept in `meta` (JSON).")

    @model_validator(mode="after")
    def _one_shape(self) -> ChatMapping:
        turns = [self.question, self.context, self.input, self.answer]
        if self.messages is not None and any(t is not None for t in turns):
            raise ValueError("give either `messages` or `question`/`answer` columns, not both")
        if self.messages is None and self.question is None:
            raise ValueError("give `question` (with `answer`), or a `messages` column")
        return self


class McqaMapping(Config):
    """A multiple-choice question with its gold answer."""

    kind: Literal["mcqa"]
    question: str = Field(description="Column of the question stem.")
    context: str | None = Field(None, description="Column put before the question (text or list).")
    options: str | list[str] | None = Field(
        None,
        description="A column holding a list or a {label: text} object, or a list of columns.",
    )
    fixed_options: list[str] | None = Field(
        None, description="The same options for every row (e.g. [yes, no, maybe])."
    )
    answer: str | None = Field(
        None, description="Column of the gold answer; omit it for a set whose answers are hidden."
    )
    answer_format: Literal["index", "index1", "letter", "text"] | None = Field(
        None, description="`index` (0-based), `index1` (1-based, as CareQA's `cop`), `letter` (A, B, ...) "
        "or `text` (equal to one option)."
    )
    strip_labels: bool = Field(
        False, description="Options carry their label (`A. text`); strip it."
    )
    meta: list[str] = Field(default_factory=list, description="Columns kept in `meta` (JSON).")

    @model_validator(mode="after")
    def _one_options(self) -> McqaMapping:
        if (self.options is None) == (self.fixed_options is None):
            raise ValueError("give exactly one of `options` (columns) or `fixed_options` (a list)")
        if self.fixed_options is not None and len(self.fixed_options) < 2:
            raise ValueError("`fixed_options` needs at least two options")
        if (self.answer is None) != (self.answer_format is None):
            raise ValueError("give `answer` and `answer_format` together (or neither, for hidden answers)")
        return self


class PreferenceMapping(Config):
    """A prompt with a chosen and a rejected answer."""

    kind: Literal["preference"]
    prompt: str = Field(description="Column of the prompt.")
    chosen: str = Field(description="Column of the preferred answer.")
    rejected: str = Field(description="Column of the dispreferred answer.")
    meta: list[str] = Field(default_factory=list, description="Columns kept in `meta` (JSON).")


class ImageTextMapping(Config):
    """An image with a question about it and the answer."""

    kind: Literal["image_text"]
    image: str = Field(description="Column with the image: a file path or the image bytes.")
    question: str = Field(description="Column of the question.")
    answer: str = Field(description="Column of the answer.")
    image_root: str | None = Field(
        None,
        description="Folder image paths are relative to (relative to the data root); "
        "default: the folder of the data file.",
    )
    meta: list[str] = Field(default_factory=list, description="Columns kept in `meta` (JSON).")


Mapping = Annotated[
    ChatMapping | McqaMapping | PreferenceMapping | ImageTextMapping,
    Field(discriminator="kind"),
]


# -- entries --------------------------------------------------------------------------


class Source(Config):
    """A data source (or a benchmark): where its rows are and how they become records."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique name; the file is usually NAME.yaml.")
    version: str = Field(description="Version of this entry; bump it when the data or mapping changes.")
    license: str = Field(min_length=1, description="SPDX-like licence id (e.g. CC-BY-4.0).")
    domain: str = Field(description="Domain of the data, e.g. `medical` or `general`.")
    origin: Literal["real", "synthetic"] = Field("real", description="`real` or `synthetic`.")
    task: str = Field(description="Task, e.g. `qa`, `mcqa`, `dialogue`, `vqa`.")
    description: str | None = Field(None, description="One or two sentences for the dataset card.")
    homepage: str | None = Field(None, description="Where the data comes from.")
    language: list[Annotated[str, Field(pattern=r"^([a-z]{2,3}|code)$")]] = Field(
        default_factory=lambda: ["en"], min_length=1,
        description="Languages of the text, for the dataset card: ISO 639 codes (`en`, `fr`, "
        "`fil`) or `code`.",
    )
    tags: list[str] = Field(default_factory=list, description="Free tags usable in mix targets.")
    citation: str | None = Field(None, description=(
        "How to cite the data (a BibTeX entry or a reference), for the dataset card's citations."))
    location: Location
    mapping: Mapping

    @model_validator(mode="before")
    @classmethod
    def _entry_opt_in(cls, data: Any) -> Any:
        """``allow_outside_data_root: true`` at the top of the entry is the location's."""
        if isinstance(data, dict) and "allow_outside_data_root" in data:
            data = dict(data)
            flag = data.pop("allow_outside_data_root")
            if isinstance(data.get("location"), dict):
                data["location"] = {**data["location"], "allow_outside_data_root": flag}
        return data

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("version")
    @classmethod
    def _version_safe(cls, value: str) -> str:
        return check_path_part(value, "version")

    DESCRIPTIVE: ClassVar[frozenset[str]] = frozenset({"description", "homepage", "citation"})
    """Fields that describe the data for people (the dataset card) and change no record."""

    def ingest_identity(self) -> dict[str, Any]:
        """The entry as ingestion sees it: every field but the ``DESCRIPTIVE`` ones, so a
        new citation or description does not ingest the source again."""
        return self.model_dump(mode="json", exclude=set(self.DESCRIPTIVE))

    @property
    def allow_outside_data_root(self) -> bool:
        """Whether this entry may read files outside the data root (an explicit opt-in)."""
        return self.location.allow_outside_data_root

    def allowing_outside(self) -> Source:
        """This entry with the opt-in to read outside the data root set (a CLI flag)."""
        return self.model_copy(update={"location": self.location.model_copy(
            update={"allow_outside_data_root": True})})


class MixSpec(Config):
    """Target proportions and the budget of a mix."""

    targets: dict[str, float] = Field(
        description="Share of the budget per category: `synthetic` for synthetic records, "
        "else the record's domain (e.g. medical: 0.6, general: 0.4). Shares add up to 1.",
    )
    modality: dict[Literal["text", "image", "grounding"], float] | None = Field(
        None, description="Optional shares per modality (text: no image; image: image_text "
        "records; grounding: image_text records with bounding boxes); add up to 1.",
    )
    unit: Literal["loss_tokens", "rows"] = Field(
        "loss_tokens", description="What the shares and the budget count.",
    )
    budget: int | None = Field(
        None, gt=0, description="Size of the mix in `unit`s; unset: the largest the data allows.",
    )
    tokenizer: str | None = Field(
        None, description="Tokenizer (hub name or local path) that counts loss tokens; unset: a "
        "whitespace estimate (1.3 tokens per word), which the manifest says.",
    )
    tokenizer_revision: str | None = Field(
        None, description="Hub revision (commit sha, tag or branch) of `tokenizer`.",
    )
    max_length: int | None = Field(
        None, gt=0, description="Training sequence length in tokens (TRL's `max_length`): tokens "
        "past it are not trained on, so they are not counted; needs `tokenizer`.",
    )
    temperature: float = Field(
        1.0, gt=0, description="Sampling across sources of a category: weight ~ size**(1/T).",
    )
    weights: dict[str, float] = Field(
        default_factory=dict, description="Extra weight per source inside its category.",
    )
    caps: dict[str, int] = Field(default_factory=dict, description="Most rows taken per source.")
    allow_repeats: bool = Field(
        False, description="Let a category repeat records when it has too few (counted).",
    )
    tolerance: float = Field(
        0.005, gt=0, lt=0.5, description="How far a realised share may be from its target.",
    )

    @field_validator("targets", "modality")
    @classmethod
    def _shares(cls, shares: dict[str, float] | None) -> dict[str, float] | None:
        if shares is None:
            return None
        if any(v < 0 for v in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
            raise ValueError(f"shares must be >= 0 and add up to 1, got {sum(shares.values()):g}")
        return shares

    @model_validator(mode="after")
    def _length_needs_tokenizer(self) -> MixSpec:
        if self.max_length is not None and self.tokenizer is None:
            raise ValueError("`max_length` needs a `tokenizer` (the whitespace estimate cannot cut at a "
                             "token length): set `mix.tokenizer` or remove `mix.max_length`")
        return self


class CardSpec(Config):
    """What a release's dataset card says that curate cannot know: the uses the data is
    meant for, the uses it is not, and limitations beyond those curate states itself."""

    uses: list[str] = Field(default_factory=list, description=(
        "Intended uses, one sentence each [default: fine-tuning language models on the release's "
        "formats, and studying curation]."))
    out_of_scope: list[str] = Field(default_factory=list, description=(
        "Uses the data is not fit for, one sentence each; a medical release always adds that it is "
        "not for clinical use."))
    limitations: list[str] = Field(default_factory=list, description=(
        "Known limitations, one sentence each, listed before the ones curate states (contamination "
        "checked only against the named benchmarks, estimated token counts, offline synthetic text)."))


class Recipe(Config):
    """A mix recipe: which sources and benchmarks, which stages, the mix and the seed."""

    name: str = Field(pattern=NAME_PATTERN, description="Recipe name; runs and releases use it.")
    version: str = Field(description="Release version this recipe produces.")
    description: str | None = Field(None, description="What the mix is for.")
    seed: int = Field(0, description="Seed for every random choice.")
    sources: list[str] = Field(min_length=1, description="Source names from the catalogs.")
    benchmarks: list[str] = Field(
        default_factory=list, description="Benchmark names (decontamination and evaluation)."
    )
    stages: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Stages to run, in order: stage name -> its options ({} for defaults).",
    )
    synth: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Synthetic data made from the kept records, in order: producer name -> its "
        "options (`cot`: synth_cot_v1's generator, sources, attempts, ...).",
    )
    mix: MixSpec | None = Field(
        None, description="Targets and budget; unset: every kept record goes to the release.",
    )
    card: CardSpec = Field(default_factory=CardSpec, description=(
        "The dataset card's intended and out-of-scope uses and limitations."))
    engine: EngineConfig | None = Field(None, description=(
        "Where the stages run (`engine: ray`, `ray_address`, `workers`); the command line's "
        "--engine options win. Not part of the release: every engine writes the same one."))

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("version")
    @classmethod
    def _version_safe(cls, value: str) -> str:
        return check_path_part(value, "version")

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_name(cls, value: Any) -> Any:
        return {"engine": value} if isinstance(value, str) else value

    @field_validator("stages", "synth", mode="before")
    @classmethod
    def _empty_options(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value

    @property
    def switched_off(self) -> list[str]:
        """The stages the recipe shows with ``enabled: false`` (checked, not run)."""
        return switched_off(self.stages)


def check_path_part(value: str, what: str) -> str:
    """``value`` when it is safe as one folder name (a name, version or run id): letters,
    digits and ``_ . + -``, starting with a letter or digit, no ``..``; else a ValueError."""
    if not re.fullmatch(VERSION_PATTERN, value) or ".." in value:
        raise ValueError(
            f"{what} `{value}` is not a safe folder name: use letters, digits and `_ . + -` "
            "(starting with a letter or digit, no `..`, no `/`)")
    return value


def confined(path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str) -> Path:
    """``path`` resolved (symlinks followed), checked to lie under ``root`` (resolved too);
    a ConfigError naming ``what`` and both folders otherwise."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    if not resolved.is_relative_to(base):
        raise ConfigError(f"{what} {path} resolves to {resolved}, outside {base}; refused")
    return resolved


def switched_off(stages: dict[str, dict[str, Any]]) -> list[str]:
    """The stages of a ``stages`` mapping shown with ``enabled: false``."""
    return [name for name, options in stages.items() if options.get("enabled", True) is False]


# -- where things are -----------------------------------------------------------------


def project_root() -> Path:
    """The folder that holds the shipped ``catalogs/`` (the source checkout)."""
    return Path(__file__).resolve().parent.parent


def shipped_catalog_dir() -> Path:
    """The catalogs that ship with curate: inside the wheel, or in the source checkout."""
    packaged = Path(__file__).resolve().parent / "_catalogs"
    return packaged if packaged.is_dir() else project_root() / "catalogs"


def resolve_data_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder relative catalog paths start from.

    ``override`` (``--data-root``) first, then ``$CURATE_DATA_ROOT``, then
    ``../shared/data`` beside the project root.
    """
    if override is not None:
        return Path(override).expanduser().resolve()
    if os.environ.get(DATA_ROOT_ENV):
        return Path(os.environ[DATA_ROOT_ENV]).expanduser().resolve()
    return (project_root().parent / "shared" / "data").resolve()


CATALOG_PREFIX = "catalog:"
"""A location path starting with this is relative to the shipped catalogs folder
(``catalog:data/x.jsonl``): for small derived files that ship with the catalogs."""


def resolve_files(location: Location, data_root: Path, *, entry: str | None = None) -> list[Path]:
    """The local files a location names, sorted; a ConfigError when there are none.

    Each file is resolved (symlinks followed) and must lie under the data root (under the
    shipped catalogs folder for a ``catalog:`` path), unless the location opts in with
    ``allow_outside_data_root``: an absolute path or a ``..`` that leaves the root, and a
    symlink that points out of it, are refused with an error naming ``entry`` and the path.
    """
    assert location.path is not None
    who = f"`{entry}`: " if entry else ""
    if location.path.startswith(CATALOG_PREFIX):  # small derived files that ship with the catalogs
        root = shipped_catalog_dir()
        pattern = root / location.path.removeprefix(CATALOG_PREFIX)
        where = f"the shipped catalogs folder {root}"
    else:
        root = data_root
        pattern = Path(location.path).expanduser()
        where = f"the data root {data_root}"
        if pattern.is_absolute() and not location.allow_outside_data_root:
            base = Path(data_root).resolve()
            if not (pattern.resolve().is_relative_to(base) or pattern.is_relative_to(data_root)):
                raise ConfigError(
                    f"{who}`location.path: {location.path}` is absolute and outside {where}; "
                    "give a path relative to the data root, or opt in with "
                    "`allow_outside_data_root: true` on the entry (or --allow-outside-data-root of "
                    "`curate ingest` and `curate build-mix`)")
    if not pattern.is_absolute():
        pattern = root / pattern
        lexical = Path(os.path.normpath(pattern))
        if not location.allow_outside_data_root and not lexical.is_relative_to(os.path.normpath(root)):
            raise ConfigError(
                f"{who}`location.path: {location.path}` leads to {lexical}, outside {where}; "
                "refused: keep the data under the root, or opt in with "
                "`allow_outside_data_root: true` on the entry (or --allow-outside-data-root of "
                    "`curate ingest` and `curate build-mix`)")
    if any(ch in str(pattern) for ch in "*?["):
        anchor = Path(pattern.anchor)
        files = sorted(p for p in anchor.glob(str(pattern.relative_to(anchor))) if p.is_file())
    else:
        files = [pattern] if pattern.is_file() else []
    if not files:
        raise ConfigError(
            f"{who}no file matches `{location.path}` under the data root {data_root}; "
            f"check the path, or set --data-root / ${DATA_ROOT_ENV}"
        )
    if not location.allow_outside_data_root:
        base = Path(root).resolve()
        for file in files:
            if not file.resolve().is_relative_to(base):
                raise ConfigError(
                    f"{who}`location.path: {location.path}` reaches {file} -> {file.resolve()}, "
                    f"outside {where} (a `..` or a symlink that leaves it); refused: keep the "
                    "data under the root, or opt in with `allow_outside_data_root: true` on "
                    "the entry (or --allow-outside-data-root of `curate ingest` and `curate build-mix`)")
    return files


def portable_path(path: Path, data_root: Path) -> str | None:
    """``path`` as a catalog entry writes it, the same on any machine: relative to the data
    root, or ``catalog:<path>`` under the shipped catalogs folder; None for a file outside
    both (an entry that opted in with ``allow_outside_data_root``)."""
    for root, prefix in ((Path(data_root), ""), (shipped_catalog_dir(), CATALOG_PREFIX)):
        for candidate, base in ((path, root), (path.resolve(), root.resolve())):
            if candidate.is_relative_to(base):
                return prefix + candidate.relative_to(base).as_posix()
    return None


# -- the catalog ----------------------------------------------------------------------


class CatalogConfig(Config):
    """Where catalog entries and their data are: the options of every command that reads
    catalogs (functions take the same names as keyword arguments)."""

    catalog_dirs: list[str] = Field(default_factory=list, description=(
        "A catalog folder to add to the shipped catalogs/ (repeatable)."))
    data_root: str | None = Field(None, description=(
        "Folder relative data paths start from [default: $CURATE_DATA_ROOT, else ../shared/data]."))
    allow_outside_data_root: bool = Field(False, description=(
        "Let catalog paths (and image paths in rows) lie outside the data root."))


_SECTIONS: dict[str, type[Source] | type[Recipe]] = {
    "sources": Source, "benchmarks": Source, "mixes": Recipe}
_SINGULAR = {"sources": "source", "benchmarks": "benchmark", "mixes": "mix"}


@dataclass
class Catalog:
    """Every entry of the loaded catalog folders, by section and name."""

    dirs: list[Path]
    sources: dict[str, Source] = field(default_factory=dict)
    benchmarks: dict[str, Source] = field(default_factory=dict)
    mixes: dict[str, Recipe] = field(default_factory=dict)
    files: dict[tuple[str, str], Path] = field(default_factory=dict)

    @classmethod
    def load(cls, extra_dirs: Iterable[str | os.PathLike[str]] = (), *,
             allow_outside_data_root: bool = False) -> Catalog:
        """Load the shipped catalogs plus ``extra_dirs``; any invalid entry is an error.

        ``allow_outside_data_root`` (the CLI's ``--allow-outside-data-root``) sets that
        opt-in on every source and benchmark entry.
        """
        dirs = [shipped_catalog_dir(), *(Path(d).expanduser().resolve() for d in extra_dirs)]
        catalog = cls(dirs=dirs)
        for folder in dirs:
            if not folder.is_dir():
                raise ConfigError(f"catalog folder {folder} does not exist")
            for section, model in _SECTIONS.items():
                for path in sorted((folder / section).glob("*.y*ml")):
                    entry = load_model(model, path)
                    if allow_outside_data_root and isinstance(entry, Source):
                        entry = entry.allowing_outside()
                    catalog._add(section, entry, path)
        return catalog

    def to_json(self) -> dict[str, Any]:
        """Every entry by section and name, as its YAML would give it (``curate catalog ls --json``)."""
        return {"dirs": [str(d) for d in self.dirs],
                **{section: {name: entry.model_dump(mode="json", exclude_none=True)
                             for name, entry in getattr(self, section).items()} for section in _SECTIONS}}

    def _add(self, section: str, entry: Source | Recipe, path: Path) -> None:
        table: dict[str, Any] = getattr(self, section)
        if entry.name in table:
            raise ConfigError(
                f"{path}: {_SINGULAR[section]} `{entry.name}` is already defined in "
                f"{self.files[(section, entry.name)]}; rename one of them"
            )
        table[entry.name] = entry
        self.files[(section, entry.name)] = path

    def _get(self, section: str, name: str) -> Any:
        table: dict[str, Any] = getattr(self, section)
        if name not in table:
            close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.5)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            where = ", ".join(str(d) for d in self.dirs)
            raise ConfigError(f"unknown {_SINGULAR[section]} `{name}` in catalogs {where}{hint}")
        return table[name]

    def source(self, name: str) -> Source:
        """The source entry ``name``; a ConfigError with a suggestion when unknown."""
        return self._get("sources", name)

    def benchmark(self, name: str) -> Source:
        """The benchmark entry ``name``; a ConfigError with a suggestion when unknown."""
        return self._get("benchmarks", name)

    def recipe(self, name_or_path: str | os.PathLike[str]) -> Recipe:
        """A recipe by catalog name, or from a YAML file path; its names must resolve."""
        path = Path(name_or_path)
        if path.suffix in (".yaml", ".yml") or path.exists():
            recipe = load_model(Recipe, path)
            where = str(path)
        else:
            recipe = self._get("mixes", str(name_or_path))
            where = str(self.files[("mixes", recipe.name)])
        try:
            for name in recipe.sources:
                self.source(name)
            for name in recipe.benchmarks:
                self.benchmark(name)
            if recipe.mix is not None:
                for field_name in ("weights", "caps"):
                    for name in getattr(recipe.mix, field_name):
                        if name not in recipe.sources:
                            raise ConfigError(
                                f"`mix.{field_name}` names `{name}`, which is not in `sources`")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return recipe
