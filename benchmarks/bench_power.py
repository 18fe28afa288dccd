"""Power of the shift alarms: detection rate against injected effect size, beside NannyML's defaults.

Quiet generated months (scenario ``none``): January 2020 is the reference, February 2020 is
cut into daily windows (29 windows per seed).  Into the February rows, before features are
computed, one shift of a controlled size is injected at a time:

* ``category_share``: a share ``x`` of the rows get another pickup zone (the reference's
  20th most common one): ``PULocationID``;
* ``location``: every trip lasts ``x`` reference standard deviations of ``trip_time`` longer
  (the dropoff time moved): ``trip_time`` (and ``trip_speed``);
* ``units_bug``: a share ``x`` of the rows have ``trip_distance`` in km (x 1.609344):
  ``trip_distance`` (and ``trip_speed``).

``x = 0`` is the quiet month itself: its rate is the false-alarm rate.  The library API only
(features -> ``shift.count_days`` -> ``ShiftCalculator``, daily windows, default settings):

* **window level**: did the window alarm, over all 11 study features x their default
  statistics: :func:`window_alarmed` (the one place that says what a window alarm is);
* **per statistic**: every statistic that applies to the injected feature, on that feature
  alone (one curve each, the per-test ``alarm``).

NannyML 0.13.1's ``UnivariateDriftCalculator`` runs on the same windows (one chunk per day,
its default methods and thresholds: Jensen-Shannon, mean + 3 std of the reference's daily
chunks), in its own virtual environment like Evidently's (``make bench-nannyml-env``; path
from RAPIDSEVAL_NANNYML_PYTHON, default ~/.cache/rapidseval/venv-nannyml/bin/python), on
Parquet files (``_nannyml_drift.py``).  Its window alarm is an alert on any column.  Without
that environment the NannyML side is skipped, with the reason.

Bar (issue 14): at a window-level false-alarm rate no higher than NannyML's, rapidseval
detects at least as often at every effect size.  rapidseval runs at its default
``window_alarm_rate`` (0.01) and at the operating points of RAPIDSEVAL_BENCH_POWER_RATES
(default ``0.03,0.05,0.07``; the window verdict at another rate comes from the same tables:
:func:`window_alarmed_at`).  Checked per operating point, strictly and within chance (a
one-sided Fisher test per effect size: see :func:`bar`), written to ``summary.json``;
asserted (within chance, at some operating point) when RAPIDSEVAL_BENCH_ASSERT=1.

Sizes: RAPIDSEVAL_BENCH_POWER_ROWS, rows per daily window, comma-separated (default
``50000,200000``; ``1000000`` is a 30M-row month, ~10 GB), RAPIDSEVAL_BENCH_POWER_SEEDS
repetitions (default 2; each a new pair of months).  Output: RAPIDSEVAL_BENCH_POWER_OUT
(default ``benchmarks/results/<UTC date>-power/``): ``power.png`` (rows: sizes, columns:
shifts), ``power.csv`` (tidy rates), ``windows.parquet`` (one row per window and curve),
``summary.json``.

    make bench-nannyml-env
    RAPIDSEVAL_BENCH_POWER_ROWS=50000,200000 .venv/bin/python -m pytest benchmarks/bench_power.py --benchmark-only -s
    .venv/bin/python benchmarks/bench_power.py --rows 50000 --seeds 2      # the same, as a script
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from rapidseval import get_backend
from rapidseval.io.readers import plan_parts, read_part
from rapidseval.io.sources import inspect_input
from rapidseval.data.synthetic import generate
from rapidseval.features import STUDY_DROP_RULES, FeatureSpec, prepare, required_columns
from rapidseval.shift import STATISTICS, ShiftCalculator, count_days, feature_kind

FEATURES = FeatureSpec().features
REFERENCE, ANALYSIS = "2020-01", "2020-02"
US_PER_DAY = 86_400_000_000
NANNYML_PYTHON = Path(os.environ.get("RAPIDSEVAL_NANNYML_PYTHON",
                                     Path.home() / ".cache/rapidseval/venv-nannyml/bin/python"))
RESULTS = Path(__file__).resolve().parent / "results"


def window_alarmed(table: pd.DataFrame) -> pd.Series:
    """Whether each window alarmed (bool by window label), from a ``ShiftResult`` table.

    The one place this benchmark says what a window alarm is: the calculator's window-level
    verdict (``window_alarm``: the family of all features x statistics, calibrated so a quiet
    window alarms at most at ``window_alarm_rate``).
    """
    return table.groupby("window", sort=True)["window_alarm"].any()


#: rapidseval's window-level operating points: the default ``window_alarm_rate`` and the others
#: of RAPIDSEVAL_BENCH_POWER_RATES (the bar compares at a false-alarm rate no higher than NannyML's)
DEFAULT_RATE = 0.01
WINDOW_RATES = tuple(sorted({DEFAULT_RATE, *(float(r) for r in os.environ.get("RAPIDSEVAL_BENCH_POWER_RATES",
                                                                              "0.03,0.05,0.07").split(",") if r)}))


def engine_name(rate: float) -> str:
    return "rapidseval" if rate == DEFAULT_RATE else f"rapidseval@{rate:g}"


def window_alarmed_at(table: pd.DataFrame, alpha_test: pd.Series, rate: float) -> pd.Series:
    """The window verdict at another ``window_alarm_rate``: the family rule is Bonferroni over
    the window's tests (each at ``rate`` / tests), so a test alarms when its calibrated
    p-value is at most its level scaled from the default's (the calculator's ``alpha_test``)."""
    level = alpha_test.reindex(pd.MultiIndex.from_frame(table[["feature", "statistic"]])).to_numpy() * rate / DEFAULT_RATE
    hit = pd.Series(table["p_null"].to_numpy(float) <= level, index=table.index)
    return hit.groupby(table["window"], sort=True).any()


def statistics_for(feature: str) -> list[str]:
    """Every registered statistic that applies to the feature's kind (the per-statistic curves)."""
    return [name for name, st in STATISTICS.items() if feature_kind(feature) in st.kinds]


