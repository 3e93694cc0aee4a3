"""The production online store: Redis (``serving.store: redis``, ``serving.redis_url``).

Usage::

    from medallion.serving.redis_store import RedisStore

    store = RedisStore("redis://127.0.0.1:6379/0", settings.serving)
    store.publish(snapshot)       # see medallion.serving.store

Keys are versioned: ``<ns>:g:<generation>:p:<card>:<day>`` (profiles), ``...:k:<sha256>``
(precomputed scores), ``...:e:<event_id>`` (serving rows). A refresh writes the whole new
generation, then switches ``<ns>:current`` in one ``MULTI``; the replaced generation's keys
expire after ``serving.redis_grace_seconds``, so a reader that read the old pointer still
finds all of it. Reads take the pointer and the keys in one Lua script (atomic in Redis).
Written-back scores are ``<ns>:wb:<sha256>`` and the stream's serving rows ``<ns>:s:<event_id>``,
outside generations, each with a TTL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from medallion.config import ServingSettings
from medallion.errors import MedallionError
from medallion.serving.store import (
    Generation,
    OnlineStore,
    Precomputed,
    Snapshot,
    day_text,
    newest_serving_row,
    profile_values,
)

# KEYS[1]: the pointer; ARGV[1]: the namespace; ARGV[2..]: key suffixes within a generation.
_READ = """
local g = redis.call('GET', KEYS[1])
if not g then return {false} end
local out = {g}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('GET', ARGV[1] .. ':g:' .. g .. ':' .. ARGV[i])
end
return out
"""
_PIPELINE_ROWS = 5000


class RedisStore(OnlineStore):
    kind = "redis"

    def __init__(self, url: str, conf: ServingSettings | None = None) -> None:
        import redis

        conf = conf or ServingSettings()
        self.url = url
        self.ns = conf.redis_namespace
        self.grace_seconds = conf.redis_grace_seconds
        self.writeback_seconds = max(1, round(conf.writeback_ttl_hours * 3600))
        self.stream_rows_seconds = max(1, round(conf.stream_rows_ttl_hours * 3600))
        try:
            self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        except ValueError as exc:
            raise MedallionError(f"serving.redis_url {url!r} is not a Redis URL: {exc}") from None
        self._read = self.client.register_script(_READ)

    def describe(self) -> str:
        return f"redis {self._safe_url()}"

    def _safe_url(self) -> str:
        # A password in the URL stays out of messages.
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"

    def _call(self, what: str, fn):
        import redis

        try:
            return fn()
        except redis.RedisError as exc:
            raise MedallionError(
                f"online store {self._safe_url()} {what} failed ({type(exc).__name__}: {exc}): "
                "check serving.redis_url and that redis-server is running"
            ) from None

    def ping(self) -> None:
        self._call("ping", self.client.ping)

    @property
    def _pointer(self) -> str:
        return f"{self.ns}:current"

    def _gen_key(self, gen: int, suffix: str) -> str:
        return f"{self.ns}:g:{gen}:{suffix}"

    # ------------------------------------------------------------------ refresh

    def publish(self, snapshot: Snapshot) -> Generation:
        return self._call("publish", lambda: self._publish(snapshot))

    def _publish(self, snapshot: Snapshot) -> Generation:
        client = self.client
        gen = int(client.incr(f"{self.ns}:next"))
        previous = client.get(self._pointer)
        pipe = client.pipeline(transaction=False)
        pending = 0

        def put(key: str, value: str) -> None:
            nonlocal pending, pipe
            pipe.set(key, value)
            pending += 1
            if pending >= _PIPELINE_ROWS:
                pipe.execute()
                pipe, pending = client.pipeline(transaction=False), 0

        for row in snapshot.profiles:
            put(
                self._gen_key(gen, f"p:{row['card_id']}:{day_text(row['profile_date'])}"),
                json.dumps(profile_values(row)),
            )
        for key, p in snapshot.predictions:
            put(self._gen_key(gen, f"k:{key}"), json.dumps(p.as_dict()))
        for row in snapshot.serving:
            put(self._gen_key(gen, f"e:{row['event_id']}"), json.dumps(dict(row), default=str))
        put(self._gen_key(gen, "info"), json.dumps(snapshot.info, default=str))
        pipe.execute()
        switch = client.pipeline(transaction=True)
        switch.set(self._pointer, gen)
        switch.execute()
        if previous is not None:
            self._expire_generation(int(previous))
        # Written-back scores expire by TTL; the refresh precomputed the ones logged before it.
        return Generation(gen, dict(snapshot.info))

    def _expire_generation(self, gen: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for n, key in enumerate(self.client.scan_iter(match=f"{self.ns}:g:{gen}:*", count=1000), 1):
            pipe.expire(key, self.grace_seconds)
            if n % _PIPELINE_ROWS == 0:
                pipe.execute()
        pipe.execute()

    # ------------------------------------------------------------------ reads

    def _current_values(self, suffixes: Sequence[str]) -> tuple[int | None, list[bytes | None]]:
        out = self._call("read", lambda: self._read(keys=[self._pointer], args=[self.ns, *suffixes]))
        if not out or out[0] is None:
            return None, [None] * len(suffixes)
        values = list(out[1:])
        # Lua's nil ends a reply array early: the missing tail is NULL.
        values += [None] * (len(suffixes) - len(values))
        return int(out[0]), values

    def current(self) -> Generation | None:
        gen, (info,) = self._current_values(["info"])
        return None if gen is None else Generation(gen, json.loads(info) if info else {})

    def profile(self, card_id: str, day: date) -> dict[str, Any] | None:
        _, (value,) = self._current_values([f"p:{card_id}:{day_text(day)}"])
        return None if value is None else json.loads(value)

    def predictions(self, keys: Sequence[str]) -> list[Precomputed | None]:
        if not keys:
            return []
        _, values = self._current_values([f"k:{key}" for key in keys])
        found: list[Precomputed | None] = [
            None if v is None else Precomputed.from_dict(json.loads(v)) for v in values
        ]
        missing = [i for i, p in enumerate(found) if p is None]
        if missing:
            written = self._call(
                "read", lambda: self.client.mget([f"{self.ns}:wb:{keys[i]}" for i in missing])
            )
            for i, value in zip(missing, written, strict=True):
                if value is not None:
                    found[i] = Precomputed.from_dict(json.loads(value))
        return found

    def write_back(self, scores: Mapping[str, Precomputed]) -> None:
        if not scores:
            return

        def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key, p in scores.items():
                pipe.set(f"{self.ns}:wb:{key}", json.dumps(p.as_dict()), ex=self.writeback_seconds)
            pipe.execute()

        self._call("write", write)

    def serving_row(self, event_id: str) -> dict[str, Any] | None:
        _, (value,) = self._current_values([f"e:{event_id}"])
        streamed = self._call("read", lambda: self.client.get(f"{self.ns}:s:{event_id}"))
        return newest_serving_row(
            None if value is None else json.loads(value), None if streamed is None else json.loads(streamed)
        )

    def put_stream_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return

        def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for row in rows:
                pipe.set(f"{self.ns}:s:{row['event_id']}", json.dumps(dict(row)), ex=self.stream_rows_seconds)
            pipe.execute()

        self._call("write", write)

    def close(self) -> None:
        self.client.close()
