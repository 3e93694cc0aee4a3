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
    from medallion.featurestore import FeatureStore
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
