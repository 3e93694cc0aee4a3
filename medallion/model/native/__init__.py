"""Native scoring: the champion's fitted pipeline compiled into Spark Column expressions.

The pandas UDF hands every row to a Python worker and joins each result back to its row;
compiled, the model runs inside the JVM (and in Spark's real-time mode, which runs no
Python UDF). Only what the compiler knows is compiled, exactly as scikit-learn predicts it:
a ``ColumnTransformer`` of ``OrdinalEncoder`` / ``passthrough`` columns feeding a binary
``HistGradientBoostingClassifier`` (its own category remapping, native categorical splits,
missing-value directions). Anything else is refused by name with :class:`NativeUnsupported`.

Usage::

    from medallion.model.native import NativeUnsupported, check_parity, compile_pyfunc

    try:
        native = compile_pyfunc(pyfunc_model)          # an mlflow.pyfunc.PyFuncModel
    except NativeUnsupported as refused:
        print(refused)                                 # names the estimator it does not know
    scored = native.with_score(features, "score")      # features + one double column
    parity = check_parity(spark, native, pyfunc_model, held_out_rows, threshold=0.5)
    parity.passed, parity.max_abs_diff
"""

from medallion.model.native.compiler import compile_pipeline, compile_pyfunc
from medallion.model.native.expressions import (
    LEAVES_PER_PROJECTION,
    Input,
    NativeModel,
    NativeUnsupported,
    Node,
)
from medallion.model.native.parity import (
    PARITY_TOLERANCE,
    Parity,
    check_parity,
    check_row_parity,
    compare_scores,
    edge_rows,
)
from medallion.model.native.record import (
    HOLDOUT_ARTIFACT,
    PARITY_ARTIFACT,
    PARITY_TAG,
    NativeScorer,
    load_native,
    load_row_scorer,
    record_parity,
)
from medallion.model.native.rows import RowScorer

__all__ = [
    "HOLDOUT_ARTIFACT",
    "LEAVES_PER_PROJECTION",
    "PARITY_ARTIFACT",
    "PARITY_TAG",
    "PARITY_TOLERANCE",
    "Input",
    "NativeModel",
    "NativeScorer",
    "NativeUnsupported",
    "Node",
    "Parity",
    "RowScorer",
    "check_parity",
    "check_row_parity",
    "compare_scores",
    "compile_pipeline",
    "compile_pyfunc",
    "edge_rows",
    "load_native",
    "load_row_scorer",
    "record_parity",
]
