"""The speed layer's predictions on the driver: stamped, timed from landing, upserted into serving.

A micro-batch's scored rows come to the driver once (one Spark job) as Arrow; every commit
and figure of the batch is made from that table.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from pyspark.sql import Column
from pyspark.sql import functions as F

from medallion.schemas import PREDICTIONS_SPEED_SCHEMA
from medallion.tables import Table

# Stamped on the driver once scored. A value in a Spark plan is compiled into its generated
# code: with the batch id and a timestamp in it, the scoring stage would be compiled anew
# (and run before the JIT had optimised it) every micro-batch.
STAMPS = ("scored_at", "batch_id")
UNSTAMPED_COLUMNS = [name for name in PREDICTIONS_SPEED_SCHEMA.fieldNames() if name not in STAMPS]


def stamped(rows: pa.Table, batch_id: int) -> pa.Table:
    """Scored rows (:data:`UNSTAMPED_COLUMNS`) as gold.predictions_speed rows: ``scored_at``
    (now) and ``batch_id`` added."""
    n = rows.num_rows
    rows = rows.append_column(
        "scored_at", pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC"))
    ).append_column("batch_id", pa.array([batch_id] * n, pa.int64()))
    return rows.select(PREDICTIONS_SPEED_SCHEMA.fieldNames())


def serving_rows(predictions: pa.Table) -> pa.Table:
    """Speed predictions (gold.predictions_speed rows, on the driver) as serving rows."""
    n = predictions.num_rows
    rows = predictions.select(["event_id", "event_date", "score", "decision", "model_version", "scored_at"])
    return (
        rows.append_column("source", pa.array(["speed"] * n, pa.string()))
        .append_column("missing_in_speed", pa.array([False] * n, pa.bool_()))
        .append_column("updated_at", pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")))
    )


def upsert_serving(serving: Table, rows: pa.Table) -> None:
    """Serving rows of speed predictions (:func:`serving_rows`) into gold.predictions.

    The batch layer is the truth: a speed row never replaces a batch row.
    """
    serving.merge(rows, on=["event_date", "event_id"], update_condition="target.source = 'speed'")


def landed_seconds(predictions: pa.Table) -> np.ndarray:
    """Epoch seconds at which each prediction's event landed (rows without a landing time left out)."""
    landed = predictions.column("landed_at").drop_null()
    return landed.cast(pa.int64()).to_numpy() / 1e6


def landing_latencies_ms(predictions: pa.Table, committed: float) -> tuple[float | None, float | None]:
    """(p50, p95) milliseconds from landing to ``committed`` (epoch seconds); None without
    landing times (a Kafka record lands when it is produced)."""
    landed = landed_seconds(predictions)
    if not len(landed):
        return None, None
    # committed - quantile_p(landed) is the (1 - p) quantile of landed -> committed.
    p50, p95 = (max(0.0, committed - float(q)) * 1000 for q in np.quantile(landed, [0.5, 0.05]))
    return p50, p95


def canary_cards(card_id: Column, fraction: float) -> Column:
    """True for a stable ``fraction`` of cards: the same card always lands on the same side."""
    return (F.abs(F.xxhash64(card_id)) % 10_000) < F.lit(round(fraction * 10_000))
