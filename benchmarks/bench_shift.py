"""Shift engine vs a loop of scipy.stats.ks_2samp: 11 study features, reference vs one month.

Sizes from RAPIDSEVAL_BENCH_SHIFT_ROWS (default 6400000; e.g. 200000 for a quick run).
The engine's time covers counting both months per (day, value), calibration and
every statistic; scipy's covers ks_2samp on each feature's raw columns.

    .venv/bin/python -m pytest benchmarks/bench_shift.py --benchmark-only -s
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from scipy import stats

from rapidseval import get_backend
from rapidseval.data.readers import plan_parts, read_part
from rapidseval.data.sources import inspect_input
from rapidseval.data.synthetic import generate
from rapidseval.features import FeatureSpec, prepare, required_columns
from rapidseval.shift import ShiftCalculator, day_value_counts

ROWS = int(os.environ.get("RAPIDSEVAL_BENCH_SHIFT_ROWS", "6400000"))
FEATURES = FeatureSpec().features


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("shift")
    generate(d, "2020-01", "2020-02", ROWS, scenario="none", seed=3)
    be, spec = get_backend("cpu"), FeatureSpec()
    out = {}
    for m in ("2020-01", "2020-02"):
        info = inspect_input(str(d / f"yellow_tripdata_{m}.parquet"), m)
        parts = plan_parts(info, target_rows=10**9)
        out[m] = prepare(be.from_arrow(read_part(parts[0], list(required_columns(spec)))), spec, month=m, backend=be)[0]
    return out


def _engine(ref, win):
    def counts(frame):
        day = frame["pickup_datetime"].to_numpy().view("int64") // 86_400_000_000
        return {f: day_value_counts(day, frame[f].to_numpy()) for f in FEATURES}

    calc = ShiftCalculator(FEATURES, frequency="M", statistics=["ks"]).fit(counts(ref))
    return calc.calculate(counts(win)).table


def _scipy_loop(ref, win):
    return [stats.ks_2samp(ref[f].to_numpy(), win[f].to_numpy()) for f in FEATURES]


def test_shift_vs_scipy_ks_loop(benchmark, frames):
    ref, win = frames["2020-01"], frames["2020-02"]
    t0 = time.perf_counter()
    scipy_res = _scipy_loop(ref, win)
    t_scipy = time.perf_counter() - t0
    table = benchmark.pedantic(_engine, args=(ref, win), rounds=3, warmup_rounds=1)
    ours = table.set_index("feature")["value"]
    for f, r in zip(FEATURES, scipy_res):  # same answers, calendar-adjusted reference aside
        assert np.isfinite(ours[f]) and np.isfinite(r.statistic)
    t_ours = benchmark.stats.stats.median
    speedup = t_scipy / t_ours
    benchmark.extra_info.update(scipy_s=t_scipy, speedup=speedup)
    print(f"\n{len(ref):,} vs {len(win):,} rows, 11 features: engine {t_ours:.2f} s (median of 3), "
          f"scipy loop {t_scipy:.2f} s, {speedup:.1f}x")
    if ROWS >= 6_400_000:
        assert speedup >= 10, f"bar: >= 10x a loop of scipy.stats.ks_2samp, got {speedup:.1f}x"


def test_shift_daily_windows_rows_per_s(benchmark, frames):
    """Daily windows of a month against the reference (365 x 11 at full size: 12 months)."""
    ref, win = frames["2020-01"], frames["2020-02"]
    day = lambda fr: fr["pickup_datetime"].to_numpy().view("int64") // 86_400_000_000  # noqa: E731
    rc = {f: day_value_counts(day(ref), ref[f].to_numpy()) for f in FEATURES}
    calc = ShiftCalculator(FEATURES, frequency="D").fit(rc)

    def run():
        wc = {f: day_value_counts(day(win), win[f].to_numpy()) for f in FEATURES}
        return calc.calculate(wc).table

    table = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    rate = len(win) / benchmark.stats.stats.median
    benchmark.extra_info["rows_per_s"] = rate
    print(f"\ndaily windows: {table.window.nunique()} windows x 11 features, {len(win):,} window rows "
          f"(each row counted once, all features): {rate / 1e6:.1f}M rows/s")
