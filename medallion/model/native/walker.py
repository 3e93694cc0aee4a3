"""The tree walker: a compiled model's trees as one JVM function, where the session has it.

Usage::

    walk = tree_walker(spark, native.walker_text())   # None: the session lacks the scoring jar
    raw = walk(F.struct(*encoded_inputs))             # a Column: baseline + each tree's leaf

Why: as SQL, a model's trees are an expression of thousands of nodes, and Spark's driver
analyses and optimises every query in time that grows with it (each micro-batch, each night,
each streaming restart). ``io.medallion.scoring.TreeEnsemble`` (Java, in medallion's scoring
jar, built by ``python -m medallion.jvm fetch scoring``) walks the same trees over arrays: the
plan holds one function node, and the scores are the SQL expressions' to the bit (the same
comparisons, the leaves summed in the same order). A session without the jar, or a Spark
Connect session, scores with the SQL expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medallion.jvm import SCORING_CLASS
from medallion.jvm_udf import jvm_function

#: The jar's marker class (what :func:`medallion.jvm.usable_scoring_jar` checks) is the walker.
WALKER_CLASS = SCORING_CLASS


def tree_walker(spark, text: str) -> Callable[[Any], Any] | None:
    """A function from a struct Column of the encoded inputs to the raw-score Column, or None
    when ``spark`` cannot load the walker."""
    return jvm_function(spark, WALKER_CLASS, text)
