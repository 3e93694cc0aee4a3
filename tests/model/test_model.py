"""Model lifecycle on a real MLflow sqlite store and registry, trained on generated data."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from bench._lib.common import register_champion_copy
from medallion.config import load_settings
from medallion.errors import ModelNotReadyError
from tests.conftest import HISTORY_END, REPO


def test_model_on_generated_data_passes_the_default_gate(trained):
    settings, _, outcome = trained
    assert "promoted to champion" in outcome, outcome
    from medallion.model.registry import version_for

    assert version_for(settings, "champion") == version_for(settings, "challenger")


def test_shuffled_labels_fail_the_gate_and_champion_stays(trained, lake_with_champion):
    from medallion.model.registry import promote, validate, version_for
    from medallion.model.train import train

    _, store, _ = trained
    settings = lake_with_champion()  # its own registry: the shared one keeps its aliases
    champion = version_for(settings, "champion")
    result = train(settings, store.table("training_set").read(), shuffle_labels=True)
    gate = validate(settings, result.validation)
    assert not gate.passed
    with pytest.raises(ModelNotReadyError, match="failed the gate"):
        promote(settings)
    assert version_for(settings, "champion") == champion


def test_a_validation_set_of_one_class_fails_the_gate_saying_why(trained, lake_with_champion):
    """ROC AUC of one class is NaN, and NaN < min is false: a non-finite metric must fail."""
    from medallion.model.registry import validate
    from medallion.schemas import LABEL_COLUMN

    _, store, _ = trained
    settings = lake_with_champion()
    register_copy(settings)  # a challenger to gate: the champion's artifacts, a new version
    held_out = store.table("training_set").read().limit(2000).toPandas()
    one_class = held_out.assign(**{LABEL_COLUMN: False})
    gate = validate(settings, one_class)
    assert not gate.passed
    assert any(r.startswith("roc_auc is nan (not a finite number") for r in gate.reasons), gate.reasons


def register_copy(settings, alias: str = "challenger", gate: str | None = "passed") -> str:
    """A new version of the champion's artifacts under ``alias``, with ``gate`` as its gate record."""
    return register_champion_copy(settings, alias, gate)


def test_forced_promote_then_rollback_restores_the_champion(lake_with_champion):
    from medallion.model.registry import promote, rollback, version_for

    settings = lake_with_champion()
    before = version_for(settings, "champion")
    register_copy(settings, gate="failed")
    forced = promote(settings, force=True, reason="test override")
    assert version_for(settings, "champion") == forced != before
    assert rollback(settings) == before
    assert version_for(settings, "champion") == before


def test_rollback_walks_back_through_the_champion_history(lake_with_champion, capsys, monkeypatch):
    """Rolling back twice goes two champions back, never forward; model list shows who, when, why."""
    import getpass

    from medallion import cli
    from medallion.model.registry import champion_history, promote, rollback, version_for

    settings = lake_with_champion()
    first = version_for(settings, "champion")
    register_copy(settings)
    second = promote(settings)
    register_copy(settings, gate="failed")
    third = promote(settings, force=True, reason="hotfix for the holiday rush")
    assert len({first, second, third}) == 3

    assert rollback(settings) == second
    assert rollback(settings, reason="second thoughts") == first
    with pytest.raises(ModelNotReadyError, match=f"no earlier champion than v{first} to roll back to"):
        rollback(settings)
    assert version_for(settings, "champion") == first
    # A promotion after rollbacks is a new step; the next rollback returns to the champion it replaced.
    register_copy(settings)
    fourth = promote(settings)
    assert rollback(settings) == first

    me = getpass.getuser()
    steps = [(c.version, c.how, c.replaced, c.by, c.reason) for c in champion_history(settings)]
    assert steps == [
        (first, "promote", "", me, "gate passed"),  # the shared registry's first night
        (second, "promote", first, me, "gate passed"),
        (third, "forced", second, me, "hotfix for the holiday rush"),
        (second, "rollback", third, me, "rollback"),
        (first, "rollback", second, me, "second thoughts"),
        (fourth, "promote", first, me, "gate passed"),
        (first, "rollback", fourth, me, "rollback"),
    ]

    capsys.readouterr()
    overrides = [
        "--set",
        f"storage.root={settings.storage.root}",
        "--set",
        f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}",
    ]
    # Wide enough that no cell wraps: each table row is one line to look at.
    monkeypatch.setattr(cli.console, "_width", 400)
    assert cli.main(["model", "list", *overrides]) == 0
    shown = capsys.readouterr().out
    history = shown[shown.index("champion history") :]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in history.splitlines() if "│" in line]
    assert [row[1:5] for row in rows] == [  # data rows (the header's rule is another glyph)
        [v, how, replaced or "-", by] for v, how, replaced, by, _ in steps
    ]
    assert rows[2][6] == "hotfix for the holiday rush" and rows[4][6] == "second thoughts"
    forced = next(
        line
        for line in shown[: shown.index("champion history")].splitlines()
        if line.startswith(f"│ {third} ")
    )
    assert f"failed, forced by {me}: hotfix for the holiday rush" in forced


