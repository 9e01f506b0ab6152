"""The release report (``report.html``): what a reviewer decides from, as pictures.

One self-contained static HTML page: composition target against realised (by category,
source and modality; loss tokens and rows), a contamination heatmap (source x
benchmark), removals by stage and reason, score histograms per stage, and example rows
per reason. Charts are inline SVG drawn here; the page loads nothing from the network
and runs no script. Dataset text is untrusted input: every data string on the page goes
through ``html.escape``, so a record holding ``<script>`` shows as text. The page is
byte-reproducible (no time stamps, stable orders), so a rebuilt release stays identical.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from curate.engine.stage import Stage
from curate.read.runs import RunReader, turns_text
from curate.read.views import Budget
from curate.records import POSITION

REPORT = "report.html"
EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 400
BINS = 20
_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#eeca3b", "#9d755d")
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff3cd;padding:.6em;border:1px solid #e0c36a}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5em;margin:.2em 0;
max-height:14em;overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}.muted{color:#777}svg text{font:11px system-ui,sans-serif}
"""


def esc(value: Any) -> str:
    """``value`` as HTML text: every data string on the page goes through here."""
    return html.escape("" if value is None else str(value), quote=True)


def write_report(folder: Path, manifest: dict[str, Any], run: RunReader, removed: pl.DataFrame,
                 stage_names: Sequence[str], stages: Sequence[Stage] = ()) -> str:
    """Write the published ``report.html`` into the release ``folder``; its path relative to
    the folder (see :func:`render_report`)."""
    (folder / REPORT).write_text(render_report(manifest, run, removed, stage_names, stages), "utf-8")
    return REPORT


def write_local_report(target: Path, manifest: dict[str, Any], run: RunReader, removed: pl.DataFrame,
                       stage_names: Sequence[str], stages: Sequence[Stage] = ()) -> Path:
    """Write the local report to ``target`` (in the run folder, never in a release): the
    release report with the text of every example row, contaminated rows beside the
    benchmark items they match."""
    target.write_text(render_report(manifest, run, removed, stage_names, stages, local=True), "utf-8")
    return target


def render_report(manifest: dict[str, Any], run: RunReader, removed: pl.DataFrame,
                  stage_names: Sequence[str], stages: Sequence[Stage] = (), *, local: bool = False) -> str:
    """The report page. ``removed`` is the release's audit trail (``removed.parquet``: keys,
    stage, reason, reason_ref); score histograms and example texts are read from the ``run``.

    Published (``local=False``), the page never quotes a benchmark item: contamination is
    shown as counts and item ids, and an example row's text is shown only when
    decontamination checked that content and found it clean (its id is one the stage kept,
    or removed for another reason than a match); other rows are named by id. ``local=True``
    quotes every example, contaminated rows beside the items they match: for the run
    folder only.
    """
    synthetic = manifest.get("synthetic") or {}
    order = ["ingest", *stage_names, "mix"]  # where a row can leave, in the order it happens
    parts = [
        f"<h1>{esc(manifest['name'])} {esc(manifest['version'])}: release report</h1>",
        "<p class=warn>Local report: it quotes the training rows that matched benchmark items "
        "and the items themselves. Keep it on this machine; the release's own report.html "
        "is the one to publish.</p>" if local else "",
        "<p class=warn>The synthetic share was written by curate's offline template backend "
        "(deterministic template text for tests and demos, not a language model).</p>"
        if synthetic.get("offline_backend") else "",
        f"<p class=muted>Seed {esc(manifest['seed'])}; loss tokens counted with "
        f"{esc(manifest['budget']['counting'])}; budget {manifest['budget']['amount']:,} "
        f"{esc(manifest['budget']['unit'])}.</p>",
        _composition(manifest),
        _contamination(manifest),
        _contaminated_rows(run, stage_names),
        _removals(removed, order),
        _histograms(run, stage_names, stages),
        _examples(run, removed, order, stage_names, local=local),
    ]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{esc(manifest['name'])} {esc(manifest['version'])}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(p for p in parts if p)
            + "\n</body></html>\n")


# -- sections ---------------------------------------------------------------------------------


