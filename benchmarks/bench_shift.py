"""Shift engine bars (issue 4), CPU: 11 study features, reference vs one month.

Rows per month from RAPIDSEVAL_BENCH_SHIFT_ROWS (default 6400000, the bars' size;
e.g. 1000000 for a quick run).  Each case prints its figure.

* engine vs a loop of scipy.stats.ks_2samp (bar: >= 10x at 6.4M vs 6.4M rows), two figures:
  one-off (count both months, calibrate on the reference, compare) and per further
  window (the reference is counted and calibrated once, as the engine is built to be used);
  the assertion is on the per-window figure, the one-off one is printed beside it;
* engine vs Evidently 0.7.23's DataDriftPreset on the same frames (bar: >= 30x), run
  in its own virtual environment (``make bench-evidently-env``; path from
  RAPIDSEVAL_EVIDENTLY_PYTHON, default ~/.cache/rapidseval/venv-evidently/bin/python),
  skipped with the reason when that environment is absent;
* daily windows (bar: >= 50M rows/s for 365 daily windows x 11 features against one
  reference): the twelve generated months of 2020 against December 2019, the compare step
  on per-(day, value) counts, which workers produce while reading; counting is timed and
  printed separately.

The engine's one-off time covers counting both months per (day, value) (two threads:
the bars' 2 cores), calibration and the KS statistic and p-value of every feature.

    .venv/bin/python -m pytest benchmarks/bench_shift.py --benchmark-only -s
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from rapidseval import get_backend
from rapidseval.io.readers import plan_parts, read_part
from rapidseval.io.sources import inspect_input
from rapidseval.data.synthetic import generate
from rapidseval.features import FeatureSpec, prepare, required_columns
from rapidseval.shift import DayCounts, ShiftCalculator, count_days

ROWS = int(os.environ.get("RAPIDSEVAL_BENCH_SHIFT_ROWS", "6400000"))
FULL = ROWS >= 6_400_000
FEATURES = FeatureSpec().features
EVIDENTLY_PYTHON = Path(os.environ.get("RAPIDSEVAL_EVIDENTLY_PYTHON",
                                       Path.home() / ".cache/rapidseval/venv-evidently/bin/python"))


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


def _day(frame):
    return frame["pickup_datetime"].to_numpy().view("int64") // 86_400_000_000


def _counts(frame, threads: int = 2):
    """Per-(day, value) counts of the 11 features, two threads (the bars' 2 cores)."""
    return count_days(_day(frame), {f: frame[f].to_numpy() for f in FEATURES}, threads=threads)


def _engine(ref, win):
    """One-off: count both months, calibrate on the reference, compare the month."""
    calc = ShiftCalculator(FEATURES, frequency="M", statistics=["ks"]).fit(_counts(ref))
    return calc.calculate(_counts(win)).table


def _window(calc, win):
    """Every further window: count it and compare (the reference was counted and calibrated once)."""
    return calc.calculate(_counts(win)).table


def _scipy_loop(ref, win):
    return [stats.ks_2samp(ref[f].to_numpy(), win[f].to_numpy()) for f in FEATURES]


def test_shift_vs_scipy_ks_loop(benchmark, frames):
    ref, win = frames["2020-01"], frames["2020-02"]
    t0 = time.perf_counter()
    scipy_res = _scipy_loop(ref, win)
    t_scipy = time.perf_counter() - t0
    table = benchmark.pedantic(_engine, args=(ref, win), rounds=3, warmup_rounds=1)
    t_once = benchmark.stats.stats.median
    calc = ShiftCalculator(FEATURES, frequency="M", statistics=["ks"]).fit(_counts(ref))
    per = []
    for _ in range(3):
        t0 = time.perf_counter()
        _window(calc, win)
        per.append(time.perf_counter() - t0)
    t_win = float(np.median(per))
    benchmark.extra_info.update(scipy_s=t_scipy, speedup_one_off=t_scipy / t_once, window_s=t_win,
                                speedup_per_window=t_scipy / t_win)
    ours = table.set_index("feature")["value"]
    for f, r in zip(FEATURES, scipy_res):  # the calendar-adjusted reference differs from scipy's plain one
        assert np.isfinite(ours[f]) and np.isfinite(r.statistic)
    print(f"\nengine vs scipy ks_2samp loop: {len(ref):,} vs {len(win):,} rows, 11 features, scipy loop {t_scipy:.2f} s; "
          f"engine one-off (count both months, calibrate, compare) {t_once:.2f} s = {t_scipy / t_once:.1f}x; "
          f"each further window (count + compare; reference counted and calibrated once) {t_win:.2f} s = "
          f"{t_scipy / t_win:.1f}x (bar >= 10x at 6.4M)")
    if FULL:
        assert t_scipy / t_win >= 10, f"bar: >= 10x a loop of scipy.stats.ks_2samp per window, got {t_scipy / t_win:.1f}x"


def test_shift_vs_evidently(benchmark, frames, tmp_path):
    if not EVIDENTLY_PYTHON.exists():
        pytest.skip(f"no Evidently environment at {EVIDENTLY_PYTHON}: run `make bench-evidently-env` "
                    "(or set RAPIDSEVAL_EVIDENTLY_PYTHON)")
    ref, win = frames["2020-01"], frames["2020-02"]
    paths = []
    for name, fr in (("ref", ref), ("cur", win)):
        p = tmp_path / f"{name}.parquet"
        fr[list(FEATURES)].to_parquet(p)
        paths.append(str(p))
    script = Path(__file__).with_name("_evidently_drift.py")
    out = subprocess.run([str(EVIDENTLY_PYTHON), str(script), *paths], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"Evidently run failed:\n{out.stderr[-3000:]}")
    t_ev = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    benchmark.pedantic(_engine, args=(ref, win), rounds=3, warmup_rounds=1)
    t_ours = benchmark.stats.stats.median
    speedup = t_ev / t_ours
    benchmark.extra_info.update(evidently_s=t_ev, speedup=speedup)
    print(f"\nengine vs Evidently 0.7.23 DataDriftPreset (report run only, frames already in memory): "
          f"{len(ref):,} vs {len(win):,} rows, 11 features: engine {t_ours:.2f} s, Evidently {t_ev:.2f} s: "
          f"{speedup:.1f}x (bar >= 30x at 6.4M)")
    if FULL:
        assert speedup >= 30, f"bar: >= 30x Evidently's DataDriftPreset, got {speedup:.1f}x"


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    """A reference month (2019-12) and the twelve months of 2020, generated at ROWS rows each
    and counted per (day, value) as workers do while reading (two threads); the rows are
    dropped once counted."""
    d = tmp_path_factory.mktemp("shift_year")
    generate(d, "2019-12", "2020-12", ROWS, scenario="none", seed=5)
    be, spec = get_backend("cpu"), FeatureSpec()
    counted, nrows, t_count = {}, 0, 0.0
    for m in ["2019-12"] + [f"2020-{i:02d}" for i in range(1, 13)]:
        info = inspect_input(str(d / f"yellow_tripdata_{m}.parquet"), m)
        frame = prepare(be.from_arrow(read_part(plan_parts(info, target_rows=10**9)[0], list(required_columns(spec)))),
                        spec, month=m, backend=be)[0]
        t0 = time.perf_counter()
        counted[m] = _counts(frame)
        t_count += time.perf_counter() - t0
        nrows += len(frame) if m != "2019-12" else 0
        del frame
    ref = counted.pop("2019-12")
    months = {f: DayCounts.merge([c[f] for c in counted.values()]) for f in FEATURES}
    return ref, months, nrows, t_count


def test_shift_daily_windows_rows_per_s(benchmark, year):
    """365 daily windows x 11 features against one reference: the twelve generated months of
    2020 against December 2019 (every day a window of its own values)."""
    ref, months, nrows, t_count = year
    # exact_p=False: scipy's exact Smirnov series costs 10-100 ms per ~200k-row day (p < 0.025)
    calc = ShiftCalculator(FEATURES, frequency="D", exact_p=False).fit(ref)
    table = benchmark.pedantic(lambda: calc.calculate(months).table, rounds=3, warmup_rounds=1, iterations=1)
    t = benchmark.stats.stats.median
    rate = nrows / t
    pairs = sum(len(c) for c in months.values())
    benchmark.extra_info.update(rows_per_s=rate, count_rows_per_s=13 * nrows / 12 / t_count, entries=pairs)
    print(f"\ndaily windows: {table.window.nunique()} windows x {table.feature.nunique()} features, {nrows:,} window "
          f"rows ({pairs:,} (day, value) entries), compare {t:.2f} s: {rate / 1e6:.1f}M rows/s (bar >= 50M); "
          f"counting on the workers (not in the figure): {13 * nrows / 12 / t_count / 1e6:.1f}M rows/s of 11 "
          f"features in two threads")
    if FULL:
        assert table.window.nunique() == 366  # 2020 is a leap year
        assert rate >= 50e6, f"bar: >= 50M rows/s, got {rate / 1e6:.1f}M"
