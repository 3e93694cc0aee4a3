"""The ``agreement`` section: gold.reconciliation_audit per date, batch scores against speed scores."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from medallion.reconcile import latest_audits
from medallion.report.page import Section, empty, figure, fmt, html_table, img

if TYPE_CHECKING:
    from medallion.report.context import ReportContext

_OUTCOMES = (
    ("agreed", "#4caf50"),
    ("disagreed_same_version", "#e53935"),
    ("disagreed_other_version", "#ff9800"),
    ("speed_only", "#42a5f5"),
    ("batch_only", "#7e57c2"),
    ("rejected_speed", "#616161"),
)


def agreement_section(context: ReportContext) -> Section:
    title = "Batch vs speed agreement"
    audit = context.inputs.read("gold", "reconciliation_audit")
    if audit is None:
        return empty(
            "agreement",
            title,
            "gold.reconciliation_audit is empty: run <code>medallion batch</code> or <code>medallion reconcile</code>",
        )
    rows = (
        latest_audits(audit)
        .orderBy(F.col("event_date").desc())
        .limit(max(context.max_days, 60))
        .toPandas()
        .sort_values("event_date")
    )
    rows["disagreed"] = rows["disagreed_same_version"] + rows["disagreed_other_version"]
    compared = rows["agreed"] + rows["disagreed"]
    rows["agreement"] = np.where(compared > 0, rows["agreed"] / compared.where(compared > 0, 1), np.nan)
    table = html_table(
        [
            "date",
            "agreed",
            "disagreed (same model)",
            "disagreed (other model)",
            "speed only",
            "batch only",
            "late arrivals",
            "rejected speed",
            "decision flips",
            "max |diff|",
            "agreement",
            "batch v / speed v",
        ],
        [
            (
                r.event_date,
                r.agreed,
                r.disagreed_same_version,
                r.disagreed_other_version,
                r.speed_only,
                r.batch_only,
                r.late_arrivals,
                r.rejected_speed,
                r.decision_flips,
                fmt(r.max_abs_diff),
                "-" if math.isnan(r.agreement) else f"{r.agreement:.1%}",
                f"{r.batch_version} / {r.speed_version}",
            )
            for r in rows.itertuples(index=False)
        ],
        numeric=set(range(1, 11)),
        table_id="agreement-table",
    )
    intro = (
        "<p>The latest reconciliation of each date: speed rows agree when |batch score &minus; speed score| "
        f"&le; {context.settings.reconcile.tolerance:g}. Speed-only rows after the night ran are late arrivals; "
        "rejected speed rows are events silver does not hold (quarantined or duplicates).</p>"
    )
    return Section(
        "agreement", title, intro + img(_agreement_figure(rows), "agreement per date") + table, True
    )


def _agreement_figure(rows: pd.DataFrame) -> Any:
    chart, axes = figure(max(6, 0.6 * len(rows) + 2), 4)
    ax = axes[0, 0]
    labels = [str(d) for d in rows["event_date"]]
    bottom = np.zeros(len(rows))
    for name, colour in _OUTCOMES:
        values = rows[name].to_numpy(dtype="float64")
        ax.bar(labels, values, bottom=bottom, label=name.replace("_", " "), color=colour)
        bottom += values
    ax.set(ylabel="events", title="batch vs speed per date")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return chart
