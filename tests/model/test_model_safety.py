"""Model safety: the gate at every load that serves, and no NaN or out-of-range score in a prediction table.

A real registry (each test's own copy), a real pyfunc that returns NaN for some inputs, real
Spark and Delta: the nightly batch through the CLI, the stream through a micro-batch query.
"""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from medallion.errors import ModelNotReadyError
from tests.conftest import CLOCK, HISTORY_END
from tests.model.test_model import register_copy

DAY = HISTORY_END


def _cli_overrides(settings) -> list[str]:
    return [
        "--set",
        f"storage.root={settings.storage.root}",
        "--set",
        f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}",
        "--set",
        "datagen.cards=300",
        "--set",
        CLOCK,
    ]


def test_every_serving_load_refuses_a_version_without_a_passed_gate_unless_forced(spark, lake_with_champion):
    import mlflow

    from medallion.model.registry import promote, validate
    from medallion.model.scoring import check_model, load_alias, load_champion
    from medallion.schemas import LABEL_COLUMN

    settings = lake_with_champion()
    name = settings.model.name
    # The champion alias moved in MLflow directly, to a version that never ran the gate.
    ungated = register_copy(settings, alias="champion", gate=None)
    with pytest.raises(ModelNotReadyError) as err:
        load_champion(spark, settings)
    assert str(err.value) == (
        f"{name} v{ungated} has no gate record, so it may not serve: make it the challenger and run "
        "medallion model validate, or medallion model promote --force --reason '...'"
    )

    # What the nightly train leaves: a challenger the canary would serve; validate fails it.
    mlflow.MlflowClient().set_registered_model_alias(name, "challenger", ungated)
    rows = mlflow.pyfunc.load_model(f"models:/{name}/{ungated}").input_example
    gate = validate(settings, rows.assign(**{LABEL_COLUMN: False}))
    assert not gate.passed
    with pytest.raises(ModelNotReadyError, match=rf"^{name} v{ungated} failed the gate \(roc_auc is nan"):
        load_alias(spark, settings, "challenger")
    with pytest.raises(ModelNotReadyError, match=f"{name} has no version 999: see medallion model list"):
        check_model(settings, "999")

    # Forced, with who and why recorded: it serves.
    promote(settings, force=True, reason="accepted: the validation window had no fraud")
    assert load_champion(spark, settings).version == ungated


def _nan_model_version(settings, reason: str) -> str:
    """A pyfunc that answers NaN for ecom payments and 1.5 for ATM withdrawals, registered as
    the challenger, gated (it fails: its scores are not probabilities) and force-promoted."""
    import mlflow
    from mlflow.models import infer_signature

    from medallion.model.registry import promote, validate, version_for
    from medallion.model.tracking import configure
    from medallion.schemas import LABEL_COLUMN

    class BrokenModel(mlflow.pyfunc.PythonModel):
        # Defined in the function so cloudpickle ships the class itself to Spark's workers.
        def predict(self, context, model_input, params=None):
            import numpy as np
            import pandas as pd

            channel = model_input["channel"].to_numpy()
            scores = np.where(channel == "ecom", np.nan, np.where(channel == "atm", 1.5, 0.25))
            return pd.Series(scores, dtype="float64")

    configure(settings)
    champion = mlflow.pyfunc.load_model(f"models:/{settings.model.name}/{version_for(settings, 'champion')}")
    example = champion.input_example
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=BrokenModel(),
            signature=infer_signature(example, BrokenModel().predict(None, example)),
            registered_model_name=settings.model.name,
        )
    version = str(info.registered_model_version)
    mlflow.MlflowClient().set_registered_model_alias(settings.model.name, "challenger", version)
    validation = example.assign(channel=["ecom", "atm", "pos", "pos", "pos"][: len(example)])
    gate = validate(
        settings, validation.assign(**{LABEL_COLUMN: [True, False, True, False, False][: len(example)]})
    )
    assert not gate.passed and "validation scores are not probabilities" in gate.reasons[0], gate.reasons
    assert math.isnan(gate.metrics["roc_auc"])
    assert promote(settings, force=True, reason=reason) == version
    return version


