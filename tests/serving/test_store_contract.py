"""The online store contract, run on both stores (SQLite, and a real redis-server)."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from medallion.schemas import FEATURE_COLUMNS
from medallion.serving.store import Precomputed, Snapshot, fixed_point, prediction_key

DAY = date(2026, 12, 6)


def profile(card: str, count: float, day: date = DAY) -> dict:
    return {
        "card_id": card,
        "profile_date": day,
        "txn_count_30d": count,
        "amount_mean_30d": 41.123456789012345,
        "amount_std_30d": 0.1 + 0.2,
        "distinct_merchants_30d": 3.0,
        "usual_country": "DE",
    }


def test_an_empty_store_answers_nothing(online_store):
    assert online_store.current() is None
    assert online_store.profile("c1", DAY) is None
    assert online_store.predictions(["k"]) == [None]
    assert online_store.serving_row("e1") is None
    online_store.ping()


def test_a_published_generation_is_read_back_exactly(online_store):
    score = 0.1 + 0.2  # not a short decimal: the store must keep every bit
    gen = online_store.publish(
        Snapshot(
            profiles=[profile("c1", 12.0), profile("c1", 2.0, date(2026, 12, 5))],
            predictions=[("k1", Precomputed(score, False, "3", "serving"))],
            serving=[
                {"event_id": "e1", "score": score, "decision": False, "model_version": "3", "source": "batch"}
            ],
            info={"model_version": "3"},
        )
    )
    assert online_store.current().id == gen.id
    assert online_store.current().info == {"model_version": "3"}
    found = online_store.profile("c1", DAY)
    assert found["txn_count_30d"] == 12.0 and found["usual_country"] == "DE"
    assert found["amount_mean_30d"] == 41.123456789012345 and found["amount_std_30d"] == 0.1 + 0.2
    assert online_store.profile("c1", date(2026, 12, 5))["txn_count_30d"] == 2.0
    assert online_store.profile("c2", DAY) is None
    assert online_store.predictions(["k1", "k2"]) == [Precomputed(score, False, "3", "serving"), None]
    assert online_store.serving_row("e1")["score"] == score


def test_a_refresh_replaces_the_whole_generation(online_store):
    first = online_store.publish(
        Snapshot(profiles=[profile("c1", 1.0)], predictions=[("old", Precomputed(0.5, True, "1", "serving"))])
    )
    second = online_store.publish(
        Snapshot(profiles=[profile("c2", 2.0)], predictions=[("new", Precomputed(0.25, False, "2", "night"))])
    )
    assert second.id > first.id
    assert online_store.current().id == second.id
    assert online_store.profile("c1", DAY) is None
    assert online_store.profile("c2", DAY)["txn_count_30d"] == 2.0
    assert online_store.predictions(["old", "new"]) == [None, Precomputed(0.25, False, "2", "night")]


def test_written_back_scores_hit_and_a_generations_score_wins(online_store):
    online_store.publish(Snapshot(predictions=[("both", Precomputed(0.75, True, "2", "night"))]))
    online_store.write_back(
        {"mine": Precomputed(0.125, False, "2", "online"), "both": Precomputed(0.5, True, "2", "online")}
    )
    assert online_store.predictions(["mine", "both", "none"]) == [
        Precomputed(0.125, False, "2", "online"),
        Precomputed(0.75, True, "2", "night"),
        None,
    ]


def test_the_streams_rows_answer_until_a_batch_row_is_published(online_store):
    def row(event_id: str, score: float, source: str) -> dict:
        return {"event_id": event_id, "score": score, "model_version": "2", "source": source}

    online_store.publish(Snapshot(serving=[row("batch", 0.5, "batch"), row("speed", 0.25, "speed")]))
    online_store.put_stream_rows(
        [row("batch", 0.75, "speed"), row("speed", 0.125, "speed"), row("new", 1.0, "speed")]
    )
    assert online_store.serving_row("batch") == row("batch", 0.5, "batch")  # the batch layer is the truth
    assert online_store.serving_row("speed") == row("speed", 0.125, "speed")  # the stream's is newer
    assert online_store.serving_row("new") == row("new", 1.0, "speed")
    assert online_store.serving_row("none") is None
    # The night scored "new": once published, its batch row answers.
    online_store.publish(Snapshot(serving=[row("new", 0.0, "batch")]))
    assert online_store.serving_row("new") == row("new", 0.0, "batch")
    assert online_store.serving_row("speed") == row("speed", 0.125, "speed")  # kept across refreshes


def test_a_reader_never_sees_half_a_refresh(online_store):
    """Each refresh gives 200 keys one score; a batch read during refreshes sees one score."""
    keys = [f"k{i}" for i in range(200)]
    online_store.publish(Snapshot(predictions=[(k, Precomputed(0.0, False, "1", "night")) for k in keys]))
    stop, seen, errors, reads = threading.Event(), set(), [], []

    def read() -> None:
        while not stop.is_set():
            found = online_store.predictions(keys)
            if any(p is None for p in found) or len({p.score for p in found}) != 1:
                errors.append(sorted({None if p is None else p.score for p in found}, key=str))
            seen.add(found[0].score if found[0] else None)
            reads.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(1, 8):
            online_store.publish(
                Snapshot(predictions=[(k, Precomputed(n / 10, False, "1", "night")) for k in keys])
            )
            # Let the reader in between refreshes too, however busy the machine is.
            before, deadline = len(reads), time.monotonic() + 10
            while len(reads) == before and time.monotonic() < deadline:
                time.sleep(0.001)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors[:3]
    assert online_store.predictions(keys[:1])[0].score == 0.7
    assert len(seen) >= 2  # the reader did run across refreshes


def test_keys_depend_on_the_version_and_the_rounded_inputs():
    features = {name: 1.0 for name in FEATURE_COLUMNS} | {"channel": "pos", "merchant_category": "fuel"}
    key = prediction_key(features, "3", decimals=6)
    assert key == prediction_key(dict(features), "3", decimals=6)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key != prediction_key(features, "4", decimals=6)
    assert key == prediction_key(features | {"log_amount": 1.0 + 4e-7}, "3", decimals=6)
    assert key != prediction_key(features | {"log_amount": 1.0 + 6e-7}, "3", decimals=6)
    assert key != prediction_key(features | {"channel": "ecom"}, "3", decimals=6)
    assert key != prediction_key(features | {"log_amount": None}, "3", decimals=6)


@pytest.mark.parametrize(
    ("value", "decimals", "expected"),
    [
        (12.3456789, 6, "12345679"),
        (0.5e-6, 6, "0"),
        (1.5e-6, 6, "2"),
        (-2.25, 1, "-22"),
        (None, 6, "null"),
        (3.0, 0, "3"),
    ],
)
def test_fixed_point_is_an_integer_rounded_half_even(value, decimals, expected):
    # The double's exact binary value decides: 5e-7 is stored just below, 1.5e-6 just above.
    assert fixed_point(value, decimals) == expected
