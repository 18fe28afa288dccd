"""Thresholds as objects (issue 16): the job file's keys map to them, and a constant threshold
alarms exactly where its bounds say; the calibrated ones are pinned by test_shift_verdicts.py."""

from __future__ import annotations

import numpy as np
import pytest

from rapidseval.core.errors import SpecError
from rapidseval.shift import (ConstantThreshold, FamilyThreshold, QuantileThreshold, ShiftCalculator,
                              StandardDeviationThreshold, count_days, threshold_from_options)
from rapidseval.shift.thresholds import ALARM_METHODS


def _days(rng, first_day, days, shift=0.0, per_day=1_000):
    day = np.repeat(np.arange(first_day, first_day + days), per_day)
    cols = {f: (rng.normal(size=len(day)) + (shift if f == "x" else 0.0)).round(2).astype("float32") for f in "xy"}
    return count_days(day, cols)


def test_options_map_to_threshold_objects():
    effects = {"ks": 0.02}
    assert threshold_from_options("family", window_alarm_rate=0.05, min_effect=effects) == FamilyThreshold(0.05, min_effect=effects)
    assert threshold_from_options("std", k_std=2.5) == StandardDeviationThreshold(std_multiplier=2.5)
    assert threshold_from_options("quantile", quantile=0.9, min_effect=effects) == QuantileThreshold(0.9, min_effect=effects)
    assert ShiftCalculator().threshold == FamilyThreshold(window_alarm_rate=0.01)
    assert set(ALARM_METHODS) == {"family", "std", "quantile"}


@pytest.mark.parametrize("call, match", [
    (lambda: threshold_from_options("mad"), r"unknown shift alarm 'mad'; choose one of family, std, quantile"),
    (lambda: threshold_from_options("std", quantile=1.5), "quantile"),
    (lambda: QuantileThreshold(quantile=0.0), "quantile"),
    (lambda: FamilyThreshold(min_effect={"kss": 0.1}), "min_effect names unknown statistic 'kss'"),
    (lambda: ConstantThreshold(upper={"kss": 0.1}), "upper names unknown statistic 'kss'"),
    (lambda: ConstantThreshold(upper=0.1, lower={"ks": 0.2}), "lower 0.2 must be below upper 0.1"),
    (lambda: ShiftCalculator(threshold="family"), "rapidseval.shift.Threshold"),
    # once accepted, then a bare KeyError 'kss' in fit
    (lambda: ShiftCalculator(["trip_time"], statistics=["ks", "kss"]), "unknown shift statistic 'kss'; choose from ks"),
    (lambda: ShiftCalculator(per_feature={"trip_time": ["kss"]}), "unknown shift statistic 'kss' for trip_time"),
])
def test_bad_thresholds_name_what_is_wrong(call, match):
    with pytest.raises(SpecError, match=match):
        call()


def test_constant_threshold_alarms_on_the_value_itself():
    rng = np.random.default_rng(11)
    ref, cmp_ = _days(rng, 18262, 28), _days(rng, 18290, 14, shift=0.2)
    calc = ShiftCalculator(["x", "y"], statistics=["ks", "wasserstein"], frequency="D",
                           threshold=ConstantThreshold(upper={"ks": 0.05}, lower={"wasserstein": 0.01})).fit(ref)
    t = calc.calculate(cmp_).table
    ks, w = t[t["statistic"] == "ks"], t[t["statistic"] == "wasserstein"]
    assert (ks["threshold"] == 0.05).all() and (ks["alarm"] == (ks["value"] > 0.05)).all()
    assert ks["alarm"].any() and not ks["alarm"].all()  # the shifted feature x alarms, y does not
    assert (w["alarm"] == (w["value"] < 0.01)).all() and np.isinf(w["threshold"]).all()
    assert t["p_null"].isna().all() and calc.null_["alpha_test"].isna().all()
    # the score threshold is the bound's score at the window's sizes: above it exactly when alarmed
    ks_scored = ks[np.isfinite(ks["score_threshold"])]
    assert ((ks_scored["score"] > ks_scored["score_threshold"]) == ks_scored["alarm"]).all()
    assert (t["window_alarm"] == t.groupby("window_start")["alarm"].transform("any")).all()
