"""Run-time estimate benchmark: how close the basin page's estimate (``budget.estimated_seconds``,
from the Config alone) comes to the real run time, with one torch thread as the app runs.

Run:  python benchmarks/bench_estimate.py [--repeats N]
Writes benchmarks/results/estimate.json; docs/benchmarks.md summarises it. Medians of ``repeats``
(estimate, run) pairs in this one run; these machines are shared and noisy. The unit test of the
estimate (tests/outcomes/test_basins_end_to_end.py) checks behaviour, not wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toyopt.budget import estimated_seconds  # noqa: E402
from toyopt.engine import run  # noqa: E402
from toyopt.ui.basins import BasinRequest  # noqa: E402

CASES = [  # (setup, methods, grid side, steps)
    ("nashmtl2022", ("ls", "mgda"), 30, 1200),
    ("nashmtl2022", ("ls", "mgda", "cagrad"), 40, 3000),
]


def measure(setup: str, methods: tuple[str, ...], n: int, steps: int, repeats: int) -> dict:
    config, _ = BasinRequest(setup, methods, n=n, steps=steps).build()
    estimates, runs = [], []
    for _ in range(repeats):
        estimates.append(estimated_seconds(config))
        started = time.perf_counter()
        run(config)
        runs.append(time.perf_counter() - started)
    estimate, real = statistics.median(estimates), statistics.median(runs)
    return {
        "setup": setup,
        "methods": list(methods),
        "starts": n * n,
        "steps": steps,
        "estimate_seconds": estimates,
        "run_seconds": runs,
        "median_estimate_seconds": estimate,
        "median_run_seconds": real,
        "ratio_estimate_to_run": estimate / real,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "note": "one torch thread; medians over repeats; machine shared with other jobs",
        "cases": [measure(*case, args.repeats) for case in CASES],
    }
    out = Path(__file__).parent / "results" / "estimate.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    for case in results["cases"]:
        print(
            f"{case['starts']} starts x {case['steps']} steps, {'+'.join(case['methods'])}: estimate "
            f"{case['median_estimate_seconds']:.2f} s, run {case['median_run_seconds']:.2f} s, "
            f"ratio {case['ratio_estimate_to_run']:.2f}"
        )


if __name__ == "__main__":
    main()
