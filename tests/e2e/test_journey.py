"""The browser journey: landscape -> cone vs ball (move c, the figure changes) -> trajectories
(charts present, the CAGrad c slider picks lanes of the cached run) -> screenshot.

Slider latencies (key press to changed figure in the page) are printed and written to
tests/e2e/latency.txt for the report."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "assets" / "app.png"
QUERY = "methods=ls,mgda,cagrad,conicgrad_exact&setup=cagrad2021&steps=600&lr=0.03"
TIMEOUT = 240_000

SIGNATURE = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el =>
    JSON.stringify((el.data || []).filter(t => t.type !== 'contour').map(t => [t.name, t.x, t.y])))
    .join('|')"""


def _settle(page) -> None:
    """Wait until the app has finished its run (no 'Running' status) and a figure is drawn."""
    page.wait_for_selector(".js-plotly-plot", timeout=TIMEOUT)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=TIMEOUT, polling=100
    )
    page.wait_for_timeout(500)


def _press_and_time(page, thumb, key: str) -> float:
    before = page.evaluate(SIGNATURE)
    thumb.focus()
    started = time.perf_counter()
    thumb.press(key)
    page.wait_for_function(f"(before) => ({SIGNATURE})() !== before", arg=before, timeout=TIMEOUT, polling=16)
    return (time.perf_counter() - started) * 1000


@pytest.mark.e2e
def test_journey(app_url, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1250})
    page.goto(f"{app_url}/?{QUERY}")
    _settle(page)
    assert page.locator("text=Pareto front in loss space").count() >= 1

    # Cone vs ball: the cone is ConicGrad's (its sidebar c), so moving that c redraws the regions.
    page.get_by_text("Cone vs ball", exact=True).click()
    page.wait_for_selector("text=Gradient space at the chosen point", timeout=TIMEOUT)
    _settle(page)
    assert page.locator("text=the c of ConicGrad, exact cone solution (sidebar)").count() == 1
    cone = (
        page.locator("[data-testid=stExpander]", has_text="ConicGrad, exact cone solution parameters")
        .get_by_role("slider")
        .first
    )
    region_ms = [_press_and_time(page, cone, "ArrowRight") for _ in range(3)]
    page.wait_for_function("() => location.search.includes('conicgrad_exact.c=0.65')", timeout=TIMEOUT)

    # Trajectories: the charts are there, and the CAGrad c slider only picks lanes.
    page.get_by_text("Trajectories", exact=True).click()
    run_anyway = page.get_by_role("button", name="Run anyway")
    page.wait_for_selector("text=Outcomes", timeout=TIMEOUT) if not run_anyway.count() else run_anyway.click()
    _settle(page)
    assert page.locator(".js-plotly-plot").count() >= 3  # map, loss curves, convergence
    cagrad = (
        page.locator("[data-testid=stExpander]", has_text="CAGrad parameters").get_by_role("slider").first
    )
    lane_ms = [_press_and_time(page, cagrad, "ArrowRight") for _ in range(3)]
    _settle(page)
    page.wait_for_function("() => location.search.includes('cagrad.c=0.8')", timeout=TIMEOUT)
    conic = (
        page.locator("[data-testid=stExpander]", has_text="ConicGrad, exact cone solution parameters")
        .get_by_role("slider")
        .first
    )
    conic_ms = [_press_and_time(page, conic, "ArrowRight") for _ in range(3)]
    _settle(page)
    page.wait_for_function("() => location.search.includes('conicgrad_exact.c=0.8')", timeout=TIMEOUT)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    report = (
        f"cone-vs-ball c slider: {', '.join(f'{v:.0f}' for v in region_ms)} ms "
        f"(median {statistics.median(region_ms):.0f} ms)\n"
        f"trajectories CAGrad c slider (lanes of the cached run): "
        f"{', '.join(f'{v:.0f}' for v in lane_ms)} ms "
        f"(median {statistics.median(lane_ms):.0f} ms)\n"
        f"trajectories ConicGrad exact c slider (lanes of the cached run): "
        f"{', '.join(f'{v:.0f}' for v in conic_ms)} ms "
        f"(median {statistics.median(conic_ms):.0f} ms)\n"
    )
    (Path(__file__).parent / "latency.txt").write_text(report)
    print(report)

    # Teaching: Play runs in the browser (no rerun): the slider, the titles and the figures advance.
    page.get_by_text("Teaching", exact=True).click()
    page.wait_for_selector("text=Follow", timeout=TIMEOUT)
    _settle(page)
    run_anyway = page.get_by_role("button", name="Run anyway")
    if run_anyway.count():
        run_anyway.click()
    animated = (
        "() => [...document.querySelectorAll('.js-plotly-plot')].some(el => el.layout && el.layout.sliders)"
    )
    page.wait_for_function(animated, timeout=TIMEOUT, polling=250)
    _settle(page)
    state = """() => {
        const gd = [...document.querySelectorAll('.js-plotly-plot')].find(el => el.layout.sliders);
        return [gd._fullLayout.sliders[0].active, gd._fullLayout.annotations[0].text]; }"""
    before = page.evaluate(state)
    page.get_by_text("\u25b6 4x").click()
    page.wait_for_timeout(2500)
    page.get_by_text("\u275a\u275a Pause").click()
    after = page.evaluate(state)
    assert after[0] > before[0] and after[1] != before[1] and "step " in after[1]
    page.close()


