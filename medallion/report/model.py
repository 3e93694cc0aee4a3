"""The ``model`` section: the champion, its run's metrics and parameters, ROC and PR curves."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from medallion.report.inputs import Champion
from medallion.report.page import Section, empty, figure, fmt, html_table, img, img_bytes, no_data
from medallion.schemas import LABEL_COLUMN

if TYPE_CHECKING:
    from medallion.report.context import ReportContext


def model_section(context: ReportContext) -> Section:
    title = "Model"
    champion = context.champion
    if champion is None:
        return empty(
            "model",
            title,
            "no champion model: run <code>medallion train</code>, then <code>medallion model promote</code>",
        )
    from medallion.model.registry import list_versions

    tags = champion.tags
    parts = [
        f"<p>Champion <strong>{html.escape(champion.name)} v{html.escape(champion.version)}</strong>"
        f" (alias <code>{html.escape(context.settings.model.aliases.champion)}</code>), MLflow run"
        f" <code>{html.escape(champion.run_id)}</code>, trained on"
        f" {html.escape(tags.get('data_from', '?'))}..{html.escape(tags.get('data_to', '?'))}"
        f" (gate: {html.escape(tags.get('gate', '-'))}).</p>",
        "<h3>run metrics</h3>",
        html_table(
            ["metric", "value"],
            sorted((key, fmt(value)) for key, value in champion.metrics.items()),
            numeric={1},
            table_id="model-metrics",
        ),
    ]
    curves = [context.inputs.artifact(name) for name in ("roc_curve.png", "pr_curve.png")]
    if all(curve is not None for curve in curves):
        parts.append("<h3>ROC and precision/recall on the validation days (as logged by the run)</h3>")
        parts.append(
            "".join(img_bytes(png, alt) for png, alt in zip(curves, ("ROC curve", "PR curve"), strict=True))
        )
    else:
        parts.append(_computed_curves(context, champion))
    importance_png = context.inputs.artifact("feature_importance.png")
    reference = context.reference
    if reference is not None and reference.importance is not None:
        parts.append("<h3>feature importance (ROC AUC drop when the feature is shuffled)</h3>")
        parts.append(
            html_table(
                ["feature", "ROC AUC drop"],
                [(name, fmt(value)) for name, value in reference.importance.items()],
                numeric={1},
                table_id="feature-importance",
            )
        )
    if importance_png is not None:
        parts.append(img_bytes(importance_png, "permutation importance logged by the run"))
    parts.append("<h3>registered versions</h3>")
    versions = list_versions(context.settings)
    parts.append(
        html_table(
            ["version", "aliases", "ROC AUC", "PR AUC", "gate", "gate reasons"],
            [tuple(row.values()) for row in versions],
            numeric={0, 2, 3},
        )
    )
    parts.append("<h3>parameters</h3>")
    parts.append(html_table(["param", "value"], sorted(champion.params.items())))
    return Section("model", title, "\n".join(parts), True)


def _computed_curves(context: ReportContext, champion: Champion) -> str:
    """The champion's curves over the validation days of a labelled reference, when the run logged none."""
    reference = context.reference
    if reference is None or not reference.has_labels or reference.scores is None:
        return no_data(
            "the run logged no curves and no labelled training window is readable: "
            "run <code>medallion features</code>, then <code>medallion train</code>"
        )
    days = sorted(reference.frame["event_date"].unique())
    validation_days = int(
        champion.params.get("validation_days", context.settings.model.train.validation_days)
    )
    held_out = reference.frame["event_date"] >= days[-min(validation_days, len(days))]
    labels = reference.frame.loc[held_out, LABEL_COLUMN].to_numpy()
    if len(np.unique(labels)) < 2:
        return no_data("the validation days hold one class only: generate more history")
    scores = reference.scores[held_out.to_numpy()]
    return (
        f"<h3>ROC and precision/recall: the champion re-scoring the validation days of {html.escape(reference.description)}</h3>"
        + img(_curves_figure(scores, labels), "ROC and PR curves")
    )


def _curves_figure(scores: np.ndarray, labels: np.ndarray) -> Any:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    chart, axes = figure(8, 4, 1, 2)
    fpr, tpr, _ = roc_curve(labels, scores)
    axes[0, 0].plot(fpr, tpr, label=f"AUC {auc(fpr, tpr):.3f}")
    axes[0, 0].plot([0, 1], [0, 1], linestyle=":", color="#999")
    axes[0, 0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    axes[0, 0].legend(loc="lower right")
    precision, recall, _ = precision_recall_curve(labels, scores)
    axes[0, 1].plot(recall, precision, label=f"AP {average_precision_score(labels, scores):.3f}")
    axes[0, 1].set(xlabel="recall", ylabel="precision", title="precision / recall")
    axes[0, 1].legend(loc="upper right")
    return chart
