"""Silver: parse, type and validate bronze lines; quarantine what fails, with its reasons.

Usage::

    parsed = parse_events(bronze_rows, expectations=declared(settings, "events")).persist()
    parsed.valid        # typed per SILVER_EVENTS_SCHEMA
    parsed.quarantine   # QUARANTINE_SCHEMA: feed, reasons, raw, source_file, ...
    parsed.dropped      # rows a ``drop`` expectation keeps out (bronze still has them)
    deduped = dedupe_events(parsed.valid, existing_ids=silver_events.select("event_id"))

Every bronze row lands in exactly one of ``valid``, ``quarantine`` and ``dropped``. Parsing
is strict (standard JSON, no NaN or comments): a line that is not a JSON object never reaches
silver. The built-in checks (required fields, types, ISO codes) quarantine; conf adds
declared expectations (:mod:`medallion.expectations`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pyspark import SparkContext
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medallion.expectations import Expectation
from medallion.schemas import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    EVENT_FIELDS,
    LABEL_FIELDS,
    MAX_LINE_BYTES,
    MERCHANT_CATEGORIES,
)

_WORK_COLUMNS = ("reasons", "broken", "_blank", "_dropped", "_barrier")
_CORRUPT = "_corrupt_record"
TRUNCATED = "...[truncated]"
BOM = "\ufeff"


def _readable_raw() -> Column:
    # An oversized line is kept as far as it is readable: quarantine is for people.
    oversized = F.octet_length("raw") > MAX_LINE_BYTES
    return F.when(oversized, F.concat(F.substring("raw", 1, MAX_LINE_BYTES), F.lit(TRUNCATED))).otherwise(
        F.col("raw")
    )


@dataclass(frozen=True)
class ParsedFeed:
    """Every bronze row of one feed, typed and checked, and its three disjoint parts.

    ``rows`` holds the bronze columns, the typed columns, ``line_hash`` (of the raw line),
    ``reasons`` (why the row is quarantined, empty if it is not) and ``broken`` (the declared
    expectations it breaks, whatever their action). :meth:`persist` it before taking more
    than one part: the JSON is then parsed once, not once per part.
    """

    feed: str
    rows: DataFrame
    expectations: tuple[Expectation, ...] = ()

    def persist(self, keep_raw: bool = False) -> ParsedFeed:
        """Cache the rows. Unless ``keep_raw`` (for a caller that writes bronze from this
        cache), a valid row's raw line is not kept (``line_hash`` stands in for it in
        :func:`dedupe_events`): the cache is then a fraction of the lines' size."""
        if keep_raw:
            return replace(self, rows=self.rows.persist())
        slim = self.rows.withColumn("raw", F.when(F.size("reasons") > 0, F.col("raw")))
        return replace(self, rows=slim.persist())

    def unpersist(self) -> None:
        self.rows.unpersist()

    def _where(self, condition: Column) -> DataFrame:
        # Naming the nondeterministic _barrier keeps the filter above the projections (see _checked).
        return self.rows.where(condition & (F.col("_barrier") >= 0))

    @property
    def valid(self) -> DataFrame:
        return self._where((F.size("reasons") == 0) & ~F.col("_dropped")).drop(*_WORK_COLUMNS)

    @property
    def records(self) -> DataFrame:
        """Valid and quarantined rows, undivided, with ``reasons`` (empty when valid) and ``raw``:
        for a continuous query, which has no foreachBatch to write the parts apart."""
        kept = self._where(~F.col("_dropped") | (F.size("reasons") > 0))
        return kept.withColumn("raw", _readable_raw()).drop(*[c for c in _WORK_COLUMNS if c != "reasons"])

    @property
    def dropped(self) -> DataFrame:
        return self._where((F.size("reasons") == 0) & F.col("_dropped")).drop(*_WORK_COLUMNS)

    @property
    def quarantine(self) -> DataFrame:
        return self._where(F.size("reasons") > 0).select(
            F.lit(self.feed).alias("feed"),
            "reasons",
            _readable_raw().alias("raw"),
            "source_file",
            "ingested_at",
            # When its batch was ingested: a replay keeps it, and a micro-batch's plan holds
            # no literal time that would make it new code to compile every batch.
            F.col("ingested_at").alias("quarantined_at"),
        )

    def summary_columns(self) -> list[Column]:
        """Aggregates for one pass over ``rows``: ``valid``, ``quarantined``, ``dropped`` (blank
        lines among them), ``blank`` and ``broken_<name>`` per declared expectation."""
        quarantined = F.size("reasons") > 0
        return [
            F.count_if(~quarantined & ~F.col("_dropped")).alias("valid"),
            F.count_if(quarantined).alias("quarantined"),
            F.count_if(~quarantined & F.col("_dropped")).alias("dropped"),
            F.count_if(F.col("_blank")).alias("blank"),
            *[
                F.count_if(F.array_contains("broken", rule.name)).alias(f"broken_{rule.name}")
                for rule in self.expectations
            ],
        ]


