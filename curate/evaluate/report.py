"""Reports: markdown beside the JSON results, with PNG plots where a reader would rather look.

``write_mcqa_report(results, folder)`` writes ``report.md``, ``accuracy.png`` (accuracy
per benchmark with its interval) and ``position_bias.png`` (per benchmark, the share of
answers choosing each letter against the share of gold answers). ``write_audit_report``
writes the audit's ``audit.md`` and ``audit.png`` (flawed share per benchmark and flaw).
Plots need matplotlib (``pip install 'curate[eval]'``); without it the markdown is
still written and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import MissingDependencyError

log = logging.getLogger(__name__)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files, no screen); the `eval` extra."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError("matplotlib", "eval") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


@dataclass(frozen=True)
class McqaRow:
    """One benchmark of an MCQA evaluation: items, accuracy and its interval, parse
    failures, position bias, truncated prompts."""

    benchmark: str
    items: int
    accuracy: float
    low: float
    high: float
    parse_failure_rate: float
    position_bias_tv: float
    truncated: int
    read: int | None = None
    """Rows in the benchmark's files (None: results written before denominators were kept)."""
    dropped: dict[str, int] | None = None
    """Rows that could not be scored, by the audit's code."""


@dataclass(frozen=True)
class Paired:
    """Two models (or two runs) on the same items of one benchmark: accuracies, their
    difference with its interval, McNemar's p."""

    benchmark: str
    accuracy_a: float
    accuracy_b: float
    difference: float
    low: float
    high: float
    mcnemar_p: float

    @classmethod
    def from_json(cls, benchmark: str, c: dict[str, Any]) -> Paired:
        """The view of one benchmark of a paired comparison in ``results.json``."""
        d = c["difference"]
        return cls(benchmark, float(c["accuracy_a"]), float(c["accuracy_b"]), float(d["value"]),
                   float(d["low"]), float(d["high"]), float(c["mcnemar_p"]))


@dataclass(frozen=True)
class McqaSummary:
    """What ``curate eval mcqa`` prints of ``results.json``."""

    model: str
    backend: str
    mode: str
    template_hash: str
    level: int
    """The intervals' coverage, in percent."""
    offline_backend: bool
    rows: list[McqaRow]
    retrieval_k: int | None
    retrieval_shuffles: int | None
    retrieval_excluded: int | None
    retrieval_checked: int | None
    retrieval_guard_dropped: int | None
    """Retrieved examples the similarity guard dropped at query time."""
    versus_zero_shot: list[Paired]
    """With retrieval: each benchmark's retrieval-augmented run against the zero-shot one."""
    versus_baseline: list[Paired]
    """With ``--baseline``: each benchmark against the baseline's run."""

    @classmethod
    def from_results(cls, results: dict[str, Any]) -> McqaSummary:
        """The view of an evaluation's ``results.json``."""
        retrieval = results.get("retrieval") or {}
        check = retrieval.get("contamination") or {}
        return cls(
            model=str(results["model"]), backend=str(results["backend"]), mode=str(results["mode"]),
            template_hash=str(results["template"]["hash"]),
            level=int(round(100 * results["options"]["confidence"])),
            offline_backend=bool(results.get("offline_backend")), rows=mcqa_table(results),
            retrieval_k=retrieval.get("k"), retrieval_shuffles=retrieval.get("shuffles"),
            retrieval_excluded=check.get("excluded"), retrieval_checked=check.get("checked"),
            retrieval_guard_dropped=(retrieval.get("guard") or {}).get("dropped_at_query"),
            versus_zero_shot=[Paired.from_json(n, c)
                              for n, c in retrieval.get("versus_zero_shot", {}).items()],
            versus_baseline=[Paired.from_json(n, c)
                             for n, c in results.get("comparison", {}).get("benchmarks", {}).items()])


def mcqa_table(results: dict[str, Any]) -> list[McqaRow]:
    """One row per benchmark: items, accuracy and interval, parse failures, bias."""
    rows = []
    for name, b in results["benchmarks"].items():
        acc = b["accuracy"]
        d = b.get("denominator")
        rows.append(McqaRow(name, int(b["items"]), float(acc["value"]), float(acc["low"]), float(acc["high"]),
                            float(b["parse_failures"]["rate"]), float(b["position_bias"]["total_variation"]),
                            int(b["truncated"]), read=None if d is None else int(d["read"]),
                            dropped=None if d is None else dict(d["dropped_by_reason"])))
    return rows


def dropped_text(dropped: dict[str, int] | None) -> str:
    """``4 (2 missing_answer, 1 empty_option, ...)``, ``0``, or ``n/a`` (not recorded)."""
    if dropped is None:
        return "n/a"
    total = sum(dropped.values())
    return f"{total} ({', '.join(f'{n} {c}' for c, n in dropped.items())})" if total else "0"


