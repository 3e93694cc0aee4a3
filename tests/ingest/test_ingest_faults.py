"""Nothing lost, nothing doubled: ingest killed between its commits, writers racing for files.

Each kill is a real SIGKILL of a real `medallion ingest` process at a named commit point
(:mod:`medallion.failpoints`); the rerun must leave exactly the rows an uninterrupted run does.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.claims import ClaimLedger
from medallion.ingest import Ingestor
from medallion.streaming.landing import start_ingest
from medallion.tables import Lakehouse
from tests.ingest.test_ingest import event, land


def _land_night(folder: str, files: int = 4, per_file: int = 30) -> None:
    """Valid events, re-sent events and malformed lines spread over several files."""
    for n in range(files):
        lines = [json.dumps(event(f"e{n}-{i}", amount=float(i + 1))) for i in range(per_file)]
        lines += [json.dumps(event(f"e{n}-{i}")) for i in range(3)]  # re-sent
        lines += ["not json", '{"event_id": "t", "amount": 1']  # malformed
        land(folder, f"events-{n:04d}.jsonl", lines)
    land(
        folder.replace("events", "labels"),
        "labels-0000.jsonl",
        [json.dumps({"event_id": "e0-0", "is_fraud": True, "labeled_at": "2026-11-22T10:00:00Z"})],
    )


def _contents(settings, spark) -> dict[str, object]:
    lake = Lakehouse(settings, spark)
    silver = [r.event_id for r in lake.table("silver", "events").read().select("event_id").collect()]
    return {
        "bronze": sorted(
            (Path(r.source_file).name, r.raw) for r in lake.table("bronze", "events").read().collect()
        ),
        "silver": sorted(silver),
        "silver_unique": len(silver) == len(set(silver)),
        "quarantine": sorted(
            (r.feed, r.raw) for r in lake.table("silver", "quarantine").read().select("feed", "raw").collect()
        ),
        "labels": lake.table("silver", "labels").read().count(),
    }


def _killed_ingest(settings, point: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "medallion.cli",
        "ingest",
        "--set",
        f"storage.root={settings.storage.root}",
        "--set",
        f"delta.engine={settings.delta.engine}",
    ]
    env = {**os.environ, "MEDALLION_ENV": "local", "MEDALLION_KILL_AT": point}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(spark, tmp_path_factory):
    """What one uninterrupted night ingests, followed by a second night's file."""
    from medallion.config import load_settings

    root = tmp_path_factory.mktemp("uninterrupted")
    settings = load_settings("local", [f"storage.root={root}", "delta.engine=rs"], environ={})
    _land_night(settings.storage.landing_events)
    Ingestor(settings, spark).run_batch()
    land(settings.storage.landing_events, "events-9999.jsonl", [json.dumps(event("late-1")), "garbage"])
    Ingestor(settings, spark).run_batch()
    return _contents(settings, spark)


@pytest.mark.parametrize(
    "point, delta_engine",
    [
        ("ingest.claimed", "rs"),
        ("ingest.bronze", "rs"),
        ("ingest.silver", "rs"),
        ("ingest.quarantine", "rs"),
        ("ingest.bronze", "spark"),
    ],
)
def test_a_night_killed_at_each_commit_point_reruns_to_exactly_the_uninterrupted_rows(
    spark, settings, uninterrupted, point, delta_engine
):
    _land_night(settings.storage.landing_events)
    killed = _killed_ingest(settings, point)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    # Another file lands before the rerun: it must not take the unfinished batch's id or files.
    land(settings.storage.landing_events, "events-9999.jsonl", [json.dumps(event("late-1")), "garbage"])
    Ingestor(settings, spark).run_batch()
    assert _contents(settings, spark) == uninterrupted
    again = Ingestor(settings, spark).run_batch()
    assert again.feeds["events"].bronze == 0


def _claim_in_process(folder: str, writer: str, files: list[str], start, results) -> None:
    start.wait()
    claim = ClaimLedger(folder).claim(writer, 0, files)
    results.put((writer, claim.files))


def test_writers_racing_for_the_same_files_each_file_gets_one_owner(tmp_path):
    files = [f"file:/landing/events/f{n}.jsonl" for n in range(40)]
    folder = str(tmp_path / "claims" / "events")
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    writers = [
        context.Process(
            target=_claim_in_process, args=(folder, f"w{n}:events", files[n % 3 :], start, results)
        )
        for n in range(6)
    ]
    for process in writers:
        process.start()
    start.set()
    owned = [results.get(timeout=60) for _ in writers]
    for process in writers:
        process.join(timeout=60)
    every = [path for _, paths in owned for path in paths]
    assert sorted(every) == sorted(files)  # each file exactly once
    # A replay of a batch gets its own claim back, whatever it asks for now.
    ledger = ClaimLedger(folder)
    for writer, paths in owned:
        assert ledger.claim(writer, 0, files).files == tuple(paths)


