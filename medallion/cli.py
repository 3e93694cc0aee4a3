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
from rich.text import Text

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
    str | None,
    typer.Option(
        "--env", metavar="NAME", help="conf overlay: conf/<env>.yaml (default: $MEDALLION_ENV or local)"
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="override one setting: section.key=value (repeatable)"),
]


class _Globals:
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


def _today_override(today: str | None) -> list[str]:
    return [] if today is None else [f"clock.today={today}"]


def settings_from(env: str | None, overrides: list[str] | None, today: str | None = None) -> Settings:
    """Settings for a command: its own --env/--set/--today win over the ones given before it."""
    return load_settings(
        env=env or _Globals.env,
        overrides=[*_Globals.overrides, *(overrides or []), *_today_override(today)],
    )


@app.callback()
def _main(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
) -> None:
    _Globals.env = env
    _Globals.overrides = [*(set_ or []), *_today_override(today)]


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


# --------------------------------------------------------------------------- pipeline commands

DateOption = Annotated[
    str | None,
    typer.Option("--date", metavar="YYYY-MM-DD", help="the day (default: yesterday, by the clock)"),
]
FromOption = Annotated[
    str | None, typer.Option("--from", metavar="YYYY-MM-DD", help="first day of a backfill")
]
ToOption = Annotated[str | None, typer.Option("--to", metavar="YYYY-MM-DD", help="last day of a backfill")]


def _day(settings: Settings, text: str | None, option: str = "--date"):
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


def _days(settings: Settings, date_: str | None, from_: str | None, to: str | None):
    """``--date D`` or ``--from D1 --to D2`` -> (first, last), checked before any JVM starts."""
    from datetime import timedelta

    from medallion.clock import Clock
    from medallion.errors import ConfigError

    if bool(from_) != bool(to):
        last = Clock.from_settings(settings).yesterday()
        raise ConfigError(f"--from and --to go together, e.g. --from {last - timedelta(days=6)} --to {last}")
    if not from_:
        return _day(settings, date_), _day(settings, date_)
    first, last = _day(settings, from_, "--from"), _day(settings, to, "--to")
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    return first, last


def _spark(settings: Settings):
    from medallion.spark import get_spark

    with console.status("starting Spark..."):
        return get_spark(settings)


# C0 and C1 control characters (ESC among them): shown as their escapes, never sent raw.
_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)] if chr(code) not in "\t"}


def _text(value) -> Text:
    """A value from the data as literal text: no Rich markup, no terminal control sequences."""
    return Text(str(value).translate(_CONTROL))


def _table(title: str, columns: list[str], rows) -> RichTable:
    table = RichTable(title=_text(title))
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[_text(value) for value in row])
    return table