def _composition(manifest: dict[str, Any]) -> str:
    categories = [(c["category"], c["target"], c["loss_tokens_share"], c["rows_share"], c["loss_tokens"],
                   c["rows"], c.get("kept_rows")) for c in manifest["composition"]]
    modality = [(name, m.get("target"), m["loss_tokens_share"], m["rows_share"], m["loss_tokens"], m["rows"],
                 None) for name, m in manifest.get("modality", {}).items()]
    sources = manifest["sources_in_mix"]
    tokens = max(sum(s["loss_tokens"] for s in sources.values()), 1)
    rows = max(sum(s["rows"] for s in sources.values()), 1)
    per_source = [(name, None, s["loss_tokens"] / tokens, s["rows"] / rows, s["loss_tokens"], s["rows"], None)
                  for name, s in sorted(sources.items())]
    unit = manifest["budget"]["unit"]
    blocks = []
    for title, entries, chart_id in (("By category", categories, "composition-chart"),
                                     ("By modality", modality, "modality-chart"),
                                     ("By source", per_source, "source-chart")):
        if not entries:
            continue
        bars = [(name, [(target, "target"), (tokens_share if unit == "loss_tokens" else rows_share,
                                             "realised")]) for name, target, tokens_share, rows_share, *_
                in entries]
        kept = any(e[-1] is not None for e in entries)
        table = _table(["", "target", "realised (loss tokens)", "realised (rows)", "loss tokens", "rows",
                        *(["of rows kept"] if kept else [])], [
            [name, "-" if target is None else f"{target:.1%}", f"{ts:.2%}", f"{rs:.2%}", f"{t:,}", f"{r:,}",
             *([f"{k or 0:,}"] if kept else [])]
            for name, target, ts, rs, t, r, k in entries])
        blocks.append(f"<h3>{esc(title)}</h3><div class=charts>"
                      f"{_bars(bars, chart_id, f'share of {unit}')}<div>{table}</div></div>")
    binding = Budget.from_json(manifest["budget"]).binding(lambda name: f"<code>{esc(name)}</code>")
    return ("<h2>Composition: target against realised</h2>"
            + (f"<p id=binding>{binding}</p>" if binding else "") + "".join(blocks))


def _contamination(manifest: dict[str, Any]) -> str:
    rows = manifest.get("contamination") or []
    benchmarks = sorted(manifest.get("benchmarks") or {})
    if not benchmarks:
        return "<h2>Contamination</h2><p>No benchmark was checked.</p>"
    sources = sorted(set(manifest.get("inputs") or {}) | {r["source"] for r in rows})
    cells = {(r["source"], r["benchmark"]): r for r in rows}
    note = ("" if rows else "<p>No training row matched a benchmark item.</p>")
    rejected = sorted({r["source"] for r in rows if r.get("source_rejected")})
    lines = ("<p>Rejected whole (contaminated share above the recipe's threshold): "
             + ", ".join(f"<code>{esc(s)}</code>" for s in rejected) + "</p>") if rejected else ""
    return ("<h2>Contamination: source x benchmark</h2>" + note
            + _heatmap(sources, benchmarks, cells) + lines)


def _removals(removed: pl.DataFrame, order: list[str]) -> str:
    counts = removed.group_by("stage", "reason").len().sort("stage", "reason")
    if counts.height == 0:
        return "<h2>Removals</h2><p>Nothing was removed.</p>"
    rank = {name: i for i, name in enumerate(order)}
    by_stage = sorted(counts.iter_rows(), key=lambda r: (rank.get(r[0], len(rank)), r[0], r[1]))
    bars = [(f"{stage}: {reason}", [(n, "rows")]) for stage, reason, n in by_stage]
    table = _table(["stage", "reason", "rows"], [[s, r, f"{n:,}"] for s, r, n in by_stage])
    return ("<h2>Removals by stage and reason</h2><div class=charts>"
            f"{_bars(bars, 'removals-chart', 'rows', share=False)}<div>{table}</div></div>")


