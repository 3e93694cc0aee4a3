"""The typed sections of medallion's settings, and :class:`Settings`, the whole of them.

Every section forbids unknown keys and validates on assignment; secrets (Kafka SASL
passwords, JAAS configs, passwords inside URLs) show as ``***`` wherever settings are shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medallion.config.base import DEFAULT_ENV, Section
from medallion.config.storage import StorageSettings


class SparkSettings(Section):
    """How a local session is built. Ignored when spark-submit or Databricks owns the session."""

    master: str = "local[2]"
    app_name: str = "medallion"
    shuffle_partitions: int = Field(default=4, ge=1)
    arrow_max_records_per_batch: int = Field(default=100_000, ge=1)
    driver_memory: str = Field(
        default="4g", pattern=r"^\d+[kmgt]?$", description="JVM heap of a local session (spark.driver.memory)"
    )
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "ERROR"
    driver_java_options: str = Field(
        default="",
        description=(
            "JVM options added after medallion's own for a local session's driver (spark-submit's "
            "driver takes SPARK_SUBMIT_OPTS or spark.driver.extraJavaOptions instead); "
            "-XX:TieredStopAtLevel=1 suits short jobs, see docs/performance.md"
        ),
    )
    conf: dict[str, str] = Field(default_factory=dict, description="extra spark confs")

    @field_validator("conf", mode="before")
    @classmethod
    def _conf_as_strings(cls, value: Any) -> Any:
        # Spark confs are strings; YAML reads `true`/`4` as bool/int.
        if isinstance(value, Mapping):
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class DeltaSettings(Section):
    """Which Delta engine: ``spark`` (delta-spark jars), ``rs`` (embedded delta-rs) or ``auto``."""

    engine: Literal["auto", "spark", "rs"] = "auto"


TriggerKind = Literal["processingTime", "availableNow", "once", "continuous", "realTime"]
_DEFAULT_INTERVALS = {"processingTime": "5 seconds", "continuous": "1 second", "realTime": "5 seconds"}


_INTERVAL = re.compile(r"^\s*\d+(\.\d+)?\s*(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|h)\s*$")


class TriggerSettings(Section):
    """A Structured Streaming trigger. ``interval`` applies to processingTime, continuous and
    realTime (there, each long-running batch's duration)."""

    kind: TriggerKind = "processingTime"
    interval: str | None = None

    @field_validator("interval")
    @classmethod
    def _interval_is_spark_duration(cls, value: str | None) -> str | None:
        if value is not None and not _INTERVAL.match(value):
            raise ValueError("expected a duration such as '5 seconds', '500 milliseconds' or '1 minute'")
        return value

    @model_validator(mode="after")
    def _default_interval(self) -> TriggerSettings:
        if self.interval is None and self.kind in _DEFAULT_INTERVALS:
            object.__setattr__(self, "interval", _DEFAULT_INTERVALS[self.kind])
        return self


# Option names whose values are secrets: shown as '***' by config show, --explain and logs.
_SECRET = re.compile(r"password|secret|jaas|token|credential|(^|\.)key$", re.IGNORECASE)


# A password inside a URL (redis://:pw@host, https://user:pw@host): the rest of the URL is shown.
_URL_PASSWORD = re.compile(r"(//[^/@:\s]*:)[^@/\s]+@")


def is_secret(key: str) -> bool:
    return bool(_SECRET.search(key))


def _shown(key: str, value: Any) -> Any:
    if is_secret(key):
        return "***"
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\1***@", value)
    return value


class KafkaSettings(Section):
    """The stream's Kafka source and sink, and the local development broker."""

    bootstrap_servers: str | None = None
    topic: str | None = Field(default=None, description="events topic the stream reads")
    scores_topic: str | None = Field(default=None, description="topic stream.sink=kafka writes scores to")
    quarantine_topic: str | None = Field(
        default=None,
        description="stream.sink=kafka: records that did not parse or score, as silver.quarantine rows",
    )
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = Field(default=None, ge=1, description="records per micro-batch")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Kafka client options (security.protocol, sasl.*): passed as kafka.<option>",
    )
    local_port: int = Field(default=9092, ge=1, le=65535, description="make kafka-up's broker port")
    local_partitions: int = Field(default=2, ge=1, description="partitions of topics make kafka-up creates")

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_strings(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class RateSettings(Section):
    rows_per_second: int = Field(default=100, ge=1)
    # Each continuous partition holds a core for the whole run: keep some free for other jobs.
    partitions: int = Field(default=1, ge=1, description="rate source partitions (continuous: one core each)")


class StreamSettings(Section):
    """The speed layer's query: source, trigger, sink and how the challenger takes part."""

    source: Literal["files", "kafka", "rate"] = "files"
    sink: Literal["delta", "memory", "console", "kafka"] = "delta"
    trigger: TriggerSettings = Field(default_factory=TriggerSettings)
    max_bytes_per_trigger: int | None = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="bound each micro-batch of landing files by their total bytes: the driver holds one batch's rows",
    )
    max_files_per_trigger: int | None = Field(
        default=None,
        ge=1,
        description="bound each micro-batch by file count instead (takes precedence when set)",
    )
    query_name: str = Field(default="score_events", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    rate: RateSettings = Field(default_factory=RateSettings)
    challenger: Literal["off", "shadow", "canary"] = "off"
    canary_fraction: float = Field(default=0.1, ge=0, le=1)
    compact_every: int = Field(
        default=100,
        ge=0,
        description="compact the small files the stream's appends leave every this many micro-batches (0: never)",
    )
    continuous_arrow_batch_rows: int = Field(
        default=1,
        ge=1,
        description="rows per Arrow batch for pandas UDFs in continuous mode (a UDF waits to fill one)",
    )
    refresh_seconds: float | None = Field(
        default=60,
        gt=0,
        description=(
            "continuous and realTime: how often to check gold.card_profiles and the champion; "
            "when either moved, the query restarts from its checkpoint on the new ones (null: never)"
        ),
    )

    @field_validator("challenger", mode="before")
    @classmethod
    def _yaml_off_is_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as False.
        return "off" if value is False else value


class ModelAliases(Section):
    champion: str = "champion"
    challenger: str = "challenger"


class GateSettings(Section):
    """What a challenger must reach before it may become champion."""

    min_roc_auc: float = Field(default=0.75, ge=0, le=1)
    min_pr_auc: float = Field(default=0.2, ge=0, le=1)
    max_ms_per_10k_rows: float = Field(default=5000, gt=0)
    max_regression: float = Field(default=0.02, ge=0, description="allowed ROC AUC drop vs champion")


class TrainSettings(Section):
    validation_days: int = Field(default=2, ge=1)
    max_iter: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=0.1, gt=0)
    seed: int = 7


