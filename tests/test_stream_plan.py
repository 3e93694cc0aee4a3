"""Trigger, source and sink combinations are checked before a query starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.config import load_settings
from medallion.errors import StreamConfigError
from medallion.streaming.plan import check_connectors, plan_stream

REPO = Path(__file__).resolve().parent.parent


def conf(*overrides: str):
    return load_settings(environ={}, directory=REPO / "conf", overrides=list(overrides))


@pytest.mark.parametrize(
    ("overrides", "kind", "kwargs"),
    [
        (
            ["stream.trigger.kind=processingTime", "stream.trigger.interval=2 seconds"],
            "processingTime",
            {"processingTime": "2 seconds"},
        ),
        (["stream.trigger.kind=availableNow"], "availableNow", {"availableNow": True}),
        (
            ["stream.trigger.kind=continuous", "stream.source=rate", "stream.sink=memory"],
            "continuous",
            {"continuous": "1 second"},
        ),
    ],
)
def test_supported_triggers_map_to_datastreamwriter_kwargs(overrides, kind, kwargs):
    plan = plan_stream(conf(*overrides))
    assert plan.trigger_kind == kind
    assert plan.trigger_kwargs == kwargs


def test_once_runs_as_available_now_and_says_so():
    plan = plan_stream(conf("stream.trigger.kind=once"))
    assert plan.trigger_kwargs == {"availableNow": True}
    assert any("deprecated" in note and "availableNow" in note for note in plan.notes)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["stream.trigger.kind=continuous"], "cannot read stream.source=files"),
        (["stream.trigger.kind=continuous", "stream.source=rate"], "cannot write stream.sink=delta"),
        (["stream.source=kafka"], "needs stream.kafka.bootstrap_servers and stream.kafka.topic"),
        (["stream.source=rate"], "stream.source=rate produces synthetic"),
    ],
)
def test_rejected_combinations_fail_in_one_line_naming_the_setting(overrides, expected):
    with pytest.raises(StreamConfigError) as err:
        plan_stream(conf(*overrides))
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert "set stream." in str(err.value) or "--set" in str(err.value)


def test_missing_kafka_connector_names_the_package(spark):
    settings = conf(
        "stream.source=kafka", "stream.kafka.bootstrap_servers=localhost:9092", "stream.kafka.topic=events"
    )
    plan = plan_stream(settings)
    with pytest.raises(
        StreamConfigError,
        match=r"add org\.apache\.spark:spark-sql-kafka-0-10_2\.13:.* to spark\.jars\.packages",
    ):
        check_connectors(spark, settings, plan)


def test_bad_interval_is_a_config_error():
    from medallion.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"stream\.trigger\.interval: 'soon' is invalid: expected a duration"
    ):
        conf("stream.trigger.interval=soon")
