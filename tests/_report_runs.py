"""Run directories for report tests, written directly with pandas (no training).

One per job kind, holding every table and column the run-directory contracts
name: ``study`` (monthly, daily replay with bands, shift with two statistics,
attribution, explanation), ``replay`` (two models, label delay, floor, deltas; no shift) and
``backtest`` (policies, staleness).  ``old`` is a run directory from before
those contracts grew (monthly only, a thin manifest).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ("pickup_weekday", "pickup_hour", "work_hours", "passenger_count", "trip_distance", "trip_time",
            "trip_speed", "PULocationID", "DOLocationID", "RatecodeID")
KINDS = ("study", "replay", "backtest")


def _manifest(name: str, kind: str, months: list[str], *, evaluation: dict | None = None) -> dict:
    by_month = {
        m: {"uri": f"/data/yellow_tripdata_{m}.parquet", "rows_read": 20_000 + 10 * i,
            "dropped_by_rule": {"fare_not_positive": 20 + i, "missing_label": 0, "pickup_outside_month": 3 * i},
            "rows_used": 20_000 + 10 * i - (20 + i) - 3 * i}
        for i, m in enumerate(months)
    }
    tot_read = sum(v["rows_read"] for v in by_month.values())
    tot_used = sum(v["rows_used"] for v in by_month.values())
    rules = {r: sum(v["dropped_by_rule"][r] for v in by_month.values()) for r in ("fare_not_positive", "missing_label", "pickup_outside_month")}
    return {
        "rapidseval_manifest": 1,
        "complete": True,
        "created_utc": "2026-11-01T12:00:00+00:00",
        "job": {"name": name, "kind": kind, "seed": 0, "model": {"kind": "random_forest", "params": {"n_estimators": 10}, "threshold": 0.5},
                "evaluation": evaluation or {}, "cluster": {"kind": "local", "n_workers": 2}},
        "job_hash": "ab" * 32,
        "seed": 0,
        "backend": "cpu",
        "backend_reason": "asked for cpu",
        "hardware": {"platform": "Linux-test", "cpu_count": 2, "memory_bytes": 8 * 2**30, "backend": "cpu"},
        "cluster": {"kind": "local", "n_workers": 2, "threads_per_worker": 1},
        "packages": {"python": "3.11", "pandas": pd.__version__, "numpy": np.__version__},
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "inputs": [{"month": m, "uri": f"/data/yellow_tripdata_{m}.parquet", "format": "parquet", "bytes": 400_000,
                    "rows": 20_000, "fingerprint": f"blake2b:{i:040x}", "schema_era": "tlc-2016-07", "parts": 1}
                   for i, m in enumerate(months)],
        "rows": {"total": {"rows_read": tot_read, "rows_dropped": tot_read - tot_used, "dropped_by_rule": rules, "rows_used": tot_used},
                 "by_month": by_month},
        "timings_s": {"resolve_inputs": 0.1, "read_train": 2.0, "train": 1.5, "score_reduce": 3.0, "assemble": 0.2, "total": 6.8},
    }


def _counts(rng, n: int, f1ish: float) -> dict:
    pos = int(n * 0.55)
    tp = int(pos * f1ish)
    fn = pos - tp
    fp = int((n - pos) * (1 - f1ish) * 0.9)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": n - pos - fp}


def _with_metrics(df: pd.DataFrame) -> pd.DataFrame:
    tp, fp, fn, tn = (df[c].astype(float) for c in ("tp", "fp", "fn", "tn"))
    n = tp + fp + fn + tn
    df["n"] = n.astype("int64")
    df["positives"] = (tp + fn).astype("int64")
    df["predicted_positives"] = (tp + fp).astype("int64")
    df["precision"] = tp / (tp + fp)
    df["recall"] = tp / (tp + fn)
    df["f1"] = 2 * tp / (2 * tp + fp + fn)
    df["accuracy"] = (tp + tn) / n
    df["positive_rate"] = (tp + fn) / n
    df["predicted_positive_rate"] = (tp + fp) / n
    return df


def replay_table(models=("random_forest",), start="2020-03-01", days=31, *, delay="0", seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for k, model in enumerate(models):
        ws = pd.date_range(start, periods=days, freq="D")
        rows = []
        for i, w in enumerate(ws):
            n = int(rng.integers(300, 800)) if i < days - 2 else 0  # two empty windows at the end, like a real replay
            rows.append({"model": model, "window": "D", "window_start": w, "window_end": w + pd.Timedelta(days=1),
                         "in_period": True, **(_counts(rng, n, 0.9 - 0.2 * (i > days // 2) - 0.05 * k) if n else
                                               {"tp": 0, "fp": 0, "fn": 0, "tn": 0})})
        df = _with_metrics(pd.DataFrame(rows))
        late = pd.Series(df.index > days // 2, index=df.index)
        half = 1.96 * np.sqrt(df["f1"] * (1 - df["f1"]) / df["n"].where(df["n"] > 0))
        for m in ("f1", "precision", "recall", "accuracy"):
            df[f"{m}_low"], df[f"{m}_high"] = (df[m] - half).clip(0, 1), (df[m] + half).clip(0, 1)
        df["roc_auc"] = (0.8 - 0.1 * late).where(df["n"] > 0)
        df["roc_auc_method"] = "exact"
        df["roc_auc_low"], df["roc_auc_high"] = df["roc_auc"] - 0.03, df["roc_auc"] + 0.03
        df["log_loss"] = (0.5 + 0.1 * late).where(df["n"] > 0)
        df["log_loss_low"], df["log_loss_high"] = df["log_loss"] - 0.05, df["log_loss"] + 0.05
        df["brier"] = (0.18 + 0.05 * late).where(df["n"] > 0)
        df["brier_low"], df["brier_high"] = df["brier"] - 0.02, df["brier"] + 0.02
        for q, v in (("p50", 0.55), ("p90", 0.8), ("p99", 0.95)):
            df[f"proba_{q}"] = (v - 0.1 * late).where(df["n"] > 0)
            df[f"train_proba_{q}"] = v
        c = df[["tp", "fp", "fn", "tn"]].cumsum()
        df["cumulative_n"] = c.sum(axis=1)
        df["cumulative_precision"] = c.tp / (c.tp + c.fp)
        df["cumulative_recall"] = c.tp / (c.tp + c.fn)
        df["cumulative_f1"] = 2 * c.tp / (2 * c.tp + c.fp + c.fn)
        t = df[["tp", "fp", "fn", "tn"]].rolling(7, min_periods=1).sum()
        df["trailing_f1"] = 2 * t.tp / (2 * t.tp + t.fp + t.fn)
        df["trailing_n"] = t.sum(axis=1).astype("int64")
        df["trailing_windows"] = 7
        df["label_delay"] = delay
        lag = int(delay.rstrip("D") or 0)
        df["known_cumulative_f1"] = df["cumulative_f1"].shift(lag)
        df["known_trailing_f1"] = df["trailing_f1"].shift(lag)
        df["labels_known_fraction"] = (df["cumulative_n"].shift(lag).fillna(0) / df["cumulative_n"].iloc[-1])
        df["below_floor"] = df["f1"] < 0.7
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    first = out[out.model == models[0]].set_index("window_start")["f1"]
    out["delta_f1"] = out["f1"].to_numpy() - first.reindex(out["window_start"]).to_numpy()
    return out


def monthly_table(months, models=("random_forest",), roles=None) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for model in models:
        for i, m in enumerate(months):
            rows.append({"model": model, "month": m, "role": (roles or {}).get(m, "score"),
                         **_counts(rng, 20_000 - 500 * i, 0.9 - 0.04 * i), "rows_read": 20_100, "rows_dropped": 100})
    return _with_metrics(pd.DataFrame(rows))


def shift_table(reference="2020-01", months=("2020-02", "2020-03", "2020-04")) -> pd.DataFrame:
    rows = []
    for j, m in enumerate(months):
        for i, f in enumerate(FEATURES):
            for stat, scale, thr in (("ks", 0.01, 0.05), ("psi", 0.02, 0.1)):
                v = scale * (1 + i % 3) * (1 + 4 * (j >= 1 and f in ("trip_speed", "trip_time")))
                rows.append({"reference": reference, "window": m, "window_start": pd.Timestamp(f"{m}-01"),
                             "window_end": pd.Timestamp(f"{m}-01") + pd.offsets.MonthBegin(1), "feature": f,
                             "statistic": stat, "value": v, "p_value": 1e-15 if stat == "ks" and v > thr else (0.5 if stat == "ks" else np.nan),
                             "threshold": thr, "alarm": v > thr, "n_reference": 20_000, "n_window": 19_000})
    return pd.DataFrame(rows)


def explain_table(shift: pd.DataFrame) -> pd.DataFrame:
    """What moved in each alarmed (window, feature) of ``shift`` (made-up but well-formed values)."""
    from rapidseval.shift import EXPLAIN_COLUMNS, alarmed_pairs

    rows = []
    for rec in alarmed_pairs(shift).to_dict("records"):
        for item, a, b in (("p1", 60.0, 75.0), ("p50", 600.0, 900.0), ("p99", 3000.0, 3000.0), ("out_of_range", 0.0, 0.02)):
            what = f"outside the reference's range {b:.1%}" if item == "out_of_range" else f"{item} {a:g} → {b:g}"
            rows.append({**rec, "kind": "continuous", "rank": 1, "effect": 0.2, "effect_noise": 0.01,
                         "effect_measure": "ks", "item": item,
                         "category": np.nan, "reference_value": a, "window_value": b, "change": b - a, "what": what})
    return pd.DataFrame(rows, columns=EXPLAIN_COLUMNS)


def backtest_tables(policies=("never", "monthly", "on_alarm"), months=12):
    eval_months = [f"2019-{i:02d}" for i in range(2, 13)] + [f"2020-{i:02d}" for i in range(1, months - 10)]
    eval_months = eval_months[:months]
    rows = []
    for p in policies:
        origin = "2019-01"
        for i, em in enumerate(eval_months):
            retrain = (p == "monthly" and i > 0) or (p == "on_alarm" and i in (4, 8))
            if retrain:
                origin = eval_months[i - 1]
            age = eval_months.index(em) - (eval_months.index(origin) if origin in eval_months else -1)
            f1 = 0.85 - 0.02 * age
            n = 10_000
            tp = int(0.55 * n * f1)
            rows.append({"policy": p, "origin": origin, "train_start": "2018-02", "train_end": origin, "eval_month": em,
                         "model_age_months": age, "n": n, "tp": tp, "fp": 500, "fn": int(0.55 * n) - tp,
                         "tn": n - int(0.55 * n) - 500, "precision": 0.9, "recall": f1, "f1": f1, "retrained": retrain,
                         "train_seconds": 2.0 if retrain or i == 0 else 0.0})
    backtest = pd.DataFrame(rows)
    origins = ["2019-01"] + eval_months[:-1]
    st = []
    for oi, o in enumerate(origins):
        for ei, em in enumerate(eval_months):
            age = ei - oi + 1
            if age >= 1:
                st.append({"origin": o, "eval_month": em, "model_age_months": age, "f1": 0.85 - 0.02 * age, "n": 10_000})
    staleness = pd.DataFrame(st)
    policies_t = backtest.groupby("policy", sort=False).agg(
        mean_f1=("f1", "mean"), worst_f1=("f1", "min"), months_below_floor=("f1", lambda s: int((s < 0.7).sum())),
        retrains=("retrained", "sum"), train_seconds=("train_seconds", "sum")).reset_index()
    return backtest, staleness, policies_t


def write_run(root: Path, kind: str) -> Path:
    """Write a run directory of ``kind`` (``study``, ``replay``, ``backtest`` or ``old``) under ``root``."""
    d = Path(root) / kind
    d.mkdir(parents=True, exist_ok=True)
    if kind == "study":
        months = ["2020-01", "2020-02", "2020-03", "2020-04"]
        roles = {"2020-01": "train", "2020-02": "test", "2020-03": "score+replay", "2020-04": "score"}
        man = _manifest("taxi_study", "study", months, evaluation={"replay": {"months": ["2020-03"], "window": "D"}})
        tables = {"monthly": monthly_table(months, roles=roles), "replay": replay_table(),
                  "shift": shift_table(), "explain": explain_table(shift_table()),
                  "attribution": pd.DataFrame({"feature": FEATURES, "score": np.linspace(1, 0.1, len(FEATURES)),
                                               "rank": np.arange(1, len(FEATURES) + 1)})}
    elif kind == "replay":
        months = ["2020-02", "2020-03"]
        man = _manifest("replay_two_models", "replay", months, evaluation={"replay": {"months": months, "window": "D"}})
        tables = {"monthly": monthly_table(months, models=("rf_small", "rf_large")),
                  "replay": replay_table(models=("rf_small", "rf_large"), start="2020-02-01", days=60, delay="7D"),
                  "shift": pd.DataFrame()}  # the study job writes an empty shift table when a job has none
    elif kind == "backtest":
        backtest, staleness, policies = backtest_tables()
        months = sorted(set(backtest["eval_month"]) | {"2019-01"})
        man = _manifest("rolling_backtest", "backtest", months)
        tables = {"backtest": backtest, "staleness": staleness, "policies": policies,
                  "monthly": monthly_table(months[1:])}
    elif kind == "old":
        man = _manifest("old_run", "study", ["2020-01", "2020-02"])
        for key in ("complete", "timings_s", "hardware", "packages", "cluster", "inputs", "job_hash"):
            man.pop(key)
        man["job"].pop("kind")
        mt = monthly_table(["2020-01", "2020-02"])[["month", "n", "tp", "fp", "fn", "tn", "f1"]]
        tables = {"monthly": mt, "replay": pd.DataFrame({"window_start": pd.date_range("2020-02-01", periods=5),
                                                         "f1": [0.7, 0.72, 0.69, 0.71, 0.7]})}
    else:
        raise ValueError(kind)
    (d / "manifest.json").write_text(json.dumps(man, indent=2))
    for name, t in tables.items():
        t.to_parquet(d / f"{name}.parquet", index=False)
    return d


# ---------------------------------------------------------------------------------------
# checks.parquet, slices.parquet and assertions.parquet (issue 17), added to a run directory
# ---------------------------------------------------------------------------------------
#: a detail that comes from a user's YAML: the page must show it as text, never run it
HOSTILE_DETAIL = "<script>alert('x')</script> & \"quoted\""


def check_rows(months=("2020-02", "2020-03", "2020-04"), model="random_forest") -> list[dict]:
    """Check results of every kind: data checks per month (``fare_amount min`` fails in 2020-03,
    ``passenger_count in_set`` warns in 2020-04), leakage per feature, assertions, baseline, a slices
    warning, consistency and time leakage, and a jump (warn) in the replay."""
    from rapidseval.checks import check_row

    rows = []
    for month in months:
        rows.append(check_row("fare_amount min", "data", "fail", held=month != "2020-03", month=month,
                              value=0.01 if month == "2020-03" else 0.0, threshold=0.0,
                              detail="194 of 19,400 rows below 0" if month == "2020-03" else ""))
        rows.append(check_row("passenger_count in_set", "data", "warn", held=month != "2020-04", month=month,
                              value=0.002 if month == "2020-04" else 0.0, threshold=0.0, detail=HOSTILE_DETAIL))
        rows.append(check_row("trip_distance not_null", "data", "fail", held=True, month=month, value=0.0, threshold=0.0))
    for window in pd.date_range("2020-03-01", periods=3, freq="D"):
        rows.append(check_row("fare_amount min", "data", "fail", held=window.day != 2, window_start=window,
                              value=0.02 if window.day == 2 else 0.0, threshold=0.0))
    for feature in ("trip_distance", "fare_leak"):
        rows.append(check_row(f"{feature} auc", "leakage", "fail", held=feature != "fare_leak", model=model,
                              value=1.0 if feature == "fare_leak" else 0.62, threshold=0.99))
    rows.append(check_row("assertions", "assertions", "fail", held=True, model=model, value=0, threshold=0))
    rows.append(check_row("baseline logistic_regression f1", "baseline", "fail", held=True, model=model,
                          month="2020-03", value=0.81, threshold=0.66))
    rows.append(check_row("slices PULocationID/taxi_zone_borough", "slices", "warn", held=False, model=model,
                          window_start="2020-03-01", value=0.41, threshold=0.8,
                          detail="Staten Island 0.41 [0.30, 0.52] vs the whole 0.80"))
    rows.append(check_row("consistency reload", "consistency", "fail", held=True, model=model, value=0.0, threshold=0.0))
    rows.append(check_row("train before evaluation", "time_leakage", "fail", held=True, model=model))
    rows.append(check_row("f1 jump", "jumps", "warn", held=False, model=model, window_start="2020-03-16",
                          value=-0.2, detail="2020-03-15 0.88 [0.85, 0.90] -> 2020-03-16 0.68 [0.64, 0.71]"))
    return rows


def slices_table(models=("random_forest",), windows=("2020-03", "2020-04"), min_support=200, *,
                 metric: str = "f1", judged: bool = True) -> pd.DataFrame:
    """``slices.parquet`` by borough of PULocationID and by hour bins, per model and month: Staten Island
    is poor in 2020-03 (and significantly worse than the whole), EWR has too few rows to judge.

    ``judged``: the columns the slices stage adds after SLICE_COLUMNS (``metric``, ``value`` and its
    band, the whole's ``all_n``/``all_value``, ``gap``); without them, SLICE_COLUMNS alone."""
    from rapidseval.checks import SLICE_COLUMNS

    plan = {"PULocationID/taxi_zone_borough": {"Manhattan": (9000, 0.9), "Queens": (3000, 0.9), "Brooklyn": (2500, 0.9),
                                               "Staten Island": (812, 0.5), "EWR": (40, 0.2)},
            "pickup_hour": {"[0, 6)": (1500, 0.9), "[6, 12)": (5000, 0.9), "[12, 24)": (9000, 0.9)}}
    rows = []
    for k, model in enumerate(models):
        for w, month in enumerate(windows):
            start = pd.Timestamp(f"{month}-01")
            for slice_by, slices in plan.items():
                for label, (n, quality) in slices.items():
                    q = quality if not (label == "Staten Island" and w > 0) else 0.9
                    pos = int(n * 0.6)
                    tp = int(pos * (q - 0.03 * k))
                    fp = int((n - pos) * (1 - q) * 0.5)
                    rows.append({"slice_by": slice_by, "slice": label, "model": model, "window_start": start,
                                 "window_end": start + pd.offsets.MonthBegin(1), "tp": tp, "fp": fp, "fn": pos - tp,
                                 "tn": n - pos - fp})
    df = _with_metrics(pd.DataFrame(rows))
    df["supported"] = df["n"] >= min_support
    for name in dict.fromkeys(("f1", metric)):
        half = 1.96 * np.sqrt(df[name] * (1 - df[name]) / df["n"])
        df[f"{name}_low"] = (df[name] - half).clip(0, 1).where(df["supported"])  # bands of supported slices only
        df[f"{name}_high"] = (df[name] + half).clip(0, 1).where(df["supported"])
    whole = _with_metrics(df.groupby(["slice_by", "model", "window_start"])[["tp", "fp", "fn", "tn"]].transform("sum"))
    df["worse_than_all"] = df["supported"] & (df[f"{metric}_high"] < whole[metric])
    if not judged:
        return df[SLICE_COLUMNS]
    extra = pd.DataFrame({"metric": metric, "value": df[metric], "value_low": df[f"{metric}_low"],
                          "value_high": df[f"{metric}_high"], "all_n": whole["n"], "all_value": whole[metric],
                          "gap": df[metric] - whole[metric]})
    return pd.concat([df[SLICE_COLUMNS], extra], axis=1)


def assertions_table(model="random_forest") -> pd.DataFrame:
    """``assertions.parquet``: three rows, one of which the model got wrong (its note from the user's file)."""
    return pd.DataFrame({"row": [0, 1, 2], "model": model, "expected": [1, 0, 1], "proba": [0.93, 0.08, 0.31],
                         "predicted": [1, 0, 0], "passed": [True, True, False],
                         "note": ["card payment, long trip", "cash fare", "<b>card</b>, airport flat fare"]})


def add_checks(run_dir: Path, *, checks: bool = True, slices: bool = True, assertions: bool = True,
               slice_settings: dict | None = None) -> Path:
    """Add checks/slices/assertions tables to a run directory of :func:`write_run`, and the job's
    ``evaluation.slices`` settings to its manifest."""
    from rapidseval.checks import checks_table

    run_dir = Path(run_dir)
    months = ["2020-02", "2020-03", "2020-04"]
    if checks:
        checks_table(check_rows(months)).to_parquet(run_dir / "checks.parquet", index=False)
    if slices:
        slices_table(min_support=(slice_settings or {}).get("min_support", 200)).to_parquet(run_dir / "slices.parquet",
                                                                                            index=False)
        manifest = json.loads((run_dir / "manifest.json").read_text())
        manifest["job"].setdefault("evaluation", {})["slices"] = {
            "by": [{"by": "PULocationID", "mapping": "taxi_zone_borough"}, {"by": "pickup_hour", "bins": [0, 6, 12, 24]}],
            "window": "M", "min_support": 200, "metric": "f1", "worst": 3, **(slice_settings or {})}
        (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if assertions:
        assertions_table().to_parquet(run_dir / "assertions.parquet", index=False)
    return run_dir
