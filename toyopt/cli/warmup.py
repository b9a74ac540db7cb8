"""``python -m toyopt warmup``: compile methods' segments ahead of time into toyopt's cache
(methods whose package is there already are reported ready and skipped)."""

from __future__ import annotations

import sys
import time

from ..compiled import cache_dir, compiler_missing, missing
from ..engine import run
from ..methods import METHODS
from ..setups import DEFAULT_SETUP, get_setup

#: A warm-up run: enough lanes and steps to compile the segment every run of the structure uses
#: (two lanes: the lane dimension stays dynamic; one lane would compile a graph of its own).
WARM_LANES, WARM_STEPS = 2, 2


def register(sub) -> None:
    p = sub.add_parser("warmup", help="compile methods ahead of time (fills toyopt's compile cache)")
    p.add_argument("--method", nargs="+", default=None, help="methods to compile (default: every method)")
    p.add_argument(
        "--setup", default=DEFAULT_SETUP, help=f"preset whose settings to compile (default {DEFAULT_SETUP})"
    )
    p.set_defaults(handler=handle)


def handle(args) -> int:
    setup = get_setup(args.setup)
    methods = args.method or list(METHODS)
    for name in methods:
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; allowed: {sorted(METHODS)}")
    no_compiler = compiler_missing()
    if no_compiler:
        print(f"toyopt: {no_compiler}; nothing to warm up", file=sys.stderr)
        return 0
    print(f"compiling {len(methods)} method(s) into {cache_dir()}", file=sys.stderr)
    started = time.perf_counter()
    for i, name in enumerate(methods, 1):
        began = time.perf_counter()
        config = setup.config(
            methods=[name],
            inits=setup.inits[:WARM_LANES],
            steps=WARM_STEPS,
            record_every=1,
            backend="compiled",
        )
        if not missing(config):  # packaged already: nothing to build
            print(f"[{i}/{len(methods)}] {name}: ready", file=sys.stderr, flush=True)
            continue
        result = run(config)
        note = f" ({'; '.join(result.notices)})" if result.notices else ""
        print(
            f"[{i}/{len(methods)}] {name}: {time.perf_counter() - began:.1f} s{note}",
            file=sys.stderr,
            flush=True,
        )
    print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
