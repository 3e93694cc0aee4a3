"""The docs' Mermaid diagrams render: each one drawn by Mermaid in headless Chromium, as
GitHub draws it, with every node it declares.

Mermaid's renderer comes from npm, cached by ``make setup`` (the Makefile's ``mermaid``
target) outside the repo.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.report.test_report_browser import render

MERMAID = Path.home() / ".cache" / "medallion" / "mermaid-12.4.0" / "mermaid.min.js"
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```mermaid\n(.*?)^```", re.S | re.M)
# A flowchart node's declaration: an id followed by its shape's opening bracket.
NODE = re.compile(r"^\s*(\w+)\s*(?:\[|\(|\{)", re.M)

PAGE = """<html><head><meta charset="utf-8"><script src="{mermaid}"></script></head><body><script>
(async () => {{
  const results = [];
  mermaid.initialize({{startOnLoad: false, securityLevel: "strict"}});
  for (const [i, text] of {diagrams}.entries()) {{
    try {{
      const {{svg}} = await mermaid.render("diagram" + i, text);
      const drawn = document.createElement("div");
      drawn.innerHTML = svg;  // as a page shows it (its labels are HTML, not XML)
      document.body.appendChild(drawn);
      const ids = [...drawn.querySelectorAll("g.node")].map((g) => g.id);
      results.push({{ok: true, nodes: ids}});
    }} catch (e) {{
      results.push({{ok: false, error: String((e && e.message) || e)}});
    }}
  }}
  const out = document.createElement("pre");
  out.id = "__probe";
  out.textContent = JSON.stringify(results);
  document.body.appendChild(out);
}})();
</script></body></html>"""


def diagrams() -> list[tuple[str, str]]:
    return [(doc.name, block) for doc in DOCS for block in BLOCK.findall(doc.read_text())]


def drawn(texts: list[str], tmp_path: Path) -> list[dict]:
    if not MERMAID.exists():
        pytest.fail(f"Mermaid's renderer is not cached at {MERMAID}: run make setup (it needs npm)")
    page = tmp_path / "diagrams.html"
    page.write_text(PAGE.format(mermaid=MERMAID.as_uri(), diagrams=json.dumps(texts)))
    results, _, _ = render(page, tmp_path / "profile")
    return results


def test_every_mermaid_diagram_in_the_docs_renders_with_all_its_nodes(tmp_path):
    found = diagrams()
    assert found, "the docs have no Mermaid diagram"
    results = drawn([text for _, text in found], tmp_path)
    assert len(results) == len(found)
    for (doc, text), result in zip(found, results, strict=True):
        assert result["ok"], f"{doc}: {result.get('error')}"
        declared = set(NODE.findall(text)) - {"subgraph", "flowchart", "graph"}
        # Mermaid names each drawn node's group "<diagram>-flowchart-<id>-<n>".
        rendered = {re.sub(r"^.*?-flowchart-(.+)-\d+$", r"\1", node) for node in result["nodes"]}
        assert declared <= rendered, f"{doc}: not drawn: {sorted(declared - rendered)}"


def test_a_broken_diagram_is_reported(tmp_path):
    """The check above can fail: a diagram with a syntax error does not render."""
    results = drawn(["flowchart LR\n    A[one] --> B[two\n"], tmp_path)
    assert results[0]["ok"] is False and results[0]["error"], results