@dataclass(frozen=True)
class Shift:
    """An injected shift: the raw column it changes, the features that change with it, the
    feature its per-statistic curves are measured on, and its effect sizes."""

    name: str
    column: str  # canonical raw column
    features: tuple[str, ...]
    target: str
    effects: tuple[float, ...]
    effect_label: str
    apply: Callable[[pd.DataFrame, float, np.random.Generator, dict], pd.Series]


def _move_zone(raw, x, rng, ref):
    out = raw["pickup_location_id"].copy()
    out.iloc[rng.random(len(out)) < x] = ref["zone_to"]
    return out


def _later_dropoff(raw, x, rng, ref):
    return raw["dropoff_datetime"] + pd.to_timedelta(round(x * ref["trip_time_std"] * 1e6), unit="us")


def _km(raw, x, rng, ref):
    out = raw["trip_distance"].copy()
    hit = rng.random(len(out)) < x
    out.iloc[hit] = out.to_numpy()[hit] * 1.609344
    return out


SHIFTS: dict[str, Shift] = {s.name: s for s in (
    Shift("category_share", "pickup_location_id", ("PULocationID",), "PULocationID",
          (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05), "share of rows moved to another pickup zone", _move_zone),
    Shift("location", "dropoff_datetime", ("trip_time", "trip_speed"), "trip_time",
          (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1), "trip_time + x reference std", _later_dropoff),
    Shift("units_bug", "trip_distance", ("trip_distance", "trip_speed"), "trip_distance",
          (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0), "share of rows with trip_distance in km", _km),
)}


def _read(directory: Path, month: str, be, spec: FeatureSpec):
    info = inspect_input(str(directory / f"yellow_tripdata_{month}.parquet"), month)
    return be.from_arrow(read_part(plan_parts(info, target_rows=10**9)[0], list(required_columns(spec))))


