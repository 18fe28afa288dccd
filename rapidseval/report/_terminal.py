"""The end-of-run summary in the terminal (rich tables), from the same tables as the page."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich import box
from rich.table import Table

from ._checks import (check_counts, checks_by_group, named_results, not_held, slice_name, slice_rows, slice_settings,
                      window_label, worse_than_all, worst_slices)
from ._load import RunTables
from ._tables import explain_summary, policy_summary, replay_summary, shift_summary

__all__ = ["print_summary"]

#: longest per-month table printed (a multi-year backtest has the full one in the report)
MAX_MONTH_ROWS = 24
#: checks (and slices) named on the one-line summaries; the rest are counted ("+N more")
MAX_NAMED = 3


#: headers of the policy table (any other column: its name with spaces)
_POLICY_HEADERS = {"worst_month": "worst month", "mean_f1": "mean f1", "months_below_floor": "months below floor",
                   "train_seconds": "train s"}


def _number(v: Any, fmt: str = ".4f") -> str:
    """A number for a table cell: "–" for missing, thousands separators for integers."""
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return f"{v:,}"
    try:
        return format(float(v), fmt)
    except (TypeError, ValueError):
        return str(v)


def _count(count: int, noun: str) -> str:
    """``"1 window"``, ``"2 windows"``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _p_value(p: Any) -> str:
    """A p-value; an exact 0 is an underflow of the double, not a certainty."""
    return "< 1e-300" if p == 0 else _number(p, ".3g")


def _timestamp(value: Any) -> str:
    """A window start to the minute, without a midnight time."""
    return str(value)[:16].replace(" 00:00", "").replace("T00:00", "")


def print_summary(run: RunTables, console) -> None:
    """Print the run's summary: headline, metrics per month, replay, shift, what moved, policies,
    checks, slices, rows, timings, paths (each section only where the run has its tables)."""
    for section in (_headline, _monthly_table, _replay_lines, _shift_table, _explain_table, _policy_table,
                    _checks_line, _slices_line, _row_accounting, _stage_timings, _paths):
        section(run, console)


def _headline(run: RunTables, console) -> None:
    """Job name and kind, backend, cluster, total time; a banner if the run did not finish; warnings."""
    man = run.manifest
    cluster = man.get("cluster") or {}
    total = (man.get("timings_s") or {}).get("total")
    console.print(
        f"[bold]{run.name}[/] ({run.kind} job) · backend {man.get('backend', '?')} · cluster {cluster.get('kind', '?')}"
        + (f" ({man['cluster_started']})" if man.get("cluster_started")
           else f" ({cluster['n_workers']} workers)" if cluster.get("n_workers") else "")
        + (f" · {float(total):.1f} s" if total is not None else ""),
        highlight=False,
    )
    if not run.complete:
        console.print("[bold red]this run did not finish: its tables are partial[/]")
    for line in man.get("warnings") or []:
        console.print(f"warning: {line}", style="bold yellow", highlight=False, markup=False)


def _monthly_table(run: RunTables, console) -> None:
    """Metrics per month (the last :data:`MAX_MONTH_ROWS` rows)."""
    monthly = run["monthly"]
    if monthly.empty or "f1" not in monthly.columns:
        return
    several = "model" in monthly.columns and monthly["model"].nunique() > 1
    table = Table(title="metrics per month", title_justify="left")
    text_columns = ("model", "month", "role")
    cols = ((["model"] if several else []) + [c for c in ("month", "role") if c in monthly.columns]
            + [c for c in ("n", "precision", "recall", "f1") if c in monthly.columns])
    for c in cols:
        table.add_column(c, justify="left" if c in text_columns else "right")
    rows = monthly if len(monthly) <= MAX_MONTH_ROWS else monthly.tail(MAX_MONTH_ROWS)
    for rec in rows[cols].to_dict("records"):
        table.add_row(*[str(rec[c]) if c in text_columns else _number(rec[c], ",d" if c == "n" else ".4f") for c in cols])
    if len(monthly) > len(rows):
        table.caption = f"last {len(rows)} of {len(monthly)} rows; all in the report"
    console.print(table)


def _replay_lines(run: RunTables, console) -> None:
    """One line per model and replay window: cumulative and windowed F1, the worst windows."""
    summaries = replay_summary(run)
    for rec in summaries:
        if "f1_min" not in rec:
            continue
        who = f"{rec['model']} " if rec.get("model") and len(summaries) > 1 else ""
        line = (f"replay {who}per {rec['window']}: cumulative F1 at end {_number(rec.get('cumulative_f1'))}; "
                f"windowed F1 {_number(rec['f1_min'])}–{_number(rec['f1_max'])}; worst"
                + (f" (of ≥{rec['min_window_rows']} rows)" if rec.get("min_window_rows") else "") + ": "
                + ", ".join(f"{_timestamp(w['window_start'])} {_number(w['f1'])}" for w in rec["worst"]))
        if rec.get("windows_below_floor") is not None:
            line += f"; {_count(rec['windows_below_floor'], 'window')} below the floor" + (
                f" ({rec['floor']})" if rec.get("floor") else "")
        if "known_cumulative_f1" in rec:
            line += f"; with label delay {rec.get('label_delay')} a monitor knew {_number(rec['known_cumulative_f1'])} at the end"
        console.print(line, highlight=False)


