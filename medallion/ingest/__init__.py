"""Landing zone -> bronze -> silver (+ quarantine), for nightly runs and streaming micro-batches alike.

Usage::

    from medallion.ingest import Ingestor

    ingestor = Ingestor(settings, spark)
    report = ingestor.run_batch()          # whatever landed since the last run
    # the same, continuously, exactly-once: medallion.streaming.landing.start_ingest(ingestor, trigger)

Both paths call :meth:`Ingestor.process` with a DataFrame of landed lines: bronze gets every
line, silver the valid first arrivals, quarantine the rest with reasons. Each table write is
keyed by ``(app id, batch id)``, so a replayed batch writes nothing twice.

Modules: :mod:`~medallion.ingest.ingestor` (the step and the night's run),
:mod:`~medallion.ingest.read` (one read of a batch's lines), :mod:`~medallion.ingest.recovery`
(finishing a batch a killed night left), :mod:`~medallion.ingest.file_records` (files that
gave no line), :mod:`~medallion.ingest.counts` (what a batch and a run did).
"""

from medallion.ingest.counts import FEEDS, FeedCounts, IngestedBatch, IngestReport
from medallion.ingest.file_records import MISSING_FILE, UNREAD_LINE
from medallion.ingest.ingestor import BATCH_APP, Ingestor

__all__ = [
    "BATCH_APP",
    "FEEDS",
    "MISSING_FILE",
    "UNREAD_LINE",
    "FeedCounts",
    "IngestReport",
    "IngestedBatch",
    "Ingestor",
]
