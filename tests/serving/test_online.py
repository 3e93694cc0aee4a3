"""The online side end to end on one lakehouse: materialize, the API, parity with the stream and the night.

One module-scoped scenario (real Spark, Delta, MLflow): three days of history, a live day
scored by the stream with one late event in it, the nights of the late event's day and of
the live day, then ``medallion serve materialize`` into the SQLite store.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pyspark.sql import functions as F

from bench._lib.common import register_champion_copy
from medallion.config import load_settings
from tests.conftest import CLOCK, HISTORY_END, REPO

DAY = HISTORY_END  # the live day; TODAY is the day after
LATE_ID = "evt-late-000001"


def _landed_events(settings) -> dict[str, dict]:
    found = {}
    for path in Path(settings.storage.landing_events).glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "event_id" in record:
                found.setdefault(record["event_id"], record)
    return found


@pytest.fixture(scope="module")
def scenario(spark, trained, tmp_path_factory):
    from medallion.batch import NightlyBatch
    from medallion.datagen import generate_history
    from medallion.features import FeatureStore
    from medallion.ingest import Ingestor
    from medallion.serving.materialize import Materializer
    from medallion.streaming.speed import SpeedLayer

    source, _, _ = trained
    root = tmp_path_factory.mktemp("online") / "lake"
    root.mkdir()
    registry = root / "mlflow.db"
    shutil.copyfile(source.storage.root_path / "mlflow.db", registry)
    overrides = [
        f"storage.root={root}",
        f"storage.tracking_uri=sqlite:///{registry}",
        "datagen.cards=300",
        CLOCK,
        "delta.engine=rs",
        "stream.trigger.kind=availableNow",
        "datagen.late_fraction=0",
        "serving.late_days=2",
        "serving.poll_seconds=0.5",
        "serving.log_flush_seconds=0.2",
    ]
    settings = load_settings(environ={}, directory=REPO / "conf", overrides=overrides)

    generate_history(settings, days=3, events_per_day=200, end_date=DAY - timedelta(days=1), progress=False)
    Ingestor(settings, spark).run_batch()
    FeatureStore(settings, spark).build(DAY - timedelta(days=1))  # profiles for DAY - 1 and DAY
    history = _landed_events(settings)
    # A late event: dated the day before the live day, landing with the live day's files.
    late = next(r for r in history.values() if r["event_ts"].startswith(str(DAY - timedelta(days=1))))
    late = late | {"event_id": LATE_ID}
    Path(settings.storage.landing_events, "events-late.jsonl").write_text(json.dumps(late) + "\n")
    generate_history(settings, days=1, events_per_day=200, end_date=DAY, seed=7, progress=False)
    SpeedLayer(settings, spark, log=lambda _: None).run(timeout=180)
    night = NightlyBatch(settings, spark)
    night.run(DAY - timedelta(days=1), ingest=False)  # scores the late event with its day
    night.run(DAY, ingest=False)
    report = Materializer(settings, spark, log=lambda _: None).run()
    return settings, overrides, report, _landed_events(settings), late["card_id"]


def _frame(spark, settings, layer, name):
    from medallion.tables import Lakehouse

    return Lakehouse(settings, spark).table(layer, name).read()


@pytest.fixture(scope="module")
def paths(spark, scenario):
    """Per event: the stream's and the night's score and decision."""
    settings = scenario[0]
    speed = _frame(spark, settings, "gold", "predictions_speed").select(
        "event_id", "event_date", F.col("score").alias("speed"), F.col("decision").alias("speed_decision")
    )
    batch = _frame(spark, settings, "gold", "predictions_batch").select(
        "event_id", F.col("score").alias("night"), F.col("decision").alias("night_decision")
    )
    return {row["event_id"]: row for row in speed.join(batch, "event_id").toArrow().to_pylist()}


def _client(settings, **kwargs) -> TestClient:
    from medallion.serving.api import create_app

    return TestClient(create_app(settings, log_line=lambda _: None, **kwargs), raise_server_exceptions=False)


def test_materialize_publishes_profiles_serving_rows_and_precomputed_scores(scenario):
    _, _, report, _, _ = scenario
    today = DAY + timedelta(days=1)
    assert report.generation == 1
    assert report.profile_days == [str(today - timedelta(days=2)), str(DAY), str(today)]
    assert report.profiles > 200 and report.serving_rows > 300
    assert report.from_serving == report.serving_rows  # every served event keyed by its inputs
    assert report.model_version == "1"


def test_api_hits_equal_the_stream_and_the_night_and_misses_run_the_champion(spark, scenario, paths):
    """Parity: API (hit and miss), stream and night on the same events, the late one included."""
    settings, overrides, _, landed, late_card = scenario
    compared = [eid for eid, row in paths.items() if landed[eid]["card_id"] != late_card][:40]
    events = [landed[eid] for eid in [LATE_ID, *compared]]
    assert paths[LATE_ID]["event_date"] == DAY - timedelta(days=1)

    with _client(settings) as client:
        hits = client.post("/score", json=events)
    assert hits.status_code == 200, hits.text
    # Rounded to 5 decimals the keys differ from the stored ones: every event misses.
    missing = load_settings(
        environ={}, directory=REPO / "conf", overrides=[*overrides, "serving.round_decimals=5"]
    )
    with _client(missing) as client:
        misses = client.post("/score", json=events)
    assert misses.status_code == 200, misses.text

    assert sum(hit["card_known"] for hit in hits.json()) > len(events) / 2
    for hit, miss in zip(hits.json(), misses.json(), strict=True):
        row = paths[hit["event_id"]]
        assert hit["precomputed"] is True and hit["source"] == "serving" and hit["model_version"] == "1"
        assert (
            miss["precomputed"] is False and miss["source"] == "model" and miss["scored_by"] == "pandas_udf"
        )
        assert hit["card_known"] == miss["card_known"]
        for score, decision in ((hit["score"], hit["decision"]), (miss["score"], miss["decision"])):
            assert abs(score - row["night"]) <= 1e-9 and decision == row["night_decision"]
            assert abs(score - row["speed"]) <= 1e-9 and decision == row["speed_decision"]


def test_misses_scored_natively_in_process_equal_the_stream_and_the_night(scenario, paths):
    """model.scoring=native online: the trees evaluated in Python, checked against the pyfunc on
    the version's held-out rows at load, give the night's and the stream's scores."""
    _, overrides, _, landed, late_card = scenario
    # Events and a rounding no other test asks for: a miss written back would be a hit here.
    events = [landed[eid] for eid in [eid for eid in paths if landed[eid]["card_id"] != late_card][-40:]]
    native = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[*overrides, "serving.round_decimals=7", "model.scoring=native"],
    )
    with _client(native) as client:
        answers = client.post("/score", json=events)
        champion = client.get("/model").json()
    assert answers.status_code == 200, answers.text
    assert champion["scored_by"] == "native" and champion["scoring_note"] is None
    for answer in answers.json():
        row = paths[answer["event_id"]]
        assert answer["precomputed"] is False and answer["scored_by"] == "native"
        assert abs(answer["score"] - row["night"]) <= 1e-9 and answer["decision"] == row["night_decision"]
        assert abs(answer["score"] - row["speed"]) <= 1e-9


