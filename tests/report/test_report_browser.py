"""The run report is a page people open: headless Chromium renders it, every image loads, and
the console shows no error.

Chromium is Debian's `chromium` package (`.ci/run` installs it; `apt-get install -y chromium`).
A probe script goes into a copy of the page: it records script errors, failed resources and
``console.error`` calls from the start, and each image's decoded size once the page has loaded;
``--dump-dom`` then returns the page with what it recorded.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest

from medallion.report import SECTION_IDS, RunReport

PROBE_HEAD = """<script>
window.__problems = [];
window.addEventListener("error", (e) => {
  const target = e.target && e.target !== window ? (e.target.outerHTML || "").slice(0, 120) : "";
  window.__problems.push("error: " + (e.message || "resource failed to load " + target));
}, true);
window.addEventListener("unhandledrejection", (e) => window.__problems.push("rejection: " + e.reason));
const __consoleError = console.error;
console.error = (...args) => { window.__problems.push("console.error: " + args.join(" ")); __consoleError(...args); };
window.addEventListener("load", () => {
  const images = [...document.images].map((img) => ({
    alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight }));
  const out = document.createElement("pre");
  out.id = "__probe";
  out.textContent = JSON.stringify({images, problems: window.__problems});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    if not found:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    return found


def render(page, profile) -> tuple[dict, str, str]:
    """The probe's record, the dumped DOM and Chromium's log for ``page`` (a file)."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",  # the load event and its handlers run before the dump
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = re.search(r'<pre id="__probe">(.*?)</pre>', result.stdout, re.S)
    assert probe, "the page never finished loading:\n" + result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(html.unescape(probe.group(1))), result.stdout, result.stderr


def test_the_run_report_renders_in_chromium_with_every_image_loaded(spark, lake_with_champion, tmp_path):
    # The champion's registry alone gives the model section its charts (ROC, PR); the other
    # sections render their "no data yet" state.
    report = RunReport(lake_with_champion(), spark).build()
    path = report.write(str(tmp_path / "reports"))
    page = path.read_text()
    assert "<head>" in page
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE_HEAD, 1))

    record, dom, log = render(probed, tmp_path / "profile")

    assert all(f'id="{section}"' in dom for section in SECTION_IDS)
    assert len(record["images"]) >= 2, record  # ROC and PR
    for image in record["images"]:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    assert record["problems"] == []
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not console, console


def test_the_probe_sees_a_broken_image_and_a_script_error(tmp_path):
    """The check above can fail: a page with an undecodable image and a throwing script."""
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<html><head>" + PROBE_HEAD + "</head><body>"
        '<img alt="bad" src="data:image/png;base64,AAAA">'
        "<script>undefined_function()</script></body></html>"
    )
    record, _, _ = render(broken, tmp_path / "profile")
    assert record["images"] == [{"alt": "bad", "complete": True, "width": 0, "height": 0}]
    assert any("undefined_function" in problem for problem in record["problems"]), record
