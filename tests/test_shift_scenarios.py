"""Calibrated alarms on generated months: quiet where nothing changed, loud where something did.

1M rows per month (the size at which every raw p-value is 0); generation takes
about a second per month, so each scenario is generated once per module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rapidseval import get_backend
from rapidseval.io.readers import plan_parts, read_part
from rapidseval.io.sources import inspect_input
from rapidseval.data.synthetic import generate
from rapidseval.features import FeatureSpec, prepare, required_columns
from rapidseval.shift import DayCounts, ShiftCalculator, ShiftReduce

ROWS = 1_000_000
FEATURES = FeatureSpec().features


def _month_counts(path, month):
    be = get_backend("cpu")
    spec = FeatureSpec()
    reduce = ShiftReduce(FEATURES)
    out = []
    for part in plan_parts(inspect_input(str(path), month), target_rows=500_000):
        frame, _ = prepare(be.from_arrow(read_part(part, list(required_columns(spec)))), spec, month=month, backend=be)
        out.append(reduce(frame, be))
    return {f: DayCounts.merge(o[f] for o in out) for f in FEATURES}


def _scenario(tmp_path_factory, scenario, start, end, **kw):
    d = tmp_path_factory.mktemp(scenario)
    generate(d, start, end, ROWS, scenario=scenario, seed=7, **kw)
    months = [m for m in ("2020-01", "2020-02", "2020-03", "2020-04") if start <= m <= end]
    counts = {m: _month_counts(d / f"yellow_tripdata_{m}.parquet", m) for m in months}
    return counts, json.loads((d / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def stationary(tmp_path_factory):
    return _scenario(tmp_path_factory, "none", "2020-01", "2020-03")[0]


@pytest.fixture(scope="module")
def units_bug(tmp_path_factory):
    return _scenario(tmp_path_factory, "units_bug", "2020-01", "2020-04", scenario_month="2020-03")


@pytest.fixture(scope="module")
def march(tmp_path_factory):
    return _scenario(tmp_path_factory, "march2020", "2020-01", "2020-03")


def _pairs(table):
    g = table.groupby(["feature", "window"])
    return g["alarm"].any(), g["p_below_alpha"].any()


# raw p < 0.05 measured at 1M rows/month, seed 7: daily windows 46% of pairs (33k-row days),
# monthly windows 45% (the calendar-driven features: weekday, hour, work_hours, trip_time,
# trip_speed; this generator keeps zones, passengers and minutes identical across months)
@pytest.mark.parametrize("freq, raw_bar", [("D", 0.4), ("M", 0.4)])
def test_no_shift_no_alarms_but_raw_p_fires(stationary, freq, raw_bar):
    ref, months = stationary["2020-01"], ["2020-02", "2020-03"]
    calc = ShiftCalculator(FEATURES, frequency=freq, statistics=["ks"]).fit(ref, label="2020-01")
    table = np.concatenate  # noqa: F841
    tables = [calc.calculate(stationary[m]).table for m in months]
    import pandas as pd

    t = pd.concat(tables)
    alarm, _ = _pairs(t)
    # the study's test: window vs the whole reference, no calibration, p < 0.05
    raw = ShiftCalculator(FEATURES, frequency=freq, statistics=["ks"], calendar="none").fit(ref)
    rt = pd.concat([raw.calculate(stationary[m]).table for m in months])
    _, raw_p = _pairs(rt)
    print(f"\n{freq}: calibrated alarms on {alarm.mean():.1%} of (feature, window) pairs; raw p<0.05 on {raw_p.mean():.1%}")
    print(rt.groupby("feature")["p_below_alpha"].mean().to_string())
    assert alarm.mean() <= 0.05
    assert raw_p.mean() >= raw_bar


def test_units_bug_flagged_in_its_month_and_features(units_bug):
    counts, truth = units_bug
    change = truth["changes"][0] if "changes" in truth else truth[0]
    calc = ShiftCalculator(FEATURES, frequency="M").fit(counts["2020-01"], label="2020-01")
    import pandas as pd

    t = pd.concat([calc.calculate(counts[m]).table for m in ("2020-02", "2020-03")])
    alarm, _ = _pairs(t)
    for f in change["features"]:
        assert alarm[(f, "2020-03")], f
        assert not alarm[(f, "2020-02")], f
    print("\n", alarm[alarm].to_string())


def test_march2020_flagged_in_march_in_its_features(march):
    """ground_truth.json: trip mix changes from 2020-03-14 in the zones, distance, time and speed."""
    counts, truth = march
    changes = truth["changes"] if "changes" in truth else truth
    feats = sorted({f for c in changes for f in c["features"]})
    assert feats, changes
    calc = ShiftCalculator(FEATURES, frequency="M").fit(counts["2020-01"], label="2020-01")
    import pandas as pd

    t = pd.concat([calc.calculate(counts[m]).table for m in ("2020-02", "2020-03")])
    alarm, _ = _pairs(t)
    for f in feats:
        assert alarm[(f, "2020-03")], f
        assert not alarm[(f, "2020-02")], f
    print("\n", alarm[alarm].to_string())


# ---------------------------------------------------------------------------------------
# issue 14's bars at the default settings (window-level rule; larger sizes and more seeds:
# benchmarks/bench_false_alarms.py)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_quiet_windows_rarely_alarm_at_the_defaults(stationary, freq):
    """At most 3% of quiet windows alarm, and no (feature, statistic) on more than 1%."""
    import pandas as pd

    calc = ShiftCalculator(FEATURES, frequency=freq).fit(stationary["2020-01"], label="2020-01")
    t = pd.concat([calc.calculate(stationary[m]).table for m in ("2020-02", "2020-03")])
    windows = t.groupby("window_start")["window_alarm"].any()
    per_test = t.groupby(["feature", "statistic"])["alarm"].mean()
    print(f"\n{freq}: {int(windows.sum())} of {len(windows)} windows alarm; worst test {per_test.max():.1%}")
    assert windows.mean() <= 0.03 and per_test.max() <= max(0.01, 1 / len(windows))


def test_march2020_every_day_from_two_days_after_alarms_with_truth_features_on_top(march):
    """Daily windows from 2020-03-16 all alarm, and the three features with the largest
    exceedance are ground-truth features; no day before the change alarms."""
    counts, truth = march
    feats = {f for c in truth["changes"] for f in c["features"]}
    calc = ShiftCalculator(FEATURES, frequency="D").fit(counts["2020-01"], label="2020-01")
    t = calc.calculate(counts["2020-03"]).table
    for window, g in t.groupby("window"):
        if window < "2020-03-14":
            assert not g["window_alarm"].any(), window
        elif window >= "2020-03-16":
            top = list(dict.fromkeys(g.sort_values("exceedance", ascending=False)["feature"]))[:3]
            assert g["window_alarm"].all() and set(top) <= feats, (window, top)


def test_units_bug_month_alarms_with_distance_first_and_its_neighbours_stay_quiet(units_bug):
    import pandas as pd

    counts, truth = units_bug
    calc = ShiftCalculator(FEATURES, frequency="M").fit(counts["2020-01"], label="2020-01")
    w = pd.concat([calc.calculate(counts[m]).windows() for m in ("2020-02", "2020-03", "2020-04")]).set_index("window")
    assert w.loc["2020-03", "window_alarm"] and w.loc["2020-03", "top_feature"] in truth["changes"][0]["features"]
    assert not w.loc["2020-02", "window_alarm"] and not w.loc["2020-04", "window_alarm"]