def test_udf_scores_equal_in_process_predict(trained, spark):
    import mlflow
    from pyspark.sql import functions as F

    from medallion.model.scoring import load_champion
    from medallion.schemas import FEATURE_COLUMNS

    settings, store, _ = trained
    scorer = load_champion(spark, settings)
    sample = store.table("features").read().orderBy("event_id").limit(200)
    udf_scores = sample.select(
        "event_id", scorer.udf(*[F.col(c) for c in FEATURE_COLUMNS]).alias("score")
    ).toPandas()
    model = mlflow.pyfunc.load_model(f"models:/{settings.model.name}/{scorer.version}")
    local = model.predict(sample.toPandas()[list(FEATURE_COLUMNS)]).to_numpy()
    np.testing.assert_allclose(udf_scores["score"].to_numpy(), local, atol=1e-9)


def test_missing_alias_is_one_line(tmp_path):
    from medallion.model.registry import version_for

    settings = load_settings(environ={}, directory=REPO / "conf", overrides=[f"storage.root={tmp_path}"])
    with pytest.raises(ModelNotReadyError) as err:
        version_for(settings, "champion")
    assert (
        str(err.value)
        == "no 'champion' alias on fraud_model: run medallion train, then medallion model promote"
    )


def test_nightly_batch_replaces_its_day_and_reconciles(trained, spark):
    """The batch layer: same rows on a re-run, other days untouched, serving filled from batch."""
    from chispa import assert_df_equality
    from pyspark.sql import functions as F

    from medallion.batch import NightlyBatch
    from medallion.tables import Lakehouse

    settings, _, _ = trained
    night = NightlyBatch(settings, spark)
    day, other = HISTORY_END, HISTORY_END - timedelta(days=1)
    lake = Lakehouse(settings, spark)
    predictions = lake.table("gold", "predictions_batch")

    def rows_of(on: date, version: int | None = None):
        return predictions.read(version=version).where(F.col("event_date") == on)

    first = night.run(day, ingest=False)
    after_first = predictions.version()
    night.run(other, ingest=False)
    after_other = predictions.version()
    again = night.run(day, ingest=False)

    assert first.scored == again.scored == rows_of(day).count() > 0
    assert rows_of(day).select("event_id").distinct().count() == first.scored
    # When the night ran, and which version of gold.features it read (the other night's
    # features make a new one): all a re-run may change.
    ran = ("scored_at", "feature_version")
    assert_df_equality(rows_of(day).drop(*ran), rows_of(day, after_first).drop(*ran), ignore_row_order=True)
    # Another day is left as it was, to the second its rows were scored.
    assert_df_equality(rows_of(other), rows_of(other, after_other), ignore_row_order=True)
    serving = lake.table("gold", "predictions").read().where(F.col("event_date") == day)
    assert serving.count() == first.scored
    assert {row.source for row in serving.select("source").distinct().collect()} == {"batch"}
    assert NightlyBatch(settings, spark).run(HISTORY_END + timedelta(days=365), ingest=False).no_events


