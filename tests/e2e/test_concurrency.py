"""Eight concurrent browser sessions on one server of their own, each with its own state, through the
main journey (landscape -> cone vs ball, move the cone slider -> trajectories); then a ninth session.

Checked: every session renders (a plotly figure, no Streamlit exception), no session sees another's
state (its URL query and its sliders keep its own values), the server's memory (RSS of the process
and its children, sampled all along) stays bounded, and the ninth session is served promptly. The
figures are printed and written to tests/e2e/concurrency.txt.

One Chromium, one browser context per session, driven with Playwright's async API (asyncio.gather)
in a worker thread of its own. Only 127.0.0.1 is contacted: any other request is aborted (and
counted). Every wait has a timeout and the whole run a deadline.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from toyopt.methods import METHODS
from toyopt.ui.cache import MAX_CACHE_BYTES

SESSIONS = 8
REPORT = Path(__file__).parent / "concurrency.txt"
#: Per-session method pairs (no method with a c grid, so the runs stay small).
METHOD_SETS = (
    "ls,mgda",
    "ls,pcgrad",
    "mgda,pcgrad",
    "ls,imtlg",
    "mgda,imtlg",
    "ls,normalized_sum",
    "pcgrad,imtlg",
    "ls,upgrad",
)
WAIT_MS = 90_000  # any single wait
RUN_DEADLINE_S = 150.0  # the eight journeys together
NINTH_BOUND_S = 60.0
#: The server's memory: what 8 + 1 sessions of small runs hold without any cached result (about
#: 430 MiB measured, rounded up to 640 MiB), plus at most the app's shared cache of results
#: (toyopt/ui/cache.py). benchmarks/bench_app_memory.py measures the 16 largest runs.
SERVER_BYTES = 640 * 2**20
RSS_BOUND = SERVER_BYTES + MAX_CACHE_BYTES
SAMPLE_EVERY_S = 0.2
DEBUG_DIR = os.environ.get("TOYOPT_E2E_DEBUG_DIR")  # screenshots of a failed session go here


@dataclass(frozen=True)
class SessionState:
    index: int
    methods: str
    steps: int
    cone_c: float
    ball_c: float

    @property
    def query(self) -> dict[str, str]:
        return {
            "view": "landscape",
            "setup": "nashmtl2022",
            "methods": self.methods,
            "steps": str(self.steps),
            "lr": "0.05",
            "cone_c": repr(self.cone_c),
            "ball_c": repr(self.ball_c),
        }


def session_state(i: int) -> SessionState:
    """Distinct on every key: methods, steps (so every session needs its own engine run), cone c
    and ball c (never the default 0.5, so they always stay in the URL)."""
    return SessionState(
        index=i,
        methods=METHOD_SETS[i % len(METHOD_SETS)],
        steps=200 + 10 * i,
        cone_c=round(-0.75 + 0.2 * i, 2),
        ball_c=round(0.15 + 0.2 * i, 2),
    )


# -- memory of the server's process tree --------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in bytes (0 once the process is gone)."""
    tree = _children()
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(tree.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


class RssSampler:
    """Samples tree_rss(pid) every SAMPLE_EVERY_S seconds in a daemon thread until stopped."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        started = time.perf_counter()
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - started, tree_rss(self.pid)))
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def peak(self) -> int:
        return max(v for _, v in self.samples)


# -- one session --------------------------------------------------------------------------------


@dataclass
class Outcome:
    state: SessionState
    seconds: dict[str, float] = field(default_factory=dict)
    final_query: dict[str, str] = field(default_factory=dict)
    slider_values: dict[str, tuple[float, float]] = field(default_factory=dict)
    steps_shown: str = ""
    figures: int = 0
    panels: list[str] = field(default_factory=list)  # the trajectory map's panel titles
    exceptions: int = 0


QUERY_JS = "() => Object.fromEntries(new URLSearchParams(location.search))"
PANELS_JS = """() => { const el = document.querySelector('.js-plotly-plot');
    return ((el && el.layout && el.layout.annotations) || []).map(a => a.text); }"""
SIGNATURE_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el =>
    JSON.stringify((el.data || []).map(t => [t.name, t.x, t.y]))).join('|')"""


async def _expect(page, target, timeout: int = WAIT_MS) -> None:
    """Wait for ``target`` (a selector or a locator); fail at once, with its text, if the app shows
    an exception instead."""
    wanted = page.locator(target) if isinstance(target, str) else target
    exception = page.locator("[data-testid=stException]")
    await wanted.or_(exception).first.wait_for(timeout=timeout)
    if await exception.count():
        text = await exception.first.inner_text()
        raise AssertionError(f"Streamlit exception while waiting for {target!r}: {text[:800]}")


async def _settle(page) -> None:
    """A figure is drawn and the script run has finished (no 'Running' status widget)."""
    await _expect(page, ".js-plotly-plot")
    await page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=WAIT_MS, polling=100
    )
    await page.wait_for_timeout(300)


