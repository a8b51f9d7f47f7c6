"""The run store in a real Chromium: a run made by one visitor is opened by another from the
Runs page and every page draws the same figures; its handout downloads and opens offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from test_browser import (  # noqa: F401  (pytest fixtures, used by name)
    ARTIFACTS,
    browser,
    choose_select,
    idle,
    no_exception,
    pace,
    server,
    set_text,
    visit,
)

from fedviz.store import RunStore

pytestmark = pytest.mark.browser


def go(page: Page, name: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(name, exact=True).click()
    idle(page)


def pick(page: Page, which: str = "A run: open it") -> None:
    """Choose the newest run in one of the Runs page's pickers."""
    box = page.get_by_role("combobox", name=re.compile(which))
    box.click()
    page.get_by_role("option").first.click()
    idle(page)


def figures(page: Page) -> dict[str, str]:
    """What the Training page's metrics and the Privacy page's verdict say."""
    go(page, "Training")
    expect(page.get_by_test_id("stMetricValue").first).to_be_visible(timeout=30_000)
    metrics = page.get_by_test_id("stMetricValue").all_inner_texts()
    go(page, "Ring inspector")
    hop = page.get_by_text(re.compile(r"^Round 1, hop 1: Hospital 1 → Hospital 2")).first
    expect(hop).to_be_visible(timeout=30_000)
    ciphertext = page.get_by_test_id("stCode").first.inner_text()
    go(page, "Privacy")
    verdict = page.get_by_text(re.compile(r"^Exposed in every round")).first
    expect(verdict).to_be_visible(timeout=30_000)
    return {
        "metrics": " | ".join(metrics),
        "ciphertext": ciphertext[:200],
        "verdict": verdict.inner_text()[:60],
    }


def test_a_stored_run_redraws_every_page_for_another_visitor(
    browser: Browser,  # noqa: F811  (the fixture, by name)
    server: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    before = {r.id for r in RunStore().list()}
    maker = visit(browser, server)
    idle(maker)
    choose_select(maker, "Key length", "1024 bits")
    set_text(maker, "Rounds", "5")
    pace(maker, "full speed")
    maker.get_by_role("button", name="Run", exact=True).click()
    expect(maker.get_by_text("Results", exact=True)).to_be_visible(timeout=60_000)
    idle(maker)
    live = figures(maker)
    no_exception(maker)
    new = [r for r in RunStore().list() if r.id not in before]
    assert len(new) == 1 and new[0].status == "finished"
    run_id = new[0].id
    maker.context.close()

    viewer = visit(browser, server, path="/runs")
    idle(viewer)
    expect(viewer.get_by_role("heading", name="Runs")).to_be_visible()
    expect(viewer.get_by_test_id("stDataFrame").first).to_be_visible()
    pick(viewer)
    viewer.get_by_role("button", name="Open in every page").click()
    idle(viewer)
    expect(viewer.get_by_text(f"Showing stored run {run_id}")).to_be_visible(timeout=30_000)
    idle(viewer)
    rounds = viewer.get_by_test_id("stSidebar").get_by_label("Rounds", exact=True)
    expect(rounds).to_have_count(1, timeout=15_000)  # wait out a stale copy mid-rerun
    expect(rounds).to_have_value("5", timeout=15_000)  # the sidebar shows the run's settings
    assert figures(viewer) == live
    viewer.reload()  # the address carries the stored run: a reload shows it again
    idle(viewer)
    expect(viewer.get_by_text(f"Showing stored run {run_id}")).to_be_visible(timeout=30_000)
    assert figures(viewer) == live
    viewer.screenshot(path=str(ARTIFACTS / "runs-opened-privacy.png"), full_page=True)

    # the handout: downloaded from the Runs page, opened with no network at all
    go(viewer, "Runs")
    pick(viewer)
    with viewer.expect_download(timeout=60_000) as download:
        viewer.get_by_role("button", name="Download the handout (HTML)").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"fedviz-run-{run_id}.html"
    no_exception(viewer)
    viewer.context.close()

    offline = browser.new_context(offline=True)
    try:
        reader = offline.new_page()
        asked: list[str] = []
        reader.on(
            "request", lambda r: asked.append(r.url) if not r.url.startswith(("file:", "data:")) else None
        )
        errors: list[str] = []
        reader.on("pageerror", lambda exc: errors.append(str(exc)))
        reader.goto(saved.as_uri())
        expect(reader.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=30_000)
        headline = live["metrics"].split(" | ")
        federated = reader.locator(".metric .v").all_inner_texts()
        assert set(federated) & set(headline), (federated, headline)
        assert reader.locator(".js-plotly-plot").count() == 2
        reader.screenshot(path=str(ARTIFACTS / "runs-handout-offline.png"), full_page=True)
        assert asked == [] and errors == []
    finally:
        offline.close()


def test_the_training_page_has_an_address_of_its_own(
    browser: Browser,  # noqa: F811  (the fixture, by name)
    server: str,  # noqa: F811
) -> None:
    """The default page lives at "/"; a bookmark or a link to "/training" leads there too
    (Streamlit said "Page not found" and blocked the page)."""
    visitor = visit(browser, server, path="/training")
    try:
        idle(visitor)
        expect(
            visitor.get_by_role("heading", name="Federated learning on encrypted gradients")
        ).to_be_visible(timeout=30_000)
        expect(visitor.get_by_text("Page not found")).to_have_count(0)
        no_exception(visitor)
        # an address with a stored run's id keeps it through the redirect
        run_id = RunStore().list()[0].id
        visitor.goto(f"{server}/training?stored={run_id}")
        idle(visitor)
        expect(visitor.get_by_text(f"Showing stored run {run_id}")).to_be_visible(timeout=30_000)
        assert f"stored={run_id}" in visitor.url
        no_exception(visitor)
    finally:
        visitor.context.close()
