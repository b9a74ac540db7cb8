"""Animation benchmark: seconds to write a GIF from a finished run, blitted frames (what
``toyopt.figures.animation`` does: one background, moving artists redrawn per frame) against a full
redraw of the figure per frame (timed on 10 frames), and the phases of the blitted path.

Run:  python benchmarks/bench_animation.py [--quick]
Writes benchmarks/results/animation.json. Every figure is a median over repeats in this one run
(the machine is shared and noisy: compare within a run only).
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

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toyopt.engine import run  # noqa: E402
from toyopt.figures import FigureSpec, animation  # noqa: E402
from toyopt.figures.style import RC  # noqa: E402
from toyopt.setups import get_setup  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "animation.json"


def full_redraw_seconds_per_frame(result, spec: FigureSpec, frames: int = 10) -> float:
    """Median seconds per frame when every frame is drawn from scratch (canvas.draw), over the
    first ``frames`` frames, for comparison (the figure is built and drawn once first)."""
    with rc_context(RC):
        anim = animation.build(result, spec)
        canvas = FigureCanvasAgg(anim.fig)
        canvas.draw()
        times = []
        for k in range(frames):
            start = time.perf_counter()
            anim.show(k)
            canvas.draw()
            np.asarray(canvas.buffer_rgba())[..., :3].copy()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def phases(result, spec: FigureSpec) -> dict[str, float]:
    """Seconds of: building the figure, the frames (background + moving artists), GIF encoding."""
    with rc_context(RC):
        t0 = time.perf_counter()
        anim = animation.build(result, spec)
        t1 = time.perf_counter()
        frames = list(animation.frames_rgb(anim))
        t2 = time.perf_counter()
        animation.write_gif(frames, spec.fps, "", animation.gif_palette([frames[0], frames[-1]]))
        t3 = time.perf_counter()
    return {"build": t1 - t0, "frames": t2 - t1, "gif": t3 - t2}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    args = parser.parse_args()
    steps, repeats = (500, 1) if args.quick else (2000, 3)
    config = get_setup("conicgrad2025").config(None, steps=steps)
    result = run(config)
    cases = {
        "double, 60 frames": FigureSpec(layout="animation"),
        "slide 1280x720 + gradient panels, 60 frames": FigureSpec(
            layout="animation", width="slide", regions_start=0
        ),
    }
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]},
        "run": {"setup": "conicgrad2025", "steps": steps, "lanes": len(result.lanes)},
        "cases": {},
    }
    for name, spec in cases.items():
        spec = spec.validated()
        blitted = [phases(result, spec) for _ in range(repeats)]
        frames = len(animation.frame_indices(result, spec.frames))
        out["cases"][name] = {
            "pixels": list(animation.grid(config, spec).pixels),
            "frames": frames,
            "blitted_seconds": statistics.median(sum(p.values()) for p in blitted),
            "blitted_phases": {k: statistics.median(p[k] for p in blitted) for k in blitted[0]},
            "blitted_frames_seconds_per_frame": statistics.median(p["frames"] for p in blitted) / frames,
            "full_redraw_seconds_per_frame": full_redraw_seconds_per_frame(result, spec),
        }
        print(name, json.dumps(out["cases"][name]))
    out["machine"]["load_1min_after"] = os.getloadavg()[0]
    OUT.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