@pytest.mark.e2e
def test_typing_a_method_and_enter_adds_that_one_method(app_url, browser):
    """Typing "MGDA" matches three labels (MGDA and the two Su variants); Enter adds the best match
    only, not all three."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(f"{app_url}/?methods=ls")
    _settle(page)
    box = page.locator("[data-testid=stSidebar] [data-testid=stMultiSelect] input")
    box.click()
    box.type("MGDA")
    page.wait_for_selector("[role=option]", timeout=TIMEOUT)
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('methods=ls%2C')", timeout=TIMEOUT)
    _settle(page)
    query = parse_qs(page.evaluate("location.search").lstrip("?"))
    assert query["methods"] == ["ls,mgda"]
    page.close()


SPINNER_SEEN = """() => { window.spinnerTexts = []; new MutationObserver(() => {
    for (const el of document.querySelectorAll('[data-testid=stSpinner]'))
        window.spinnerTexts.push(el.innerText);
    }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""


@pytest.mark.e2e
def test_a_slider_move_that_reruns_the_engine_shows_a_running_spinner(app_url, browser):
    """Moving CAGrad's eps changes the run: while the view recomputes, "Updating the view..." shows
    (without the spinner the page only fades). The spinner appears after 0.5 s; the run of 3000
    steps is estimated at about 2 s on an idle machine."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(f"{app_url}/?view=trajectories&methods=ls,cagrad&setup=cagrad2021&steps=3000&lr=0.03")
    _settle(page)
    eps = (
        page.locator("[data-testid=stExpander]", has_text="CAGrad parameters")
        .locator("[data-testid=stSlider]", has_text="eps")
        .get_by_role("slider")
    )
    page.evaluate(SPINNER_SEEN)
    eps.focus()
    eps.press("ArrowRight")
    page.wait_for_function("() => location.search.includes('cagrad.eps=')", timeout=TIMEOUT)
    _settle(page)
    assert any("Updating the view" in text for text in page.evaluate("window.spinnerTexts"))
    assert page.locator("[data-testid=stSpinner]").count() == 0
    page.close()


LABEL_BOXES = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    const box = el => { const r = el.getBoundingClientRect();
        return {name: el.textContent.slice(0, 60), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom}; };
    return {
        titles: [...gd.querySelectorAll('g.annotation')].map(box),
        axisTitles: [...gd.querySelectorAll('.g-xtitle text, .g-ytitle text')]
            .filter(t => t.textContent).map(box),
        legend: [...gd.querySelectorAll('g.legend')].map(box),
        panels: [...gd.querySelectorAll('rect.nsewdrag')].map(box),
    }; }"""


def _overlap(a: dict, b: dict) -> bool:
    return a["x0"] < b["x1"] - 1 and b["x0"] < a["x1"] - 1 and a["y0"] < b["y1"] - 1 and b["y0"] < a["y1"] - 1


@pytest.mark.e2e
def test_trajectory_panels_titles_and_legend_do_not_overlap_at_1280px(app_url, browser):
    """Five methods in three columns at 1280 px: panel titles (the long ConicGrad ones too), axis
    titles, the legend and the panels are drawn where nothing else is."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(f"{app_url}/?view=trajectories&setup=conicgrad2025&steps=300")
    _settle(page)
    boxes = page.evaluate(LABEL_BOXES)
    assert len(boxes["titles"]) == 5 and len(boxes["panels"]) == 5 and boxes["legend"]
    labels = boxes["titles"] + boxes["axisTitles"] + boxes["legend"]
    clashes = [
        (a["name"], b["name"])
        for i, a in enumerate(labels)
        for b in labels[i + 1 :] + boxes["panels"]
        if _overlap(a, b)
    ]
    assert not clashes
    page.close()


#: The column headers the data grid draws (its accessible table holds only the visible columns).
VISIBLE_HEADERS = """() => [...document.querySelectorAll('[data-testid=stDataFrame]')]
    .map(df => [...df.querySelectorAll('[role=columnheader]')].map(h => h.textContent))"""


@pytest.mark.e2e
def test_every_readout_column_shows_at_1280px(app_url, browser):
    """Cone vs ball with the longest method names: every read-out column is on screen at 1280 px."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    query = "methods=cagrad,conicgrad,conicgrad_exact&cagrad.c=0.4&conicgrad.c=0.5&conicgrad_exact.c=0.5"
    page.goto(f"{app_url}/?view=regions&setup=conicgrad2025&{query}")
    page.wait_for_selector("[data-testid=stDataFrame]", timeout=TIMEOUT)
    _settle(page)
    shown = {name for table in page.evaluate(VISIBLE_HEADERS) for name in table}
    assert shown == {
        "method",
        "d",
        "||d||",
        "cos(d, g0)",
        "<g1, d>",
        "<g2, d>",
        "dual cone",
        "ball c=0.4",
        "cone c=0.5",
        "weights",
        "flags",
    }
    page.close()