def test_a_cold_ledger_starts_from_its_newest_checkpoint_and_knows_every_claim(tmp_path):
    from medallion.claims import CHECKPOINT_EVERY

    folder = tmp_path / "claims" / "events"
    ledger = ClaimLedger(str(folder))
    count = 2 * CHECKPOINT_EVERY + 30
    for n in range(count):
        ledger.claim(
            f"w{n % 3}:events", n // 3, [f"file:/landing/f{n}.jsonl", f"file:/landing/f{n + 1}.jsonl"]
        )
    checkpoints = sorted(p.name for p in folder.glob("*.checkpoint.json"))
    assert checkpoints == [
        f"{CHECKPOINT_EVERY - 1:020d}.checkpoint.json",
        f"{2 * CHECKPOINT_EVERY - 1:020d}.checkpoint.json",
    ]
    # The entries the newest checkpoint holds are not read again: gone, they are not missed.
    for number in range(2 * CHECKPOINT_EVERY):
        (folder / f"{number:020d}.json").unlink()
    cold = ClaimLedger(str(folder)).refresh()
    assert cold.claimed() == ledger.claimed() and len(cold.claimed()) == count + 1
    for path in ledger.claimed():
        assert cold.owner(path) == ledger.owner(path)
    assert cold.last("w1:events") == ledger.last("w1:events")
    # A replayed batch still gets its first claim back, and the next claim takes the next number.
    assert (
        cold.claim("w0:events", 0, ["file:/landing/other.jsonl"]).files == ledger.batch("w0:events", 0).files
    )
    assert cold.claim("w9:events", 0, ["file:/landing/new.jsonl"]).number == count
    # A damaged newest checkpoint: the older one and the entries after it still hold every claim.
    (folder / checkpoints[-1]).write_text("{not json")
    for number in range(CHECKPOINT_EVERY, 2 * CHECKPOINT_EVERY):
        ledger_entry = {"writer": "x:events", "batch_id": number, "files": [], "claimed_at": ""}
        (folder / f"{number:020d}.json").write_text(json.dumps(ledger_entry))
    assert ClaimLedger(str(folder)).refresh().owner("file:/landing/f5.jsonl") == ledger.owner(
        "file:/landing/f5.jsonl"
    )


@pytest.mark.usefixtures("delta_engine")
def test_the_stream_and_the_night_ingesting_the_same_files_at_once_ingest_each_line_once(spark, settings):
    from medallion.bronze import read_landing

    folder = settings.storage.landing_events
    _land_night(folder, files=6, per_file=10)
    ingestor = Ingestor(settings, spark)
    errors = []

    def stream_batch() -> None:
        try:
            landed = read_landing(spark, folder)
            ingestor_stream = Ingestor(settings, spark)
            ingestor_stream.process("events", landed, "score_events:q1", 0).release()
        except Exception as exc:  # surfaced below
            errors.append(exc)

    racer = threading.Thread(target=stream_batch)
    racer.start()
    ingestor.run_batch()
    racer.join()
    assert not errors, errors
    lake = Lakehouse(settings, spark)
    bronze = lake.table("bronze", "events").read()
    landed_lines = sum(len(p.read_text().splitlines()) for p in Path(folder).glob("*.jsonl"))
    assert bronze.count() == landed_lines
    assert (
        bronze.groupBy("source_file")
        .agg(F.countDistinct("ingest_app").alias("owners"))
        .where("owners > 1")
        .count()
        == 0
    )
    silver = lake.table("silver", "events").read()
    assert silver.count() == silver.select("event_id").distinct().count() == 60


@pytest.mark.usefixtures("delta_engine")
def test_a_file_still_being_written_waits_and_bronze_matches_what_was_parsed(spark, settings):
    from medallion.bronze import read_landing

    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a")), json.dumps(event("b"))])
    growing = Path(folder, "events-0002.jsonl")
    growing.write_text(json.dumps(event("c")) + "\n")
    landed = read_landing(spark, folder)
    landed = spark.createDataFrame(landed.collect(), landed.schema)  # listed and read now
    with growing.open("a") as handle:  # the copy goes on after the read
        handle.write(json.dumps(event("d")) + "\n")
    batch = Ingestor(settings, spark).process("events", landed, "score_events:q1", 0)
    batch.release()
    # The grown file is left for a later batch; what was taken went to bronze exactly as parsed.
    assert (batch.counts.files, batch.counts.bronze, batch.counts.silver) == (1, 2, 2)
    report = Ingestor(settings, spark).run_batch()
    assert report.feeds["events"].silver == 2  # c and d, whole
    lake = Lakehouse(settings, spark)
    assert sorted(r.event_id for r in lake.table("silver", "events").read().collect()) == ["a", "b", "c", "d"]
    assert lake.table("bronze", "events").read().count() == 4


def test_settle_seconds_leaves_a_fresh_file_for_a_later_run(spark, storage_root):
    from medallion.config import load_settings

    settings = load_settings(
        "local", [f"storage.root={storage_root}", "ingest.settle_seconds=3600"], environ={}
    )
    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a"))])
    assert Ingestor(settings, spark).run_batch().feeds["events"].bronze == 0
    old = Path(folder, "events-0001.jsonl")
    os.utime(old, (old.stat().st_atime - 7200, old.stat().st_mtime - 7200))
    assert Ingestor(settings, spark).run_batch().feeds["events"].silver == 1


