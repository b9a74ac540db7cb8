"""Plain-data exports of a Result: JSON records and CSV tables, each carrying its Config.

Column names (CSV, one row per lane and recorded step):
  lane, method, params (JSON), init_x1, init_x2, step, x1, x2, loss1, loss2, d1, d2, w1, w2
``d`` is the update direction computed at x (empty at the final state) and ``w`` its weights.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from .engine import Result

FORMAT_VERSION = 1


def _num(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def lane_record(result: Result, i: int, trajectory: bool = True) -> dict:
    lane = result.lanes[i]
    rec = {
        "lane": i,
        "method": lane.method,
        "params": lane.params,
        "init": list(lane.init),
        "final": [_num(v) for v in result.final_x[i]],
        "final_losses": [_num(v) for v in result.final_losses[i]],
        "outcome": result.outcome(i),
        "first_global_min_step": int(result.first_global_min[i]) if result.first_global_min[i] >= 0 else None,
        "first_pareto_step": int(result.first_pareto[i]) if result.first_pareto[i] >= 0 else None,
        "stop_reason": result.stop_reason[i],
        "stop_step": int(result.stop_step[i]),
        "flags": {
            name: {"count": int(result.flag_counts[name][i]), "first_step": int(result.flag_first[name][i])}
            for name in result.flag_counts
            if result.flag_counts[name][i] > 0
        },
    }
    if trajectory:
        rec["trajectory"] = [[_num(a), _num(b)] for a, b in result.x[:, i, :2]]
    return rec


def result_dict(result: Result, trajectory: bool = True) -> dict:
    return {
        "format": "toyopt-run",
        "version": FORMAT_VERSION,
        "config": result.config.to_dict(),
        "global_min": [float(v) for v in result.global_min],
        "recorded_steps": [int(s) for s in result.recorded_steps],
        "steps_run": result.steps_run,
        "flag_help": result.flag_help,
        "records": [lane_record(result, i, trajectory) for i in range(len(result.lanes))],
    }


def result_json(result: Result, trajectory: bool = True) -> str:
    return json.dumps(result_dict(result, trajectory), indent=1, allow_nan=False)


CSV_COLUMNS = [
    "lane",
    "method",
    "params",
    "init_x1",
    "init_x2",
    "step",
    "x1",
    "x2",
    "loss1",
    "loss2",
    "d1",
    "d2",
    "w1",
    "w2",
]


def trajectories_csv(result: Result) -> str:
    """Long-format CSV of every recorded state of every lane, with the config as a '#' line."""
    buf = io.StringIO()
    buf.write("# toyopt config: " + result.config.to_json() + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    steps = result.recorded_steps
    for i, lane in enumerate(result.lanes):
        params = json.dumps(lane.params, sort_keys=True)
        for t in range(len(steps)):
            d = result.directions[t, i]
            w = result.weights[t, i]
            writer.writerow(
                [
                    i,
                    lane.method,
                    params,
                    *lane.init,
                    int(steps[t]),
                    *(_fmt(v) for v in result.x[t, i]),
                    *(_fmt(v) for v in result.losses[t, i]),
                    *(_fmt(v) for v in d),
                    *(_fmt(v) for v in w),
                ]
            )
    return buf.getvalue()


def _fmt(v) -> str:
    v = float(v)
    return repr(v) if np.isfinite(v) else ""
