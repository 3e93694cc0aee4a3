"""The ``medallion`` command: a thin layer over the library (as MLflow's CLI is over mlflow).

Every command accepts ``--env NAME`` and repeated ``--set section.key=value``; both may also
come before the command (``medallion --env local --set spark.master=local[1] doctor``).
Errors a user can fix print ``error: <message>`` and exit 2; bugs keep their traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table as RichTable

from medallion.config import Settings, load_settings
from medallion.errors import MedallionError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="medallion",
    help="Lambda-architecture ML scoring on Spark Structured Streaming, Delta and MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the merged configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

EnvOption = Annotated[
    str | None, typer.Option("--env", help="conf overlay: conf/<env>.yaml (default: $MEDALLION_ENV or local)")
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="override one setting: section.key=value (repeatable)")
]


class _Globals:
    env: str | None = None
    overrides: list[str] = []


def settings_from(env: str | None, overrides: list[str] | None) -> Settings:
    """Settings for a command: its own --env/--set win over the ones given before it."""
    return load_settings(env=env or _Globals.env, overrides=[*_Globals.overrides, *(overrides or [])])


@app.callback()
def _main(
    env: EnvOption = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override one setting (repeatable)")] = None,
) -> None:
    _Globals.env = env
    _Globals.overrides = list(set_ or [])


@config_app.command("show")
def config_show(
    env: EnvOption = None,
    set_: SetOption = None,
    explain: Annotated[bool, typer.Option("--explain", help="show which layer each value came from")] = False,
) -> None:
    """Print the merged settings (base <- env overlay <- MEDALLION__* <- --set)."""
    settings = settings_from(env, set_)
    if not explain:
        console.print(yaml.safe_dump(settings.model_dump(), sort_keys=False).rstrip(), highlight=False)
        return
    table = RichTable(title=f"medallion settings (env={settings.env})")
    table.add_column("key")
    table.add_column("value")
    table.add_column("from")
    provenance = settings.provenance
    for key, value in settings.flat().items():
        table.add_row(key, repr(value), provenance.get(key, "default"))
    console.print(table)


@app.command()
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except MedallionError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
