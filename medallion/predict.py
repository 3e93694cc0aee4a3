"""Apply a registered model to gold features: the one scoring step of the batch and the speed layer.

Usage::

    from medallion.predict import with_scores

    scored = with_scores(features, scorer, threshold=0.5)
    scored.select("event_id", "score", "decision", "model_version")

``scorer`` is a :class:`medallion.model.scoring.Scorer`: an ``mlflow.pyfunc.spark_udf``
(Arrow batches through a pandas UDF) plus the registered name, version and run id it loaded,
and, when ``model.scoring`` chose it, the compiled model (its trees in the JVM)
(``scorer.native``), which then scores instead of the UDF. ``scored_by`` records which did.

On a local master the rows are scored in at most one task per core: there, mlflow's UDF
loads the model in every task (on a cluster it keeps one per executor process), about
70 ms each, and a day read from many files would otherwise pay it per file.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion.schemas import FEATURE_COLUMNS
from medallion.spark import task_slots


def with_scores(features: DataFrame, scorer, threshold: float) -> DataFrame:
    """Add ``score``, ``decision``, ``model_name``, ``model_version``, ``run_id`` and ``scored_by``."""
    native = getattr(scorer, "native", None)
    if native is not None:
        # Scored inside the JVM: no Python worker, so no per-task model load to spare.
        scored = native.with_score(features, "score")
    else:
        score = scorer.udf(*[F.col(name) for name in FEATURE_COLUMNS])
        context = features.sparkSession.sparkContext
        if context.master.startswith("local") and not features.isStreaming:
            # Never more tasks than cores, never a shuffle: coalesce only merges partitions.
            # (A continuous query's plan may not coalesce; its tasks never end anyway.)
            features = features.coalesce(task_slots(context))
        scored = features.withColumn("score", score)
    # One projection: each derived frame re-analyses the whole plan, and a native score's is large.
    return scored.withColumns(
        {
            "decision": F.col("score") >= F.lit(threshold),
            "model_name": F.lit(scorer.name),
            "model_version": F.lit(str(scorer.version)),
            "run_id": F.lit(scorer.run_id),
            "scored_by": F.lit("native" if native is not None else "pandas_udf"),
        }
    )
