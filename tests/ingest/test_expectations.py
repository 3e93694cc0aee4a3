"""Declared expectations from conf: warn, drop, quarantine and fail, as DLT has them."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from medallion.config import load_settings
from medallion.errors import ConfigError
from medallion.expectations import ExpectationFailed
from medallion.ingest import Ingestor
from medallion.streaming.landing import start_ingest
from medallion.tables import Lakehouse
from tests.conftest import REPO
from tests.ingest.test_ingest import event, land


def settings_with(storage_root, *rules: str):
    return load_settings(
        env="local",
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={storage_root}", *rules],
    )


def test_warn_drop_and_quarantine_expectations_route_and_count_rows(spark, storage_root):
    settings = settings_with(
        storage_root,
        "expectations.events.small_amount.check=amount < 1000",
        "expectations.events.small_amount.action=quarantine",
        "expectations.events.no_atm.check=channel <> 'atm'",
        "expectations.events.no_atm.action=drop",
        "expectations.events.daytime.check=hour(event_ts) BETWEEN 6 AND 22",
        "expectations.events.daytime.action=warn",
    )
    lines = [
        json.dumps(event("ok1")),
        json.dumps(event("big", amount=5000.0)),
        json.dumps(event("atm", channel="atm")),
        json.dumps(event("night", event_ts="2026-11-20T03:00:00Z")),
        json.dumps(event("big_atm", amount=5000.0, channel="atm")),
        json.dumps(event("eur", currency="XXX", amount=5000.0)),
        "not json at all",
    ]
    land(settings.storage.landing_events, "events-0001.jsonl", lines)
    counts = Ingestor(settings, spark).run_batch().feeds["events"]

    lake = Lakehouse(settings, spark)
    silver = sorted(r.event_id for r in lake.table("silver", "events").read().collect())
    assert silver == ["night", "ok1"]  # warn keeps the row
    quarantine = {
        json.loads(r.raw)["event_id"] if r.raw.startswith("{") else r.raw: list(r.reasons)
        for r in lake.table("silver", "quarantine").read().collect()
    }
    reason = "expectation failed: small_amount (amount < 1000)"
    assert quarantine == {
        "big": [reason],
        "big_atm": [reason],  # quarantine wins over drop: the row is kept with its reason
        "eur": ["unknown currency: XXX", reason],
        "not json at all": ["not JSON"],
    }
    assert (counts.bronze, counts.silver, counts.quarantined, counts.dropped, counts.duplicates) == (
        7,
        2,
        4,
        1,
        0,
    )
    assert counts.bronze == counts.silver + counts.quarantined + counts.duplicates + counts.dropped
    assert counts.expectations == {"small_amount": 3, "no_atm": 2, "daytime": 1}
    # Dropped is not lost: bronze keeps every line.
    assert lake.table("bronze", "events").read().where(F.col("raw").contains('"atm"')).count() == 2


def test_fail_expectation_stops_before_any_write_and_names_the_rule(spark, storage_root):
    settings = settings_with(
        storage_root,
        "expectations.events.known_card.check=card_id LIKE 'card-%'",
        "expectations.events.known_card.action=fail",
    )
    land(
        settings.storage.landing_events,
        "events-0001.jsonl",
        [json.dumps(event("a")), json.dumps(event("b", card_id="stolen-9"))],
    )
    ingestor = Ingestor(settings, spark)
    with pytest.raises(ExpectationFailed) as failed:
        ingestor.run_batch()
    message = str(failed.value)
    assert "\n" not in message
    assert "events.known_card (card_id LIKE 'card-%') failed on 1 row(s); nothing was written" in message
    lake = Lakehouse(settings, spark)
    assert lake.table("bronze", "events").read().count() == 0
    assert lake.table("silver", "events").read().count() == 0
    # The files are still new: fixing the rule and re-running ingests them.
    fixed = settings_with(
        storage_root,
        "expectations.events.known_card.check=card_id LIKE 'card-%'",
        "expectations.events.known_card.action=warn",
    )
    counts = Ingestor(fixed, spark).run_batch().feeds["events"]
    assert (counts.silver, counts.expectations) == (2, {"known_card": 1})


def test_a_malformed_line_breaks_no_expectation_whatever_it_held_before_the_break(spark, storage_root):
    """A cut-short line is quarantined as such; the fields read before the cut are not judged."""
    settings = settings_with(
        storage_root,
        "expectations.events.known_card.check=card_id LIKE 'card-%'",
        "expectations.events.known_card.action=fail",
    )
    truncated = json.dumps(event("t1", card_id="stolen-9"))[:-20]
    land(settings.storage.landing_events, "events-0001.jsonl", [json.dumps(event("a")), truncated])
    counts = Ingestor(settings, spark).run_batch().feeds["events"]
    assert (counts.silver, counts.quarantined, counts.expectations) == (1, 1, {"known_card": 0})
    quarantined = Lakehouse(settings, spark).table("silver", "quarantine").read().first()
    assert (list(quarantined.reasons), quarantined.raw) == (["truncated JSON"], truncated)


def test_a_check_that_does_not_compile_is_one_line_naming_the_key(spark, storage_root):
    settings = settings_with(storage_root, "expectations.events.typo.check=amont > 0")
    with pytest.raises(ConfigError) as bad:
        Ingestor(settings, spark)
    message = str(bad.value)
    assert message.startswith("expectations.events.typo.check 'amont > 0' does not compile: ")
    assert "\n" not in message and "amount" in message


def test_conf_rejects_an_unknown_action_and_a_missing_check(storage_root):
    with pytest.raises(ConfigError, match="'sometimes' is not one of warn, drop, quarantine, fail"):
        settings_with(
            storage_root,
            "expectations.events.r.check=amount > 0",
            "expectations.events.r.action=sometimes",
        )
    with pytest.raises(ConfigError, match=r"expectations\.labels\.r\.check is required"):
        settings_with(storage_root, "expectations.labels.r.action=warn")


def test_cli_ingest_prints_each_declared_expectation(spark, storage_root, capsys):
    from medallion.cli import main

    land(
        str(storage_root / "landing" / "events"),
        "events-0001.jsonl",
        [json.dumps(event("a")), json.dumps(event("b", amount=5000.0))],
    )
    code = main(
        [
            "ingest",
            "--set",
            f"storage.root={storage_root}",
            "--set",
            "expectations.events.small.check=amount < 1000",
            "--set",
            "expectations.events.small.action=warn",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "declared expectations" in out
    assert "events.small" in out and "amount < 1000" in out


def test_the_readme_example_loads_from_a_yaml_overlay(tmp_path):
    import re
    import shutil

    readme = (REPO / "README.md").read_text()
    example = re.search(r"```yaml\n(expectations:\n.*?)```", readme, re.S).group(1)
    shutil.copy(REPO / "conf" / "base.yaml", tmp_path / "base.yaml")
    (tmp_path / "team.yaml").write_text(example)
    settings = load_settings(env="team", environ={}, directory=tmp_path)
    rules = {name: rule.action for name, rule in settings.expectations.events.items()}
    assert rules == {
        "amount_below_50k": "quarantine",
        "no_test_cards": "drop",
        "daytime": "warn",
        "known_channel": "fail",
    }
    assert settings.provenance["expectations.events.daytime.check"].endswith("team.yaml")


def test_a_fail_expectation_stops_the_stream_with_its_one_line(spark, storage_root):
    from medallion.errors import MedallionError
    from medallion.streaming.run import run_until_stopped

    settings = settings_with(
        storage_root,
        "expectations.events.known_card.check=card_id LIKE 'card-%'",
        "expectations.events.known_card.action=fail",
    )
    land(settings.storage.landing_events, "events-0001.jsonl", [json.dumps(event("b", card_id="stolen-9"))])
    land(settings.storage.landing_labels, "labels-0001.jsonl", [])
    events_query, labels_query = start_ingest(Ingestor(settings, spark), {"availableNow": True})
    run_until_stopped(labels_query)
    with pytest.raises(MedallionError) as failed:
        run_until_stopped(events_query)
    assert str(failed.value) == (
        "expectation events.known_card (card_id LIKE 'card-%') failed on 1 row(s); nothing was written: "
        "fix the data or set expectations.events.known_card.action to warn, drop or quarantine"
    )
    assert Lakehouse(settings, spark).table("silver", "events").read().count() == 0


def test_an_expectation_may_check_the_ingest_time(spark, storage_root):
    """The ingest time joins parsed rows late (it would make the parse new code every micro-batch),
    but a rule that reads it still sees it."""
    settings = settings_with(
        storage_root,
        "expectations.events.ingested_after_event.check=ingested_at >= event_ts",
        "expectations.events.ingested_after_event.action=quarantine",
    )
    future = event("f1", event_ts="2999-01-01T00:00:00+00:00")
    land(settings.storage.landing_events, "events-0001.jsonl", [json.dumps(event("a")), json.dumps(future)])
    counts = Ingestor(settings, spark).run_batch().feeds["events"]
    assert (counts.silver, counts.quarantined, counts.expectations) == (1, 1, {"ingested_after_event": 1})