def _shift_cell(column: str, value: Any) -> str:
    if column == "alarm":
        return "ALARM" if value else ""
    if column == "p_value":
        return _p_value(value)
    return _number(value) if column == "value" else str(value)


def _shift_table(run: RunTables, console) -> None:
    """The most shifted features, with the window and comparison counts in the title."""
    shift = shift_summary(run)
    if not shift:
        return
    windows = (f"{shift['window_alarms']} of {_count(shift['windows'], 'window')} alarm; "
               if shift.get("windows") is not None else "")
    table = Table(title=f"most shifted features ({windows}{_count(shift['alarms'], 'alarm')} in "
                        f"{_count(shift['comparisons'], 'comparison')})", title_justify="left")
    top = shift["top"]
    cols = [c for c in ("window", "feature", "statistic", "value", "p_value", "alarm") if top and c in top[0]]
    for c in cols:
        table.add_column(c, justify="right" if c in ("value", "p_value") else "left")
    for rec in top:
        table.add_row(*[_shift_cell(c, rec[c]) for c in cols])
    console.print(table)


def _explain_table(run: RunTables, console) -> None:
    """What moved: per alarmed window and feature, the effect (its noise level) and in words."""
    explained = explain_summary(run)
    if not explained:
        return
    table = Table(title=f"what moved ({_count(explained['pairs'], 'alarmed feature')} in "
                        f"{_count(explained['windows'], 'window')}; "
                        "effect = share of rows moved (its level without a shift); ranked by the excess)",
                  title_justify="left")
    for c in ("window", "feature", "effect", "what"):
        table.add_column(c, justify="right" if c == "effect" else "left", overflow="fold")
    previous = None
    for rec in explained["lines"]:
        window = str(rec.get("window") or "")
        noise = rec.get("effect_noise")
        table.add_row(window if window != previous else "", str(rec["feature"]),
                      f"{rec.get('effect_measure') or ''} {_number(rec.get('effect'), '.3f')}".strip()
                      + (f" ({_number(noise, '.3f')})" if noise is not None else ""), str(rec["what"]))
        previous = window
    if explained["more"]:
        table.caption = f"... {explained['more']:,} more in explain.parquet and the report"
    console.print(table)


def _policy_header(column: str, metric: str) -> str:
    if column in (f"mean_{metric}", f"worst_{metric}"):
        return f"{column.split('_')[0]} {metric}"
    if column == "worst_month" and metric != "f1":  # policies.parquet's worst_month is worst_f1's month
        return "worst f1 month"
    return _POLICY_HEADERS.get(column, column.replace("_", " "))


def _policy_table(run: RunTables, console) -> None:
    """Retraining policies side by side; drift retrains judged by the generator's ground truth."""
    policies = policy_summary(run)
    if policies.empty:
        return
    metric = str(policies["metric"].iloc[0]) if "metric" in policies.columns else "f1"
    # worst_month is worst_f1's month: beside mean f1 when the policies' metric is another
    middle = ["worst_month", "mean_f1"] if metric == "f1" else ["mean_f1", "worst_month"]
    keep = ["policy", f"mean_{metric}", f"worst_{metric}", *middle, "months_below_floor", "retrains", "train_seconds"]
    cols = [c for c in dict.fromkeys(keep) if c in policies.columns] or list(policies.columns)
    # no vertical rules: the columns fit 80 (a pipe) with whole headers
    # the box's blank edges and column separators count too: no edges, and one space of
    # padding (left) beside the separator, so 8 columns of whole words fit 80 (they took 86)
    table = Table(title="retraining policies", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False, padding=(0, 0, 0, 1))
    rows = [[str(v) if k in ("policy", "worst_month") else
             _number(v, ".1f" if "seconds" in k else ".4f" if isinstance(v, float) else "")
             for k, v in rec.items()] for rec in policies[cols].to_dict("records")]
    for j, c in enumerate(cols):
        # headers as words that wrap, never cut (a piped 80-column summary showed "mean_a…"):
        # each column exactly as wide as its longest header word or value
        header = _policy_header(str(c), metric)
        width = max([len(w) for w in header.split()] + [len(r[j]) for r in rows])
        table.add_column(header, justify="left" if c in ("policy", "worst_month") else "right", width=width)
    for r in rows:
        table.add_row(*r)
    table.caption = "every column in policies.parquet and the report"
    console.print(table)
    if "false_drift_retrains" in policies.columns:  # generated data: triggers judged by the ground truth
        for rec in policies[policies["drift_retrains"] > 0].to_dict("records"):
            if pd.notna(rec["false_drift_retrains"]):
                console.print(f"{rec['policy']}: {_count(int(rec['drift_retrains']), 'drift retrain')}, "
                              f"{int(rec['true_drift_retrains'])} true and {int(rec['false_drift_retrains'])} false "
                              "against the generator's ground truth", highlight=False)


