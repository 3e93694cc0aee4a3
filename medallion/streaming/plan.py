"""Check a stream's source, trigger and sink before Spark sees them.

Spark rejects some combinations only once the query starts, with a JVM stack trace (a file
source under a continuous trigger, foreachBatch in continuous mode...). :func:`plan_stream`
rejects them first, in one line that names the setting to change.

Usage::

    plan = plan_stream(settings)
    query = writer.trigger(**plan.trigger_kwargs).start()
    for note in plan.notes:
        print(note)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medallion.config import Settings
from medallion.errors import StreamConfigError

# What Spark's continuous processing accepts (Structured Streaming guide, "Continuous Processing").
CONTINUOUS_SOURCES = ("kafka", "rate")
CONTINUOUS_SINKS = ("kafka", "memory", "console")
# Spark's real-time mode (the realTime trigger, PySpark 4.1+): Kafka in, Kafka out, no Python UDF.
REAL_TIME_SOURCES = ("kafka",)
REAL_TIME_SINKS = ("kafka",)
KAFKA_PROVIDER = "org.apache.spark.sql.kafka010.KafkaSourceProvider"


@dataclass(frozen=True)
class StreamPlan:
    """A validated stream: what to read, how to trigger, where to write, and notes for the user."""

    source: str
    sink: str
    trigger_kind: str
    trigger_kwargs: dict[str, object]
    notes: tuple[str, ...] = field(default=())

    @property
    def continuous(self) -> bool:
        """A query of long-running tasks (continuous or real-time mode): no foreachBatch."""
        return self.trigger_kind in ("continuous", "realTime")

    @property
    def real_time(self) -> bool:
        return self.trigger_kind == "realTime"

    def describe(self) -> str:
        trigger = ", ".join(f"{k}={v!r}" for k, v in self.trigger_kwargs.items())
        return f"{self.source} -> {self.sink}, trigger({trigger})"


def _trigger(settings: Settings) -> tuple[str, dict[str, object], list[str]]:
    trigger = settings.stream.trigger
    if trigger.kind == "processingTime":
        return "processingTime", {"processingTime": trigger.interval}, []
    if trigger.kind == "availableNow":
        return "availableNow", {"availableNow": True}, []
    if trigger.kind == "once":
        # Trigger.Once is deprecated since Spark 3.4: it ignores maxFilesPerTrigger and can
        # build one huge batch; availableNow processes the same data in bounded batches.
        note = "stream.trigger.kind=once is deprecated in Spark; running as availableNow (same data, bounded batches)"
        return "availableNow", {"availableNow": True}, [note]
    if trigger.kind == "realTime":
        return "realTime", {"realTime": trigger.interval}, []
    return "continuous", {"continuous": trigger.interval}, []


def has_real_time_trigger() -> bool:
    """Whether the installed PySpark's ``DataStreamWriter.trigger`` takes ``realTime``."""
    import inspect

    from pyspark.sql.streaming import DataStreamWriter

    return "realTime" in inspect.signature(DataStreamWriter.trigger).parameters


def _check_real_time(settings: Settings) -> None:
    """Real-time mode's refusals, before Spark sees the query: one line naming what to change."""
    import pyspark

    stream = settings.stream
    if not has_real_time_trigger():
        raise StreamConfigError(
            f"stream.trigger.kind=realTime: the installed PySpark {pyspark.__version__} has no real-time trigger "
            "(Spark 4.1+); use stream.trigger.kind=continuous"
        )
    if stream.source not in REAL_TIME_SOURCES:
        raise StreamConfigError(
            f"stream.trigger.kind=realTime cannot read stream.source={stream.source}: real-time mode reads only "
            "Kafka (no file or Delta source); set stream.source=kafka, or use stream.trigger.kind=processingTime"
        )
    if stream.sink not in REAL_TIME_SINKS:
        raise StreamConfigError(
            f"stream.trigger.kind=realTime cannot write stream.sink={stream.sink}: real-time mode writes only "
            "Kafka (no foreachBatch, no Delta or file sink); set stream.sink=kafka, or use "
            "stream.trigger.kind=processingTime for Delta"
        )
    if settings.model.scoring == "pandas_udf":
        raise StreamConfigError(
            "stream.trigger.kind=realTime runs no Python UDF and model.scoring=pandas_udf is one: "
            "set model.scoring=native (the model compiled to run in the JVM)"
        )


