"""The compiler: a fitted scikit-learn pipeline to a :class:`NativeModel`, or a refusal by name.

Usage::

    native = compile_pyfunc(pyfunc_model)       # an mlflow.pyfunc.PyFuncModel holding FraudModel
    native = compile_pipeline(pipeline)         # or the pipeline itself
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medallion.model.native.expressions import (
    LEAVES_PER_PROJECTION,
    Input,
    NativeModel,
    NativeUnsupported,
    Node,
    is_missing,
)


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
        if is_missing(category):
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