def checks_line(run: RunTables) -> str:
    """``"checks: 41 pass · 2 warn · 1 fail — fail: fare_amount min (2020-03)"``: the counts of results,
    then the checks that failed (or, when none failed, warned), :data:`MAX_NAMED` by name (each with
    its models and where it first did not hold) and the rest counted; empty for a run without checks."""
    checks = checks_by_group(run)
    if checks.empty:
        return ""
    counts = check_counts(checks)
    line = f"checks: {counts.passed:,} pass · {counts.warned:,} warn · {counts.failed:,} fail"
    listed = not_held(checks)
    for status in ("fail", "warn"):
        names, more = named_results(listed[listed["status"] == status], MAX_NAMED)
        if names:
            return line + f" — {status}: " + ", ".join(names) + (f" +{more} more {'check' if more == 1 else 'checks'}"
                                                                 if more else "")
    return line


def _checks_line(run: RunTables, console) -> None:
    line = checks_line(run)
    if line:
        failed = check_counts(checks_by_group(run)).failed
        console.print(line, style="bold red" if failed else None, highlight=False, markup=False)


def _slice_item(rec: dict[str, Any], metric: str, several_models: bool) -> str:
    where = ", ".join(part for part in ((str(rec["model"]) if several_models else ""),
                                        window_label(rec.get("window_start"), rec.get("window_end"))) if part)
    return (f"{slice_name(rec['slice_by'], rec['slice'])} {_number(rec[metric], '.2f')} "
            f"(n {int(rec['n']):,}{', ' + where if where else ''})")


def _each_slice_once(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each slice (of a slice definition and model) once, at its lowest window; lowest first."""
    ranked = rows.sort_values([metric, "n"], ascending=[True, False], kind="stable")
    return ranked.drop_duplicates([c for c in ("slice_by", "slice", "model") if c in ranked.columns])


def slices_line(run: RunTables) -> str:
    """``"slices: worst f1 PULocationID/taxi_zone_borough=Staten Island 0.41 (n 812, 2020-03) · significantly
    worse than the whole: 2 (...)"``: the lowest supported slices and those significantly worse than the
    whole (the count is of slice × window rows, with the distinct slices first where a slice is worse in
    several windows; each slice is named once, at its lowest window); empty for a run without slices."""
    slices = slice_rows(run)
    if slices.empty:
        return ""
    settings = slice_settings(run)
    metric = settings.metric
    several = "model" in slices.columns and slices["model"].nunique() > 1
    worst = worst_slices(slices, settings)
    parts = []
    if not worst.empty:
        worst = _each_slice_once(worst, metric).head(MAX_NAMED)
        parts.append(f"worst {metric} " + ", ".join(_slice_item(rec, metric, several) for rec in worst.to_dict("records")))
    else:
        parts.append(f"no slice has {settings.min_support:,} rows in a window (the minimum support): none ranked")
    worse = worse_than_all(slices, settings)
    words = f"significantly worse than the whole: {len(worse):,}"
    if len(worse) and metric in worse.columns:
        distinct = _each_slice_once(worse, metric)
        if len(distinct) < len(worse):  # "21 (A, B, C +2 more)" read as 21 slices where there were 5
            words = (f"significantly worse than the whole: {len(distinct):,} slice{'s' if len(distinct) > 1 else ''} "
                     f"in {len(worse):,} slice-windows")
        named = distinct.head(MAX_NAMED)
        words += (" (" + ", ".join(_slice_item(rec, metric, several) for rec in named.to_dict("records"))
                  + (f" +{len(distinct) - len(named)} more" if len(distinct) > len(named) else "") + ")")
    if "worse_than_all" in slices.columns:
        parts.append(words)
    return "slices: " + " · ".join(parts)


def _slices_line(run: RunTables, console) -> None:
    line = slices_line(run)
    if line:
        console.print(line, highlight=False, markup=False)


def _row_accounting(run: RunTables, console) -> None:
    """Rows read, dropped (per rule) and used."""
    rows = ((run.manifest.get("rows") or {}).get("total")) or {}
    if not rows:
        return
    dropped = ", ".join(f"{k} {v:,}" for k, v in (rows.get("dropped_by_rule") or {}).items() if v)
    console.print(f"rows read {rows.get('rows_read', 0):,}, dropped {rows.get('rows_dropped', 0):,}"
                  + (f" ({dropped})" if dropped else "") + f", used {rows.get('rows_used', 0):,}", highlight=False)


def _stage_timings(run: RunTables, console) -> None:
    timings = {k: v for k, v in (run.manifest.get("timings_s") or {}).items() if k != "total"}
    if timings:
        console.print("time per stage: " + ", ".join(f"{k} {float(v):.1f} s" for k, v in timings.items()), highlight=False)


def _paths(run: RunTables, console) -> None:
    """The run directory and its report page."""
    console.print(f"run directory: {run.run_dir}", highlight=False, soft_wrap=True)
    report = run.run_dir / "report.html"
    if report.exists():
        console.print(f"report: {report}", highlight=False, soft_wrap=True)
