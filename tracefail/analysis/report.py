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
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tracefail.analysis.stats import Stats, kappa_interval, ops_cells

MIN_CELL_N = 5  # cells with fewer traces are drawn grey: too few to colour as a finding
MIN_KAPPA_N = 10  # kappa from fewer items, or whose interval crosses 0, is never "good"
MIN_PHI_N = 20  # phi over fewer traces (standard error about 1/sqrt(n) > 0.22) is not coloured
MAX_BINS = 50
GREY = "#d9d9d9"

_CSS = """
.n{color:#777;font-size:85%}
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
.ci{position:relative;display:inline-block;width:160px;height:10px;vertical-align:middle;
border-left:1px solid #c8cdd8;border-right:1px solid #c8cdd8}
.ci .w{position:absolute;top:4px;height:2px;background:#4c78a8}
.ci .p{position:absolute;top:1px;width:3px;height:8px;margin-left:-1px;background:#1d2330}
.small{color:#8a93a5}.warn{color:#b4431b;font-weight:600}
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
    too_small: str | None = None  # why the panel is not drawn: its n is too small to show anything


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


def _grey_out(ax: Any, small: np.ndarray) -> None:
    """Paint the cells where `small` is true grey, over whatever colour they had."""
    from matplotlib.colors import ListedColormap

    if small.any():
        ax.imshow(np.where(small, 1.0, np.nan), cmap=ListedColormap([GREY]), vmin=0, vmax=1, aspect="auto")


def _short(text: object, n: int = 22) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def _prevalence_by_framework(by_framework: pl.DataFrame) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        if not by_framework.height:
            return _empty(ax, "no labelled traces")
        sizes = (
            by_framework.group_by("group")
            .agg(pl.col("labelled").max())
            .sort(["labelled", "group"], descending=[True, False])
        )
        groups = sizes["group"].head(12).to_list()
        modes = sorted(by_framework["mode_id"].unique().to_list(), key=_mode_key)
        grid = np.full((len(modes), len(groups)), np.nan)
        cell_n = np.zeros((len(modes), len(groups)), dtype=int)
        for r in by_framework.filter(pl.col("group").is_in(groups)).iter_rows(named=True):
            i, j = modes.index(r["mode_id"]), groups.index(r["group"])
            grid[i, j], cell_n[i, j] = r["prevalence"], r["labelled"]
        small = (cell_n < MIN_CELL_N) & ~np.isnan(grid)
        coloured = np.where(small, np.nan, grid)
        top = float(np.nanmax(coloured)) if (~np.isnan(coloured)).any() else 0.05
        image = ax.imshow(coloured, cmap="Reds", vmin=0, vmax=max(0.05, top), aspect="auto")
        _grey_out(ax, small)
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
                    colour = "white" if not small[i, j] and grid[i, j] > 0.6 * top else "#1d2330"
                    ax.text(
                        j,
                        i,
                        f"{100 * grid[i, j]:.0f}%\nn={cell_n[i, j]}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color=colour,
                    )
        fig.colorbar(image, ax=ax, label=f"share of labelled traces (grey: n < {MIN_CELL_N})")

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
        cell_n = np.zeros((len(modes), len(modes)), dtype=int)
        for r in usable.iter_rows(named=True):
            i, j = modes.index(r["mode_a"]), modes.index(r["mode_b"])
            grid[i, j] = grid[j, i] = r["phi"]
            cell_n[i, j] = cell_n[j, i] = r["n"]
        small = (cell_n < MIN_PHI_N) & ~np.isnan(grid)
        coloured = np.where(small, np.nan, grid)
        limit = max(0.1, float(np.nanmax(np.abs(coloured))) if (~np.isnan(coloured)).any() else 0.1)
        image = ax.imshow(coloured, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        _grey_out(ax, small)
        for i, j in zip(*np.nonzero(~np.isnan(grid)), strict=True):
            ax.text(j, i, f"{grid[i, j]:.1f}\n{cell_n[i, j]}", ha="center", va="center", fontsize=5)
        ax.set_xticks(range(len(modes)), modes, rotation=90)
        ax.set_yticks(range(len(modes)), modes)
        fig.colorbar(image, ax=ax, label=f"phi over n traces (blank: undefined, grey: n < {MIN_PHI_N})")

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
            top = (
                blame.group_by("agent")
                .agg(pl.col("traces").sum())
                .sort(["traces", "agent"], descending=[True, False])
                .head(15)
            )
            label = "traces whose root cause is attributed to the agent"
        elif blame_modes.height:
            top = (
                blame_modes.group_by("agent")
                .agg(pl.col("traces").sum())
                .sort(["traces", "agent"], descending=[True, False])
                .head(15)
            )
            label = "present failure-mode labels naming the agent"
        else:
            return _empty(ax, "no attributions and no labels naming an agent")
        top = top.reverse()
        ax.barh([_short(a, 30) for a in top["agent"].to_list()], top["traces"].to_list(), color="#4c78a8")
        ax.set_xlabel(label)

    return draw


def _prevalence_too_small(by_framework: pl.DataFrame) -> str | None:
    """Why the heatmap is not drawn when no cell could be coloured: an all-grey grid says nothing."""
    if not by_framework.height:
        return None
    most = int(by_framework["labelled"].max() or 0)  # type: ignore[arg-type]
    if most >= MIN_CELL_N:
        return None
    frameworks = by_framework["group"].n_unique()
    return (
        f"n too small: each of the {frameworks} frameworks has at most {most} labelled traces per mode "
        f"(a share is coloured from n = {MIN_CELL_N}); the prevalence table lists every mode with its "
        "n and 95% interval"
    )


def _cooccurrence_too_small(pairs: pl.DataFrame) -> str | None:
    usable = pairs.filter(pl.col("phi").is_not_null())
    most = int(usable["n"].max() or 0) if usable.height else 0  # type: ignore[arg-type]
    if most >= MIN_PHI_N:
        return None
    return (
        f"n too small: at most {most} traces labelled for both modes of a pair with both present and "
        f"absent traces (phi needs {MIN_PHI_N} per pair)"
    )


def _agreement_too_small(agreement: pl.DataFrame) -> str | None:
    pair = agreement_pair(agreement)
    if pair is None:
        return f"n too small: no trace labelled by two kinds of source (kappa needs {MIN_KAPPA_N})"
    rows = agreement.filter(
        (pl.col("level") == "family") & (pl.col("rater_a") == pair[0]) & (pl.col("rater_b") == pair[1])
    )
    most = int(rows["n"].max() or 0)  # type: ignore[arg-type]
    if most >= MIN_KAPPA_N:
        return None
    return (
        f"n too small: at most {most} traces labelled for one mode by both {pair[0]} and {pair[1]} "
        f"(kappa needs {MIN_KAPPA_N})"
    )


def hist_bins(values: np.ndarray) -> int:
    """Bins for a histogram of `values`: Freedman–Diaconis, never more than sqrt(n) (heavy tails
    make FD ask for many bins on few steps), the distinct values or MAX_BINS, so 10 steps get a
    few bins, not 30 near-empty ones."""
    values = values[np.isfinite(values)]
    distinct = len(np.unique(values))
    if distinct < 2:
        return 1
    q1, q3 = np.percentile(values, [25, 75])
    width = 2 * (q3 - q1) / len(values) ** (1 / 3)
    span = float(values.max() - values.min())
    root = math.ceil(math.sqrt(len(values)))
    bins = math.ceil(span / width) if width > 0 else root
    return max(1, min(bins, root, distinct, MAX_BINS))


def _feature_bins(split: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """name -> (bins, n steps) for each feature's histogram (values clipped to the 0.5–99.5 percentiles)."""
    out = {}
    for name in sorted(split["name"].unique().to_list()) if split.height else []:
        values = split.filter(pl.col("name") == name)["value"].to_numpy().astype(float)
        lo, hi = np.percentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0)
        out[name] = (hist_bins(np.clip(values, lo, hi)), len(values))
    return out


