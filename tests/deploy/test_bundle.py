"""The Databricks asset bundle: its nightly chain runs, and its tasks point at real code.

The Databricks CLI cannot deploy from here. What the bundle would do is run here instead:
the nightly task list, in its depends_on order with its parameters, each task's python_file
under the real spark-submit, with ``--env databricks`` swapped for a local env on a fresh
storage root; a first night on an empty registry, then a second night with new data.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from medallion.cli import main
from medallion.config import load_settings
from tests.conftest import HISTORY_END, REPO, TODAY
from tests.deploy.test_jobs import clean_environ, spark_submit


def bundle_tasks() -> dict[str, list[dict]]:
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())
    jobs: dict[str, list[dict]] = {}
    for pattern in bundle["include"]:
        for path in sorted(REPO.glob(pattern)):
            for name, job in yaml.safe_load(path.read_text())["resources"]["jobs"].items():
                jobs[name] = [{**task, "_dir": path.parent} for task in job["tasks"]]
    return jobs


def nightly() -> dict:
    return yaml.safe_load((REPO / "resources" / "nightly.yml").read_text())["resources"]["jobs"][
        "medallion_nightly"
    ]


def in_order(tasks: list[dict]) -> list[dict]:
    """The tasks as the scheduler runs them: each after everything it depends on."""
    done: list[dict] = []
    waiting = list(tasks)
    while waiting:
        ready = [
            t
            for t in waiting
            if {d["task_key"] for d in t.get("depends_on", [])} <= {d["task_key"] for d in done}
        ]
        assert ready, f"depends_on forms a cycle or names a missing task: {[t['task_key'] for t in waiting]}"
        done += ready
        waiting = [t for t in waiting if t not in ready]
    return done


def job_command(job_file: Path) -> list[str]:
    """The `medallion` command (with its fixed options) a jobs/ entry point runs."""
    match = re.search(r"main\(\[((?:\"[a-z-]+\", )+)\*sys\.argv", job_file.read_text())
    assert match, f"{job_file} does not call medallion.cli.main"
    return re.findall(r'"([a-z-]+)"', match.group(1))


def test_the_nightly_job_chains_every_stage_on_a_cron():
    job = nightly()
    assert job["schedule"]["quartz_cron_expression"].split()[:3] == ["0", "0", "2"]
    order = [t["task_key"] for t in in_order(job["tasks"])]
    assert order == [
        "ingest",
        "features",
        "train",
        "validate_promote",
        "batch",
        "reconcile",
        "materialize",
    ]
    assert "medallion_stream" in bundle_tasks()


@pytest.mark.parametrize(
    ("job", "task"),
    [(job, task) for job, tasks in bundle_tasks().items() for task in tasks],
    ids=lambda value: value if isinstance(value, str) else value["task_key"],
)
def test_every_task_runs_a_job_file_whose_parameters_parse(job, task, capsys):
    job_file = (task["_dir"] / task["spark_python_task"]["python_file"]).resolve()
    assert job_file.is_file(), f"{job}.{task['task_key']}: {job_file} does not exist"
    assert job_file.parent == REPO / "jobs"
    parameters = task["spark_python_task"].get("parameters", [])
    # --help after the parameters: click parses (and rejects unknown) options first.
    assert main([*job_command(job_file), *parameters, "--help"]) == 0, capsys.readouterr().err


def test_the_databricks_overlay_validates():
    settings = load_settings(env="databricks", environ={}, directory=REPO / "conf")
    assert settings.delta.engine == "spark"
    assert settings.storage.root.startswith("/Volumes/")
    assert settings.storage.tracking_uri == "databricks"


# Databricks runs a job's tasks on one job cluster; here one spark-submit (one JVM, one driver)
# runs each task's python_file in turn as __main__ with its parameters, stopping at the first
# task that exits non-zero. tests/deploy/test_readme_commands.py runs the jobs one spark-submit each.
CHAIN = """
import runpy, sys
for key, path, *parameters in (line.split("\\t") for line in sys.argv[1].splitlines()):
    print(f"=== task {key}", flush=True)
    sys.argv = [path, *parameters]
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as done:
        if done.code:
            print(f"=== task {key} exited {done.code}", flush=True)
            raise