def write_mcqa_report(results: dict[str, Any], folder: Path) -> Path:
    """Write ``report.md`` (and the plots) for MCQA results into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    level = int(round(100 * results["options"]["confidence"]))
    lines = [f"# MCQA evaluation: {results['model']}", ""]
    if results.get("offline_backend"):
        lines += ["**Offline backend: template text for tests and demos; these numbers measure "
                  "no model.**", ""]
    lines += [
        f"- backend `{results['backend']}`, model `{results['model']}`, revision "
        f"`{results.get('revision')}`",
        f"- mode `{results['mode']}`, template `{results['template']['name']}` "
        f"(hash `{results['template']['hash']}`)",
        f"- intervals: {level}% percentile bootstrap, {results['options']['resamples']} resamples, "
        f"seed {results['options']['seed']}", "",
        "| benchmark | items | read | dropped | accuracy | interval | parse failures | "
        "position bias (TV) | truncated |",
        "|---|---:|---:|---|---:|---|---:|---:|---:|",
    ]
    for row in mcqa_table(results):
        lines.append(f"| {row.benchmark} | {row.items} | {row.read if row.read is not None else 'n/a'} | "
                     f"{dropped_text(row.dropped)} | {_pct(row.accuracy)} | "
                     f"{_pct(row.low)} to {_pct(row.high)} | {_pct(row.parse_failure_rate)} | "
                     f"{row.position_bias_tv:.3f} | {row.truncated} |")
    for name, b in results["benchmarks"].items():
        lines += ["", f"## {name}", "", "| letter | chosen | gold | difference |", "|---|---:|---:|---:|"]
        for letter, v in b["position_bias"]["letters"].items():
            lines.append(f"| {letter} | {_pct(v['chosen'])} | {_pct(v['gold'])} | "
                         f"{100 * v['difference']:+.1f} pts |")
        if b["subjects"]:
            lines += ["", "| subject | items | accuracy | interval |", "|---|---:|---:|---|"]
            for subject, e in b["subjects"].items():
                lines.append(f"| {subject} | {e['n']} | {_pct(e['value'])} | "
                             f"{_pct(e['low'])} to {_pct(e['high'])} |")
    lines += retrieval_lines(results)
    comparison = results.get("comparison")
    if comparison:
        base = comparison["baseline"]
        lines += ["", f"## Paired comparison with `{base['model']}` ({base['backend']})", "",
                  "| benchmark | items | this | baseline | difference | interval | only this | "
                  "only baseline | McNemar p |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        lines += [_paired_row(name, c, c["accuracy_a"], c["accuracy_b"])
                  for name, c in comparison["benchmarks"].items()]
    try:
        plt = pyplot()
    except MissingDependencyError as exc:
        lines += ["", f"(no plots: {exc})"]
    else:
        _accuracy_plot(plt, results, folder / "accuracy.png")
        _bias_plot(plt, results, folder / "position_bias.png")
        lines += ["", "![accuracy per benchmark](accuracy.png)", "",
                  "![position bias](position_bias.png)"]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _paired_row(name: str, c: dict[str, Any], first: float, second: float) -> str:
    """One row of a paired comparison table: the two accuracies in column order, then the
    difference (a minus b), its interval, the discordant counts and McNemar's p."""
    d = c["difference"]
    return (f"| {name} | {d['n']} | {_pct(first)} | {_pct(second)} | {100 * d['value']:+.1f} pts | "
            f"{100 * d['low']:+.1f} to {100 * d['high']:+.1f} | {c['only_a']} | {c['only_b']} | "
            f"{c['mcnemar_p']:.3g} |")


def retrieval_lines(results: dict[str, Any]) -> list[str]:
    """The markdown of the retrieval-augmented run beside the zero-shot one (none without it)."""
    r = results.get("retrieval")
    if not r:
        return []
    c = r["contamination"]
    excluded = ", ".join(f"{n} from {b}" for b, n in c["by_benchmark"].items()) or "none"
    tiers = ", ".join(f"{t} {n}" for t, n in c["by_tier"].items())
    lines = ["", f"## Retrieval-augmented (k = {r['k']}, {r['shuffles']} shuffles, {r['search']} search)", "",
             f"- index `{r['index']}`: {r['records']} records, embedder "
             f"`{(r.get('embedder') or {}).get('model')}`; of the records kept, {r['records_with_cot']} "
             "have a verified chain of thought",
             f"- contamination check (decontamination stage): {c['checked']} records checked, "
             f"**{c['excluded']} excluded** ({excluded}{'; ' + tiers if tiers else ''}), {c['kept']} kept",
             *_guard_line(r),
             f"- {r['prompts']} prompts scored", "",
             "| benchmark | items | zero-shot | retrieval | difference | interval | only retrieval | "
             "only zero-shot | McNemar p |", "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    lines += [_paired_row(name, d, d["accuracy_b"], d["accuracy_a"])  # zero-shot is the baseline (b)
              for name, d in r["versus_zero_shot"].items()]
    lines += ["", "Position bias per item: the answers over the option orders, mapped back to the original "
              "options (letter frequencies: the table above).", "",
              "| benchmark | items | same answer under every order | mean agreement |",
              "|---|---:|---:|---:|"]
    for name, b in r["benchmarks"].items():
        c = b["position_bias"].get("permutation_consistency") or {}
        if c:
            lines.append(f"| {name} | {c['items']} | {_pct(c['all_agree'])} | {_pct(c['mean_agreement'])} |")
    return lines


