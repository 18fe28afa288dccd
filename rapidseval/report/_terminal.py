"""The end-of-run summary in the terminal (rich tables), from the same tables as the page."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ._load import RunTables
from ._tables import explain_summary, policy_summary, replay_summary, shift_summary

__all__ = ["print_summary"]

#: longest per-month table printed (a multi-year backtest has the full one in the report)
MAX_MONTH_ROWS = 24


#: headers of the policy table (any other column: its name with spaces)
_POLICY_HEADERS = {"worst_month": "worst month", "mean_f1": "mean f1", "months_below_floor": "months below floor",
                   "train_seconds": "train s"}


def _f(v: Any, fmt: str = ".4f") -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, (int,)) and not isinstance(v, bool):
        return f"{v:,}"
    try:
        return format(float(v), fmt)
    except (TypeError, ValueError):
        return str(v)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _p(p: Any) -> str:
    """A p-value; an exact 0 is an underflow of the double, not a certainty."""
    return "< 1e-300" if p == 0 else _f(p, ".3g")


def _ts(value: Any) -> str:
    return str(value)[:16].replace(" 00:00", "").replace("T00:00", "")


def print_summary(run: RunTables, console) -> None:
    """Print the run's summary: headline, metrics per month, replay, shift, policies, rows, timings, paths."""
    from rich import box
    from rich.table import Table

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

    mt = run["monthly"]
    if not mt.empty and "f1" in mt.columns:
        several = "model" in mt.columns and mt["model"].nunique() > 1
        t = Table(title="metrics per month", title_justify="left")
        cols = (["model"] if several else []) + [c for c in ("month", "role") if c in mt.columns] + \
               [c for c in ("n", "precision", "recall", "f1") if c in mt.columns]
        for c in cols:
            t.add_column(c, justify="left" if c in ("model", "month", "role") else "right")
        rows = mt if len(mt) <= MAX_MONTH_ROWS else mt.tail(MAX_MONTH_ROWS)
        for rec in rows[cols].to_dict("records"):
            t.add_row(*[str(rec[c]) if c in ("model", "month", "role") else _f(rec[c], ",d" if c == "n" else ".4f") for c in cols])
        if len(mt) > len(rows):
            t.caption = f"last {len(rows)} of {len(mt)} rows; all in the report"
        console.print(t)

    for rec in replay_summary(run):
        if "f1_min" not in rec:
            continue
        who = f"{rec['model']} " if rec.get("model") and len(replay_summary(run)) > 1 else ""
        line = (f"replay {who}per {rec['window']}: cumulative F1 at end {_f(rec.get('cumulative_f1'))}; "
                f"windowed F1 {_f(rec['f1_min'])}–{_f(rec['f1_max'])}; worst: "
                + ", ".join(f"{_ts(w['window_start'])} {_f(w['f1'])}" for w in rec["worst"]))
        if rec.get("windows_below_floor") is not None:
            line += f"; {_n(rec['windows_below_floor'], 'window')} below the floor"
        if "known_cumulative_f1" in rec:
            line += f"; with label delay {rec.get('label_delay')} a monitor knew {_f(rec['known_cumulative_f1'])} at the end"
        console.print(line, highlight=False)

    sh = shift_summary(run)
    if sh:
        windows = (f"{sh['window_alarms']} of {_n(sh['windows'], 'window')} alarm; "
                   if sh.get("windows") is not None else "")
        t = Table(title=f"most shifted features ({windows}{_n(sh['alarms'], 'alarm')} in "
                        f"{_n(sh['comparisons'], 'comparison')})", title_justify="left")
        cols = [c for c in ("window", "feature", "statistic", "value", "p_value", "alarm") if sh["top"] and c in sh["top"][0]]
        for c in cols:
            t.add_column(c, justify="right" if c in ("value", "p_value") else "left")
        for rec in sh["top"]:
            t.add_row(*[("ALARM" if rec[c] else "") if c == "alarm" else _p(rec[c]) if c == "p_value"
                        else _f(rec[c]) if c == "value" else str(rec[c]) for c in cols])
        console.print(t)

    ex = explain_summary(run)
    if ex:
        t = Table(title=f"what moved ({_n(ex['pairs'], 'alarmed feature')} in {_n(ex['windows'], 'window')}; "
                        "effect = share of rows moved (its level without a shift); ranked by the excess)",
                  title_justify="left")
        for c in ("window", "feature", "effect", "what"):
            t.add_column(c, justify="right" if c == "effect" else "left", overflow="fold")
        previous = None
        for rec in ex["lines"]:
            window = str(rec.get("window") or "")
            noise = rec.get("effect_noise")
            t.add_row(window if window != previous else "", str(rec["feature"]),
                      f"{rec.get('effect_measure') or ''} {_f(rec.get('effect'), '.3f')}".strip()
                      + (f" ({_f(noise, '.3f')})" if noise is not None else ""), str(rec["what"]))
            previous = window
        if ex["more"]:
            t.caption = f"... {ex['more']:,} more in explain.parquet and the report"
        console.print(t)

    ps = policy_summary(run)
    if not ps.empty:
        metric = str(ps["metric"].iloc[0]) if "metric" in ps.columns else "f1"
        keep = ["policy", f"mean_{metric}", f"worst_{metric}", "worst_month", "mean_f1", "months_below_floor",
                "retrains", "train_seconds"]
        cols = [c for c in dict.fromkeys(keep) if c in ps.columns] or list(ps.columns)
        # no vertical rules: the columns fit 80 (a pipe) with whole headers
        t = Table(title="retraining policies", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        rows = [[str(v) if k in ("policy", "worst_month") else
                 _f(v, ".1f" if "seconds" in k else ".4f" if isinstance(v, float) else "")
                 for k, v in rec.items()] for rec in ps[cols].to_dict("records")]
        for j, c in enumerate(cols):
            # headers as words that wrap, never cut (a piped 80-column summary showed "mean_a…"):
            # each column exactly as wide as its longest header word or value
            header = _POLICY_HEADERS.get(str(c), str(c).replace("_", " "))
            if c in (f"mean_{metric}", f"worst_{metric}"):
                header = f"{str(c).split('_')[0]} {metric}"
            width = max([len(w) for w in header.split()] + [len(r[j]) for r in rows])
            t.add_column(header, justify="left" if c in ("policy", "worst_month") else "right", width=width)
        for r in rows:
            t.add_row(*r)
        t.caption = "every column in policies.parquet and the report"
        console.print(t)
        if "false_drift_retrains" in ps.columns:  # generated data: triggers judged by the ground truth
            for rec in ps[ps["drift_retrains"] > 0].to_dict("records"):
                if pd.notna(rec["false_drift_retrains"]):
                    console.print(f"{rec['policy']}: {_n(int(rec['drift_retrains']), 'drift retrain')}, "
                                  f"{int(rec['true_drift_retrains'])} true and {int(rec['false_drift_retrains'])} false "
                                  "against the generator's ground truth", highlight=False)

    rows = ((man.get("rows") or {}).get("total")) or {}
    if rows:
        dropped = ", ".join(f"{k} {v:,}" for k, v in (rows.get("dropped_by_rule") or {}).items() if v)
        console.print(f"rows read {rows.get('rows_read', 0):,}, dropped {rows.get('rows_dropped', 0):,}"
                      + (f" ({dropped})" if dropped else "") + f", used {rows.get('rows_used', 0):,}", highlight=False)
    timings = {k: v for k, v in (man.get("timings_s") or {}).items() if k != "total"}
    if timings:
        console.print("time per stage: " + ", ".join(f"{k} {float(v):.1f} s" for k, v in timings.items()), highlight=False)
    console.print(f"run directory: {run.run_dir}", highlight=False, soft_wrap=True)
    report = run.run_dir / "report.html"
    if report.exists():
        console.print(f"report: {report}", highlight=False, soft_wrap=True)