@app.command()
def datagen(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    days: Annotated[int | None, typer.Option(help="days of history (default: datagen.days)")] = None,
    events_per_day: Annotated[int | None, typer.Option("--events-per-day")] = None,
    end_date: Annotated[
        str | None,
        typer.Option(
            "--end-date", metavar="YYYY-MM-DD", help="last day of history (default: yesterday, UTC)"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: datagen.seed)")] = None,
    follow: Annotated[bool, typer.Option("--follow", help="drip new files live until stopped")] = False,
    rate: Annotated[float | None, typer.Option(help="events per second with --follow")] = None,
    duration: Annotated[float | None, typer.Option(help="seconds to follow (default: until Ctrl-C)")] = None,
    to: Annotated[
        str, typer.Option("--to", help="landing (files) or kafka (records on stream.kafka.topic)")
    ] = "landing",
) -> None:
    """Write synthetic card transactions and labels into the landing zone."""
    from medallion import datagen as generator

    settings = settings_from(env, set_, today)
    if follow:
        summary = generator.follow(settings, rate=rate, duration_s=duration, seed=seed, to=to)
    else:
        summary = generator.generate_history(
            settings,
            days=days,
            events_per_day=events_per_day,
            end_date=_day(settings, end_date, "--end-date") if end_date else None,
            seed=seed,
            to=to,
        )
    console.print(summary.table())


@app.command()
def ingest(
    env: EnvOption = None,
    set_: SetOption = None,
    mode: Annotated[str, typer.Option(help="batch: what landed, once | stream: continuously")] = "batch",
) -> None:
    """Landing zone -> bronze -> silver (+ quarantine). Idempotent per source file."""
    from medallion.errors import ConfigError
    from medallion.ingest import Ingestor
    from medallion.streaming.plan import plan_stream

    settings = settings_from(env, set_)
    if mode not in ("batch", "stream"):
        raise ConfigError(f"--mode {mode!r}: expected batch or stream")
    spark = _spark(settings)
    ingestor = Ingestor(settings, spark)
    if mode == "stream":
        plan = plan_stream(settings)
        if plan.continuous:
            raise ConfigError(
                "ingest --mode stream writes Delta through foreachBatch: use a micro-batch trigger"
            )
        from medallion.streaming.landing import start_ingest

        start_ingest(ingestor, plan.trigger_kwargs, await_termination=True)
        return
    report = ingestor.run_batch()
    console.print(_table(f"ingest ({report.seconds:.1f}s)", list(report.COLUMNS), report.rows()))
    for counts in report.feeds.values():
        if counts.missing or counts.unread:
            console.print(
                f"{counts.feed}: {counts.missing} file(s) vanished before they were read, "
                f"{counts.unread} with a line too long to read; recorded in silver.quarantine",
                markup=False,
            )
    if expectations := report.expectation_rows(settings):
        console.print(
            _table("declared expectations", ["expectation", "check", "action", "broken"], expectations)
        )


@app.command()
def features(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    date_: DateOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up",
            help="also every earlier day silver holds and gold.features lacks, in the same pass (a first night)",
        ),
    ] = False,
) -> None:
    """Build gold card profiles and features for a day (or --from/--to in one pass), and refresh the training set."""
    from medallion.featurestore import FeatureStore

    settings = settings_from(env, set_, today)
    first, last = _days(settings, date_, from_, to)
    store = FeatureStore(settings, _spark(settings))
    if catch_up:
        first = _first_missing_day(store, first)
    build = store.build(first, last)
    rows, version = store.refresh_training_set()
    console.print(
        f"features {build.days}: {build.features} rows (gold.features v{build.features_version}), "
        f"{build.profiles} profiles; training set {rows} rows (v{version})"
    )
    if build.events == 0:
        console.print(
            f"silver holds no events for {build.days}: run medallion ingest first, or check the date"
        )


def _first_missing_day(store, first):
    """The oldest day before ``first`` with silver events and no gold features, else ``first``."""
    built = set()
    if store.lake.exists("gold", "features"):
        rows = store.table("features").read().select("event_date").distinct().collect()
        built = {row.event_date for row in rows}
    missing = [day for day in store.event_dates() if day < first and day not in built]
    return missing[0] if missing else first


@app.command()
def batch(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    date_: DateOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    ingest: Annotated[
        bool, typer.Option(help="ingest what landed first (--no-ingest: it already ran)")
    ] = True,
    reconcile: Annotated[
        bool, typer.Option(help="reconcile each day at the end (--no-reconcile: a separate job does)")
    ] = True,
) -> None:
    """The nightly batch layer for a day (or --from/--to): ingest, features, score, reconcile."""
    from medallion.batch import NightlyBatch

    settings = settings_from(env, set_, today)
    first, last = _days(settings, date_, from_, to)
    spark = _spark(settings)

    def show(step) -> None:
        console.print(
            f"  {step.name:<16} {step.rows:>9} rows {step.seconds:7.1f}s  {step.detail}", highlight=False
        )

    night = NightlyBatch(settings, spark, on_step=show)
    reports = night.run_range(first, last, ingest=ingest, reconcile=reconcile)
    rows = []
    for report in [night for first_night in reports for night in (first_night, *first_night.late)]:
        if report.no_events:
            console.print(f"{report.day}: no events, nothing scored")
        rows.append(
            (
                report.day,
                report.scored,
                report.model_version or "-",
                f"{sum(s.seconds for s in report.steps):.1f}s",
            )
        )
    console.print(_table("nightly batch", ["date", "scored", "model version", "duration"], rows))


