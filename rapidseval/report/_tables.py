"""Small tidy tables derived from a run directory, shared by the page, the terminal and ``--json``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ._load import RunTables

__all__ = ["facts", "row_accounting", "policy_summary", "replay_summary", "shift_summary", "explain_summary", "summarize"]

#: most lines of "what moved" in the terminal (a screenful); the rest are counted
MAX_EXPLAIN_LINES = 20


def facts(run: RunTables) -> list[tuple[str, str]]:
    """(label, value) pairs of the run summary: job, kind, backend, cluster, rows, timings."""
    man, job = run.manifest, run.job
    model = job.get("model") or {}
    cluster = man.get("cluster") or job.get("cluster") or {}
    hw = man.get("hardware") or {}
    rows = ((man.get("rows") or {}).get("total")) or {}
    out = [("job", run.name), ("kind", run.kind)]
    if man.get("job_hash"):
        out.append(("job hash", str(man["job_hash"])[:16]))
    if "seed" in man:
        out.append(("seed", str(man["seed"])))
    if model:
        params = json.dumps(model.get("params") or {}, sort_keys=True)
        out.append(("model", f"{model.get('kind', '?')} {params}" + (f", threshold {model['threshold']}" if "threshold" in model else "")))
    if man.get("backend"):
        out.append(("backend", f"{man['backend']}" + (f" ({man['backend_reason']})" if man.get("backend_reason") else "")))
    if cluster:
        keys = [k for k in ("kind", "n_workers", "threads_per_worker", "memory_limit", "address") if cluster.get(k) is not None]
        out.append(("cluster", ", ".join(f"{k} {cluster[k]}" for k in keys) or json.dumps(cluster)))
    if man.get("cluster_started"):
        out.append(("cluster started", str(man["cluster_started"])))
    if hw:
        dev = hw.get("gpu") or hw.get("gpu_name") or hw.get("device")
        out.append(("hardware", ", ".join(str(v) for v in (hw.get("platform"), f"{hw.get('cpu_count')} CPUs" if hw.get("cpu_count") else None,
                                                                f"{hw['memory_bytes'] / 2**30:.1f} GiB" if hw.get("memory_bytes") else None, dev) if v)))
    if man.get("inputs"):
        out.append(("inputs", f"{len(man['inputs'])} files, {sum(int(i.get('bytes') or 0) for i in man['inputs']) / 2**20:,.1f} MiB"))
    if rows:
        dropped = ", ".join(f"{k} {v:,}" for k, v in (rows.get("dropped_by_rule") or {}).items() if v)
        out.append(("rows", f"read {rows.get('rows_read', 0):,}, dropped {rows.get('rows_dropped', 0):,}"
                            + (f" ({dropped})" if dropped else "") + f", used {rows.get('rows_used', 0):,}"))
    t = man.get("timings_s") or {}
    if t:
        out.append(("timings", ", ".join(f"{k} {float(v):.2f} s" for k, v in t.items() if isinstance(v, (int, float)))))
    if man.get("git_commit"):
        out.append(("git commit", str(man["git_commit"])))
    if man.get("created_utc"):
        out.append(("created (UTC)", str(man["created_utc"])))
    out.append(("complete", "yes" if run.complete else "NO — this run did not finish"))
    return out


def row_accounting(run: RunTables) -> pd.DataFrame:
    """One row per input month: rows read, dropped by each rule, used."""
    by_month = ((run.manifest.get("rows") or {}).get("by_month")) or {}
    recs = []
    for month in sorted(by_month):
        r = by_month[month]
        rec = {"month": month, "rows_read": r.get("rows_read")}
        rec.update({f"dropped: {k}": v for k, v in (r.get("dropped_by_rule") or {}).items()})
        rec["rows_used"] = r.get("rows_used")
        recs.append(rec)
    return pd.DataFrame(recs)


def policy_summary(run: RunTables) -> pd.DataFrame:
    """``policies.parquet`` when present, else derived from ``backtest.parquet`` (mean/worst F1, retrains, cost)."""
    if run.has("policies", "policy"):
        return run["policies"]
    bt = run["backtest"]
    if not run.has("backtest", "policy", "f1"):
        return pd.DataFrame()
    agg: dict[str, Any] = {"mean_f1": ("f1", "mean"), "worst_f1": ("f1", "min"), "months": ("f1", "size")}
    if "retrained" in bt.columns:
        agg["retrains"] = ("retrained", "sum")
    if "train_seconds" in bt.columns:
        agg["train_seconds"] = ("train_seconds", "sum")
    out = bt.assign(retrained=bt["retrained"].fillna(False).astype(int)) if "retrained" in bt.columns else bt
    return out.groupby("policy", sort=False).agg(**agg).reset_index()


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, full float precision (``to_json`` rounds to 10 digits: a p-value of 1e-15 became 0)."""
    out = []
    for rec in df.to_dict("records"):
        out.append({k: (None if _missing(v) else v.isoformat() if isinstance(v, pd.Timestamp) else _jsonable(v)
                        if isinstance(v, (np.generic,)) else v) for k, v in rec.items()})
    return out


