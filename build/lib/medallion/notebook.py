"""Helpers for notebooks that run both on Databricks and locally.

Usage (first cell of a notebook)::

    from medallion.notebook import NotebookContext
    ctx = NotebookContext.create(globals(), widgets={"env": "local", "date": ""})
    ctx.settings, ctx.spark, ctx.widget("date")

On Databricks the widgets come from ``dbutils.widgets``; locally from environment
variables ``MEDALLION_WIDGET_<NAME>`` (what the notebook test sets), else the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from medallion.config import Settings, load_settings
from medallion.spark import get_spark


@dataclass
class NotebookContext:
    values: dict[str, str]
    settings: Settings
    spark: Any

    @classmethod
    def create(cls, namespace: dict[str, Any], widgets: dict[str, str]) -> NotebookContext:
        dbutils = namespace.get("dbutils")
        values = {}
        for name, default in widgets.items():
            if dbutils is not None:
                dbutils.widgets.text(name, default)
                values[name] = dbutils.widgets.get(name)
            else:
                values[name] = os.environ.get(f"MEDALLION_WIDGET_{name.upper()}", default)
        overrides = [item for item in values.get("set", "").split(";") if item.strip()]
        settings = load_settings(env=values.get("env") or None, overrides=overrides)
        return cls(values, settings, get_spark(settings))

    def widget(self, name: str) -> str:
        return self.values[name]

    def display(self, frame, namespace: dict[str, Any] | None = None) -> None:
        """Databricks' ``display`` when there is one, else a plain ``show``."""
        show = (namespace or {}).get("display")
        if show is not None:
            show(frame)
        else:
            frame.show(20, truncate=False)
