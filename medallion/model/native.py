"""Native scoring: the champion's fitted pipeline compiled into Spark Column expressions.

The pandas UDF hands every row to a Python worker and joins each result back to its row;
compiled, the model runs inside the JVM (and in Spark's real-time mode, which runs no
Python UDF). Only what the compiler knows is compiled, exactly as scikit-learn predicts it:
a ``ColumnTransformer`` of ``OrdinalEncoder`` / ``passthrough`` columns feeding a binary
``HistGradientBoostingClassifier`` (its own category remapping, native categorical splits,
missing-value directions). Anything else is refused by name with :class:`NativeUnsupported`.

Usage::

    from medallion.model.native import NativeUnsupported, compile_pyfunc, check_parity

    try:
        native = compile_pyfunc(pyfunc_model)          # an mlflow.pyfunc.PyFuncModel
    except NativeUnsupported as refused:
        print(refused)                                 # names the estimator it does not know
    scored = native.with_score(features, "score")      # features + one double column
    parity = check_parity(spark, native, pyfunc_model, held_out_rows, threshold=0.5)
    parity.passed, parity.max_abs_diff

How the expression is laid out: the inputs are encoded once (each category to its code,
a null number to NaN), then the trees are summed in order (baseline first, as scikit-learn
adds them, so the sums are bit-equal), in projections of at most ``leaves_per_projection``
leaves (by default one). A model's trees make Java methods too large for the JIT to compile
(HotSpot leaves methods over 8,000 bytes interpreted), so loading a native scorer sets
``spark.sql.codegen.hugeMethodLimit`` to 8000 unless the session set it: Spark then runs that
stage without whole-stage codegen, where each projection is generated as many small methods.
A chunk's partial sum after the first carries a ``0 * spark_partition_id()`` term: an
expression Spark treats as non-deterministic, so the optimizer keeps the projections apart
instead of inlining them back into one (adding 0.0 leaves the sum unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medallion.errors import MedallionError

#: Scores from the two paths must agree to this, and give the same decisions.
PARITY_TOLERANCE = 1e-9
#: Leaves per projection: by default every tree in one (fastest measured, docs/performance.md).
LEAVES_PER_PROJECTION = 1_000_000
#: HotSpot's limit for compiling a method; Spark's default (65535) would run larger ones interpreted.
HUGE_METHOD_LIMIT = "8000"
_PREFIX = "_native_"


class NativeUnsupported(MedallionError):
    """The model holds something the compiler does not know; the message names it."""


# ---------------------------------------------------------------------- compiled model


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
        if not self._sql:
            raw = f"{_PREFIX}raw"
            sums = []
            for number, chunk in enumerate(self.projections()):
                start = _double(self.baseline) if number == 0 else f"({raw} + 0.0D * spark_partition_id())"
                sums.append(" + ".join([start, *(f"({self.tree_sql(self.trees[i])})" for i in chunk)]))
            self._sql.update(inputs=self.input_sql(), sums=sums, raw=raw)
        return self._sql

    # -------------------------------------------------------------- Spark

    def columns(self) -> list[tuple[str, Any]]:
        """(name, Column) in order: the encoded inputs, then one partial sum per projection.

        Build once per model and reuse: parsing the text is the costly part.
        """
        from pyspark.sql import functions as F

        sql = self.sql()
        out: list[tuple[str, Any]] = [("__inputs__", [(n, F.expr(s)) for n, s in sql["inputs"]])]
        out += [(sql["raw"], F.expr(text)) for text in sql["sums"]]
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

    # -------------------------------------------------------------- one row, in process

    def row_scorer(self) -> RowScorer:
        """The same trees evaluated in Python on one row of features (a mapping by column):
        the online path's, where a Spark job per request is out of the question. Each tree's
        leaf is added in the same order as :meth:`sql` adds them, so the sums are the same."""
        return RowScorer(self)


class RowScorer:
    """``scorer(row) -> probability`` for a mapping of feature columns, without Spark or numpy.

    The trees are flattened into tuples once: one row walks each tree from its root, about a
    hundred comparisons for a model of a few dozen trees."""

    def __init__(self, model: NativeModel) -> None:
        self.inputs = tuple(
            (spec.column, spec.codes, spec.null, spec.other) for spec in model.inputs
        )  # fmt: skip
        self.baseline = model.baseline
        self.trees = tuple(tuple(self._flat(node) for node in tree) for tree in model.trees)

    @staticmethod
    def _flat(node: Node) -> tuple:
        if node.is_leaf:
            return (True, node.value)
        if node.categorical:
            # missing_left: left unless a known category that goes right (null and unknown go left).
            goes = node.known_codes - node.left_codes if node.missing_left else node.left_codes
            return (
                False,
                node.feature,
                "cat_right" if node.missing_left else "cat_left",
                goes,
                node.left,
                node.right,
            )
        return (False, node.feature, "num", (node.threshold, node.missing_left), node.left, node.right)

    def encode(self, row: Mapping[str, Any]) -> list[float]:
        values = []
        for column, codes, null, other in self.inputs:
            value = row.get(column)
            if codes is None:
                values.append(math.nan if value is None else float(value))
            else:
                values.append(null if value is None else codes.get(value, other))
        return values

    def raw(self, row: Mapping[str, Any]) -> float:
        x = self.encode(row)
        total = self.baseline
        for tree in self.trees:
            node = tree[0]
            while not node[0]:
                _, feature, kind, test, left, right = node
                value = x[feature]
                if kind == "num":
                    threshold, missing_left = test
                    goes_left = value <= threshold or (missing_left and value != value)
                elif kind == "cat_left":
                    goes_left = value in test
                else:
                    goes_left = value not in test
                node = tree[left if goes_left else right]
            total += node[1]
        return total

    def __call__(self, row: Mapping[str, Any]) -> float:
        raw = self.raw(row)
        # 1 / (1 + exp(-raw)), as Spark evaluates it; exp overflows to inf, giving 0.0.
        try:
            return 1.0 / (1.0 + math.exp(-raw))
        except OverflowError:
            return 0.0


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


# ---------------------------------------------------------------------- the compiler


def compile_pyfunc(model, leaves_per_projection: int = LEAVES_PER_PROJECTION) -> NativeModel:
    """Compile an ``mlflow.pyfunc`` model holding medallion's ``FraudModel``."""
    from medallion.model.pyfunc import FraudModel

    try:
        python_model = model.unwrap_python_model()
    except Exception:
        python_model = None
    if not isinstance(python_model, FraudModel):
        flavour = type(python_model).__name__ if python_model is not None else model.loader_module
        raise NativeUnsupported(f"the pyfunc holds {flavour}, not medallion's FraudModel")
    return compile_pipeline(python_model.pipeline, leaves_per_projection)


