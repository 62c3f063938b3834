"""The report as a user sees it: rendered by headless Chromium at laptop width.

A probe script is injected into a copy of the report. It records uncaught errors and
console.error calls, and, once the page has loaded, the position of every figure, into a
hidden element; ``--dump-dom`` returns it. A ``--screenshot`` of the same page is then cut at
those positions and each figure must hold drawn pixels. Chromium's own console log
(``--enable-logging=stderr``) is checked for error lines too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from test_reports_fixtures import write_run

import reports

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
WIDTH = 1280

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + e.message));
const __ce = console.error;
console.error = (...a) => { window.__errors.push('console.error: ' + a.join(' ')); __ce(...a); };
window.addEventListener('load', () => {
  const figs = [...document.querySelectorAll('svg.plot')].map(s => {
    const r = s.getBoundingClientRect();
    return {name: s.dataset.figure, x: r.left + scrollX, y: r.top + scrollY,
            w: r.width, h: r.height};
  });
  const out = document.createElement('pre');
  out.id = 'probe'; out.hidden = true;
  out.textContent = JSON.stringify({errors: window.__errors, figures: figs,
    height: document.documentElement.scrollHeight,
    width: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script>"""


def _chromium(url: str, tmp, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / "profile"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
         "--force-device-scale-factor=1", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", *extra, url],
        capture_output=True, text=True, timeout=120)


def _probe(html_path: str, tmp) -> tuple[dict, str]:
    html = open(html_path, encoding="utf-8").read()
    probed = tmp / "probed.html"
    probed.write_text(html.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    proc = _chromium(probed.as_uri(), tmp, f"--window-size={WIDTH},900", "--dump-dom")
    match = re.search(r'<pre id="probe" hidden="">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"probe missing from the DOM; chromium said:\n{proc.stderr[-2000:]}"
    data = json.loads(match.group(1).replace("&amp;", "&").replace("&lt;", "<")
                      .replace("&gt;", ">").replace("&quot;", '"'))
    return data, proc.stderr


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and re.search(r"error|Uncaught", line, re.I)]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed")
    tmp = tmp_path_factory.mktemp("browser")
    d = write_run(str(tmp / "run"))
    path = reports.write_report([d])
    data, stderr = _probe(path, tmp)
    shot = tmp / "page.png"
    proc = _chromium((tmp / "probed.html").as_uri(), tmp,
                     f"--window-size={WIDTH},{int(data['height']) + 20}",
                     f"--screenshot={shot}")
    assert shot.exists(), proc.stderr[-2000:]
    import matplotlib.image

    return data, stderr, matplotlib.image.imread(str(shot))


def test_probe_catches_a_page_error(tmp_path):
    """The instrument works: a page that throws is reported (so a clean page means clean)."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed")
    page = tmp_path / "bad.html"
    page.write_text("<html><head></head><body><script>throw new Error('boom')</script>"
                    "<script>console.error('bad thing')</script></body></html>")
    data, stderr = _probe(str(page), tmp_path)
    assert any("boom" in e for e in data["errors"])
    assert any("bad thing" in e for e in data["errors"])
    assert _console_errors(stderr)


@pytest.mark.slow
def test_report_loads_without_console_errors(rendered):
    data, stderr, _ = rendered
    assert data["errors"] == []
    assert _console_errors(stderr) == []


@pytest.mark.slow
def test_report_fits_a_laptop_screen(rendered):
    data, _, _ = rendered
    assert data["width"] <= WIDTH
    for fig in data["figures"]:
        assert 900 <= fig["w"] <= WIDTH, fig  # figures use the width, and no more


@pytest.mark.slow
def test_every_figure_is_present_and_drawn(rendered):
    data, _, image = rendered
    names = [f["name"] for f in data["figures"]]
    assert sorted(names) == sorted(["call-graph", "latency", "throughput", "services", "llm",
                                    "cascade", "cost"])
    rgb = image[..., :3]
    for fig in data["figures"]:
        assert fig["h"] > 100, fig
        x0, y0 = int(fig["x"]), int(fig["y"])
        crop = rgb[y0:y0 + int(fig["h"]), x0:x0 + int(fig["w"])]
        assert crop.size, fig
        ink = (crop.min(axis=2) < 0.85).mean()  # share of pixels that are not near-white
        colours = len(np.unique((crop * 15).round().reshape(-1, 3), axis=0))
        assert ink > 0.01, f"{fig['name']} looks blank ({ink:.2%} ink)"
        assert colours >= 4, f"{fig['name']} has only {colours} colours"


@pytest.mark.slow
def test_verdict_is_at_the_top_of_the_first_screen(rendered):
    """The first 300 px show the verdict in its fail colour (the red FAIL badge and border)."""
    _, _, image = rendered
    top = image[:300, :, :3]
    reddish = ((top[..., 0] > 0.6) & (top[..., 1] < 0.3) & (top[..., 2] < 0.3)).sum()
    assert reddish > 500
