"""The compiled trees evaluated in Python, one row at a time: the online path's scorer.

Usage::

    scorer = RowScorer(native)                    # a NativeModel
    scorer({"log_amount": 3.2, "channel": "web", ...})   # the probability, as the pyfunc gives it

Each tree's leaf is added in the same order as the Spark expressions add them, so the sums
are the same; no Spark job and no numpy per request.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from medallion.model.native.expressions import NativeModel, Node


class RowScorer:
    """``scorer(row) -> probability`` for a mapping of feature columns, without Spark or numpy.

    The trees are flattened into tuples once: one row walks each tree from its root, about a
    hundred comparisons for a model of a few dozen trees."""

    def __init__(self, model: NativeModel) -> None:
        self.inputs = tuple(
            (spec.column, spec.codes, spec.null, spec.other) for spec in model.inputs
        )  # fmt: skip
        self.baseline = model.baseline
        self.trees = tuple(tuple(self._flat(node) for node in tree) for tree in model.trees)

    @staticmethod
    def _flat(node: Node) -> tuple:
        if node.is_leaf:
            return (True, node.value)
        if node.categorical:
            # missing_left: left unless a known category that goes right (null and unknown go left).
            goes = node.known_codes - node.left_codes if node.missing_left else node.left_codes
            return (
                False,
                node.feature,
                "cat_right" if node.missing_left else "cat_left",
                goes,
                node.left,
                node.right,
            )
        return (False, node.feature, "num", (node.threshold, node.missing_left), node.left, node.right)

    def encode(self, row: Mapping[str, Any]) -> list[float]:
        values = []
        for column, codes, null, other in self.inputs:
            value = row.get(column)
            if codes is None:
                values.append(math.nan if value is None else float(value))
            else:
                values.append(null if value is None else codes.get(value, other))
        return values

    def raw(self, row: Mapping[str, Any]) -> float:
        x = self.encode(row)
        total = self.baseline
        for tree in self.trees:
            node = tree[0]
            while not node[0]:
                _, feature, kind, test, left, right = node
                value = x[feature]
                if kind == "num":
                    threshold, missing_left = test
                    goes_left = value <= threshold or (missing_left and value != value)
                elif kind == "cat_left":
                    goes_left = value in test
                else:
                    goes_left = value not in test
                node = tree[left if goes_left else right]
            total += node[1]
        return total

    def __call__(self, row: Mapping[str, Any]) -> float:
        raw = self.raw(row)
        # 1 / (1 + exp(-raw)), as Spark evaluates it; exp overflows to inf, giving 0.0.
        try:
            return 1.0 / (1.0 + math.exp(-raw))
        except OverflowError:
            return 0.0