@dataclass(frozen=True)
class Deduped:
    unique: DataFrame
    duplicates: DataFrame


def _json_fields(fields: Sequence[str]) -> str:
    """Every field read as its JSON text, so a wrong type is a reason, not a silent null."""
    return ", ".join(f"`{name}` STRING" for name in (*fields, _CORRUPT))


def _no_reasons() -> Column:
    return F.array().cast("array<string>")


def _reason(condition: Column, text: Column | str) -> Column:
    """``[text]`` where ``condition`` holds, else ``[]``; :func:`_present` concatenates them."""
    return F.when(condition, F.array(text if isinstance(text, Column) else F.lit(text))).otherwise(
        _no_reasons()
    )


def _one_of(value: Column, allowed: tuple[str, ...], field: str) -> Column:
    return _reason(value.isNotNull() & ~value.isin(*allowed), F.concat(F.lit(f"unknown {field}: "), value))


def _present(reasons: list[Column]) -> Column:
    # Concatenating one- or zero-element arrays, not compacting an array of nullable reasons:
    # array_compact is a lambda (filter), which Spark cannot compile into the stage's
    # generated code, and the interpreted filter doubled the cost of parsing a batch.
    return F.concat(*reasons) if reasons else _no_reasons()


def _structural_reasons(raw: Column, line: Column, corrupt: Column) -> Column:
    """Reasons that make every other check moot: size, JSON validity, object shape.

    ``raw``: the line as landed; ``line``: what is parsed (no byte-order mark; null if oversized).
    """
    # A line that opens with '{' is an object if Jackson can read it. The rare other lines are
    # parsed a second time (as a variant) only to tell "not JSON" from "not a JSON object".
    opens_object = F.ltrim(line).startswith("{")
    broken_object = F.when(F.rtrim(line).endswith("}"), F.lit("malformed JSON")).otherwise(
        F.lit("truncated JSON")
    )
    other_shape = F.when(F.try_parse_json(line).isNull(), F.lit("not JSON")).otherwise(
        F.lit("not a JSON object")
    )
    oversized = F.format_string(f"oversized line: %d bytes > {MAX_LINE_BYTES}", F.octet_length(raw))
    return (
        F.when(F.octet_length(raw) > MAX_LINE_BYTES, F.array(oversized))
        .when(opens_object, _reason(corrupt.isNotNull(), broken_object))
        .otherwise(F.array(other_shape))
    )


@dataclass(frozen=True)
class _FeedChecks:
    """The Column trees that parse, type and check one feed, one dict per projection.

    Building them takes a couple of thousand py4j calls (a fifth of a second), so they are
    built once per SparkContext and set of expectations and reused by every batch.
    """

    line: dict[str, Column]
    parse: dict[str, Column]
    text: dict[str, Column]
    typed: dict[str, Column]
    checked: dict[str, Column]
    work: tuple[str, ...]
    routed: dict[str, Column]


