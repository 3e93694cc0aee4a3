"""``session_conf``: SQL confs set for a block of actions, and what is left when it ends."""

from __future__ import annotations

import threading

import pytest

from medallion.spark import session_conf


def test_session_conf_restores_what_was_there(spark):
    key, unset_key = "spark.sql.shuffle.partitions", "spark.sql.optimizer.windowGroupLimitThreshold"
    before = spark.conf.get(key)
    spark.conf.unset(unset_key)
    with session_conf(spark, {key: "7", unset_key: "-1"}):
        assert (spark.conf.get(key), spark.conf.get(unset_key)) == ("7", "-1")
    assert spark.conf.get(key) == before
    assert spark.conf.get(unset_key) != "-1"  # back to Spark's default
    with pytest.raises(RuntimeError), session_conf(spark, {key: "9"}):
        raise RuntimeError("the block failed")
    assert spark.conf.get(key) == before


def test_overlapping_session_conf_blocks_restore_what_was_there_before_the_first(spark):
    """Two streams' batches (threads) each inside a block: neither leaves its value behind."""
    key = "spark.sql.inMemoryColumnarStorage.compressed"
    spark.conf.unset(key)
    default = spark.conf.get(key)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []

    def first() -> None:
        with session_conf(spark, {key: "false"}):
            first_in.set()
            second_in.wait(30)
        first_out.set()

    def second() -> None:
        first_in.wait(30)
        with session_conf(spark, {key: "false"}):
            second_in.set()
            first_out.wait(30)
            seen.append(spark.conf.get(key))  # the first block ended: ours still holds

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen == ["false"]
    assert spark.conf.get(key) == default
    with session_conf(spark, {key: "false"}), session_conf(spark, {key: "false"}):
        pass
    assert spark.conf.get(key) == default
