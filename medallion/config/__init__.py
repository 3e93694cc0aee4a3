"""Typed settings: ``conf/base.yaml`` <- ``conf/<env>.yaml`` <- ``MEDALLION__*`` <- ``--set``.

Usage::

    from medallion.config import load_settings

    settings = load_settings(env="local", overrides=["stream.trigger.kind=availableNow"])
    settings.storage.table_path("silver", "events")   # '<root>/tables/silver/events'
    settings.stream.trigger.kind                      # 'availableNow'

Every value remembers the layer it came from (:attr:`Settings.provenance`), so
``medallion config show --explain`` can say why a value is what it is, and an error can
name the file that holds a bad key.
"""

from medallion.config.layering import conf_dir, load_settings, parse_set
from medallion.config.sections import ServingSettings, Settings, is_secret
from medallion.errors import ConfigError

__all__ = [
    "ConfigError",
    "ServingSettings",
    "Settings",
    "conf_dir",
    "is_secret",
    "load_settings",
    "parse_set",
]
