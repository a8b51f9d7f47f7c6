"""The walkthrough on a projector, in Chromium: the ring's labels no smaller than the body text
at 1280×720, 1024×768 and 1440×1000, and the step's title, the ring and its three boxes
(holds / has just learned / cannot learn) above the fold at 1280×720, autoplay on or off."""

from __future__ import annotations

from collections.abc import Iterator

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

pytestmark = pytest.mark.browser

VIEWPORTS = ((1280, 720), (1024, 768), (1440, 1000))
PROJECTOR = (1280, 720)

LABELS = """() => {
  const svg = document.querySelector("[data-testid='stGraphVizChart'] svg");
  const body = document.querySelector("[data-testid='stMain'] [data-testid='stMarkdownContainer'] p");
  return {
    body: parseFloat(getComputedStyle(body).fontSize),
    // a label's size on screen: its font size in the picture's units times the picture's scale
    labels: [...svg.querySelectorAll("text")].map(
      (t) => [t.textContent, parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a]),
  };
}"""

FOLD = """() => {
  const main = document.querySelector("[data-testid='stMain']");
  const boxes = [...main.querySelectorAll("[data-testid='stAlertContainer']")]
    .filter((a) => ["Holds:", "Has just learned:", "Cannot learn:"].includes(a.querySelector("strong")?.innerText));
  const title = main.querySelector("h3").getBoundingClientRect();
  const picture = main.querySelector("[data-testid='stGraphVizChart'] svg").getBoundingClientRect();
  return {
    boxes: boxes.length,
    bottom: Math.max(...boxes.map((a) => a.getBoundingClientRect().bottom), picture.bottom, title.bottom),
    top: Math.min(title.top, picture.top),
    scrolled: main.scrollTop,
    height: innerHeight,
  };
}"""


@pytest.fixture(scope="module")
def visitor(browser: Browser, server: str) -> Iterator[Page]:  # noqa: F811
    """One visitor for the module: 1024-bit keys and 3 rounds, so a run takes a second."""
    page = visit(browser, server, *PROJECTOR)
    idle(page)
    choose_select(page, "Key length", "1024 bits")
    set_text(page, "Rounds", "3")
    pace(page, "full speed")
    yield page
    no_exception(page)
    page.context.close()


@pytest.fixture(scope="module", params=[3, 20])
def walkthrough(request: pytest.FixtureRequest, visitor: Page) -> Page:
    """The walkthrough of a run on this many hospitals, at its first step, at 1280×720."""
    hospitals = request.param
    visitor.set_viewport_size(dict(zip(("width", "height"), PROJECTOR, strict=True)))
    visitor.get_by_test_id("stSidebarNav").get_by_text("Training", exact=True).click()
    idle(visitor)
    set_text(visitor, "Hospitals", str(hospitals))
    visitor.get_by_role("button", name="Run", exact=True).click()
    expect(visitor.get_by_text(f"Federated test MSE, mean of {hospitals} hospitals")).to_be_visible(
        timeout=60_000
    )
    idle(visitor)
    visitor.get_by_test_id("stSidebarNav").get_by_text("Walkthrough", exact=True).click()
    idle(visitor)
    expect(visitor.get_by_role("button", name="Previous", exact=True)).to_be_disabled()
    visitor.hospitals = hospitals  # type: ignore[attr-defined]
    return visitor


def drawn(page: Page) -> None:
    """Wait until the step's picture is drawn and no longer changes (Graphviz draws it after the
    element arrives)."""
    idle(page)
    page.locator("[data-testid='stGraphVizChart'] svg text").first.wait_for()
    page.wait_for_function(
        """() => new Promise((done) => {
             const svg = () => document.querySelector("[data-testid='stGraphVizChart'] svg")?.outerHTML;
             const before = svg();
             setTimeout(() => done(before !== undefined && before === svg()), 150);
           })""",
        polling=50,
    )


def every_step(page: Page) -> Iterator[str]:
    """Walk the round with Next from its first step, yielding each step's title; back to the
    first step at the end."""
    heading = page.get_by_role("heading", level=3).nth(0)
    nxt = page.get_by_role("button", name="Next", exact=True)
    drawn(page)
    while True:
        title = heading.inner_text()
        yield title
        if not nxt.is_enabled():
            break
        nxt.click()
        expect(heading).not_to_have_text(title)
        drawn(page)
    page.get_by_test_id("stButtonGroup").get_by_text("1 · Keys", exact=True).click()
    expect(page.get_by_role("button", name="Previous", exact=True)).to_be_disabled()
    drawn(page)


