"""Features: one definition for training, the night and the stream, and the gold tables built from it.

Usage::

    from medallion.features import FeatureStore, build_features

    features = build_features(silver_events, card_profiles)   # a pure DataFrame function
    FeatureStore(settings, spark).build(date(2026, 11, 20))   # gold profiles and features of a day

Modules: :mod:`~medallion.features.definition` (the feature columns, on a join or a
map-only profile lookup), :mod:`~medallion.features.gold` (card profiles strictly before
their day, the labelled training set), :mod:`~medallion.features.store` (the gold tables
written for a day or a range).
"""

from medallion.features.definition import (
    PROFILE_COLUMNS,
    build_features,
    feature_math,
    profile_lookup_features,
)
from medallion.features.gold import PROFILE_WINDOW_DAYS, card_profiles, training_set
from medallion.features.store import DayBuild, FeatureStore

__all__ = [
    "PROFILE_COLUMNS",
    "PROFILE_WINDOW_DAYS",
    "DayBuild",
    "FeatureStore",
    "build_features",
    "card_profiles",
    "feature_math",
    "profile_lookup_features",
    "training_set",
]