def agreement_pair(agreement: pl.DataFrame) -> tuple[str, str] | None:
    """The family pair to chart: human vs llm-judge if both exist, else the pair with most items."""
    family = agreement.filter(pl.col("level") == "family")
    if not family.height:
        return None
    if family.filter((pl.col("rater_a") == "human") & (pl.col("rater_b") == "llm-judge")).height:
        return "human", "llm-judge"
    best = (
        family.group_by("rater_a", "rater_b")
        .agg(pl.col("n").sum())
        .sort(["n", "rater_a", "rater_b"], descending=[True, False, False])
        .row(0)
    )
    return best[0], best[1]


def kappa_mark(n11: int, n10: int, n01: int, n00: int) -> tuple[float, float, float, str, str]:
    """(kappa, low, high, colour, note) of one 2x2 table: only kappa from at least MIN_KAPPA_N
    items whose interval stays above 0 gets a traffic-light colour."""
    kappa, low, high = kappa_interval(n11, n10, n01, n00)
    n = n11 + n10 + n01 + n00
    if math.isnan(kappa):
        return math.nan, math.nan, math.nan, GREY, "one class"
    if n < MIN_KAPPA_N or low <= 0:
        return kappa, low, high, GREY, ""
    return kappa, low, high, "#54a24b" if kappa >= 0.6 else ("#eeca3b" if kappa >= 0.4 else "#e45756"), ""


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
        marks = [kappa_mark(*r) for r in rows.select("n11", "n10", "n01", "n00").iter_rows()]
        kappas = [0.0 if math.isnan(m[0]) else m[0] for m in marks]
        ax.bar(rows["mode_id"].to_list(), kappas, color=[m[3] for m in marks])
        for x, ((k, low, high, _, note), n) in enumerate(zip(marks, rows["n"].to_list(), strict=True)):
            if not math.isnan(low):
                ax.errorbar(x, k, yerr=[[k - low], [high - k]], color="#1d2330", capsize=3, linewidth=0.8)
            shown = note if note else f"{k:.2f}"
            top = high if not math.isnan(high) else k
            ax.text(x, min(top, 1.2) + 0.03, f"{shown}\nn={n}", ha="center", fontsize=6)
        ax.axhline(0, color="#333333", linewidth=0.8)
        ax.set_ylim(-1.05, 1.35)
        ax.set_ylabel("Cohen's kappa (whiskers: 95% interval)")
        ax.set_title(
            f"{pair[0]} vs {pair[1]} (green >= 0.6, yellow >= 0.4; grey: n < {MIN_KAPPA_N}, "
            "interval crosses 0, or one class)",
            fontsize=8,
        )

    return draw


def _features(split: pl.DataFrame, bins: dict[str, tuple[int, int]]) -> Callable[[Any], None]:
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
            edges = np.linspace(lo, hi if hi > lo else lo + 1, bins[name][0] + 1)
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
    bins = _feature_bins(feature_split)
    binned = "; ".join(f"{name}: {b} bins over n={n}" for name, (b, n) in bins.items())
    return [
        Chart(
            "prevalence-by-framework",
            "Failure-mode prevalence by framework",
            "Share of labelled traces with the mode present (percent in each cell); frameworks with most "
            "labelled traces first.",
            _prevalence_by_framework(by_framework),
            (10, 6),
            _prevalence_too_small(by_framework),
        ),
        Chart(
            "cooccurrence",
            "Co-occurrence of failure modes",
            "Phi coefficient of each pair over traces labelled for both: red modes appear together more "
            "often than chance, blue less.",
            _cooccurrence(s["cooccurrence"]),
            (6.5, 5.5),
            _cooccurrence_too_small(s["cooccurrence"]),
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
            _agreement_too_small(s["agreement"]),
        ),
        Chart(
            "features",
            "Step features: failing vs other steps",
            "Distributions (density) of step features for evidence/attributed steps vs all other steps of "
            "the labelled traces. Bins from n (Freedman–Diaconis, at most sqrt(n) and the distinct values)"
            + (f": {binned}." if binned else "."),
            _features(feature_split, bins),
            (10, 2.6 * math.ceil(n_features / 2)),
        ),
    ]


def render_png(chart: Chart, dpi: int = 100) -> bytes:
    plt = _plt()
    fig = plt.figure(figsize=chart.size, dpi=dpi, layout="constrained")
    try:
        if chart.too_small:
            _empty(fig.add_subplot(), chart.too_small)
        else:
            chart.draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _table(frame: pl.DataFrame) -> str:
    head = (
        "<tr><th class=l>mode</th><th class=l>name</th><th class=l>category</th><th class=l>stage</th>"
        "<th>labelled (n)</th><th>affected</th><th>prevalence</th><th>95% CI</th>"
        "<th class=l>interval (0–100%)</th></tr>"
    )
    body = []
    for r in frame.iter_rows(named=True):
        p, low, high = r["prevalence"] or 0.0, r["ci_low"] or 0.0, r["ci_high"] or 0.0
        text = "".join(
            f"<td class=l>{html.escape(str(r[k]))}</td>" for k in ("mode_id", "name", "category", "stage")
        )
        small = " class=small" if r["labelled"] < MIN_CELL_N else ""
        body.append(
            f"<tr{small}>{text}<td>{r['labelled']}</td><td>{r['affected']}</td><td>{100 * p:.1f}%</td>"
            f"<td>{100 * low:.1f}–{100 * high:.1f}%</td>"
            f"<td class=l><span class=ci><span class=w style='left:{160 * low:.0f}px;"
            f"width:{max(1, 160 * (high - low)):.0f}px'></span>"
            f"<span class=p style='left:{160 * p:.0f}px'></span></span></td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _inert(value: object) -> str:
    """Trace-supplied text as character references for everything but letters, digits, space, `-`
    and `_`: it reads the same in a browser, and no attribute, URL or tag survives in the source."""
    return "".join(c if c.isalnum() or c in " -_" else f"&#{ord(c)};" for c in str(value))


OPS_ROWS = 15  # per dimension in the report, the busiest; `stats --section ops` has them all


def ops_days_svg(days: pl.DataFrame) -> str:
    """Steps as bars and the error rate as a line over time: per day up to 92 days, per week up to
    two years, else per month, every period from the first to the last (none skipped). An inline
    SVG with text kept as text, the same bytes for the same data."""
    dated = days.select(pl.col("value").str.to_date().alias("day"), "steps", "errors")
    found = dated["day"].to_list()
    span = (max(found) - min(found)).days
    period, every = ("day", "1d") if span <= 92 else ("week", "1w") if span <= 730 else ("month", "1mo")
    binned = (
        dated.group_by(pl.col("day").dt.truncate(every).alias("start"))
        .agg(pl.col("steps").sum(), pl.col("errors").sum())
        .sort("start")
    )
    starts = binned["start"].to_list()
    axis = pl.date_range(starts[0], starts[-1], every, eager=True)
    full = pl.DataFrame({"start": axis}).join(binned, on="start", how="left")
    names = [str(d) for d in full["start"]]
    steps = full["steps"].fill_null(0).to_list()
    rates = [
        100 * e / n if n else float("nan") for e, n in zip(full["errors"].fill_null(0), steps, strict=True)
    ]
    plt = _plt()
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "tracefail"})
    fig = plt.figure(figsize=(10, 2.8), layout="constrained")
    try:
        ax = fig.add_subplot()
        ax.bar(range(len(names)), steps, width=0.8, color="#4c78a8")
        ax.set_ylabel(f"steps per {period}")
        ax.set_title(
            f"Steps per {period} (bars) and error rate (dots): n={sum(steps):,} steps, {len(names)} {period}s"
        )
        rate = ax.twinx()
        rate.plot(range(len(names)), rates, color="#e45756", linestyle="none", marker=".")
        rate.set_ylabel("errors, % of steps")
        rate.set_ylim(bottom=0)
        ticks = list(range(0, len(names), max(1, math.ceil(len(names) / 7))))
        ax.set_xticks(ticks, [names[i] for i in ticks])
        ax.set_xlim(-0.6, len(names) - 0.4)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _days_caption(days: pl.DataFrame) -> str:
    """What the time axis spans; past a year, that a corpus gathered from several sources keeps
    each trace's own recording date (samples and datasets recorded years apart), so most
    periods are empty."""
    values = sorted(str(v) for v in days["value"])
    first, last = values[0], values[-1]
    span = (date.fromisoformat(last) - date.fromisoformat(first)).days
    text = f"{days.height:,} days with steps, from {first} to {last}"
    if span > 365:
        text += (
            f" ({span / 365.25:.1f} years): each step keeps the time its trace was recorded, and traces "
            "gathered from several sources (samples, datasets) were recorded years apart, so most "
            "periods of this axis are empty"
        )
    return f"<figcaption>{html.escape(text)}</figcaption>"


def _ops(frame: pl.DataFrame | None) -> str:
    """Tokens, cost, latency and error rates per agent, model, session, framework and day, n beside
    each, and a chart of steps and errors over the days."""
    if frame is None or frame.is_empty():
        return ""

    def cell(text: str) -> str:  # the figure, then its interval and n in small print
        figure, _, rest = text.partition(" ")
        return (
            f"{html.escape(figure)} <span class=n>{html.escape(rest)}</span>" if rest else html.escape(figure)
        )

    head = (
        "<tr><th class=l>value</th><th>traces</th><th>steps</th><th>tokens in/out</th><th>cost USD</th>"
        "<th>p50 ms</th><th>p95 ms</th><th>errors</th><th>tool failures</th></tr>"
    )
    tables = []
    for dimension in ("agent", "model", "session", "framework", "day"):
        part = frame.filter(pl.col("dimension") == dimension)
        # the busiest agents, models and frameworks; the latest days
        part = (
            part.sort(["steps", "value"], descending=[True, False])
            if dimension != "day"
            else part.sort("value").tail(OPS_ROWS)
        )
        rows = []
        for r in part.head(OPS_ROWS).iter_rows(named=True):
            rows.append(
                f"<tr><td class=l>{_inert(r['value'])}</td><td>{r['traces']:,}</td><td>{r['steps']:,}</td>"
                + "".join(f"<td>{cell(f)}</td>" for f in ops_cells(r).values())
                + "</tr>"
            )
        total = frame.filter(pl.col("dimension") == dimension).height
        kept = "latest" if dimension == "day" else "with most steps"
        more = f" ({OPS_ROWS} of {total} {kept})" if total > OPS_ROWS else ""
        tables.append(f"<h3>per {dimension}{more}</h3><table>{head}{''.join(rows)}</table>")
    days = frame.filter(pl.col("dimension") == "day")
    chart = (
        f"<figure class=ops-days>{ops_days_svg(days)}{_days_caption(days)}</figure>"
        if days.height > 1
        else ""
    )
    return (
        "<section id='ops'><h2>Operations</h2><p class=note>Tokens, cost, latency and error rates as "
        "<code>tracefail stats --section ops</code> counts them; every figure with the n it rests on, "
        "rates with their Wilson 95% interval [low–high], empty where n = 0.</p>"
        f"{chart}{''.join(tables)}</section>"
    )


def _sources(result: Stats) -> str:
    """Per source the labels it had and those it counted, with the judges' validation."""
    head = (
        "<tr><th class=l>source</th><th>latest labels</th><th>counted</th><th>traces</th>"
        "<th>present verdicts</th><th class=l>validation</th></tr>"
    )
    body = []
    for r in result.sections["sources"].iter_rows(named=True):
        check = r["validation"] or ""
        mark = " class='l warn'" if check.startswith("not validated") else " class=l"
        body.append(
            f"<tr><td class=l>{html.escape(r['source'])}</td><td>{r['labels']}</td><td>{r['counted']}</td>"
            f"<td>{r['traces']}</td><td>{r['present_counted']}</td><td{mark}>{html.escape(check)}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def html_report(
    result: Stats,
    rendered: list[tuple[Chart, bytes]],
    corpus: dict[str, int],
    generated: str,
    ops: pl.DataFrame | None = None,
) -> str:
    cards = "".join(
        f"<div class=card><b>{v:,}</b><span>{html.escape(k)}</span></div>" for k, v in corpus.items()
    )
    sections = []
    for chart, png in rendered:
        data = base64.b64encode(png).decode("ascii")
        body = (
            f"<p class=warn>{html.escape(chart.too_small)}</p>"
            if chart.too_small
            else f"<img alt='{html.escape(chart.title)}' src='data:image/png;base64,{data}'>"
        )
        sections.append(
            f"<section id='{chart.slug}'><h2>{html.escape(chart.title)}</h2>"
            f"<p class=note>{html.escape(chart.note)}</p>{body}</section>"
        )
    wide = {"prevalence-by-framework", "features"}
    first = [s for (c, _), s in zip(rendered, sections, strict=True) if c.slug in wide]
    pairs = [s for (c, _), s in zip(rendered, sections, strict=True) if c.slug not in wide]
    modes = result.sections["modes"]
    title = "tracefail failure report"
    unvalidated = [src for src, v in result.validation.items() if v.startswith("not validated")]
    warning = f"<p class=warn>not validated: {html.escape(', '.join(unvalidated))}</p>" if unvalidated else ""
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body><header><h1>{title}</h1>"
        f"<p>taxonomy {html.escape(result.taxonomy)} · label policy {html.escape(result.policy)} · "
        f"sources {html.escape(', '.join(result.sources) or 'none')} · "
        f"generated {html.escape(generated)}</p>{warning}</header><main><div class=cards>{cards}</div>"
        "<section id='sources'><h2>Label sources</h2><p class=note>Per source: its latest label per "
        "trace and mode, how many of them decided a verdict under this policy, and for judges their "
        "agreement with the references (not validated: no references, or the kappa interval "
        f"includes 0).</p>{_sources(result)}</section>"
        f"{first[0] if first else ''}"
        "<section id='modes'><h2>Failure modes</h2><p class=note>Traces labelled for each mode (n), traces "
        "the policy's verdict says present, the Wilson 95% interval of the prevalence as a whisker with the "
        f"point estimate; grey rows: n &lt; {MIN_CELL_N}.</p>"
        f"{_table(modes)}</section>"
        f"<div class=grid>{''.join(pairs)}</div>{''.join(first[1:])}{_ops(ops)}"
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
