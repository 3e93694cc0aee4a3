"""Synthetic landing zone: card transactions, late chargeback labels, and the mess real feeds carry.

Usage::

    from medallion.datagen import generate_history, follow

    summary = generate_history(settings, days=14, events_per_day=2000)   # history ending yesterday
    follow(settings, rate=50, duration_s=60)                              # live files for the stream

:mod:`~medallion.datagen.world` draws the cards and their spending (a real, noisy fraud
signal); :mod:`~medallion.datagen.files` writes it as landing files or Kafka records.
"""

from medallion.datagen.files import MALFORMED_KINDS, GenerationSummary, events_sink, follow, generate_history

__all__ = ["MALFORMED_KINDS", "GenerationSummary", "events_sink", "follow", "generate_history"]
