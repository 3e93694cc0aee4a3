"""A class-data-sharing archive of the driver JVM's classes, so a fresh Spark process starts warm.

Usage::

    from medallion import class_archive

    class_archive.dump()             # "dumped", "cached", or why there is none
    python -m medallion.class_archive  # what `make setup` runs: dump the archive once
    export SPARK_SUBMIT_OPTS="$(python -m medallion.class_archive options)"   # spark-submit's drivers too

A Spark driver loads over ten thousand classes from pyspark's and delta-spark's jars before
its first job, and every ``medallion`` command, ``spark-submit`` job and restarted stream pays
that again. HotSpot's class-data sharing (``-XX:ArchiveClassesAtExit`` /
``-XX:SharedArchiveFile``, JDK 13+) maps classes already parsed and verified from a file
instead: a fresh process starts with less CPU and sooner (docs/performance.md, "Process
start").

The archive is only valid for the JVM build and the class path it was dumped with, so its
name is a digest of both: the ``java`` binary and its version banner, and every jar (name,
size, mtime) in pyspark's ``jars`` folder and in medallion's jar cache. A new JDK, a pip
upgrade or a refetched jar changes the digest, and sessions go on without an archive until
``make setup`` dumps the new one. HotSpot itself checks the class path again when it maps the
file; its warnings are silenced, since an archive that does not fit only means a slower start.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile

from medallion.errors import one_line
from medallion.java import ARCHIVE_QUIET, archive_folder, archive_path, archived_class_options, java_version


def _warm_up(spark, workdir: str) -> None:
    """Work that loads the classes medallion's jobs load: JSON parsing, Delta writes, appends,
    MERGE and reads, a streaming query, an Arrow pandas UDF and Kafka's source."""
    import pandas as pd
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    def halve(values):
        return values / 2.0

    # Types, not the strings this module's annotations would be: pandas_udf reads them.
    halve.__annotations__ = {"values": pd.Series, "return": pd.Series}
    half = pandas_udf(halve, "double")

    lines = spark.createDataFrame([('{"id": 1, "amount": 2.5}',), ("not json",)], "value string")
    parsed = lines.select(F.from_json("value", "id long, amount double").alias("r")).select("r.*")
    parsed.withColumn("half", half("amount")).collect()
    table = os.path.join(workdir, "table")
    rows = spark.range(100).select(
        F.col("id"), (F.col("id") * 1.5).alias("amount"), F.current_timestamp().alias("at")
    )
    has_delta = spark.conf.get("spark.sql.extensions", "") or ""
    fmt = "delta" if "Delta" in has_delta else "parquet"
    rows.write.format(fmt).save(table)
    rows.write.format(fmt).mode("append").save(table)
    if fmt == "delta":
        spark.sql(
            f"MERGE INTO delta.`{table}` t USING (SELECT id, amount FROM delta.`{table}` LIMIT 5) s "
            "ON t.id = s.id WHEN MATCHED THEN UPDATE SET amount = s.amount + 1"
        )
    spark.read.format(fmt).load(table).groupBy((F.col("id") % 3).alias("k")).agg(F.sum("amount")).collect()
    source = spark.readStream.format(fmt)
    if fmt == "parquet":  # a file source needs its schema; Delta's refuses one
        source = source.schema(rows.schema)
    query = (
        source.load(table)
        .writeStream.foreachBatch(lambda batch, _id: batch.count())
        .option("checkpointLocation", os.path.join(workdir, "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    # Planning a Kafka source loads the connector's classes without reaching a broker; without
    # the connector cached there are none to archive.
    with contextlib.suppress(Exception):
        kafka = spark.readStream.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:9")
        kafka.option("subscribe", "warm-up").load().schema.fieldNames()


def _exit_jvm() -> None:
    """End the driver JVM and wait for it: it writes the archive as it exits, which it does
    once its stdin closes."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    if gateway is not None:
        gateway.shutdown()
    if process is not None:
        if process.stdin:
            process.stdin.close()
        process.wait(timeout=300)
    SparkContext._gateway = None
    SparkContext._jvm = None


def dump(log=print) -> str:
    """Run :func:`_warm_up` in a fresh driver JVM that writes its loaded classes to the archive
    at exit; "cached" if this JVM and these jars have one already."""
    from medallion.config import load_settings
    from medallion.spark import get_spark, session_defaults

    found = java_version()
    if found is None:
        return "no java"
    if found[0] < 17:
        return f"needs Java 17+, found {found[1]}"
    target = archive_path(found[1])
    if target is None:
        return "no java"
    if target.is_file():
        return "cached"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    with tempfile.TemporaryDirectory(prefix="medallion-class-archive-") as workdir:
        settings = load_settings(
            env="local", overrides=[f"storage.root={workdir}/root", "delta.engine=spark"]
        )
        settings.spark.conf["spark.ui.showConsoleProgress"] = "false"
        usual = session_defaults(settings)["spark.driver.extraJavaOptions"]
        settings.spark.conf["spark.driver.extraJavaOptions"] = (
            f"{usual} -XX:ArchiveClassesAtExit={partial} {ARCHIVE_QUIET}"
        )
        log(f"class archive: loading Spark's classes once, into {target} ...")
        spark = get_spark(settings)
        try:
            try:
                _warm_up(spark, workdir)
            finally:
                spark.stop()
                _exit_jvm()  # it writes the archive as it exits, warmed up or not
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    if not partial.is_file():
        return "the JVM wrote no archive"
    for stale in archive_folder().glob("*.jsa"):  # this installation's, for an older JVM or jar set
        stale.unlink()
    os.replace(partial, target)
    return "dumped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medallion.class_archive", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["dump", "options"],
        default="dump",
        help="dump: write the archive for this java and these jars, once (the default); "
        "options: print the driver JVM options that map it, for SPARK_SUBMIT_OPTS (nothing if none fits)",
    )
    args = parser.parse_args(argv)
    if args.command == "options":
        print(archived_class_options())
        return 0
    try:
        outcome = dump()
    except Exception as exc:  # an archive is an optimisation: setup goes on without one
        outcome = f"{type(exc).__name__}: {one_line(exc)}"
    if outcome in ("cached", "dumped"):
        print(f"class archive: {outcome} in {archive_folder()}")
    else:
        # A missing archive only means slower starts: setup goes on.
        print(f"warning: no class archive ({outcome}); Spark processes start without one", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
