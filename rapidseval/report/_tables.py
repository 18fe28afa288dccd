"""Small tidy tables derived from a run directory, shared by the page, the terminal and ``--json``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ._checks import (GROUPS, check_counts, checks_by_group, not_held, slice_rows, slice_settings, unsupported_slices,
                      worse_than_all, worst_slices)
from ._load import RunTables

__all__ = ["facts", "row_accounting", "policy_summary", "replay_summary", "shift_summary", "explain_summary",
           "checks_summary", "slices_summary", "summarize"]

#: most lines of "what moved" in the terminal (a screenful); the rest are counted
MAX_EXPLAIN_LINES = 20
#: most check results (of each status) and slice rows listed in the ``--json`` summary; the rest are counted
MAX_JSON_ROWS = 100


def facts(run: RunTables) -> list[tuple[str, str]]:
    """(label, value) pairs of the run summary: job, kind, backend, cluster, rows, timings."""
    manifest, job = run.manifest, run.job
    model = job.get("model") or {}
    cluster = manifest.get("cluster") or job.get("cluster") or {}
    hardware = manifest.get("hardware") or {}
    rows = ((manifest.get("rows") or {}).get("total")) or {}
    out = [("job", run.name), ("kind", run.kind)]
    if manifest.get("job_hash"):
        out.append(("job hash", str(manifest["job_hash"])[:16]))
    if "seed" in manifest:
        out.append(("seed", str(manifest["seed"])))
    if model:
        params = json.dumps(model.get("params") or {}, sort_keys=True)
        threshold = f", threshold {model['threshold']}" if "threshold" in model else ""
        out.append(("model", f"{model.get('kind', '?')} {params}{threshold}"))
    if manifest.get("backend"):
        reason = f" ({manifest['backend_reason']})" if manifest.get("backend_reason") else ""
        out.append(("backend", f"{manifest['backend']}{reason}"))
    if cluster:
        keys = [k for k in ("kind", "n_workers", "threads_per_worker", "memory_limit", "address") if cluster.get(k) is not None]
        out.append(("cluster", ", ".join(f"{k} {cluster[k]}" for k in keys) or json.dumps(cluster)))
    if manifest.get("cluster_started"):
        out.append(("cluster started", str(manifest["cluster_started"])))
    if hardware:
        device = hardware.get("gpu") or hardware.get("gpu_name") or hardware.get("device")
        parts = (hardware.get("platform"),
                 f"{hardware.get('cpu_count')} CPUs" if hardware.get("cpu_count") else None,
                 f"{hardware['memory_bytes'] / 2**30:.1f} GiB" if hardware.get("memory_bytes") else None,
                 device)
        out.append(("hardware", ", ".join(str(part) for part in parts if part)))
    if manifest.get("inputs"):
        mib = sum(int(entry.get("bytes") or 0) for entry in manifest["inputs"]) / 2**20
        out.append(("inputs", f"{len(manifest['inputs'])} files, {mib:,.1f} MiB"))
    if rows:
        dropped = ", ".join(f"{k} {v:,}" for k, v in (rows.get("dropped_by_rule") or {}).items() if v)
        out.append(("rows", f"read {rows.get('rows_read', 0):,}, dropped {rows.get('rows_dropped', 0):,}"
                            + (f" ({dropped})" if dropped else "") + f", used {rows.get('rows_used', 0):,}"))
    timings = manifest.get("timings_s") or {}
    if timings:
        out.append(("timings", ", ".join(f"{k} {float(v):.2f} s" for k, v in timings.items() if isinstance(v, (int, float)))))
    if manifest.get("git_commit"):
        out.append(("git commit", str(manifest["git_commit"])))
    if manifest.get("created_utc"):
        out.append(("created (UTC)", str(manifest["created_utc"])))
    out.append(("complete", "yes" if run.complete else "NO — this run did not finish"))
    return out


def row_accounting(run: RunTables) -> pd.DataFrame:
    """One row per input month: rows read, dropped by each rule, used."""
    by_month = ((run.manifest.get("rows") or {}).get("by_month")) or {}
    records = []
    for month in sorted(by_month):
        month_rows = by_month[month]
        record = {"month": month, "rows_read": month_rows.get("rows_read")}
        record.update({f"dropped: {k}": v for k, v in (month_rows.get("dropped_by_rule") or {}).items()})
        record["rows_used"] = month_rows.get("rows_used")
        records.append(record)
    return pd.DataFrame(records)


def policy_summary(run: RunTables) -> pd.DataFrame:
    """``policies.parquet`` when present, else derived from ``backtest.parquet`` (mean/worst F1, retrains, cost)."""
    if run.has("policies", "policy"):
        return run["policies"]
    backtest = run["backtest"]
    if not run.has("backtest", "policy", "f1"):
        return pd.DataFrame()
    aggregates: dict[str, Any] = {"mean_f1": ("f1", "mean"), "worst_f1": ("f1", "min"), "months": ("f1", "size")}
    if "retrained" in backtest.columns:
        aggregates["retrains"] = ("retrained", "sum")
        backtest = backtest.assign(retrained=backtest["retrained"].fillna(False).astype(int))
    if "train_seconds" in backtest.columns:
        aggregates["train_seconds"] = ("train_seconds", "sum")
    return backtest.groupby("policy", sort=False).agg(**aggregates).reset_index()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain dicts, full float precision (``to_json`` rounds to 10 digits: a p-value of 1e-15 became 0)."""
    out = []
    for rec in frame.to_dict("records"):
        out.append({k: (None if _missing(v) else v.isoformat() if isinstance(v, pd.Timestamp) else _jsonable(v)
                        if isinstance(v, (np.generic,)) else v) for k, v in rec.items()})
    return out


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def replay_summary(run: RunTables) -> list[dict[str, Any]]:
    """Per model: windows, final cumulative F1, windowed range, worst windows, floor breaches, label-delay view."""
    replay = run["replay"]
    if replay.empty or "f1" not in replay.columns:
        return []
    if "in_period" in replay.columns:
        replay = replay[replay["in_period"].astype(bool)]
    # the job's replay settings as the manifest records them: the worst windows are named
    # among windows of at least min_window_rows rows, as the manifest's replay_summary does
    settings = run.manifest.get("replay_summary") or {}
    min_rows = int(settings.get("min_window_rows") or 0)
    out = []
    models = replay["model"].unique().tolist() if "model" in replay.columns else [None]
    for model in models:
        rows = replay if model is None else replay[replay["model"] == model]
        scored = rows[(rows["n"] > 0) if "n" in rows.columns else rows["f1"].notna()]
        rec: dict[str, Any] = {"model": model,
                               "window": str(rows["window"].iloc[0]) if "window" in rows.columns and len(rows) else None,
                               "windows": int(len(rows))}
        if len(scored):
            last = scored.iloc[-1]
            eligible = scored[scored["n"] >= min_rows] if min_rows and "n" in scored.columns else scored
            worst = (eligible if len(eligible) else scored).nsmallest(3, "f1")
            rec.update({
                "cumulative_f1": float(last["cumulative_f1"]) if "cumulative_f1" in scored.columns else None,
                "f1_min": float(scored["f1"].min()), "f1_max": float(scored["f1"].max()),
                "worst": [{"window_start": str(w.window_start), "f1": float(w.f1)} for w in worst.itertuples()],
                "min_window_rows": min_rows if len(eligible) else 0,
            })
            # a job without replay.floor has no floor to be below (a run directory whose
            # manifest predates replay_summary counts its below_floor column as it stands)
            if "below_floor" in scored.columns and settings.get("floor", True) is not None:
                rec["windows_below_floor"] = int(scored["below_floor"].fillna(False).astype(bool).sum())
                if "floor" in settings:
                    rec["floor"] = f"{settings.get('metric', 'f1')} < {settings['floor']}"
            if "known_cumulative_f1" in scored.columns:
                rec["label_delay"] = str(last["label_delay"]) if "label_delay" in scored.columns else None
                rec["known_cumulative_f1"] = None if pd.isna(last["known_cumulative_f1"]) else float(last["known_cumulative_f1"])
        out.append(rec)
    return out