def _counts(frame, features) -> dict:
    day = frame["pickup_datetime"].to_numpy().view("int64") // US_PER_DAY
    return count_days(day, {f: frame[f].to_numpy() for f in features}, threads=2)


def _nannyml_frame(frame, features, path: Path) -> None:
    frame[[*features, "pickup_datetime"]].to_parquet(path)


def _one_seed(rows: int, seed: int, work: Path, timings: dict) -> tuple[list[pd.DataFrame], dict | None]:
    """Every shift and effect of one pair of generated months: rapidseval's windows, and the
    NannyML job that runs on the same windows (None without its environment)."""
    # the study's cleaning rules (the plausibility bounds would drop the trips a location shift
    # makes long, so the shifted and quiet windows would not hold the same trips)
    be, spec = get_backend("cpu"), FeatureSpec(drop_rules=STUDY_DROP_RULES)
    d = work / f"data-{rows}-{seed}"
    t0 = time.perf_counter()
    generate(d, REFERENCE, ANALYSIS, rows * 30, scenario="none", seed=seed)
    timings["generate_s"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_frame = prepare(_read(d, REFERENCE, be, spec), spec, month=REFERENCE, backend=be)[0]
    raw = _read(d, ANALYSIS, be, spec)
    base = prepare(raw, spec, month=ANALYSIS, backend=be)[0]
    timings["prepare_s"] += time.perf_counter() - t0
    zones = ref_frame["PULocationID"].value_counts()
    ref_stats = {"zone_to": float(zones.index[19]), "trip_time_std": float(ref_frame["trip_time"].std())}

    t0 = time.perf_counter()
    ref_counts, base_counts = _counts(ref_frame, FEATURES), _counts(base, FEATURES)
    timings["count_s"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    window_calc = ShiftCalculator(FEATURES, frequency="D", exact_p=False).fit(ref_counts)
    per_stat = {s.target: ShiftCalculator([s.target], statistics=statistics_for(s.target), frequency="D",
                                          exact_p=False).fit({s.target: ref_counts[s.target]})
                for s in SHIFTS.values()}
    timings["fit_s"] += time.perf_counter() - t0

    records: list[pd.DataFrame] = []
    nml_analyses = []
    nml_dir = work / f"nannyml-{rows}-{seed}"
    nml_dir.mkdir(parents=True, exist_ok=True)
    _nannyml_frame(ref_frame, FEATURES, nml_dir / "reference.parquet")
    _nannyml_frame(base, FEATURES, nml_dir / "quiet.parquet")
    nml_analyses.append({"name": "quiet", "path": str(nml_dir / "quiet.parquet"), "columns": list(FEATURES)})

    alpha_test = window_calc.null_.set_index(["feature", "statistic"])["alpha_test"]

    def compare(shift: Shift, x: float, counts: dict) -> None:
        t0 = time.perf_counter()
        table = window_calc.calculate(counts).table
        n = table.groupby("window")["n_window"].max()
        # the rescaled rule reproduces the calculator's own verdict at its rate
        assert window_alarmed_at(table, alpha_test, DEFAULT_RATE).equals(window_alarmed(table))
        for rate in WINDOW_RATES:
            alarmed = window_alarmed(table) if rate == DEFAULT_RATE else window_alarmed_at(table, alpha_test, rate)
            records.append(pd.DataFrame({"engine": engine_name(rate), "scope": "window", "feature": "all",
                                         "statistic": "any", "window": alarmed.index,
                                         "n_window": n.reindex(alarmed.index).to_numpy(),
                                         "alarm": alarmed.to_numpy(bool)}).assign(shift=shift.name, effect_size=x))
        tests = per_stat[shift.target].calculate({shift.target: counts[shift.target]}).table
        records.append(pd.DataFrame({"engine": "rapidseval", "scope": "test", "feature": shift.target,
                                     "statistic": tests["statistic"].to_numpy(), "window": tests["window"].to_numpy(),
                                     "n_window": tests["n_window"].to_numpy(),
                                     "alarm": tests["alarm"].to_numpy(bool)}).assign(shift=shift.name, effect_size=x))
        timings["calculate_s"] += time.perf_counter() - t0

    for shift in SHIFTS.values():
        compare(shift, 0.0, base_counts)
        for i, x in enumerate(shift.effects):
            rng = np.random.default_rng([seed, rows, list(SHIFTS).index(shift.name), i])
            t0 = time.perf_counter()
            changed = raw.copy(deep=False)
            changed[shift.column] = shift.apply(raw, x, rng, ref_stats)
            frame = prepare(changed, FeatureSpec(features=shift.features, drop_rules=STUDY_DROP_RULES), month=ANALYSIS, backend=be)[0]
            if len(frame) != len(base):
                raise RuntimeError(f"{shift.name} x={x} changed the rows kept ({len(frame)} != {len(base)})")
            timings["inject_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            counts = {**base_counts, **_counts(frame, shift.features)}
            timings["count_s"] += time.perf_counter() - t0
            compare(shift, x, counts)
            name = f"{shift.name}-{i}"
            _nannyml_frame(frame, shift.features, nml_dir / f"{name}.parquet")
            nml_analyses.append({"name": name, "shift": shift.name, "effect_size": x,
                                 "path": str(nml_dir / f"{name}.parquet"), "columns": list(shift.features)})
    job = {"reference": str(nml_dir / "reference.parquet"), "timestamp": "pickup_datetime", "chunk_period": "D",
           "categorical": [f for f in FEATURES if feature_kind(f) == "categorical"],
           "analyses": nml_analyses, "out": str(nml_dir / "alerts.parquet")}
    return [r.assign(rows_per_window=rows, seed=seed) for r in records], job


def _nannyml(job: dict, rows: int, seed: int, timings: dict) -> list[pd.DataFrame]:
    """Run NannyML on one seed's windows; its window alarms (an alert on any column: the
    changed columns from the shifted frame, the others from the quiet one) and its
    per-test alerts on each shift's measured feature."""
    spec_path = Path(job["out"]).with_name("job.json")
    spec_path.write_text(json.dumps(job))
    out = subprocess.run([str(NANNYML_PYTHON), str(Path(__file__).with_name("_nannyml_drift.py")), str(spec_path)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"NannyML run failed:\n{out.stderr[-3000:]}")
    took = json.loads(out.stdout.strip().splitlines()[-1])
    timings["nannyml_fit_s"] += took["fit_s"]
    timings["nannyml_calculate_s"] += took["calculate_s"]
    timings["nannyml_version"] = took["nannyml"]
    alerts = pd.read_parquet(job["out"])
    quiet = alerts[alerts["analysis"] == "quiet"]
    records = []
    for shift in SHIFTS.values():
        variants = [("quiet", 0.0)] + [(a["name"], a["effect_size"]) for a in job["analyses"]
                                       if a.get("shift") == shift.name]
        for name, x in variants:
            changed = alerts[alerts["analysis"] == name]
            rows_of = pd.concat([quiet[~quiet["column"].isin(changed["column"])] if name != "quiet" else quiet[:0],
                                 changed])
            alarmed = rows_of.groupby("chunk", sort=True)["alert"].any()
            records.append(pd.DataFrame({"engine": "nannyml", "scope": "window", "feature": "all", "statistic": "any",
                                         "window": alarmed.index, "alarm": alarmed.to_numpy(bool)})
                           .assign(shift=shift.name, effect_size=x))
            target = rows_of[rows_of["column"] == shift.target]
            records.append(pd.DataFrame({"engine": "nannyml", "scope": "test", "feature": shift.target,
                                         "statistic": target["method"].to_numpy(), "window": target["chunk"].to_numpy(),
                                         "alarm": target["alert"].to_numpy(bool)})
                           .assign(shift=shift.name, effect_size=x))
    return [r.assign(rows_per_window=rows, seed=seed) for r in records]


def rates(windows: pd.DataFrame) -> pd.DataFrame:
    """Alarm rate per (size, shift, effect size, engine, scope, feature, statistic): tidy."""
    keys = ["rows_per_window", "shift", "effect_size", "engine", "scope", "feature", "statistic"]
    out = windows.groupby(keys, sort=True)["alarm"].agg(windows="size", alarms="sum").reset_index()
    out["rate"] = out["alarms"] / out["windows"]
    return out


def _significantly_below(alarms_a: int, alarms_b: int, windows: int, level: float = 0.05) -> bool:
    """Whether a's detection rate is below b's beyond chance (one-sided Fisher exact test on
    the two counts out of ``windows`` each): rates estimated from ~100 windows differ by a few
    windows by chance alone."""
    from scipy.stats import fisher_exact

    if alarms_a >= alarms_b:
        return False
    return fisher_exact([[alarms_a, windows - alarms_a], [alarms_b, windows - alarms_b]], alternative="less")[1] < level


def bar(table: pd.DataFrame) -> dict:
    """Per size and rapidseval operating point (``window_alarm_rate``): both window-level
    false-alarm rates (x = 0), and whether rapidseval detects at least as often as NannyML at
    every effect size while alarming no more often on quiet days.

    Two readings: ``strict`` (every rate >= NannyML's) and ``within_chance`` (no rate below
    NannyML's by a one-sided Fisher test at 5%).  Where neither engine sees a shift, both
    detect at their own false-alarm rates, so the strict reading there compares false alarms,
    and a lower false-alarm rate makes it fail: it says more about the noise than the power."""
    verdicts = {}
    win = table[table["scope"] == "window"]
    for rows, sub in win.groupby("rows_per_window"):
        if "nannyml" not in set(sub["engine"]):
            verdicts[int(rows)] = {"measured": False}
            continue
        keyed = sub.set_index(["shift", "effect_size", "engine"])
        rate = keyed["rate"].unstack("engine")
        alarms = keyed["alarms"].unstack("engine")
        n = keyed["windows"].unstack("engine")
        quiet = rate[rate.index.get_level_values("effect_size") == 0.0]
        shifted = rate.index[rate.index.get_level_values("effect_size") > 0]
        points = {}
        for engine in [e for e in rate.columns if e.startswith("rapidseval")]:
            far = {e: float(quiet[e].mean()) for e in (engine, "nannyml")}
            behind = [k for k in shifted if rate.loc[k, engine] < rate.loc[k, "nannyml"]]
            beyond_chance = [k for k in behind if _significantly_below(int(alarms.loc[k, engine]),
                                                                       int(alarms.loc[k, "nannyml"]), int(n.loc[k, engine]))]
            no_higher = far[engine] <= far["nannyml"]
            points[engine] = {
                "false_alarm_rate": far, "false_alarms_no_higher": no_higher,
                "detects_at_least_as_often": not behind, "behind_beyond_chance": [list(k) for k in beyond_chance],
                "behind_at": [{"shift": s, "effect_size": x, "rapidseval": float(rate.loc[(s, x), engine]),
                               "nannyml": float(rate.loc[(s, x), "nannyml"]),
                               "beyond_chance": (s, x) in beyond_chance} for s, x in behind],
                "met_strict": no_higher and not behind, "met_within_chance": no_higher and not beyond_chance}
        verdicts[int(rows)] = {"measured": True, "operating_points": points,
                               "met_strict_at": [e for e, p in points.items() if p["met_strict"]],
                               "met_within_chance_at": [e for e, p in points.items() if p["met_within_chance"]]}
        verdicts[int(rows)]["met"] = bool(verdicts[int(rows)]["met_within_chance_at"])
    return verdicts


def plot(table: pd.DataFrame, path: Path) -> None:
    """Detection rate against effect size: a row of panels per size, a panel per shift; one
    curve per statistic (rapidseval per test, NannyML's Jensen-Shannon) and the window level."""
    from matplotlib.figure import Figure

    sizes = sorted(table["rows_per_window"].unique())
    fig = Figure(figsize=(5.2 * len(SHIFTS), 3.9 * len(sizes)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(sizes), len(SHIFTS), squeeze=False))
    colors = dict(zip(STATISTICS, [f"C{i}" for i in range(len(STATISTICS))]))
    for r, rows in enumerate(sizes):
        for c, shift in enumerate(SHIFTS.values()):
            ax = axes[r, c]
            sub = table[(table["rows_per_window"] == rows) & (table["shift"] == shift.name)]
            xs = sorted(sub["effect_size"].unique())
            pos = {x: i for i, x in enumerate(xs)}

            def line(rows_of, **style):
                rows_of = rows_of.sort_values("effect_size")
                ax.plot([pos[x] for x in rows_of["effect_size"]], rows_of["rate"], marker="o", ms=3, **style)

            for stat, g in sub[(sub["engine"] == "rapidseval") & (sub["scope"] == "test")].groupby("statistic"):
                line(g, color=colors.get(stat, "C9"), lw=1.2, label=f"{stat} (per test)")
            for stat, g in sub[(sub["engine"] == "nannyml") & (sub["scope"] == "test")].groupby("statistic"):
                line(g, color="0.45", lw=1.2, ls=":", label=f"NannyML {stat} (per test)")
            window = sub[sub["scope"] == "window"]
            line(window[window["engine"] == "rapidseval"], color="black", lw=2.6,
                 label=f"rapidseval: window alarmed (window_alarm_rate {DEFAULT_RATE:g}, default)")
            for k, rate in enumerate(q for q in WINDOW_RATES if q != DEFAULT_RATE):
                line(window[window["engine"] == engine_name(rate)], color="black", lw=1.6, ls=(":", "-.")[k % 2],
                     label=f"rapidseval: window alarmed (window_alarm_rate {rate:g})")
            line(window[window["engine"] == "nannyml"], color="0.55", lw=2.6, ls="--", label="NannyML: window alerted")
            ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], fontsize=8)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            ax.set_title(f"{shift.name}: {shift.target}, ~{rows:,} rows/day", fontsize=10)
            ax.set_xlabel(shift.effect_label, fontsize=9)
            if c == 0:
                ax.set_ylabel("share of daily windows alarmed\n(x = 0: false alarms)", fontsize=9)
    handles = {}
    for ax in axes.flat:  # one legend for the figure: a statistic has one colour in every panel
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=6, fontsize=8)
    fig.suptitle("Detection rate against injected effect size (generated quiet months, daily windows vs January)",
                 fontsize=11)
    fig.savefig(path, dpi=110)


def run(sizes: list[int], seeds: int, out: Path) -> dict:
    """The whole benchmark: every size and seed, then the tables, the plot and the summary."""
    load_before = os.getloadavg()
    timings = {k: 0.0 for k in ("generate_s", "prepare_s", "count_s", "fit_s", "inject_s", "calculate_s",
                                "nannyml_fit_s", "nannyml_calculate_s")}
    nannyml_note = None if NANNYML_PYTHON.exists() else (
        f"no NannyML environment at {NANNYML_PYTHON}: run `make bench-nannyml-env` (or set RAPIDSEVAL_NANNYML_PYTHON)")
    t_start = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory(prefix="rapidseval-power-") as tmp:
        for rows in sizes:
            for seed in range(1, seeds + 1):
                mine, job = _one_seed(rows, 100 + seed, Path(tmp), timings)
                records += mine
                if nannyml_note is None:
                    records += _nannyml(job, rows, 100 + seed, timings)
    windows = pd.concat(records, ignore_index=True)
    windows = windows[["rows_per_window", "seed", "shift", "effect_size", "engine", "scope", "feature", "statistic",
                       "window", "n_window", "alarm"]]
    table = rates(windows)
    out.mkdir(parents=True, exist_ok=True)
    windows.to_parquet(out / "windows.parquet", index=False)
    table.to_csv(out / "power.csv", index=False)
    plot(table, out / "power.png")
    summary = {
        "sizes_rows_per_window": sizes, "seeds": seeds, "reference": REFERENCE, "analysis": ANALYSIS,
        "windows_per_point": {int(k): int(v) for k, v in windows.drop_duplicates(["rows_per_window", "seed", "window"])
                              .groupby("rows_per_window").size().items()},
        "median_rows_per_window": {int(k): float(v) for k, v in windows[windows["scope"] == "window"]
                                   .groupby("rows_per_window")["n_window"].median().items()},
        "shifts": {s.name: {"feature": s.target, "changes": list(s.features), "effect": s.effect_label,
                            "effects": [0.0, *s.effects]} for s in SHIFTS.values()},
        "bar": bar(table), "nannyml": timings.get("nannyml_version"), "nannyml_skipped": nannyml_note,
        "seconds": {k: round(v, 2) for k, v in timings.items() if isinstance(v, float)},
        "wall_s": round(time.perf_counter() - t_start, 1), "load_average_before_after": [load_before, os.getloadavg()],
        "cpus": os.cpu_count(), "command": " ".join(sys.argv),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _config() -> tuple[list[int], int, Path]:
    sizes = [int(s) for s in os.environ.get("RAPIDSEVAL_BENCH_POWER_ROWS", "50000,200000").split(",")]
    seeds = int(os.environ.get("RAPIDSEVAL_BENCH_POWER_SEEDS", "2"))
    out = Path(os.environ.get("RAPIDSEVAL_BENCH_POWER_OUT", RESULTS / f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}-power"))
    return sizes, seeds, out


def _print(summary: dict, out: Path) -> None:
    print(f"\npower benchmark -> {out}: sizes {summary['sizes_rows_per_window']} rows/day, {summary['seeds']} seed(s), "
          f"windows per point {summary['windows_per_point']}, wall {summary['wall_s']} s")
    for rows, v in summary["bar"].items():
        if not v.get("measured"):
            print(f"  {rows:,} rows/window: NannyML not measured ({summary['nannyml_skipped']})")
            continue
        print(f"  {rows:,} rows/window: bar met (within chance) at {', '.join(v['met_within_chance_at']) or 'none'}; "
              f"strictly at {', '.join(v['met_strict_at']) or 'none'}")
        for engine, p in v["operating_points"].items():
            far = p["false_alarm_rate"]
            print(f"    {engine}: window false-alarm rate {far[engine]:.3f} (NannyML {far['nannyml']:.3f}); detects at "
                  f"least as often at every effect size: {p['detects_at_least_as_often']}")
            for b in p["behind_at"]:
                print(f"      behind at {b['shift']} x={b['effect_size']:g}: {b['rapidseval']:.3f} < {b['nannyml']:.3f}"
                      f"{' (beyond chance)' if b['beyond_chance'] else ' (within chance)'}")


def test_power_vs_nannyml(benchmark):
    sizes, seeds, out = _config()
    summary = benchmark.pedantic(run, args=(sizes, seeds, out), rounds=1, iterations=1)
    _print(summary, out)
    assert (out / "power.png").exists() and (out / "power.csv").exists()
    if summary["nannyml_skipped"]:
        pytest.skip(summary["nannyml_skipped"])  # rapidseval's curves were written; no comparison
    if os.environ.get("RAPIDSEVAL_BENCH_ASSERT") == "1":
        assert all(v["met"] for v in summary["bar"].values()), summary["bar"]


if __name__ == "__main__":
    sizes, seeds, out = _config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default=",".join(map(str, sizes)), help="rows per daily window, comma-separated")
    parser.add_argument("--seeds", type=int, default=seeds, help="repetitions (pairs of generated months)")
    parser.add_argument("--out", type=Path, default=out, help="output folder")
    args = parser.parse_args()
    summary = run([int(s) for s in args.rows.split(",")], args.seeds, args.out)
    _print(summary, args.out)