def _histograms(run: RunReader, stage_names: Sequence[str], stages: Sequence[Stage]) -> str:
    """A histogram of each numeric score column of each stage, the rows the stage kept and
    those it removed in two colours, the stage's threshold marked; rank columns left out."""
    known = {stage.name: stage for stage in stages}
    charts = []
    for name in stage_names:
        if not run.store.stage(name).decisions.exists():
            continue
        stage = known.get(name)
        ranks = stage.rank_columns if stage is not None else frozenset()
        thresholds = stage.thresholds() if stage is not None else {}
        frame = run.scores(name).collect()
        for column, dtype in frame.schema.items():
            if column in (*POSITION, "id", *ranks) or not (dtype.is_float() or dtype.is_integer()):
                continue
            values = frame.select(value=pl.col(column).cast(pl.Float64), keep="keep").drop_nulls()
            values = values.filter(pl.col("value").is_finite())
            if values.height == 0 or values.get_column("value").n_unique() < 2:
                continue
            charts.append(_histogram(values.filter(pl.col("keep")).get_column("value").to_list(),
                                     values.filter(~pl.col("keep")).get_column("value").to_list(),
                                     f"{name}.{column}", thresholds.get(column)))
    if not charts:
        return "<h2>Score distributions</h2><p>No stage wrote a numeric score.</p>"
    return ("<h2>Score distributions</h2><p class=muted>Per stage: the rows it kept "
            f'<span style="color:{_COLOURS[0]}">&#9632;</span> and those it removed '
            f'<span style="color:{_COLOURS[3]}">&#9632;</span>, stacked; a dashed line marks the '
            "stage's threshold when it has a fixed one.</p><div class=charts>" + "".join(charts) + "</div>")


CONTAMINATED_ROWS_SHOWN = 50


def _contaminated_rows(run: RunReader, stage_names: Sequence[str]) -> str:
    """Each training row that matched a benchmark item, by ids: the row, the item, the
    tier and field that matched (never the text)."""
    rows = run.contaminated(stage_names)
    if rows.height == 0:
        return ""
    shown = rows.head(CONTAMINATED_ROWS_SHOWN)
    table = _table(["training row", "benchmark item", "tier", "field"], [
        [f"{r['source']}:{r['row']}", f"{r['benchmark']}:{r['item_row']}", r["tier"] or "-",
         r["field"] or "-"] for r in shown.iter_rows(named=True)])
    more = (f"<p class=muted>and {rows.height - shown.height:,} more (the run's <code>fate</code> view "
            "lists them all).</p>" if rows.height > shown.height else "")
    return ("<h3 id=contaminated-rows>Rows that matched a benchmark item</h3><p class=muted>By id: "
            "this report never quotes a benchmark item.</p>" + table + more)


def _examples(run: RunReader, removed: pl.DataFrame, order: list[str], stage_names: Sequence[str], *,
              local: bool) -> str:
    rank = pl.col("stage").replace_strict(order, list(range(len(order))), default=len(order))
    picked = (removed.sort(rank, "stage", "reason", "source", "row")
              .group_by("stage", "reason", maintain_order=True).head(EXAMPLES_PER_REASON))
    if picked.height == 0:
        return ""
    texts = _texts(run, picked.select(*POSITION).unique())
    matched = run.contaminated(stage_names).select(*POSITION, "benchmark", "item_row", "tier", "field")
    picked = (picked.join(texts, on=list(POSITION), how="left", maintain_order="left")
              .join(matched, on=list(POSITION), how="left", maintain_order="left"))
    quotable = None if local else _quotable(run, stage_names)
    items = ({f"{b}:{n}": text for b, n, text in run.item_texts(
        picked.select("benchmark", "item_row")).iter_rows()} if local else {})
    blocks = []
    for (stage, reason), group in picked.group_by("stage", "reason", maintain_order=True):
        entries = []
        for r in group.iter_rows(named=True):
            item = None if r["benchmark"] is None else f"{r['benchmark']}:{r['item_row']}"
            head = (f"<code>{esc(r['source'])}:{esc(r['row'])}</code>"
                    + (f" (<code>{esc(r['reason_ref'])}</code>)" if r["reason_ref"] else "")
                    + (f" matched benchmark item <code>{esc(item)}</code> ({esc(r['tier'] or '-')} / "
                       f"{esc(r['field'] or '-')})" if item else ""))
            if item is not None and not local:
                body = "<p class=muted>(text not shown: it holds a benchmark item)</p>"
            elif quotable is not None and r["id"] not in quotable:
                body = ("<p class=muted>(text not shown: decontamination never checked this content: "
                        + ("it left before that stage)" if r["id"] else "the row was not ingested)") + "</p>")
            else:
                text = _clip(r["text"]) if r["text"] else "(no text: the row was not ingested)"
                body = f"<pre>{esc(text)}</pre>"
                if item is not None:
                    body += (f"<p>benchmark item <code>{esc(item)}</code>:</p>"
                             f"<pre>{esc(_clip(items.get(item) or ''))}</pre>")
            entries.append(f"<li>{head}{body}</li>")
        blocks.append(f"<h3>{esc(stage)}: {esc(reason)}</h3><ul>{''.join(entries)}</ul>")
    return "<h2>Example rows per reason</h2>" + "".join(blocks)


