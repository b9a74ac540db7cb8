"""Memory of the app server under 8 browser sessions with 2 runs each (issue 12, item 11).

Starts ``streamlit run app.py`` (from ``--root``, default this checkout) on 127.0.0.1, opens 8
Chromium contexts at once, and in each: a link straight to the Trajectories view (run A, clicking
"Run anyway" if asked), then a new step count typed into the sidebar (run B, a second run of the
same session). Every session's runs differ from every other's (its own seed), so 16 distinct runs
are computed. The server's VmRSS is sampled every 0.2 s throughout; its VmHWM is its peak.

Scenarios: ``default`` (the default preset's methods and starts; 1000 steps, recorded at about 500
states as the published 35 000 steps are) and
``largest`` (the largest run a link allows in recorded memory: 8 methods, three of them with a c
grid of 21 values, 12 starts, about 500 recorded states). Figures: RSS before, peak, settled with the
8 tabs still open (after a 15 s pause) and settled after they closed.

    nice -n 5 python benchmarks/bench_app_memory.py --scenario largest \
        --out benchmarks/results/app_memory.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (benchmarks/browser.py)

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 8
WAIT_MS = 600_000
LARGEST_METHODS = "cagrad,conicgrad,conicgrad_exact,ls,pcgrad,mgda,imtlg,normalized_sum"
LARGEST_INITS = ";".join(f"{x:g},{y:g}" for x, y in ((i - 6.0, 0.5 * i - 3.0) for i in range(12)))
# Run A's and run B's steps (B is typed into the sidebar): not the preset's, so that they stay in
# the URL; about 500 recorded states either way (as at the published steps), in less time.
STEPS = {"default": (1000, 1100), "largest": (1000, 1100)}


def query(scenario: str, session: int) -> dict[str, str]:
    q = {"view": "trajectories", "setup": "conicgrad2025", "seed": str(session), "lr": "0.01"}
    q["steps"] = str(STEPS[scenario][0])
    if scenario == "largest":
        q.update(methods=LARGEST_METHODS, inits=LARGEST_INITS)
    return q


def proc_status(pid: int, key: str) -> int:
    """A /proc/<pid>/status field in bytes (VmRSS, VmHWM); 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def start_server(root: Path, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    cmd += ["--server.address", "127.0.0.1", "--server.port", str(port)]
    cmd += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOYOPT_WARMUP="0")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError("streamlit did not start")


async def _shown(page, steps: int) -> None:
    """Wait until the Trajectories view of ``steps`` steps has drawn (clicking Run anyway)."""
    run_anyway = page.get_by_role("button", name="Run anyway")
    await page.wait_for_function(
        "(s) => new URLSearchParams(location.search).get('steps') === String(s)", arg=steps, timeout=WAIT_MS
    )
    await page.locator("text=Outcomes").or_(run_anyway).first.wait_for(timeout=WAIT_MS)
    if await run_anyway.count():
        await run_anyway.click()
    await page.locator("text=Outcomes").first.wait_for(timeout=WAIT_MS)
    await page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=WAIT_MS, polling=200
    )
    if await page.locator("[data-testid=stException]").count():
        raise AssertionError(await page.locator("[data-testid=stException]").first.inner_text())


async def session(browser, base: str, scenario: str, i: int) -> float:
    context = await browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    started = time.perf_counter()
    steps_a, steps_b = STEPS[scenario]
    await page.goto(f"{base}/?{urlencode(query(scenario, i))}", timeout=WAIT_MS)
    await _shown(page, steps_a)
    field = page.get_by_label("steps", exact=True)
    await field.fill(str(steps_b))
    await field.press("Enter")
    await _shown(page, steps_b)
    return context, time.perf_counter() - started


async def drive(base: str, scenario: str, pid: int, samples: list) -> dict:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        done = await asyncio.gather(*(session(browser, base, scenario, i) for i in range(SESSIONS)))
        await asyncio.sleep(15)
        open_rss = proc_status(pid, "VmRSS")
        for context, _ in done:
            await context.close()
        await browser.close()
    await asyncio.sleep(15)
    return {"journeys_s": sorted(round(s, 1) for _, s in done), "settled_open": open_rss}


def measure(root: Path, scenario: str, port: int) -> dict:
    proc = start_server(root, port)
    try:
        time.sleep(2)
        before = proc_status(proc.pid, "VmRSS")
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(proc_status(proc.pid, "VmRSS"))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wall = time.perf_counter()
        out = asyncio.run(drive(f"http://127.0.0.1:{port}", scenario, proc.pid, samples))
        stop.set()
        sampler.join()
        mib = 2**20
        cpu = _cpu_seconds(proc.pid)
        return {
            "scenario": scenario,
            "root": str(root),
            "sessions": SESSIONS,
            "runs": 2 * SESSIONS,
            "wall_s": round(time.perf_counter() - wall, 1),
            "server_cpu_s": cpu,
            "journeys_s": out["journeys_s"],
            "rss_before_mib": round(before / mib),
            "rss_peak_sampled_mib": round(max(samples) / mib),
            "vmhwm_mib": round(proc_status(proc.pid, "VmHWM") / mib),
            "rss_settled_open_mib": round(out["settled_open"] / mib),
            "rss_settled_closed_mib": round(proc_status(proc.pid, "VmRSS") / mib),
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of the server process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--scenario", choices=sorted(STEPS), default="default")
    parser.add_argument("--port", type=int, default=8612)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = dict(measure(args.root, args.scenario, args.port), label=args.label)
    result["bench_cpu_s"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_utime, 1)
    print(json.dumps(result))
    if args.out:
        runs = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps(runs + [result], indent=1) + "\n")


if __name__ == "__main__":
    main()