def _feed_checks(
    fields: Sequence[str], typed: dict[str, Column], checks: list[Column], expectations: Sequence[Expectation]
) -> _FeedChecks:
    # from_json (Jackson, straight into the fields) rather than a variant: a third less
    # work per line. Malformed lines keep their text in the corrupt-record field.
    json_options = {
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": _CORRUPT,
        "allowNonNumericNumbers": "false",
    }
    structural = _structural_reasons(F.col("raw"), F.col("_line"), F.col(f"_text_{_CORRUPT}"))
    quarantining = [
        _reason(rule.broken(), rule.reason) for rule in expectations if rule.action == "quarantine"
    ]
    broken = [_reason(rule.broken(), rule.name) for rule in expectations]
    dropping = [rule.name for rule in expectations if rule.action == "drop"]
    return _FeedChecks(
        line={
            # What is parsed: the line without a byte-order mark (an editor's, not an error),
            # and nothing of an oversized line, which is quarantined by its length alone.
            "_line": F.when(F.octet_length("raw") > MAX_LINE_BYTES, F.lit(None).cast("string"))
            .when(F.col("raw").startswith(BOM), F.expr("substr(raw, 2)"))
            .otherwise(F.col("raw")),
        },
        parse={
            "_parsed": F.from_json("_line", _json_fields(fields), json_options),
            "line_hash": F.xxhash64("raw"),
            # A blank line is counted (with the dropped ones), not quarantined as bad JSON.
            "_blank": F.coalesce(F.btrim("_line", F.lit(" \t\r")) == "", F.lit(False)),
        },
        text={f"_text_{name}": F.col(f"_parsed.{name}") for name in (*fields, _CORRUPT)},
        typed=typed,
        checked={
            # A line that is not a JSON object has only its structural reason; field checks would be noise.
            "reasons": F.when(F.col("_blank"), _no_reasons())
            .when(F.size(structural) > 0, structural)
            .otherwise(_present(checks + quarantining)),
            "broken": F.when(F.col("_blank"), _no_reasons()).otherwise(_present(broken)),
        },
        work=(*[f"_text_{name}" for name in (*fields, _CORRUPT)], "_parsed", "_line"),
        routed={
            "_dropped": F.col("_blank") | F.arrays_overlap("broken", F.array(*map(F.lit, dropping)))
            if dropping
            else F.col("_blank"),
            "_barrier": F.spark_partition_id(),
        },
    )


def _checked(
    bronze: DataFrame, feed: str, checks: _FeedChecks, expectations: Sequence[Expectation]
) -> ParsedFeed:
    """Parse each line once, then type it and attach its reasons and broken expectations.

    Each step is its own projection over named columns, so Spark evaluates the JSON parse
    and the field lookups once per row (it does not inline expensive expressions into the
    projections that use them more than once).
    """
    rows = (
        bronze.withColumns(checks.line)
        .withColumns(checks.parse)
        .withColumns(checks.text)
        .withColumns(checks.typed)
        .withColumns(checks.checked)
        .drop(*checks.work)
    )
    # Spark pushes a filter on ``reasons`` below these projections, inlining the parse into
    # every reference to it (filters get no common-subexpression elimination), several times
    # slower.
    # It does not push a filter through a projection with a nondeterministic column.
    return ParsedFeed(feed, rows.withColumns(checks.routed), tuple(expectations))


def parse_events(bronze: DataFrame, expectations: Sequence[Expectation] = ()) -> ParsedFeed:
    """Bronze event lines -> typed silver events, quarantined lines with reasons, dropped lines."""
    rules = tuple(expectations)
    return _checked(bronze, "events", _event_checks(bronze.sparkSession.sparkContext, rules), rules)


