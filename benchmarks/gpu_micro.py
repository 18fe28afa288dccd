"""GPU micro-benchmarks of the ``xp`` paths (issue 18's quick check): CuPy only, no RAPIDS.

At ``--rows`` rows per month (default 6.4M, the study's size) on generated quiet data,
11 study features, each timed as the median of ``--rounds`` runs after one warm-up:

* ``count``: per-(day, value) counts of one month (``count_days``, the work a worker does
  while reading), on the device;
* ``compare``: a further month against a fitted reference (``ShiftCalculator.calculate``,
  default statistics, monthly window), from the month's counts;
* ``calibrate``: the reference's null (``ShiftCalculator.fit``, grid arithmetic on ``xp``);
* ``replay_summary``: a month of scored rows reduced to hourly counts and a daily score
  histogram (``summarize_scores``);
* ``ks_2samp``: ``rapidseval.shift.ks_2samp`` over the 11 features, month vs month.

``--xp numpy`` runs the same steps on the host (to check the script, and for contrast).
Writes ``micro.json`` and ``micro.txt`` (a tidy table) under ``--out``.

    python benchmarks/gpu_micro.py --xp cupy --rows 6400000 --out benchmarks/results/DATE-DEVICE-quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(fn, rounds: int, sync) -> tuple[float, list[float]]:
    fn()
    sync()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def _months(rows: int, seed: int = 3):
    """Two generated quiet months as host arrays: (day, features) each."""
    from rapidseval import get_backend
    from rapidseval.io.readers import plan_parts, read_part
    from rapidseval.io.sources import inspect_input
    from rapidseval.data.synthetic import generate
    from rapidseval.features import FeatureSpec, prepare, required_columns

    spec, be = FeatureSpec(), get_backend("cpu")
    out = {}
    with tempfile.TemporaryDirectory() as d:
        generate(d, "2020-01", "2020-02", rows, scenario="none", seed=seed)
        for m in ("2020-01", "2020-02"):
            info = inspect_input(str(Path(d) / f"yellow_tripdata_{m}.parquet"), m)
            frame = prepare(be.from_arrow(read_part(plan_parts(info, target_rows=10**9)[0], list(required_columns(spec)))),
                            spec, month=m, backend=be)[0]
            day = frame["pickup_datetime"].to_numpy().view("int64") // 86_400_000_000
            t_us = frame["dropoff_datetime"].to_numpy().view("int64")
            out[m] = (day, {f: frame[f].to_numpy() for f in spec.features}, t_us, frame["high_tip"].to_numpy())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xp", choices=("cupy", "numpy"), default="cupy")
    ap.add_argument("--rows", type=int, default=6_400_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    from rapidseval.replay import summarize_scores
    from rapidseval.shift import ShiftCalculator, count_days, ks_2samp

    if args.xp == "cupy":
        import cupy as xp

        sync = xp.cuda.Device().synchronize
        device = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    else:
        xp, sync, device = np, (lambda: None), "host"
    t0 = time.perf_counter()
    months = _months(args.rows)
    print(f"data: 2 generated months x {args.rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    (ref_day, ref_cols, _, _), (day, cols, t_us, label) = months["2020-01"], months["2020-02"]
    d_day, d_cols = xp.asarray(day), {f: xp.asarray(v) for f, v in cols.items()}
    d_ref_day, d_ref_cols = xp.asarray(ref_day), {f: xp.asarray(v) for f, v in ref_cols.items()}
    rng = np.random.default_rng(0)
    proba = np.round(rng.random(len(day)), 3)
    d_t, d_y, d_p = xp.asarray(t_us), xp.asarray(label.astype("int8")), xp.asarray(proba)

    ref_counts = count_days(d_ref_day, d_ref_cols, xp=xp)
    month_counts = count_days(d_day, d_cols, xp=xp)
    calc = ShiftCalculator(list(cols), frequency="M", xp=xp).fit(ref_counts)
    steps = {
        "count": lambda: count_days(d_day, d_cols, xp=xp),
        "calibrate": lambda: ShiftCalculator(list(cols), frequency="M", xp=xp).fit(ref_counts),
        "compare": lambda: calc.calculate(month_counts),
        "replay_summary": lambda: summarize_scores(d_t, d_y, d_p, threshold=0.5, window="D", xp=xp),
        "ks_2samp": lambda: [ks_2samp(d_ref_cols[f], d_cols[f]) for f in cols],
    }
    rows = []
    for name, fn in steps.items():
        median, times = _timed(fn, args.rounds, sync)
        rows.append({"step": name, "xp": args.xp, "device": device, "rows": args.rows, "median_s": round(median, 4),
                     "times_s": [round(t, 4) for t in times]})
        print(f"{name:>15}  {median:8.4f} s  ({', '.join(f'{t:.4f}' for t in times)})", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "micro.json").write_text(json.dumps(rows, indent=1) + "\n")
    with open(args.out / "micro.txt", "w") as fh:
        for r in rows:
            fh.write(f"{r['step']}\t{r['xp']}\t{r['device']}\t{r['rows']}\t{r['median_s']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