async def _slider_value(page, label: str) -> tuple[float, float]:
    """The slider's value and the number shown on its thumb."""
    slider = page.locator("[data-testid=stSlider]", has_text=label)
    value = await slider.get_by_role("slider").input_value(timeout=WAIT_MS)
    shown = await slider.get_by_test_id("stSliderThumbValue").inner_text(timeout=WAIT_MS)
    return float(value), float(shown)


async def _exceptions(page) -> int:
    return await page.locator("[data-testid=stException]").count()


async def journey(context, base_url: str, s: SessionState) -> Outcome:
    page = await context.new_page()
    try:
        return await _journey(page, base_url, s)
    except Exception as exc:
        if DEBUG_DIR:
            await page.screenshot(path=f"{DEBUG_DIR}/session{s.index}.png", full_page=True)
        raise AssertionError(f"session {s.index} at {page.url}: {type(exc).__name__}: {exc}") from exc


async def _journey(page, base_url: str, s: SessionState) -> Outcome:
    out = Outcome(s)
    started = time.perf_counter()
    await page.goto(f"{base_url}/?{urlencode(s.query)}", timeout=WAIT_MS)
    await _settle(page)
    out.seconds["landscape"] = time.perf_counter() - started
    assert await page.locator("text=Pareto front in loss space").count() >= 1
    out.exceptions += await _exceptions(page)
    out.steps_shown = await page.get_by_label("steps", exact=True).input_value(timeout=WAIT_MS)

    # Cone vs ball: the sliders show this session's c values; one key press moves the cone's.
    t = time.perf_counter()
    await page.get_by_text("Cone vs ball", exact=True).click(timeout=WAIT_MS)
    await _expect(page, "text=Gradient space at the chosen point")
    await _settle(page)
    out.seconds["regions"] = time.perf_counter() - t
    out.slider_values["cone_c (link)"] = await _slider_value(page, "ConicGrad cone c")
    out.slider_values["ball_c (link)"] = await _slider_value(page, "CAGrad ball c")
    before = await page.evaluate(SIGNATURE_JS)
    cone = page.locator("[data-testid=stSlider]", has_text="ConicGrad cone c").get_by_role("slider")
    await cone.focus(timeout=WAIT_MS)
    await cone.press("ArrowLeft", timeout=WAIT_MS)
    moved = round(s.cone_c - 0.01, 2)
    await page.wait_for_function(
        "(c) => Math.abs(parseFloat(new URLSearchParams(location.search).get('cone_c')) - c) < 1e-9",
        arg=moved,
        timeout=WAIT_MS,
        polling=100,
    )
    await page.wait_for_function(f"(b) => ({SIGNATURE_JS})() !== b", arg=before, timeout=WAIT_MS, polling=100)
    await _settle(page)
    out.slider_values["cone_c (moved)"] = await _slider_value(page, "ConicGrad cone c")
    out.exceptions += await _exceptions(page)

    # Trajectories: this session's own engine run.
    t = time.perf_counter()
    await page.get_by_text("Trajectories", exact=True).click(timeout=WAIT_MS)
    run_anyway = page.get_by_role("button", name="Run anyway")
    await _expect(page, page.locator("text=Outcomes").or_(run_anyway))
    if await run_anyway.count():
        await run_anyway.click(timeout=WAIT_MS)
        await _expect(page, "text=Outcomes")
    await _settle(page)
    await page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=WAIT_MS, polling=100
    )
    await page.wait_for_function(
        "() => new URLSearchParams(location.search).get('view') === 'trajectories'",
        timeout=WAIT_MS,
        polling=100,
    )
    out.seconds["trajectories"] = time.perf_counter() - t
    out.seconds["journey"] = time.perf_counter() - started
    out.figures = await page.locator(".js-plotly-plot").count()
    out.panels = await page.evaluate(PANELS_JS)
    out.exceptions += await _exceptions(page)
    out.final_query = await page.evaluate(QUERY_JS)
    return out


async def ninth(context, base_url: str, s: SessionState) -> Outcome:
    """A fresh session straight to the trajectories of its own (not yet cached) run."""
    out = Outcome(s)
    page = await context.new_page()
    started = time.perf_counter()
    await page.goto(f"{base_url}/?{urlencode(dict(s.query, view='trajectories'))}", timeout=WAIT_MS)
    await _expect(page, "text=Outcomes", timeout=int(NINTH_BOUND_S * 1000))
    await _settle(page)
    out.seconds["render"] = time.perf_counter() - started
    out.figures = await page.locator(".js-plotly-plot").count()
    out.panels = await page.evaluate(PANELS_JS)
    out.exceptions = await _exceptions(page)
    out.final_query = await page.evaluate(QUERY_JS)
    return out