@functools.lru_cache(maxsize=32)
def _event_checks(context: SparkContext, expectations: tuple[Expectation, ...]) -> _FeedChecks:
    """Built once per JVM and set of expectations. Keyed on the SparkContext, not the session:
    a Column is the JVM's, and foreachBatch hands every micro-batch a new session object."""
    text = {name: F.col(f"_text_{name}") for name in EVENT_FIELDS}
    amount = text["amount"].try_cast("decimal(18,2)")
    event_ts = text["event_ts"].try_cast("timestamp")
    typed = {
        "event_id": text["event_id"],
        "card_id": text["card_id"],
        "merchant_id": text["merchant_id"],
        "merchant_category": text["merchant_category"],
        "amount": amount,
        "currency": text["currency"],
        "country": text["country"],
        "channel": text["channel"],
        "event_ts": event_ts,
        "event_date": F.to_date(event_ts),
    }
    checks = [_reason(text[name].isNull(), f"missing required field: {name}") for name in text]
    checks += [
        _reason(
            text["amount"].isNotNull() & amount.isNull(),
            F.concat(F.lit("wrong type: amount is not a number: "), text["amount"]),
        ),
        _reason(amount < 0, "negative amount"),
        _reason(
            text["event_ts"].isNotNull() & event_ts.isNull(),
            F.concat(F.lit("unparseable timestamp: event_ts="), text["event_ts"]),
        ),
        _one_of(text["currency"], CURRENCIES, "currency"),
        _one_of(text["channel"], CHANNELS, "channel"),
        _one_of(text["country"], COUNTRIES, "country"),
        _one_of(text["merchant_category"], MERCHANT_CATEGORIES, "merchant_category"),
    ]
    return _feed_checks(EVENT_FIELDS, typed, checks, expectations)


def parse_labels(bronze: DataFrame, expectations: Sequence[Expectation] = ()) -> ParsedFeed:
    """Bronze label lines -> typed silver labels, quarantined lines with reasons, dropped lines."""
    rules = tuple(expectations)
    return _checked(bronze, "labels", _label_checks(bronze.sparkSession.sparkContext, rules), rules)


@functools.lru_cache(maxsize=32)
def _label_checks(context: SparkContext, expectations: tuple[Expectation, ...]) -> _FeedChecks:
    """Built once per JVM and set of expectations (see :func:`_event_checks`)."""
    text = {name: F.col(f"_text_{name}") for name in LABEL_FIELDS}
    is_fraud = F.when(F.lower(text["is_fraud"]) == "true", True).when(
        F.lower(text["is_fraud"]) == "false", False
    )
    labeled_at = text["labeled_at"].try_cast("timestamp")
    typed = {"event_id": text["event_id"], "is_fraud": is_fraud, "labeled_at": labeled_at}
    checks = [_reason(text[name].isNull(), f"missing required field: {name}") for name in text]
    checks += [
        _reason(
            text["is_fraud"].isNotNull() & is_fraud.isNull(),
            F.concat(F.lit("wrong type: is_fraud is not a boolean: "), text["is_fraud"]),
        ),
        _reason(
            text["labeled_at"].isNotNull() & labeled_at.isNull(),
            F.concat(F.lit("unparseable timestamp: labeled_at="), text["labeled_at"]),
        ),
    ]
    return _feed_checks(LABEL_FIELDS, typed, checks, expectations)


def dedupe_events(valid: DataFrame, existing_ids: DataFrame | None = None) -> Deduped:
    """First arrival wins: earliest ``ingested_at``, then ``source_file``, then ``line_hash``
    (a re-sent line in the same file: any fixed choice will do).

    Rows whose ``event_id`` is already in ``existing_ids`` (silver) are duplicates too.
    Nothing is dropped silently: ``duplicates`` holds every row that did not win.
    """
    first_arrival = Window.partitionBy("event_id").orderBy("ingested_at", "source_file", "line_hash")
    ranked = valid.withColumn("_arrival", F.row_number().over(first_arrival))
    if existing_ids is not None:
        known = existing_ids.select("event_id").distinct().withColumn("_known", F.lit(True))
        ranked = ranked.join(F.broadcast(known), "event_id", "left")
    else:
        ranked = ranked.withColumn("_known", F.lit(None).cast("boolean"))
    is_unique = (F.col("_arrival") == 1) & F.col("_known").isNull()
    return Deduped(
        ranked.where(is_unique).drop("_arrival", "_known"),
        ranked.where(~is_unique).drop("_arrival", "_known"),
    )


def latest_labels(silver_labels: DataFrame) -> DataFrame:
    """One label per event: the latest ``labeled_at`` wins (labels get corrected)."""
    newest_first = Window.partitionBy("event_id").orderBy(
        F.col("labeled_at").desc(), F.col("ingested_at").desc()
    )
    return (
        silver_labels.withColumn("_rank", F.row_number().over(newest_first))
        .where("_rank = 1")
        .select("event_id", "is_fraud", "labeled_at")
    )
