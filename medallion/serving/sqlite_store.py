"""The embedded online store: one SQLite file under the storage root, no server.

Usage::

    from medallion.serving.sqlite_store import SqliteStore

    store = SqliteStore("/lake/serving/online.sqlite")
    store.publish(snapshot)       # see medallion.serving.store

Every row carries its generation; a pointer row names the current one. A refresh inserts the
new generation, moves the pointer and deletes the older generations in one transaction, and
every read names the pointer in the same statement: in WAL mode each statement reads one
snapshot, so a reader sees the old generation or the new one, never a mix.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from medallion.config import Settings
from medallion.errors import ConfigError, MedallionError
from medallion.features import PROFILE_COLUMNS
from medallion.serving.store import (
    Generation,
    OnlineStore,
    Precomputed,
    Snapshot,
    day_text,
    newest_serving_row,
    profile_values,
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS pointer (name TEXT PRIMARY KEY, generation INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS generations (id INTEGER PRIMARY KEY, published_at REAL NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (
    generation INTEGER NOT NULL, card_id TEXT NOT NULL, profile_date TEXT NOT NULL,
    {", ".join(f"{c} {'TEXT' if c == 'usual_country' else 'REAL'}" for c in PROFILE_COLUMNS)},
    PRIMARY KEY (generation, card_id, profile_date)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS predictions (
    generation INTEGER NOT NULL, key TEXT NOT NULL, score REAL NOT NULL, decision INTEGER NOT NULL,
    model_version TEXT NOT NULL, source TEXT NOT NULL,
    PRIMARY KEY (generation, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS serving (
    generation INTEGER NOT NULL, event_id TEXT NOT NULL, row TEXT NOT NULL,
    PRIMARY KEY (generation, event_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_rows (
    event_id TEXT PRIMARY KEY, row TEXT NOT NULL, written_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS written_back (
    key TEXT PRIMARY KEY, score REAL NOT NULL, decision INTEGER NOT NULL, model_version TEXT NOT NULL,
    source TEXT NOT NULL, written_at REAL NOT NULL) WITHOUT ROWID;
"""
_CURRENT = "(SELECT generation FROM pointer WHERE name = 'current')"


