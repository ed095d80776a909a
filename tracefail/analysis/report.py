"""The shareable report: one self-contained HTML file (inline CSS, charts as base64 PNG, no
network) or the same charts as PNG files.

Everything shown comes from `analysis.stats.Stats` plus the step-feature split, so the report
and `tracefail stats` never disagree. Text from traces (agent names, framework names) is HTML-
escaped in tables and drawn as plain text in charts, never interpreted.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tracefail.analysis.stats import Stats

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#c8cdd8;font-size:13px}
main{max-width:1180px;margin:0 auto;padding:16px 24px 40px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:8px 0 16px}
.card{background:#fff;border-radius:8px;padding:10px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08);
min-width:120px}
.card b{display:block;font-size:20px}.card span{font-size:12px;color:#5b6475}
section{background:#fff;border-radius:8px;box-shadow:0 1px 2px rgba(0,0,0,.08);padding:14px 20px;
margin:14px 0}
section h2{font-size:17px;margin:0 0 4px}section p.note{font-size:12.5px;color:#5b6475;margin:0 0 8px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}
img{max-width:100%;height:auto;display:block;margin:0 auto}
table{border-collapse:collapse;font-size:12.5px;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #e6e8ec;text-align:right}
th{background:#f0f2f5;position:sticky;top:0}td.l,th.l{text-align:left}
.bar{display:inline-block;height:9px;background:#4c78a8;border-radius:2px;vertical-align:middle}
footer{font-size:12px;color:#5b6475;text-align:center;padding:12px}
@media (max-width:900px){.grid{grid-template-columns:1fr}}
"""


@dataclass
class Chart:
    slug: str
    title: str
    note: str
    draw: Callable[[Any], None]  # draws on a matplotlib figure
    size: tuple[float, float]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # text.parse_math off: agent and framework names are data, and a "$" must not start mathtext
    plt.rcParams.update(
        {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "text.parse_math": False}
    )
    return plt


def _empty(ax: Any, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", color="#5b6475", wrap=True)


def _short(text: object, n: int = 22) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def _prevalence_by_framework(by_framework: pl.DataFrame) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        if not by_framework.height:
            return _empty(ax, "no labelled traces")
        sizes = by_framework.group_by("group").agg(pl.col("labelled").max()).sort("labelled", descending=True)
        groups = sizes["group"].head(12).to_list()
        modes = sorted(by_framework["mode_id"].unique().to_list(), key=_mode_key)
        grid = np.full((len(modes), len(groups)), np.nan)
        for r in by_framework.filter(pl.col("group").is_in(groups)).iter_rows(named=True):
            grid[modes.index(r["mode_id"]), groups.index(r["group"])] = r["prevalence"]
        image = ax.imshow(grid, cmap="Reds", vmin=0, vmax=max(0.05, float(np.nanmax(grid))), aspect="auto")
        names = dict(by_framework.select("mode_id", "name").unique().iter_rows())
        ax.set_yticks(range(len(modes)), [f"{m} {_short(names.get(m, ''), 28)}" for m in modes])
        n_of = dict(sizes.iter_rows())
        ax.set_xticks(
            range(len(groups)),
            [f"{_short(g, 18)} (n={n_of[g]})" for g in groups],
            rotation=40,
            ha="right",
            rotation_mode="anchor",
        )
        for i in range(len(modes)):
            for j in range(len(groups)):
                if not math.isnan(grid[i, j]):
                    colour = "white" if grid[i, j] > 0.6 * np.nanmax(grid) else "#1d2330"
                    ax.text(
                        j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=7, color=colour
                    )
        fig.colorbar(image, ax=ax, label="share of labelled traces")

    return draw


def _mode_key(mode: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in mode.split("."))


def _cooccurrence(pairs: pl.DataFrame) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        usable = pairs.filter(pl.col("phi").is_not_null())
        if not usable.height:
            return _empty(ax, "no pair of modes with both present and absent traces")
        modes = sorted(set(pairs["mode_a"]) | set(pairs["mode_b"]), key=_mode_key)
        grid = np.full((len(modes), len(modes)), np.nan)
        for r in usable.iter_rows(named=True):
            i, j = modes.index(r["mode_a"]), modes.index(r["mode_b"])
            grid[i, j] = grid[j, i] = r["phi"]
        limit = max(0.1, float(np.nanmax(np.abs(grid))))
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(modes)), modes, rotation=90)
        ax.set_yticks(range(len(modes)), modes)
        fig.colorbar(image, ax=ax, label="phi (blank: undefined)")

    return draw