def test_the_nightly_batch_stops_on_scores_that_are_not_probabilities(spark, lake_with_champion, capsys):
    from medallion.cli import main
    from medallion.datagen import generate_history
    from medallion.tables import Lakehouse

    settings = lake_with_champion()
    broken = _nan_model_version(settings, "test: a model that answers NaN")
    generate_history(settings, days=1, events_per_day=200, end_date=DAY, progress=False)
    capsys.readouterr()

    args = ["batch", "--date", DAY.isoformat(), "--no-reconcile", *_cli_overrides(settings)]
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    lake = Lakehouse(settings, spark)
    features = lake.table("gold", "features").read().where(F.col("event_date") == DAY)
    nan = features.where(F.col("channel") == "ecom").count()
    above = features.where(F.col("channel") == "atm").count()
    assert nan > 0 and above > 0
    assert lines == [
        f"error: {nan + above} rows scored by {settings.model.name} v{broken} are not probabilities "
        f"({nan} missing (null or NaN), {above} out of [0, 1]): nothing was written to gold.predictions_batch for {DAY}; "
        "roll the champion back (medallion model rollback) or promote a model that returns probabilities"
    ]
    # The day was replaced whole or not at all: not at all.
    predictions = lake.table("gold", "predictions_batch")
    assert predictions.read().where(F.col("event_date") == DAY).count() == 0


def test_the_stream_quarantines_unscorable_rows_and_its_canary_serves_no_ungated_challenger(
    spark, lake_with_champion
):
    from medallion.datagen import generate_history
    from medallion.streaming.speed import SpeedLayer
    from medallion.tables import Lakehouse

    settings = lake_with_champion(
        "stream.trigger.kind=availableNow",
        "datagen.files_per_day=2",
        "stream.challenger=canary",
        "stream.canary_fraction=0.5",
    )
    broken = _nan_model_version(settings, "test: a model that answers NaN")
    # What the nightly train leaves before validate: a challenger with no gate record.
    ungated = register_copy(settings, alias="challenger", gate=None)
    generate_history(settings, days=1, events_per_day=150, end_date=DAY, progress=False)
    lines: list[str] = []
    SpeedLayer(settings, spark, log=lines.append).run(timeout=180)
    refused = [line for line in lines if line.startswith("[stream] challenger not used: ")]
    assert refused == [
        f"[stream] challenger not used: {settings.model.name} v{ungated} has no gate record, "
        "so it may not serve: make it the challenger and run medallion model validate, "
        "or medallion model promote --force --reason '...'"
    ]

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read()
    speed = lake.table("gold", "predictions_speed").read()
    serving = lake.table("gold", "predictions").read()
    quarantine = lake.table("silver", "quarantine").read().where(F.col("feed") == "predictions")
    unscorable = silver.where(F.col("channel").isin("ecom", "atm"))
    assert 0 < unscorable.count() < silver.count()

    # Every silver row is either a prediction or quarantined with its reason, never both.
    assert speed.count() == silver.count() - unscorable.count()
    assert speed.where(F.isnan("score") | (F.col("score") > 1)).count() == 0
    # The canary's cards were scored by the champion: the ungated challenger served nobody.
    assert {
        (r.variant, r.model_version) for r in speed.select("variant", "model_version").distinct().collect()
    } == {("champion", broken)}
    assert serving.count() == speed.count()
    assert quarantine.count() == unscorable.count()
    reasons = {
        row.reason for row in quarantine.select(F.explode("reasons").alias("reason")).distinct().collect()
    }
    assert reasons == {
        # mlflow's pandas UDF hands Spark the model's NaN as null
        f"score missing (null or NaN): null from {settings.model.name} v{broken}",
        f"score out of [0, 1]: 1.5 from {settings.model.name} v{broken}",
    }
    ids = quarantine.select(F.get_json_object("raw", "$.event_id").alias("event_id"))
    assert ids.join(unscorable, "event_id", "left_anti").count() == 0
    files = {row.source_file for row in silver.select("source_file").distinct().collect()}
    assert {row.source_file for row in quarantine.select("source_file").distinct().collect()} <= files
    assert quarantine.where(F.col("source_file").isNull() | F.col("ingested_at").isNull()).count() == 0

    metrics = lake.table("gold", "stream_metrics").read()
    ingest_quarantined = lake.table("silver", "quarantine").read().where(F.col("feed") == "events").count()
    assert metrics.agg(F.sum("quarantined")).first()[0] == ingest_quarantined + unscorable.count()


