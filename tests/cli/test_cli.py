"""The `medallion` command as a user runs it: a real subprocess, exit codes and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLOCK, HISTORY_END, REPO

DAY = HISTORY_END.isoformat()


def medallion(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION")}
    environ.update(env or {})
    environ["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "medallion.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_config_show_bogus_trigger_exits_2_with_one_line():
    result = medallion("config", "show", "--set", "stream.trigger.kind=bogus")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: stream.trigger.kind: 'bogus' is not one of processingTime, availableNow, once, continuous, "
        "realTime (from --set stream.trigger.kind)"
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_option_is_a_usage_error_not_a_traceback():
    result = medallion("batch", "--no-such-option")
    assert result.returncode == 2
    assert "No such option: --no-such-option" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_env_variable_key_is_one_line():
    result = medallion("config", "show", env={"MEDALLION__STREAM__TRIGER__KIND": "once"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "did you mean 'stream.trigger" in result.stderr


def test_config_show_merges_set_and_explains(tmp_path):
    result = medallion(
        "--set", "spark.master=local[1]", "config", "show", "--explain", "--set", "datagen.cards=7"
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert "--set spark.master" in lines["spark.master"]
    assert "'local[1]'" in lines["spark.master"]
    assert "--set datagen.cards" in lines["datagen.cards"]
    assert "base.yaml" in lines["model.name"]


def test_config_show_prints_yaml_that_round_trips():
    import yaml

    result = medallion("config", "show", "--env", "databricks")
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["delta"]["engine"] == "spark"
    assert shown["env"] == "databricks"


def test_doctor_on_this_machine(tmp_path):
    result = medallion("doctor", "--set", f"storage.root={tmp_path / 'lake'}")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 3}
    checked = ["python", "java", "pyspark", "deltalake", "mlflow", "spark"]
    for name in [*checked, "storage root", "delta engine", "scoring jar"]:
        assert "ok" in rows[name], rows.get(name)
    assert "auto -> " in rows["delta engine"]
    assert (tmp_path / "lake").is_dir()


def test_doctor_fails_when_storage_root_is_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = medallion("doctor", "--set", f"storage.root={blocker / 'lake'}")
    assert result.returncode == 1
    assert "storage root" in result.stderr


@pytest.mark.parametrize("command", [["config", "show"], ["doctor"]])
def test_every_command_accepts_env_and_set(command):
    result = medallion(*command, "--help")
    assert "--env" in result.stdout and "--set" in result.stdout


def test_batch_without_a_champion_exits_2_with_what_to_run(spark, tmp_path, capsys):
    """In process (the shared session) rather than a subprocess: the same main(), no JVM start."""
    from medallion.cli import main
    from medallion.config import load_settings
    from medallion.datagen import generate_history

    root = f"storage.root={tmp_path}"
    settings = load_settings(
        environ={}, directory=REPO / "conf", overrides=[root, "datagen.cards=100", CLOCK]
    )
    generate_history(settings, days=1, events_per_day=100, progress=False)
    capsys.readouterr()

    # No --date: the clock's yesterday, the day datagen's history ended.
    assert main(["batch", "--set", root, "--set", CLOCK]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: no 'champion' alias on fraud_model: run medallion train, then medallion model promote"
    ]


@pytest.mark.parametrize("command", ["features", "batch"])
def test_a_backward_range_is_one_line_before_any_work(command, tmp_path, capsys):
    from medallion.cli import main

    args = [command, "--from", "2026-11-20", "--to", "2026-11-19", "--set", f"storage.root={tmp_path}"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == "error: --to 2026-11-19 is before --from 2026-11-20"
    assert not (tmp_path / "tables").exists()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["reconcile", "--since", "2026-11-21", "--date", "2026-11-20"],
            "--since 2026-11-21 is after --date 2026-11-20",
        ),
        (["reconcile", "--since", "2026-11-1"], "--since '2026-11-1': expected YYYY-MM-DD"),
        (
            ["features", "--from", "20-11-2026", "--to", "2026-11-21"],
            "--from '20-11-2026': expected YYYY-MM-DD",
        ),
    ],
)
def test_a_bad_day_names_its_option_before_any_work(args, error, tmp_path, capsys):
    from medallion.cli import main

    assert main([*args, "--set", f"storage.root={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: {error}")
    assert not (tmp_path / "tables").exists()


def test_reconcile_of_a_day_nothing_scored_says_so(tmp_path, capsys):
    from medallion.cli import main

    assert main(["reconcile", "--date", DAY, "--set", f"storage.root={tmp_path}"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # as read, whatever the terminal's width
    assert f"no predictions for {DAY} yet: medallion batch and medallion stream write them" in out


def test_features_for_a_day_silver_lacks_says_so(tmp_path, capsys):
    from medallion.cli import main

    assert main(["features", "--date", DAY, "--set", f"storage.root={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert f"features {DAY}: 0 rows" in out
    assert f"silver holds no events for {DAY}: run medallion ingest first" in out


@pytest.mark.usefixtures("delta_engine")
def test_a_backfill_scores_each_day_once_and_says_which_had_no_events(spark, lake_with_champion, capsys):
    """``medallion batch --from --to``: every night of the range, one summary row per day."""
    from datetime import timedelta

    from pyspark.sql import functions as F

    from medallion.cli import main
    from medallion.datagen import generate_history
    from medallion.tables import Lakehouse

    settings = lake_with_champion()
    first, last = HISTORY_END - timedelta(days=2), HISTORY_END - timedelta(days=1)
    generate_history(settings, days=2, events_per_day=150, end_date=last, progress=False)
    capsys.readouterr()
    conf = ["--set", f"storage.root={settings.storage.root}"]
    conf += ["--set", f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}"]

    assert main(["batch", "--from", str(first), "--to", str(HISTORY_END), *conf]) == 0
    out = capsys.readouterr().out

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read()
    scored = lake.table("gold", "predictions_batch").read()
    for day in (first, last):
        events = silver.where(F.col("event_date") == day).count()
        assert scored.where(F.col("event_date") == day).count() == events > 100
    assert scored.select("event_id").distinct().count() == scored.count()
    assert f"{HISTORY_END}: no events, nothing scored" in out
    summary = out[out.index("nightly batch") :]
    assert all(str(day) in summary for day in (first, last, HISTORY_END))


def test_values_from_the_data_reach_the_terminal_as_text_not_markup_or_escapes(spark, settings, capsys):
    """An event id holding Rich markup and an ANSI escape prints literally, escaped."""
    from datetime import UTC, datetime

    from medallion.cli import main
    from medallion.schemas import SERVING_SCHEMA
    from medallion.tables import Lakehouse
    from medallion.tables.arrow import driver_rows

    event_id = "ev-[/]-[bold]x\x1b[31m"
    now = datetime.now(UTC)
    row = {
        "event_id": event_id, "event_date": HISTORY_END, "score": 0.25, "decision": False,
        "model_version": "1", "source": "batch", "missing_in_speed": False, "scored_at": now, "updated_at": now,
    }  # fmt: skip
    serving = Lakehouse(settings, spark).create(
        "gold", "predictions", SERVING_SCHEMA, partition_by=["event_date"]
    )
    serving.append(driver_rows(SERVING_SCHEMA, [row]))
    capsys.readouterr()

    assert main(["serve", "lookup", event_id, "--set", f"storage.root={settings.storage.root}"]) == 0
    out = capsys.readouterr().out
    assert "ev-[/]-[bold]x\\x1b[31m" in out and "\x1b" not in out