def compile_pipeline(pipeline, leaves_per_projection: int = LEAVES_PER_PROJECTION) -> NativeModel:
    """Compile a fitted sklearn ``Pipeline`` of a ColumnTransformer and a binary HGB classifier."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    if not isinstance(leaves_per_projection, int) or leaves_per_projection < 1:
        raise ValueError(f"leaves_per_projection must be a positive int, got {leaves_per_projection!r}")
    steps = pipeline.steps if isinstance(pipeline, Pipeline) else [("model", pipeline)]
    *transforms, (_, estimator) = steps
    if not isinstance(estimator, HistGradientBoostingClassifier):
        raise NativeUnsupported(
            f"{type(estimator).__name__} is not compiled (only HistGradientBoostingClassifier)"
        )
    inputs: list[Input] | None = None
    for name, step in transforms:
        if not isinstance(step, ColumnTransformer) or inputs is not None:
            raise NativeUnsupported(
                f"pipeline step {name!r} ({type(step).__name__}) is not compiled "
                "(only one ColumnTransformer before the classifier)"
            )
        inputs = _column_transformer(step, None)
    if inputs is None:
        raise NativeUnsupported("the classifier takes raw columns: no ColumnTransformer names its inputs")
    return _hgb(estimator, inputs, leaves_per_projection)


def _column_transformer(transformer, upstream: list[Input] | None) -> list[Input]:
    """The Inputs a fitted ColumnTransformer outputs, in order.

    ``upstream``: the inputs its columns index (None: it reads named feature columns).
    """
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    width = sum(s.stop - s.start for s in transformer.output_indices_.values())
    out: list[Input | None] = [None] * width
    for name, step, columns in transformer.transformers_:
        where = transformer.output_indices_[name]
        if step == "drop" or where.stop == where.start:
            continue
        sources = _sources(columns, upstream, transformer)
        if step == "passthrough" or _is_identity(step, FunctionTransformer, validation=upstream is not None):
            produced = sources
        elif isinstance(step, OrdinalEncoder):
            produced = [_ordinal(step, i, source) for i, source in enumerate(sources)]
        else:
            label = step if isinstance(step, str) else type(step).__name__
            raise NativeUnsupported(
                f"transformer {name!r} ({label}) is not compiled (only OrdinalEncoder, passthrough)"
            )
        out[where] = produced
    if any(i is None for i in out):
        raise NativeUnsupported("a ColumnTransformer output column has no compiled source")
    return list(out)  # type: ignore[arg-type]


def _sources(columns, upstream: list[Input] | None, transformer) -> list[Input]:
    if upstream is None:
        names = list(transformer.feature_names_in_) if hasattr(transformer, "feature_names_in_") else None
        picked = []
        for column in np.atleast_1d(columns):
            if isinstance(column, str):
                picked.append(Input(column))
            elif names is not None and not isinstance(column, (bool, np.bool_)):
                picked.append(Input(str(names[int(column)])))
            else:
                raise NativeUnsupported(
                    "a ColumnTransformer selecting columns by position or mask from raw input"
                )
        return picked
    mask = np.asarray(columns)
    indices = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(int)
    return [upstream[int(i)] for i in np.atleast_1d(indices)]


def _is_identity(step, function_transformer, validation: bool) -> bool:
    """A FunctionTransformer that returns its input: a fitted ``passthrough`` (no function),
    or, inside the classifier (``validation``), its own ``check_array`` of the numbers."""
    import functools

    from sklearn.utils.validation import check_array

    if not isinstance(step, function_transformer):
        return False
    func = step.func
    checks = validation and isinstance(func, functools.partial) and func.func is check_array
    return func is None or checks


def _ordinal(encoder, index: int, source: Input) -> Input:
    """``source`` through one column of a fitted OrdinalEncoder."""
    if encoder.handle_unknown != "use_encoded_value":
        raise NativeUnsupported(
            f"OrdinalEncoder(handle_unknown={encoder.handle_unknown!r}) is not compiled (an unknown category would raise)"
        )
    if getattr(encoder, "infrequent_categories_", None) is not None and any(
        c is not None for c in encoder.infrequent_categories_
    ):
        raise NativeUnsupported("OrdinalEncoder with infrequent categories is not compiled")
    unknown = float(encoder.unknown_value)
    missing = float(encoder.encoded_missing_value)
    known: dict[Any, float] = {}
    has_missing = False
    for code, category in enumerate(encoder.categories_[index]):
        if _is_missing(category):
            has_missing = True
        else:
            known[category] = float(code)
    null_code = missing if has_missing else unknown

    if source.codes is None:
        if not all(isinstance(k, str) for k in known):
            raise NativeUnsupported(
                f"OrdinalEncoder over the numeric column {source.column!r} is not compiled (only string categories)"
            )
        return Input(source.column, codes=known, null=null_code, other=unknown)

    def through(value: float) -> float:
        if math.isnan(value):
            return null_code
        return known.get(value, unknown)

    codes = {text: through(code) for text, code in source.codes.items()}
    return Input(source.column, codes=codes, null=through(source.null), other=through(source.other))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _hgb(model, inputs: list[Input], leaves_per_projection: int) -> NativeModel:
    from sklearn.compose import ColumnTransformer

    if getattr(model, "n_trees_per_iteration_", None) != 1 or len(model.classes_) != 2:
        raise NativeUnsupported("HistGradientBoostingClassifier with more than two classes is not compiled")
    loss = type(model._loss).__name__
    if loss != "HalfBinomialLoss":
        raise NativeUnsupported(f"HistGradientBoostingClassifier with the {loss} loss is not compiled")
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is not None:
        if not isinstance(preprocessor, ColumnTransformer):
            raise NativeUnsupported(
                f"the classifier's preprocessor {type(preprocessor).__name__} is not compiled"
            )
        inputs = _column_transformer(preprocessor, inputs)
    if len(inputs) != model.n_features_in_ and preprocessor is None:
        raise NativeUnsupported(
            f"the classifier takes {model.n_features_in_} inputs, the encoding gives {len(inputs)}"
        )
    known_bitsets, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    trees = []
    for iteration in model._predictors:
        (predictor,) = iteration
        nodes = []
        for record in predictor.nodes:
            feature = int(record["feature_idx"])
            categorical = bool(record["is_categorical"]) and not bool(record["is_leaf"])
            left_codes: frozenset[int] = frozenset()
            known_codes: frozenset[int] = frozenset()
            if categorical:
                left_codes = _bits(predictor.raw_left_cat_bitsets[int(record["bitset_idx"])])
                known_codes = _bits(known_bitsets[int(f_idx_map[feature])])
                if not inputs[feature].categorical:
                    raise NativeUnsupported(
                        f"a categorical split on the numeric input {inputs[feature].column!r} is not compiled"
                    )
            nodes.append(
                Node(
                    value=float(record["value"]),
                    is_leaf=bool(record["is_leaf"]),
                    feature=feature,
                    threshold=float(record["num_threshold"]),
                    missing_left=bool(record["missing_go_to_left"]),
                    left=int(record["left"]),
                    right=int(record["right"]),
                    categorical=categorical,
                    left_codes=left_codes,
                    known_codes=known_codes,
                )
            )
        trees.append(tuple(nodes))
    baseline = np.asarray(model._baseline_prediction).ravel()
    return NativeModel(tuple(inputs), tuple(trees), float(baseline[0]), leaves_per_projection)


def _bits(bitset: np.ndarray) -> frozenset[int]:
    words = [int(w) for w in bitset]
    return frozenset(c for c in range(32 * len(words)) if (words[c // 32] >> (c % 32)) & 1)


# ---------------------------------------------------------------------- parity


@dataclass(frozen=True)
class Parity:
    """Native scores against the pyfunc's on the same rows."""

    rows: int
    max_abs_diff: float
    decisions_equal: bool

    @property
    def passed(self) -> bool:
        return self.rows > 0 and self.max_abs_diff <= PARITY_TOLERANCE and self.decisions_equal

    def describe(self) -> str:
        verdict = "equal" if self.passed else "NOT equal"
        return (
            f"native scores {verdict} to the pyfunc's on {self.rows} rows "
            f"(max |diff| {self.max_abs_diff:.3g}, decisions {'same' if self.decisions_equal else 'differ'})"
        )


