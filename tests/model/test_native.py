"""Native scoring: the champion compiled to Spark expressions, equal to its pyfunc, and the switch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from medallion.model.native import (
    PARITY_TAG,
    PARITY_TOLERANCE,
    NativeUnsupported,
    check_parity,
    compile_pipeline,
    compile_pyfunc,
    edge_rows,
)
from medallion.schemas import CATEGORICAL_FEATURES, FEATURE_COLUMNS, FEATURE_SCHEMA
from tests.conftest import HISTORY_END


def _champion(settings):
    import mlflow

    from medallion.model.registry import version_for
    from medallion.model.tracking import configure

    configure(settings)
    version = version_for(settings, "champion")
    return version, mlflow.pyfunc.load_model(f"models:/{settings.model.name}/{version}")


def test_compiled_champion_equals_its_pyfunc_on_features_and_edge_rows(trained, spark):
    import mlflow

    settings, store, _ = trained
    version, model = _champion(settings)
    # Training recorded the check on the version.
    assert mlflow.MlflowClient().get_model_version(settings.model.name, version).tags[PARITY_TAG] == "passed"
    native = compile_pyfunc(model)
    assert len(native.trees) > 1 and any(n.categorical for tree in native.trees for n in tree)
    # Rows training never checked: every gold feature row, plus nulls in each column and unseen categories.
    rows = store.table("features").read().select(*FEATURE_COLUMNS).toPandas()
    rows = pd.concat([rows, edge_rows(rows, FEATURE_COLUMNS, CATEGORICAL_FEATURES)], ignore_index=True)
    parity = check_parity(spark, native, model, rows, settings.model.decision_threshold)
    assert parity.rows == len(rows) > 1000
    assert parity.max_abs_diff <= PARITY_TOLERANCE and parity.decisions_equal, parity.describe()
    # make setup built the scoring jar: the session walks the trees in the JVM.
    assert native.form(spark) == "jvm"
    frame = spark.createDataFrame(
        [tuple(None if pd.isna(v) else v for v in r) for r in rows.itertuples(index=False)], FEATURE_SCHEMA
    )

    def scores(model, form):
        scored = model.with_score(frame, columns=model.columns(spark, form))
        return scored.select("score").toPandas()["score"].to_numpy()

    # The walker and the trees as SQL give the same scores to the bit, edge rows included;
    # and small projections give the same sums, in the same order, as one.
    walked = scores(native, "jvm")
    assert np.array_equal(walked, scores(native, "sql"))
    chunked = compile_pyfunc(model, leaves_per_projection=8)
    assert len(chunked.projections()) > len(native.projections())
    assert np.array_equal(walked, scores(chunked, "sql"))


def test_an_estimator_or_transformer_it_does_not_know_is_refused_by_name(trained):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    settings, _, _ = trained
    _, model = _champion(settings)
    pipeline = model.unwrap_python_model().pipeline
    with pytest.raises(NativeUnsupported, match="LogisticRegression is not compiled"):
        compile_pipeline(Pipeline([("encode", pipeline[0]), ("model", LogisticRegression())]))
    with pytest.raises(NativeUnsupported, match=r"'scale' \(StandardScaler\) is not compiled"):
        compile_pipeline(
            Pipeline([("encode", pipeline[0]), ("scale", StandardScaler()), ("model", pipeline[-1])])
        )


def _register_unsupported_champion(settings) -> str:
    """A champion the compiler refuses: the champion's pipeline with a scaler between its steps."""
    import mlflow
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from medallion.model.pyfunc import FraudModel

    _, champion = _champion(settings)
    fitted = champion.unwrap_python_model().pipeline
    example = champion.input_example
    # A scaler fitted to leave its inputs as they are: the scores stay the champion's.
    scale = StandardScaler(with_mean=False, with_std=False).fit(fitted[0].transform(example))
    pipeline = Pipeline([("encode", fitted[0]), ("scale", scale), ("model", fitted[-1])])
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FraudModel(pipeline),
            signature=champion.metadata.signature,
            input_example=example,
            registered_model_name=settings.model.name,
        )
    client = mlflow.MlflowClient()
    version = str(info.registered_model_version)
    client.set_model_version_tag(settings.model.name, version, "gate", "passed")
    client.set_registered_model_alias(settings.model.name, "champion", version)
    return version


def test_a_refused_champion_is_scored_by_the_pandas_udf_saying_why(spark, lake_with_champion):
    from medallion.model.scoring import load_champion
    from medallion.predict import with_scores

    settings = lake_with_champion("model.scoring=native")
    version = _register_unsupported_champion(settings)
    scorer = load_champion(spark, settings)
    assert scorer.native is None and scorer.scored_by == "pandas_udf"
    assert "\n" not in scorer.path_note
    assert f"v{version} is not compiled: pipeline step 'scale' (StandardScaler)" in scorer.path_note
    _, model = _champion(settings)
    rows = spark.createDataFrame(model.input_example)
    scored = with_scores(rows, scorer, 0.5).toPandas()
    assert set(scored["scored_by"]) == {"pandas_udf"}
    assert np.abs(scored["score"].to_numpy() - model.predict(model.input_example).to_numpy()).max() <= 1e-12


