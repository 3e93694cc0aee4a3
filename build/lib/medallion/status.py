"""What is in the lakehouse: every table's version, rows and last write, and each stream's progress.

Usage::

    from medallion.status import table_status, stream_status

    for row in table_status(settings, spark):
        print(row.name, row.version, row.rows, row.last_write)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from medallion.config import Settings
from medallion.tables import Lakehouse


@dataclass(frozen=True)
class TableStatus:
    name: str
    version: int
    rows: int
    last_write: str
    operation: str


@dataclass(frozen=True)
class StreamStatus:
    query: str
    last_batch: int | None
    last_commit: str


def table_status(settings: Settings, spark) -> list[TableStatus]:
    lake = Lakehouse(settings, spark)
    tables_root = Path(settings.storage.root_path, "tables")
    found = []
    for layer in ("bronze", "silver", "gold"):
        folder = tables_root / layer
        if not folder.is_dir():
            continue
        for name in sorted(os.listdir(folder)):
            if not lake.exists(layer, name):
                continue
            table = lake.table(layer, name)
            history = table.history()
            newest = history[0] if history else {}
            found.append(
                TableStatus(
                    f"{layer}.{name}",
                    table.version(),
                    table.read().count(),
                    str(newest.get("timestamp", "-")),
                    # delta-rs records deletes and overwrites as WRITE with the real one in the parameters.
                    str(
                        (newest.get("operationParameters") or {}).get("writeOperation")
                        or newest.get("operation", "-")
                    ),
                )
            )
    return found


def stream_status(settings: Settings) -> list[StreamStatus]:
    """Per checkpoint: the last committed micro-batch and when it committed."""
    root = Path(settings.storage.root_path, "checkpoints")
    found = []
    if not root.is_dir():
        return found
    for query in sorted(p for p in root.iterdir() if p.is_dir()):
        commits = [int(p.name) for p in (query / "commits").glob("[0-9]*") if p.name.isdigit()]
        if commits:
            last = max(commits)
            from datetime import UTC, datetime

            when = datetime.fromtimestamp((query / "commits" / str(last)).stat().st_mtime, UTC).isoformat(
                timespec="seconds"
            )
            found.append(StreamStatus(query.name, last, when))
        else:
            found.append(StreamStatus(query.name, None, "-"))
    return found
