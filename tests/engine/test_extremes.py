"""Trajectories at extreme settings end finite or stop with a recorded reason, for every method.

Extremes (issue: robustness): learning rates 1e-6 and 10 with Adam and SGD, every float parameter
named c at both ends of its declared range, and the step cap. "Ends finite" means the final point
and losses are finite; a lane the engine stopped must say why (stop_reason and the matching
engine flag, counted at its stop step), so no lane can end in NaN silently.
"""

from __future__ import annotations

import numpy as np
import pytest

from toyopt.config import MAX_STEPS, STANDARD5, Config, MethodEntry
from toyopt.engine import run
from toyopt.methods import METHODS

ALL = tuple(METHODS)


def assert_finite_or_explained(result) -> None:
    for lane in result.lanes:
        i = lane.index
        where = f"{lane.method} {lane.params} from {lane.init}"
        assert np.isfinite(result.final_x[i]).all(), f"{where}: non-finite final point"
        reason = result.stop_reason[i]
        if reason in ("completed", "early_stop"):
            assert np.isfinite(result.final_losses[i]).all(), f"{where}: non-finite final loss"
            assert result.stop_step[i] == result.steps_run
        else:
            assert reason in ("nonfinite_loss", "nonfinite_direction"), f"{where}: {reason}"
            assert result.flag_counts[reason][i] == 1, f"{where}: stop not recorded as a flag"
            assert result.flag_first[reason][i] == result.stop_step[i]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("lr", [1e-6, 10.0])
def test_every_method_at_extreme_learning_rates(optimizer, lr):
    config = Config(
        methods=tuple(MethodEntry(m) for m in ALL),
        problem_params={"scale": 0.1},
        inits=STANDARD5,
        optimizer=optimizer,
        lr=lr,
        steps=300,
        record_every=100,
    )
    result = run(config)
    assert_finite_or_explained(result)
    if lr == 1e-6 and optimizer == "adam":
        # Adam moves at most (1 - b1) / sqrt(1 - b2) = 3.16 lr per step and coordinate.
        starts = np.array([lane.init for lane in result.lanes])
        assert np.abs(result.final_x - starts).max() <= 300 * 1e-6 * 3.2  # |m^|/sqrt(v^) <= 3.16


def test_every_c_at_both_ends_of_its_range():
    entries = []
    for name, spec in METHODS.items():
        for p in spec.params:
            if p.name == "c" and p.kind == "float":
                entries.append(MethodEntry(name, {"c": [p.low, p.high]}))
    assert {e.name for e in entries} >= {"cagrad", "conicgrad", "conicgrad_exact"}
    config = Config(
        methods=tuple(entries),
        problem_params={"scale": 0.1},
        inits=STANDARD5,
        lr=0.05,
        steps=400,
        record_every=100,
    )
    assert_finite_or_explained(run(config))


def test_a_run_at_the_step_cap_completes():
    config = Config(
        methods=(MethodEntry("ls"),),
        inits=((-8.5, 7.5), (9.0, -1.0)),
        steps=MAX_STEPS,
        record_every=MAX_STEPS // 4,
    )
    result = run(config)
    assert result.steps_run == MAX_STEPS
    assert list(result.recorded_steps) == [0, 50_000, 100_000, 150_000, MAX_STEPS]
    assert_finite_or_explained(result)
