"""The compiled segments and their caches: one torch.compile per method structure, kept.

A structure is what a compiled graph is specialised on: the problem, the method and its int and
choice parameters, the optimizer, the dtype, and whether gradient noise, an output scale or
clipping is on. Everything else is a tensor input (see ``segment``), so one compiled segment
serves every run of its structure, any number of lanes (dynamic batch dimension).

Two caches: compiled callables live for the process in ``_SEGMENTS``; inductor's on-disk cache
(the generated C++ and its builds) lives in toyopt's cache directory, ``$TOYOPT_CACHE_DIR`` or the
user cache directory's ``toyopt/``, one folder per torch version, so a new process only re-traces.
Compiling needs a C++ compiler: without one ``compiler_missing`` says why and the engine runs
eagerly with that notice.
"""

from __future__ import annotations

import functools
import os
import types
from pathlib import Path

import torch

from .compiler import find_cxx
from .segment import make_segment

#: Environment variable that overrides toyopt's cache directory.
CACHE_ENV = "TOYOPT_CACHE_DIR"
_SEGMENTS: dict[tuple, object] = {}


def cache_dir() -> Path:
    """Where toyopt keeps compiled code: ``$TOYOPT_CACHE_DIR`` or ``$XDG_CACHE_HOME/toyopt``
    (default ``~/.cache/toyopt``), one sub-folder per torch version."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "toyopt")
    return Path(root) / f"torch-{torch.__version__}"


@functools.cache
def compiler_missing() -> str | None:
    """None when the C++ compiler inductor calls is on PATH (``toyopt.compiler.find_cxx``), else
    the notice."""
    if find_cxx() is not None:
        return None
    return "no C++ compiler found (g++, c++, clang++ or $CXX): the compiled backend ran eagerly"


def structure_key(
    problem, spec, optimizer: str, static_params: dict, noise: bool, scaled: bool, clipped: bool, dtype
):
    return (
        problem.name,
        spec.name,
        tuple(sorted(static_params.items())),
        optimizer,
        noise,
        scaled,
        clipped,
        str(dtype),
    )


def missing(config) -> list[str]:
    """The method entries of ``config`` (their names, once each, in order) whose compiled segment
    would need compiling now: not yet compiled in this process (``_SEGMENTS``)."""
    from .methods import get_method
    from .problems import get_problem

    config = config.validated()
    problem = get_problem(config.problem)
    out: list[str] = []
    for entry in config.methods:
        spec = get_method(entry.name)
        checked = spec.validate_params(entry.grid()[0])
        static = {p.name: checked[p.name] for p in spec.params if p.kind != "float"}
        key = structure_key(
            problem,
            spec,
            config.optimizer,
            static,
            config.noise > 0,
            entry.output_scale != 1.0,
            entry.clip_norm is not None,
            getattr(torch, config.dtype),
        )
        if key not in _SEGMENTS and entry.name not in out:
            out.append(entry.name)
    return out


def segment_for(
    problem,
    spec,
    state_type,
    optimizer: str,
    static_params: dict,
    noise: bool,
    scaled: bool,
    clipped: bool,
    dtype,
):
    """The compiled segment of this structure (compiled on its first call, then kept)."""
    key = structure_key(problem, spec, optimizer, static_params, noise, scaled, clipped, dtype)
    if key not in _SEGMENTS:
        _SEGMENTS[key] = _compile(
            make_segment(problem, spec, state_type, optimizer, static_params, noise, scaled, clipped), key
        )
    return _SEGMENTS[key]


def _allow_caching_while_loop() -> None:
    """Inductor bypasses its FX-graph and AOTAutograd caches for graphs holding a higher-order op
    not marked cacheable, as while_loop is (torch 2.13): every process would re-lower every
    segment. The loop's body and condition are sub-modules of the cached graph and enter its key,
    so it is marked cacheable (keyed by the torch version)."""
    from torch._higher_order_ops.while_loop import while_loop_op

    marked = torch._inductor.config.unsafe_marked_cacheable_functions
    marked.setdefault(f"{while_loop_op.__module__}.{while_loop_op.__name__}", torch.__version__)


def _compile(segment, key):
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    _allow_caching_while_loop()
    # Dynamo caches compiled graphs per code object and keeps at most `recompile_limit` of them;
    # every structure's segment is the same Python function, so each gets its own copy of the
    # code object: its graphs then never compete with other structures' for that limit.
    code = segment.__code__.replace(co_name=f"segment_{abs(hash(key)):x}")
    fresh = types.FunctionType(
        code, segment.__globals__, code.co_name, segment.__defaults__, segment.__closure__
    )
    compiled = torch.compile(fresh, fullgraph=True, options={"cpp_wrapper": True})
    dynamo_config = torch._dynamo.config

    marked = []

    def call(*args):
        if not marked:  # the first call compiles; the graph stays dynamic for later inputs
            _mark_lanes_dynamic(args)
            marked.append(True)
        # Past the limit dynamo would run eagerly with only a log line: made to raise instead.
        previous = dynamo_config.fail_on_recompile_limit_hit
        dynamo_config.fail_on_recompile_limit_hit = True
        try:
            return compiled(*args)
        finally:
            dynamo_config.fail_on_recompile_limit_hit = previous

    return call


def _mark_lanes_dynamic(args) -> None:
    """The lane dimension of every per-lane input and the segment length are dynamic, so one
    graph serves any number of lanes and steps."""
    carry, opt_state, mstate, params, fixed, noises, randoms = args[:7]
    for t in (
        carry.x,
        carry.prev_x,
        carry.prev_l,
        carry.stop_step,
        carry.stop_code,
        carry.frozen_x,
        carry.frozen_l,
    ):
        torch._dynamo.maybe_mark_dynamic(t, 0)
    for t in (carry.counts, carry.first):
        torch._dynamo.maybe_mark_dynamic(t, 1)
    torch._dynamo.maybe_mark_dynamic(carry.first_min, 0)
    torch._dynamo.maybe_mark_dynamic(carry.first_par, 0)
    for t in (*opt_state[1:], *mstate, *params.values(), fixed.lower):
        if t.dim():
            torch._dynamo.maybe_mark_dynamic(t, 0)
    for t in (fixed.pareto, fixed.window, fixed.cell_first):
        torch._dynamo.maybe_mark_dynamic(t, 0)
    for z in (noises, randoms):
        if z is not None:
            torch._dynamo.maybe_mark_dynamic(z, 0)
            torch._dynamo.maybe_mark_dynamic(z, 1)
