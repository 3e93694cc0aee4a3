"""Typed settings: ``conf/base.yaml`` <- ``conf/<env>.yaml`` <- ``MEDALLION__*`` <- ``--set``.

Usage::

    from medallion.config import load_settings

    settings = load_settings(env="local", overrides=["stream.trigger.kind=availableNow"])
    settings.storage.table_path("silver", "events")   # '<root>/tables/silver/events'
    settings.stream.trigger.kind                      # 'availableNow'

Every value remembers the layer it came from (:attr:`Settings.provenance`), so
``medallion config show --explain`` can say why a value is what it is, and an error can
name the file that holds a bad key.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medallion.errors import ConfigError

ENV_PREFIX = "MEDALLION__"
DEFAULT_ENV = "local"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _name(value: str, what: str) -> str:
    """A name that becomes one path segment: no separators, no ``..``."""
    if not _SAFE_NAME.match(value) or ".." in value:
        raise ConfigError(f"{what} {value!r} must be letters, digits, '_', '-' or '.' (one path segment)")
    return value


class StorageSettings(_Section):
    """Where everything lives: one root for landing zone, tables, checkpoints and MLflow."""

    root: str = "./lakehouse"
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<root>/mlflow.db"
    )
    artifact_root: str | None = Field(
        default=None,
        description="MLflow model artifacts; default <root>/mlartifacts (on Databricks: the workspace's). "
        "Never under the landing zone: a model is code that batch, stream and serving load, and "
        "producers write the landing zone",
    )
    experiment: str = Field(
        default="medallion",
        description="MLflow experiment name; with tracking_uri databricks a workspace path (/Shared/medallion)",
    )

    @model_validator(mode="after")
    def _experiment_where_the_tracking_server_wants_it(self) -> StorageSettings:
        if self.tracks_on_databricks and not self.experiment.startswith("/"):
            raise ConfigError(
                f"storage.experiment={self.experiment!r}: Databricks names experiments by workspace path; "
                "set storage.experiment=/Shared/medallion (or /Users/<you>/medallion)"
            )
        return self

    @model_validator(mode="after")
    def _artifacts_outside_landing(self) -> StorageSettings:
        if self.mlflow_artifact_location is None:
            return self
        landing, artifacts = self._under("landing").rstrip("/"), self.mlflow_artifact_location.rstrip("/")
        if not _URI.match(landing):
            landing = Path(landing).as_uri()
        if artifacts == landing or artifacts.startswith(landing + "/"):
            raise ConfigError(
                f"storage.artifact_root {self.artifact_root!r} is inside the landing zone {landing}: "
                "whoever drops input files could replace a model; choose a path outside <root>/landing"
            )
        return self

    @property
    def is_uri(self) -> bool:
        """``s3://``, ``abfss://``, ``gs://``, ``dbfs:/`` ...: kept as given, never resolved
        against the working directory (``/Volumes/...`` is a local path)."""
        return bool(_URI.match(self.root))

    @property
    def root_path(self) -> Path:
        """The root as a local path (the MLflow store, reports, the local broker's logs)."""
        return Path(self.root).expanduser().resolve()

    def _under(self, *parts: str) -> str:
        if self.is_uri:
            return "/".join([self.root.rstrip("/"), *parts])
        return str(self.root_path.joinpath(*parts))

    @property
    def landing_events(self) -> str:
        return self._under("landing", "events")

    @property
    def landing_labels(self) -> str:
        return self._under("landing", "labels")

    def table_path(self, layer: str, name: str) -> str:
        """``<root>/tables/<layer>/<name>``, e.g. ``table_path("silver", "events")``."""
        return self._under("tables", _name(layer, "layer"), _name(name, "table name"))

    def checkpoint_path(self, query_name: str) -> str:
        return self._under("checkpoints", _name(query_name, "query name"))

    def claims_path(self, feed: str) -> str:
        """``<root>/claims/<feed>``: which batch owns each landing file (:mod:`medallion.claims`)."""
        return self._under("claims", _name(feed, "feed"))

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.root_path / 'mlflow.db'}"

    @property
    def tracks_on_databricks(self) -> bool:
        return (self.tracking_uri or "").startswith("databricks")

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Where a new MLflow experiment keeps its artifacts, as a URI (``file://`` when local).

        With Databricks tracking: None (the workspace's own artifact store) unless
        ``artifact_root`` is set; a Unity Catalog volume path becomes the ``dbfs:/Volumes/...``
        URI Databricks takes for an experiment, never a ``file://`` one."""
        if self.tracks_on_databricks:
            if self.artifact_root is None or _URI.match(self.artifact_root):
                return self.artifact_root
            return (
                "dbfs:" + self.artifact_root
                if self.artifact_root.startswith("/Volumes/")
                else self.artifact_root
            )
        location = self.artifact_root or self._under("mlartifacts")
        if _URI.match(location):
            return location
        return Path(location).expanduser().resolve().as_uri()


class SparkSettings(_Section):
    """How a local session is built. Ignored when spark-submit or Databricks owns the session."""

    master: str = "local[2]"
    app_name: str = "medallion"
    shuffle_partitions: int = Field(default=4, ge=1)
    arrow_max_records_per_batch: int = Field(default=100_000, ge=1)
    driver_memory: str = Field(
        default="4g", pattern=r"^\d+[kmgt]?$", description="JVM heap of a local session (spark.driver.memory)"
    )
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "ERROR"
    conf: dict[str, str] = Field(default_factory=dict, description="extra spark confs")

    @field_validator("conf", mode="before")
    @classmethod
    def _conf_as_strings(cls, value: Any) -> Any:
        # Spark confs are strings; YAML reads `true`/`4` as bool/int.
        if isinstance(value, Mapping):
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


class DeltaSettings(_Section):
    """Which Delta engine: ``spark`` (delta-spark jars), ``rs`` (embedded delta-rs) or ``auto``."""

    engine: Literal["auto", "spark", "rs"] = "auto"


TriggerKind = Literal["processingTime", "availableNow", "once", "continuous", "realTime"]
_DEFAULT_INTERVALS = {"processingTime": "5 seconds", "continuous": "1 second", "realTime": "5 seconds"}


_INTERVAL = re.compile(r"^\s*\d+(\.\d+)?\s*(milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|h)\s*$")


class TriggerSettings(_Section):
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


class KafkaSettings(_Section):
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


class RateSettings(_Section):
    rows_per_second: int = Field(default=100, ge=1)
    # Each continuous partition holds a core for the whole run: keep some free for other jobs.
    partitions: int = Field(default=1, ge=1, description="rate source partitions (continuous: one core each)")


class StreamSettings(_Section):
    """The speed layer's query: source, trigger, sink and how the challenger takes part."""

    source: Literal["files", "kafka", "rate"] = "files"
    sink: Literal["delta", "memory", "console", "kafka"] = "delta"
    trigger: TriggerSettings = Field(default_factory=TriggerSettings)
    max_files_per_trigger: int = Field(default=100, ge=1)
    max_bytes_per_trigger: int | None = Field(
        default=None,
        ge=1,
        description="bound each micro-batch of landing files by their total bytes instead of their count",
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

    @field_validator("challenger", mode="before")
    @classmethod
    def _yaml_off_is_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as False.
        return "off" if value is False else value


class ModelAliases(_Section):
    champion: str = "champion"
    challenger: str = "challenger"


class GateSettings(_Section):
    """What a challenger must reach before it may become champion."""

    min_roc_auc: float = Field(default=0.75, ge=0, le=1)
    min_pr_auc: float = Field(default=0.2, ge=0, le=1)
    max_ms_per_10k_rows: float = Field(default=5000, gt=0)
    max_regression: float = Field(default=0.02, ge=0, description="allowed ROC AUC drop vs champion")


class TrainSettings(_Section):
    validation_days: int = Field(default=2, ge=1)
    max_iter: int = Field(default=200, ge=1)
    learning_rate: float = Field(default=0.1, gt=0)
    seed: int = 7


class ModelSettings(_Section):
    name: str = "fraud_model"
    aliases: ModelAliases = Field(default_factory=ModelAliases)
    decision_threshold: float = Field(default=0.5, ge=0, le=1)
    scoring: Literal["pandas_udf", "native", "auto"] = Field(
        default="pandas_udf",
        description="pandas_udf (the reference), native (compiled to Spark expressions), auto (native where parity holds)",
    )
    gate: GateSettings = Field(default_factory=GateSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)


class DatagenSettings(_Section):
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


class IngestSettings(_Section):
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


class BatchSettings(_Section):
    """The nightly batch layer."""

    retrain: bool = Field(default=False, description="train, validate and promote before scoring")
    late_days: int = Field(
        default=7,
        ge=0,
        description="also score the days this far back that hold events the batch has not scored",
    )


class ReconcileSettings(_Section):
    """Folding the speed layer back into the batch layer."""

    tolerance: float = Field(default=1e-6, ge=0, description="|batch - speed| score still 'agreed'")
    speed_retention_days: int = Field(
        default=7, ge=0, description="keep speed rows the batch superseded this long"
    )


class ServingSettings(_Section):
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


class ClockSettings(_Section):
    """Which day it is for the pipeline (see :mod:`medallion.clock`)."""

    today: date | None = Field(
        default=None, description="pin the business day (YYYY-MM-DD); default: the real UTC date"
    )


class ExpectationSettings(_Section):
    """One declared row expectation (see :mod:`medallion.expectations`)."""

    check: str = Field(description="Spark SQL over silver columns; a row should make it true")
    action: Literal["warn", "drop", "quarantine", "fail"] = "quarantine"


class ExpectationsSettings(_Section):
    """Declared expectations per feed, by name, on top of the built-in checks."""

    events: dict[str, ExpectationSettings] = Field(default_factory=dict)
    labels: dict[str, ExpectationSettings] = Field(default_factory=dict)


class Settings(_Section):
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
        return {key: _shown(key, value) for key, value in _flatten(self.model_dump())}

    def redacted(self) -> dict[str, Any]:
        """:meth:`model_dump` with secret values (Kafka SASL passwords, JAAS configs) as ``***``."""
        return _unflatten({tuple(_split_key(k, "settings")): v for k, v in self.flat().items()})


# --------------------------------------------------------------------------- layers


def conf_dir() -> Path:
    """``$MEDALLION_CONF_DIR``, else ``./conf`` if it holds base.yaml, else the conf shipped in the
    package (``medallion/conf``, in the repository a link to conf/), so an installed wheel has it."""
    if explicit := os.environ.get("MEDALLION_CONF_DIR"):
        return Path(explicit)
    local = Path.cwd() / "conf"
    if (local / "base.yaml").exists():
        return local
    return Path(__file__).resolve().parent / "conf"


def _display(path: Path) -> str:
    """A conf file as the user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"{_display(path)}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{_display(path)}: expected a mapping of sections at the top level")
    return loaded


def _parse_scalar(text: str) -> Any:
    """``"4"`` -> 4, ``"true"`` -> True, ``"5 seconds"`` -> '5 seconds' (YAML's scalar rules)."""
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        # ValueError: a date-shaped value that is no date ("2026-13-01"); validation names it.
        return text
    return text if value is None and text.strip() not in ("null", "~") else value


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def _field_type(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields.get(name)
    return None if field is None else field.annotation


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _is_free_mapping(tp: Any) -> bool:
    return typing.get_origin(tp) is dict and _mapped_model(tp) is None


def _mapped_model(tp: Any) -> Any:
    """``dict[str, Model]`` -> ``Model``: a mapping of named sections (e.g. expectations)."""
    if typing.get_origin(tp) is dict:
        value = typing.get_args(tp)[1]
        return value if _is_model(value) else None
    return None


def _child_type(model: Any, part: str) -> Any:
    """The type under ``part``: a field of a section, or the section type of a named mapping."""
    if _is_model(model):
        return _field_type(model, part)
    return _mapped_model(model)


def _valid_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        if _is_model(field.annotation):
            keys.extend(_valid_keys(field.annotation, dotted + "."))
        elif _mapped_model(field.annotation) is not None:
            keys.extend(_valid_keys(_mapped_model(field.annotation), dotted + ".<name>."))
    return keys


def _split_key(dotted: str, source: str) -> list[str]:
    """Split a dotted key along the schema; the rest of a key under a free mapping stays whole.

    ``spark.conf.spark.sql.ansi.enabled`` -> ``["spark", "conf", "spark.sql.ansi.enabled"]``.
    """
    parts = dotted.split(".")
    model: Any = Settings
    path: list[str] = []
    for index, part in enumerate(parts):
        if not _is_model(model) and _mapped_model(model) is None:
            break
        tp = _child_type(model, part)
        if tp is None:
            _unknown_key(".".join(parts), source)
        path.append(part)
        if _is_free_mapping(tp):
            rest = ".".join(parts[index + 1 :])
            return path + ([rest] if rest else [])
        model = tp
    return path


def _unknown_key(dotted: str, source: str) -> typing.NoReturn:
    valid = _valid_keys()
    close = difflib.get_close_matches(dotted, valid, n=1, cutoff=0.5)
    if not close:
        leaf = dotted.rsplit(".", 1)[-1]
        leaves = {key.rsplit(".", 1)[-1]: key for key in valid}
        close = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{source}: unknown key '{dotted}'{hint}")


def _layer_from_tree(tree: Mapping[str, Any], source: str) -> dict[tuple[str, ...], Any]:
    """Flatten a YAML tree into ``{key path: value}``, checking every key against the schema."""
    out: dict[tuple[str, ...], Any] = {}

    def walk(node: Mapping[str, Any], path: list[str], model: Any) -> None:
        for key, value in node.items():
            key = str(key)
            dotted = ".".join([*path, key])
            tp = _child_type(model, key)
            if tp is None:
                _unknown_key(dotted, source)
            if (_is_model(tp) or _mapped_model(tp)) and isinstance(value, Mapping):
                walk(value, [*path, key], tp)
            elif _is_free_mapping(tp) and isinstance(value, Mapping):
                for sub_key, sub_value in value.items():
                    out[(*path, key, str(sub_key))] = sub_value
            else:
                out[(*path, key)] = value

    walk(tree, [], Settings)
    return out


def _layer_from_pairs(pairs: Iterable[tuple[str, str]], source: str) -> dict[tuple[str, ...], Any]:
    return {tuple(_split_key(key, source)): _parse_scalar(value) for key, value in pairs}


def parse_set(option: str) -> tuple[str, str]:
    """``"stream.trigger.kind=once"`` -> ``("stream.trigger.kind", "once")``."""
    key, sep, value = option.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {option!r}: expected key=value, e.g. --set stream.trigger.kind=once")
    return key.strip(), value


def _env_pairs(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    return [
        (name[len(ENV_PREFIX) :].lower().replace("__", "."), value)
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX)
    ]


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return tree


# --------------------------------------------------------------------------- validation


def _allowed_values(loc: tuple[Any, ...]) -> list[str] | None:
    model: Any = Settings
    tp: Any = None
    for part in loc:
        tp = _child_type(model, str(part))
        if tp is None:
            return None
        model = tp
    if typing.get_origin(tp) is Literal:
        return [str(v) for v in typing.get_args(tp)]
    return None


def _describe(error: Mapping[str, Any], provenance: Mapping[str, str]) -> str:
    loc = tuple(str(p) for p in error["loc"] if not isinstance(p, int))
    dotted = ".".join(loc)
    parent = dotted.rsplit(".", 1)[0] + "."
    # A missing key has no source of its own: its siblings' layer declared the section.
    source = provenance.get(dotted) or next((v for k, v in provenance.items() if k.startswith(parent)), None)
    where = f" (from {source})" if source else ""
    value = error.get("input")
    allowed = _allowed_values(loc)
    if error["type"] == "literal_error" and allowed:
        return f"{dotted}: {value!r} is not one of {', '.join(allowed)}{where}"
    if error["type"] == "extra_forbidden":
        _unknown_key(dotted, source or "conf")
    if error["type"] == "missing":
        return f"{dotted} is required and missing{where}"
    message = error["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    return f"{dotted}: {value!r} is invalid: {message}{where}"


def load_settings(
    env: str | None = None,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> Settings:
    """Merge base <- env overlay <- ``MEDALLION__*`` variables <- ``--set`` overrides.

    Raises :class:`ConfigError` with one line naming the key, the value and what is allowed.
    """
    environ = os.environ if environ is None else environ
    env = env or environ.get("MEDALLION_ENV") or DEFAULT_ENV
    directory = directory or conf_dir()

    layers: list[tuple[str, dict[tuple[str, ...], Any]]] = []
    base = directory / "base.yaml"
    if base.exists():
        layers.append((_display(base), _layer_from_tree(_read_yaml(base), _display(base))))
    overlay = directory / f"{env}.yaml"
    if overlay.exists():
        layers.append((_display(overlay), _layer_from_tree(_read_yaml(overlay), _display(overlay))))
    elif env != DEFAULT_ENV:
        known = sorted(p.stem for p in directory.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"unknown env '{env}': no {overlay}; known envs: {', '.join(known)}")
    for name, value in _env_pairs(environ):
        layers.append(
            (
                f"${ENV_PREFIX}{name.upper().replace('.', '__')}",
                _layer_from_pairs([(name, value)], "environment"),
            )
        )
    for option in overrides:
        key, value = parse_set(option)
        layers.append((f"--set {key}", _layer_from_pairs([(key, value)], f"--set {key}")))

    merged: dict[tuple[str, ...], Any] = {("env",): env}
    provenance: dict[str, str] = {"env": "--env / MEDALLION_ENV" if env != DEFAULT_ENV else "default"}
    for source, layer in layers:
        for path, value in layer.items():
            # A section replaced by a scalar (or the reverse) drops what was under it.
            for existing in [p for p in merged if p[: len(path)] == path or path[: len(p)] == p]:
                merged.pop(existing)
            merged[path] = value
            provenance[".".join(path)] = source

    try:
        settings = Settings.model_validate(_unflatten(merged))
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], provenance)) from None
    for key in settings.flat():
        provenance.setdefault(key, provenance.get(key.rsplit(".", 1)[0], "default"))
    settings._provenance = provenance
    return settings


__all__ = [
    "ConfigError",
    "Settings",
    "conf_dir",
    "load_settings",
    "parse_set",
]