class ModelSettings(Section):
    name: str = "fraud_model"
    aliases: ModelAliases = Field(default_factory=ModelAliases)
    decision_threshold: float = Field(default=0.5, ge=0, le=1)
    scoring: Literal["pandas_udf", "native", "auto"] = Field(
        default="pandas_udf",
        description="pandas_udf (the reference), native (compiled to run in the JVM), auto (native where parity holds)",
    )
    gate: GateSettings = Field(default_factory=GateSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)


class DatagenSettings(Section):
    """The synthetic landing-zone generator (``medallion datagen``)."""

    seed: int = 42
    cards: int = Field(default=1000, ge=1)
    merchants: int = Field(default=300, ge=1)
    days: int = Field(default=14, ge=1)
    events_per_day: int = Field(default=2000, ge=1)
    files_per_day: int = Field(default=12, ge=1)
    compromised_card_fraction: float = Field(default=0.03, ge=0, le=1)
    malformed_fraction: float = Field(default=0.01, ge=0, le=1)
    duplicate_fraction: float = Field(default=0.01, ge=0, le=1)
    late_fraction: float = Field(default=0.02, ge=0, le=1)
    label_delay_days: int = Field(default=2, ge=0)
    label_correction_fraction: float = Field(default=0.01, ge=0, le=1)
    follow_rate: float = Field(default=20.0, gt=0, description="events per second with --follow")


class IngestSettings(Section):
    """Landing zone -> bronze -> silver (see :mod:`medallion.ingest`)."""

    settle_seconds: float = Field(
        default=0,
        ge=0,
        description="a landing file is taken once unchanged this long (files copied in place, not renamed)",
    )
    dedupe_days: int = Field(
        default=7,
        ge=0,
        description="an event id already in silver this many days around an event's date is a duplicate",
    )