def test_nightly_batch_scores_by_the_switch_and_records_the_path(trained, spark):
    from medallion.batch import NightlyBatch
    from medallion.tables import Lakehouse

    settings, _, _ = trained
    day = HISTORY_END - timedelta(days=2)

    def night(scoring: str):
        switched = settings.model_copy(
            update={"model": settings.model.model_copy(update={"scoring": scoring})}
        )
        report = NightlyBatch(switched, spark).run(day, ingest=False, reconcile=False, build_features=False)
        predictions = Lakehouse(settings, spark).table("gold", "predictions_batch")
        rows = (
            predictions.read().where(F.col("event_date") == day).toPandas().set_index("event_id").sort_index()
        )
        return report, rows

    native_report, native_rows = night("native")
    udf_report, udf_rows = night("pandas_udf")
    assert native_report.scored == udf_report.scored == len(native_rows) > 0
    assert any("scored by native" in step.detail for step in native_report.steps)
    assert set(native_rows["scored_by"]) == {"native"}
    assert set(udf_rows["scored_by"]) == {"pandas_udf"}
    assert (native_rows.index == udf_rows.index).all()
    assert np.abs(native_rows["score"] - udf_rows["score"]).max() <= PARITY_TOLERANCE
    assert (native_rows["decision"] == udf_rows["decision"]).all()


def test_micro_batch_stream_scores_natively_with_auto(spark, lake_with_champion):
    from medallion.datagen import generate_history
    from medallion.streaming.speed import SpeedLayer
    from medallion.tables import Lakehouse

    settings = lake_with_champion("model.scoring=auto", "stream.trigger.kind=availableNow")
    generate_history(settings, days=1, events_per_day=200, end_date=HISTORY_END, progress=False)
    lines: list[str] = []
    SpeedLayer(settings, spark, log=lines.append).run(timeout=180)
    speed = Lakehouse(settings, spark).table("gold", "predictions_speed").read()
    assert speed.count() > 150
    assert {r.scored_by for r in speed.select("scored_by").distinct().collect()} == {"native"}
    assert any("scored by native" in line for line in lines), lines


@pytest.mark.parametrize("form", ["sql", "jvm"])
def test_the_trees_are_planned_once_however_often_the_score_is_used(spark, lake_with_champion, form):
    """The continuous query's plan: the profile lookup under the trees, and the
    score used dozens of times above them (judged, then written as Kafka records). The optimizer
    must not copy the trees into each use: above a Python UDF lookup it once did, and the query
    spent minutes generating code per task while no record left it."""
    from dataclasses import replace

    from medallion.features import profile_lookup_features
    from medallion.model.scoring import load_champion
    from medallion.predict import with_scores
    from medallion.streaming.continuous import judge, kafka_records, rate_events

    settings = lake_with_champion("model.scoring=native", "stream.source=rate")
    champion = load_champion(spark, settings)
    model = champion.native.model
    champion = replace(champion, native=replace(champion.native, columns=model.columns(spark, form)))
    # As a session without the scoring jar runs it (SQL trees over a pandas UDF lookup), and with it.
    lookup = "python" if form == "sql" else "jvm"
    features = profile_lookup_features(rate_events(spark, settings), None, form=lookup)
    records = kafka_records(judge(with_scores(features, champion, 0.5)), "scores", "rejected")
    plan = spark._jvm.PythonSQLUtils.explainString(records._jdf.queryExecution(), "simple")
    # With the scoring jar the profile lookup is in the JVM too: no row goes to Python.
    assert ("EvalPython" in plan) == (lookup == "python") and ("medallion_profile(" in plan) == (
        lookup == "jvm"
    )
    if form == "sql":
        # The sum of the trees starts from the model's baseline, a literal nothing else holds.
        assert plan.count(repr(model.baseline)) == 1, f"{len(plan)} characters of plan"
    else:
        # One call of the walker, and no tree in the plan.
        assert plan.count("medallion_trees(") == 1 and repr(model.baseline) not in plan, plan


@pytest.mark.usefixtures("delta_engine")
def test_a_prediction_table_from_before_scored_by_takes_the_column(spark, settings):
    from pyspark.sql.types import StructType

    from medallion.schemas import PREDICTIONS_BATCH_SCHEMA
    from medallion.tables import Lakehouse

    lake = Lakehouse(settings, spark)
    old = StructType([f for f in PREDICTIONS_BATCH_SCHEMA.fields if f.name != "scored_by"])
    table = lake.create("gold", "predictions_batch", old, partition_by=["event_date"])
    row = ("e1", HISTORY_END, 0.25, False, "fraud_model", "1", None, 3, datetime(2026, 1, 1, tzinfo=UTC))
    table.append(spark.createDataFrame([row], old))
    evolved = lake.create("gold", "predictions_batch", PREDICTIONS_BATCH_SCHEMA, partition_by=["event_date"])
    assert evolved.schema.fieldNames() == PREDICTIONS_BATCH_SCHEMA.fieldNames()
    (kept,) = evolved.read().collect()
    assert kept.event_id == "e1" and kept.score == 0.25 and kept.scored_by is None


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["stream.source=files", "stream.sink=kafka"], "cannot read stream.source=files"),
        (
            ["stream.source=kafka", "stream.sink=delta"],
            "cannot write stream.sink=delta: real-time mode writes only Kafka",
        ),
        (
            ["stream.source=kafka", "stream.sink=kafka", "model.scoring=pandas_udf"],
            "set model.scoring=native",
        ),
    ],
)
def test_real_time_trigger_is_refused_before_start_in_one_line(tmp_path, overrides, says):
    from medallion.config import load_settings
    from medallion.errors import StreamConfigError
    from medallion.streaming.plan import has_real_time_trigger, plan_stream
    from tests.conftest import REPO

    # The pinned PySpark has Spark's real-time trigger: the refusals below are medallion's.
    assert has_real_time_trigger()
    settings = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={tmp_path}", "stream.trigger.kind=realTime", *overrides],
    )
    assert settings.stream.trigger.interval == "5 seconds"
    with pytest.raises(StreamConfigError) as refused:
        plan_stream(settings)
    message = str(refused.value)
    assert says in message and "\n" not in message and message.startswith("stream.trigger.kind=realTime")
