"""Every table of the lakehouse, declared once: layer, name, schema and partitioning.

Usage::

    from medallion.catalog import SILVER_EVENTS

    events = lake.open(SILVER_EVENTS)     # created on first use; its schema checked after
    SILVER_EVENTS.id                      # 'silver.events'

Code that writes a table opens it from here, so a table's shape lives in one place. The gold
feature tables (features, card_profiles, training_set) take their columns from the first
rows the feature store writes: their specs carry no schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import StructType

from medallion.schemas import (
    BRONZE_SCHEMA,
    ONLINE_REQUESTS_SCHEMA,
    PREDICTIONS_BATCH_SCHEMA,
    PREDICTIONS_SHADOW_SCHEMA,
    PREDICTIONS_SPEED_SCHEMA,
    QUARANTINE_SCHEMA,
    RECONCILIATION_AUDIT_SCHEMA,
    SERVING_SCHEMA,
    SILVER_EVENTS_SCHEMA,
    SILVER_LABELS_SCHEMA,
    STREAM_METRICS_SCHEMA,
)


@dataclass(frozen=True)
class TableSpec:
    """One table: ``<storage.root>/tables/<layer>/<name>``."""

    layer: str
    name: str
    schema: StructType | None
    partition_by: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.layer}.{self.name}"


BRONZE_EVENTS = TableSpec("bronze", "events", BRONZE_SCHEMA)
BRONZE_LABELS = TableSpec("bronze", "labels", BRONZE_SCHEMA)
SILVER_EVENTS = TableSpec("silver", "events", SILVER_EVENTS_SCHEMA, ("event_date",))
SILVER_LABELS = TableSpec("silver", "labels", SILVER_LABELS_SCHEMA)
QUARANTINE = TableSpec("silver", "quarantine", QUARANTINE_SCHEMA, ("feed",))
FEATURES = TableSpec("gold", "features", None, ("event_date",))
CARD_PROFILES = TableSpec("gold", "card_profiles", None, ("profile_date",))
TRAINING_SET = TableSpec("gold", "training_set", None, ("event_date",))
PREDICTIONS_BATCH = TableSpec("gold", "predictions_batch", PREDICTIONS_BATCH_SCHEMA, ("event_date",))
PREDICTIONS_SPEED = TableSpec("gold", "predictions_speed", PREDICTIONS_SPEED_SCHEMA, ("event_date",))
PREDICTIONS_SHADOW = TableSpec("gold", "predictions_shadow", PREDICTIONS_SHADOW_SCHEMA, ("event_date",))
SERVING = TableSpec("gold", "predictions", SERVING_SCHEMA, ("event_date",))
RECONCILIATION_AUDIT = TableSpec("gold", "reconciliation_audit", RECONCILIATION_AUDIT_SCHEMA)
STREAM_METRICS = TableSpec("gold", "stream_metrics", STREAM_METRICS_SCHEMA)
ONLINE_REQUESTS = TableSpec("gold", "online_requests", ONLINE_REQUESTS_SCHEMA, ("request_date",))

BRONZE = {"events": BRONZE_EVENTS, "labels": BRONZE_LABELS}
SILVER = {"events": SILVER_EVENTS, "labels": SILVER_LABELS}
TABLES = (
    BRONZE_EVENTS, BRONZE_LABELS, SILVER_EVENTS, SILVER_LABELS, QUARANTINE,
    FEATURES, CARD_PROFILES, TRAINING_SET,
    PREDICTIONS_BATCH, PREDICTIONS_SPEED, PREDICTIONS_SHADOW, SERVING,
    RECONCILIATION_AUDIT, STREAM_METRICS, ONLINE_REQUESTS,
)  # fmt: skip
