"""Shared fixtures: one SparkSession per test session, a fresh storage root per test."""

from __future__ import annotations

import itertools
import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
REPO = Path(__file__).resolve().parents[1]

# The suite starts a few hundred drivers (medallion commands, spark-submit jobs) that each live
# well under two minutes on a few thousand rows. For such a driver, C2's compilation of Spark's
# planner costs more CPU than it ever pays back, and the suite runs on 2 cores: its processes
# compile with C1 only (docs/performance.md, "Process start"). The shared in-process session
# below lives for the whole run and keeps the full JIT, which pays back there. medallion's
# commands take the option from their settings; spark-submit's drivers from SPARK_SUBMIT_OPTS
# (tests/deploy/test_jobs.py: clean_environ).
SHORT_DRIVER_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
os.environ.setdefault("MEDALLION__SPARK__DRIVER_JAVA_OPTIONS", SHORT_DRIVER_JAVA_OPTIONS)

# The suite's clock: every settings fixture pins clock.today to it, and tests build their
# dates from it, so the suite passes on any calendar day. MEDALLION_TEST_TODAY=YYYY-MM-DD runs
# the whole suite as of another day (a year end, a leap day).
TODAY = (
    date.fromisoformat(os.environ["MEDALLION_TEST_TODAY"])
    if os.environ.get("MEDALLION_TEST_TODAY")
    else date.today()
)
HISTORY_END = TODAY - timedelta(days=1)
CLOCK = f"clock.today={TODAY.isoformat()}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """The tests marked ``heavy`` (a minute or more each) start first on every xdist worker,
    so a run ends on short tests instead of one worker finishing a long one while the other
    waits. pytest-xdist's worksteal hands each worker a contiguous share of the collection
    (``len // workers`` each, the last taking the rest) and steals from a share's tail; the
    heavy tests go to the heads of the shares, module by module in turn. The order within
    each group stays pytest-randomly's."""
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    if not heavy:
        return
    light = [item for item in items if not item.get_closest_marker("heavy")]
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    sizes, left = [], len(items)
    for remaining in range(workers, 0, -1):
        sizes.append(left // remaining)
        left -= sizes[-1]
    # A module's heavy tests stay on one worker, so its module fixtures (a standalone
    # cluster) start once.
    modules: dict[str, list] = {}
    for item in heavy:
        modules.setdefault(item.module.__name__, []).append(item)
    groups = list(modules.values())
    # The trained lakehouse is built once per run, under a lock (see ``trained``): the second
    # share starts with a module that does not need it, so that worker works meanwhile.
    needing = [group for group in groups if any("trained" in item.fixturenames for item in group)]
    others = [group for group in groups if group not in needing]
    if workers > 1 and needing and others:
        groups = [needing[0], others[0], *[g for g in groups if g is not needing[0] and g is not others[0]]]
    shares: list[list] = [[] for _ in sizes]
    for n, module_items in enumerate(groups):
        shares[n % workers].extend(module_items)
    rest = iter(light)
    for share, size in zip(shares, sizes, strict=True):
        share.extend(itertools.islice(rest, max(size - len(share), 0)))
    ordered = [item for share in shares for item in share]
    items[:] = ordered + list(rest)


@pytest.fixture(scope="session")
def spark():
    """A real local SparkSession (local[2]) shared by every test of the run."""
    from medallion.config import load_settings
    from medallion.spark import get_spark

    settings = load_settings(env="local", environ={}, directory=REPO / "conf")
    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "lakehouse"
    root.mkdir()
    return root


@pytest.fixture(params=["rs", "spark"])
def delta_engine(request) -> str:
    """Both Delta engines: a module that marks ``usefixtures("delta_engine")`` runs each of
    its tests once per engine, through the ``settings`` and ``lake_with_champion`` fixtures."""
    return request.param


def engine_of(request) -> str:
    """The Delta engine this test runs on: its ``delta_engine`` parameter, else the embedded one."""
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get("delta_engine", "rs") if callspec else "rs"


@pytest.fixture
def settings(storage_root: Path, request):
    """Settings for the local env, rooted in this test's tmp dir, ignoring the caller's env vars."""
    from medallion.config import load_settings

    return load_settings(
        env="local",
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={storage_root}", CLOCK, f"delta.engine={engine_of(request)}"],
    )


def _trained_settings(root: Path):
    from medallion.config import load_settings

    return load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={root}", "datagen.cards=300", "model.train.max_iter=60", CLOCK],
    )


def _train_lake(spark, root: Path) -> str:
    """Eight generated days under ``root`` through ingest and features, one model trained and
    promoted; returns the promotion's one-line outcome."""
    from medallion.datagen import generate_history
    from medallion.features import FeatureStore
    from medallion.ingest import Ingestor
    from medallion.model.lifecycle import retrain_and_promote

    settings = _trained_settings(root)
    generate_history(settings, days=8, events_per_day=1500, end_date=HISTORY_END, progress=False)
    Ingestor(settings, spark).run_batch()
    store = FeatureStore(settings, spark)
    store.build(HISTORY_END - timedelta(days=7), HISTORY_END)
    store.refresh_training_set()
    return retrain_and_promote(spark, settings, store.table("training_set"))


@pytest.fixture(scope="session")
def trained(spark, tmp_path_factory):
    """Eight generated days through ingest and features; one good model trained and promoted.

    Shared by every test that needs a champion. Tests that move aliases or write tables use
    :func:`lake_with_champion`, which copies the registry into a fresh storage root.

    Under xdist the first worker to ask trains the lake once, under a file lock, in the run's
    shared temp folder; every worker then copies it into a root of its own, so the nights
    that tests run on it never meet another worker's. The copied registry still points at
    the experiment's artifacts in the shared folder: the champion's are only read, and a run
    logged from a copy writes a folder of its own there.
    """
    from medallion.features import FeatureStore

    root = tmp_path_factory.mktemp("trained") / "lake"
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import fcntl

        shared = tmp_path_factory.getbasetemp().parent / "trained"  # the run's, all workers'
        shared.mkdir(exist_ok=True)
        with open(shared / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            outcome_file = shared / "outcome.txt"
            if not outcome_file.exists():  # no worker has trained it yet, or one failed to
                shutil.rmtree(shared / "lake", ignore_errors=True)
                outcome_file.write_text(_train_lake(spark, shared / "lake"))
        shutil.copytree(shared / "lake", root)
        outcome = outcome_file.read_text()
    else:
        outcome = _train_lake(spark, root)
    settings = _trained_settings(root)
    return settings, FeatureStore(settings, spark), outcome


@pytest.fixture
def lake_with_champion(trained, storage_root: Path, request):
    """Settings for an empty lakehouse whose own MLflow registry already has the champion.

    The registry database is copied (model artifacts stay where training wrote them), so a
    test may promote, roll back or register versions without touching other tests.
    """
    from medallion.config import load_settings

    source, _, _ = trained
    registry = storage_root / "mlflow.db"
    shutil.copyfile(source.storage.root_path / "mlflow.db", registry)

    def make(*overrides: str):
        return load_settings(
            environ={},
            directory=REPO / "conf",
            overrides=[
                f"storage.root={storage_root}",
                f"storage.tracking_uri=sqlite:///{registry}",
                "datagen.cards=300",
                CLOCK,
                f"delta.engine={engine_of(request)}",
                *overrides,
            ],
        )

    return make


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A real single-node Kafka (KRaft) on a free loopback port, for the whole test session."""
    from medallion.kafka.broker import LocalBroker, free_port

    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), port=free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def kafka_topic(kafka_broker, request):
    """A fresh two-partition topic per test: no test reads another's records."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:200]
    kafka_broker.create_topic(name, partitions=2)
    return name
