"""Which engine runs the Delta tables: ``conf: delta.engine: auto | spark | rs``.

Usage::

    from medallion.tables import resolve_engine

    engine, reason = resolve_engine(spark, settings)
    # ('rs', 'auto: delta-spark classes not loadable in the JVM (io.delta.tables.DeltaTable); using embedded delta-rs')
"""

from __future__ import annotations

import logging
import os

from medallion.config import Settings
from medallion.errors import EnvironmentProblem
from medallion.spark import DELTA_EXTENSION, DELTA_TABLE_CLASS, jvm_class_available

log = logging.getLogger("medallion.tables")

DELTA_CLASS = DELTA_TABLE_CLASS
HOW_TO_GET_JARS = (
    "run make setup (python -m medallion.jvm fetch delta) where Maven Central is reachable; "
    "under spark-submit pass --jars $(python -m medallion.jvm classpath)"
)


def _spark_engine_problem(spark) -> str | None:
    """Why the spark engine cannot run in this session, or None if it can."""
    if not jvm_class_available(spark, DELTA_CLASS):
        return f"delta-spark classes not loadable in the JVM ({DELTA_CLASS})"
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if DELTA_EXTENSION not in extensions:
        return f"delta-spark jars are loaded but spark.sql.extensions lacks {DELTA_EXTENSION}"
    return None


def resolve_engine(spark, settings: Settings) -> tuple[str, str]:
    """``(engine, reason)``: the engine this session uses, and why, in words for ``doctor``."""
    wanted = settings.delta.engine
    if wanted == "rs":
        engine, reason = "rs", "conf delta.engine=rs: embedded delta-rs"
    elif wanted == "spark":
        problem = _spark_engine_problem(spark)
        if problem:
            raise EnvironmentProblem(
                f"delta.engine=spark but {problem}: {HOW_TO_GET_JARS}, or set delta.engine=auto"
            )
        engine, reason = "spark", f"conf delta.engine=spark: delta-spark ({DELTA_CLASS})"
    elif os.environ.get("DATABRICKS_RUNTIME_VERSION") and _spark_engine_problem(spark) is None:
        engine, reason = "spark", "auto: a Databricks runtime ships Delta in its JVM"
    else:
        # bench/engines.py: the embedded engine commits a micro-batch and a day's reconcile
        # without a Spark write job; delta-spark is the choice on Databricks and clusters.
        loads = "delta-spark loads too" if _spark_engine_problem(spark) is None else "delta-spark absent"
        engine, reason = (
            "rs",
            f"auto: embedded delta-rs (faster small commits, see bench/engines.py; {loads})",
        )
    log.info("delta engine %s (%s)", engine, reason)
    return engine, reason