def _quotable(run: RunReader, stage_names: Sequence[str]) -> set[str] | None:
    """The ids whose text the published report may quote: those decontamination checked and
    found clean; none when the recipe names benchmarks but no stage checked them; None (any)
    when the recipe checks no benchmark."""
    vouched = run.vouched_ids(stage_names)
    if vouched is not None:
        return set(vouched.drop_nulls().to_list())
    return set() if (run.store.run_info() or {}).get("benchmarks") else None


def _texts(run: RunReader, keys: pl.DataFrame) -> pl.DataFrame:
    """Each key's text: its turns (records), else the raw quarantined line."""
    frames = [pl.DataFrame(schema={"source": pl.String, "row": pl.Int64, "text": pl.String})]
    for name in keys.get_column("source").unique().sort().to_list():
        mine = keys.filter(pl.col("source") == name).lazy()
        if run.record_files([name]):
            frames.append(run.records([name]).join(mine, on=list(POSITION), how="semi")
                          .select(*POSITION, turns_text()).collect())
        frames.append(run.quarantined([name]).join(mine, on=list(POSITION), how="semi")
                      .select(*POSITION, text=pl.col("raw").cast(pl.String)).collect())
    return pl.concat(frames).unique(list(POSITION), keep="first", maintain_order=True)


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " ..."


# -- drawing ----------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td class=n>{esc(c)}</td>" if _numeric(c) else f"<td>{esc(c)}</td>" for c in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _numeric(cell: Any) -> bool:
    text = str(cell)
    digits = text.replace(",", "").replace(".", "").rstrip("%")
    return text == "-" or (text[:1].isdigit() and digits.isdigit())


def _bars(groups: list[tuple[str, list[tuple[float | None, str]]]], chart_id: str, axis: str,
          *, share: bool = True) -> str:
    """Horizontal bars: per group (label) one bar per series (value, series name)."""
    series = list(dict.fromkeys(s for _, bars in groups for _, s in bars))
    top = max([1e-9, *[v or 0 for _, bars in groups for v, _ in bars]])
    label_w, bar_w, bar_h = 190, 300, 12
    height = 24 + sum(len(bars) * bar_h + 8 for _, bars in groups) + 16
    out = [f'<svg id="{esc(chart_id)}" role=img xmlns="http://www.w3.org/2000/svg" '
           f'width="{label_w + bar_w + 70}" height="{height}"><title>{esc(axis)}</title>']
    for i, name in enumerate(series):
        out.append(f'<rect x="{label_w + 90 * i}" y="4" width="10" height="10" fill="{_COLOURS[i % 8]}"/>'
                   f'<text x="{label_w + 90 * i + 14}" y="13">{esc(name)}</text>')
    y = 24
    for label, bars in groups:
        out.append(f'<text x="{label_w - 6}" y="{y + len(bars) * bar_h / 2 + 4:.0f}" text-anchor="end">'
                   f"{esc(_short(label, 30))}</text>")
        for value, name in bars:
            colour = _COLOURS[series.index(name) % 8]
            if value is not None:
                w = bar_w * value / top
                shown = f"{value:.1%}" if share else f"{value:,.0f}"
                out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" '
                           f'fill="{colour}">'
                           f"<title>{esc(label)} {esc(name)}: {esc(shown)}</title></rect>"
                           f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}">{esc(shown)}</text>')
            y += bar_h
        y += 8
    out.append(f'<text x="{label_w}" y="{height - 4}" class=muted>{esc(axis)}</text></svg>')
    return "".join(out)