def test_online_features_equal_the_batch_features(spark, scenario):
    """The row evaluator of the one feature definition gives gold.features' values."""
    from medallion.schemas import FEATURE_COLUMNS
    from medallion.serving.online import Transaction
    from medallion.serving.rowmath import row_features
    from medallion.serving.stores import open_store

    settings, _, _, landed, _ = scenario
    store = open_store(settings)
    features = _frame(spark, settings, "gold", "features").where(F.col("event_date") == DAY).limit(200)
    for row in features.toArrow().to_pylist():
        txn = Transaction.model_validate(landed[row["event_id"]])
        online = row_features(txn.model_dump(), store.profile(txn.card_id, txn.event_date))
        for name in FEATURE_COLUMNS:
            if isinstance(row[name], float):
                assert online[name] == pytest.approx(row[name], rel=1e-12, abs=1e-12), name
            else:
                assert online[name] == row[name], name


def test_unknown_cards_score_with_defaults_and_say_so_and_misses_are_logged(spark, scenario):
    from medallion.serving.requests_log import RequestLog

    settings, _, _, landed, _ = scenario
    event = next(iter(landed.values())) | {
        "event_id": "evt-new-card",
        "card_id": "card-never-seen",
        "event_ts": f"{DAY + timedelta(days=1)}T09:30:00Z",
    }
    log = RequestLog.open(settings)
    before = log.table.version()
    with _client(settings, request_log=log) as client:
        first = client.post("/score", json=event).json()
        again = client.post("/score", json=event).json()
        batch = client.post("/score", json=[event | {"event_id": f"evt-new-{i}"} for i in range(5)])
    assert first["card_known"] is False and "no-history defaults" in first["notes"][0]
    assert first["precomputed"] is False and again["precomputed"] is True and again["source"] == "online"
    assert again["score"] == first["score"]
    assert batch.status_code == 200 and all(a["precomputed"] for a in batch.json())

    logged = _frame(spark, settings, "gold", "online_requests").where(F.col("card_id") == "card-never-seen")
    assert logged.count() == 7
    assert logged.where(~F.col("precomputed")).count() == 1
    # Seven requests, far fewer commits: the log is written in batches.
    assert 1 <= log.table.version() - before <= 4
    features = logged.where(~F.col("precomputed")).first()
    assert features.card_txn_count_30d == 0.0 and features.amount_zscore == 0.0 and features.is_foreign == 0.0


