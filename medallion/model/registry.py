"""Champion and challenger: the validation gate, promote, rollback, list.

Usage::

    gate = validate(settings, validation_rows)          # challenger vs thresholds and champion
    promote(settings)                                    # only if the gate passed
    promote(settings, force=True, reason="hotfix")       # recorded: who and why
    rollback(settings)                                   # champion back to the one before it
    require_gate(settings, version)                      # every serving load: gate passed or forced
    champion_history(settings)                           # who made which version champion, when, why

The champion history is kept in the registry itself, one registered-model tag per change
(``champion_history.000001``, ...: one small value each, however long the history grows).
Promotions push a version; a rollback pops back to the champion before the current one, so
rolling back twice walks two steps back instead of toggling.
"""

from __future__ import annotations

import getpass
import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from medallion.config import Settings
from medallion.errors import ModelNotReadyError
from medallion.schemas import FEATURE_COLUMNS, LABEL_COLUMN

# Written by registries from before the champion history: seeds the history's first step.
PREVIOUS_CHAMPION_TAG = "previous_champion"
HISTORY_TAG_PREFIX = "champion_history."
FORCED_BY_TAG, FORCED_REASON_TAG = "forced_by", "forced_reason"


def _client(settings: Settings):
    import mlflow

    from medallion.model.tracking import configure

    configure(settings)
    return mlflow.MlflowClient()


def version_for(settings: Settings, alias: str) -> str:
    """The version behind ``alias``, or a one-line :class:`ModelNotReadyError` saying what to run."""
    from mlflow.exceptions import MlflowException

    name = settings.model.name
    try:
        return str(_client(settings).get_model_version_by_alias(name, alias).version)
    except Exception as exc:
        missing = isinstance(exc, MlflowException) and exc.error_code in (
            "RESOURCE_DOES_NOT_EXIST",
            "INVALID_PARAMETER_VALUE",
        )
        store = type(exc).__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "alembic")
        if not missing:
            if isinstance(exc, MlflowException) or store:
                raise _registry_problem(settings, exc) from None
            raise
        hint = (
            "run medallion train"
            if alias == settings.model.aliases.challenger
            else ("run medallion train, then medallion model promote")
        )
        raise ModelNotReadyError(f"no '{alias}' alias on {name}: {hint}") from None


