"""The Databricks asset bundle points at code that exists and options the CLI accepts.

The Databricks CLI cannot deploy from here; what can break without a workspace is checked:
every task's file exists, its parameters parse, dependencies form the nightly chain, and
the `databricks` conf overlay validates.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from medallion.cli import main
from medallion.config import load_settings
from tests.conftest import REPO


def bundle_tasks() -> dict[str, list[dict]]:
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())
    jobs: dict[str, list[dict]] = {}
    for pattern in bundle["include"]:
        for path in sorted(REPO.glob(pattern)):
            for name, job in yaml.safe_load(path.read_text())["resources"]["jobs"].items():
                jobs[name] = [{**task, "_dir": path.parent} for task in job["tasks"]]
    return jobs


def job_command(job_file: Path) -> str:
    """The `medallion` command a jobs/ entry point runs."""
    match = re.search(r'main\(\["([a-z-]+)"', job_file.read_text())
    assert match, f"{job_file} does not call medallion.cli.main"
    return match.group(1)


def test_the_nightly_job_chains_ingest_train_batch_reconcile_on_a_cron():
    nightly = yaml.safe_load((REPO / "resources" / "nightly.yml").read_text())["resources"]["jobs"][
        "medallion_nightly"
    ]
    assert nightly["schedule"]["quartz_cron_expression"].split()[:3] == ["0", "0", "2"]
    order = {t["task_key"]: [d["task_key"] for d in t.get("depends_on", [])] for t in nightly["tasks"]}
    assert order == {
        "ingest": [],
        "train_validate": ["ingest"],
        "batch": ["train_validate"],
        "reconcile": ["batch"],
    }
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
    assert main([job_command(job_file), *parameters, "--help"]) == 0, capsys.readouterr().err


def test_the_databricks_overlay_validates():
    settings = load_settings(env="databricks", environ={}, directory=REPO / "conf")
    assert settings.delta.engine == "spark"
    assert settings.storage.root.startswith("/Volumes/")
    assert settings.storage.tracking_uri == "databricks"
