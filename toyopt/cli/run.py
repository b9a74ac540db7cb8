"""``python -m toyopt run``: run a config headless and write the trajectories as JSON."""

from __future__ import annotations

import sys

from ..engine import run
from ..export import result_json, trajectories_csv
from ._common import add_config_arguments, config_from_args, output_path, write_atomic


def register(sub) -> None:
    p = sub.add_parser("run", help="run methods from starting points; write JSON (or CSV)")
    add_config_arguments(p)
    p.add_argument("--out", required=True, help="FILE.json (records) or FILE.csv (long table)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    config = config_from_args(args)
    out = output_path(args.out, args.force, (".json", ".csv"))
    result = run(config)
    data = result_json(result) if out.suffix.lower() == ".json" else trajectories_csv(result)
    write_atomic(out, data, args.force)
    for notice in result.notices:
        print(f"toyopt: note: {notice}", file=sys.stderr)
    if not args.quiet:
        for i, lane in enumerate(result.lanes):
            x1, x2 = result.final_x[i]
            print(f"{lane.method:16s} init={lane.init} final=({x1:.4f}, {x2:.4f}) {result.outcome(i)}")
        print(
            f"wrote {out} ({len(result.lanes)} lanes, {result.steps_run} steps, {result.seconds:.1f} s)",
            file=sys.stderr,
        )
    return 0
