"""The ``stream`` section: gold.stream_metrics per micro-batch, latency p50/p95 and rows/s over time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion.report.page import Section, empty, figure, fmt, html_table, img

if TYPE_CHECKING:
    from medallion.report.context import ReportContext


def stream_section(context: ReportContext) -> Section:
    title = "Stream latency and throughput"
    metrics = context.inputs.read("gold", "stream_metrics")
    if metrics is None:
        return empty("stream", title, "gold.stream_metrics is empty: run <code>medallion stream</code>")
    frame = _newest_batches(metrics)
    intro = (
        "<p>One point per micro-batch (the newest 5000): latency from landing to commit, and landed rows "
        "per second of trigger execution.</p>"
    )
    chart = img(_stream_figure(frame), "stream latency and throughput")
    return Section("stream", title, intro + chart + _summary_table(frame), True)


def _newest_batches(metrics: DataFrame, limit: int = 5000) -> pd.DataFrame:
    """The newest ``limit`` micro-batches' metrics, per query in commit order."""
    return (
        metrics.select(
            "query_name",
            "batch_id",
            "committed_at",
            "input_rows",
            "rows_per_second",
            "processing_ms",
            "latency_p50_ms",
            "latency_p95_ms",
            "quarantined",
            "model_version",
        )
        .orderBy(F.col("committed_at").desc())
        .limit(limit)
        .toPandas()
        .sort_values(["query_name", "committed_at"])
    )


def _summary_table(frame: pd.DataFrame) -> str:
    """One row per query: batches, rows, latency and rate figures, the model versions seen."""
    summary = frame.groupby("query_name").agg(
        batches=("batch_id", "count"),
        rows=("input_rows", "sum"),
        quarantined=("quarantined", "sum"),
        first_commit=("committed_at", "min"),
        last_commit=("committed_at", "max"),
        p50=("latency_p50_ms", "median"),
        p95=("latency_p95_ms", "max"),
        rate=("rows_per_second", "median"),
        models=("model_version", lambda v: ", ".join(sorted({str(x) for x in v.dropna()}))),
    )
    return html_table(
        [
            "query",
            "batches",
            "rows",
            "quarantined",
            "first commit",
            "last commit",
            "median p50 latency ms",
            "worst p95 latency ms",
            "median rows/s",
            "model versions",
        ],
        [
            (
                name,
                s.batches,
                s.rows,
                s.quarantined,
                _when(s.first_commit),
                _when(s.last_commit),
                fmt(s.p50),
                fmt(s.p95),
                fmt(s.rate),
                s.models,
            )
            for name, s in summary.iterrows()
        ],
        numeric={1, 2, 3, 6, 7, 8},
        table_id="stream-summary",
    )


def _when(value: Any) -> str:
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def _stream_figure(frame: pd.DataFrame) -> Any:
    chart, axes = figure(9, 6, 2, 1, sharex=True)
    latency, rate = axes[0, 0], axes[1, 0]
    for name, rows in frame.groupby("query_name"):
        when = pd.to_datetime(rows["committed_at"])
        latency.plot(when, rows["latency_p50_ms"], marker=".", label=f"{name} p50")
        latency.plot(when, rows["latency_p95_ms"], marker=".", linestyle="--", label=f"{name} p95")
        rate.plot(when, rows["rows_per_second"], marker=".", label=name)
    latency.set(ylabel="ms", title="latency, landed to committed")
    rate.set(ylabel="rows/s", xlabel="batch committed at (UTC)", title="throughput")
    latency.legend(fontsize="small")
    rate.legend(fontsize="small")
    rate.tick_params(axis="x", labelrotation=30)
    return chart
