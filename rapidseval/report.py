"""``report.html``: one self-contained page built from a run directory's tables alone.

Plots are rendered with matplotlib (Agg) to PNG and inlined as data URIs, so
the page opens offline and makes no network request.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.alarm{color:#b00;font-weight:600}.muted{color:#777}
img{max-width:100%;border:1px solid #eee}
"""


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display, no network)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(df: pd.DataFrame, floats: int = 4) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{floats}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{floats}f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def _replay_plot(replay: pd.DataFrame) -> str | None:
    if replay.empty:
        return None
    import matplotlib.dates as mdates

    plt = _pyplot()

    if "in_period" in replay:
        replay = replay[replay["in_period"]]
    if replay.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 3.8))
    x = pd.to_datetime(replay["window_start"])
    ax.plot(x, replay["f1"], marker="o", ms=3, label=f"F1 per window ({replay['window'].iloc[0]})")
    ax.plot(x, replay["cumulative_f1"], lw=2, label="cumulative F1 since start")
    ax.set_title(f"Replay of {replay['months'].iloc[0]}: windowed vs cumulative F1")
    ax.set_xlabel("window start (dropoff time, New York)")
    ax.set_ylabel("F1")
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(alpha=0.3)
    ax.legend()
    ax2 = ax.twinx()
    ax2.bar(x, replay["n"], width=0.6 if replay["window"].iloc[0] == "D" else 0.02, alpha=0.15, color="gray")
    ax2.set_ylabel("rows per window")
    uri = _png(fig)
    plt.close(fig)
    return uri


def _monthly_plot(monthly: pd.DataFrame) -> str | None:
    if monthly.empty:
        return None
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(monthly["month"], monthly["f1"], color="#4c72b0")
    for i, v in enumerate(monthly["f1"]):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_title("F1 per evaluation month")
    ax.set_xlabel("month")
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    uri = _png(fig)
    plt.close(fig)
    return uri


def _shift_plot(shift: pd.DataFrame) -> str | None:
    if shift.empty:
        return None
    shift = shift[shift["statistic"] == "ks"] if "statistic" in shift else shift  # one statistic per cell
    if shift.empty:
        return None
    plt = _pyplot()

    pivot = shift.pivot(index="feature", columns="window", values="value")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(pivot) + 1.5))
    im = ax.imshow(pivot.to_numpy(), aspect="auto", cmap="Reds")
    ax.set_yticks(range(len(pivot)), pivot.index)
    ax.set_xticks(range(len(pivot.columns)), pivot.columns)
    ax.set_xlabel("compared month")
    ax.set_title(f"KS statistic vs reference {shift['reference'].iloc[0]} (x = alarm)")
    for (i, f) in enumerate(pivot.index):
        for j, w in enumerate(pivot.columns):
            row = shift[(shift.feature == f) & (shift.window == w)].iloc[0]
            ax.text(j, i, f"{row.value:.3f}" + (" x" if row.alarm else ""), ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="KS statistic (max CDF distance)")
    uri = _png(fig)
    plt.close(fig)
    return uri


def write_report(run_dir: str | Path) -> Path:
    """(Re)build ``run_dir/report.html`` from the tables and the manifest."""
    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    monthly = pd.read_parquet(run_dir / "monthly.parquet")
    replay = pd.read_parquet(run_dir / "replay.parquet")
    shift = pd.read_parquet(run_dir / "shift.parquet")
    job = manifest["job"]
    rows = manifest["rows"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>rapidseval: {html.escape(job['name'])}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>rapidseval run: {html.escape(job['name'])}</h1>"]
    if not manifest.get("complete"):
        parts.append("<p class='alarm'>This run directory is incomplete.</p>")
    parts.append(
        "<p>"
        + html.escape(
            f"backend {manifest['backend']} ({manifest.get('backend_reason', '')}); "
            f"model {job['model']['kind']} {json.dumps(job['model']['params'])}; seed {manifest['seed']}; "
            f"job hash {manifest['job_hash'][:12]}; commit {manifest.get('git_commit')}; created {manifest['created_utc']}"
        )
        + "</p>"
    )
    tot = rows["total"]
    parts.append(
        f"<p>Rows read {tot['rows_read']:,}, dropped {tot['rows_dropped']:,}, used {tot['rows_used']:,}.</p>"
    )
    by_rule = pd.DataFrame(
        [{"month": m, **r["dropped_by_rule"], "used": r["rows_used"], "read": r["rows_read"]} for m, r in rows["by_month"].items()]
    )
    parts.append("<h2>Row accounting (dropped by rule)</h2>" + _table(by_rule))
    parts.append("<h2>Monthly metrics</h2>")
    img = _monthly_plot(monthly)
    if img:
        parts.append(f"<img alt='F1 per month' src='{img}'>")
    parts.append(_table(monthly[["month", "role", "n", "precision", "recall", "f1", "accuracy", "positive_rate"]]))
    if not replay.empty:
        parts.append("<h2>Replay</h2>")
        img = _replay_plot(replay)
        if img:
            parts.append(f"<img alt='windowed vs cumulative F1' src='{img}'>")
        parts.append(_table(replay[["window_start", "n", "precision", "recall", "f1", "cumulative_f1"]]))
    if not shift.empty:
        parts.append("<h2>Feature shift</h2>")
        img = _shift_plot(shift)
        parts.append(f"<img alt='shift heatmap' src='{img}'>")
        parts.append(_table(shift[["reference", "window", "feature", "statistic", "value", "p_value", "threshold", "alarm"]]))
    parts.append("<h2>Inputs</h2>" + _table(pd.DataFrame(manifest["inputs"])))
    parts.append("<h2>Timings (s)</h2>" + _table(pd.DataFrame([manifest["timings_s"]])))
    parts.append("<h2>Packages</h2><p class='muted'>" + html.escape(", ".join(f"{k} {v}" for k, v in manifest["packages"].items())) + "</p>")
    parts.append("</body></html>")
    path = run_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
    return path