def _position(stages: pl.DataFrame, bins: int = 10) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        if not stages.height:
            return _empty(ax, "no evidence steps on present labels")
        bottom = np.zeros(bins)
        colours = {"pre": "#72b7b2", "exec": "#4c78a8", "post": "#e45756", "": "#bab0ac"}
        for stage in sorted(
            stages["stage"].unique().to_list(),
            key=lambda s: ["pre", "exec", "post", ""].index(s) if s in ("pre", "exec", "post", "") else 9,
        ):
            counts = np.zeros(bins)
            for b, n in stages.filter(pl.col("stage") == stage).select("bin", "steps").iter_rows():
                counts[b] += n
            ax.bar(
                np.arange(bins) + 0.5,
                counts,
                bottom=bottom,
                width=0.9,
                label=stage or "(no stage)",
                color=colours.get(stage, "#9d755d"),
            )
            bottom += counts
        ax.set_xticks(range(bins + 1), [f"{i / bins:.1f}" for i in range(bins + 1)])
        ax.set_xlabel("relative position of the evidence step (0 = first step, 1 = last)")
        ax.set_ylabel("evidence steps")
        ax.legend(title="MAST stage", frameon=False)

    return draw


def _blame(blame: pl.DataFrame, blame_modes: pl.DataFrame) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        if blame.height:
            top = blame.group_by("agent").agg(pl.col("traces").sum()).sort("traces", descending=True).head(15)
            label = "traces whose root cause is attributed to the agent"
        elif blame_modes.height:
            top = (
                blame_modes.group_by("agent")
                .agg(pl.col("traces").sum())
                .sort("traces", descending=True)
                .head(15)
            )
            label = "present failure-mode labels naming the agent"
        else:
            return _empty(ax, "no attributions and no labels naming an agent")
        top = top.reverse()
        ax.barh([_short(a, 30) for a in top["agent"].to_list()], top["traces"].to_list(), color="#4c78a8")
        ax.set_xlabel(label)

    return draw


def agreement_pair(agreement: pl.DataFrame) -> tuple[str, str] | None:
    """The family pair to chart: human vs llm-judge if both exist, else the pair with most items."""
    family = agreement.filter(pl.col("level") == "family")
    if not family.height:
        return None
    if family.filter((pl.col("rater_a") == "human") & (pl.col("rater_b") == "llm-judge")).height:
        return "human", "llm-judge"
    best = family.group_by("rater_a", "rater_b").agg(pl.col("n").sum()).sort("n", descending=True).row(0)
    return best[0], best[1]


def _agreement(agreement: pl.DataFrame) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        pair = agreement_pair(agreement)
        if pair is None:
            return _empty(ax, "no traces labelled by two kinds of source (e.g. judge and human)")
        rows = agreement.filter(
            (pl.col("level") == "family") & (pl.col("rater_a") == pair[0]) & (pl.col("rater_b") == pair[1])
        )
        rows = rows.sort(
            pl.col("mode_id").map_elements(lambda m: list(_mode_key(m)), return_dtype=pl.List(pl.Int64))
        )
        kappas = [k if k is not None and not math.isnan(k) else 0.0 for k in rows["kappa"].to_list()]
        colours = ["#54a24b" if k >= 0.6 else ("#eeca3b" if k >= 0.4 else "#e45756") for k in kappas]
        ax.bar(rows["mode_id"].to_list(), kappas, color=colours)
        for x, (k, n) in enumerate(zip(kappas, rows["n"].to_list(), strict=True)):
            ax.text(x, k + (0.02 if k >= 0 else -0.09), f"{k:.2f}\nn={n}", ha="center", fontsize=6.5)
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_ylim(min(-0.2, min(kappas, default=0) - 0.15), 1.15)
        ax.set_ylabel("Cohen's kappa")
        ax.set_title(f"{pair[0]} vs {pair[1]} (green >= 0.6, yellow >= 0.4)", fontsize=9)

    return draw



def _features(split: pl.DataFrame) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        names = sorted(split["name"].unique().to_list()) if split.height else []
        if not names:
            return _empty(fig.add_subplot(), "no step features stored (run `tracefail features`)")
        cols = 2 if len(names) > 1 else 1
        rows = math.ceil(len(names) / cols)
        for k, name in enumerate(names):
            ax = fig.add_subplot(rows, cols, k + 1)
            part = split.filter(pl.col("name") == name)
            values = part["value"].to_numpy()
            lo, hi = np.percentile(values, [0.5, 99.5]) if len(values) else (0, 1)
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 31)
            for flagged, colour, label in (
                (False, "#4c78a8", "other steps"),
                (True, "#e45756", "failing steps"),
            ):
                v = part.filter(pl.col("flagged") == flagged)["value"].to_numpy()
                if len(v):
                    ax.hist(
                        np.clip(v, edges[0], edges[-1]),
                        bins=edges,
                        density=True,
                        alpha=0.55,
                        color=colour,
                        label=f"{label} (n={len(v)})",
                    )
            ax.set_title(_short(name, 40), fontsize=9)
            ax.legend(fontsize=7, frameon=False)

    return draw


