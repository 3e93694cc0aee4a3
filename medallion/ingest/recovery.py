"""The night's batches after a crash: which batch is unfinished, and where its lines are.

A night's batch claims its files, then commits bronze, quarantine and silver, each keyed by
``(writer, batch id)``. Killed between those commits, the next run finishes that batch before
it takes anything new: from bronze's own rows if bronze committed them (whatever the files
hold now), else from the files the claim names.
"""

from __future__ import annotations

import os

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion.bronze import local_path, read_landing
from medallion.claims import Claim, ClaimLedger
from medallion.tables import Table

# The app id of the bronze rows written before claims existed.
ADOPTED_APP = "before-claims"


def last_txn(table: Table, writer: str) -> int:
    """The writer's last committed batch id in ``table``; -1 if none."""
    last = table.last_txn_version(writer)
    return -1 if last is None else last


def unfinished(ledger: ClaimLedger, writer: str, tables: tuple[Table, ...]) -> Claim | None:
    """The writer's last claim, if one of ``tables`` has not committed its batch."""
    claim = ledger.last(writer)
    if claim is None or all(last_txn(table, writer) >= claim.batch_id for table in tables):
        return None
    return claim


def next_batch_id(ledger: ClaimLedger, bronze: Table, writer: str) -> int:
    """The id after the writer's last claim; bronze's txn counts too, so a lakehouse ingested
    before claims existed carries on."""
    last = ledger.last(writer)
    return max(-1 if last is None else last.batch_id, last_txn(bronze, writer)) + 1


def claimed_lines(spark: SparkSession, bronze: Table, writer: str, claim: Claim) -> DataFrame:
    """The lines of a claimed batch: bronze's own rows if bronze committed the batch, else
    the claimed files that are still there."""
    if last_txn(bronze, writer) >= claim.batch_id:
        return (
            bronze.read()
            .where((F.col("ingest_app") == writer) & (F.col("batch_id") == claim.batch_id))
            .select("raw", "source_file", "ingested_at")
        )
    present = [path for path in map(local_path, claim.files) if os.path.exists(path)]
    if present:
        return read_landing(spark, present)
    return spark.createDataFrame([], "raw string, source_file string, landed_at timestamp")


def adopt_bronze(ledger: ClaimLedger, bronze: Table | None, feed: str) -> None:
    """A lakehouse ingested before claims existed: bronze's files become one claim, once.
    ``bronze`` is None where the table does not exist yet."""
    if ledger.claimed() or bronze is None:
        return
    files = [row.source_file for row in bronze.read().select("source_file").distinct().collect()]
    if files:
        ledger.claim(f"{ADOPTED_APP}:{feed}", 0, files)
