"""Online requests and latencies per day, from gold.online_requests (``medallion status``, the report).

Usage::

    from medallion.serving.stats import online_request_stats

    for day in online_request_stats(settings, spark):
        print(day.request_date, day.requests, day.hit_rate, day.p50_ms, day.p99_ms)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import functions as F

from medallion.config import Settings
from medallion.tables import Lakehouse


@dataclass(frozen=True)
class DayOfRequests:
    request_date: date
    requests: int
    precomputed: int
    unknown_cards: int
    p50_ms: float | None
    p99_ms: float | None
    model_versions: str

    @property
    def hit_rate(self) -> float:
        return self.precomputed / self.requests if self.requests else 0.0


def online_request_stats(settings: Settings, spark, days: int = 7) -> list[DayOfRequests]:
    """The last ``days`` days with online requests, newest first (empty before the first request)."""
    lake = Lakehouse(settings, spark)
    if not lake.exists("gold", "online_requests"):
        return []
    rows = (
        lake.table("gold", "online_requests")
        .read()
        .groupBy("request_date")
        .agg(
            F.count(F.lit(1)).alias("requests"),
            F.count_if("precomputed").alias("precomputed"),
            F.count_if(~F.col("card_known")).alias("unknown_cards"),
            F.percentile_approx("latency_ms", 0.5).alias("p50_ms"),
            F.percentile_approx("latency_ms", 0.99).alias("p99_ms"),
            F.array_join(F.array_sort(F.collect_set("model_version")), ",").alias("model_versions"),
        )
        .orderBy(F.col("request_date").desc())
        .limit(days)
        .collect()
    )
    return [DayOfRequests(**row.asDict()) for row in rows]
