"""The generator: deterministic, atomic, and it injects what its summary says."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

from medallion.config import load_settings
from medallion.datagen import MALFORMED_KINDS, follow, generate_history

REPO = Path(__file__).resolve().parent.parent


def small(root: Path, *extra: str):
    return load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[
            f"storage.root={root}",
            "datagen.cards=50",
            "datagen.files_per_day=3",
            "datagen.malformed_fraction=0.1",
            "datagen.duplicate_fraction=0.05",
            *extra,
        ],
    )


def landed(folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def test_same_seed_same_bytes_and_no_temp_files(tmp_path):
    first, second = small(tmp_path / "a"), small(tmp_path / "b")
    for conf in (first, second):
        generate_history(conf, days=3, events_per_day=200, end_date=date(2026, 11, 20), progress=False)
    assert landed(first.storage.landing_events) == landed(second.storage.landing_events)
    assert landed(first.storage.landing_labels) == landed(second.storage.landing_labels)
    assert not [n for n in landed(first.storage.landing_events) if n.startswith(".")]


def parse(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def test_summary_matches_the_files(tmp_path):
    conf = small(tmp_path)
    summary = generate_history(conf, days=3, events_per_day=300, end_date=date(2026, 11, 20), progress=False)
    lines = [
        line
        for content in landed(conf.storage.landing_events).values()
        for line in content.decode().splitlines()
    ]
    assert len(lines) == summary.events + summary.duplicates + sum(summary.malformed.values())
    assert all(summary.malformed[kind] > 0 for kind in MALFORMED_KINDS)
    ids = [
        record["event_id"]
        for record in map(parse, lines)
        if isinstance(record, dict) and "event_id" in record
    ]
    assert len(ids) - len(set(ids)) >= summary.duplicates > 0
    assert 0 < summary.fraud < summary.events * 0.2
    labels = [
        json.loads(line)
        for c in landed(conf.storage.landing_labels).values()
        for line in c.decode().splitlines()
    ]
    assert len(labels) == summary.labels + 2 * summary.corrections


def test_follow_writes_files_until_stopped(tmp_path):
    conf = small(tmp_path)
    stop = threading.Event()
    timer = threading.Timer(2.5, stop.set)
    timer.start()
    summary = follow(conf, rate=20, stop=stop)
    assert summary.files >= 2
    assert len(landed(conf.storage.landing_events)) == summary.files
