"""The compiled model: inputs, trees and the Spark SQL text that scores a row.

How the expression is laid out: the inputs are encoded once (each category to its code,
a null number to NaN), then the trees are summed in order (baseline first, as scikit-learn
adds them, so the sums are bit-equal), in projections of at most ``leaves_per_projection``
leaves (by default all of them, in one).

Why each sum ends in ``+ IF(exists(array(input), x -> false), 1.0D, 0.0D)`` (always 0.0):
``exists`` is one of Spark's interpreted expressions, so the projection holding it is left out
of whole-stage codegen. A model's trees would make a whole-stage method over Java's 64 KB
limit: Spark would try to compile it for every query, fail, and fall back. Outside
whole-stage codegen the projection is generated with each large sub-expression in its own
small method, which the JIT compiles.

Why each partial sum carries a ``0.0D * spark_partition_id()`` term: Spark treats it as
non-deterministic, so the optimizer never inlines a sum into the expressions that use it
(adding 0.0 leaves the sum unchanged). Inlined, the chunks would fold back into one
projection, and above a Python UDF (the continuous query's profile lookup) each of
the score's many uses would hold a copy of every tree: a plan whose code generation takes
minutes per task.

Where the session has medallion's scoring jar, :meth:`NativeModel.columns` hands the encoded
inputs to the JVM tree walker instead of the sums (:mod:`medallion.model.native.walker`): the
same scores, to the bit, from a plan of one function node.

Why the text is parsed once (:meth:`NativeModel.columns`): ``F.expr`` keeps the SQL text and
Spark parses it again each time a query uses the Column, which for a model's trees costs more
than scoring a small batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medallion.errors import MedallionError
from medallion.jvm_udf import exact_double

#: Leaves per projection: by default every tree in one (fastest measured, docs/performance.md).
LEAVES_PER_PROJECTION = 1_000_000
_PREFIX = "_native_"


class NativeUnsupported(MedallionError):
    """The model holds something the compiler does not know; the message names it."""


@dataclass(frozen=True)
class Input:
    """One model input as the trees see it, computed from one feature column.

    ``codes`` is None for a number (passed through, null as NaN); for a category it maps
    each known string to the code the trees compare, with ``other`` for null or unknown
    strings (NaN: the tree's missing-value direction).
    """

    column: str
    codes: dict[str, float] | None = None
    null: float = math.nan
    other: float = math.nan

    @property
    def categorical(self) -> bool:
        return self.codes is not None


@dataclass(frozen=True)
class Node:
    value: float
    is_leaf: bool
    feature: int
    threshold: float
    missing_left: bool
    left: int
    right: int
    categorical: bool
    left_codes: frozenset[int] = frozenset()
    known_codes: frozenset[int] = frozenset()


@dataclass(frozen=True)
class NativeModel:
    """A binary gradient-boosted classifier as Spark SQL: ``with_score`` adds its probability."""

    inputs: tuple[Input, ...]
    trees: tuple[tuple[Node, ...], ...]
    baseline: float
    leaves_per_projection: int = LEAVES_PER_PROJECTION
    _sql: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def leaves(self) -> int:
        return sum(node.is_leaf for tree in self.trees for node in tree)

    def describe(self) -> str:
        categories = sum(i.categorical for i in self.inputs)
        return (
            f"{len(self.trees)} trees / {self.leaves} leaves over {categories} categorical and "
            f"{len(self.inputs) - categories} numeric inputs, {len(self.projections())} projections"
        )

    # -------------------------------------------------------------- SQL text

    def input_sql(self) -> list[tuple[str, str]]:
        """(column name, expression) of each encoded input: the first projection."""
        out = []
        for index, spec in enumerate(self.inputs):
            source = _quote(spec.column)
            if spec.codes is None:
                sql = f"coalesce(CAST({source} AS DOUBLE), {_double(math.nan)})"
            else:
                whens = [f"WHEN {source} IS NULL THEN {_double(spec.null)}"]
                whens += [f"WHEN {source} = {_string(k)} THEN {_double(v)}" for k, v in spec.codes.items()]
                sql = f"CASE {' '.join(whens)} ELSE {_double(spec.other)} END"
            out.append((f"{_PREFIX}in{index}", sql))
        return out

    def tree_sql(self, tree: Sequence[Node]) -> str:
        def walk(index: int) -> str:
            node = tree[index]
            if node.is_leaf:
                return _double(node.value)
            return f"CASE WHEN {self._condition(node)} THEN {walk(node.left)} ELSE {walk(node.right)} END"

        return walk(0)

    def _condition(self, node: Node) -> str:
        column = f"{_PREFIX}in{node.feature}"
        if node.categorical:
            if node.missing_left:
                # Left unless a known category that goes right: unknown, null and NaN go left.
                right = sorted(node.known_codes - node.left_codes)
                return f"NOT ({column} IN ({_codes(right)}))" if right else "true"
            left = sorted(node.left_codes)
            return f"{column} IN ({_codes(left)})" if left else "false"
        below = f"{column} <= {_double(node.threshold)}"
        return f"({below} OR isnan({column}))" if node.missing_left else below

    def projections(self) -> list[list[int]]:
        """Tree indices per projection, in order, each chunk within the leaf budget."""
        chunks: list[list[int]] = [[]]
        leaves = 0
        for index, tree in enumerate(self.trees):
            size = sum(node.is_leaf for node in tree)
            if chunks[-1] and leaves + size > self.leaves_per_projection:
                chunks.append([])
                leaves = 0
            chunks[-1].append(index)
            leaves += size
        return chunks

    def sql(self) -> dict[str, Any]:
        """Every SQL text the score needs (built once per model)."""
        if "sums" not in self._sql:
            raw = f"{_PREFIX}raw"
            sums = []
            # Always 0.0, added last: keeps the projection out of whole-stage codegen (module doc).
            interpreted = f"IF(exists(array({_PREFIX}in0), x -> false), 1.0D, 0.0D)"
            for number, chunk in enumerate(self.projections()):
                previous = _double(self.baseline) if number == 0 else raw
                start = f"({previous} + 0.0D * spark_partition_id())"
                trees = [f"({self.tree_sql(self.trees[i])})" for i in chunk]
                sums.append(" + ".join([start, *trees, interpreted]))
            self._sql.update(inputs=self.input_sql(), sums=sums, raw=raw)
        return self._sql

    # -------------------------------------------------------------- Spark

    def walker_text(self) -> str:
        """The trees as the text the JVM walker reads (``TreeEnsemble.parse``, whose doc is
        the format): the same comparisons as :meth:`tree_sql`, doubles in exact hex."""
        lines = [f"medallion-trees 1 {len(self.inputs)} {exact_double(self.baseline)}"]
        for tree in self.trees:
            lines.append(f"T {len(tree)}")
            for node in tree:
                if node.is_leaf:
                    lines.append(f"L {exact_double(node.value)}")
                elif node.categorical:
                    # As _condition: missing left -> left unless a known code that goes right.
                    codes, left_when_in = (
                        (node.known_codes - node.left_codes, 0) if node.missing_left else (node.left_codes, 1)
                    )
                    listed = " ".join(exact_double(float(c)) for c in sorted(codes))
                    lines.append(
                        f"C {node.feature} {left_when_in} {node.left} {node.right} {listed}".rstrip()
                    )
                else:
                    lines.append(
                        f"N {node.feature} {exact_double(node.threshold)} {int(node.missing_left)} "
                        f"{node.left} {node.right}"
                    )
        return "\n".join(lines)

    def form(self, spark=None) -> str:
        """How :meth:`columns` runs the trees in ``spark``: ``"jvm"`` (the walker) or ``"sql"``."""
        return "jvm" if self._walker(spark) is not None else "sql"

    def _walker(self, spark):
        from medallion.model.native.walker import tree_walker

        session = spark if spark is not None else _active()
        context = _context(session)
        if context is None:
            return None
        # One JVM function per Spark application: its sessions share the JVM.
        key = ("walker", context.applicationId)
        if key not in self._sql:
            self._sql[key] = tree_walker(session, self.walker_text())
        return self._sql[key]

    def columns(self, spark=None, form: str = "auto") -> list[tuple[str, Any]]:
        """(name, Column) in order: the encoded inputs, then the raw score: the JVM walker
        over them (``form="jvm"``, or ``"auto"`` where the session has the scoring jar), else
        one partial sum of the trees as SQL per projection.

        Build once per model and reuse: the text is parsed here, once (``spark``: the session
        whose parser to use, by default the active one).
        """
        from pyspark.sql import functions as F

        if form not in ("auto", "jvm", "sql"):
            raise ValueError(f"form must be 'auto', 'jvm' or 'sql', got {form!r}")
        sql = self.sql()
        encoded = [(n, _parsed(spark, s)) for n, s in sql["inputs"]]
        out: list[tuple[str, Any]] = [("__inputs__", encoded)]
        walk = self._walker(spark) if form != "sql" else None
        if form == "jvm" and walk is None:
            raise ValueError("form='jvm' needs the scoring jar on the session: python -m medallion.jvm fetch")
        if walk is not None:
            # Non-deterministic, as the SQL sums (module doc): the walk runs once per row.
            raw = walk(F.struct(*[F.col(name) for name, _ in encoded])) + F.lit(0.0) * F.spark_partition_id()
            return [*out, (sql["raw"], raw)]
        out += [(sql["raw"], _parsed(spark, text)) for text in sql["sums"]]
        return out

    def with_score(self, frame, column: str = "score", columns: list[tuple[str, Any]] | None = None):
        """``frame`` plus ``column``: the probability of the positive class, as the pipeline gives it."""
        from pyspark.sql import functions as F

        parts = columns if columns is not None else self.columns()
        original = frame.columns
        _, encoded = parts[0]
        frame = frame.withColumns(dict(encoded))
        for name, expression in parts[1:]:
            frame = frame.withColumn(name, expression)
        raw = F.col(self.sql()["raw"])
        probability = F.lit(1.0) / (F.lit(1.0) + F.exp(-raw))
        return frame.select(*[F.col(_quote(c)) for c in original], probability.alias(column))


def _active():
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def _context(session):
    """The session's SparkContext; None without a session or a JVM (Spark Connect raises)."""
    try:
        return session.sparkContext if session is not None else None
    except Exception:
        return None


def _parsed(spark, text: str):
    """``text`` as a Column holding the parsed expression, so no query parses it again.

    A classic session parses it here; elsewhere (Spark Connect) it stays ``F.expr``.
    """
    from py4j.protocol import Py4JError
    from pyspark.sql import Column
    from pyspark.sql import functions as F

    session = spark if spark is not None else _active()
    jsession = getattr(session, "_jsparkSession", None)
    if jsession is None:
        return F.expr(text)
    try:
        parsed = jsession.sessionState().sqlParser().parseExpression(text)
        utils = session.sparkContext._jvm.org.apache.spark.sql.classic.ExpressionUtils
        return Column(utils.column(parsed))
    except (Py4JError, TypeError):  # a runtime without Spark 4's classic API (a vendor's build)
        return F.expr(text)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _double(value: float) -> str:
    if math.isnan(value):
        return "CAST('NaN' AS DOUBLE)"
    if math.isinf(value):
        return f"CAST('{'' if value > 0 else '-'}Infinity' AS DOUBLE)"
    # repr is the shortest text that reads back as the same double; D makes it a double literal.
    return f"{float(value)!r}".upper() + "D"


def _codes(codes: Sequence[int]) -> str:
    return ", ".join(f"{float(c)!r}D" for c in codes)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
