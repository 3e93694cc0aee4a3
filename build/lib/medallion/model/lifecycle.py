"""One call for the nightly retrain: train a challenger, gate it, promote it if it passed."""

from __future__ import annotations

from medallion.config import Settings


def retrain_and_promote(spark, settings: Settings, training_table) -> str:
    """Train from a gold.training_set :class:`~medallion.tables.Table`; returns a one-line outcome."""
    from medallion.model.registry import promote, validate
    from medallion.model.train import train

    version = training_table.version()
    result = train(settings, training_table.read(version=version), training_table.path, version)
    gate = validate(settings, result.validation)
    if not gate.passed:
        return f"challenger v{result.version} failed the gate ({'; '.join(gate.reasons)}); champion unchanged"
    promote(settings)
    return f"v{result.version} promoted to champion (ROC AUC {gate.metrics['roc_auc']:.3f})"
