"""Basin-map benchmark: a whole grid of starts as one batch of engine lanes, against stepping one
point at a time the way the original toy scripts do.

Run:  python benchmarks/bench_basins.py [--grid 100] [--steps 35000] [--method ls] [--backend eager]
Writes benchmarks/results/basins.json; docs/basins.md summarises it.

* Engine: ``toyopt.outcomes.run_basins`` (so ``toyopt.engine.run`` with Config.inits = every grid
  point and three recorded states per lane) plus the classification, timed end to end, twice in
  one process: ``first_map_seconds`` includes compiling, the reported run reuses the kernel.
* Baseline: one start, ``torch.nn.Parameter`` x (2,), the losses from ``problem.losses``, autograd
  of the summed loss (LS in the Nash-MTL convention), ``torch.optim.Adam``; ``--baseline-steps``
  steps are timed and extrapolated to grid^2 x steps start-steps.
Both are reported as start-steps per second (starts x steps / seconds). Target (the issue): a
10^4-start map of one method at 35k steps in <= 30 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toyopt.config import Config  # noqa: E402
from toyopt.outcomes import Starts, run_basins, success_table  # noqa: E402
from toyopt.problems import get_problem  # noqa: E402
from toyopt.setups import get_setup  # noqa: E402

TARGET_SECONDS = 30.0


def baseline(setup_name: str, steps: int) -> float:
    """Seconds per step of one point stepped alone with autograd and torch.optim.Adam."""
    setup = get_setup(setup_name)
    problem = get_problem("liu2021")
    params = problem.validate_params(setup.problem_params)
    x = torch.nn.Parameter(torch.tensor([-8.5, 7.5], dtype=torch.float64))
    opt = torch.optim.Adam([x], lr=setup.lr)
    for _ in range(20):  # warm-up
        opt.zero_grad()
        problem.losses(x[None], params).sum().backward()
        opt.step()
    started = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        problem.losses(x[None], params).sum().backward()
        opt.step()
    return (time.perf_counter() - started) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup", default="nashmtl2022")
    ap.add_argument("--method", default="ls")
    ap.add_argument("--grid", type=int, default=100)
    ap.add_argument("--steps", type=int, default=None, help="default: the setup's (35000)")
    ap.add_argument("--backend", default=None, help="engine backend, when the Config has one")
    ap.add_argument("--baseline-steps", type=int, default=300)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "basins.json"))
    args = ap.parse_args(argv)

    setup = get_setup(args.setup)
    steps = args.steps or setup.steps
    overrides = {"steps": steps}
    if args.backend is not None:
        if "backend" not in Config.__dataclass_fields__:
            ap.error("this engine has no backend option")
        overrides["backend"] = args.backend
    base = setup.config([args.method], **overrides)
    box = tuple(tuple(r) for r in get_problem(base.problem).box)
    starts = Starts("grid", args.grid, box)

    # Twice in one process: the first map includes compiling (backend "compiled"; from inductor's
    # on-disk cache when warm), the second reuses the compiled kernel, as a second map in the app's
    # server process does.
    started = time.perf_counter()
    run_basins(base, starts)
    first_total = time.perf_counter() - started
    started = time.perf_counter()
    outcomes, result = run_basins(base, starts)
    total = time.perf_counter() - started
    start_steps = starts.count * steps
    per_step = baseline(args.setup, args.baseline_steps)
    baseline_rate = 1.0 / per_step
    engine_rate = start_steps / total
    row = success_table(outcomes)[0]
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            # Other processes share these cores: compare numbers within one run only.
            "load_average_1_5_15": list(os.getloadavg()),
        },
        "setup": args.setup,
        "method": args.method,
        "backend": getattr(result.config, "backend", "eager"),
        "grid": args.grid,
        "starts": starts.count,
        "steps": steps,
        "first_map_seconds": first_total,
        "engine_seconds": total,
        "engine_run_seconds": result.seconds,
        "classify_seconds": total - result.seconds,
        "engine_ms_per_step": 1e3 * result.seconds / steps,
        "engine_start_steps_per_second": engine_rate,
        "baseline_steps_measured": args.baseline_steps,
        "baseline_us_per_step": 1e6 * per_step,
        "baseline_start_steps_per_second": baseline_rate,
        "baseline_extrapolated_seconds": start_steps * per_step,
        "speedup": engine_rate / baseline_rate,
        "target_seconds": TARGET_SECONDS,
        "extrapolated_35k_10k_seconds": total * (35_000 / steps) * (10_000 / starts.count),
        "meets_target": bool(total * (35_000 / steps) * (10_000 / starts.count) <= TARGET_SECONDS),
        "outcome_fractions": {k: row[k] for k in ("global_min", "pareto", "stalled", "moving", "diverged")},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
