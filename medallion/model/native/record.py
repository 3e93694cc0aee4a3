"""A version's native record: its parity checked at training, and again at every load.

Usage::

    verdict = record_parity(spark, settings, version, run_id, pyfunc_model, held_out)  # at training
    scorer, note = load_native(spark, settings, version, pyfunc_model)   # batch and stream
    row_scorer, note = load_row_scorer(settings, version, pyfunc_model)  # the online service

A load returns None and the one line saying why when the version may not score natively.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from medallion.model.native.compiler import compile_pyfunc
from medallion.model.native.expressions import NativeModel, NativeUnsupported
from medallion.model.native.parity import Parity, check_parity, check_row_parity, edge_rows
from medallion.model.native.rows import RowScorer

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
            form = "trees in the JVM walker" if native.form(spark) == "jvm" else "trees as SQL expressions"
            result = (
                NativeScorer(native, parity, native.columns(spark)),
                f"{label} scored natively ({form}): {parity.describe()}",
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
    scorer = RowScorer(native)
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
