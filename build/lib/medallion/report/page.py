"""The HTML page: sections, the self-contained document around them, and the helpers that fill them.

Example::

    body = html_table(["table", "rows"], [("silver.events", 42)], numeric={1}) + img(figure, "rows")
    report = Report(datetime.now(UTC), root, "spark", (Section("layers", "Layers", body, True),))
    report.write()                     # <root>/reports/run-<UTC timestamp>.html

Charts are matplotlib figures made by :func:`figure` (no pyplot, no GUI backend) and inlined
as base64 PNG; the CSS is inline too, so the file needs nothing beside it.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Section:
    """One ``<section>`` of the page: its id, ``<h2>`` title and inner HTML."""

    id: str
    title: str
    body: str
    has_data: bool

    def html(self) -> str:
        return f'<section id="{self.id}">\n<h2>{html.escape(self.title)}</h2>\n{self.body}\n</section>'


@dataclass(frozen=True)
class Report:
    """A built report: :meth:`html` renders it, :meth:`write` saves it as one file."""

    created_at: datetime
    storage_root: Path
    engine: str
    sections: tuple[Section, ...]

    def __getitem__(self, section_id: str) -> Section:
        for section in self.sections:
            if section.id == section_id:
                return section
        raise KeyError(f"no section {section_id!r}: the report has {', '.join(s.id for s in self.sections)}")

    @property
    def file_name(self) -> str:
        return f"run-{self.created_at.astimezone(UTC):%Y%m%dT%H%M%SZ}.html"

    def html(self) -> str:
        created = f"{self.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        nav = " · ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in self.sections)
        body = "\n".join(section.html() for section in self.sections)
        return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>medallion run report {html.escape(created)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>medallion run report</h1>
<p class="meta">created {html.escape(created)} · storage root <code>{html.escape(str(self.storage_root))}</code>
 · Delta engine <code>{html.escape(self.engine)}</code></p>
<nav>{nav}</nav>
</header>
<main>
{body}
</main>
</body>
</html>
"""

    def write(self, directory: str | Path | None = None) -> Path:
        """Write ``run-<UTC timestamp>.html`` into ``directory`` (default ``<storage.root>/reports``)."""
        folder = Path(directory) if directory is not None else self.storage_root / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.file_name
        path.write_text(self.html(), encoding="utf-8")
        return path


def empty(section_id: str, title: str, hint: str) -> Section:
    """A section without data: one "no data yet" line saying what to run."""
    return Section(section_id, title, no_data(hint), False)


def no_data(hint: str) -> str:
    return f'<p class="no-data">no data yet: {hint}</p>'


def fmt(value: Any) -> str:
    """A number for a table cell: 4 significant digits, thousands separated, ``-`` for None/NaN."""
    if value is None:
        return "-"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def html_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    numeric: Collection[int] = (),
    table_id: str | None = None,
    raw: bool = False,
) -> str:
    """A ``<table>``; cells are escaped unless ``raw`` (cells then are trusted HTML we built)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = str(cell) if raw else html.escape(str(cell))
            cells.append(f'<td class="num">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(width: float, height: float, rows: int = 1, cols: int = 1, **kwargs: Any):
    """A matplotlib Figure without pyplot: no global state, no GUI backend."""
    from matplotlib.figure import Figure

    chart = Figure(figsize=(width, height), layout="constrained")
    axes = chart.subplots(rows, cols, squeeze=False, **kwargs)
    return chart, axes


def img(chart, alt: str) -> str:
    """An ``<img>`` holding the figure as an inline PNG."""
    buffer = io.BytesIO()
    chart.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return img_bytes(buffer.getvalue(), alt)


def img_bytes(png: bytes, alt: str) -> str:
    """An ``<img>`` holding PNG bytes inline (base64)."""
    encoded = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #263238; color: #eceff1; padding: 16px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header a { color: #80cbc4; margin-right: 4px; }
header code { color: #fff; }
main { padding: 8px 32px 32px; max-width: 1200px; }
section { background: #fff; border: 1px solid #e0e0e0; border-radius: 6px; margin: 16px 0; padding: 8px 20px 16px; }
h2 { border-bottom: 1px solid #eee; padding-bottom: 4px; }
h3 { font-size: 15px; margin-top: 20px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: left; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; margin: 6px 8px 6px 0; vertical-align: top; }
code { background: #f1f1f1; padding: 0 3px; border-radius: 3px; }
.no-data { color: #8d6e63; font-style: italic; }
.psi-stable { color: #2e7d32; }
.psi-moderate { color: #ef6c00; font-weight: 600; }
.psi-major { color: #c62828; font-weight: 700; }
"""
