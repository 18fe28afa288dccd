"""False alarms on generated quiet months, and detection on the march2020 / units_bug scenarios
(issue 14's bars), at the engine's default settings; a tidy table per case.

Counts come from the library directly (generate -> features -> per-(day, value) counts), not
from whole jobs, so 1M rows/month fits a 2-core machine.  For every seed: months 2020-01..06
of ``scenario=none``, reference 2020-01, compared 2020-02..06 with daily, weekly and monthly
windows.

    python benchmarks/bench_false_alarms.py --rows 200000 --seeds 1,2,3,4,5
    python benchmarks/bench_false_alarms.py --rows 1000000 --seeds 1,2,3 --scenarios

Bars (defaults): at most 3% of windows with any alarm at each frequency, and no (feature,
statistic) alarming on more than 1% of windows.  ``--out DIR`` writes the tables as CSV
(``false_alarms_windows.csv``: one row per rows x frequency; ``false_alarms_tests.csv``: one
row per rows x frequency x feature x statistic).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from rapidseval import get_backend
from rapidseval.io.readers import plan_parts, read_part
from rapidseval.io.sources import inspect_input
from rapidseval.data.synthetic import generate
from rapidseval.features import FeatureSpec, prepare, required_columns
from rapidseval.shift import DayCounts, FamilyThreshold, ShiftCalculator, ShiftReduce, window_verdicts

FEATURES = FeatureSpec().features
COMPARED = ["2020-02", "2020-03", "2020-04", "2020-05", "2020-06"]


def month_counts(path: Path, month: str) -> dict[str, DayCounts]:
    be, spec = get_backend("cpu"), FeatureSpec()
    reduce = ShiftReduce(FEATURES)
    parts = []
    for part in plan_parts(inspect_input(str(path), month), target_rows=500_000):
        frame, _ = prepare(be.from_arrow(read_part(part, list(required_columns(spec)))), spec, month=month, backend=be)
        parts.append(reduce(frame, be))
    return {f: DayCounts.merge(p[f] for p in parts) for f in FEATURES}


def generated(scenario: str, rows: int, seed: int, start: str, end: str, **kw):
    with tempfile.TemporaryDirectory() as d:
        res = generate(d, start, end, rows, scenario=scenario, seed=seed, **kw)
        counts = {m: month_counts(f, m) for m, f in zip(res.rows, res.files)}
    return counts, res.ground_truth


def quiet(rows: int, seeds: list[int], rate: float) -> tuple[pd.DataFrame, pd.DataFrame, float, float]:
    """(per-frequency window rates, per-test rates, compare seconds, of which verdict seconds)."""
    tables = []
    compare_s = verdict_s = 0.0
    for seed in seeds:
        counts, _ = generated("none", rows, seed, "2020-01", "2020-06")
        for freq in "DWM":
            calc = ShiftCalculator(FEATURES, frequency=freq, threshold=FamilyThreshold(window_alarm_rate=rate)).fit(
                counts["2020-01"], label="2020-01")
            for m in COMPARED:
                t0 = time.perf_counter()
                t = calc.calculate(counts[m]).table
                compare_s += time.perf_counter() - t0
                verdict_s += calc.verdict_seconds_
                tables.append(t.assign(seed=seed, freq=freq, rows=rows, alpha_test=calc.alpha_test_))
    t = pd.concat(tables, ignore_index=True)
    # weekly windows cut by a month end are compared in both months: each part is a window
    win = t.groupby(["rows", "freq", "seed", "window_start", "window"])["window_alarm"].any().reset_index()
    windows = (win.groupby(["rows", "freq"])["window_alarm"].agg(windows="size", alarmed="sum").reset_index()
               .assign(share=lambda d: d["alarmed"] / d["windows"]))
    g = t.groupby(["rows", "freq", "feature", "statistic"])
    tests = (g["alarm"].agg(windows="size", alarmed="sum").reset_index()
             .assign(share=lambda d: d["alarmed"] / d["windows"],
                     # calibrated p-values of quiet windows: about uniform if the null is right
                     p_null_below_05=g["p_null"].apply(lambda p: float((p.dropna() < 0.05).mean())).to_numpy(),
                     p_null_below_01=g["p_null"].apply(lambda p: float((p.dropna() < 0.01).mean())).to_numpy(),
                     nominal=g["alpha_test"].first().to_numpy()))
    return windows, tests, compare_s, verdict_s


def march2020(rows: int, seed: int = 2020) -> pd.DataFrame:
    counts, truth = generated("march2020", rows, seed, "2020-01", "2020-04")
    feats = {f for c in truth["changes"] for f in c["features"]}
    calc = ShiftCalculator(FEATURES, frequency="D").fit(counts["2020-01"], label="2020-01")
    t = pd.concat([calc.calculate(counts[m]).table for m in ("2020-03", "2020-04")], ignore_index=True)
    out = []
    for (start, window), g in t.groupby(["window_start", "window"]):
        ranked = list(dict.fromkeys(g.sort_values("exceedance", ascending=False)["feature"]))
        out.append({"window": window, "window_alarm": bool(g["window_alarm"].iloc[0]), "top3": ranked[:3],
                    "top3_in_truth": sum(f in feats for f in ranked[:3]), "top1_in_truth": ranked[0] in feats})
    return pd.DataFrame(out)


def units_bug(rows: int, seed: int = 7) -> pd.DataFrame:
    counts, _ = generated("units_bug", rows, seed, "2020-01", "2020-05", scenario_month="2020-03")
    calc = ShiftCalculator(FEATURES, frequency="M").fit(counts["2020-01"], label="2020-01")
    t = pd.concat([calc.calculate(counts[m]).table for m in ("2020-02", "2020-03", "2020-04", "2020-05")])
    return window_verdicts(t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--rate", type=float, default=0.01, help="window_alarm_rate")
    ap.add_argument("--scenarios", action="store_true", help="also march2020 (daily) and units_bug (monthly)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    pd.set_option("display.width", 200)
    all_w, all_t = [], []
    for rows in args.rows:
        t0 = time.perf_counter()
        windows, tests, compare_s, verdict_s = quiet(rows, seeds, args.rate)
        print(f"\n== quiet months, {rows:,} rows/month, seeds {seeds}: windows with any alarm "
              f"({time.perf_counter() - t0:.0f} s; compare {compare_s:.1f} s, of which the window-level "
              f"rule {verdict_s:.2f} s = {verdict_s / compare_s:.1%})")
        print(windows.to_string(index=False))
        worst = tests.sort_values("share", ascending=False).groupby("freq").head(3)
        print("most alarming (feature, statistic) per frequency:")
        print(worst.to_string(index=False))
        calibrated = tests.dropna(subset=["p_null_below_05"]).groupby("freq")[["p_null_below_05", "p_null_below_01"]]
        print("calibrated p-values of quiet windows, share below 0.05 / 0.01 (mean over tests):")
        print(calibrated.mean().to_string())
        all_w.append(windows)
        all_t.append(tests)
        if args.scenarios:
            m = march2020(rows)
            after = m[m["window"] >= "2020-03-16"]
            print(f"\n== march2020, {rows:,} rows/month, daily windows from 2020-03-16: "
                  f"{int(after['window_alarm'].sum())} of {len(after)} alarm; top feature in the ground truth on "
                  f"{int(after['top1_in_truth'].sum())}; all top 3 in it on {int((after['top3_in_truth'] == 3).sum())}; "
                  f"before 2020-03-14: {int(m[m['window'] < '2020-03-14']['window_alarm'].sum())} alarm")
            print(after.head(10).to_string(index=False))
            print(f"\n== units_bug (2020-03), {rows:,} rows/month, monthly windows against 2020-01:")
            print(units_bug(rows).to_string(index=False))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        pd.concat(all_w).to_csv(args.out / "false_alarms_windows.csv", index=False)
        pd.concat(all_t).to_csv(args.out / "false_alarms_tests.csv", index=False)


if __name__ == "__main__":
    main()
