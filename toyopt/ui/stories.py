"""Story presets for the teaching view: a setup, a start and a few methods that show one idea.

A story overrides some of the app's values (setup, methods, start, lr, steps); every other value
(method parameters, sliders) stays as the user set it. Methods are named by preference lists, so
a story works with whichever of them the registry has (e.g. ConicGrad as in the paper, or its exact
variant).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..methods import METHODS


@dataclass(frozen=True)
class Story:
    label: str
    setup: str
    methods: tuple[tuple[str, ...], ...]  # each a preference list; the first registered one is used
    start: tuple[float, float]
    lr: float
    steps: int
    text: str

    def available_methods(self) -> tuple[str, ...]:
        out = []
        for choices in self.methods:
            found = next((m for m in choices if m in METHODS), None)
            if found is not None:
                out.append(found)
        return tuple(out)

    def overrides(self) -> dict:
        return {
            "setup": self.setup,
            "methods": self.available_methods(),
            "inits": (self.start,),
            "lr": self.lr,
            "steps": self.steps,
        }


STORIES: dict[str, Story] = {
    "mean_stuck": Story(
        label="The mean gets stuck",
        setup="nashmtl2022",
        methods=(("ls",), ("mgda",)),
        start=(9.0, 9.0),
        lr=1e-2,
        steps=3500,
        text=(
            "With f1 scaled by 0.1 (Nash-MTL's toy) the mean is dominated by task 2. "
            "From (9, 9), LS runs into the narrow valley of task 2 near x1 = 5 "
            "(a kink of its log term, where task 2's gradient flips direction across the valley floor) "
            "and stays there, far from the Pareto set: the small gradient of task 1 cannot pull it out. "
            "Watch cos(g1, g2) and the size of g1 against g2 below."
        ),
    ),
    "mgda_front": Story(
        label="MGDA stops on the Pareto front",
        setup="cagrad2021",
        methods=(("mgda",), ("ls",)),
        start=(9.0, 9.0),
        lr=1e-2,
        steps=8000,
        text=(
            "MGDA takes the minimum-norm point of the convex hull of g1 and g2. It never increases any loss, "
            "but as soon as the gradients point in opposite directions that point is 0: MGDA stops at the "
            "first Pareto-stationary point it meets, here on the Pareto set away from the minimum of the "
            "mean. The mean itself (LS) continues to the global minimum in this unscaled variant."
        ),
    ),
    "conic_minimum": Story(
        label="ConicGrad reaches the minimum",
        setup="cagrad2021",
        methods=(("conicgrad_exact", "conicgrad"), ("cagrad",)),
        start=(-8.5, 7.5),
        lr=1e-2,
        steps=9000,
        text=(
            "ConicGrad keeps the update inside a cone around the mean gradient g0 (cos(d, g0) >= c) "
            "and gives it the length of g0; CAGrad keeps it inside a ball around g0 "
            "(||d - g0|| <= c ||g0||). With c = 0.5 the cone admits directions up to 60 deg from g0, "
            "the ball only up to 30 deg (see the regions on the right). From (-8.5, 7.5) in the "
            "unscaled toy, ConicGrad reaches the minimum of the mean within this run, while CAGrad is "
            "still on its way at the end."
        ),
    ),
}
