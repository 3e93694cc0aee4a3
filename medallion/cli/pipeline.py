"""The pipeline's commands: datagen, ingest, features, batch, reconcile, stream, status, report, demo."""

from __future__ import annotations

from typing import Annotated

import typer

from medallion.cli.common import (
    DateOption,
    EnvOption,
    FromOption,
    SetOption,
    TodayOption,
    ToOption,
    console,
    parse_day,
    parse_days,
    rich_table,
    settings_from,
    spark_for,
)


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
            end_date=parse_day(settings, end_date, "--end-date") if end_date else None,
            seed=seed,
            to=to,
        )
    console.print(summary.table())


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
    spark = spark_for(settings)
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
    console.print(rich_table(f"ingest ({report.seconds:.1f}s)", list(report.COLUMNS), report.rows()))
    for counts in report.feeds.values():
        if counts.missing or counts.unread:
            console.print(
                f"{counts.feed}: {counts.missing} file(s) vanished before they were read, "
                f"{counts.unread} with a line too long to read; recorded in silver.quarantine",
                markup=False,
            )
    if expectations := report.expectation_rows(settings):
        console.print(
            rich_table("declared expectations", ["expectation", "check", "action", "broken"], expectations)
        )


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
    from medallion.features import FeatureStore

    settings = settings_from(env, set_, today)
    first, last = parse_days(settings, date_, from_, to)
    store = FeatureStore(settings, spark_for(settings))
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
    first, last = parse_days(settings, date_, from_, to)
    spark = spark_for(settings)

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
    console.print(rich_table("nightly batch", ["date", "scored", "model version", "duration"], rows))


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
    last = parse_day(settings, date_)
    first = parse_day(settings, since, "--since") if since else last
    if first > last:
        raise ConfigError(f"--since {first} is after --date {last} (default: yesterday, by the clock)")
    reconciler = Reconciler(settings, spark_for(settings))
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
        figures = [[c, *[getattr(a, c) for a in audits]] for c in columns[1:]]
        dates = [str(a.event_date) for a in audits]
        console.print(rich_table("reconciliation", ["figure", *dates], figures))
    else:
        console.print(
            rich_table("reconciliation", columns, [[getattr(a, c) for c in columns] for a in audits])
        )
    empty = [str(a.event_date) for a in audits if not (a.batch_rows or a.speed_rows)]
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
        settings, spark_for(settings), log=lambda line: console.print(line, highlight=False, markup=False)
    ).run(timeout)


def status(env: EnvOption = None, set_: SetOption = None) -> None:
    """Every table (version, rows, last write) and every stream checkpoint's last batch."""
    from medallion.status import stream_status, table_status

    settings = settings_from(env, set_)
    tables = table_status(settings, spark_for(settings))
    console.print(
        rich_table(
            "tables",
            ["table", "version", "rows", "last write", "operation"],
            [(t.name, t.version, t.rows, t.last_write, t.operation) for t in tables],
        )
    )
    streams = stream_status(settings)
    console.print(
        rich_table(
            "streams",
            ["query", "last batch", "committed at"],
            [(s.query, "-" if s.last_batch is None else s.last_batch, s.last_commit) for s in streams],
        )
    )
    from medallion.serving.stats import online_request_stats

    online = online_request_stats(settings, spark_for(settings))
    if online:
        console.print(
            rich_table(
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


def report(
    env: EnvOption = None,
    set_: SetOption = None,
    today: TodayOption = None,
    output: Annotated[
        str | None, typer.Option(help="folder for the HTML file (default: <storage.root>/reports)")
    ] = None,
) -> None:
    """Write the HTML run report: layers, model curves, batch/speed agreement, stream, online, drift."""
    from medallion.report import RunReport

    settings = settings_from(env, set_, today)
    path = RunReport(settings, spark_for(settings)).build().write(output)
    console.print(f"report: {path}", highlight=False)


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
        spark_for(settings),
        days=days,
        stream_seconds=stream_seconds,
        log=lambda line: console.print(line, highlight=False, markup=False),
    )
    console.print(rich_table("medallion demo", ["section", "item", "value"], summary.rows))
