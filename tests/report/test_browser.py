"""The report and the dashboard in a real browser: headless Chromium (the system's, driven by
Playwright; nothing is downloaded) renders every plot with no JavaScript error, offline.

Skipped when Chromium or Playwright is missing (a plain `make test` on a fresh machine);
.ci/run installs Debian's chromium so CI runs them. With METATUNE_SCREENSHOTS=DIR the tests
also save the screenshots of the user guide (docs/guide/img) into DIR.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metatune import Study
from metatune.report.html import write_report
from metatune.storage import get_storage

pytest.importorskip("plotly")
pytest.importorskip("starlette")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM = os.environ.get("METATUNE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# What a test browser needs here: no sandbox (root in a container), no GPU, and nothing that
# phones home. Playwright adds --headless and a fresh temporary --user-data-dir itself.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("METATUNE_SCREENSHOTS")

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


class Watched:
    """A page that records JavaScript errors and every request that left the allowed origin."""

    def __init__(self, browser: Any, allowed: str, width: int = 1280, height: int = 900) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on(
            "console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}")
        )

        def route(r: Any) -> None:
            url = r.request.url
            if url.startswith(allowed) or url.startswith("data:") or url.startswith("blob:"):
                r.continue_()
            else:  # offline: anything else would fail on a machine without a network
                self.outside.append(url)
                r.abort()

        self.page.route("**/*", route)

    def plots(self) -> int:
        """How many Plotly plots rendered an SVG (waits for the first, and on a dashboard page
        until every figure section holds a drawn plot)."""
        self.page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        self.page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#figures section'))"
            ".every(s => s.querySelector('.js-plotly-plot .main-svg'))",
            timeout=30_000,
        )
        return self.page.locator(".js-plotly-plot").count()

    def close(self) -> None:
        self.page.close()


def _shot(w: Watched, name: str, height: int | None = None) -> None:
    if not SHOTS:
        return
    out = Path(SHOTS)
    out.mkdir(parents=True, exist_ok=True)
    w.page.wait_for_timeout(500)  # let Plotly finish its transitions
    clip = None
    if height is not None:
        width = w.page.viewport_size["width"]
        clip = {"x": 0, "y": 0, "width": width, "height": height}
    w.page.screenshot(path=str(out / name), full_page=True, clip=clip)


def test_report_renders_every_plot_offline(
    browser: Any, tmp_path: Path, pipeline_study: Study
) -> None:
    path = write_report(pipeline_study, tmp_path / "report.html")
    sections = path.read_text(encoding="utf-8").count('<div id="fig-')
    w = Watched(browser, allowed="file://")
    try:
        w.page.goto(path.as_uri())
        assert w.plots() == sections >= 9
        for div in w.page.locator(".js-plotly-plot").all():
            assert div.locator("svg").count() > 0
        assert w.page.locator("#summary td").first.inner_text() == "study"
        assert w.errors == [] and w.outside == []
        _shot(w, "report.png", height=1900)
    finally:
        w.close()


def _section_shot(w: Watched, selector: str, name: str) -> None:
    """A screenshot of one section of the page (a figure with its title and caption)."""
    if not SHOTS:
        return
    out = Path(SHOTS)
    out.mkdir(parents=True, exist_ok=True)
    w.page.wait_for_timeout(500)
    w.page.locator(selector).screenshot(path=str(out / name))


def test_report_of_a_pruned_study_with_learning_curves(
    browser: Any, tmp_path: Path, curve_study: Study, two_objective_study: Study
) -> None:
    path = write_report(curve_study, tmp_path / "curves.html")
    sections = path.read_text(encoding="utf-8").count('<div id="fig-')
    w = Watched(browser, allowed="file://")
    try:
        w.page.goto(path.as_uri())
        assert w.plots() == sections
        # the learning curves drew a line per state and the pruned trials' end marks
        legend = w.page.eval_on_selector_all(
            "#fig-intermediate .legendtext", "els => els.map(e => e.textContent)"
        )
        assert any(t.startswith("pruned (") for t in legend) and "pruned here" in legend
        assert w.page.locator("#fig-lr-schedule .scatterlayer .trace").count() > 0
        assert "pruned" in w.page.locator("#unfinished").inner_text()
        assert w.errors == [] and w.outside == []
        _section_shot(w, "#intermediate", "report-curves.png")
        _section_shot(w, "#lr-schedule", "report-lr-schedule.png")
        _section_shot(w, "#parallel", "report-parallel-conditional.png")
    finally:
        w.close()
    path = write_report(two_objective_study, tmp_path / "two.html")
    w = Watched(browser, allowed="file://")
    try:
        w.page.goto(path.as_uri())
        w.page.wait_for_selector("#fig-pareto .main-svg", timeout=30_000)
        assert "Pareto front" in w.page.locator("#best h2").inner_text()
        assert w.page.locator("#fig-pareto .scatterlayer .point").count() == len(
            two_objective_study.completed_trials()
        )
        assert w.errors == [] and w.outside == []
        _section_shot(w, "#pareto", "report-pareto.png")
    finally:
        w.close()


def test_dashboard_shows_learning_curves_and_filters_pruned_trials(
    browser: Any, tmp_path: Path, curve_makers: tuple
) -> None:
    from metatune.report.dashboard import start_in_thread

    make_curve_study, make_two_objective_study = curve_makers
    url = f"sqlite:///{tmp_path / 'curves.db'}"
    study = make_curve_study(url, n_trials=10)
    n_pruned = sum(t.state.value == "pruned" for t in study.trials)
    n_front = len(make_two_objective_study(url, n_trials=10).best_trials)
    with start_in_thread(get_storage(url, read_only=True), poll_seconds=0.3) as dash:
        w = Watched(browser, allowed=dash.url, width=1400, height=1000)
        try:
            w.page.goto(dash.url)
            w.page.wait_for_function(
                "document.querySelectorAll('#studies tbody tr').length == 2 &&"
                " !document.querySelector('#studies').innerText.includes('reading')"
            )
            rows = w.page.locator("#studies tbody tr")
            cells = rows.nth(0).locator("td").all_inner_texts()
            assert cells[0] == "curves" and cells[4] == str(n_pruned)  # the pruned column
            two = rows.nth(1).locator("td").all_inner_texts()
            assert two[7] == f"Pareto front: {n_front}" and two[9] == "minimize, minimize"
            w.page.goto(dash.url + "study?name=curves")
            w.page.wait_for_selector("#fig-intermediate .main-svg", timeout=30_000)
            assert w.page.locator("#fig-intermediate .scatterlayer .trace").count() >= 2
            w.page.select_option("#state", "pruned")
            w.page.wait_for_function(
                f"document.querySelector('#page').innerText.includes('({n_pruned} trials)')"
            )
            states = w.page.locator("#trials tbody td.s-pruned").all_inner_texts()
            assert states and set(states) == {"pruned"}
            assert w.errors == [] and w.outside == []
            _section_shot(w, "#sec-intermediate", "dashboard-curves.png")
        finally:
            w.close()


def test_report_of_an_empty_study(browser: Any, tmp_path: Path, empty_study: Study) -> None:
    path = write_report(empty_study, tmp_path / "empty.html")
    w = Watched(browser, allowed="file://")
    try:
        w.page.goto(path.as_uri())
        assert "No trials yet" in w.page.locator("#no-trials").inner_text()
        assert w.page.locator(".js-plotly-plot").count() == 0
        assert w.errors == [] and w.outside == []
    finally:
        w.close()


def test_dashboard_lists_studies_and_updates_a_study_live(
    browser: Any, tmp_path: Path, study_makers: tuple
) -> None:
    from metatune.report.dashboard import start_in_thread

    make_failing_study, make_pipeline_study = study_makers
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    make_pipeline_study(tmp_path / "cache", budget=60, storage=url)
    make_failing_study(url, n_trials=30)
    with start_in_thread(get_storage(url, read_only=True), poll_seconds=0.3) as dash:
        w = Watched(browser, allowed=dash.url, width=1400, height=1000)
        try:
            w.page.goto(dash.url)
            w.page.wait_for_function(  # both listed, their trials read (no "reading...")
                "document.querySelectorAll('#studies tbody tr').length == 2 &&"
                " !document.querySelector('#studies').innerText.includes('reading')"
            )
            names = w.page.locator("#studies tbody tr td:first-child").all_inner_texts()
            assert sorted(names) == ["pipe", "plain"]
            _shot(w, "dashboard-studies.png", height=260)

            w.page.goto(dash.url + "study?name=pipe")
            assert w.plots() >= 9
            w.page.wait_for_selector("#trials tbody tr")
            _shot(w, "dashboard.png", height=1900)

            w.page.goto(dash.url + "study?name=plain")
            before = w.plots()
            assert "30 (" in w.page.locator("#summary").inner_text()
            # A worker adds trials while the page is open: the page redraws without a reload.
            writer = Study(name="plain", storage=url)
            writer.optimize(lambda p: (p["x"] - 1) ** 2, n_trials=4, show_progress=False)
            w.page.wait_for_function(
                "document.querySelector('#summary').innerText.includes('34 (')", timeout=30_000
            )
            assert w.page.locator(".js-plotly-plot").count() == before
            w.page.wait_for_function(  # the trials table follows once the plots are drawn
                "document.querySelector('#page').innerText.includes('(34 trials)')",
                timeout=30_000,
            )
            assert w.errors == [] and w.outside == []
        finally:
            w.close()
