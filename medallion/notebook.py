"""Helpers for notebooks that run both on Databricks and locally.

Usage (first cell of a notebook)::

    from medallion.notebook import NotebookContext
    ctx = NotebookContext.create(globals(), widgets={"env": "local", "date": "", "today": ""})
    ctx.settings, ctx.spark, ctx.widget("date")
    ctx.day()          # the ``date`` widget, else yesterday by the clock

A ``today`` widget pins the business day (``clock.today``) like the CLI's ``--today``.

On Databricks the widgets come from ``dbutils.widgets``; locally from environment
variables ``MEDALLION_WIDGET_<NAME>`` (what the notebook test sets), else the defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any

from medallion.clock import Clock
from medallion.config import Settings, load_settings
from medallion.errors import ConfigError
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
        if values.get("today"):
            overrides.append(f"clock.today={values['today']}")
        settings = load_settings(env=values.get("env") or None, overrides=overrides)
        return cls(values, settings, get_spark(settings))

    def widget(self, name: str) -> str:
        return self.values[name]

    def day(self, widget: str = "date") -> date:
        """The day a widget names (YYYY-MM-DD), else yesterday by the run's clock."""
        text = self.values.get(widget, "")
        if not text:
            return Clock.from_settings(self.settings).yesterday()
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"widget {widget} {text!r}: expected YYYY-MM-DD") from None

    def display(self, frame, namespace: dict[str, Any] | None = None) -> None:
        """Databricks' ``display`` when there is one, else a plain ``show``."""
        show = (namespace or {}).get("display")
        if show is not None:
            show(frame)
        else:
            frame.show(20, truncate=False)
