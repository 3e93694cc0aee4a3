"""The ``layers`` section: every Delta table, silver.quarantine by reason, stream checkpoints."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

from medallion.report.inputs import RunInputs
from medallion.report.page import Section, empty, figure, html_table, img, no_data

if TYPE_CHECKING:
    from medallion.report.context import ReportContext

_LAYER_COLOURS = {"bronze": "#b08d57", "silver": "#9ea7ad", "gold": "#d4a017"}


def layers_section(context: ReportContext) -> Section:
    from medallion.status import stream_status, table_status

    title = "Layers"
    tables = table_status(context.settings, context.spark)
    if not tables:
        return empty(
            "layers", title, "run <code>medallion datagen</code>, then <code>medallion ingest</code>"
        )
    lake = context.inputs.lake
    parts = [
        f"<p>Delta engine <code>{html.escape(lake.engine)}</code>: {html.escape(lake.engine_reason)}</p>",
        html_table(
            ["table", "version", "rows", "last write", "operation"],
            [(t.name, t.version, t.rows, t.last_write, t.operation) for t in tables],
            numeric={1, 2},
        ),
        img(_layers_figure(tables), "rows per Delta table"),
        "<h3>silver.quarantine by reason</h3>",
    ]
    reasons = quarantine_reasons(context.inputs)
    if reasons.empty:
        parts.append(no_data("silver.quarantine holds no records: run <code>medallion ingest</code>"))
    else:
        parts.append("<p>A record may fail more than one check: it then counts once under each reason.</p>")
        parts.append(
            html_table(
                ["feed", "reason", "records"],
                reasons.itertuples(index=False, name=None),
                numeric={2},
                table_id="quarantine-reasons",
            )
        )
        parts.append(img(_quarantine_figure(reasons), "quarantined records per reason"))
    streams = stream_status(context.settings)
    if streams:
        parts.append("<h3>stream checkpoints</h3>")
        parts.append(
            html_table(
                ["query", "last batch", "last commit"],
                [(s.query, "-" if s.last_batch is None else s.last_batch, s.last_commit) for s in streams],
                numeric={1},
            )
        )
    return Section("layers", title, "\n".join(parts), True)


# Reason kinds listed one by one; the rest share one row, so the chart is bounded whatever the data holds.
MAX_REASON_KINDS = 40


def reason_kind(reason: Column) -> Column:
    """A quarantine reason without the value it quotes: ``unknown currency: XXX`` and
    ``unknown currency: ZZZ`` are one kind, ``unknown currency``. The field a required-field
    reason names stays (the fields are few and fixed)."""
    return F.when(reason.startswith("missing required field"), reason).otherwise(
        F.trim(F.regexp_extract(reason, r"^([^:=]*)", 1))
    )


def quarantine_reasons(inputs: RunInputs) -> pd.DataFrame:
    """Columns feed, reason (its kind, see :func:`reason_kind`), records (records carrying a
    reason of that kind), most frequent first; past :data:`MAX_REASON_KINDS` rows, one
    ``(other kinds)`` row per feed."""
    quarantine = inputs.read("silver", "quarantine")
    if quarantine is None:
        return pd.DataFrame(columns=["feed", "reason", "records"])
    counts = (
        quarantine.select("feed", F.explode("reasons").alias("reason"))
        .select("feed", reason_kind(F.col("reason")).alias("reason"))
        .groupBy("feed", "reason")
        .agg(F.count(F.lit(1)).alias("records"))
        .toPandas()
    )
    counts = counts.sort_values(["records", "feed", "reason"], ascending=[False, True, True])
    shown, rest = counts.iloc[:MAX_REASON_KINDS], counts.iloc[MAX_REASON_KINDS:]
    if not rest.empty:
        others = rest.groupby("feed", as_index=False)["records"].sum().assign(reason="(other kinds)")
        shown = pd.concat([shown, others[["feed", "reason", "records"]]])
    return shown.reset_index(drop=True)


def _layers_figure(tables) -> Any:
    chart, axes = figure(7, 0.3 * len(tables) + 1)
    ax = axes[0, 0]
    names = [t.name for t in tables][::-1]
    rows = [max(t.rows, 0) for t in tables][::-1]
    colours = [_LAYER_COLOURS.get(t.name.split(".")[0], "#777") for t in tables][::-1]
    ax.barh(names, rows, color=colours)
    if max(rows, default=0) > 0:
        ax.set_xscale("symlog", linthresh=1)
    ax.set(xlabel="rows", title="rows per table")
    return chart


def _quarantine_figure(reasons: pd.DataFrame) -> Any:
    chart, axes = figure(7, 0.3 * len(reasons) + 1)
    ax = axes[0, 0]
    labels = [f"{feed}: {reason}" for feed, reason in zip(reasons["feed"], reasons["reason"], strict=True)][
        ::-1
    ]
    ax.barh(labels, reasons["records"].to_numpy()[::-1], color="#c0504d")
    ax.set(xlabel="records", title="silver.quarantine by reason")
    return chart
