"""The compiled segments and their cache: one AOTInductor package per method structure.

A structure is what a compiled segment is specialised on (``structure_key``): the problem, the
method and its int and choice parameters, the optimizer, the dtype, and whether gradient noise,
an output scale or clipping is on. Everything else is a tensor input (see ``segment``), so one
compiled segment serves every run of its structure, any number of lanes (dynamic lane dimension).

A segment is exported (``torch.export``, lanes and steps as dynamic dimensions) and compiled
ahead of time into a shared library packaged as a ``.pt2`` file (AOTInductor) in toyopt's cache
directory, ``$TOYOPT_CACHE_DIR`` or the user cache directory's ``toyopt/``, one folder per torch
version, named by the structure and a hash of the source it traces (an edited method never loads a
stale package). A new process loads a package in a fraction of a second, without tracing;
loaded segments live for the process in ``_SEGMENTS``. Compiling needs a C++ compiler: without
one ``compiler_missing`` says why and the engine runs eagerly with that notice.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

import torch

from .compiler import find_cxx
from .methods import get_method
from .segment import GUARD_ROWS, SCALARS, Layout, make_segment

Tensor = torch.Tensor

#: Environment variable that overrides toyopt's cache directory.
CACHE_ENV = "TOYOPT_CACHE_DIR"
#: The smallest lane count and segment length a package is exported for: torch.export
#: specialises sizes 0 and 1, so smaller calls are padded to these.
MIN_LANES, MIN_STEPS = 2, 2
#: Inductor options of a package. Scalar C++ (no SIMD): a step of a few lanes costs half the
#: vectorised code's time (LS, 5 lanes: 12 vs 24 us of CPU; at 1000 lanes 1.3x more), and the
#: interactive runs have a few lanes.
INDUCTOR = {"cpp.simdlen": 0}
#: Part of every package's name: raised when the export or compile options below change.
PACKAGE_FORMAT = 2
#: Loaded segments of this process, by structure key.
_SEGMENTS: dict[tuple, object] = {}
#: How many segments this process compiled (tests: a second run of a structure compiles nothing).
compiles = 0


class BuildFailed(RuntimeError):
    """A segment's package could not be built (torch.export or AOTInductor failed)."""


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


def structure_key(problem: str, entry, optimizer: str, noise: bool, dtype: str) -> tuple:
    """What a compiled segment is specialised on, for one method entry of a run."""
    spec = get_method(entry.name)
    static = tuple(
        (p.name, p.validate(entry.params.get(p.name, p.default))) for p in spec.params if p.kind != "float"
    )
    switches = (noise, entry.output_scale != 1.0, entry.clip_norm is not None)
    return (problem, spec.name, static, optimizer, *switches, dtype)


def missing(config) -> list[str]:
    """The labels (``entry.name``) of the config's method entries whose compiled segment is
    neither loaded in this process nor packaged in toyopt's cache: running them compiled would
    compile first (``python -m toyopt warmup`` fills the cache)."""
    config = config.validated()
    out = []
    for entry in config.methods:
        key = structure_key(config.problem, entry, config.optimizer, config.noise > 0, config.dtype)
        if key not in _SEGMENTS and not package_path(key).exists() and entry.name not in out:
            out.append(entry.name)
    return out


def package_path(key: tuple) -> Path:
    """The package file of a structure: its method's name, then a hash of the key, of the traced
    source and of the method's module (which may live outside toyopt)."""
    module = sys.modules[get_method(key[1]).step.__module__].__file__
    digest = hashlib.sha256(repr((key, PACKAGE_FORMAT, _source_hash(), _file_hash(module))).encode())
    return cache_dir() / "segments" / f"{key[1]}-{digest.hexdigest()[:20]}.pt2"


@functools.cache
def _source_hash() -> str:
    """sha256 of the code a segment traces: segment.py, the methods and the problems."""
    root = Path(__file__).resolve().parent
    files = sorted([root / "segment.py", *root.glob("methods/*.py"), *root.glob("problems/*.py")])
    return hashlib.sha256(
        b"".join(f.relative_to(root).as_posix().encode() + f.read_bytes() for f in files)
    ).hexdigest()