def shift_summary(run: RunTables, top: int = 6) -> dict[str, Any]:
    shift = run["shift"]
    if not run.has("shift", "feature", "value"):
        return {}
    alarms = int(shift["alarm"].fillna(False).astype(bool).sum()) if "alarm" in shift.columns else 0
    cols = [c for c in ("reference", "window", "feature", "statistic", "value", "p_value", "threshold", "alarm")
            if c in shift.columns]
    # statistics have different scales: alarms first, then by how far past its own threshold each value is
    ranked = shift.assign(_a=shift["alarm"].fillna(False).astype(bool) if "alarm" in shift.columns else False,
                   _r=pd.to_numeric(shift["value"], errors="coerce")
                   / pd.to_numeric(shift["threshold"], errors="coerce").where(lambda t: t > 0)
                   if "threshold" in shift.columns else pd.to_numeric(shift["value"], errors="coerce"))
    if "exceedance" in shift.columns:  # null standard deviations above the threshold: comparable across statistics
        ranked["_r"] = pd.to_numeric(shift["exceedance"], errors="coerce")
    head = ranked.sort_values(["_a", "_r"], ascending=[False, False], na_position="last").head(top)[cols]
    out = {"comparisons": int(len(shift)), "alarms": alarms, "top": _records(head)}
    if "window_alarm" in shift.columns and "window_start" in shift.columns:
        alarm_per_window = window_alarms(shift)
        out.update(windows=int(len(alarm_per_window)), window_alarms=int(alarm_per_window.sum()))
    return out