class SqliteStore(OnlineStore):
    """The embedded default (``serving.store: sqlite``)."""

    kind = "sqlite"

    def __init__(self, path: str | Path, stream_rows_ttl_hours: float = 48) -> None:
        self.path = Path(path)
        self.stream_rows_seconds = stream_rows_ttl_hours * 3600
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @classmethod
    def for_settings(cls, settings: Settings) -> SqliteStore:
        ttl = settings.serving.stream_rows_ttl_hours
        if settings.serving.sqlite_path:
            return cls(Path(settings.serving.sqlite_path).expanduser(), ttl)
        if settings.storage.is_uri:
            raise ConfigError(
                f"serving.store=sqlite needs a local file, and storage.root is {settings.storage.root}: "
                "set serving.sqlite_path to a local path, or serving.store=redis"
            )
        return cls(settings.storage.root_path / "serving" / "online.sqlite", ttl)

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread: the API's worker threads read in parallel.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            except sqlite3.Error as exc:
                raise MedallionError(f"online store {self.path} cannot be opened: {exc}") from None
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def ping(self) -> None:
        try:
            self._connect().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise MedallionError(f"online store {self.path} cannot be read: {exc}") from None

    # ------------------------------------------------------------------ refresh

    def publish(self, snapshot: Snapshot) -> Generation:
        conn = self._connect()
        started = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            (last,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM generations").fetchone()
            gen = last + 1
            conn.execute(
                "INSERT INTO generations VALUES (?, ?, ?)",
                (gen, started, json.dumps(snapshot.info, default=str)),
            )
            columns = ", ".join(PROFILE_COLUMNS)
            marks = ", ".join("?" for _ in PROFILE_COLUMNS)
            conn.executemany(
                f"INSERT OR REPLACE INTO profiles (generation, card_id, profile_date, {columns}) "
                f"VALUES (?, ?, ?, {marks})",
                (
                    (gen, row["card_id"], day_text(row["profile_date"]), *profile_values(row).values())
                    for row in snapshot.profiles
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (gen, key, p.score, int(p.decision), p.model_version, p.source)
                    for key, p in snapshot.predictions
                ),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO serving VALUES (?, ?, ?)",
                ((gen, row["event_id"], json.dumps(dict(row), default=str)) for row in snapshot.serving),
            )
            conn.execute(
                "INSERT INTO pointer VALUES ('current', ?) "
                "ON CONFLICT (name) DO UPDATE SET generation = excluded.generation",
                (gen,),
            )
            for table in ("profiles", "predictions", "serving", "generations"):
                column = "id" if table == "generations" else "generation"
                conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (gen,))
            # What was written back before this refresh began is in gold.online_requests,
            # which the refresh precomputed.
            conn.execute("DELETE FROM written_back WHERE written_at < ?", (started,))
            conn.execute(
                "DELETE FROM stream_rows WHERE written_at < ?", (started - self.stream_rows_seconds,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Generation(gen, dict(snapshot.info))

    # ------------------------------------------------------------------ reads

    def current(self) -> Generation | None:
        row = self._connect().execute(f"SELECT id, info FROM generations WHERE id = {_CURRENT}").fetchone()
        return None if row is None else Generation(row[0], json.loads(row[1]))

    def profile(self, card_id: str, day: date) -> dict[str, Any] | None:
        row = (
            self._connect()
            .execute(
                f"SELECT {', '.join(PROFILE_COLUMNS)} FROM profiles "
                f"WHERE generation = {_CURRENT} AND card_id = ? AND profile_date = ?",
                (card_id, day_text(day)),
            )
            .fetchone()
        )
        return None if row is None else dict(zip(PROFILE_COLUMNS, row, strict=True))

    def predictions(self, keys: Sequence[str]) -> list[Precomputed | None]:
        if not keys:
            return []
        marks = ", ".join("?" for _ in keys)
        found: dict[str, Precomputed] = {}
        # The written-back scores first, so the generation's (a night's) win where both exist.
        rows = self._connect().execute(
            f"SELECT key, score, decision, model_version, source FROM written_back WHERE key IN ({marks}) "
            "UNION ALL "
            f"SELECT key, score, decision, model_version, source FROM predictions "
            f"WHERE generation = {_CURRENT} AND key IN ({marks})",
            (*keys, *keys),
        )
        for key, score, decision, version, source in rows:
            found[key] = Precomputed(score, bool(decision), version, source)
        return [found.get(key) for key in keys]

    def write_back(self, scores: Mapping[str, Precomputed]) -> None:
        if not scores:
            return
        now = time.time()
        self._connect().executemany(
            "INSERT OR REPLACE INTO written_back VALUES (?, ?, ?, ?, ?, ?)",
            ((k, p.score, int(p.decision), p.model_version, p.source, now) for k, p in scores.items()),
        )

    def serving_row(self, event_id: str) -> dict[str, Any] | None:
        # One statement: the generation's row and the stream's from the same snapshot.
        found = dict(
            self._connect().execute(
                f"SELECT 'generation', row FROM serving WHERE generation = {_CURRENT} AND event_id = ? "
                "UNION ALL SELECT 'stream', row FROM stream_rows WHERE event_id = ?",
                (event_id, event_id),
            )
        )
        rows = {kind: json.loads(row) for kind, row in found.items()}
        return newest_serving_row(rows.get("generation"), rows.get("stream"))

    def put_stream_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        now = time.time()
        try:
            self._connect().executemany(
                "INSERT OR REPLACE INTO stream_rows VALUES (?, ?, ?)",
                ((row["event_id"], json.dumps(dict(row)), now) for row in rows),
            )
        except sqlite3.Error as exc:
            raise MedallionError(f"online store {self.path} cannot be written: {exc}") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