class BatchSettings(Section):
    """The nightly batch layer."""

    retrain: bool = Field(default=False, description="train, validate and promote before scoring")
    late_days: int = Field(
        default=7,
        ge=0,
        description="also score the days this far back that hold events the batch has not scored",
    )


class ReconcileSettings(Section):
    """Folding the speed layer back into the batch layer."""

    tolerance: float = Field(default=1e-6, ge=0, description="|batch - speed| score still 'agreed'")
    speed_retention_days: int = Field(
        default=7, ge=0, description="keep speed rows the batch superseded this long"
    )


class ServingSettings(Section):
    """The online side (``medallion serve api`` / ``serve materialize``) and its store."""

    store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="sqlite: a file under the storage root, no server; redis: redis_url"
    )
    sqlite_path: str | None = Field(default=None, description="default <root>/serving/online.sqlite")
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = Field(default="medallion", pattern=r"^[A-Za-z0-9_.-]+$")
    redis_grace_seconds: int = Field(
        default=300, ge=1, description="a replaced generation's keys live this long for readers still on it"
    )
    max_batch: int = Field(default=100, ge=1, description="most transactions in one POST /score")
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    round_decimals: int = Field(
        default=6, ge=0, le=12, description="model inputs rounded to this many decimals before hashing"
    )
    late_days: int = Field(
        default=1, ge=0, description="materialize the card profiles of today and this many days before"
    )
    serving_days: int = Field(default=7, ge=0, description="serving rows of the last days the store holds")
    poll_seconds: float = Field(default=5.0, gt=0, description="how often the API checks the champion alias")
    log_flush_seconds: float = Field(default=2.0, gt=0, description="gold.online_requests: one commit per")
    log_flush_rows: int = Field(default=5000, ge=1, description="...or per this many requests")
    writeback_ttl_hours: float = Field(
        default=48, gt=0, description="redis: how long a written-back score lives"
    )
    stream_writes: bool = Field(
        default=True,
        description="the stream writes each serving row it commits to the online store, so GET /predictions is current",
    )
    stream_rows_ttl_hours: float = Field(
        default=48,
        gt=0,
        description="how long the stream's serving rows stay (a nightly materialize has them by then)",
    )


class ClockSettings(Section):
    """Which day it is for the pipeline (see :mod:`medallion.clock`)."""

    today: date | None = Field(
        default=None, description="pin the business day (YYYY-MM-DD); default: the real UTC date"
    )


class ExpectationSettings(Section):
    """One declared row expectation (see :mod:`medallion.expectations`)."""

    check: str = Field(description="Spark SQL over silver columns; a row should make it true")
    action: Literal["warn", "drop", "quarantine", "fail"] = "quarantine"


class ExpectationsSettings(Section):
    """Declared expectations per feed, by name, on top of the built-in checks."""

    events: dict[str, ExpectationSettings] = Field(default_factory=dict)
    labels: dict[str, ExpectationSettings] = Field(default_factory=dict)


class Settings(Section):
    """All of medallion's configuration, validated."""

    env: str = DEFAULT_ENV
    storage: StorageSettings = Field(default_factory=StorageSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    delta: DeltaSettings = Field(default_factory=DeltaSettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    datagen: DatagenSettings = Field(default_factory=DatagenSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    clock: ClockSettings = Field(default_factory=ClockSettings)
    expectations: ExpectationsSettings = Field(default_factory=ExpectationsSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)

    # Not configuration: where each dotted key's value came from.
    _provenance: dict[str, str] = {}

    @property
    def provenance(self) -> dict[str, str]:
        return dict(self._provenance)

    def flat(self) -> dict[str, Any]:
        """The settings as ``{"stream.trigger.kind": "availableNow", ...}``, secrets (and
        passwords inside URLs) as ``***``."""
        return {key: _shown(key, value) for key, value in flatten(self.model_dump())}

    def redacted(self) -> dict[str, Any]:
        """:meth:`model_dump` with secret values (Kafka SASL passwords, JAAS configs) as ``***``."""
        return _redacted(self.model_dump())


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``("a.b", 1)``; an empty mapping is a leaf."""
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from flatten(value, dotted + ".")
        else:
            yield dotted, value


def _redacted(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    return {
        key: _redacted(value, f"{prefix}{key}.")
        if isinstance(value, Mapping) and value
        else _shown(f"{prefix}{key}", value)
        for key, value in tree.items()
    }
