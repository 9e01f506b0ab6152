"""Typed views of what runs and releases record as JSON.

A stage's ``stats.json``, a release's ``manifest.json``, the contamination report and
the synthesis stats are JSON documents on disk (their keys are the published format).
Code that shows or checks them reads these views instead of indexing the documents:
each view is built once, from the document, by ``from_json``, and gives the document
back, unchanged, with ``to_json`` (a view that keeps only some fields holds on to it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Budget:
    """What a mix was allocated in: the unit, the amount, how loss tokens were counted, and
    what bound the amount (``curate.mixes.allocate.Allocation.bound_by``; None in a
    manifest written before it was recorded)."""

    unit: str
    amount: int
    counting: str
    bound_by: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Budget:
        """The view of a manifest's ``budget``."""
        return cls(str(value["unit"]), int(value["amount"]), str(value["counting"]), value.get("bound_by"))

    def binding(self, code: Callable[[str], str] = lambda name: f"`{name}`") -> str | None:
        """What bound the budget, in one sentence (``release show``, the card, the report),
        names set by ``code`` (markdown backticks by default); None when the manifest does
        not say."""
        bound = self.bound_by or {}
        unit = self.unit.replace("_", " ")
        if bound.get("kind") == "budget":
            return f"The budget, {self.amount:,} {unit}, is the recipe's {code('mix.budget')}."
        if bound.get("kind") in ("category", "modality"):
            return (f"The budget, {self.amount:,} {unit}, is the largest the kept records allow: the "
                    f"{bound['kind']} {code(str(bound['name']))} binds it (its {float(bound['target']):.0%} "
                    f"target share takes all its {int(bound['kept']):,} {unit} kept by every stage); "
                    "the other categories' kept records beyond their share are not selected "
                    f"(stage {code('mix')}, reason {code('not_selected')}).")
        if bound.get("kind") == "none":
            return f"The recipe has no {code('mix')}: every kept record is in the release."
        return None


@dataclass(frozen=True)
class Share:
    """One category of a mix: its target share, the share realised, loss tokens and rows."""

    category: str
    target: float | None
    realised: float
    loss_tokens: int
    rows: int
    kept_rows: int | None = None
    """Rows of the category every stage kept, of which the mix took ``rows`` (None in a
    manifest written before it was recorded)."""

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Share:
        """The view of one entry of a manifest's ``composition``."""
        kept = value.get("kept_rows")
        return cls(str(value["category"]), value.get("target"), float(value["realised"]),
                   int(value["loss_tokens"]), int(value["rows"]), None if kept is None else int(kept))


@dataclass(frozen=True)
class ModalityShare:
    """One modality of a mix (``text``, ``image``, ``grounding``): loss tokens and rows, and
    their shares; the recipe's target share when it set one."""

    modality: str
    loss_tokens: int
    rows: int
    loss_tokens_share: float
    rows_share: float
    target: float | None = None


@dataclass(frozen=True)
class Composition:
    """A mix as allocated: its budget, its categories and its modalities."""

    budget: Budget
    shares: list[Share]
    modality: list[ModalityShare]
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The manifest's ``budget``, ``composition`` and ``modality`` as written."""

    @classmethod
    def from_json(cls, manifest: Mapping[str, Any]) -> Composition:
        """The view of a manifest's (or a run's release record's) ``budget``,
        ``composition`` and ``modality``."""
        return cls(Budget.from_json(manifest["budget"]),
                   [Share.from_json(c) for c in manifest["composition"]],
                   [ModalityShare(name, int(m["loss_tokens"]), int(m["rows"]), float(m["loss_tokens_share"]),
                                  float(m["rows_share"]), m.get("target"))
                    for name, m in manifest["modality"].items()],
                   {k: manifest[k] for k in ("budget", "composition", "modality")})

    @property
    def loss_tokens(self) -> int:
        """Loss tokens over every category."""
        return sum(s.loss_tokens for s in self.shares)

    @property
    def rows(self) -> int:
        """Rows over every category."""
        return sum(s.rows for s in self.shares)

    def to_json(self) -> dict[str, Any]:
        """The manifest's ``budget``, ``composition`` and ``modality``, as written."""
        return dict(self.document)