def _missing(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def replay_summary(run: RunTables) -> list[dict[str, Any]]:
    """Per model: windows, final cumulative F1, windowed range, worst windows, floor breaches, label-delay view."""
    r = run["replay"]
    if r.empty or "f1" not in r.columns:
        return []
    if "in_period" in r.columns:
        r = r[r["in_period"].astype(bool)]
    out = []
    models = r["model"].unique().tolist() if "model" in r.columns else [None]
    for model in models:
        m = r if model is None else r[r["model"] == model]
        scored = m[(m["n"] > 0) if "n" in m.columns else m["f1"].notna()]
        rec: dict[str, Any] = {"model": model, "window": str(m["window"].iloc[0]) if "window" in m.columns and len(m) else None,
                               "windows": int(len(m))}
        if len(scored):
            last = scored.iloc[-1]
            worst = scored.nsmallest(3, "f1")
            rec.update({
                "cumulative_f1": float(last["cumulative_f1"]) if "cumulative_f1" in scored.columns else None,
                "f1_min": float(scored["f1"].min()), "f1_max": float(scored["f1"].max()),
                "worst": [{"window_start": str(w.window_start), "f1": float(w.f1)} for w in worst.itertuples()],
            })
            if "below_floor" in scored.columns:
                rec["windows_below_floor"] = int(scored["below_floor"].fillna(False).astype(bool).sum())
            if "known_cumulative_f1" in scored.columns:
                rec["label_delay"] = str(last["label_delay"]) if "label_delay" in scored.columns else None
                rec["known_cumulative_f1"] = None if pd.isna(last["known_cumulative_f1"]) else float(last["known_cumulative_f1"])
        out.append(rec)
    return out


def shift_summary(run: RunTables, top: int = 6) -> dict[str, Any]:
    s = run["shift"]
    if not run.has("shift", "feature", "value"):
        return {}
    alarms = int(s["alarm"].fillna(False).astype(bool).sum()) if "alarm" in s.columns else 0
    cols = [c for c in ("reference", "window", "feature", "statistic", "value", "p_value", "threshold", "alarm") if c in s.columns]
    # statistics have different scales: alarms first, then by how far past its own threshold each value is
    key = s.assign(_a=s["alarm"].fillna(False).astype(bool) if "alarm" in s.columns else False,
                   _r=pd.to_numeric(s["value"], errors="coerce") / pd.to_numeric(s["threshold"], errors="coerce").where(lambda t: t > 0)
                   if "threshold" in s.columns else pd.to_numeric(s["value"], errors="coerce"))
    if "exceedance" in s.columns:  # null standard deviations above the threshold: comparable across statistics
        key["_r"] = pd.to_numeric(s["exceedance"], errors="coerce")
    head = key.sort_values(["_a", "_r"], ascending=[False, False], na_position="last").head(top)[cols]
    out = {"comparisons": int(len(s)), "alarms": alarms, "top": _records(head)}
    if "window_alarm" in s.columns and "window_start" in s.columns:
        per = s.groupby([s["reference"] if "reference" in s.columns else 0, "window_start"])["window_alarm"].any()
        out.update(windows=int(len(per)), window_alarms=int(per.sum()))
    return out


def explain_lines(run: RunTables) -> pd.DataFrame:
    """One row per alarmed (window, feature) of ``explain.parquet``, ranked by effect within each
    window (empty for a run directory without the table)."""
    from ..shift import explanation_lines

    if not run.has("explain", "feature", "what"):
        return pd.DataFrame()
    return explanation_lines(run["explain"])


def explain_summary(run: RunTables, *, max_lines: int = MAX_EXPLAIN_LINES) -> dict[str, Any]:
    """What moved, at most a screenful: windows in calendar order, each with its ``k`` first-ranked
    features, ``k`` as large as ``max_lines`` lines allow (at least 1; then the first windows);
    ``more`` counts the pairs left out."""
    lines = explain_lines(run)
    if lines.empty:
        return {}
    per_rank = np.cumsum(np.bincount(lines["rank"].astype("int64")))  # lines with rank <= k
    k = max(1, int(np.flatnonzero(per_rank <= max_lines).max(initial=1)))
    shown = lines[lines["rank"] <= k].head(max_lines)
    cols = [c for c in ("reference", "window", "feature", "kind", "rank", "effect", "effect_noise", "effect_measure", "what")
            if c in shown.columns]
    return {"pairs": int(len(lines)), "windows": int(lines.drop_duplicates(["reference", "window_start"]).shape[0]),
            "lines": _records(shown[cols]), "more": int(len(lines) - len(shown))}


def summarize(run: RunTables) -> dict[str, Any]:
    """The run in one JSON-able dict (what ``rapidseval run --json`` prints)."""
    man = run.manifest
    out: dict[str, Any] = {
        "run_dir": str(run.run_dir),
        "report": str(run.run_dir / "report.html") if (run.run_dir / "report.html").exists() else None,
        "job": run.name,
        "kind": run.kind,
        "complete": run.complete,
        "backend": man.get("backend"),
        "warnings": list(man.get("warnings") or []),
    }
    mt = run["monthly"]
    if not mt.empty:
        cols = [c for c in ("model", "month", "role", "n", "precision", "recall", "f1", "accuracy") if c in mt.columns]
        out["monthly"] = _records(mt[cols])
    rs = replay_summary(run)
    if rs:
        out["replay"] = rs
    sh = shift_summary(run)
    if sh:
        out["shift"] = sh
    ex = explain_summary(run)
    if ex:
        out["explain"] = ex
    ps = policy_summary(run)
    if not ps.empty:
        out["policies"] = _records(ps)
    out["rows"] = ((man.get("rows") or {}).get("total")) or {}
    out["timings_s"] = man.get("timings_s") or {}
    return json.loads(json.dumps(out, default=_jsonable))


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)
