"""``python -m toyopt basins``: basin-of-attraction maps and success rates over a grid (or N
seeded random starts); writes the per-start data (.csv, .json) or the maps (.pdf, .svg, .png)."""

from __future__ import annotations

import sys
from dataclasses import replace

from ..outcomes import (
    C_SWEEP,
    MAX_BASIN_GRID,
    MAX_INITS,
    Starts,
    format_table,
    outcomes_csv,
    outcomes_json,
    run_basins,
    success_table,
    with_param_sweep,
)
from ..problems import get_problem
from ._common import UsageError, add_config_arguments, config_from_args, output_path, write_atomic

SUFFIXES = (".csv", ".json", ".pdf", ".svg", ".png")


def register(sub) -> None:
    p = sub.add_parser("basins", help="classify the outcome of every start of a grid; write data or maps")
    add_config_arguments(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--grid", type=int, default=None, help=f"N x N grid over the box (default 100; 2..{MAX_BASIN_GRID})"
    )
    where.add_argument(
        "--random", type=int, default=None, help=f"N random starts in the box (1..{MAX_INITS}, --seed)"
    )
    p.add_argument(
        "--c-sweep",
        action="store_true",
        help=f"run every method with a parameter c at c = {C_SWEEP[0]}..{C_SWEEP[-1]} (one map per value)",
    )
    p.add_argument(
        "--out", required=True, help="FILE.csv | FILE.json (data) or FILE.pdf | .svg | .png (maps)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--quiet", action="store_true", help="no table on stdout, no progress on stderr")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    if args.inits is not None:
        raise UsageError("basins chooses the starts itself: use --grid N or --random N instead of --inits")
    if args.record_every is not None:
        raise UsageError("basins records only the start and the end: --record-every does not apply")
    out = output_path(args.out, args.force, SUFFIXES)
    maps = out.suffix.lower() not in (".csv", ".json")
    if maps and args.random is not None:  # refused before anything runs
        raise UsageError("maps need --grid starts; write --random starts as .csv or .json")

    def shape(config):  # the map's own methods and starts, so that the default backend fits them
        if args.c_sweep:
            config = with_param_sweep(config, "c", C_SWEEP)
        return replace(config, inits=_starts(args, config).points())

    config = config_from_args(args, shape)
    starts = _starts(args, config)
    lanes = starts.count * sum(len(m.grid()) for m in config.methods)
    config = replace(config, record_every=config.steps)  # validated again in basin_config
    progress = None if args.quiet else _progress_printer(lanes, config.steps)
    outcomes, result = run_basins(config, starts, progress=progress)
    if out.suffix.lower() == ".csv":
        data: str | bytes = outcomes_csv(outcomes)
    elif out.suffix.lower() == ".json":
        data = outcomes_json(outcomes)
    else:
        from ..figures.basins import basin_maps_figure, save_basin_figure

        fig = basin_maps_figure(outcomes)
        data = save_basin_figure(fig, out, outcomes)
    write_atomic(out, data, args.force)
    for notice in result.notices:
        print(f"toyopt: note: {notice}", file=sys.stderr)
    if not args.quiet:
        print(format_table(success_table(outcomes)))
        for region in outcomes.regions[:8]:
            print("  " + region.describe())
        print(f"wrote {out} ({lanes} lanes, {config.steps} steps, {outcomes.seconds:.1f} s)", file=sys.stderr)
    return 0


def _starts(args, config) -> Starts:
    """--grid N (default 100) or --random N starts over the problem's box, validated."""
    box = tuple(tuple(r) for r in get_problem(config.problem).box)
    if args.random is not None:
        return Starts("random", args.random, box, config.seed).validated()
    return Starts("grid", 100 if args.grid is None else args.grid, box).validated()


def _progress_printer(lanes: int, steps: int):
    shown = {"last": -1}

    def show(fraction: float) -> None:
        percent = int(fraction * 100) // 10 * 10
        if percent != shown["last"]:
            shown["last"] = percent
            print(
                f"\rbasins: {lanes} lanes x {steps} steps: {percent:3d}%",
                end="\n" if percent >= 100 else "",
                file=sys.stderr,
                flush=True,
            )

    return show