def test_score_problem_names_every_score_no_table_may_hold(spark):
    """Spark's own NaN (the native path's) sorts above every number: ``NaN >= 0.5`` is true."""
    from medallion.model.guard import score_problem

    scores = [0.0, 0.5, 1.0, float("nan"), float("inf"), float("-inf"), -0.01, 1.01, None]
    frame = spark.createDataFrame(
        [(i, s, "m", "7") for i, s in enumerate(scores)],
        "i int, score double, model_name string, model_version string",
    )
    found = {row.i: row.problem for row in frame.select("i", score_problem().alias("problem")).collect()}
    assert found == {
        0: None,
        1: None,
        2: None,
        3: "score not a number: NaN from m v7",
        4: "score infinite: Infinity from m v7",
        5: "score infinite: -Infinity from m v7",
        6: "score out of [0, 1]: -0.01 from m v7",
        7: "score out of [0, 1]: 1.01 from m v7",
        8: "score missing (null or NaN): null from m v7",
    }
    assert frame.where(F.col("score") >= 0.5).where(F.isnan("score")).count() == 1  # why the guard exists


def test_a_continuous_query_sends_unparsed_records_and_bad_scores_to_the_quarantine_topic(spark):
    """Continuous mode has no Delta write: every row leaves once, to the scores topic or, as a
    silver.quarantine row, to the quarantine topic. Nothing unscorable reaches the scores."""
    import json

    from medallion.streaming.continuous import judge, kafka_records, shown_rows

    rows = [
        ("e1", 0.2, False, [], None),
        ("e2", float("nan"), True, [], None),  # NaN >= threshold: Spark calls it fraud
        ("e3", 1.5, True, [], None),
        (None, 0.4, False, ["missing required field: event_id"], '{"card_id": "c1"}'),
    ]
    scored = spark.createDataFrame(
        [(*row[:3], "m", "7", "native", row[3], row[4], "f.jsonl") for row in rows],
        "event_id string, score double, decision boolean, model_name string, model_version string, "
        "scored_by string, reasons array<string>, raw string, source_file string",
    )
    judged = judge(scored)
    records = {
        (row.key, row.topic): json.loads(row.value)
        for row in kafka_records(judged, "scores", "scores.quarantine").collect()
    }
    assert set(records) == {
        ("e1", "scores"),
        ("e2", "scores.quarantine"),
        ("e3", "scores.quarantine"),
        (None, "scores.quarantine"),
    }
    assert records["e1", "scores"]["score"] == 0.2 and records["e1", "scores"]["decision"] is False
    nan = records["e2", "scores.quarantine"]
    assert nan["feed"] == "predictions" and nan["reasons"] == ["score not a number: NaN from m v7"]
    assert json.loads(nan["raw"])["event_id"] == "e2" and nan["source_file"] == "f.jsonl"
    assert records["e3", "scores.quarantine"]["reasons"] == ["score out of [0, 1]: 1.5 from m v7"]
    unparsed = records[None, "scores.quarantine"]
    assert unparsed == {
        "feed": "events",
        "reasons": ["missing required field: event_id"],
        "raw": '{"card_id": "c1"}',
        "source_file": "f.jsonl",
        "quarantined_at": unparsed["quarantined_at"],
    }
    shown = {row.event_id: row for row in shown_rows(judged).collect()}
    assert shown["e2"].score is None and shown["e2"].decision is None and shown["e2"].reasons
    assert shown["e1"].reasons == [] and shown["e1"].decision is False