def test_pyfunc_predictions_equal_the_sklearn_pipeline(trained):
    """What the registry serves is the pipeline's predict_proba[:, 1], nothing added or lost."""
    import mlflow

    from medallion.model.registry import version_for
    from medallion.schemas import FEATURE_COLUMNS

    settings, store, _ = trained
    model = mlflow.pyfunc.load_model(f"models:/{settings.model.name}/{version_for(settings, 'champion')}")
    frame = store.table("features").read().orderBy("event_id").limit(300).toPandas()[list(FEATURE_COLUMNS)]
    pipeline = model.unwrap_python_model().pipeline
    np.testing.assert_allclose(
        model.predict(frame).to_numpy(), pipeline.predict_proba(frame)[:, 1], atol=1e-12
    )


def test_champion_with_another_signature_is_one_line(spark, lake_with_champion):
    import mlflow
    from mlflow.models import infer_signature

    from medallion.model.registry import promote, version_for
    from medallion.model.scoring import load_champion
    from medallion.model.tracking import configure
    from medallion.schemas import FEATURE_COLUMNS

    settings = lake_with_champion()
    configure(settings)
    champion = mlflow.pyfunc.load_model(f"models:/{settings.model.name}/{version_for(settings, 'champion')}")
    example = champion.input_example.drop(columns=[FEATURE_COLUMNS[0]]).assign(legacy_score=0.5)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=champion.unwrap_python_model(),
            signature=infer_signature(example, example["legacy_score"]),
            registered_model_name=settings.model.name,
        )
    # Forced past the gate, so the signature check is what refuses it.
    mlflow.MlflowClient().set_registered_model_alias(
        settings.model.name, "challenger", info.registered_model_version
    )
    promote(settings, force=True, reason="a legacy model")

    with pytest.raises(ModelNotReadyError) as err:
        load_champion(spark, settings)
    assert str(err.value) == (
        f"fraud_model v{info.registered_model_version} does not take the gold features "
        f"(missing ['{FEATURE_COLUMNS[0]}'], unexpected ['legacy_score']): retrain with medallion train"
    )


def test_udf_scores_in_one_task_per_core_on_a_local_master(trained, spark):
    # Locally mlflow's UDF loads the model in each task: a day read from many files must not
    # pay that per file. The scores themselves do not depend on the layout.
    from medallion.model.scoring import load_champion
    from medallion.predict import with_scores

    settings, store, _ = trained
    scorer = load_champion(spark, settings)
    features = store.table("features").read().orderBy("event_id").limit(400)
    many_files = features.repartition(8, "card_id")
    scored = with_scores(many_files, scorer, threshold=0.5)
    assert scored.rdd.getNumPartitions() == 2  # local[2], whatever spark.default.parallelism says
    by_layout = [
        {row.event_id: row.score for row in frame.select("event_id", "score").collect()}
        for frame in (scored, with_scores(features.coalesce(1), scorer, threshold=0.5))
    ]
    assert by_layout[0] == by_layout[1]


def test_a_corrupt_registry_says_what_failed_not_that_an_alias_is_missing(tmp_path):
    from medallion.model.registry import version_for

    corrupt = tmp_path / "mlflow.db"
    corrupt.write_bytes(b"not a database " * 200)
    settings = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={tmp_path}", f"storage.tracking_uri=sqlite:///{corrupt}"],
    )
    with pytest.raises(ModelNotReadyError) as err:
        version_for(settings, "champion")
    message = str(err.value)
    assert message.startswith(f"the MLflow registry at sqlite:///{corrupt} could not be read (")
    assert (
        "file is not a database" in message and "run medallion train" not in message and "\n" not in message
    )