def test_a_night_precomputes_what_missed_online(spark, scenario):
    from medallion.serving.materialize import Materializer

    settings, _, _, landed, _ = scenario
    # The late event: its card's profile is of the oldest day the store holds (serving.late_days).
    event = landed[LATE_ID] | {"event_id": "evt-missed", "amount": "4321.09"}
    with _client(settings) as client:
        missed = client.post("/score", json=event).json()
    assert missed["precomputed"] is False
    report = Materializer(settings, spark, log=lambda _: None).run()
    assert report.from_requests >= 1 and report.generation >= 2
    from medallion.serving.stores import open_store

    store = open_store(settings)
    # Written-back scores from before the refresh are gone: the hit is the night's.
    with _client(settings, store=store) as client:
        hit = client.post("/score", json=event).json()
    assert hit["precomputed"] is True and hit["source"] == "night"
    assert abs(hit["score"] - missed["score"]) <= 1e-9 and hit["decision"] == missed["decision"]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"currency": "XYZ"}, "currency", "unknown currency"),
        ({"amount": "twelve"}, "amount", "not a number"),
        ({"amount": -5}, "amount", "negative amount"),
        ({"event_ts": "yesterday"}, "event_ts", "datetime"),
        ({"channel": 3}, "channel", "string"),
        ({"colour": "red"}, "colour", "not a field"),
        ({"amount": 10**30}, "amount", "more than 16 digits"),
    ],
)
def test_bad_requests_get_422_with_the_field_and_the_reason(scenario, change, field, reason):
    settings, _, _, landed, _ = scenario
    event = next(iter(landed.values())) | change
    with _client(settings) as client:
        answer = client.post("/score", json=[event])
    assert answer.status_code == 422
    [problem] = answer.json()["detail"]
    assert problem["field"] == field and problem["index"] == 0
    assert reason in problem["reason"].lower()


def test_missing_fields_oversized_bodies_and_broken_json_are_4xx(scenario):
    settings, _, _, landed, _ = scenario
    event = next(iter(landed.values()))
    with _client(settings) as client:
        missing = client.post("/score", json={k: v for k, v in event.items() if k != "card_id"})
        too_many = client.post("/score", json=[event] * (settings.serving.max_batch + 1))
        huge = client.post("/score", content=b"[" + b" " * settings.serving.max_body_bytes + b"]")
        broken = client.post("/score", content=b'{"event_id": ', headers={"content-type": "application/json"})
        empty = client.post("/score", content=b"", headers={"content-type": "application/json"})
        not_json = client.post("/score", content=b"amount=3", headers={"content-type": "text/plain"})
        # Python's json writes NaN, which strict JSON parsers refuse: the field says what is wrong.
        nan = client.post(
            "/score",
            content=json.dumps(event | {"amount": float("nan")}).encode(),
            headers={"content-type": "application/json"},
        )
        schema = client.get("/openapi.json").json()
    assert missing.status_code == 422
    assert missing.json()["detail"] == [{"field": "card_id", "reason": "missing required field"}]
    assert too_many.status_code == 413 and "serving.max_batch" in too_many.json()["detail"][0]["reason"]
    assert huge.status_code == 413 and "max_body_bytes" in huge.json()["detail"][0]["reason"]
    assert broken.status_code == 422 and "Traceback" not in broken.text
    assert broken.json()["detail"] == [{"field": "body", "reason": "body is not valid JSON"}]
    assert nan.status_code == 422 and nan.json()["detail"][0]["field"] == "amount"
    for answer in (empty, not_json):
        assert answer.status_code == 422 and answer.json()["detail"][0]["field"] == "body"
    assert "/score" in schema["paths"] and "/predictions/{event_id}" in schema["paths"]
    score = schema["paths"]["/score"]["post"]
    body = score["requestBody"]["content"]["application/json"]["schema"]
    assert score["requestBody"]["required"] and [s.get("type") for s in body["oneOf"]] == ["object", "array"]
    assert body["oneOf"][0]["title"] == "Transaction" and "422" in score["responses"]


