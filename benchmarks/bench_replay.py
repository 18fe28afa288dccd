"""Replay benchmarks.

1. Windowed metric aggregation on 6.4M scored rows (a 2020-01-sized month), CPU:
   bar >= 20M rows/s on 2 cores for the full per-window summary (counts, losses,
   score histogram -> F1, AUC, log loss, Brier, quantiles, bands), and >= 50x
   faster than the study's approach (pandas groupby-apply calling sklearn's
   f1_score per day), measured side by side on the same rows for the same
   output (daily F1).
2. Peak memory: replaying 12 generated months stays within 1.5x of replaying 1.

    .venv/bin/python -m pytest benchmarks/bench_replay.py --benchmark-only -s
    RAPIDSEVAL_BENCH_SCORED_ROWS=6400000 RAPIDSEVAL_BENCH_REPLAY_ROWS=1000000 (defaults)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from rapidseval.replay import replay_frame, replay_table, summarize_scores, window_counts

N = int(os.environ.get("RAPIDSEVAL_BENCH_SCORED_ROWS", "6400000"))
MONTH_ROWS = int(os.environ.get("RAPIDSEVAL_BENCH_REPLAY_ROWS", "1000000"))


@pytest.fixture(scope="module")
def scored():
    """A month of scored rows: dropoff times over January 2020, labels, P(y=1)."""
    rng = np.random.default_rng(0)
    t = np.datetime64("2020-01-01", "us") + rng.integers(0, 31 * 86_400_000_000, N).astype("timedelta64[us]")
    y = (rng.random(N) < 0.45).astype("int8")
    p = np.clip(0.35 * y + rng.random(N) * 0.65, 0, 1)
    return t, y, p


def _study(t, y, pred):
    """The study's daily F1: pandas groupby-apply calling sklearn per day."""
    from sklearn.metrics import f1_score

    df = pd.DataFrame({"t": t, "y": y, "pred": pred})
    return df.groupby(df.t.dt.day)[["y", "pred"]].apply(lambda g: f1_score(g.y, g.pred))


def _ours_daily_f1(t, y, pred):
    return replay_table(window_counts(t, y, pred, window="D", threads=2), window="D")["f1"]


def _ours_full(t, y, p):
    return replay_frame(summarize_scores(t, y, p, threshold=0.5, window="D", threads=2))


def _median_seconds(fn, *args, rounds=3):
    fn(*args)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def test_daily_f1_vs_study(benchmark, scored):
    t, y, p = scored
    pred = p > 0.5
    ours = benchmark.pedantic(_ours_daily_f1, args=(t, y, pred), rounds=5, warmup_rounds=1)
    study_s = _median_seconds(_study, t, y, pred)
    np.testing.assert_allclose(ours.to_numpy(), _study(t, y, pred).to_numpy(), rtol=0, atol=1e-12)
    ours_s = benchmark.stats.stats.median
    benchmark.extra_info.update({"study_s": study_s, "speedup": study_s / ours_s})
    print(f"\ndaily F1 on {N:,} rows: ours {ours_s * 1e3:.1f} ms ({N / ours_s / 1e6:.0f}M rows/s), "
          f"study groupby-apply {study_s:.2f} s -> {study_s / ours_s:.0f}x")
    if os.cpu_count() >= 2 and N >= 6_000_000:
        assert study_s / ours_s >= 50, f"bar: >= 50x the study's approach, got {study_s / ours_s:.0f}x"


def test_full_window_summary(benchmark, scored):
    t, y, p = scored
    table = benchmark.pedantic(_ours_full, args=(t, y, p), rounds=3, warmup_rounds=1)
    assert table["n"].sum() == N
    rate = N / benchmark.stats.stats.median
    benchmark.extra_info["rows_per_s"] = rate
    print(f"\nfull window summary (counts, losses, histogram, bands) on {N:,} rows: {rate / 1e6:.1f}M rows/s")
    if os.cpu_count() >= 2 and N >= 6_000_000:
        assert rate >= 20e6, f"bar: >= 20M rows/s on 2 cores, got {rate / 1e6:.1f}M"


_CHILD = textwrap.dedent("""
    import json, resource, sys
    import rapidseval
    months_dir, out, n_months = sys.argv[1], sys.argv[2], int(sys.argv[3])
    replay = [f"2020-{m:02d}" if m <= 12 else f"2021-{m - 12:02d}" for m in range(2, 2 + n_months)]
    job = {
        "name": "mem", "seed": 0, "backend": "cpu",
        "data": {"source": months_dir + "/yellow_tripdata_{month}.parquet", "start": "2020-01", "end": replay[-1],
                 "partition_rows": 250000},
        "model": {"kind": "random_forest", "params": {"n_estimators": 10, "max_depth": 8}},
        "evaluation": {"train": ["2020-01"], "test": [], "score": [],
                       "replay": {"months": replay, "window": "D"}, "shift": None},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": out, "report": False},
    }
    r = rapidseval.run(job)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rows": int(r.replay["n"].sum()), "seconds": r.timings["total"]}))
""")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from rapidseval.data.synthetic import generate

    d = tmp_path_factory.mktemp("history")
    generate(d, "2020-01", "2021-01", MONTH_ROWS, scenario="none", seed=3)
    return d


def _replay_rss(history, tmp_path, n_months):
    out = subprocess.run([sys.executable, "-c", _CHILD, str(history), str(tmp_path / f"m{n_months}"), str(n_months)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_memory_12_months_vs_1(benchmark, history, tmp_path):
    one = _replay_rss(history, tmp_path, 1)
    twelve = benchmark.pedantic(_replay_rss, args=(history, tmp_path, 12), rounds=1, iterations=1)
    ratio = twelve["peak_rss_mb"] / one["peak_rss_mb"]
    benchmark.extra_info.update({"rss_1_month_mb": one["peak_rss_mb"], "rss_12_months_mb": twelve["peak_rss_mb"],
                                 "ratio": ratio})
    print(f"\npeak RSS replaying 1 month ({one['rows']:,} rows): {one['peak_rss_mb']:.0f} MB; "
          f"12 months ({twelve['rows']:,} rows): {twelve['peak_rss_mb']:.0f} MB -> {ratio:.2f}x "
          f"({twelve['seconds']:.1f} s)")
    assert twelve["rows"] > 10 * one["rows"]
    assert ratio <= 1.5, f"bar: 12 months within 1.5x of 1 month, got {ratio:.2f}x"
