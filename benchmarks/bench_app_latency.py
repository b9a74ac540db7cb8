"""The app's latency in a real browser: a sidebar change on the Trajectories view (the learning rate,
so a new engine run) until the chart has re-rendered, with the compiled steps ready and eager.

Run:  python benchmarks/bench_app_latency.py [--methods ls,mgda] [--changes 3] [--port 8613]
      -> benchmarks/results/app_latency.json

Each backend gets a server of its own on 127.0.0.1 (Debian chromium + Playwright drive it). For
"compiled" the server's process first compiles the methods' segments in process (what
``toyopt.compiled.missing`` looks at) and then serves; for "eager" nothing is compiled, so every run
is eager with the page's notice. The page opens at the published settings of the default preset with
``--methods``; an eager run estimated above the slow-run gate is approved by a click (counted in the
time). Times are wall time, inflated by the machine's load (recorded with them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from browser import CHROMIUM, CHROMIUM_ARGS  # benchmarks/browser.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "app_latency.json"
TIMEOUT_MS = 1_800_000
#: The first plotly chart's traces (the trajectories map), as a string that changes with the run.
SIGNATURE = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).slice(0, 1).map(el =>
    JSON.stringify((el.data || []).filter(t => t.type !== 'contour').map(t => [t.name, t.x, t.y])))
    .join('|')"""
GATE = "() => Array.from(document.querySelectorAll('button')).some(b => b.innerText.includes('Run anyway'))"
DONE = (
    "(before) => { const s = (" + SIGNATURE + ")(); return s !== '' && s !== before && "
    "!document.querySelector('[data-testid=stStatusWidget]'); }"
)
#: The server: optionally compile the methods in this process, then serve app.py.
SERVER = """
import sys, time, torch
torch.set_num_threads(1)
port, methods = int(sys.argv[1]), sys.argv[2:]
if methods:
    from toyopt.cli import main
    from toyopt.setups import DEFAULT_SETUP
    started = time.perf_counter()
    main(["warmup", "--setup", DEFAULT_SETUP, "--method", *methods])
    print(f"warm in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
from streamlit.web import bootstrap
flags = {"server_headless": True, "server_address": "127.0.0.1", "server_port": port,
         "browser_gatherUsageStats": False, "server_fileWatcherType": "none"}
bootstrap.load_config_options(flag_options=flags)
bootstrap.run("app.py", False, [], flags)
"""


def serve(port: int, warm: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TOYOPT_WARMUP": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), *warm],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 1800
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server exited") from None
            time.sleep(1)
    raise RuntimeError("the server did not start")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def approve(page) -> bool:
    button = page.get_by_role("button", name="Run anyway")
    if button.count():
        button.first.click()
        return True
    return False


def measure(port: int, methods: str, changes: int) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1250})
        started = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/?view=trajectories&methods={methods}")
        page.wait_for_function(
            f"() => document.querySelector('.js-plotly-plot') || ({GATE})()", timeout=TIMEOUT_MS
        )
        gated = approve(page)
        page.wait_for_function(DONE, arg="", timeout=TIMEOUT_MS, polling=100)
        first = time.perf_counter() - started
        notices = page.locator("[data-testid=stAlertContentInfo]").all_inner_texts()
        lr = page.get_by_label("learning rate")
        times, gates = [], []
        for k in range(changes):
            before = page.evaluate(SIGNATURE)
            lr.fill(f"{0.0011 + 0.0001 * k:.4f}")
            started = time.perf_counter()
            lr.press("Enter")
            page.wait_for_function(
                f"(before) => ({GATE})() || ({DONE})(before)", arg=before, timeout=TIMEOUT_MS, polling=16
            )
            gates.append(approve(page))
            page.wait_for_function(DONE, arg=before, timeout=TIMEOUT_MS, polling=16)
            times.append(round((time.perf_counter() - started) * 1000))
        captions = page.locator("[data-testid=stCaptionContainer]").all_inner_texts()
        caption = next((c for c in captions if "steps of" in c), "")
        browser.close()
    return {
        "first_chart_s": round(first, 1),
        "first_gated": gated,
        "notices": notices,
        "lr_change_ms": times,
        "lr_change_median_ms": statistics.median(times) if times else None,
        "gated": gates,
        "last_caption": caption,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default="ls,mgda")
    ap.add_argument("--changes", type=int, default=3)
    ap.add_argument("--port", type=int, default=8613)
    ap.add_argument("--backends", default="compiled,eager")
    args = ap.parse_args()
    out = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "methods": args.methods,
        "load_before": os.getloadavg(),
    }
    for backend in args.backends.split(","):
        proc = serve(args.port, args.methods.split(",") if backend == "compiled" else [])
        try:
            out[backend] = measure(args.port, args.methods, args.changes)
        finally:
            stop(proc)
        out[backend]["load_after"] = os.getloadavg()
        print(backend, json.dumps(out[backend]), flush=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
