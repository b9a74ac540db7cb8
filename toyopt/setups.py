"""Named presets that reproduce the published toy runs (sources in docs/presets.md).

A setup fixes the problem variant, the starting points, the optimizer, the step count, noise and
lower bounds, and, per method, the parameter values and framework conventions that the source
code base used (``MethodEntry.output_scale``: the factor K with which the Nash-MTL and FAMO
code bases turn a mean-convention direction into a sum-convention one; ``clip_norm``: a
``clip_grad_norm_`` that actually acts on the update in that code).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .config import CAGRAD3, STANDARD5, Config, MethodEntry
from .methods import METHODS


@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    source: str
    problem_params: dict
    inits: tuple
    lr: float
    steps: int
    methods: tuple[str, ...]
    noise: float = 0.0
    lower_bounds: tuple | None = None
    method_defaults: dict = field(default_factory=dict)  # method -> MethodEntry fields
    default_entry: dict = field(default_factory=dict)  # conventions for methods not listed
    notes: str = ""

    def entry(self, method: str, params: dict | None = None) -> MethodEntry:
        """The method as this setup runs it, with ``params`` overriding the setup's values."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; allowed: {sorted(METHODS)}")
        fields = {**self.default_entry, **self.method_defaults.get(method, {})}
        merged = {**fields.get("params", {}), **(params or {})}
        return MethodEntry(method, merged, fields.get("output_scale", 1.0), fields.get("clip_norm"))

    def config(self, methods=None, params: dict | None = None, **overrides) -> Config:
        """A validated Config for ``methods`` (default: the setup's own list); ``params`` maps
        method name -> parameter overrides; ``overrides`` replace Config fields."""
        names = list(methods) if methods else list(self.methods)
        params = params or {}
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise ValueError(f"parameters given for method(s) not in the run: {unknown}")
        cfg = Config(
            methods=tuple(self.entry(m, params.get(m)) for m in names),
            problem_params=dict(self.problem_params),
            inits=self.inits,
            optimizer="adam",
            lr=self.lr,
            steps=self.steps,
            noise=self.noise,
            lower_bounds=self.lower_bounds,
            setup=self.name,
        )
        return replace(cfg, **overrides).validated()


SETUPS: dict[str, Setup] = {}


def _add(setup: Setup) -> None:
    SETUPS[setup.name] = setup


# Nash-MTL code base (AvivNavon/nash-mtl, experiments/toy): f1 scaled by 0.1, Adam 1e-3, 35k steps.
_SUM = {"output_scale": 2.0}
_NASH_COMMON = {
    "ls": {"params": {"reduction": "sum"}},
    "cagrad": {"params": {"c": 0.4, "rescale": "1+c^2"}, **_SUM},
    "pcgrad": {"params": {"reduction": "sum"}},
    "mgda": {**_SUM},
    "imtlg": {},
    "nashmtl": {"clip_norm": 1.0},
    "famo": {"params": {"gamma": 0.0}},
}

_add(
    Setup(
        name="cagrad2021",
        label="CAGrad 2021 (toy.py): unscaled, 3 starts, Adam 1e-3, 100k steps",
        source="Cranial-XIX/CAGrad toy.py",
        problem_params={"scale": 1.0},
        inits=CAGRAD3,
        lr=1e-3,
        steps=100_000,
        methods=("ls", "mgda", "pcgrad", "cagrad"),
        method_defaults={
            "ls": {"params": {"reduction": "mean"}},
            "pcgrad": {"params": {"reduction": "mean"}},
            "cagrad": {"params": {"c": 0.5, "rescale": "1+c"}},
        },
    )
)
_add(
    Setup(
        name="nashmtl2022",
        label="Nash-MTL 2022: f1 x 0.1, 5 starts, Adam 1e-3, 35k steps",
        source="AvivNavon/nash-mtl experiments/toy",
        problem_params={"scale": 0.1},
        inits=STANDARD5,
        lr=1e-3,
        steps=35_000,
        methods=("ls", "mgda", "pcgrad", "cagrad", "nashmtl"),
        method_defaults=_NASH_COMMON,
    )
)
_add(
    Setup(
        name="famo2023",
        label="FAMO 2023: f1 x 0.1, 5 starts, Adam 1e-3, 50k steps, l* = (-2.1, -21)",
        source="Cranial-XIX/FAMO experiments/toy",
        problem_params={"scale": 0.1},
        inits=STANDARD5,
        lr=1e-3,
        steps=50_000,
        methods=("ls", "mgda", "pcgrad", "cagrad", "nashmtl", "famo"),
        method_defaults={
            **_NASH_COMMON,
            "cagrad": {"params": {"c": 0.4, "rescale": "1+c^2"}, "output_scale": 2.0, "clip_norm": 1.0},
            "pcgrad": {"params": {"reduction": "sum"}, "clip_norm": 1.0},
            "nashmtl": {"clip_norm": 1.0},
        },
    )
)
_add(
    Setup(
        name="sdmgrad2024",
        label="SDMGrad 2024: unscaled, 3 starts, Adam 2e-3, 70k steps, gradient noise 0.2",
        source="OptMN-Lab/sdmgrad experiments/toy/toy.py",
        problem_params={"scale": 1.0},
        inits=CAGRAD3,
        lr=2e-3,
        steps=70_000,
        noise=0.2,
        methods=("ls", "mgda", "cagrad", "sdmgrad"),
        method_defaults={
            "ls": {"params": {"reduction": "mean"}},
            "cagrad": {"params": {"c": 0.5, "rescale": "1+c"}},
            "sdmgrad": {"params": {"lmbda": 0.01}},
        },
    )
)
_add(
    Setup(
        name="conicgrad2025",
        label="ConicGrad 2025 toy: Nash-MTL code base settings, 5 starts, 35k steps",
        source="arXiv 2502.00217 Fig. 1 (settings of the Nash-MTL code base)",
        problem_params={"scale": 0.1},
        inits=STANDARD5,
        lr=1e-3,
        steps=35_000,
        methods=("famo", "nashmtl", "cagrad", "conicgrad"),
        method_defaults={**_NASH_COMMON, "conicgrad": {"params": {"c": 0.5}}},
    )
)

DEFAULT_SETUP = "conicgrad2025"


def get_setup(name: str) -> Setup:
    try:
        return SETUPS[name]
    except KeyError:
        raise ValueError(f"unknown setup {name!r}; allowed: {sorted(SETUPS)}") from None
