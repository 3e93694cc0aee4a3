"""Read the serving table with Spark: one score per event, batch where the night has run, speed otherwise.

Usage::

    from medallion.serving import get_score

    get_score("evt-000123", settings=settings)
    # {'event_id': 'evt-000123', 'score': 0.91, 'decision': True, 'source': 'batch', ...}
"""

from __future__ import annotations

from typing import Any

from medallion.config import Settings, load_settings
from medallion.errors import TableNotFoundError
from medallion.spark import get_spark
from medallion.tables import Lakehouse


def get_score(event_id: str, settings: Settings | None = None, spark=None) -> dict[str, Any] | None:
    """The serving row of ``event_id`` at the table's latest version, or None if it has none.

    Raises :class:`~medallion.errors.TableNotFoundError` where nothing has served yet.

    A point lookup (:meth:`medallion.tables.Table.lookup`). Timestamps are timezone-aware
    UTC datetimes.
    """
    settings = settings or load_settings()
    spark = spark or get_spark(settings)
    try:
        found = Lakehouse(settings, spark).table("gold", "predictions").lookup("event_id", [event_id])
    except TableNotFoundError:
        raise TableNotFoundError(
            f"gold.predictions does not exist under {settings.storage.root} yet: the stream "
            "(medallion stream) and the nightly reconcile (medallion batch) write it"
        ) from None
    return found.slice(0, 1).to_pylist()[0] if found.num_rows else None