@app.command()
def reconcile(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    date_: DateOption = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="YYYY-MM-DD", help="reconcile every day from this one to --date"),
    ] = None,
    compact: Annotated[
        bool, typer.Option(help="then drop superseded speed rows older than reconcile.speed_retention_days")
    ] = True,
) -> None:
    """Fold gold.predictions_speed into gold.predictions (batch wins) and audit the agreement."""
    from medallion.errors import ConfigError
    from medallion.reconcile import Reconciler

    settings = settings_from(env, set_, today)
    last = _day(settings, date_)
    first = _day(settings, since, "--since") if since else last
    if first > last:
        raise ConfigError(f"--since {first} is after --date {last} (default: yesterday, by the clock)")
    reconciler = Reconciler(settings, _spark(settings))
    audits = reconciler.run_since(first, last)
    columns = [
        "event_date",
        "batch_rows",
        "speed_rows",
        "agreed",
        "disagreed_same_version",
        "disagreed_other_version",
        "speed_only",
        "batch_only",
        "late_arrivals",
        "rejected_speed",
        "decision_flips",
    ]
    if len(audits) <= 6:
        # A figure per line, a date per column: eleven columns of figures fold into an
        # unreadable grid on an 80-column terminal.
        figures = [[c, *[a.figures[c] for a in audits]] for c in columns[1:]]
        dates = [str(a.figures["event_date"]) for a in audits]
        console.print(_table("reconciliation", ["figure", *dates], figures))
    else:
        console.print(_table("reconciliation", columns, [[a.figures[c] for c in columns] for a in audits]))
    empty = [str(a.figures["event_date"]) for a in audits if not (a.batch_rows or a.speed_rows)]
    if empty:
        console.print(
            f"no predictions for {', '.join(empty)} yet: medallion batch and medallion stream write them"
        )
    if compact:
        from medallion.clock import Clock

        deleted = reconciler.compact_speed(Clock.from_settings(settings).today())
        days = settings.reconcile.speed_retention_days
        console.print(
            f"compacted gold.predictions_speed: {deleted} superseded rows older than {days} days removed"
        )


@app.command()
def stream(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    timeout: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
) -> None:
    """Start the speed layer's scoring query; SIGTERM or Ctrl-C stops it after the current batch."""
    from medallion.streaming.speed import SpeedLayer

    settings = settings_from(env, set_, today)
    SpeedLayer(
        settings, _spark(settings), log=lambda line: console.print(line, highlight=False, markup=False)
    ).run(timeout)


model_app = typer.Typer(
    help="Champion and challenger: validate, promote, rollback, list.", no_args_is_help=True
)
app.add_typer(model_app, name="model")


def _training_table(settings: Settings):
    from medallion.tables import Lakehouse

    return Lakehouse(settings, _spark(settings)).table("gold", "training_set")


@app.command()
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
    console.print(_table("registered versions", columns, [[r[c] for c in columns] for r in rows]))
    history = [
        [str(n), c.version, c.how, c.replaced or "-", c.by, c.at, c.reason]
        for n, c in enumerate(champion_history(settings), start=1)
    ]
    columns = ["step", "champion", "how", "replaced", "by", "at", "reason"]
    console.print(_table("champion history", columns, history))


serve_app = typer.Typer(help="The serving table and the online scoring service.", no_args_is_help=True)
app.add_typer(serve_app, name="serve")


