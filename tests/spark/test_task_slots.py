"""``task_slots``: how many tasks a session runs at once, which scoring sizes its tasks by."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from medallion.spark import task_slots


@pytest.mark.parametrize(
    ("master", "slots"),
    [
        ("local", 1),
        ("local[2]", 2),
        ("local[8]", 8),
        ("local[3, 4]", 3),  # local[threads, maxFailures]
        ("local[*]", os.cpu_count()),
        ("spark://head:7077", 16),
        ("yarn", 16),
        ("local-cluster[2,1,1024]", 16),
    ],
)
def test_a_local_master_counts_its_threads_a_cluster_its_default_parallelism(master, slots):
    # medallion sets spark.default.parallelism to the shuffle partitions: on local[2] that is
    # 4, and four scoring tasks on two cores load the model twice per core.
    context = SimpleNamespace(master=master, defaultParallelism=16)
    assert task_slots(context) == slots


def test_the_test_session_has_two_slots_whatever_its_default_parallelism(spark):
    assert spark.sparkContext.master == "local[2]"
    assert task_slots(spark.sparkContext) == 2
