"""The ``online`` section: gold.online_requests per day, hits and misses, latency percentiles."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import functions as F

from medallion.report.page import Section, empty, figure, fmt, html_table, img

if TYPE_CHECKING:
    from medallion.report.context import ReportContext

PERCENTILES = (0.5, 0.95, 0.99)


def online_section(context: ReportContext) -> Section:
    title = "Online scoring"
    requests = context.inputs.read("gold", "online_requests")
    if requests is None:
        return empty(
            "online",
            title,
            "gold.online_requests is empty: run <code>medallion serve api</code> and send it requests",
        )
    frame = online_days(requests).tail(context.max_days)
    table = html_table(
        ["day", "requests", "precomputed", "hit rate", "misses native", "misses pyfunc", "unknown cards"]
        + [f"p{round(p * 100)} ms" for p in PERCENTILES]
        + ["model versions"],
        [
            (
                str(day["request_date"]),
                day["requests"],
                day["precomputed"],
                f"{day['precomputed'] / day['requests']:.1%}",
                day["native"],
                day["pyfunc"],
                day["unknown_cards"],
                *[fmt(day[_column(p)]) for p in PERCENTILES],
                day["model_versions"],
            )
            for _, day in frame.iterrows()
        ],
        numeric={1, 2, 4, 5, 6, 7, 8, 9},
        table_id="online-days",
    )
    intro = (
        "<p>Every answer of <code>POST /score</code>, per day: a hit is a score the night (or an earlier "
        "miss) precomputed for the same rounded inputs and model version; a miss ran the champion in "
        "process. Latency is the service's own, from the request's validation to its answer.</p>"
    )
    return Section(
        "online", title, intro + img(_online_figure(frame), "online requests and latency") + table, True
    )


def online_days(requests) -> pd.DataFrame:
    """One row per request day, oldest first: counts of hits, misses by scoring path, unknown
    cards, latency percentiles and the model versions that answered."""
    misses = ~F.col("precomputed")
    return (
        requests.groupBy("request_date")
        .agg(
            F.count(F.lit(1)).alias("requests"),
            F.count_if("precomputed").alias("precomputed"),
            F.count_if(misses & (F.col("scored_by") == "native")).alias("native"),
            F.count_if(misses & (F.coalesce(F.col("scored_by"), F.lit("pandas_udf")) != "native")).alias(
                "pyfunc"
            ),
            F.count_if(~F.col("card_known")).alias("unknown_cards"),
            *[F.percentile_approx("latency_ms", p).alias(_column(p)) for p in PERCENTILES],
            F.array_join(F.array_sort(F.collect_set("model_version")), ",").alias("model_versions"),
        )
        .orderBy("request_date")
        .toPandas()
    )


def _column(p: float) -> str:
    return f"p{round(p * 100)}_ms"


def _online_figure(frame: pd.DataFrame) -> Any:
    chart, axes = figure(9, 6, 2, 1, sharex=True)
    volume, latency = axes[0, 0], axes[1, 0]
    days = [str(day) for day in frame["request_date"]]
    misses = frame["requests"] - frame["precomputed"]
    volume.bar(days, frame["precomputed"], label="precomputed (hit)")
    volume.bar(days, misses, bottom=frame["precomputed"], label="scored in process (miss)")
    volume.set(ylabel="requests", title="requests per day")
    volume.legend(fontsize="small")
    for p in PERCENTILES:
        latency.plot(days, frame[_column(p)], marker="o", label=f"p{round(p * 100)}")
    latency.set(ylabel="ms", xlabel="request day (UTC)", title="service latency")
    latency.legend(fontsize="small")
    latency.tick_params(axis="x", labelrotation=30)
    return chart