@dataclass(frozen=True)
class StageCounts:
    """What one stage decided: rows in, kept, dropped, and removals by reason."""

    stage: str
    rows: int
    kept: int
    dropped: int
    reasons: dict[str, int]

    @classmethod
    def from_json(cls, stats: Mapping[str, Any]) -> StageCounts:
        """The view of a stage's ``stats.json`` (or a manifest's ``stages`` entry)."""
        return cls(str(stats["stage"]), int(stats["rows"]), int(stats["kept"]), int(stats["dropped"]),
                   dict(stats["reasons"]))


@dataclass(frozen=True)
class ContaminationExample:
    """A contaminated record beside the benchmark item it matched."""

    record: str
    record_text: str
    item: str
    item_text: str
    tier: str | None
    field: str | None


@dataclass(frozen=True)
class ContaminationRow:
    """One source x benchmark of the contamination report: rows, contaminated rows and
    share, rows per tier and per matched field, whether the source was rejected, examples."""

    source: str
    benchmark: str
    contaminated: int
    share: float
    source_rejected: bool
    tiers: dict[str, int]
    """Contaminated rows per tier that found them (``ngram``, ``containment``, ...)."""
    fields: dict[str, int] = field(default_factory=dict)
    """Contaminated rows per matched field of the item (``question``, ``answer``, ...)."""
    source_rows: int | None = None
    examples: list[ContaminationExample] | None = None
    """Up to three examples (None where the document leaves them out: a manifest)."""
    items: list[str] | None = None
    """The ids (``<benchmark>:<row>``) of the items matched (a manifest lists them; None
    where the document does not)."""
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The report's row as written."""

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ContaminationRow:
        """The view of one row of the contamination report (``contamination.parquet`` or a
        manifest's ``contamination``): every other count column is a tier, or, named
        ``field_<name>``, a matched field."""
        counts = {k: int(v) for k, v in row.items() if k not in _REPORT_KEYS and v is not None}
        examples = row.get("examples")
        return cls(
            source=str(row["source"]), benchmark=str(row["benchmark"]),
            contaminated=int(row["contaminated"]), share=float(row["share"]),
            source_rejected=bool(row["source_rejected"]),
            tiers={k: n for k, n in counts.items() if not k.startswith("field_")},
            fields={k.removeprefix("field_"): n for k, n in counts.items() if k.startswith("field_")},
            source_rows=row.get("source_rows"),
            examples=None if examples is None else [ContaminationExample(**e) for e in examples],
            items=None if row.get("items") is None else [str(i) for i in row["items"]],
            document=dict(row))

    def to_json(self) -> dict[str, Any]:
        """The report's row as written."""
        return dict(self.document)


_REPORT_KEYS = frozenset({"source", "benchmark", "source_rows", "contaminated", "share",
                          "source_rejected", "examples", "items"})


@dataclass(frozen=True)
class CotStats:
    """What ``synth_cot_v1`` recorded: rows considered, synthetic records made, rejections
    by reason, attempts, requests sent and cached, the generator."""

    rows: int
    synthetic: int
    rejected: dict[str, int]
    attempts: dict[str, int]
    requests_sent: int
    requests_cached: int
    completion_tokens_per_row: float
    generator: str
    """``backend:model``."""
    offline_backend: bool

    @classmethod
    def from_json(cls, stats: Mapping[str, Any]) -> CotStats | None:
        """The view of synth_cot_v1's stats; None for stats of another producer."""
        if not {"rows", "synthetic", "rejected", "generator", "requests"} <= set(stats):
            return None
        generator = stats["generator"]
        return cls(int(stats["rows"]), int(stats["synthetic"]), dict(stats["rejected"]),
                   dict(stats.get("attempts") or {}), int(stats["requests"]["sent"]),
                   int(stats["requests"]["cached"]), float(stats.get("completion_tokens_per_row") or 0.0),
                   f"{generator['backend']}:{generator['model']}", bool(stats.get("offline_backend")))


@dataclass(frozen=True)
class ReleaseRecord:
    """What a run recorded of the release it last wrote (``release.json``)."""

    path: str
    status: str
    """``written`` or ``unchanged``."""
    name: str
    version: str
    benchmarks: list[str]
    composition: Composition
    contamination: list[ContaminationRow]
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """``release.json`` as written."""

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> ReleaseRecord:
        """The view of a run's ``release.json``."""
        return cls(str(record["path"]), str(record["status"]), str(record["name"]), str(record["version"]),
                   list(record.get("benchmarks") or []), Composition.from_json(record),
                   [ContaminationRow.from_json(c) for c in record.get("contamination") or []], dict(record))

    def to_json(self) -> dict[str, Any]:
        """``release.json`` as written."""
        return dict(self.document)