"""


def run_night(root: Path, today, script: Path) -> dict[str, str]:
    """The nightly task list under one spark-submit, in order; returns each task's stdout."""
    job = nightly()
    cluster_env = {
        k: ("local" if v == "databricks" else v)
        for cluster in job.get("job_clusters", [])
        for k, v in cluster["new_cluster"].get("spark_env_vars", {}).items()
    }
    env = clean_environ(
        **cluster_env,
        MEDALLION__STORAGE__ROOT=str(root),
        MEDALLION__CLOCK__TODAY=today.isoformat(),
        MEDALLION__DELTA__ENGINE="rs",
        MEDALLION__MODEL__TRAIN__MAX_ITER="60",
    )
    lines = []
    for task in in_order(job["tasks"]):
        python_file = (REPO / "resources" / task["spark_python_task"]["python_file"]).resolve()
        parameters = " ".join(task["spark_python_task"].get("parameters", []))
        parameters = parameters.replace("--env databricks", "--env local").split()
        lines.append("\t".join([task["task_key"], str(python_file), *parameters]))
    script.write_text(CHAIN)
    result = spark_submit(script, "\n".join(lines), env=env)
    assert result.returncode == 0, f"night of {today}\n" + result.stdout[-4000:] + result.stderr[-3000:]
    outputs = dict(re.findall(r"=== task (\w+)\n(.*?)(?==== task |\Z)", result.stdout, re.S))
    assert list(outputs) == [t["task_key"] for t in in_order(job["tasks"])], result.stdout[-3000:]
    return outputs


def delta_rows(root: Path, layer: str, name: str, day):
    from deltalake import DeltaTable

    frame = DeltaTable(str(root / "tables" / layer / name)).to_pandas()
    return frame[frame["event_date"] == day]


@pytest.mark.heavy
def test_the_nightly_chain_runs_from_an_empty_registry_then_again_with_a_champion(tmp_path):
    from mlflow import MlflowClient

    from medallion.datagen import generate_history

    root = tmp_path / "lake"
    settings = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={root}", "datagen.cards=300", f"clock.today={TODAY}"],
    )
    uri = settings.storage.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # not the registry an earlier test set
    generate_history(settings, days=5, events_per_day=500, end_date=HISTORY_END, progress=False)

    first = run_night(root, TODAY, tmp_path / "chain.py")
    assert "champion is now v1" in first["validate_promote"], first["validate_promote"]
    assert str(client.get_model_version_by_alias("fraud_model", "champion").version) == "1"
    silver = delta_rows(root, "silver", "events", HISTORY_END)
    scored = delta_rows(root, "gold", "predictions_batch", HISTORY_END)
    assert len(scored) == len(silver) > 400
    assert set(scored["model_version"]) == {"1"}
    assert len(delta_rows(root, "gold", "predictions", HISTORY_END)) == len(silver)

    # The next day lands; the night after, a champion exists and the new challenger is gated against it.
    generate_history(settings, days=1, events_per_day=500, end_date=TODAY, seed=43, progress=False)
    second = run_night(root, TODAY + timedelta(days=1), tmp_path / "chain.py")
    verdict = second["validate_promote"]
    assert "challenger v2 " in verdict
    champion = str(client.get_model_version_by_alias("fraud_model", "champion").version)
    if "FAILED" in verdict:
        assert champion == "1" and "champion v1 keeps serving" in verdict, verdict
    else:
        assert champion == "2" and "champion is now v2" in verdict, verdict
    silver = delta_rows(root, "silver", "events", TODAY)
    scored = delta_rows(root, "gold", "predictions_batch", TODAY)
    assert len(scored) == len(silver) > 400
    assert set(scored["model_version"]) == {champion}
    assert len(delta_rows(root, "gold", "predictions", TODAY)) == len(silver)


def test_validate_promote_keeps_the_champion_serving_when_the_challenger_fails(
    trained, lake_with_champion, tmp_path, capsys
):
    """jobs/validate_promote.py's command: a failed gate is exit 0 while a champion serves, and
    one line, exit 2, when nothing would serve."""
    import shutil

    from medallion.model.registry import version_for
    from medallion.model.train import train

    source, store, _ = trained
    for settings in (lake_with_champion("model.train.max_iter=60"), None):
        if settings is None:  # an empty registry
            root = tmp_path / "fresh"
            settings = load_settings(
                environ={},
                directory=REPO / "conf",
                overrides=[f"storage.root={root}", "model.train.max_iter=60", f"clock.today={TODAY}"],
            )
        shutil.copytree(
            source.storage.table_path("gold", "training_set"),
            settings.storage.table_path("gold", "training_set"),
        )
        challenger = train(settings, store.table("training_set").read(), shuffle_labels=True).version
        command = [
            *job_command(REPO / "jobs" / "validate_promote.py"),
            "--set",
            f"storage.root={settings.storage.root}",
        ]
        command += ["--set", f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}"]
        capsys.readouterr()  # what training printed
        code = main(command)
        out, err = capsys.readouterr()
        assert f"challenger v{challenger} FAILED: " in out, (code, out, err)
        if challenger == "1":
            assert code == 2
            assert err.startswith("error: fraud_model v1 failed the gate and no champion keeps serving")
            assert len(err.strip().splitlines()) == 1, err
        else:
            assert code == 0, err
            assert f"champion v1 keeps serving; v{challenger} stays the challenger" in out
            assert version_for(settings, "champion") == "1"