def test_predictions_model_health_and_ready(scenario, paths):
    settings, _, _, _, _ = scenario
    event_id = next(iter(paths))
    with _client(settings) as client:
        row = client.get(f"/predictions/{event_id}")
        absent = client.get("/predictions/evt-nope")
        model = client.get("/model").json()
        health = client.get("/health")
        ready = client.get("/ready")
    assert row.status_code == 200
    assert row.json()["source"] == "batch" and abs(row.json()["score"] - paths[event_id]["night"]) <= 1e-12
    assert absent.status_code == 404 and absent.json()["detail"][0]["field"] == "event_id"
    assert model["name"] == "fraud_model" and model["version"] == "1" and model["alias"] == "champion"
    assert model["gate"] == "passed" and "roc_auc" in model["gate_metrics"]
    assert model["training_table_version"] is not None
    assert health.status_code == 200
    assert ready.status_code == 200 and ready.json()["model_version"] == "1"


def test_not_ready_without_a_store_generation(scenario, tmp_path):
    _, overrides, _, _, _ = scenario
    empty = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[*overrides, f"serving.sqlite_path={tmp_path / 'empty.sqlite'}"],
    )
    with _client(empty) as client:
        ready = client.get("/ready")
    assert ready.status_code == 503
    assert any("serve materialize" in reason for reason in ready.json()["missing"])


def test_an_alias_move_is_picked_up_without_restart_and_old_scores_never_answer(spark, scenario, paths):
    import mlflow

    from medallion.model.registry import version_for
    from medallion.model.tracking import configure
    from medallion.serving.materialize import Materializer

    settings, _, _, landed, _ = scenario
    event = landed[next(iter(paths))]
    with _client(settings) as client:
        before = client.post("/score", json=event).json()
        current = version_for(settings, "champion")
        try:
            new = register_champion_copy(settings, "champion")
            deadline = time.monotonic() + 60
            while client.get("/model").json()["version"] != new:
                assert time.monotonic() < deadline, "the alias move was not picked up"
                time.sleep(0.2)
            after = client.post("/score", json=event).json()
        finally:
            configure(settings)
            mlflow.MlflowClient().set_registered_model_alias(settings.model.name, "champion", current)
    assert before["precomputed"] is True and before["model_version"] == "1"
    # Version 1's precomputed score is not served for the new version: it is scored again.
    assert after["model_version"] == new and after["precomputed"] is False
    assert abs(after["score"] - before["score"]) <= 1e-9  # same artifacts, same score

    # The night precomputes what missed, under today's champion (version 1 again): an input the
    # serving table answers keeps the serving table's answer.
    Materializer(settings, spark, log=lambda _: None).run()
    with _client(settings) as client:
        again = client.post("/score", json=event).json()
    assert again["precomputed"] is True and again["source"] == "serving" and again["model_version"] == "1"


