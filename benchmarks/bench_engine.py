"""Engine benchmark: batched engine (eager and compiled) against the one-point-at-a-time baseline.

Run:  python benchmarks/bench_engine.py [--quick]
      python benchmarks/bench_engine.py --segments METHOD ... [--threads 1]
Writes benchmarks/results/engine.json; docs/benchmarks.md summarises it. Every figure is a median
of repeated measurements in this one run (these machines are noisy: compare within a run only).

The baseline steps one starting point at a time the way the original toy scripts do: a
``torch.nn.Parameter`` x of shape (2,), the losses from ``problem.losses``, four scalar autograd
calls (df_i/dx_j) per step, the method applied to the two gradients, and ``torch.optim.Adam``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toyopt.compiled import cache_dir as compiled_cache_dir  # noqa: E402
from toyopt.config import STANDARD5, Config, MethodEntry  # noqa: E402
from toyopt.engine import run  # noqa: E402
from toyopt.methods import METHODS, StepInput, lane_params  # noqa: E402
from toyopt.problems import get_problem  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "engine.json"


def baseline_seconds_per_step(method: str, steps: int) -> float:
    """Median seconds per step per start of the original-script style loop."""
    problem = get_problem("liu2021")
    spec = METHODS[method]
    params = lane_params(spec, {}, 1, torch.float32)
    times = []
    for init in STANDARD5[:3]:
        x = torch.nn.Parameter(torch.tensor(init, dtype=torch.float32))
        opt = torch.optim.Adam([x], lr=1e-3)
        state = spec.init_state(1, 2, 2, params, torch.float32)
        lower = torch.tensor([[-2.1, -21.0]])
        start = time.perf_counter()
        for _ in range(steps):
            f = problem.losses(x[None], {"scale": 0.1})[0]
            g11 = torch.autograd.grad(f[0], x, retain_graph=True)[0][0].item()
            g12 = torch.autograd.grad(f[0], x, retain_graph=True)[0][1].item()
            g21 = torch.autograd.grad(f[1], x, retain_graph=True)[0][0].item()
            g22 = torch.autograd.grad(f[1], x)[0][1].item()
            grads = torch.tensor([[[g11, g12], [g21, g22]]])
            out = spec.step(StepInput(grads, f.detach()[None], lower, None, torch.tensor(0.0)), state, params)
            state = out.state
            opt.zero_grad()
            x.grad = out.direction[0]
            opt.step()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def timed(config: Config, repeats: int) -> tuple[float, float]:
    """(median seconds, first-call seconds) of engine.run over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(config)
        times.append(time.perf_counter() - t)
    return statistics.median(times), times[0]