async def drive(base_url: str, launch: dict, blocked: list[str]) -> tuple[list[Outcome], Outcome]:
    from playwright.async_api import async_playwright

    async def loopback_only(route) -> None:
        host = urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async with async_playwright() as p:
        browser = await p.chromium.launch(**launch)
        try:
            contexts = []
            for _ in range(SESSIONS + 1):
                context = await browser.new_context(viewport={"width": 1400, "height": 1100})
                context.set_default_timeout(WAIT_MS)
                await context.route("**/*", loopback_only)
                contexts.append(context)
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(journey(contexts[i], base_url, session_state(i)) for i in range(SESSIONS))),
                timeout=RUN_DEADLINE_S,
            )
            # The eight sessions stay open (connected) while the ninth is served.
            last = await asyncio.wait_for(
                ninth(contexts[SESSIONS], base_url, session_state(SESSIONS)), timeout=NINTH_BOUND_S + 30
            )
            for context in contexts:
                await context.close()
        finally:
            await browser.close()
    return list(outcomes), last


def run_in_thread(fn, timeout: float):
    """Run ``fn()`` in a worker thread (its own event loop, apart from any sync Playwright)."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"the browser sessions did not finish within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


@pytest.mark.e2e
def test_eight_concurrent_sessions_and_a_ninth(streamlit_server, chromium_options):
    server = streamlit_server()
    blocked: list[str] = []
    baseline = tree_rss(server.pid)
    wall = time.perf_counter()
    with RssSampler(server.pid) as sampler:
        outcomes, last = run_in_thread(
            lambda: asyncio.run(drive(server.url, chromium_options, blocked)),
            timeout=RUN_DEADLINE_S + NINTH_BOUND_S + 90,
        )
    wall = time.perf_counter() - wall
    final = tree_rss(server.pid)
    assert server.proc.poll() is None, "the server died"

    lines = [
        f"{SESSIONS} concurrent sessions + 1, one Streamlit server, one Chromium "
        f"({os.cpu_count()} CPUs); wall time {wall:.1f} s",
        f"server RSS (process tree): before {_mib(baseline)}, peak {_mib(sampler.peak)}, "
        f"after {_mib(final)} ({len(sampler.samples)} samples every {SAMPLE_EVERY_S:g} s)",
    ]
    for o in outcomes:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in o.seconds.items())
        lines.append(f"session {o.state.index} ({o.state.methods}, {o.state.steps} steps): {parts}")
    journeys = [o.seconds["journey"] for o in outcomes]
    lines.append(
        f"journey time: median {statistics.median(journeys):.1f} s, max {max(journeys):.1f} s; "
        f"first render (landscape): max {max(o.seconds['landscape'] for o in outcomes):.1f} s"
    )
    lines.append(f"ninth session (opened afterwards, own run): rendered in {last.seconds['render']:.1f} s")
    lines.append(f"non-loopback requests aborted: {len(blocked)}")
    report = "\n".join(lines) + "\n"
    REPORT.write_text(report)
    print(report)

    for o in [*outcomes, last]:
        s = o.state
        assert o.exceptions == 0, f"session {s.index}: a Streamlit exception was shown"
        assert o.figures >= 3, f"session {s.index}: {o.figures} figures"
        q = o.final_query
        expected = {"methods": s.methods, "steps": str(s.steps), "setup": "nashmtl2022"}
        assert {k: q.get(k) for k in expected} == expected, f"session {s.index}: query {q}"
        labels = [METHODS[m].label for m in s.methods.split(",")]
        assert o.panels == labels, f"session {s.index} shows the panels {o.panels}, not {labels}"
    for o in outcomes:
        s = o.state
        assert o.final_query.get("view") == "trajectories"
        assert float(o.final_query["cone_c"]) == pytest.approx(s.cone_c - 0.01), o.final_query
        assert float(o.final_query["ball_c"]) == pytest.approx(s.ball_c), o.final_query
        expected_sliders = {
            "cone_c (link)": s.cone_c,
            "ball_c (link)": s.ball_c,
            "cone_c (moved)": round(s.cone_c - 0.01, 2),
        }
        for name, want in expected_sliders.items():
            value, shown = o.slider_values[name]
            assert value == pytest.approx(want) and shown == pytest.approx(want), (
                s.index,
                name,
                value,
                shown,
            )
        assert int(o.steps_shown) == s.steps, f"session {s.index} shows steps {o.steps_shown}"
    assert float(last.final_query["cone_c"]) == pytest.approx(session_state(SESSIONS).cone_c)
    assert last.seconds["render"] < NINTH_BOUND_S
    assert sampler.peak < RSS_BOUND, f"server RSS peaked at {_mib(sampler.peak)} (bound {_mib(RSS_BOUND)})"