def test_the_rings_labels_are_as_big_as_the_body_text(walkthrough: Page) -> None:
    small: list[str] = []
    sizes: list[float] = []
    for title in every_step(walkthrough):
        for width, height in VIEWPORTS:
            walkthrough.set_viewport_size({"width": width, "height": height})
            walkthrough.wait_for_timeout(100)  # a new layout
            seen = walkthrough.evaluate(LABELS)
            assert seen["labels"], title
            sizes += [size for _, size in seen["labels"]]
            small += [
                f"{width}×{height} {title!r}: {text!r} {size:.1f} px < {seen['body']} px"
                for text, size in seen["labels"]
                if size < seen["body"]
            ]
        walkthrough.set_viewport_size({"width": PROJECTOR[0], "height": PROJECTOR[1]})
    assert not small, small
    print(f"{walkthrough.hospitals} hospitals: labels {min(sizes):.2f}–{max(sizes):.2f} px")  # type: ignore[attr-defined]
    no_exception(walkthrough)


def test_the_title_the_ring_and_the_three_boxes_fit_a_1280x720_projector(walkthrough: Page) -> None:
    hospitals = walkthrough.hospitals  # type: ignore[attr-defined]
    below: list[str] = []
    for step, title in enumerate(every_step(walkthrough), start=1):
        fold = walkthrough.evaluate(FOLD)
        assert fold["boxes"] == 3 and fold["scrolled"] == 0, (title, fold)
        if fold["bottom"] > fold["height"] or fold["top"] < 0:
            below.append(f"{title!r}: {fold}")
        if step in (1, 2, 4):
            walkthrough.screenshot(
                path=str(ARTIFACTS / f"12-walkthrough-projector-{hospitals}-step{step}.png")
            )
    assert not below, below

    # Autoplay on: the step it advances to is as whole on screen (and nothing moved to make room).
    autoplay = walkthrough.get_by_role("switch", name="Autoplay")
    walkthrough.get_by_text("Autoplay", exact=True).click()
    expect(autoplay).to_be_checked()
    idle(walkthrough)
    walkthrough.get_by_test_id("stSelectbox").filter(has_text="s per step").click()
    walkthrough.get_by_role("option", name="3 s per step").click()
    idle(walkthrough)
    expect(walkthrough.get_by_text("Step 2 of", exact=False)).to_be_visible(timeout=10_000)
    drawn(walkthrough)
    fold = walkthrough.evaluate(FOLD)
    assert fold["boxes"] == 3 and fold["bottom"] <= fold["height"] and fold["scrolled"] == 0, fold
    walkthrough.screenshot(path=str(ARTIFACTS / f"12-walkthrough-projector-{hospitals}-autoplay.png"))
    walkthrough.get_by_text("Autoplay", exact=True).click()
    expect(autoplay).not_to_be_checked()
    idle(walkthrough)
    walkthrough.get_by_test_id("stButtonGroup").get_by_text("1 · Keys", exact=True).click()
    drawn(walkthrough)
    no_exception(walkthrough)


LEGENDS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => {
  const legend = plot.querySelector('.legend'), title = plot.querySelector('.xtitle');
  if (!legend || !title) return null;
  const l = legend.getBoundingClientRect(), t = title.getBoundingClientRect();
  return {legendTop: l.top, titleBottom: t.bottom, name: plot.layout.title ? String(plot.layout.title.text) : ''};
}).filter(x => x)"""


def test_chart_legends_stay_clear_of_the_axes_when_the_window_grows(visitor: Page) -> None:
    """A projector's window widened from 1280 to 1920: the legends under the charts used to
    land on the x axis's title (placed relative to a plot area that grew taller)."""
    visitor.set_viewport_size({"width": 1280, "height": 720})
    visitor.get_by_test_id("stSidebarNav").get_by_text("Training", exact=True).click()
    idle(visitor)
    if not visitor.get_by_text("Results", exact=True).is_visible():
        visitor.get_by_role("button", name="Run", exact=True).click()
        expect(visitor.get_by_text("Results", exact=True)).to_be_visible(timeout=60_000)
        idle(visitor)
    for width, height in ((1280, 720), (1920, 1080), (1024, 768)):
        visitor.set_viewport_size({"width": width, "height": height})
        visitor.wait_for_timeout(1_000)  # plotly's responsive relayout
        legends = visitor.evaluate(LEGENDS)
        assert len(legends) >= 2, legends
        crossed = [g for g in legends if g["legendTop"] < g["titleBottom"]]
        assert not crossed, (width, crossed)
    visitor.screenshot(path=str(ARTIFACTS / "13-charts-after-resize.png"))
    visitor.set_viewport_size(dict(zip(("width", "height"), PROJECTOR, strict=True)))
