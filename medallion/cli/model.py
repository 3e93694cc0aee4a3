"""Training and the champion: ``medallion train`` and ``medallion model validate|promote|rollback|list``."""

from __future__ import annotations

from typing import Annotated

import typer

from medallion.cli.common import EnvOption, SetOption, console, rich_table, settings_from, spark_for
from medallion.config import Settings

model_app = typer.Typer(
    help="Champion and challenger: validate, promote, rollback, list.", no_args_is_help=True
)


def _training_table(settings: Settings):
    from medallion.tables import Lakehouse

    return Lakehouse(settings, spark_for(settings)).table("gold", "training_set")


def train(env: EnvOption = None, set_: SetOption = None) -> None:
    """Train on gold.training_set, register a new version and point 'challenger' at it."""
    from medallion.model.train import train as train_model

    settings = settings_from(env, set_)
    table = _training_table(settings)
    version = table.version()
    result = train_model(settings, table.read(version=version), table.path, version)
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
    console.print(f"{result.name} v{result.version} is the challenger (run {result.run_id[:8]}): {metrics}")


@model_app.command("validate")
def model_validate(
    env: EnvOption = None,
    set_: SetOption = None,
    promote_: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="then promote a challenger that passed; one that failed leaves the champion serving (exit 0)",
        ),
    ] = False,
) -> None:
    """Gate the challenger: conf thresholds, and no worse than the champion on held-out days."""
    from medallion.model.registry import validate
    from medallion.model.train import split_by_time

    settings = settings_from(env, set_)
    _, held_out = split_by_time(
        _training_table(settings).read().toPandas(), settings.model.train.validation_days
    )
    gate = validate(settings, held_out)
    verdict = "passed" if gate.passed else "FAILED: " + "; ".join(gate.reasons)
    console.print(f"challenger v{gate.version} {verdict}", highlight=False, markup=False)
    if promote_:
        _promote_if_passed(settings, gate)
    elif not gate.passed:
        raise typer.Exit(1)


def _promote_if_passed(settings: Settings, gate) -> None:
    """The nightly chain's step: a failed challenger is not an outage while a champion serves."""
    from medallion.errors import ModelNotReadyError
    from medallion.model.registry import promote, version_for

    if gate.passed:
        console.print(f"champion is now v{promote(settings)}")
        return
    try:
        champion = version_for(settings, settings.model.aliases.champion)
    except ModelNotReadyError as no_champion:
        raise ModelNotReadyError(
            f"{settings.model.name} v{gate.version} failed the gate and no champion keeps serving ({no_champion}): "
            "fix the training data or model.gate, then run medallion train and medallion model validate --promote"
        ) from None
    console.print(f"champion v{champion} keeps serving; v{gate.version} stays the challenger")


@model_app.command("promote")
def model_promote(
    env: EnvOption = None,
    set_: SetOption = None,
    force: Annotated[bool, typer.Option("--force", help="promote even if the gate failed")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="why the gate is overridden")] = None,
) -> None:
    """Move 'champion' to the challenger (only if its gate passed, unless --force --reason)."""
    from medallion.model.registry import promote

    settings = settings_from(env, set_)
    console.print(f"champion is now v{promote(settings, force=force, reason=reason)}")


@model_app.command("rollback")
def model_rollback(
    env: EnvOption = None,
    set_: SetOption = None,
    reason: Annotated[str | None, typer.Option("--reason", help="why, for the champion history")] = None,
) -> None:
    """Put 'champion' back on the champion before it (again: one more step back)."""
    from medallion.model.registry import rollback

    console.print(f"champion is back on v{rollback(settings_from(env, set_), reason=reason)}")


@model_app.command("list")
def model_list(env: EnvOption = None, set_: SetOption = None) -> None:
    """Versions with aliases, metrics and gate results; the champion history (who, when, why)."""
    from medallion.model.registry import champion_history, list_versions

    settings = settings_from(env, set_)
    rows = list_versions(settings)
    columns = ["version", "aliases", "roc_auc", "pr_auc", "gate", "gate_reasons"]
    console.print(rich_table("registered versions", columns, [[r[c] for c in columns] for r in rows]))
    history = [
        [str(n), c.version, c.how, c.replaced or "-", c.by, c.at, c.reason]
        for n, c in enumerate(champion_history(settings), start=1)
    ]
    columns = ["step", "champion", "how", "replaced", "by", "at", "reason"]
    console.print(rich_table("champion history", columns, history))