def _cpu() -> float:
    """Process CPU seconds including finished children (the C++ compiler runs as a child)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timed_run(config: Config) -> dict:
    wall, cpu = time.perf_counter(), _cpu()
    result = run(config)
    assert result.backend == "compiled", result.notices
    return {"wall_s": time.perf_counter() - wall, "cpu_s": _cpu() - cpu}


def _new_process_load(method: str) -> dict:
    """A new Python process runs 2 steps of ``method`` from the packaged segment: the process's
    own time around the run (loading the package, no compiling)."""
    code = (
        "import json, time, resource; from dataclasses import replace; "
        "from toyopt.engine import run; from toyopt.setups import get_setup; "
        f"c = get_setup('nashmtl2022').config(methods=[{method!r}], steps=2, backend='compiled'); "
        "w, p = time.perf_counter(), time.process_time(); r = run(c); "
        "print(json.dumps({'wall_s': time.perf_counter() - w, 'cpu_s': time.process_time() - p, "
        "'backend': r.backend}))"
    )
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compiled_segments(methods: list[str], steps: int, save=None) -> dict:
    """Per method (Nash-MTL preset, 5 starts): the first compiled call (compiling into toyopt's
    cache when the package is missing), loading the package in a new process, ``steps`` steps
    recorded every 70 (the app's interval at 35k steps: 500 segment calls) and once (one call),
    and the segment's own cost per step and per call. Wall and process CPU seconds (the machine
    is shared: CPU time says what the run itself cost; the compile's CPU includes the compiler)."""
    from toyopt import compiled
    from toyopt.setups import get_setup

    setup = get_setup("nashmtl2022")
    out = {"load_average_1_5_15_at_start": list(os.getloadavg())}
    for name in methods:
        config = setup.config(methods=[name], steps=steps, record_every=70, backend="compiled")
        row = {"packaged_before": not compiled.missing(config)}
        row["first_call"] = _timed_run(replace(config, steps=2, record_every=1))
        row["new_process_load"] = _new_process_load(name)
        every = [_timed_run(config) for _ in range(3)]
        once = [_timed_run(replace(config, record_every=steps)) for _ in range(3)]
        for label, rows in (("every_70", every), ("one_record", once)):
            row[label] = {k: statistics.median(r[k] for r in rows) for k in ("wall_s", "cpu_s")}
        row["us_per_step_cpu"] = row["one_record"]["cpu_s"] / steps * 1e6
        row["us_per_segment_call_cpu"] = (
            (row["every_70"]["cpu_s"] - row["one_record"]["cpu_s"]) / (steps / 70) * 1e6
        )
        row["steps"] = steps
        out[name] = row
        print(name, json.dumps(row), flush=True)
        if save is not None:  # each method's row as soon as it is measured
            save(out)
    out["load_average_1_5_15_at_end"] = list(os.getloadavg())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter runs (extrapolated to 35k steps)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--segments", nargs="+", default=None, help="time these methods' compiled segments only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.segments:
        previous = json.loads(OUT.read_text()) if OUT.exists() else {}

        def save(rows: dict) -> None:
            previous["compiled_segments"] = {
                **rows,
                "threads": torch.get_num_threads(),
                "cache_dir": str(compiled_cache_dir()),
            }
            OUT.write_text(json.dumps(previous, indent=1))

        save(compiled_segments(args.segments, 35_000, save))
        return
    steps = 2_000 if args.quick else 35_000
    out: dict = {
        "machine": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # Other processes share these cores: compare numbers within one run only.
        "load_average_1_5_15_at_start": list(os.getloadavg()),
    }

    base = baseline_seconds_per_step("mgda", 300)
    out["baseline_us_per_step_per_start"] = base * 1e6
    out["baseline_5starts_35k_s_extrapolated"] = base * 5 * 35_000

    # One method from the five standard starts. The compiled backend's first call includes the
    # compilation (cold, or from inductor's on-disk cache when an earlier run compiled it).
    one = Config(methods=(MethodEntry("mgda"),), problem_params={"scale": 0.1}, steps=steps, record_every=10)
    for backend in ("eager", "compiled"):
        med, first = timed(replace(one, backend=backend), 3)
        scale = 35_000 / steps
        out[f"{backend}_5starts_1method"] = {
            "steps": steps,
            "median_s": med,
            "first_call_s": first,
            "median_s_at_35k": med * scale,
            "speedup_vs_baseline_at_35k": out["baseline_5starts_35k_s_extrapolated"] / (med * scale),
        }

    # Every method from the five starts in one run (eager: one compiled graph of every method
    # takes longer to compile than the run saves), and each method alone, which says where the
    # time goes: per-step cost is the sum of the methods' tensor operations.
    all_steps = 500 if args.quick else 2_000
    every = Config(
        methods=tuple(MethodEntry(m) for m in METHODS),
        problem_params={"scale": 0.1},
        steps=all_steps,
        record_every=10,
    )
    med, first = timed(every, 2)
    out["eager_all_methods_5starts"] = {
        "methods": len(every.methods),
        "steps": all_steps,
        "median_s": med,
        "median_s_at_35k_extrapolated": med * 35_000 / all_steps,
    }
    per_method = {}
    for name in METHODS:
        med, _ = timed(replace(every, methods=(MethodEntry(name),), steps=1000), 3)
        per_method[name] = med / 1000 * 1e6
    out["eager_us_per_step_by_method_5starts"] = dict(sorted(per_method.items(), key=lambda kv: -kv[1]))

    # A multiple of the compiled block length, long enough that a run's fixed costs (validating
    # 10^4 starts, building the Result) stay small against the steps.
    lane_steps = 320 if args.quick else 3200
    for lanes in (100, 1_000, 10_000):
        side = round(lanes**0.5)
        inits = tuple(
            (-9 + 18 * (i % side) / (side - 1), -9 + 18 * (i // side) / (side - 1)) for i in range(lanes)
        )
        cfg = Config(
            methods=(MethodEntry("ls"),),
            inits=inits,
            problem_params={"scale": 0.1},
            steps=lane_steps,
            record_every=lane_steps,
        )
        for backend in ("eager", "compiled"):
            med, _ = timed(replace(cfg, backend=backend), 3)
            out[f"{backend}_lanes_{lanes}"] = {
                "steps": lane_steps,
                "median_s": med,
                "lane_steps_per_s": lanes * lane_steps / med,
                "ns_per_lane_step": med / (lanes * lane_steps) * 1e9,
            }
    out["load_average_1_5_15_at_end"] = list(os.getloadavg())
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
