"""The online store ``serving.store`` names: SQLite under the storage root, or Redis.

Usage::

    from medallion.serving.stores import open_store

    store = open_store(settings)        # an OnlineStore (medallion.serving.store)

Each engine lives in its own module and imports only the contract; this is the one place
that knows them all.
"""

from __future__ import annotations

from medallion.config import Settings
from medallion.serving.store import OnlineStore


def open_store(settings: Settings) -> OnlineStore:
    """The store ``serving.store`` names."""
    if settings.serving.store == "redis":
        from medallion.serving.redis_store import RedisStore

        return RedisStore(settings.serving.redis_url, settings.serving)
    from medallion.serving.sqlite_store import SqliteStore

    return SqliteStore.for_settings(settings)