@serve_app.command("lookup")
def serve_lookup(event_id: str, env: EnvOption = None, set_: SetOption = None) -> None:
    """Print the serving row of EVENT_ID (latest version of gold.predictions)."""
    from medallion.errors import MedallionError
    from medallion.serving import get_score

    settings = settings_from(env, set_)
    row = get_score(event_id, settings=settings, spark=_spark(settings))
    if row is None:
        raise MedallionError(
            f"no serving row for event_id {str(event_id).translate(_CONTROL)!r}: not scored yet, or rejected in silver"
        )
    console.print(_table(f"gold.predictions: {event_id}", ["column", "value"], row.items()))


@serve_app.command("materialize")
def serve_materialize(env: EnvOption = None, set_: SetOption = None, today: TodayOption = None) -> None:
    """Today's card profiles and the precomputed scores into the online store, as one new generation."""
    from medallion.serving.materialize import Materializer

    settings = settings_from(env, set_, today)
    report = Materializer(settings, _spark(settings)).run()
    console.print(_table("online store materialized", ["item", "value"], report.rows()))


@serve_app.command("api")
def serve_api(
    env: EnvOption = None,
    set_: SetOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
) -> None:
    """The online scoring service: POST /score, GET /predictions/{event_id}, /model, /health, /ready."""
    from medallion.serving.api import serve
    from medallion.serving.stores import open_store

    settings = settings_from(env, set_)
    open_store(settings).ping()  # a bad store ends here, in one line, before the server starts
    console.print(f"serving on http://{host}:{port} (OpenAPI: /docs)", highlight=False)
    serve(settings, host=host, port=port)


@app.command()
def status(env: EnvOption = None, set_: SetOption = None) -> None:
    """Every table (version, rows, last write) and every stream checkpoint's last batch."""
    from medallion.status import stream_status, table_status

    settings = settings_from(env, set_)
    tables = table_status(settings, _spark(settings))
    console.print(
        _table(
            "tables",
            ["table", "version", "rows", "last write", "operation"],
            [(t.name, t.version, t.rows, t.last_write, t.operation) for t in tables],
        )
    )
    streams = stream_status(settings)
    console.print(
        _table(
            "streams",
            ["query", "last batch", "committed at"],
            [(s.query, "-" if s.last_batch is None else s.last_batch, s.last_commit) for s in streams],
        )
    )
    from medallion.serving.stats import online_request_stats

    online = online_request_stats(settings, _spark(settings))
    if online:
        console.print(
            _table(
                "online requests (medallion serve api)",
                ["day", "requests", "precomputed", "unknown cards", "p50 ms", "p99 ms", "model versions"],
                [
                    (
                        d.request_date,
                        d.requests,
                        f"{d.hit_rate:.0%}",
                        d.unknown_cards,
                        d.p50_ms,
                        d.p99_ms,
                        d.model_versions,
                    )
                    for d in online
                ],
            )
        )


@app.command()
def report(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    output: Annotated[
        str | None, typer.Option(help="folder for the HTML file (default: <storage.root>/reports)")
    ] = None,
) -> None:
    """Write the HTML run report: layers, model curves, batch/speed agreement, stream, drift."""
    from medallion.report import RunReport

    settings = settings_from(env, set_, today)
    path = RunReport(settings, _spark(settings)).build().write(output)
    console.print(f"report: {path}", highlight=False)


@app.command()
def demo(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    days: Annotated[int | None, typer.Option(help="days of history (default: datagen.days)")] = None,
    stream_seconds: Annotated[
        float, typer.Option("--stream-seconds", help="how long live events drip")
    ] = 60.0,
) -> None:
    """The whole lambda loop on generated data: history, nights, live stream, reconcile, report."""
    from medallion.demo import run_demo

    settings = settings_from(env, set_, today)
    summary = run_demo(
        settings,
        _spark(settings),
        days=days,
        stream_seconds=stream_seconds,
        log=lambda line: console.print(line, highlight=False, markup=False),
    )
    console.print(_table("medallion demo", ["section", "item", "value"], summary.rows))


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


if __name__ == "__main__":
    sys.exit(main())
