"""What every command shares: the consoles, the --env/--set/--today options, dates, tables.

Usage::

    settings = settings_from(env, set_, today)     # a command's own options win over global ones
    first, last = parse_days(settings, date_, from_, to)
    console.print(rich_table("title", ["column"], rows))
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text

from medallion.config import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env", metavar="NAME", help="conf overlay: conf/<env>.yaml (default: $MEDALLION_ENV or local)"
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="override one setting: section.key=value (repeatable)"),
]


class Globals:
    """The --env/--set/--today given before the command."""

    env: str | None = None
    overrides: list[str] = []


TodayOption = Annotated[
    str | None,
    typer.Option(
        "--today",
        metavar="YYYY-MM-DD",
        help="pin the business day (clock.today): defaults, retention and live data count from it",
    ),
]


def today_override(today: str | None) -> list[str]:
    return [] if today is None else [f"clock.today={today}"]


def settings_from(env: str | None, overrides: list[str] | None, today: str | None = None) -> Settings:
    """Settings for a command: its own --env/--set/--today win over the ones given before it."""
    return load_settings(
        env=env or Globals.env,
        overrides=[*Globals.overrides, *(overrides or []), *today_override(today)],
    )


DateOption = Annotated[
    str | None,
    typer.Option("--date", metavar="YYYY-MM-DD", help="the day (default: yesterday, by the clock)"),
]
FromOption = Annotated[
    str | None, typer.Option("--from", metavar="YYYY-MM-DD", help="first day of a backfill")
]
ToOption = Annotated[str | None, typer.Option("--to", metavar="YYYY-MM-DD", help="last day of a backfill")]


def parse_day(settings: Settings, text: str | None, option: str = "--date"):
    """``text`` as a date, or the clock's yesterday when it is None."""
    from datetime import date

    from medallion.clock import Clock
    from medallion.errors import ConfigError

    yesterday = Clock.from_settings(settings).yesterday()
    if text is None:
        return yesterday
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected YYYY-MM-DD, e.g. {yesterday}") from None


def parse_days(settings: Settings, date_: str | None, from_: str | None, to: str | None):
    """``--date D`` or ``--from D1 --to D2`` -> (first, last), checked before any JVM starts."""
    from datetime import timedelta

    from medallion.clock import Clock
    from medallion.errors import ConfigError

    if bool(from_) != bool(to):
        last = Clock.from_settings(settings).yesterday()
        raise ConfigError(f"--from and --to go together, e.g. --from {last - timedelta(days=6)} --to {last}")
    if not from_:
        return parse_day(settings, date_), parse_day(settings, date_)
    first, last = parse_day(settings, from_, "--from"), parse_day(settings, to, "--to")
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    return first, last


def spark_for(settings: Settings):
    from medallion.spark import get_spark

    with console.status("starting Spark..."):
        return get_spark(settings)


# C0 and C1 control characters (ESC among them): shown as their escapes, never sent raw.
CONTROL_ESCAPES = {
    code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)] if chr(code) not in "\t"
}


def plain_text(value) -> Text:
    """A value from the data as literal text: no Rich markup, no terminal control sequences."""
    return Text(str(value).translate(CONTROL_ESCAPES))


def rich_table(title: str, columns: list[str], rows) -> RichTable:
    table = RichTable(title=plain_text(title))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[plain_text(value) for value in row])
    return table
