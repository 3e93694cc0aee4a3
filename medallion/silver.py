"""Silver: parse, type and validate bronze lines; quarantine what fails, with its reasons.

Usage::

    parsed = parse_events(bronze_rows)
    parsed.valid        # typed per SILVER_EVENTS_SCHEMA
    parsed.quarantine   # QUARANTINE_SCHEMA: feed, reasons, raw, source_file, ...
    deduped = dedupe_events(parsed.valid, existing_ids=silver_events.select("event_id"))

Every bronze row lands in exactly one of ``valid`` and ``quarantine``. Parsing is strict
(Spark's ``try_parse_json``): a line that is not a JSON object never reaches silver.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medallion.schemas import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    EVENT_FIELDS,
    LABEL_FIELDS,
    MAX_LINE_BYTES,
    MERCHANT_CATEGORIES,
)


@dataclass(frozen=True)
class ParsedFeed:
    valid: DataFrame
    quarantine: DataFrame


@dataclass(frozen=True)
class Deduped:
    unique: DataFrame
    duplicates: DataFrame


def _field(parsed: Column, name: str) -> Column:
    return F.try_variant_get(parsed, f"$.{name}", "string")


def _reason(condition: Column, text: Column | str) -> Column:
    return F.when(condition, text if isinstance(text, Column) else F.lit(text))


def _one_of(value: Column, allowed: tuple[str, ...], field: str) -> Column:
    return _reason(value.isNotNull() & ~value.isin(*allowed), F.concat(F.lit(f"unknown {field}: "), value))


def _structural_reasons(raw: Column, parsed: Column) -> list[Column]:
    """Reasons that make every other check moot: size, JSON validity, object shape."""
    trimmed = F.trim(raw)
    return [
        _reason(
            F.octet_length(raw) > MAX_LINE_BYTES,
            F.format_string(f"oversized line: %d bytes > {MAX_LINE_BYTES}", F.octet_length(raw)),
        ),
        _reason(parsed.isNull() & trimmed.startswith("{"), "truncated JSON"),
        _reason(parsed.isNull() & ~trimmed.startswith("{"), "not JSON"),
        _reason(parsed.isNotNull() & ~F.schema_of_variant(parsed).startswith("OBJECT"), "not a JSON object"),
    ]


def _split(bronze: DataFrame, feed: str, typed: dict[str, Column], checks: list[Column]) -> ParsedFeed:
    """Attach the typed columns and reasons, then route each row to valid or quarantine."""
    reasons = F.filter(F.array(*checks), lambda reason: reason.isNotNull())
    checked = (
        bronze.withColumn("_parsed", F.try_parse_json("raw"))
        .withColumns(typed)
        .withColumn("reasons", reasons)
    )
    # A line that is not a JSON object has only its structural reason; field checks would be noise.
    structural = F.filter(
        F.array(*_structural_reasons(F.col("raw"), F.col("_parsed"))), lambda reason: reason.isNotNull()
    )
    checked = checked.withColumn(
        "reasons", F.when(F.size(structural) > 0, structural).otherwise(F.col("reasons"))
    )
    valid = checked.where(F.size("reasons") == 0).drop("_parsed", "reasons")
    quarantine = checked.where(F.size("reasons") > 0).select(
        F.lit(feed).alias("feed"),
        "reasons",
        "raw",
        "source_file",
        "ingested_at",
        F.current_timestamp().alias("quarantined_at"),
    )
    return ParsedFeed(valid, quarantine)


def parse_events(bronze: DataFrame) -> ParsedFeed:
    """Bronze event lines -> typed silver events and quarantined lines with reasons."""
    parsed = F.try_parse_json("raw")
    text = {name: _field(parsed, name) for name in EVENT_FIELDS}
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
    return _split(bronze, "events", typed, checks)


def parse_labels(bronze: DataFrame) -> ParsedFeed:
    """Bronze label lines -> typed silver labels and quarantined lines with reasons."""
    parsed = F.try_parse_json("raw")
    text = {name: _field(parsed, name) for name in LABEL_FIELDS}
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
    return _split(bronze, "labels", typed, checks)


def dedupe_events(valid: DataFrame, existing_ids: DataFrame | None = None) -> Deduped:
    """First arrival wins: earliest ``ingested_at``, then ``source_file``, then the raw line.

    Rows whose ``event_id`` is already in ``existing_ids`` (silver) are duplicates too.
    Nothing is dropped silently: ``duplicates`` holds every row that did not win.
    """
    first_arrival = Window.partitionBy("event_id").orderBy("ingested_at", "source_file", "raw")
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
