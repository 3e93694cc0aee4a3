"""Trigger, source and sink combinations are checked before a query starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.config import load_settings
from medallion.errors import StreamConfigError
from medallion.streaming.plan import plan_stream

REPO = Path(__file__).resolve().parents[2]


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


@pytest.mark.slow
def test_missing_jars_end_in_one_line_naming_the_package_and_how_to_get_it(tmp_path):
    """A machine whose jar cache is empty (offline at setup): Kafka and delta-spark say what is missing."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION")}
    env["MEDALLION_JARS_DIR"] = str(tmp_path / "empty-cache")

    def medallion(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "medallion.cli", *args, "--set", f"storage.root={tmp_path}"]
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)

    kafka = medallion(
        "stream", "--set", "stream.source=kafka", "--set", "stream.kafka.bootstrap_servers=127.0.0.1:9",
        "--set", "stream.kafka.topic=events",
    )  # fmt: skip
    assert kafka.returncode == 2, kafka.stderr
    last = kafka.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the Kafka connector (org.apache.spark:spark-sql-kafka-0-10_2.13:")
    assert "make setup" in last and "Traceback" not in kafka.stderr

    delta = medallion("status", "--set", "delta.engine=spark")
    assert delta.returncode == 2, delta.stderr
    last = delta.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: delta.engine=spark but delta-spark classes not loadable")
        and "make setup" in last
    )

    doctor = medallion("doctor")
    assert doctor.returncode == 0, doctor.stdout  # the embedded engine serves
    assert "python -m medallion.jvm fetch delta" in " ".join(doctor.stdout.split())
    scoring = _row(doctor.stdout, "scoring jar")
    assert scoring.startswith("absent not built: native scoring runs its trees as SQL expressions"), scoring
    assert "python -m medallion.jvm fetch scoring" in scoring


def _row(table: str, name: str) -> str:
    """The result and detail of doctor's row ``name``, its wrapped lines joined."""
    said, inside = [], False
    for line in table.splitlines():
        cells = line.split("│")
        if len(cells) < 4:
            continue
        if cells[1].strip():
            inside = cells[1].strip() == name
        if inside:
            said += [cells[2].strip(), cells[3].strip()]
    return " ".join(part for part in said if part)


def test_bad_interval_is_a_config_error():
    from medallion.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"stream\.trigger\.interval: 'soon' is invalid: expected a duration"
    ):
        conf("stream.trigger.interval=soon")
