"""Population stability index: how far one sample's distribution has moved from a reference.

Example::

    psi(training_scores, todays_scores)    # 0.02 stable, 0.3 shifted

    edges = quantile_edges(reference, 10)  # the same bins over counts aggregated elsewhere (Spark)
    psi_from_counts(np.bincount(bin_index(reference, edges), minlength=edges.size + 1), counts)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: PSI rule of thumb: below MODERATE the population is stable, above MAJOR it has shifted.
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
PSI_EPSILON = 1e-4


def quantile_edges(expected: np.ndarray | pd.Series | Sequence[float], bins: int = 10) -> np.ndarray:
    """The inner bin edges of ``bins`` quantile bins of ``expected`` (tied edges merged).

    A value ``v`` falls in bin ``i`` = the number of edges strictly below it, so the bins are
    ``(-inf, e0], (e0, e1], ..., (e_last, inf)``.
    """
    values = _numeric(expected)
    if bins < 1:
        raise ValueError(f"psi needs at least one bin, got bins={bins}")
    if values.size == 0:
        return np.array([], dtype="float64")
    inner = np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def bin_index(values: np.ndarray | pd.Series | Sequence[float], edges: np.ndarray) -> np.ndarray:
    """The quantile bin of each value: how many ``edges`` lie strictly below it."""
    return np.searchsorted(np.asarray(edges, dtype="float64"), _numeric(values), side="left")


def psi_from_counts(
    expected_counts: Sequence[float] | np.ndarray,
    actual_counts: Sequence[float] | np.ndarray,
    epsilon: float = PSI_EPSILON,
) -> float:
    """PSI of two histograms over the same bins: ``sum((a - e) * ln(a / e))`` on proportions.

    An empty bin counts as ``epsilon`` of its population, so the index stays finite. NaN if
    either histogram is empty.
    """
    e = np.asarray(expected_counts, dtype="float64")
    a = np.asarray(actual_counts, dtype="float64")
    if e.shape != a.shape:
        raise ValueError(f"histograms differ in bins: {e.shape} vs {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    e = np.clip(e / e.sum(), epsilon, None)
    a = np.clip(a / a.sum(), epsilon, None)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(
    expected: np.ndarray | pd.Series | Sequence[Any],
    actual: np.ndarray | pd.Series | Sequence[Any],
    bins: int = 10,
) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Numeric samples are cut into ``bins`` quantile bins of ``expected`` (deciles by default,
    so each bin holds about a tenth of the reference); non-numeric ones get one bin per
    category of ``expected`` plus one for categories it never saw. Missing values are
    dropped, and an empty bin counts as :data:`PSI_EPSILON` of its population.

    Read it as: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.

    Example::

        rng = np.random.default_rng(0)
        psi(rng.normal(size=10_000), rng.normal(size=10_000))          # ~0.001
        psi(rng.normal(size=10_000), rng.normal(1.0, size=10_000))     # ~0.9
    """
    e_series, a_series = pd.Series(np.asarray(expected)), pd.Series(np.asarray(actual))
    if pd.api.types.is_numeric_dtype(e_series) and pd.api.types.is_numeric_dtype(a_series):
        e_values, a_values = _numeric(e_series), _numeric(a_series)
        edges = quantile_edges(e_values, bins)
        width = edges.size + 1
        return psi_from_counts(
            np.bincount(bin_index(e_values, edges), minlength=width),
            np.bincount(bin_index(a_values, edges), minlength=width),
        )
    e_counts = e_series.dropna().astype(str).value_counts()
    a_counts = a_series.dropna().astype(str).value_counts()
    return psi_from_counts(*aligned_categories(e_counts.to_dict(), a_counts.to_dict()))


def aligned_categories(
    expected: dict[str, float], actual: dict[str, float]
) -> tuple[list[float], list[float]]:
    """Counts per category of ``expected``, plus one bin for categories only ``actual`` has."""
    categories = sorted(expected)
    unseen = sum(count for name, count in actual.items() if name not in expected)
    return (
        [expected[name] for name in categories] + [0.0],
        [actual.get(name, 0.0) for name in categories] + [unseen],
    )


def _numeric(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype="float64").ravel()
    return array[~np.isnan(array)]
