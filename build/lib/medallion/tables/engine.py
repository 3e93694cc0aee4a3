"""Which engine runs the Delta tables: ``conf: delta.engine: auto | spark | rs``.

Usage::

    from medallion.tables import resolve_engine

    engine, reason = resolve_engine(spark, settings)
    # ('rs', 'auto: delta-spark classes not loadable in the JVM (io.delta.tables.DeltaTable); using embedded delta-rs')
"""

from __future__ import annotations

import logging

from medallion.config import Settings
from medallion.errors import EnvironmentProblem
from medallion.spark import DELTA_EXTENSION, jvm_class_available

log = logging.getLogger("medallion.tables")

DELTA_CLASS = "io.delta.tables.DeltaTable"
HOW_TO_GET_JARS = "add io.delta:delta-spark_2.13:4.0.x to spark.jars.packages or spark.jars"


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
    else:
        problem = _spark_engine_problem(spark)
        if problem:
            engine, reason = "rs", f"auto: {problem}; using embedded delta-rs"
        else:
            engine, reason = "spark", f"auto: delta-spark classes load in the JVM ({DELTA_CLASS})"
    log.info("delta engine %s (%s)", engine, reason)
    return engine, reason