def plan_stream(settings: Settings) -> StreamPlan:
    """Validate ``settings.stream`` and return the plan, or raise :class:`StreamConfigError`."""
    stream = settings.stream
    kind, kwargs, notes = _trigger(settings)
    if kind == "realTime":
        _check_real_time(settings)

    if kind == "continuous":
        if stream.source not in CONTINUOUS_SOURCES:
            raise StreamConfigError(
                f"stream.trigger.kind=continuous cannot read stream.source={stream.source}: Spark's continuous "
                f"mode reads only {' or '.join(CONTINUOUS_SOURCES)}; set stream.source=kafka (or rate), "
                "or use stream.trigger.kind=processingTime"
            )
        if stream.sink not in CONTINUOUS_SINKS:
            raise StreamConfigError(
                f"stream.trigger.kind=continuous cannot write stream.sink={stream.sink}: Spark's continuous mode "
                f"has no foreachBatch and writes only {', '.join(CONTINUOUS_SINKS)}; set stream.sink=memory, "
                "console or kafka, or use stream.trigger.kind=processingTime for Delta"
            )
        notes.append(
            "continuous mode: features use the map-only profile lookup (no joins or aggregations allowed); "
            "no exactly-once Delta writes in this mode"
        )

    if kind not in ("continuous", "realTime") and stream.sink != "delta":
        # A micro-batch runs the whole speed layer in foreachBatch, which writes the lakehouse.
        raise StreamConfigError(
            f"stream.trigger.kind={kind} writes the lakehouse's Delta tables, not stream.sink={stream.sink}: "
            f"set stream.sink=delta, or stream.trigger.kind=continuous (or realTime) for a {stream.sink} sink"
        )
    for role, name in (("source", stream.source), ("sink", stream.sink)):
        if name == "kafka":
            topics = ("topic",) if role == "source" else ("scores_topic", "quarantine_topic")
            missing = [key for key in ("bootstrap_servers", *topics) if not getattr(stream.kafka, key)]
            if missing:
                keys = " and ".join(f"stream.kafka.{key}" for key in missing)
                raise StreamConfigError(f"stream.{role}=kafka needs {keys}; set them in conf or with --set")
    if stream.source == "rate" and stream.sink == "delta":
        raise StreamConfigError(
            "stream.source=rate produces synthetic (timestamp, value) rows, not events: use it with "
            "stream.sink=memory or console, or set stream.source=files"
        )
    return StreamPlan(stream.source, stream.sink, kind, kwargs, tuple(notes))


def kafka_options(settings: Settings) -> dict[str, str]:
    """The Kafka client options as Spark's Kafka source and sink take them (``kafka.`` + name)."""
    kafka = settings.stream.kafka
    return {
        "kafka.bootstrap.servers": str(kafka.bootstrap_servers),
        **{f"kafka.{key}": value for key, value in kafka.options.items()},
    }


def check_kafka(settings: Settings, plan: StreamPlan) -> None:
    """Before start: the broker answers and the topics the plan reads and writes exist."""
    if "kafka" not in (plan.source, plan.sink):
        return
    from medallion.kafka.client import check_reachable

    kafka = settings.stream.kafka
    needed = [kafka.topic] if plan.source == "kafka" else []
    needed += [kafka.scores_topic, kafka.quarantine_topic] if plan.sink == "kafka" else []
    check_reachable(kafka, [t for t in needed if t])


def check_connectors(spark, settings: Settings, plan: StreamPlan) -> None:
    """Fail in one line when the plan needs a connector jar the session lacks (Kafka), or its
    broker does not answer, or a topic it names does not exist."""
    if "kafka" not in (plan.source, plan.sink):
        return
    from medallion.spark import jvm_class_available

    if not jvm_class_available(spark, KAFKA_PROVIDER):
        from medallion import jvm

        raise StreamConfigError(
            f"the Kafka connector ({jvm.bundles()['kafka'].describe()}) is not on the classpath: "
            f"{jvm.how_to_fetch('kafka')}; under spark-submit pass --jars $(python -m medallion.jvm classpath)"
        )
    check_kafka(settings, plan)