def _heatmap(rows: list[str], columns: list[str], cells: dict[tuple[str, str], dict[str, Any]]) -> str:
    label_w, cell_w, cell_h, head_h = 220, 110, 26, 40
    width, height = label_w + cell_w * len(columns) + 10, head_h + cell_h * len(rows) + 10
    top = max([c["share"] for c in cells.values()] + [1e-9])
    out = [f'<svg id="contamination-heatmap" role=img xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}"><title>contaminated share, source x benchmark</title>']
    for j, bench in enumerate(columns):
        out.append(f'<text x="{label_w + cell_w * j + cell_w / 2:.0f}" y="{head_h - 10}" '
                   f'text-anchor="middle">{esc(_short(bench, 18))}</text>')
    for i, source in enumerate(rows):
        y = head_h + cell_h * i
        out.append(f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">'
                   f"{esc(_short(source, 32))}</text>")
        for j, bench in enumerate(columns):
            cell = cells.get((source, bench))
            share = cell["share"] if cell else 0.0
            count = cell["contaminated"] if cell else 0
            level = math.sqrt(share / top) if share else 0.0
            fill = f"rgb(255,{int(255 - 200 * level)},{int(255 - 220 * level)})"
            ink = ' fill="#fff"' if level > 0.6 else ""
            out.append(f'<rect x="{label_w + cell_w * j}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                       f'fill="{fill}" stroke="#ccc"><title>{esc(source)} x {esc(bench)}: {count:,} rows '
                       f"({share:.2%})</title></rect>"
                       f'<text x="{label_w + cell_w * j + cell_w / 2:.0f}" y="{y + 17}" text-anchor="middle"'
                       f'{ink}>'
                       f"{count:,} ({share:.1%})</text>")
    out.append("</svg>")
    return "".join(out)


def _histogram(kept: list[float], removed: list[float], title: str, threshold: float | None) -> str:
    """Kept and removed values of one score, stacked in ``BINS`` bins over their range (and
    the threshold's), the threshold as a dashed line."""
    values = kept + removed
    lo, hi = min(values), max(values)
    if threshold is not None:
        lo, hi = min(lo, threshold), max(hi, threshold)
    step = (hi - lo) / BINS
    counts = {"kept": [0] * BINS, "removed": [0] * BINS}
    for part, numbers in (("kept", kept), ("removed", removed)):
        for v in numbers:
            counts[part][min(int((v - lo) / step), BINS - 1)] += 1
    w, h, pad = 260, 120, 44
    top = max(k + r for k, r in zip(counts["kept"], counts["removed"], strict=True))
    bars = []
    for i, (k, r) in enumerate(zip(counts["kept"], counts["removed"], strict=True)):
        x, width, span = pad + i * w / BINS, w / BINS - 1, f"{lo + i * step:.4g} to {lo + (i + 1) * step:.4g}"
        for value, base, colour, label in ((k, 0, _COLOURS[0], "kept"), (r, k, _COLOURS[3], "removed")):
            if value:
                bars.append(f'<rect x="{x:.1f}" y="{h - h * (base + value) / top:.1f}" width="{width:.1f}" '
                            f'height="{h * value / top:.1f}" fill="{colour}"><title>{span}: {value:,} '
                            f"{label}</title></rect>")
    mark = ""
    if threshold is not None:
        x = pad + w * (threshold - lo) / (hi - lo)
        mark = (f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{h}" stroke="#222" stroke-dasharray="4 3">'
                f"<title>threshold {threshold:.4g}</title></line>"
                f'<text x="{x:.1f}" y="{h + 28}" text-anchor="middle">{threshold:.4g}</text>')
    return (f'<figure><svg role=img xmlns="http://www.w3.org/2000/svg" width="{w + pad + 10}" '
            f'height="{h + 36}">'
            f"<title>{esc(title)}</title>{''.join(bars)}{mark}"
            f'<text x="{pad}" y="{h + 14}">{lo:.4g}</text>'
            f'<text x="{pad + w}" y="{h + 14}" text-anchor="end">{hi:.4g}</text>'
            f'<text x="{pad - 4}" y="10" text-anchor="end">{top:,}</text></svg>'
            f"<figcaption><code>{esc(title)}</code> ({len(kept):,} kept, {len(removed):,} removed"
            + (f"; threshold {threshold:.4g}" if threshold is not None else "") + ")</figcaption></figure>")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