@functools.cache
def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def segment_for(key: tuple, build, example: tuple):
    """The loaded segment of structure ``key``: from this process, else from its package, else
    compiled now (``build()`` makes the segment function, ``example`` its example inputs)."""
    if key not in _SEGMENTS:
        path = package_path(key)
        if not path.exists():
            try:
                _compile_package(build(), example, path)
            except Exception as error:  # export or C++ build: the run goes eager, with this notice
                raise BuildFailed(
                    f"building the compiled segment of {key[1]} failed ({type(error).__name__}: "
                    f"{str(error).splitlines()[0][:200] if str(error) else ''}): the run ran eagerly"
                ) from error
        # Packages are built without SIMD (INDUCTOR): torch warns on every load that their
        # instruction set differs from this machine's, which is the point.
        logging.getLogger("torch.export.pt2_archive._package").setLevel(logging.ERROR)
        loader = torch._inductor.aoti_load_package(str(path), run_single_threaded=True).loader
        # The package's own __call__ flattens and unflattens pytrees (about 0.3 ms per call):
        # a segment's inputs and outputs are flat tensors already.
        _SEGMENTS[key] = lambda *inputs: loader.boxed_run(list(inputs))
    return _SEGMENTS[key]


def _compile_package(segment, example: tuple, path: Path) -> None:
    """torch.export the segment with dynamic lanes, steps and geometry sizes, then AOTInductor
    into ``path`` (written to a temporary name first: a reader never sees half a package)."""
    global compiles

    class Segment(torch.nn.Module):
        def forward(self, *args):
            return segment(*args)

    from torch.export import Dim

    lanes, steps = Dim("lanes", min=MIN_LANES), Dim("steps", min=MIN_STEPS)
    per_input = [{0: lanes}, {0: lanes}, {0: lanes}, None, None]
    per_input += [{0: Dim("points", min=2)}, {0: Dim("cells", min=2)}, {0: Dim("window", min=2)}]
    per_input += [{0: steps, 1: lanes} for _ in example[8:]]
    exported = torch.export.export(Segment(), example, dynamic_shapes=(tuple(per_input),), strict=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    fd, tmp = tempfile.mkstemp(suffix=".pt2", dir=path.parent)
    os.close(fd)
    try:
        torch._inductor.aoti_compile_and_package(exported, package_path=tmp, inductor_configs=INDUCTOR)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    compiles += 1


class GroupLanes:
    """One method entry's lanes on the compiled backend: their packed state (segment.Layout),
    advanced one segment at a time, and what the engine reads back from it. Fewer lanes than
    ``MIN_LANES`` run padded with copies of the first lane."""

    guard_rows = GUARD_ROWS

    def __init__(self, problem, group, config, x0, lower, scalars: dict, tail, geometry, rows):
        spec, dtype = group.spec, x0.dtype
        K, D = lower.shape[1], x0.shape[1]
        self.group, self.rows, self.size = group, rows, group.size
        pad = [0] * max(0, MIN_LANES - self.size)  # extra rows: copies of lane 0
        self.pad = torch.tensor(pad, dtype=torch.long) if pad else None
        self.layout = Layout(K, D, len(GUARD_ROWS) + len(group.flag_names), config.optimizer, group.state)
        floats = [group.params[p.name] for p in spec.params if p.kind == "float"]
        lane = torch.cat([torch.stack(floats, dim=1).to(dtype) if floats else lower[:, :0], lower], dim=1)
        self.lane = self._padded(lane)
        self.scalars = torch.tensor([float(scalars[n]) for n in SCALARS] + list(tail), dtype=dtype)
        self.geometry = geometry
        floats, ints = self.layout.initial(x0.contiguous(), group.state)
        self.floats, self.ints = self._padded(floats), self._padded(ints)
        self.kept: list[tuple[Tensor, Tensor, Tensor]] = []  # per record: x, losses|d|w, flags
        static = {p.name: group.params[p.name] for p in spec.params if p.kind != "float"}
        noise = config.noise > 0
        switches = (noise, group.entry.output_scale != 1.0, group.entry.clip_norm is not None)
        key = structure_key(config.problem, group.entry, config.optimizer, noise, config.dtype)

        def build():
            return make_segment(problem, spec, self.layout, config.optimizer, static, switches)

        self.segment = segment_for(key, build, self._example(noise, K, D))

    def _padded(self, t: Tensor, dim: int = 0) -> Tensor:
        if self.pad is None:
            return t
        return torch.cat([t, t.index_select(dim, self.pad)], dim=dim)

    def _example(self, noise: bool, K: int, D: int) -> tuple:
        """Inputs to export the segment with (sizes above 1 wherever they are dynamic)."""
        dtype, B = self.floats.dtype, self.floats.shape[0]
        draws = []
        if noise:
            draws.append(torch.zeros((MIN_STEPS, B, K, D), dtype=dtype))
        if self.group.spec.random is not None:
            draws.append(torch.zeros((MIN_STEPS, B, self.group.spec.random.size(K, D)), dtype=dtype))
        steps = torch.tensor([0, MIN_STEPS])
        return (self.floats, self.ints, self.lane, self.scalars, steps, *self.geometry, *draws)

    def advance(self, t0: int, n: int, noises, randoms, keep: bool) -> None:
        """Steps t0 .. t0 + n - 1; ``keep``: step t0 is a record (see ``records``)."""
        x_before = self.layout.field(self.floats, "x")[: self.size].clone() if keep else None
        draws = [self._padded(z, 1) for z in (noises, randoms) if z is not None]
        if n < MIN_STEPS:  # rows past n are never read
            draws = [torch.cat([z] + [z[-1:]] * (MIN_STEPS - n)) for z in draws]
        steps = torch.tensor([t0, n])
        self.floats, self.ints = self.segment(
            self.floats, self.ints, self.lane, self.scalars, steps, *self.geometry, *draws
        )
        if keep:
            rec = self.layout.floats
            self.kept.append(
                (
                    x_before,
                    self.floats[: self.size, rec["rec_l"][0] : rec["rec_w"][1]].clone(),
                    self._field("rec_f").clone(),
                )
            )

    def _field(self, name: str) -> Tensor:
        packed = self.floats if name in self.layout.floats else self.ints
        return self.layout.field(packed, name)[: self.size]

    def records(self, steps: list[int]):
        """The kept records at ``steps`` (the first steps of the segments run with ``keep``), as
        the eager loop writes them: lanes stopped before t show their frozen point (losses, and
        NaN direction and weights); a lane stopping at t shows its frozen point in place of x_t's
        non-finite entries. Returns x, losses, direction, weights (T, B, .) and flags (T, F, B)."""
        K, D = self.layout.K, self.layout.D
        x = torch.stack([k[0] for k in self.kept])
        values = torch.stack([k[1] for k in self.kept])
        losses, d, w = values[..., :K], values[..., K : K + D], values[..., K + D :]
        flags = torch.stack([k[2] for k in self.kept]).transpose(1, 2).bool()
        stop_step = self._field("stop_step")
        stopped = stop_step >= 0
        if not bool(stopped.any()):  # the common case: the records as the segments computed them
            return x, losses, d, w, flags
        t = torch.tensor(steps)[:, None]
        after = (stopped & (stop_step < t))[..., None]
        at_or_after = (stopped & (stop_step <= t))[..., None]
        frozen_x, frozen_l = self._field("frozen_x"), self._field("frozen_l")
        x = torch.where(at_or_after & ~torch.isfinite(x), frozen_x, x)
        x = torch.where(after, frozen_x, x)
        losses = torch.where(after, frozen_l, losses)
        d = torch.where(after, float("nan"), d)
        w = torch.where(after, float("nan"), w)
        return x, losses, d, w, flags

    def finish(self, book) -> None:
        """Writes the lanes' final state, counts, first steps and stops into the engine's book."""
        F, sl, rows = self._field, self.group.sl, self.rows
        book.x[sl] = F("x")
        book.counts[rows, sl] += F("counts").T
        first = F("first").T
        book.first[rows, sl] = torch.where(first >= 0, first, book.first[rows, sl])
        for name in ("first_min", "first_par", "stop_step", "stop_code", "frozen_x", "frozen_l"):
            getattr(book, name)[sl] = F(name)