def charts(result: Stats, by_framework: pl.DataFrame, feature_split: pl.DataFrame) -> list[Chart]:
    s = result.sections
    n_features = feature_split["name"].n_unique() if feature_split.height else 1
    return [
        Chart(
            "prevalence-by-framework",
            "Failure-mode prevalence by framework",
            "Share of labelled traces with the mode present (percent in each cell); frameworks with most "
            "labelled traces first.",
            _prevalence_by_framework(by_framework),
            (10, 6),
        ),
        Chart(
            "cooccurrence",
            "Co-occurrence of failure modes",
            "Phi coefficient of each pair over traces labelled for both: red modes appear together more "
            "often than chance, blue less.",
            _cooccurrence(s["cooccurrence"]),
            (6.5, 5.5),
        ),
        Chart(
            "failure-position",
            "Where failures show up in a trace",
            "Evidence steps of present labels by relative position in the trace, coloured by the mode's "
            "MAST stage.",
            _position(s["position_stages"]),
            (6.5, 4.2),
        ),
        Chart(
            "agent-blame",
            "Agent blame",
            "Agents most often attributed as the root cause (Who&When-style attributions).",
            _blame(s["blame"], s["blame_modes"]),
            (6.5, 4.8),
        ),
        Chart(
            "agreement",
            "Judge vs human agreement",
            "Cohen's kappa per mode between two kinds of label source on the traces both labelled.",
            _agreement(s["agreement"]),
            (6.5, 4.2),
        ),
        Chart(
            "features",
            "Step features: failing vs other steps",
            "Distributions (density) of step features for evidence/attributed steps vs all other steps of "
            "the labelled traces.",
            _features(feature_split),
            (10, 2.6 * math.ceil(n_features / 2)),
        ),
    ]


def render_png(chart: Chart, dpi: int = 100) -> bytes:
    plt = _plt()
    fig = plt.figure(figsize=chart.size, dpi=dpi, layout="constrained")
    try:
        chart.draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _table(frame: pl.DataFrame) -> str:
    head = (
        "<tr><th class=l>mode</th><th class=l>name</th><th class=l>category</th><th class=l>stage</th>"
        "<th>labelled</th><th>affected</th><th>prevalence</th><th>95% CI</th><th class=l></th></tr>"
    )
    body = []
    for r in frame.iter_rows(named=True):
        p = r["prevalence"] or 0.0
        text = "".join(
            f"<td class=l>{html.escape(str(r[k]))}</td>" for k in ("mode_id", "name", "category", "stage")
        )
        body.append(
            f"<tr>{text}<td>{r['labelled']}</td><td>{r['affected']}</td><td>{100 * p:.1f}%</td>"
            f"<td>{100 * (r['ci_low'] or 0):.1f}–{100 * (r['ci_high'] or 0):.1f}%</td>"
            f"<td class=l><span class=bar style='width:{max(1, round(160 * p))}px'></span></td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def html_report(
    result: Stats, rendered: list[tuple[Chart, bytes]], corpus: dict[str, int], generated: str
) -> str:
    cards = "".join(
        f"<div class=card><b>{v:,}</b><span>{html.escape(k)}</span></div>" for k, v in corpus.items()
    )
    sections = []
    for chart, png in rendered:
        data = base64.b64encode(png).decode("ascii")
        sections.append(
            f"<section id='{chart.slug}'><h2>{html.escape(chart.title)}</h2>"
            f"<p class=note>{html.escape(chart.note)}</p>"
            f"<img alt='{html.escape(chart.title)}' src='data:image/png;base64,{data}'></section>"
        )
    wide = {"prevalence-by-framework", "features"}
    first = [s for (c, _), s in zip(rendered, sections, strict=True) if c.slug in wide]
    pairs = [s for (c, _), s in zip(rendered, sections, strict=True) if c.slug not in wide]
    modes = result.sections["modes"]
    title = "tracefail failure report"
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body><header><h1>{title}</h1>"
        f"<p>taxonomy {html.escape(result.taxonomy)} · label source {html.escape(result.source)} · "
        f"generated {html.escape(generated)}</p></header><main><div class=cards>{cards}</div>"
        f"{first[0] if first else ''}"
        "<section id='modes'><h2>Failure modes</h2><p class=note>Traces labelled for each mode, traces where "
        "some selected source says it is present, and the Wilson 95% interval of the prevalence.</p>"
        f"{_table(modes)}</section>"
        f"<div class=grid>{''.join(pairs)}</div>{''.join(first[1:])}"
        "</main><footer>Made by tracefail. Self-contained: opens without a network.</footer></body></html>\n"
    )


def write_pngs(rendered: list[tuple[Chart, bytes]], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for chart, png in rendered:
        path = directory / f"{chart.slug}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths
