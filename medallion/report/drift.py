"""The ``drift`` section: per day, the score histogram and the PSI of the score and of the champion's
most important features, against the reference (:mod:`medallion.report.reference`).

Spark does the binning: only counts per day and bin reach pandas.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion.report.inputs import SCORE
from medallion.report.page import Section, empty, figure, html_table, img
from medallion.report.psi import (
    PSI_MAJOR,
    PSI_MODERATE,
    aligned_categories,
    bin_index,
    psi_from_counts,
    quantile_edges,
)
from medallion.report.reference import Reference
from medallion.schemas import CATEGORICAL_FEATURES, FEATURE_COLUMNS

if TYPE_CHECKING:
    from medallion.report.context import ReportContext

_HISTOGRAM_BINS = 20
_PSI_BINS = 10


@dataclass
class _Drift:
    """The section's figures: PSI per followed name and day, events per day, the score histogram."""

    top: list[str]
    psi: dict[str, dict[date, float]] = field(default_factory=dict)
    events: dict[date, int] = field(default_factory=dict)
    hist: pd.DataFrame | None = None
    few: list[date] = field(default_factory=list)  # days with too few events for a PSI


def drift_section(context: ReportContext) -> Section:
    title = "Score and feature drift"
    scored = context.inputs.scores()
    features = context.inputs.read("gold", "features")
    if scored is None and features is None:
        return empty(
            "drift",
            title,
            "no predictions or features: run <code>medallion batch</code> or <code>medallion stream</code>",
        )
    reference = context.reference
    if reference is None or reference.frame.empty:
        return empty(
            "drift",
            title,
            "no training window or features to compare with: run <code>medallion features</code>",
        )
    drift = _measured(context, scored, features, reference)
    if not drift.events:
        return empty("drift", title, "no day has scores or features yet: run <code>medallion batch</code>")
    return Section("drift", title, "\n".join(_drift_parts(drift, reference, context.min_day_rows)), True)


def _measured(
    context: ReportContext, scored: DataFrame | None, features: DataFrame | None, reference: Reference
) -> _Drift:
    """PSI and histograms of the newest ``context.max_days`` days against ``reference``; a
    day with fewer than ``context.min_day_rows`` events gets NaN."""
    days: set[date] = set()
    for frame in (scored, features):
        if frame is not None:
            days |= {row.event_date for row in frame.select("event_date").distinct().collect()}
    shown = sorted(days)[-context.max_days :]
    drift = _Drift(_top_features(reference, context.top_features))
    if scored is not None and reference.scores is not None and reference.scores.size:
        drift.hist, drift.psi[SCORE] = _score_drift(
            scored.where(F.col("event_date").isin(shown)), reference.scores
        )
        drift.events = {day: int(row.sum()) for day, row in drift.hist.iterrows()}
    if features is not None and drift.top:
        feature_psi, feature_rows = _feature_drift(
            features.where(F.col("event_date").isin(shown)), reference.frame, drift.top
        )
        drift.psi.update(feature_psi)
        for day, rows in feature_rows.items():
            drift.events.setdefault(day, rows)
    drift.few = sorted(day for day, rows in drift.events.items() if rows < context.min_day_rows)
    for values in drift.psi.values():
        for day in drift.few:
            if day in values:
                values[day] = float("nan")
    return drift


def _drift_parts(drift: _Drift, reference: Reference, min_day_rows: int) -> list[str]:
    """The section's HTML: what is compared, the PSI chart and table, the score histograms."""
    top, few, psi_rows, events, hist = drift.top, drift.few, drift.psi, drift.events, drift.hist
    parts = [
        f"<p>Reference: {html.escape(reference.description)} ({len(reference.frame)} rows sampled). "
        f"PSI over {_PSI_BINS} quantile bins of the reference (one bin per category for categorical "
        f"features); below {PSI_MODERATE} stable, above {PSI_MAJOR} a major shift. Days: the newest "
        f"{len(events)} with predictions (batch where the night ran, else speed) or features.</p>"
    ]
    if reference.importance is not None:
        chosen = (
            f"the champion's {len(top)} most important features (permutation importance on the reference)"
        )
    else:
        chosen = f"the first {len(top)} features (no labelled reference to rank them by importance)"
    if top:
        parts.append(f"<p>Features followed: {html.escape(', '.join(top))}: {chosen}.</p>")
    if few:
        parts.append(
            f"<p>No PSI for {len(few)} day(s) with fewer than {min_day_rows} events, too few to fill "
            f"{_PSI_BINS} bins (late arrivals, typically): {', '.join(map(str, few))}.</p>"
        )
    plotted = {
        name: {day: value for day, value in values.items() if not math.isnan(value)}
        for name, values in psi_rows.items()
    }
    plotted = {name: values for name, values in plotted.items() if values}
    if plotted:
        parts.append(img(_psi_figure(plotted), "PSI per day"))
    names = list(psi_rows)
    parts.append(
        html_table(
            ["date", "events", *(f"PSI {name}" for name in names)],
            [
                (day, events[day], *(_psi_cell(psi_rows[name].get(day)) for name in names))
                for day in sorted(events)
            ],
            numeric=set(range(1, len(names) + 2)),
            table_id="psi-table",
            raw=True,
        )
    )
    if hist is not None and not hist.empty:
        enough = hist.loc[[day for day in hist.index if day not in few]]
        reference_hist = np.histogram(np.clip(reference.scores, 0, 1), bins=_HISTOGRAM_BINS, range=(0, 1))[0]
        parts.append("<h3>score distribution per day (reference outlined)</h3>")
        parts.append(
            img(
                _histogram_figure(enough if len(enough) else hist, reference_hist, psi_rows[SCORE]),
                "score histogram per day",
            )
        )
    return parts


def _top_features(reference: Reference, count: int) -> list[str]:
    if reference.importance is not None:
        return list(reference.importance.index[:count])
    return list(FEATURE_COLUMNS[:count])


def _score_drift(scored: DataFrame, reference: np.ndarray) -> tuple[pd.DataFrame, dict[date, float]]:
    """Per day: the score histogram (20 bins over [0, 1]) and the PSI against ``reference``."""
    edges = quantile_edges(reference, _PSI_BINS)
    counts = (
        scored.where(F.col(SCORE).isNotNull())
        .select(
            "event_date",
            F.least(F.floor(F.col(SCORE) * _HISTOGRAM_BINS), F.lit(_HISTOGRAM_BINS - 1))
            .cast("int")
            .alias("hist"),
            _bin_column(SCORE, edges).alias("bin"),
        )
        .groupBy("event_date", "hist", "bin")
        .count()
        .toPandas()
    )
    expected = np.bincount(bin_index(reference, edges), minlength=edges.size + 1)
    values: dict[date, float] = {}
    for day, rows in counts.groupby("event_date"):
        actual = rows.groupby("bin")["count"].sum().reindex(range(edges.size + 1), fill_value=0)
        values[day] = psi_from_counts(expected, actual.to_numpy())
    hist = counts.groupby(["event_date", "hist"])["count"].sum().unstack(fill_value=0)
    return hist.reindex(columns=range(_HISTOGRAM_BINS), fill_value=0), values


def _feature_drift(
    features: DataFrame, reference: pd.DataFrame, names: Sequence[str]
) -> tuple[dict[str, dict[date, float]], dict[date, int]]:
    """PSI per feature per day against ``reference``, and the rows per day; one Spark aggregation."""
    columns, binned = [], {}
    for name in names:
        if name in CATEGORICAL_FEATURES:
            expected = reference[name].dropna().astype(str).value_counts().to_dict()
            bins = F.col(name).cast("string")
        else:
            edges = quantile_edges(reference[name], _PSI_BINS)
            counts = np.bincount(bin_index(reference[name], edges), minlength=edges.size + 1)
            expected = {str(i): float(c) for i, c in enumerate(counts)}
            bins = _bin_column(name, edges).cast("string")
        columns.append(F.struct(F.lit(name).alias("variable"), bins.alias("bin")))
        binned[name] = expected
    counts = (
        features.select("event_date", F.explode(F.array(*columns)).alias("v"))
        .select("event_date", "v.variable", "v.bin")
        .where(F.col("bin").isNotNull())
        .groupBy("event_date", "variable", "bin")
        .count()
        .toPandas()
    )
    result: dict[str, dict[date, float]] = {name: {} for name in names}
    for (day, name), rows in counts.groupby(["event_date", "variable"]):
        actual = dict(zip(rows["bin"], rows["count"].astype(float), strict=True))
        result[name][day] = psi_from_counts(*aligned_categories(binned[name], actual))
    per_day = counts.groupby(["event_date", "variable"])["count"].sum().groupby("event_date").max()
    return result, {day: int(rows) for day, rows in per_day.items()}


def _bin_column(name: str, edges: np.ndarray):
    """Spark twin of :func:`bin_index`: the number of edges strictly below the value (null stays null)."""
    column = F.col(name)
    index = F.lit(0)
    for edge in edges:
        index = index + F.when(column > F.lit(float(edge)), 1).otherwise(0)
    return F.when(column.isNull(), F.lit(None)).otherwise(index)


def _psi_cell(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    level = "major" if value > PSI_MAJOR else "moderate" if value > PSI_MODERATE else "stable"
    return f'<span class="psi-{level}">{value:.3f}</span>'


def _psi_figure(psi_rows: dict[str, dict[date, float]]) -> Any:
    chart, axes = figure(9, 4)
    ax = axes[0, 0]
    for name, values in psi_rows.items():
        days = sorted(values)
        ax.plot([str(d) for d in days], [values[d] for d in days], marker="o", label=name)
    ax.axhline(PSI_MODERATE, color="#ff9800", linestyle=":", label=f"moderate ({PSI_MODERATE})")
    ax.axhline(PSI_MAJOR, color="#e53935", linestyle="--", label=f"major ({PSI_MAJOR})")
    ax.set(ylabel="PSI", title="PSI per day vs the reference")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return chart


def _histogram_figure(hist: pd.DataFrame, reference: np.ndarray, psi_by_day: dict[date, float]) -> Any:
    days = list(hist.index)
    cols = min(4, len(days))
    rows = math.ceil(len(days) / cols)
    chart, axes = figure(3 * cols, 2.3 * rows, rows, cols, sharex=True, sharey=True)
    centres = (np.arange(_HISTOGRAM_BINS) + 0.5) / _HISTOGRAM_BINS
    reference_share = reference / max(reference.sum(), 1)
    for i, ax in enumerate(axes.flat):
        if i >= len(days):
            ax.set_visible(False)
            continue
        counts = hist.loc[days[i]].to_numpy(dtype="float64")
        ax.bar(centres, counts / max(counts.sum(), 1), width=1 / _HISTOGRAM_BINS, color="#5c8dd6")
        ax.step(centres, reference_share, where="mid", color="#333", linewidth=1)
        ax.set_yscale("log")
        value = psi_by_day.get(days[i], float("nan"))
        ax.set_title(f"{days[i]} · PSI {value:.3f} · n={int(counts.sum())}", fontsize="small")
    chart.supxlabel("score")
    chart.supylabel("share of the day's events")
    return chart
