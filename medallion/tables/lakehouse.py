"""The lakehouse's tables by layer and name, on the engine conf chose.

Usage::

    from medallion.tables import Lakehouse

    lake = Lakehouse(settings, spark)
    lake.engine                                    # 'rs'
    events = lake.open(SILVER_EVENTS)              # a medallion.catalog.TableSpec
    lake.table("silver", "events").read()
    lake.exists("gold", "features")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from medallion.config import Settings
from medallion.tables.engine import resolve_engine
from medallion.tables.table import Table

if TYPE_CHECKING:
    from pyspark.sql.types import StructType


class Lakehouse:
    """Delta tables under ``<storage.root>/tables/<layer>/<name>``."""

    def __init__(self, settings: Settings, spark) -> None:
        self.settings = settings
        self.spark = spark
        self.engine, self.engine_reason = resolve_engine(spark, settings)
        if self.engine == "rs":
            from medallion.tables.delta_rs.datasource import register

            # So spark.read/readStream.format("delta") work here as they do on Databricks.
            register(spark)

    def path(self, layer: str, name: str) -> str:
        return self.settings.storage.table_path(layer, name)

    def table(self, layer: str, name: str) -> Table:
        """The existing table; :class:`TableNotFoundError` naming its path if absent."""
        return Table.at(self.spark, self.path(layer, name), engine=self.engine)

    def create(
        self,
        layer: str,
        name: str,
        schema: StructType,
        partition_by: Sequence[str] = (),
        properties: dict[str, str] | None = None,
    ) -> Table:
        """Create the table, or return it if it already exists with this schema."""
        return Table.create(
            self.spark, self.path(layer, name), schema, partition_by, properties, engine=self.engine
        )

    def open(self, spec) -> Table:
        """The table a :class:`medallion.catalog.TableSpec` declares, created if absent (its
        declared columns added if it lacks them; another schema is refused)."""
        if spec.schema is None:
            raise ValueError(f"{spec.id} takes its schema from its first rows: create it with those")
        return self.create(spec.layer, spec.name, spec.schema, spec.partition_by)

    def exists(self, layer: str, name: str) -> bool:
        return Table.exists(self.spark, self.path(layer, name), engine=self.engine)

    def __repr__(self) -> str:
        return f"Lakehouse({self.settings.storage.root!r}, engine={self.engine!r})"