def edge_rows(rows: pd.DataFrame, feature_columns: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """Rows that reach every missing-value branch: each feature null in turn, and unseen categories."""
    base = rows[list(feature_columns)].head(3)
    variants = []
    for name in feature_columns:
        copy = base.copy()
        copy[name] = None if name in categorical else np.nan
        variants.append(copy)
    unseen = base.copy()
    for name in categorical:
        unseen[name] = "__never_seen__"
    variants.append(unseen)
    return pd.concat(variants, ignore_index=True)


def check_parity(
    spark,
    native: NativeModel,
    pyfunc_model,
    rows: pd.DataFrame,
    threshold: float,
    feature_schema=None,
) -> Parity:
    """Score ``rows`` both ways (the pyfunc in process, the expressions in Spark) and compare."""
    from pyspark.sql import functions as F

    from medallion.schemas import FEATURE_SCHEMA
    from medallion.spark import session_conf

    schema = feature_schema if feature_schema is not None else FEATURE_SCHEMA
    names = schema.fieldNames()
    frame = rows[names].reset_index(drop=True)
    if frame.empty:
        return Parity(0, math.inf, False)
    expected = np.asarray(pyfunc_model.predict(frame), dtype="float64").ravel()
    records = [
        tuple(None if _is_missing(v) else v for v in row) for row in frame.itertuples(index=False, name=None)
    ]
    spark_rows = spark.createDataFrame(records, schema).withColumn("_row", F.monotonically_increasing_id())
    # A few thousand rows: interpreted projections are quick, and Spark does not log the
    # generated class it could not compile (a model's trees outgrow Java's 64 KB method).
    with session_conf(spark, {"spark.sql.codegen.wholeStage": "false"}):
        scored = native.with_score(spark_rows, "score").select("_row", "score").toPandas()
    got = scored.sort_values("_row")["score"].to_numpy(dtype="float64")
    return compare_scores(expected, got, threshold)


def check_row_parity(scorer: RowScorer, pyfunc_model, rows: pd.DataFrame, threshold: float) -> Parity:
    """:func:`check_parity` for the in-process evaluator: the pyfunc and ``scorer`` on each row."""
    from medallion.schemas import FEATURE_COLUMNS

    frame = rows[list(FEATURE_COLUMNS)].reset_index(drop=True)
    if frame.empty:
        return Parity(0, math.inf, False)
    expected = np.asarray(pyfunc_model.predict(frame), dtype="float64").ravel()
    records = [
        {k: (None if _is_missing(v) else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]
    got = np.array([scorer(record) for record in records], dtype="float64")
    return compare_scores(expected, got, threshold)


def compare_scores(expected: np.ndarray, got: np.ndarray, threshold: float) -> Parity:
    """Equal to :data:`PARITY_TOLERANCE`, NaN where NaN, and the same decisions."""
    if len(got) != len(expected):
        return Parity(len(expected), math.inf, False)
    same_nan = np.isnan(got) == np.isnan(expected)
    diff = np.abs(np.where(np.isnan(got) | np.isnan(expected), 0.0, got - expected))
    max_diff = float(diff.max()) if same_nan.all() else math.inf
    decisions = bool(((got >= threshold) == (expected >= threshold)).all())
    return Parity(len(expected), max_diff, decisions)


# ---------------------------------------------------------------------- the registry

#: Where a version's parity record lives: an artifact of its run, and tags of the version.
HOLDOUT_ARTIFACT = "native/holdout.parquet"
PARITY_ARTIFACT = "native/parity.json"
PARITY_TAG = "native_parity"  # 'passed' | 'failed' | 'unsupported' | 'unchecked'
HOLDOUT_ROWS = 2000


def record_parity(spark, settings, version: str, run_id: str, pyfunc_model, held_out: pd.DataFrame) -> str:
    """At training: compile ``version``, compare it with its pyfunc on the held-out rows, and
    record the result (``native/parity.json`` and the held-out rows on the run, tags on the
    version). Returns the one-line verdict."""
    import json
    import tempfile
    from pathlib import Path

    import mlflow

    from medallion.schemas import CATEGORICAL_FEATURES, FEATURE_COLUMNS

    client = mlflow.MlflowClient()
    rows = held_out[list(FEATURE_COLUMNS)]
    if len(rows) > HOLDOUT_ROWS:
        rows = rows.sample(HOLDOUT_ROWS, random_state=0)
    record: dict[str, Any] = {"rows": 0, "max_abs_diff": None, "decisions_equal": None, "model": ""}
    try:
        native = compile_pyfunc(pyfunc_model)
        record["model"] = native.describe()
        if spark is None:
            status, verdict = "unchecked", "native parity unchecked: no Spark session at training"
        else:
            checked = pd.concat(
                [rows, edge_rows(rows, FEATURE_COLUMNS, CATEGORICAL_FEATURES)], ignore_index=True
            )
            parity = check_parity(spark, native, pyfunc_model, checked, settings.model.decision_threshold)
            record.update(
                rows=parity.rows, max_abs_diff=parity.max_abs_diff, decisions_equal=parity.decisions_equal
            )
            status, verdict = ("passed" if parity.passed else "failed"), parity.describe()
    except NativeUnsupported as refused:
        status, verdict = "unsupported", f"not compiled: {refused}"
    record.update(status=status, verdict=verdict)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "native"
        folder.mkdir()
        rows.reset_index(drop=True).to_parquet(folder / Path(HOLDOUT_ARTIFACT).name)
        (folder / Path(PARITY_ARTIFACT).name).write_text(json.dumps(record, indent=2))
        client.log_artifacts(run_id, str(folder), artifact_path="native")
    client.set_model_version_tag(settings.model.name, version, PARITY_TAG, status)
    if record["max_abs_diff"] is not None:
        client.set_model_version_tag(
            settings.model.name, version, "native_max_abs_diff", f"{record['max_abs_diff']:.3g}"
        )
    return verdict


@dataclass(frozen=True)
class NativeScorer:
    """A compiled version whose parity held at load, with its Columns built once."""

    model: NativeModel
    parity: Parity
    columns: list[tuple[str, Any]]

    def with_score(self, frame, column: str = "score"):
        return self.model.with_score(frame, column, self.columns)


def _keep_methods_jit_sized(spark) -> None:
    """Let Spark drop whole-stage codegen where a generated method would be too big to JIT."""
    key = "spark.sql.codegen.hugeMethodLimit"
    if spark.conf.get(key, "65535") == "65535":
        spark.conf.set(key, HUGE_METHOD_LIMIT)


_loaded: dict[tuple[str, str, str, str], tuple[NativeScorer | None, str]] = {}


def load_native(spark, settings, version: str, pyfunc_model) -> tuple[NativeScorer | None, str]:
    """At load: the compiled version if its scores equal the pyfunc's on its held-out rows
    now (and did at training), else None and the one line saying why."""
    import mlflow

    name = settings.model.name
    key = (spark.sparkContext.applicationId, str(mlflow.get_tracking_uri()), name, str(version))
    if key in _loaded:
        return _loaded[key]
    label = f"{name} v{version}"
    result: tuple[NativeScorer | None, str]
    native, checked, refused = _compiled_with_rows(settings, version, pyfunc_model)
    if native is None:
        result = None, refused
    else:
        parity = check_parity(spark, native, pyfunc_model, checked, settings.model.decision_threshold)
        if parity.passed:
            _keep_methods_jit_sized(spark)
            result = (
                NativeScorer(native, parity, native.columns()),
                f"{label} scored natively: {parity.describe()}",
            )
        else:
            result = None, f"{label} {parity.describe()}"
    _loaded[key] = result
    return result


def load_row_scorer(settings, version: str, pyfunc_model) -> tuple[RowScorer | None, str]:
    """:func:`load_native` for the online path: the in-process evaluator if its scores equal
    the pyfunc's on the version's held-out rows now (and the Spark path's did at training)."""
    label = f"{settings.model.name} v{version}"
    native, checked, refused = _compiled_with_rows(settings, version, pyfunc_model)
    if native is None:
        return None, refused
    scorer = native.row_scorer()
    parity = check_row_parity(scorer, pyfunc_model, checked, settings.model.decision_threshold)
    if not parity.passed:
        return None, f"{label} in process: {parity.describe()}"
    return scorer, f"{label} scored natively in process: {parity.describe()}"


def _compiled_with_rows(settings, version: str, pyfunc_model) -> tuple[NativeModel | None, pd.DataFrame, str]:
    """The compiled version and the rows to check it on (its held-out rows and the edge rows),
    or None and why it may not score natively (not compilable, or no passed parity record)."""
    import mlflow

    from medallion.schemas import CATEGORICAL_FEATURES, FEATURE_COLUMNS

    name = settings.model.name
    label = f"{name} v{version}"
    empty = pd.DataFrame()
    try:
        native = compile_pyfunc(pyfunc_model)
    except NativeUnsupported as refused:
        return None, empty, f"{label} is not compiled: {refused}"
    tag = mlflow.MlflowClient().get_model_version(name, version).tags.get(PARITY_TAG)
    if tag is None:
        return (
            None,
            empty,
            f"{label} has no native parity record (trained before native scoring): retrain with medallion train",
        )
    if tag != "passed":
        return None, empty, f"{label} native parity at training: {tag}"
    local = mlflow.artifacts.download_artifacts(
        run_id=pyfunc_model.metadata.run_id, artifact_path=HOLDOUT_ARTIFACT
    )
    rows = pd.read_parquet(local)
    checked = pd.concat([rows, edge_rows(rows, FEATURE_COLUMNS, CATEGORICAL_FEATURES)], ignore_index=True)
    return native, checked, ""
