"""The champion as the online service holds it: checked before it serves, swapped when the alias moves.

Usage::

    from medallion.serving.champion import ChampionWatcher

    watcher = ChampionWatcher(settings)
    watcher.refresh()            # resolve the alias; load and check a version not seen yet
    watcher.start()              # ...and again every serving.poll_seconds, in a thread
    champion = watcher.current   # None until a version passed its checks
    champion.version, champion.model.predict(frame)

A version is loaded with :func:`medallion.model.scoring.check_model` (signature, smoke
prediction and whatever else that check holds) before it replaces the one serving; a version
that fails keeps the previous one serving and is reported by :attr:`ChampionWatcher.problem`.
Requests take :attr:`current` once, so one request is scored and keyed by one version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from medallion.config import Settings
from medallion.errors import MedallionError


@dataclass(frozen=True)
class Champion:
    """A checked, loaded champion version and what ``GET /model`` says about it."""

    name: str
    version: str
    alias: str
    model: Any
    info: dict[str, Any] = field(default_factory=dict)
    #: The in-process tree evaluator when ``model.scoring`` chose it and its parity held.
    row_scorer: Any = None
    path_note: str = ""

    @property
    def scored_by(self) -> str:
        return "native" if self.row_scorer is not None else "pandas_udf"


def describe_version(settings: Settings, version: str) -> dict[str, Any]:
    """Gate metrics, training data version and when the version became champion, from the registry."""
    from medallion.model.registry import _client

    client = _client(settings)
    name = settings.model.name
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    metrics = run.data.metrics
    since = None
    try:
        from medallion.model.registry import champion_history

        changes = [c for c in champion_history(settings) if str(c.version) == str(version)]
        since = changes[-1].at if changes else None
    except (ImportError, AttributeError):
        pass
    return {
        "name": name,
        "version": str(version),
        "alias": settings.model.aliases.champion,
        "run_id": mv.run_id,
        "gate": mv.tags.get("gate"),
        "gate_reasons": mv.tags.get("gate_reasons"),
        "forced_reason": mv.tags.get("forced_reason"),
        "gate_metrics": {k.removeprefix("gate_"): v for k, v in metrics.items() if k.startswith("gate_")},
        "training_metrics": {k: v for k, v in metrics.items() if not k.startswith("gate_")},
        "training_table_version": run.data.tags.get("training_table_version") or None,
        "registered_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat(),
        "champion_since": since,
    }


class ChampionWatcher:
    """Holds the checked champion; :meth:`start` polls the alias every ``serving.poll_seconds``."""

    def __init__(self, settings: Settings, log=print) -> None:
        self.settings = settings
        self.log = log
        self._current: Champion | None = None
        self.problem: str | None = None
        self.checked_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Champion | None:
        return self._current

    def refresh(self) -> Champion | None:
        """Resolve the alias; load and check the version if it is not the one serving."""
        from medallion.model.registry import version_for
        from medallion.model.scoring import check_model

        with self._lock:
            alias = self.settings.model.aliases.champion
            try:
                version = version_for(self.settings, alias)
                if self._current is None or self._current.version != version:
                    model = check_model(self.settings, version)
                    info = describe_version(self.settings, version)
                    row_scorer, note = self._row_scorer(version, model)
                    previous = self._current
                    self._current = Champion(
                        self.settings.model.name, version, alias, model, info, row_scorer, note
                    )
                    was = f" (was v{previous.version})" if previous else ""
                    path = f"scored by {self._current.scored_by}" + (f": {note}" if note else "")
                    self.log(f"[serve] champion is {self.settings.model.name} v{version}{was}, {path}")
                self.problem = None
            except MedallionError as exc:
                keeping = f"; v{self._current.version} keeps serving" if self._current else ""
                if self.problem != str(exc):
                    self.log(f"[serve] champion not loaded: {exc}{keeping}")
                self.problem = str(exc)
            self.checked_at = time.time()
            return self._current

    def _row_scorer(self, version: str, model) -> tuple[Any, str]:
        """model.scoring native or auto: the tree evaluator if its scores equal the pyfunc's on
        the version's held-out rows (as the batch's and the stream's must); else the pyfunc."""
        scoring = self.settings.model.scoring
        if scoring == "pandas_udf":
            return None, ""
        from medallion.model.native import load_row_scorer

        scorer, note = load_row_scorer(self.settings, version, model)
        if scorer is None:
            return None, f"model.scoring={scoring}: {note}; scoring with the pyfunc"
        return scorer, ""

    def start(self) -> None:
        if self._thread is not None:
            return

        def poll() -> None:
            while not self._stop.wait(self.settings.serving.poll_seconds):
                try:
                    self.refresh()
                except Exception as exc:  # a registry hiccup must not end the polling
                    self.problem = f"{type(exc).__name__}: {exc}"

        self._thread = threading.Thread(target=poll, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
