"""The tree walker: a compiled model's trees as one JVM function, where the session has it.

Usage::

    walk = tree_walker(spark, native.walker_text())   # None: the session lacks the scoring jar
    raw = walk(F.struct(*encoded_inputs))             # a Column: baseline + each tree's leaf

Why: as SQL, a model's trees are an expression of thousands of nodes, and Spark's driver
analyses and optimises every query in time that grows with it (each micro-batch, each night,
each streaming restart). ``io.medallion.scoring.TreeEnsemble`` (Java, built by
``python -m medallion.jvm fetch scoring``) walks the same trees over arrays: the plan holds
one function node, and the scores are the SQL expressions' to the bit (the same comparisons,
the leaves summed in the same order). A session without the jar, or a Spark Connect session
(no JVM to hand a function to), scores with the SQL expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WALKER_CLASS = "io.medallion.scoring.TreeEnsemble"


def tree_walker(spark, text: str) -> Callable[[Any], Any] | None:
    """A function from a struct Column of the encoded inputs to the raw-score Column, or None
    when ``spark`` cannot load the walker (no scoring jar, no classic JVM session)."""
    from py4j.protocol import Py4JError
    from pyspark.sql import Column

    jvm = getattr(getattr(spark, "sparkContext", None), "_jvm", None) if spark is not None else None
    if jvm is None or getattr(spark, "_jsparkSession", None) is None:
        return None
    from medallion.spark import jvm_class_available_in

    if not jvm_class_available_in(jvm, WALKER_CLASS):
        return None
    try:
        from pyspark.sql.classic.column import _to_seq

        function = jvm.io.medallion.scoring.TreeEnsemble.parse(text).function()
    except (Py4JError, ImportError):  # a bad text is a bug here; a vendor build without classic
        return None

    def walk(inputs):
        return Column(function.apply(_to_seq(spark.sparkContext, [inputs._jc])))

    return walk
