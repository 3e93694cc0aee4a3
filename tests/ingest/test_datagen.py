"""The generator: deterministic, atomic, and it injects what its summary says."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from medallion.config import load_settings
from medallion.datagen import MALFORMED_KINDS, follow, generate_history
from medallion.schemas import RISKY_CATEGORIES
from tests.conftest import HISTORY_END, REPO


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
        generate_history(conf, days=3, events_per_day=200, end_date=HISTORY_END, progress=False)
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
    summary = generate_history(conf, days=3, events_per_day=300, end_date=HISTORY_END, progress=False)
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


def generated_events(conf, days: int, per_day: int):
    """The generated events with their labels and hand-made fraud traits, as pandas."""
    import pandas as pd

    generate_history(conf, days=days, events_per_day=per_day, end_date=HISTORY_END, progress=False)
    events = pd.DataFrame(
        [
            json.loads(line)
            for content in landed(conf.storage.landing_events).values()
            for line in content.decode().splitlines()
        ]
    ).drop_duplicates("event_id")
    labels = pd.DataFrame(
        [
            json.loads(line)
            for content in landed(conf.storage.landing_labels).values()
            for line in content.decode().splitlines()
        ]
    )
    latest = labels.sort_values("labeled_at").drop_duplicates("event_id", keep="last")
    events = events.merge(latest[["event_id", "is_fraud"]], on="event_id")
    at = pd.to_datetime(events["event_ts"], utc=True, format="ISO8601")
    home = events.groupby("card_id")["country"].agg(lambda c: c.value_counts().index[0])
    usual = events.groupby("card_id")["amount"].median()
    ratio = events["amount"] / events["card_id"].map(usual)
    return events.assign(
        day=at.dt.date,
        night=at.dt.hour < 6,
        abroad=events["country"] != events["card_id"].map(home),
        big=ratio > 2.5,
        risky=events["merchant_category"].isin(RISKY_CATEGORIES),
        ecom=events["channel"] == "ecom",
        log_ratio=np.log(ratio),
    )


TRAITS = ["night", "abroad", "big", "risky", "ecom"]


def test_fraud_signal_is_real_but_not_trivial(tmp_path):
    """Each trait is likelier under fraud yet common among honest events; a simple model is good, not perfect."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    conf = small(tmp_path, "datagen.cards=300", "datagen.malformed_fraction=0", "datagen.late_fraction=0")
    events = generated_events(conf, days=6, per_day=2500)
    fraud, honest = events[events["is_fraud"]], events[~events["is_fraud"]]
    assert 0.005 < len(fraud) / len(events) < 0.05
    for trait in TRAITS:
        in_fraud, in_honest = fraud[trait].mean(), honest[trait].mean()
        assert 0.02 < in_honest < in_fraud < 0.9, (trait, in_fraud, in_honest)
        assert in_fraud > 1.5 * in_honest, (trait, in_fraud, in_honest)
    assert (~fraud[TRAITS].any(axis=1)).mean() > 0.02  # some fraud looks entirely ordinary
    assert (honest[TRAITS[:4]].sum(axis=1) >= 2).sum() > len(fraud) / 4  # some honest events look odd

    features = [*TRAITS, "log_ratio"]
    cutoff = sorted(events["day"].unique())[-2]
    fit, held_out = events[events["day"] < cutoff], events[events["day"] >= cutoff]
    model = LogisticRegression(max_iter=1000).fit(fit[features].astype(float), fit["is_fraud"])
    auc = roc_auc_score(held_out["is_fraud"], model.predict_proba(held_out[features].astype(float))[:, 1])
    assert 0.75 < auc < 0.97, auc