def _registry_problem(settings: Settings, exc: BaseException) -> ModelNotReadyError:
    """A registry that cannot be read (locked, corrupt, unreachable) is not a missing alias."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelNotReadyError(
        f"the MLflow registry at {settings.storage.mlflow_tracking_uri} could not be read ({first[:200]}): "
        "check storage.tracking_uri, that no other process holds the database locked, and that the file is intact"
    )


@dataclass(frozen=True)
class GateResult:
    version: str
    passed: bool
    reasons: tuple[str, ...]
    metrics: dict[str, float]


def _load(settings: Settings, version: str):
    import mlflow

    return mlflow.pyfunc.load_model(f"models:/{settings.model.name}/{version}")


def validate(settings: Settings, validation: pd.DataFrame) -> GateResult:
    """Check the challenger against conf thresholds and the champion on the same held-out rows."""
    gate = settings.model.gate
    version = version_for(settings, settings.model.aliases.challenger)
    challenger = _load(settings, version)
    features, labels = validation[list(FEATURE_COLUMNS)], validation[LABEL_COLUMN].to_numpy()
    scores = np.asarray(challenger.predict(features), dtype=float)  # also warms the model up
    metrics, reasons = _scored_metrics(settings, scores, labels)
    metrics["ms_per_10k_rows"] = ms_per_10k = _ms_per_10k_rows(challenger, features)
    if metrics["roc_auc"] < gate.min_roc_auc:
        reasons.append(f"roc_auc {metrics['roc_auc']:.3f} < model.gate.min_roc_auc {gate.min_roc_auc}")
    if metrics["pr_auc"] < gate.min_pr_auc:
        reasons.append(f"pr_auc {metrics['pr_auc']:.3f} < model.gate.min_pr_auc {gate.min_pr_auc}")
    if ms_per_10k > gate.max_ms_per_10k_rows:
        reasons.append(
            f"{ms_per_10k:.0f} ms per 10k rows > model.gate.max_ms_per_10k_rows {gate.max_ms_per_10k_rows}"
        )
    reasons += _against_champion(settings, version, features, labels, metrics)
    result = GateResult(version, not reasons, tuple(reasons), metrics)
    _record_gate(settings, result)
    return result


def _scored_metrics(
    settings: Settings, scores: np.ndarray, labels: np.ndarray
) -> tuple[dict[str, float], list[str]]:
    """ROC AUC and PR AUC of ``scores``, and the reasons they fail the gate whatever its
    thresholds: scores that are not probabilities, or metrics that are not finite numbers."""
    from medallion.model.train import evaluate

    # NaN compares false with everything (and sklearn refuses it): such scores fail before any metric.
    not_probabilities = int((~(np.isfinite(scores) & (scores >= 0) & (scores <= 1))).sum())
    if not_probabilities:
        metrics = {"roc_auc": math.nan, "pr_auc": math.nan}
        return metrics, [
            f"{not_probabilities} of {len(scores)} validation scores are not probabilities "
            "(NaN, infinite or outside [0, 1])"
        ]
    metrics = evaluate(scores, labels, settings.model.decision_threshold)
    reasons = [
        # NaN compares false with everything: "nan < min" would let it through.
        f"{name} is {metrics[name]} (not a finite number; a validation set of one class gives NaN): "
        "the gate needs held-out rows of both classes"
        for name in ("roc_auc", "pr_auc")
        if not math.isfinite(metrics[name])
    ]
    return metrics, reasons


def _ms_per_10k_rows(model, features: pd.DataFrame) -> float:
    """Milliseconds the model takes per 10k rows: timed on 10k rows, best of three, so a
    small validation set or a busy machine measures the model, not fixed overhead and noise."""
    timed = features.sample(n=10_000, replace=True, random_state=0) if len(features) else features
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        model.predict(timed)
        runs.append(time.perf_counter() - started)
    return min(runs) * 1000 * 10_000 / max(len(timed), 1)


def _against_champion(
    settings: Settings, version: str, features: pd.DataFrame, labels: np.ndarray, metrics: dict[str, float]
) -> list[str]:
    """The champion's ROC AUC on the same rows (into ``metrics``); a reason if the challenger
    is worse by more than ``model.gate.max_regression``."""
    from medallion.model.train import evaluate

    try:
        champion_version = version_for(settings, settings.model.aliases.champion)
    except ModelNotReadyError:
        return []
    if champion_version == version:
        return []
    champion_scores = _load(settings, champion_version).predict(features).to_numpy()
    champion_auc = evaluate(champion_scores, labels, settings.model.decision_threshold)["roc_auc"]
    metrics["champion_roc_auc"] = champion_auc
    if metrics["roc_auc"] < champion_auc - settings.model.gate.max_regression:
        return [
            f"roc_auc {metrics['roc_auc']:.3f} is worse than champion v{champion_version}'s {champion_auc:.3f} "
            f"by more than model.gate.max_regression {settings.model.gate.max_regression}"
        ]
    return []


def _record_gate(settings: Settings, result: GateResult) -> None:
    """The gate's metrics and verdict on the version's run and the version itself."""
    client = _client(settings)
    name, version = settings.model.name, result.version
    run_id = client.get_model_version(name, version).run_id
    for key, value in result.metrics.items():
        client.log_metric(run_id, f"gate_{key}", value)
    verdict = "passed" if result.passed else "failed"
    client.set_tag(run_id, "gate", verdict)
    client.set_model_version_tag(name, version, "gate", verdict)
    client.set_model_version_tag(
        name, version, "gate_reasons", "; ".join(result.reasons) or "all checks passed"
    )


def require_gate(settings: Settings, version: str) -> None:
    """Refuse to serve a version whose gate failed or never ran, unless it was force-promoted."""
    name = settings.model.name
    try:
        tags = _client(settings).get_model_version(name, version).tags
    except Exception as exc:
        raise _version_problem(settings, version, exc) from None
    if tags.get("gate") == "passed" or (tags.get(FORCED_BY_TAG) and tags.get(FORCED_REASON_TAG)):
        return
    state = (
        "has no gate record"
        if "gate" not in tags
        else f"failed the gate ({tags.get('gate_reasons') or 'no reasons recorded'})"
    )
    raise ModelNotReadyError(
        f"{name} v{version} {state}, so it may not serve: make it the challenger and run medallion model "
        "validate, or medallion model promote --force --reason '...'"
    )


def _version_problem(settings: Settings, version: str, exc: BaseException) -> ModelNotReadyError:
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException) and exc.error_code in (
        "RESOURCE_DOES_NOT_EXIST",
        "INVALID_PARAMETER_VALUE",
    ):
        return ModelNotReadyError(f"{settings.model.name} has no version {version}: see medallion model list")
    if isinstance(exc, MlflowException) or type(exc).__module__.split(".")[0] in ("sqlalchemy", "sqlite3"):
        return _registry_problem(settings, exc)
    raise exc


@dataclass(frozen=True)
class ChampionChange:
    """One step of the champion history: ``how`` is promote, forced, rollback, or outside (a
    champion found in place that medallion did not record setting)."""

    version: str
    how: str
    by: str
    at: str
    reason: str = ""
    replaced: str = ""

    def as_tag(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))


def champion_history(settings: Settings) -> list[ChampionChange]:
    """Every champion change this registry recorded, oldest first."""
    return _history(_client(settings), settings.model.name)


def _history(client, name: str) -> list[ChampionChange]:
    tags = client.get_registered_model(name).tags or {}
    entries = sorted((key, value) for key, value in tags.items() if key.startswith(HISTORY_TAG_PREFIX))
    return [ChampionChange(**json.loads(value)) for _, value in entries]


def _record(client, name: str, change: ChampionChange, history: list[ChampionChange]) -> None:
    # The key's zero-padded sequence keeps tag order equal to history order.
    client.set_registered_model_tag(name, f"{HISTORY_TAG_PREFIX}{len(history) + 1:06d}", change.as_tag())


def _stack(client, name: str, history: list[ChampionChange]) -> list[str]:
    """The champions a rollback may walk back through, the current one last.

    A promotion pushes its version; a rollback pops back to the version it restored.
    """
    stack: list[str] = []
    if not history:
        legacy = (client.get_registered_model(name).tags or {}).get(PREVIOUS_CHAMPION_TAG)
        stack = [legacy] if legacy else []
    for change in history:
        if change.how == "rollback":
            while stack and stack[-1] != change.version:
                stack.pop()
            if not stack:
                stack = [change.version]
        elif not stack or stack[-1] != change.version:
            stack.append(change.version)
    return stack


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def promote(settings: Settings, force: bool = False, reason: str | None = None) -> str:
    """Point ``champion`` at the challenger if its gate passed (or ``force`` with a reason)."""
    from medallion.errors import MedallionError

    name, aliases = settings.model.name, settings.model.aliases
    client = _client(settings)
    version = version_for(settings, aliases.challenger)
    gate = client.get_model_version(name, version).tags.get("gate")
    if force:
        if not reason:
            raise MedallionError("--force needs --reason: say why the gate is overridden")
        client.set_model_version_tag(name, version, FORCED_BY_TAG, getpass.getuser())
        client.set_model_version_tag(name, version, FORCED_REASON_TAG, reason)
    elif gate != "passed":
        state = "has not been validated" if gate is None else "failed the gate"
        raise ModelNotReadyError(
            f"{name} v{version} {state}: run medallion model validate, or promote --force --reason '...'"
        )
    try:
        previous = version_for(settings, aliases.champion)
    except ModelNotReadyError:
        previous = None
    if previous == version:
        return version
    history = _history(client, name)
    stack = _stack(client, name, history)
    if previous is not None and (not stack or stack[-1] != previous):
        # A champion from before the history was kept, or set in MLflow directly, is a step
        # too: a rollback walks back to it.
        seeds = [(seed, "champion before the history was kept") for seed in stack if not history]
        for seed, why in [*seeds, (previous, "champion alias set outside medallion")]:
            _record(client, name, ChampionChange(seed, "outside", "-", "-", why), history)
            history = _history(client, name)
    client.set_registered_model_alias(name, aliases.champion, version)
    change = ChampionChange(
        version,
        "forced" if force else "promote",
        getpass.getuser(),
        _now(),
        reason or "gate passed",
        previous or "",
    )
    _record(client, name, change, history)
    return version


def rollback(settings: Settings, reason: str | None = None) -> str:
    """Put ``champion`` back on the champion before the current one (walking back, not toggling)."""
    name = settings.model.name
    client = _client(settings)
    current = version_for(settings, settings.model.aliases.champion)
    history = _history(client, name)
    stack = _stack(client, name, history)
    while stack and stack[-1] == current:
        stack.pop()
    if not stack:
        raise ModelNotReadyError(
            f"{name} has no earlier champion than v{current} to roll back to: see medallion model list"
        )
    target = stack[-1]
    client.set_registered_model_alias(name, settings.model.aliases.champion, target)
    _record(
        client,
        name,
        ChampionChange(target, "rollback", getpass.getuser(), _now(), reason or "rollback", current),
        history,
    )
    return target


def list_versions(settings: Settings) -> list[dict[str, str]]:
    """Every version with its aliases, training metrics and gate result (and who forced it, why)."""
    client = _client(settings)
    name = settings.model.name
    # search_model_versions leaves aliases empty on some stores; the registered model has them all.
    aliases = client.get_registered_model(name).aliases or {}
    rows = []
    for version in sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)):
        metrics = client.get_run(version.run_id).data.metrics
        rows.append(
            {
                "version": str(version.version),
                "aliases": ",".join(sorted(a for a, v in aliases.items() if str(v) == str(version.version))),
                "roc_auc": f"{metrics.get('roc_auc', float('nan')):.3f}",
                "pr_auc": f"{metrics.get('pr_auc', float('nan')):.3f}",
                "gate": _gate_cell(version.tags),
                "gate_reasons": version.tags.get("gate_reasons", ""),
            }
        )
    return rows


def _gate_cell(tags: dict[str, str]) -> str:
    gate = tags.get("gate", "-")
    if tags.get(FORCED_BY_TAG):
        return f"{gate}, forced by {tags[FORCED_BY_TAG]}: {tags.get(FORCED_REASON_TAG, '')}"
    return gate