def _readme_commands() -> list[list[str]]:
    """The ```bash blocks of README's "Online scoring" section, one list of lines per block."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Online scoring\n", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```bash\n")[1:]
    return [[line for line in block.split("```", 1)[0].splitlines() if line.strip()] for block in blocks]


def _argv(line: str, port: int, redis_url: str) -> list[str]:
    import shlex
    import sys

    words = shlex.split(line.split("  #", 1)[0].replace("8080", str(port)))
    words = [w.replace("redis://127.0.0.1:6379/0", redis_url) for w in words]
    return [sys.executable, "-m", "medallion.cli", *words[1:]] if words[0] == "medallion" else words


def _wait_ready(port: int, process, timeout: float = 120) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited"
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("the service did not become ready")


def test_readme_online_scoring_commands_run_as_written(spark, scenario, redis_url, monkeypatch, tmp_path):
    """README's commands, as written (the port is a free one), on the scenario's lakehouse."""
    import os
    import subprocess

    from medallion.cli import main
    from medallion.serving.materialize import Materializer
    from medallion.serving.redis_store import RedisStore
    from tests.serving.conftest import _free_port

    settings, overrides, _, _, _ = scenario
    env = {
        "MEDALLION__STORAGE__ROOT": settings.storage.root,
        "MEDALLION__STORAGE__TRACKING_URI": settings.storage.mlflow_tracking_uri,
        "MEDALLION__CLOCK__TODAY": str(settings.clock.today),
        "MEDALLION__DELTA__ENGINE": "rs",
        # README's conf differs from the scenario's (serving.late_days): a store of its own, so
        # the generation it publishes does not answer the other tests' requests.
        "MEDALLION__SERVING__SQLITE_PATH": str(tmp_path / "readme-online.sqlite"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    first, redis_block = _readme_commands()
    port = _free_port()
    assert main(_argv(first[0], port, redis_url)[3:]) == 0  # serve materialize, in this session's Spark

    def run_service(line: str) -> tuple[subprocess.Popen, dict]:
        out = open(tmp_path / f"service-{len(list(tmp_path.iterdir()))}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            _argv(line, port, redis_url), env=os.environ | env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
        try:
            return process, _wait_ready(port, process)
        except BaseException:
            process.kill()
            raise

    process, ready = run_service(first[1])
    try:
        answers = [
            subprocess.run(_argv(line, port, redis_url), capture_output=True, text=True, check=True)
            for line in first[2:]
        ]
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert ready["store"].startswith("sqlite") and ready["model_version"] == "1"
    scored, model = json.loads(answers[1].stdout), json.loads(answers[2].stdout)
    assert scored["event_id"] == "evt-web-1" and 0 <= scored["score"] <= 1 and scored["model_version"] == "1"
    assert model["version"] == "1" and model["gate"] == "passed"

    redis_settings = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[*overrides, "serving.store=redis", f"serving.redis_url={redis_url}"],
    )
    Materializer(
        redis_settings, spark, store=RedisStore(redis_url, redis_settings.serving), log=lambda _: None
    ).run()
    [line] = redis_block
    port = _free_port()
    process, ready = run_service(line)
    process.terminate()
    process.wait(timeout=60)
    assert ready["store"] == f"redis {redis_url}" and ready["generation"] >= 1


def test_serve_api_with_an_unreachable_store_is_one_line_and_exit_2(capsys):
    from medallion.cli import main

    code = main(
        ["serve", "api", "--set", "serving.store=redis", "--set", "serving.redis_url=redis://127.0.0.1:1/0"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: online store redis://127.0.0.1:1/0 ping failed") and "\n" not in err
    assert "redis-server" in err


def test_status_shows_online_requests_and_latencies(spark, scenario, monkeypatch, capsys):
    from medallion.cli import main
    from medallion.serving.stats import online_request_stats

    settings, _, _, landed, _ = scenario
    with _client(settings) as client:
        assert client.post("/score", json=next(iter(landed.values()))).status_code == 200
    [today] = online_request_stats(settings, spark, days=1)
    assert today.requests >= 1 and today.p99_ms >= today.p50_ms > 0 and "1" in today.model_versions.split(",")
    monkeypatch.setenv("MEDALLION__STORAGE__ROOT", settings.storage.root)
    monkeypatch.setenv("MEDALLION__STORAGE__TRACKING_URI", settings.storage.mlflow_tracking_uri)
    monkeypatch.setenv("MEDALLION__DELTA__ENGINE", "rs")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "online requests" in out and "gold.online_requests" in out


def test_the_run_report_shows_online_requests_hits_misses_and_latency(spark, scenario, paths):
    from medallion.report import RunReport
    from medallion.report.online import online_days
    from medallion.tables import Lakehouse

    settings, _, _, landed, _ = scenario
    with _client(settings) as client:
        answers = client.post("/score", json=[landed[eid] for eid in list(paths)[:20]])
    assert answers.status_code == 200, answers.text
    requests = Lakehouse(settings, spark).table("gold", "online_requests").read()
    days = online_days(requests)
    total = requests.count()
    assert days["requests"].sum() == total >= 20
    assert (days["precomputed"] + days["native"] + days["pyfunc"]).sum() == total
    section = RunReport(settings, spark).build()["online"]
    assert section.has_data and "<img" in section.body and 'id="online-days"' in section.body
    assert "no data yet" not in section.body
