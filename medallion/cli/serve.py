"""``medallion serve lookup|materialize|api``: the serving table and the online service."""

from __future__ import annotations

from typing import Annotated

import typer

from medallion.cli.common import (
    CONTROL_ESCAPES,
    EnvOption,
    SetOption,
    TodayOption,
    console,
    rich_table,
    settings_from,
    spark_for,
)

serve_app = typer.Typer(help="The serving table and the online scoring service.", no_args_is_help=True)


@serve_app.command("lookup")
def serve_lookup(event_id: str, env: EnvOption = None, set_: SetOption = None) -> None:
    """Print the serving row of EVENT_ID (latest version of gold.predictions)."""
    from medallion.errors import MedallionError
    from medallion.serving import get_score

    settings = settings_from(env, set_)
    row = get_score(event_id, settings=settings, spark=spark_for(settings))
    if row is None:
        raise MedallionError(
            f"no serving row for event_id {str(event_id).translate(CONTROL_ESCAPES)!r}: not scored yet, or rejected in silver"
        )
    console.print(rich_table(f"gold.predictions: {event_id}", ["column", "value"], row.items()))


@serve_app.command("materialize")
def serve_materialize(env: EnvOption = None, set_: SetOption = None, today: TodayOption = None) -> None:
    """Today's card profiles and the precomputed scores into the online store, as one new generation."""
    from medallion.serving.materialize import Materializer

    settings = settings_from(env, set_, today)
    report = Materializer(settings, spark_for(settings)).run()
    console.print(rich_table("online store materialized", ["item", "value"], report.rows()))


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
