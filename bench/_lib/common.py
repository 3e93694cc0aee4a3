"""What several benchmarks share: settings in a scratch root and a quickly trained champion."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


def settings_for(root: Path, registry: Path | None = None, *extra: str):
    """Settings rooted at ``root``; ``registry`` points MLflow at another root's database."""
    from medallion.config import load_settings

    overrides = [f"storage.root={root}", "datagen.cards=2000", *extra]
    if registry is not None:
        overrides.append(f"storage.tracking_uri=sqlite:///{registry}")
    return load_settings(environ={}, directory=REPO / "conf", overrides=overrides)


def train_champion(spark, root: Path, days: int = 5, events_per_day: int = 1000) -> Path:
    """A small history ending yesterday, a trained and promoted champion; returns the registry db."""
    from medallion.datagen import generate_history
    from medallion.features import FeatureStore
    from medallion.ingest import Ingestor
    from medallion.model.lifecycle import retrain_and_promote

    settings = settings_for(root, None, "model.train.max_iter=40")
    end = datetime.now(UTC).date() - timedelta(days=1)
    generate_history(settings, days=days, events_per_day=events_per_day, end_date=end, progress=False)
    Ingestor(settings, spark).run_batch()
    store = FeatureStore(settings, spark)
    store.build(end - timedelta(days=days - 1), end)
    store.refresh_training_set()
    print(f"  {retrain_and_promote(spark, settings, store.table('training_set'))}", flush=True)
    return settings.storage.root_path / "mlflow.db"


#: :func:`register_champion_copy` copies the champion's own gate record.
COPY_GATE = "copy"


def register_champion_copy(settings, alias: str | None = "challenger", gate: str | None = COPY_GATE) -> str:
    """A new registry version of the champion's artifacts; returns its number.

    ``gate``: :data:`COPY_GATE` copies the champion's gate record (a checked version, as a
    real promotion gives), a string sets that verdict ("passed", "failed"), None leaves the
    version ungated. ``alias``: moved to the new version unless None.
    """
    import mlflow

    from medallion.model.registry import version_for
    from medallion.model.tracking import configure

    configure(settings)
    client = mlflow.MlflowClient()
    name = settings.model.name
    current = client.get_model_version(name, version_for(settings, "champion"))
    new = client.create_model_version(name, current.source, run_id=current.run_id)
    if gate == COPY_GATE:
        for key in ("gate", "gate_reasons"):
            if key in current.tags:
                client.set_model_version_tag(name, new.version, key, current.tags[key])
    elif gate is not None:
        client.set_model_version_tag(name, new.version, "gate", gate)
    if alias is not None:
        client.set_registered_model_alias(name, alias, new.version)
    return str(new.version)
