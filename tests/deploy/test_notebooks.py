"""Every notebook runs locally top to bottom, in order, on a small generated lake."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.datagen import generate_history
from medallion.tables import Lakehouse
from tests.conftest import HISTORY_END, REPO

DAY = HISTORY_END
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


def test_notebooks_are_databricks_source_files():
    assert [p.name for p in NOTEBOOKS] == [
        "01_ingest.py",
        "02_train_and_validate.py",
        "03_nightly_batch.py",
        "04_stream.py",
        "05_reconcile_and_report.py",
    ]
    for path in NOTEBOOKS:
        text = path.read_text()
        assert text.startswith("# Databricks notebook source\n"), path.name
        assert "# COMMAND ----------" in text and "NotebookContext.create(globals()" in text, path.name


def test_every_notebook_runs_top_to_bottom(spark, lake_with_champion, monkeypatch, capsys):
    settings = lake_with_champion("stream.trigger.kind=availableNow")
    generate_history(settings, days=3, events_per_day=400, end_date=DAY, progress=False)
    overrides = [
        f"storage.root={settings.storage.root}",
        f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}",
        "datagen.cards=300",
        "model.train.max_iter=40",
        "stream.trigger.kind=availableNow",
    ]
    monkeypatch.setenv("MEDALLION_WIDGET_SET", ";".join(overrides))
    monkeypatch.setenv("MEDALLION_WIDGET_DATE", DAY.isoformat())
    monkeypatch.setenv("MEDALLION_WIDGET_SECONDS", "120")

    for path in NOTEBOOKS:
        runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read()
    assert "events: " in out and "training set: " in out and "report:" in out
    assert lake.table("gold", "predictions_batch").read().where(F.col("event_date") == DAY).count() > 300
    assert lake.table("gold", "reconciliation_audit").read().where(F.col("event_date") == DAY).count() >= 1
    assert (
        lake.table("gold", "predictions").read().count() == silver.where(F.col("event_date") == DAY).count()
    )
    reports = list(Path(settings.storage.root).glob("reports/run-*.html"))
    assert len(reports) == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_stay_thin_wrappers(path):
    code_lines = [
        line
        for line in path.read_text().splitlines()
        if line.strip()
        and not line.startswith("#")
        and not line.startswith("from ")
        and not line.startswith("import ")
    ]
    assert len(code_lines) <= 15, f"{path.name}: move logic into the medallion library"
