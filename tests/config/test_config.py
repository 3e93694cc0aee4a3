"""Configuration: merge order, provenance, and one-line errors for bad conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.config import load_settings, parse_set
from medallion.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write_conf(directory: Path, base: str, **overlays: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "base.yaml").write_text(base)
    for name, text in overlays.items():
        (directory / f"{name}.yaml").write_text(text)
    return directory


def test_repository_conf_validates_for_every_env():
    for env in ("local", "databricks"):
        settings = load_settings(env=env, environ={}, directory=REPO / "conf")
        assert settings.env == env
    assert load_settings(env="databricks", environ={}, directory=REPO / "conf").delta.engine == "spark"


def test_merge_order_base_overlay_environment_set(tmp_path):
    conf = write_conf(
        tmp_path / "conf",
        "spark:\n  shuffle_partitions: 1\n  master: local[1]\nstream:\n  max_files_per_trigger: 5\n",
        local="spark:\n  shuffle_partitions: 2\n  master: local[2]\n",
    )
    environ = {
        "MEDALLION__SPARK__SHUFFLE_PARTITIONS": "3",
        "MEDALLION__STREAM__TRIGGER__KIND": "availableNow",
    }
    settings = load_settings(environ=environ, directory=conf, overrides=["spark.shuffle_partitions=4"])

    assert settings.spark.shuffle_partitions == 4  # --set beats the environment
    assert settings.stream.trigger.kind == "availableNow"  # environment beats base
    assert settings.spark.master == "local[2]"  # overlay beats base
    assert settings.stream.max_files_per_trigger == 5  # base beats defaults
    assert settings.provenance["spark.shuffle_partitions"] == "--set spark.shuffle_partitions"
    assert settings.provenance["stream.trigger.kind"] == "$MEDALLION__STREAM__TRIGGER__KIND"
    assert settings.provenance["spark.master"].endswith("local.yaml")
    assert settings.provenance["stream.max_files_per_trigger"].endswith("base.yaml")
    assert settings.provenance["model.name"] == "default"


def test_env_chosen_by_medallion_env_variable(tmp_path):
    conf = write_conf(tmp_path / "conf", "", staging="storage:\n  root: /data/staging\n")
    settings = load_settings(environ={"MEDALLION_ENV": "staging"}, directory=conf)
    assert settings.env == "staging"
    assert settings.storage.root == "/data/staging"


def test_set_parses_yaml_scalars_and_free_mapping_keys():
    settings = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[
            "spark.conf.spark.sql.ansi.enabled=true",
            "stream.trigger.kind=continuous",
            "model.decision_threshold=0.7",
            "datagen.cards=10",
        ],
    )
    assert settings.spark.conf["spark.sql.ansi.enabled"] == "true"
    assert settings.stream.trigger.interval is not None
    assert settings.model.decision_threshold == pytest.approx(0.7)
    assert settings.datagen.cards == 10


def test_trigger_interval_defaults_per_kind(tmp_path):
    conf = write_conf(tmp_path / "conf", "")
    assert load_settings(environ={}, directory=conf).stream.trigger.interval == "5 seconds"
    continuous = load_settings(environ={}, directory=conf, overrides=["stream.trigger.kind=continuous"])
    assert continuous.stream.trigger.interval == "1 second"
    assert (
        load_settings(
            environ={}, directory=conf, overrides=["stream.trigger.kind=availableNow"]
        ).stream.trigger.interval
        is None
    )


def test_storage_layout_under_root(tmp_path):
    settings = load_settings(environ={}, directory=REPO / "conf", overrides=[f"storage.root={tmp_path}"])
    storage = settings.storage
    assert storage.landing_events == str(tmp_path / "landing" / "events")
    assert storage.landing_labels == str(tmp_path / "landing" / "labels")
    assert storage.table_path("silver", "events") == str(tmp_path / "tables" / "silver" / "events")
    assert storage.checkpoint_path("score") == str(tmp_path / "checkpoints" / "score")
    assert storage.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_bad_value_names_key_value_and_allowed():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, directory=REPO / "conf", overrides=["stream.trigger.kind=bogus"])
    assert str(err.value).startswith(
        "stream.trigger.kind: 'bogus' is not one of processingTime, availableNow, once, continuous"
    )


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: 'many' is invalid"):
        load_settings(environ={}, directory=REPO / "conf", overrides=["spark.shuffle_partitions=many"])
    with pytest.raises(
        ConfigError, match=r"spark\.shuffle_partitions: 0 is invalid: input should be greater"
    ):
        load_settings(environ={}, directory=REPO / "conf", overrides=["spark.shuffle_partitions=0"])


def test_unknown_key_in_file_names_file_and_suggests(tmp_path):
    conf = write_conf(tmp_path / "conf", "stream:\n  triger:\n    kind: once\n")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, directory=conf)
    message = str(err.value)
    assert "base.yaml: unknown key 'stream.triger'" in message
    assert "did you mean 'stream.trigger'?" in message
    assert "\n" not in message


def test_unknown_key_from_environment_and_set():
    with pytest.raises(
        ConfigError,
        match=r"environment: unknown key 'spark\.shufle_partitions'; did you mean 'spark\.shuffle_partitions'",
    ):
        load_settings(environ={"MEDALLION__SPARK__SHUFLE_PARTITIONS": "2"}, directory=REPO / "conf")
    with pytest.raises(
        ConfigError, match=r"--set storage\.rot: unknown key 'storage\.rot'; did you mean 'storage\.root'"
    ):
        load_settings(environ={}, directory=REPO / "conf", overrides=["storage.rot=/x"])


def test_unknown_env_lists_known_ones():
    with pytest.raises(ConfigError, match=r"unknown env 'prod'.*known envs: databricks, local"):
        load_settings(env="prod", environ={}, directory=REPO / "conf")


def test_invalid_yaml_is_one_line(tmp_path):
    conf = write_conf(tmp_path / "conf", "spark: [unclosed\n")
    with pytest.raises(ConfigError, match=r"base\.yaml line \d+: not valid YAML"):
        load_settings(environ={}, directory=conf)


@pytest.mark.parametrize(
    ("option", "expected"),
    [("a.b=c", ("a.b", "c")), ("a.b=", ("a.b", "")), ("a.b=x=y", ("a.b", "x=y")), (" a.b =1", ("a.b", "1"))],
)
def test_parse_set(option, expected):
    assert parse_set(option) == expected


@pytest.mark.parametrize("option", ["novalue", "=x", ""])
def test_parse_set_rejects_malformed(option):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_set(option)


@pytest.mark.parametrize(
    "root",
    [
        "s3://bucket/lake",
        "abfss://c@acct.dfs.core.windows.net/lake/",
        "gs://bucket/lake",
        "dbfs:/lake",
        "/Volumes/main/fraud/lake",
    ],
)
def test_storage_uris_are_kept_as_given(root):
    settings = load_settings(environ={}, directory=REPO / "conf", overrides=[f"storage.root={root}"])
    base = root.rstrip("/")
    assert settings.storage.table_path("silver", "events") == f"{base}/tables/silver/events"
    assert settings.storage.checkpoint_path("score_events") == f"{base}/checkpoints/score_events"
    assert settings.storage.landing_events == f"{base}/landing/events"


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_names_that_become_paths_are_one_segment(name, tmp_path):
    from medallion.errors import ConfigError

    with pytest.raises(ConfigError, match=r"stream\.query_name"):
        load_settings(environ={}, directory=REPO / "conf", overrides=[f"stream.query_name={name}"])
    settings = load_settings(environ={}, directory=REPO / "conf", overrides=[f"storage.root={tmp_path}"])
    with pytest.raises(ConfigError, match="one path segment"):
        settings.storage.table_path("silver", name)


def test_a_password_inside_a_url_is_redacted_and_the_rest_shown():
    from medallion.config import load_settings

    settings = load_settings(
        "local",
        [
            "serving.redis_url=redis://:hunter2@127.0.0.1:6379/0",
            "storage.tracking_uri=https://bob:pw1@ml.example.com",
        ],
        environ={},
    )
    shown = settings.flat()
    assert shown["serving.redis_url"] == "redis://:***@127.0.0.1:6379/0"
    assert shown["storage.tracking_uri"] == "https://bob:***@ml.example.com"
    assert settings.serving.redis_url.endswith("hunter2@127.0.0.1:6379/0")  # the value itself is intact


def test_databricks_tracking_gets_a_workspace_experiment_and_no_file_artifact_uri():
    """Databricks refuses a relative experiment name and a file:// artifact location."""
    conf = REPO / "conf"
    settings = load_settings(env="databricks", environ={}, directory=conf)
    assert settings.storage.experiment == "/Shared/medallion"
    assert settings.storage.mlflow_artifact_location is None  # the workspace's artifact store
    on_volume = load_settings(
        env="databricks",
        environ={},
        directory=conf,
        overrides=["storage.artifact_root=/Volumes/main/ml/models"],
    )
    assert on_volume.storage.mlflow_artifact_location == "dbfs:/Volumes/main/ml/models"
    with pytest.raises(ConfigError, match=r"storage.experiment='medallion'.*set storage.experiment=/Shared/"):
        load_settings(
            env="databricks", environ={}, directory=conf, overrides=["storage.experiment=medallion"]
        )
    local = load_settings(env="local", environ={}, directory=conf)
    assert local.storage.experiment == "medallion"
    assert local.storage.mlflow_artifact_location.startswith("file://")