def _guard_line(r: dict[str, Any]) -> list[str]:
    g = r.get("guard")
    if not g:
        return []
    limit = g.get("max_similarity")
    if limit is None:
        return ["- similarity guard: off"]
    return [f"- similarity guard (cosine >= {limit}): {c_tier(r, 'similarity')} records excluded; "
            f"{g['dropped_at_query']} retrieved examples dropped as too close to their question "
            f"({g['items_with_drops']} items)"]


def c_tier(r: dict[str, Any], tier: str) -> int:
    """Records the contamination check excluded with ``tier``."""
    return int(r["contamination"]["by_tier"].get(tier, 0))


def _accuracy_plot(plt: Any, results: dict[str, Any], path: Path) -> None:
    rows = mcqa_table(results)
    figure, axes = plt.subplots(figsize=(max(4, 1.4 * len(rows) + 2), 3.5))
    x = range(len(rows))
    values = [100 * r.accuracy for r in rows]
    errors = [[100 * (r.accuracy - r.low) for r in rows], [100 * (r.high - r.accuracy) for r in rows]]
    axes.bar(x, values, yerr=errors, capsize=6, color="#4C72B0")
    axes.set_xticks(list(x), [r.benchmark for r in rows], rotation=20, ha="right")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(0, 100)
    axes.set_title(f"{results['model']} ({results['mode']}): accuracy, "
                   f"{int(round(100 * results['options']['confidence']))}% interval", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bias_plot(plt: Any, results: dict[str, Any], path: Path) -> None:
    names = list(results["benchmarks"])
    figure, all_axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 1, 3.2), squeeze=False)
    for axes, name in zip(all_axes[0], names, strict=False):
        letters = results["benchmarks"][name]["position_bias"]["letters"]
        x = list(range(len(letters)))
        axes.bar([i - 0.2 for i in x], [100 * v["chosen"] for v in letters.values()], 0.4,
                 label="chosen", color="#DD8452")
        axes.bar([i + 0.2 for i in x], [100 * v["gold"] for v in letters.values()], 0.4,
                 label="gold", color="#55A868")
        axes.set_xticks(x, list(letters))
        axes.set_title(name, fontsize=9)
        axes.set_ylabel("share of items (%)")
    all_axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_audit_report(result: dict[str, Any], folder: Path) -> Path:
    """Write ``audit.md`` (and ``audit.png``) for an audit's results into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    flaws = result["flaws"]
    lines = ["# Benchmark audit", "",
             f"A benchmark is unfit when more than {_pct(result['options']['unfit_above'])} of its "
             "items are flawed.", "",
             "| benchmark | rows | flawed | share | fit | " + " | ".join(flaws) + " |",
             "|---|---:|---:|---:|---|" + "---:|" * len(flaws)]
    for name, b in result["benchmarks"].items():
        counts = " | ".join(str(len(b["flaws"].get(f, []))) for f in flaws)
        lines.append(f"| {name} | {b['rows']} | {b['flawed']} | {_pct(b['share'])} | "
                     f"{'yes' if b['fit'] else '**unfit**'} | {counts} |")
    for name, b in result["benchmarks"].items():
        listed = [(f, ids) for f, ids in b["flaws"].items() if ids]
        if not listed:
            continue
        lines += ["", f"## {name}", ""]
        for flaw, ids in listed:
            shown = ", ".join(ids[:20]) + (f", ... ({len(ids) - 20} more)" if len(ids) > 20 else "")
            lines.append(f"- `{flaw}` ({len(ids)}): {shown}")
    try:
        plt = pyplot()
    except MissingDependencyError as exc:
        lines += ["", f"(no plot: {exc})"]
    else:
        names = list(result["benchmarks"])
        figure, axes = plt.subplots(figsize=(max(5, 1.3 * len(names) + 2), 3.5))
        bottom = [0.0] * len(names)
        for flaw in flaws:
            values = [100 * len(result["benchmarks"][n]["flaws"].get(flaw, [])) /
                      max(result["benchmarks"][n]["rows"], 1) for n in names]
            axes.bar(names, values, bottom=bottom, label=flaw)
            bottom = [b + v for b, v in zip(bottom, values, strict=False)]
        axes.axhline(100 * result["options"]["unfit_above"], color="red", linestyle="--",
                     linewidth=1, label="unfit above")
        axes.set_ylabel("flags per 100 rows")
        axes.tick_params(axis="x", rotation=20)
        axes.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(folder / "audit.png", dpi=110)
        plt.close(figure)
        lines += ["", "![flaws per benchmark](audit.png)"]
    path = folder / "audit.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
