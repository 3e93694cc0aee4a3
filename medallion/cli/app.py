"""The ``medallion`` command: a thin layer over the library (as MLflow's CLI is over mlflow).

Every command accepts ``--env NAME`` and repeated ``--set section.key=value``; both may also
come before the command (``medallion --env local --set spark.master=local[1] doctor``).
Errors a user can fix print ``error: <message>`` and exit 2; bugs keep their traceback.
"""

from __future__ import annotations

from typing import Annotated

import typer
import yaml
from rich.table import Table as RichTable

from medallion.cli import pipeline
from medallion.cli.common import (
    EnvOption,
    Globals,
    SetOption,
    TodayOption,
    console,
    err_console,
    settings_from,
    today_override,
)
from medallion.cli.model import model_app, train
from medallion.cli.serve import serve_app
from medallion.errors import MedallionError

app = typer.Typer(
    name="medallion",
    help="Lambda-architecture ML scoring on Spark Structured Streaming, Delta and MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the merged configuration.", no_args_is_help=True)


@app.callback()
def _main(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
) -> None:
    Globals.env = env
    Globals.overrides = [*(set_ or []), *today_override(today)]


@config_app.command("show")
def config_show(
    env: EnvOption = None,
    set_: SetOption = None,
    explain: Annotated[bool, typer.Option("--explain", help="show which layer each value came from")] = False,
) -> None:
    """Print the merged settings (base <- env overlay <- MEDALLION__* <- --set)."""
    settings = settings_from(env, set_)
    if not explain:
        console.print(yaml.safe_dump(settings.redacted(), sort_keys=False).rstrip(), highlight=False)
        return
    table = RichTable(title=f"medallion settings (env={settings.env})")
    table.add_column("key")
    table.add_column("value")
    table.add_column("from")
    provenance = settings.provenance
    for key, value in settings.flat().items():
        table.add_row(key, repr(value), provenance.get(key, "default"))
    console.print(table)


def doctor(env: EnvOption = None, set_: SetOption = None) -> None:
    """Check Python, Java, Spark, Delta engines, MLflow and the storage root."""
    from medallion.doctor import run_checks

    settings = settings_from(env, set_)
    table = RichTable(title="medallion doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    failed = []
    with console.status("checking...") as status:
        for check in run_checks(settings):
            status.update(f"checked {check.name}")
            mark = "[green]ok[/]" if check.ok else ("[red]FAIL[/]" if check.required else "[yellow]absent[/]")
            table.add_row(check.name, mark, check.detail)
            if check.required and not check.ok:
                failed.append(check.name)
    console.print(table)
    if failed:
        err_console.print(f"error: required checks failed: {', '.join(failed)}")
        raise typer.Exit(1)


# The order of --help: the pipeline as it runs, then the model, serving and the tools.
app.add_typer(config_app, name="config")
app.command()(doctor)
for command in (
    pipeline.datagen,
    pipeline.ingest,
    pipeline.features,
    pipeline.batch,
    pipeline.reconcile,
    pipeline.stream,
):
    app.command()(command)
app.add_typer(model_app, name="model")
app.command()(train)
app.add_typer(serve_app, name="serve")
for command in (pipeline.status, pipeline.report, pipeline.demo):
    app.command()(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        # Outside standalone mode click returns the code of a typer.Exit instead of raising it.
        code = app(args=argv, standalone_mode=False)
    except MedallionError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except Exception as exc:
        # Usage errors: click's, or the copy of click that newer typer releases vendor.
        if any(cls.__name__ == "ClickException" for cls in type(exc).__mro__):
            exc.show()
            return exc.exit_code
        raise
    return code if isinstance(code, int) else 0
