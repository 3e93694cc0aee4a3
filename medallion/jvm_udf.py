"""Functions from medallion's scoring jar, as PySpark Column functions.

Usage::

    walk = jvm_function(spark, "io.medallion.scoring.TreeEnsemble", text)   # None: no jar here
    raw = walk(F.struct(*inputs))

Each class in the jar has ``parse(text)`` (its data, as text: exact, and one py4j call
however large) and ``function()`` (a Spark ``UserDefinedFunction`` over that data, serialised
with the plan to the executors, so it works on any cluster whose classpath has the jar). A
session that cannot load the class (the jar not built, Spark Connect with no JVM to hand a
function to) gets None, and the caller uses its SQL or Python form instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def exact_double(value: float) -> str:
    """A double as the jar's texts write it (its ``Text.number`` reads it back bit-equal):
    ``float.hex()``, or ``nan``, ``inf``, ``-inf``."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(value).hex()


def jvm_function(spark, class_name: str, text: str) -> Callable[..., Any] | None:
    """``class_name.parse(text).function()`` as a function of Columns, or None where ``spark``
    cannot load ``class_name``."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException
    from pyspark.sql import Column

    from medallion.spark import jvm_class_available_in

    try:  # Spark Connect's sessions raise here: no JVM to hand a function to
        context = spark.sparkContext if spark is not None else None
    except Exception:
        context = None
    jvm = getattr(context, "_jvm", None)
    if jvm is None or getattr(spark, "_jsparkSession", None) is None:
        return None
    if not jvm_class_available_in(jvm, class_name):
        return None
    try:
        from pyspark.sql.classic.column import _to_seq

        target = jvm
        for part in class_name.split("."):
            target = getattr(target, part)
        function = target.parse(text).function()
    except ImportError:  # a vendor's PySpark without the classic Column helpers
        return None
    except (Py4JError, PySparkException) as exc:  # our text and our parser disagree: a bug, said plainly
        raise RuntimeError(f"{class_name}.parse refused medallion's own text: {exc}") from None

    def call(*columns):
        return Column(function.apply(_to_seq(context, [c._jc for c in columns])))

    return call