def window_alarms(shift: pd.DataFrame) -> pd.Series:
    """Whether each (reference, window) alarms, from a shift table with ``window_alarm`` and ``window_start``."""
    return shift.groupby([shift["reference"] if "reference" in shift.columns else 0, "window_start"])["window_alarm"].any()


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
    per_window = max(1, int(np.flatnonzero(per_rank <= max_lines).max(initial=1)))
    shown = lines[lines["rank"] <= per_window].head(max_lines)
    cols = [c for c in ("reference", "window", "feature", "kind", "rank", "effect", "effect_noise", "effect_measure", "what")
            if c in shown.columns]
    return {"pairs": int(len(lines)), "windows": int(lines.drop_duplicates(["reference", "window_start"]).shape[0]),
            "lines": _records(shown[cols]), "more": int(len(lines) - len(shown))}


def checks_summary(run: RunTables, *, max_rows: int = MAX_JSON_ROWS) -> dict[str, Any]:
    """Counts of pass, warn and fail results (overall and per rubric group), the results that did not
    hold (``failed``: status fail; ``warned``: status warn; at most ``max_rows`` each, the rest counted
    in ``failed_more`` / ``warned_more``); empty for a run without ``checks.parquet``."""
    checks = checks_by_group(run)
    if checks.empty:
        return {}
    counts = check_counts(checks)
    out: dict[str, Any] = {"pass": counts.passed, "warn": counts.warned, "fail": counts.failed, "checks": counts.checks}
    out["groups"] = {group: {"pass": c.passed, "warn": c.warned, "fail": c.failed, "checks": c.checks}
                     for group in GROUPS for c in [check_counts(checks[checks["group"] == group])] if c.results}
    listed = not_held(checks)
    cols = [c for c in ("check", "kind", "group", "severity", "status", "model", "month", "window_start", "value",
                        "threshold", "detail") if c in listed.columns]
    for status, key in (("fail", "failed"), ("warn", "warned")):
        rows = listed[listed["status"] == status]
        out[key] = _records(rows[cols].head(max_rows))
        out[f"{key}_more"] = max(0, len(rows) - max_rows)
    return out


def slices_summary(run: RunTables, *, max_rows: int = MAX_JSON_ROWS) -> dict[str, Any]:
    """The worst supported slices per ``slice_by`` and model, and those significantly worse than the
    whole (at most ``max_rows``; ``worse_than_all_more`` counts the rest); empty without ``slices.parquet``."""
    slices = slice_rows(run)
    if slices.empty:
        return {}
    settings = slice_settings(run)
    metric = settings.metric
    cols = [c for c in ("slice_by", "slice", "model", "window_start", "window_end", "n", metric, f"{metric}_low",
                        f"{metric}_high", f"whole_{metric}") if c in slices.columns]
    worse = worse_than_all(slices, settings)
    unsupported = unsupported_slices(slices)
    return {"metric": metric, "min_support": settings.min_support,
            "worst": _records(worst_slices(slices, settings).reindex(columns=cols)),
            "worse_than_all": _records(worse.reindex(columns=cols).head(max_rows)),
            "worse_than_all_more": max(0, len(worse) - max_rows),
            "unsupported": int(len(unsupported))}


def summarize(run: RunTables) -> dict[str, Any]:
    """The run in one JSON-able dict (what ``rapidseval run --json`` prints)."""
    manifest = run.manifest
    out: dict[str, Any] = {
        "run_dir": str(run.run_dir),
        "report": str(run.run_dir / "report.html") if (run.run_dir / "report.html").exists() else None,
        "job": run.name,
        "kind": run.kind,
        "complete": run.complete,
        "backend": manifest.get("backend"),
        "warnings": list(manifest.get("warnings") or []),
    }
    monthly = run["monthly"]
    if not monthly.empty:
        cols = [c for c in ("model", "month", "role", "n", "precision", "recall", "f1", "accuracy") if c in monthly.columns]
        out["monthly"] = _records(monthly[cols])
    replay = replay_summary(run)
    if replay:
        out["replay"] = replay
    shift = shift_summary(run)
    if shift:
        out["shift"] = shift
    explained = explain_summary(run)
    if explained:
        out["explain"] = explained
    policies = policy_summary(run)
    if not policies.empty:
        out["policies"] = _records(policies)
    checks = checks_summary(run)
    if checks:
        out["checks"] = checks
    slices = slices_summary(run)
    if slices:
        out["slices"] = slices
    out["rows"] = ((manifest.get("rows") or {}).get("total")) or {}
    out["timings_s"] = manifest.get("timings_s") or {}
    return json.loads(json.dumps(out, default=_jsonable))


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return str(value)