@pytest.mark.usefixtures("delta_engine")
def test_a_file_deleted_after_listing_is_skipped_and_recorded(spark, settings, monkeypatch):
    import medallion.ingest.ingestor as ingest_module

    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a"))])
    land(folder, "events-0002.jsonl", [json.dumps(event("b"))])
    listed_then_deleted = Path(folder, "events-0002.jsonl")
    read = ingest_module.read_landing

    def read_then_delete(spark_, paths, **kwargs):
        lines = read(spark_, paths, **kwargs)  # listed now
        listed_then_deleted.unlink(missing_ok=True)  # a producer's clean-up, before the read runs
        return lines

    monkeypatch.setattr(ingest_module, "read_landing", read_then_delete)
    counts = Ingestor(settings, spark).run_batch().feeds["events"]
    assert (counts.silver, counts.missing) == (1, 1)
    quarantine = Lakehouse(settings, spark).table("silver", "quarantine").read().collect()
    assert [(Path(r.source_file).name, r.reasons[0].split(":")[0]) for r in quarantine] == [
        ("events-0002.jsonl", "missing file")
    ]


@pytest.mark.usefixtures("delta_engine")
def test_the_stream_records_a_file_deleted_after_its_batch_listed_it(spark, settings, monkeypatch):
    """The micro-batch's own listing (the checkpoint's source log) names the file that gave no line."""
    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a"))])
    land(folder, "events-0002.jsonl", [json.dumps(event("b"))])
    listed_then_deleted = Path(folder, "events-0002.jsonl")
    process = Ingestor.process

    def delete_then_process(self, feed, landed, *args, **kwargs):
        listed_then_deleted.unlink(missing_ok=True)  # listed by the batch, gone before its read
        return process(self, feed, landed, *args, **kwargs)

    monkeypatch.setattr(Ingestor, "process", delete_then_process)
    for query in start_ingest(Ingestor(settings, spark), {"availableNow": True}):
        query.awaitTermination(180)
        assert query.exception() is None
    lake = Lakehouse(settings, spark)
    quarantine = lake.table("silver", "quarantine").read().collect()
    assert [(Path(r.source_file).name, r.reasons[0].split(":")[0]) for r in quarantine] == [
        ("events-0002.jsonl", "missing file")
    ]
    assert [r.event_id for r in lake.table("silver", "events").read().collect()] == ["a"]


@pytest.mark.parametrize("mode", ["night", "stream"])
def test_a_line_too_long_to_read_is_skipped_unread_and_its_file_recorded(spark, settings, mode):
    """A line over UNREAD_LINE_BYTES never sits in memory: the reader skips it, the lines
    around it go on, and quarantine holds one record per file saying a line was not read."""
    from medallion.ingest import UNREAD_LINE
    from medallion.schemas import UNREAD_LINE_BYTES

    folder = settings.storage.landing_events
    huge = json.dumps(event("huge") | {"merchant_id": "m" * (UNREAD_LINE_BYTES + 10)})
    land(folder, "events-0001.jsonl", [json.dumps(event("a")), huge, json.dumps(event("b"))])
    land(folder, "events-0002.jsonl", [huge])  # nothing in it can be read
    land(folder, "events-0003.jsonl", [json.dumps(event("c"))])
    ingestor = Ingestor(settings, spark)
    for _ in range(2):  # a second run records nothing again
        if mode == "night":
            counts = ingestor.run_batch().feeds["events"]
        else:
            for query in start_ingest(ingestor, {"availableNow": True}):
                query.awaitTermination(180)
                assert query.exception() is None
    lake = Lakehouse(settings, spark)
    quarantine = lake.table("silver", "quarantine").read().collect()
    assert sorted((Path(r.source_file).name, r.reasons, r.raw) for r in quarantine) == [
        ("events-0001.jsonl", [UNREAD_LINE], None),
        ("events-0002.jsonl", [UNREAD_LINE], None),
    ]
    assert sorted(r.event_id for r in lake.table("silver", "events").read().collect()) == ["a", "b", "c"]
    assert lake.table("bronze", "events").read().count() == 3
    if mode == "night":
        assert counts.unread == 0  # the second run: recorded once, by the first


def test_a_micro_batch_can_be_bounded_by_bytes(spark, storage_root):
    """A few huge files must not all land in one micro-batch the driver then holds whole."""
    from medallion.config import load_settings
    from medallion.streaming.landing import landed_stream

    settings = load_settings(
        "local", [f"storage.root={storage_root}", "stream.max_bytes_per_trigger=1"], environ={}
    )
    for n in range(3):
        land(settings.storage.landing_events, f"events-{n:04d}.jsonl", [json.dumps(event(f"e{n}"))] * 3)
    batches: list[int] = []
    query = (
        landed_stream(spark, settings)
        .writeStream.foreachBatch(lambda batch, _: batches.append(batch.count()))
        .option("checkpointLocation", str(storage_root / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(300)
    assert batches == [3, 3, 3]  # one file per batch: each is over the bound alone
