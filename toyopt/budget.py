"""The work and memory a run will take, estimated from its Config alone, and the caps on both.

Each input of a Config has its own cap (``toyopt.config``), but their product does not: 101 x 101
grid values x 200 000 steps is within every single cap. This module is the one home of the caps on
the product, checked before any work starts (``engine.run`` calls :func:`check`; so do the CLI,
``figure --from`` and the app through it). Nothing here runs the engine: the estimate is a few
multiplications, so a crafted config cannot make the estimate itself slow.

**Memory** (recorded data): every recorded state of every lane keeps x (D values), the losses
(K), the direction (D) and the weights (K) in the run's dtype, plus one byte per flag::

    recorded_bytes = lanes x recorded_states x ((2 D + 2 K) x itemsize + flags)

with recorded_states = floor((steps - 1) / record_every) + 2 (x_0, every record_every-th step,
the final state). Assembling the Result holds the recorded chunks and their concatenation at
once, so the peak is about twice this; ``MAX_RECORD_BYTES`` caps it at 1 GB (2 GB peak).

**Work**: a method's ``MethodSpec.cost(params)`` is its cost per lane-step in units of one plain
step (LS: the problem's gradients, the aggregation, the optimizer update = 1), inner-solver
iterations included. A method call also has a fixed cost per step (eager: Python and tensor-op
launches; compiled: the loop's buffers and calls), independent of the lane count and worth about
``OVERHEAD_LANES[backend]`` lanes::

    work = steps x sum over method entries e of cost_e x (lanes_e + OVERHEAD_LANES[backend])

``MAX_WORK`` caps the eager work. Seconds are ``work x SECONDS_PER_WORK[backend]``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .methods import get_method
from .problems import get_problem

if TYPE_CHECKING:
    from .config import Config

#: The engine's own flags (non-finite direction, non-finite loss, clipped) in the flag table.
ENGINE_FLAG_COUNT = 3
#: Recorded data of one run (about twice this at the peak, see the module docstring). 1 GB: the
#: largest legitimate runs (a 200 x 200 basin map records 3 states per lane: 0.2 GB; the default
#: CLI run of 5 lanes x 35 000 steps: 11 MB) fit with room; 40 000 starts x 200 000 recorded steps
#: (4.5 TB) does not.
MAX_RECORD_BYTES = 1_000_000_000
#: Fixed per-step cost of one method call, in lanes: eager, a step of B lanes of LS takes about
#: 330 us + 155 ns x B (docs/benchmarks.md: 3.5 us per lane-step at 10^2 lanes, 187 ns at 10^4);
#: compiled (a segment's step, Nash-MTL preset, process CPU) about 8 us + 0.82 us x B (12.4 us at
#: 5 lanes, 829 us at 1000: the Pareto first-hit window dominates per lane).
OVERHEAD_LANES = {"eager": 2_000, "compiled": 10}
#: Work of one run, in lane-steps of LS. 2e10: about a basin map of the CLI's largest size (200 000
#: lanes) for 100 000 steps of LS (about 1 h eager, 20 min compiled); a multi-day run (5 lanes of
#: MGDA-softmax with 100 000 inner steps, 200 000 steps: 1e13) is refused.
MAX_WORK = 2e10
#: Seconds per unit of work, per backend, measured on the 2-core reference machine (LS per
#: lane-step: eager 187 ns at 10^4 lanes, compiled 820 ns; docs/benchmarks.md, "Compiled
#: segments"). Compiling a missing package (about a minute of CPU) is not counted here.
SECONDS_PER_WORK = {"eager": 187e-9, "compiled": 820e-9}


def lanes_per_entry(config: Config) -> list[int]:
    return [len(entry.grid()) * len(config.inits) for entry in config.methods]


def recorded_states(config: Config) -> int:
    """x_0, every ``record_every``-th step after it, and the final state."""
    return (config.steps - 1) // config.record_every + 2


def recorded_bytes(config: Config) -> int:
    """Bytes of the recorded x, losses, directions, weights and flags (module docstring)."""
    problem = get_problem(config.problem)
    itemsize = 8 if config.dtype == "float64" else 4
    flags = ENGINE_FLAG_COUNT + len({name for m in config.methods for name in get_method(m.name).flags})
    per_state = (2 * problem.dim + 2 * problem.n_tasks) * itemsize + flags
    return sum(lanes_per_entry(config)) * recorded_states(config) * per_state


def entry_cost(entry) -> float:
    """Cost per lane-step of one method entry: its most expensive grid value."""
    spec = get_method(entry.name)
    return max(spec.cost(combo) for combo in entry.grid())


def work(config: Config, backend: str = "eager") -> float:
    """Work units of ``config`` on ``backend`` (module docstring)."""
    per_step = sum(
        entry_cost(entry) * (lanes + OVERHEAD_LANES[backend])
        for entry, lanes in zip(config.methods, lanes_per_entry(config))
    )
    return config.steps * per_step


def estimated_seconds(config: Config, backend: str | None = None) -> float:
    """Rough seconds of ``config`` on ``backend`` (default: the config's own)."""
    backend = backend or config.backend
    if backend not in SECONDS_PER_WORK:
        raise ValueError(f"backend must be one of {sorted(SECONDS_PER_WORK)}, got {backend!r}")
    return work(config, backend) * SECONDS_PER_WORK[backend]


def faster_backend(config: Config) -> str:
    """The backend estimated to finish ``config`` sooner (eager on a tie). Compiled pays far less
    per step and more per lane (``OVERHEAD_LANES``, ``SECONDS_PER_WORK``): it wins for the few
    lanes of a trajectory run, eager for a basin map's thousands."""
    return min(SECONDS_PER_WORK, key=lambda backend: estimated_seconds(config, backend))


def check(config: Config) -> None:
    """ValueError naming the fields and the cap when ``config`` (validated) would record more than
    MAX_RECORD_BYTES or do more than MAX_WORK work."""
    size = recorded_bytes(config)
    if size > MAX_RECORD_BYTES:
        raise ValueError(
            f"lanes x recorded states = {sum(lanes_per_entry(config))} x {recorded_states(config)} "
            f"would record {_si(size)}B; the cap is {_si(MAX_RECORD_BYTES)}B: lower steps, inits "
            "or grid values, or raise record_every"
        )
    units = work(config)
    if units > MAX_WORK:
        raise ValueError(
            f"steps x lanes x method cost = {_si(units)} work units "
            f"(about {_duration(estimated_seconds(config))}); the cap is {_si(MAX_WORK)}: lower "
            "steps, inits, grid values or the methods' solver iterations"
        )


def _si(value: float) -> str:
    """3 significant digits with an SI prefix: 4.5e12 -> '4.5 T'."""
    exponent = min(max(int(math.floor(math.log10(value) / 3)), 0), 4) if value > 0 else 0
    return f"{value / 10 ** (3 * exponent):.3g} {' kMGT'[exponent]}".rstrip()


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
