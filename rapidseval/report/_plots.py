"""The report's figures, each built from one run table with matplotlib.

Every builder takes a :class:`~rapidseval.report._load.RunTables` and returns a
list of :class:`Plot` (empty when the table or the columns it needs are
absent).  Figures are plain :class:`matplotlib.figure.Figure` objects (no
pyplot, no global state, no display); every axes gets a title or its figure a
suptitle, and both axis labels name their unit (``F1 (0-1)``, ``rows``,
``seconds``, dates in New York local time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ._load import RunTables

__all__ = ["Plot", "BUILDERS", "build_plots"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_TIME_LABEL = "window start (New York local time)"
_MAX_MODELS = len(_COLORS)


@dataclass
class Plot:
    """One figure of the page: ``id`` (an HTML id), ``section``, ``title`` and the figure."""

    id: str
    section: str
    title: str
    figure: Figure
    caption: str = ""


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _date_axis(ax, label: str = _TIME_LABEL) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(label)


def _month_axis(ax, labels: list[str], label: str = "evaluation month (YYYY-MM)") -> None:
    step = max(1, int(np.ceil(len(labels) / 14)))
    ticks = list(range(0, len(labels), step))
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=45 if len(ticks) > 6 else 0,
                  ha="right" if len(ticks) > 6 else "center")
    ax.set_xlabel(label)


def _models(table: pd.DataFrame) -> list:
    if "model" not in table.columns:
        return [None]
    return list(dict.fromkeys(table["model"].tolist()))[:_MAX_MODELS]


def _of_model(table: pd.DataFrame, model) -> pd.DataFrame:
    return table if model is None else table[table["model"] == model]


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)


def _label(model, what: str, several: bool) -> str:
    return f"{model}: {what}" if several and model is not None else what


def _replay_rows(run: RunTables) -> pd.DataFrame:
    r = run["replay"]
    if r.empty or "window_start" not in r.columns:
        return pd.DataFrame()
    if "in_period" in r.columns:
        r = r[r["in_period"].astype(bool)]
    r = r.copy()
    r["window_start"] = pd.to_datetime(r["window_start"])
    if "window_end" in r.columns:
        r["window_end"] = pd.to_datetime(r["window_end"])
    return r.sort_values("window_start", kind="stable")


def _window_days(r: pd.DataFrame) -> float:
    """Width of one window in days (matplotlib's date unit), for bars."""
    if "window_end" in r.columns and len(r):
        d = (r["window_end"] - r["window_start"]).median()
        if pd.notna(d) and d > pd.Timedelta(0):
            return d / pd.Timedelta(days=1)
    if len(r) > 1:
        return float(np.median(np.diff(r["window_start"].drop_duplicates().to_numpy()) / np.timedelta64(1, "D")))
    return 1.0


def _replay_period(r: pd.DataFrame, run: RunTables) -> str:
    rep = ((run.job.get("evaluation") or {}).get("replay") or {})
    months = rep.get("months") if isinstance(rep, dict) else None
    if months:
        return f"{months[0]}..{months[-1]}" if len(months) > 1 else str(months[0])
    if "months" in r.columns and len(r):
        return str(r["months"].iloc[0])
    return f"{r['window_start'].min():%Y-%m-%d}..{r['window_start'].max():%Y-%m-%d}"


def _window_name(r: pd.DataFrame) -> str:
    w = str(r["window"].iloc[0]) if "window" in r.columns and len(r) else "window"
    return {"D": "day", "h": "hour", "H": "hour", "W": "week", "MS": "month", "M": "month"}.get(w, w)


# ---------------------------------------------------------------------------------------
# run summary
# ---------------------------------------------------------------------------------------
def rows_plot(run: RunTables) -> list[Plot]:
    by_month = ((run.manifest.get("rows") or {}).get("by_month")) or {}
    if not by_month:
        return []
    months = sorted(by_month)
    used = [int(by_month[m].get("rows_used", 0) or 0) for m in months]
    rules = sorted({k for m in months for k, v in (by_month[m].get("dropped_by_rule") or {}).items() if v})
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    a1, a2 = fig.subplots(1, 2)
    x = np.arange(len(months))
    a1.bar(x, used, color="#4c72b0")
    a1.set_title("rows used per input month")
    a1.set_ylabel("rows used")
    _month_axis(a1, months, "input month (YYYY-MM)")
    bottom = np.zeros(len(months))
    for i, rule in enumerate(rules):
        vals = np.array([int((by_month[m].get("dropped_by_rule") or {}).get(rule, 0) or 0) for m in months])
        a2.bar(x, vals, bottom=bottom, label=rule, color=_COLORS[i % len(_COLORS)])
        bottom += vals
    a2.set_title("rows dropped per input month, by rule" + ("" if rules else " (none dropped)"))
    a2.set_ylabel("rows dropped")
    _month_axis(a2, months, "input month (YYYY-MM)")
    if rules:
        a2.legend(fontsize=7)
    title = "Row accounting: rows used and dropped by rule per input month"
    fig.suptitle(title)
    return [Plot("rows", "summary", title, fig)]


def timings_plot(run: RunTables) -> list[Plot]:
    t = {k: float(v) for k, v in (run.manifest.get("timings_s") or {}).items() if isinstance(v, (int, float))}
    total = t.pop("total", None)
    if not t:
        return []
    fig = Figure(figsize=(8, 0.35 * len(t) + 1.4), layout="constrained")
    ax = fig.subplots()
    names = list(t)
    ax.barh(names, [t[n] for n in names], color="#55a868")
    ax.invert_yaxis()
    for i, n in enumerate(names):
        ax.text(t[n], i, f" {t[n]:.2f} s", va="center", fontsize=8)
    ax.set_xlabel("wall time (seconds)")
    ax.set_ylabel("stage")
    title = "Wall time per stage" + (f" (total {total:.1f} s)" if total is not None else "")
    ax.set_title(title)
    ax.margins(x=0.15)
    return [Plot("timings", "summary", title, fig)]


# ---------------------------------------------------------------------------------------
# replay
# ---------------------------------------------------------------------------------------
def replay_f1_plot(run: RunTables) -> list[Plot]:
    r = _replay_rows(run)
    if r.empty or "f1" not in r.columns:
        return []
    models = _models(r)
    several = len(models) > 1
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax, axn = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for i, model in enumerate(models):
        m = _of_model(r, model)
        x, c = m["window_start"], _COLORS[i]
        ax.plot(x, _num(m["f1"]), "o", ms=3, color=c, alpha=0.8, label=_label(model, f"F1 per {_window_name(m)}", several))
        if {"f1_low", "f1_high"} <= set(m.columns):
            ax.fill_between(x, _num(m["f1_low"]), _num(m["f1_high"]), color=c, alpha=0.15, step=None,
                            label=_label(model, "95% band", several))
        if "cumulative_f1" in m.columns:
            ax.plot(x, _num(m["cumulative_f1"]), "-", lw=2, color=c, label=_label(model, "cumulative F1", several))
        if "trailing_f1" in m.columns:
            k = m["trailing_windows"].iloc[0] if "trailing_windows" in m.columns else None
            what = f"trailing F1 ({k} windows)" if k is not None and pd.notna(k) else "trailing F1"
            ax.plot(x, _num(m["trailing_f1"]), "--", lw=1.5, color=c, label=_label(model, what, several))
        if "below_floor" in m.columns:
            low = m[m["below_floor"].fillna(False).astype(bool)]
            if len(low):
                ax.plot(low["window_start"], _num(low["f1"]), "x", ms=8, mew=2, color="black",
                        label=_label(model, "below floor", several) if i == 0 or several else None)
        if i == 0 and "n" in m.columns:
            axn.bar(x, _num(m["n"]), width=0.8 * _window_days(m), align="edge", color="gray", alpha=0.5)
    floor = (((run.job.get("evaluation") or {}).get("replay") or {}) or {}).get("floor")
    if isinstance(floor, (int, float)):
        ax.axhline(float(floor), color="black", ls=":", lw=1, label=f"floor {floor:g}")
    ax.set_ylabel("F1 (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if several else 1, loc="lower left")
    bands = ", 95% bands" if {"f1_low", "f1_high"} <= set(r.columns) else ""
    title = f"Replay of {_replay_period(r, run)}: F1 per {_window_name(r)} vs cumulative F1{bands}"
    ax.set_title(title)
    axn.set_ylabel("rows per window")
    axn.set_title("rows scored per window", fontsize=9)
    _date_axis(axn)
    return [Plot("replay-f1", "replay", title, fig)]


def label_delay_plot(run: RunTables) -> list[Plot]:
    r = _replay_rows(run)
    if r.empty or not ({"known_cumulative_f1", "known_trailing_f1"} & set(r.columns)):
        return []
    models = _models(r)
    several = len(models) > 1
    delay = str(r["label_delay"].iloc[0]) if "label_delay" in r.columns else "?"
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax, axk = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for i, model in enumerate(models):
        m = _of_model(r, model)
        x, c = m["window_end"] if "window_end" in m.columns else m["window_start"], _COLORS[i]
        for true_col, known_col, what in (("cumulative_f1", "known_cumulative_f1", "cumulative F1"),
                                          ("trailing_f1", "known_trailing_f1", "trailing F1")):
            if known_col not in m.columns:
                continue
            style = "-" if what.startswith("cumulative") else "--"
            if true_col in m.columns:
                ax.plot(x, _num(m[true_col]), style, lw=1, color=c, alpha=0.45,
                        label=_label(model, f"{what}, in hindsight", several))
            ax.plot(x, _num(m[known_col]), style, lw=2, color=c, drawstyle="steps-post",
                    label=_label(model, f"{what}, as known then", several))
        if i == 0 and "labels_known_fraction" in m.columns:
            axk.plot(x, 100 * _num(m["labels_known_fraction"]), color="gray", drawstyle="steps-post")
    ax.set_ylabel("F1 (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    title = f"Label-delay view (delay {delay}): F1 a monitor knew at each window's end vs the truth in hindsight"
    ax.set_title(title, fontsize=10)
    axk.set_ylabel("labels known (%)")
    axk.set_ylim(0, 105)
    axk.set_title("share of the period's labels known at each window's end", fontsize=9)
    _date_axis(axk, "window end (New York local time)")
    return [Plot("label-delay", "replay", title, fig)]


_PROBA_METRICS = (("roc_auc", "ROC AUC (0-1)"), ("log_loss", "log loss (nats per row)"), ("brier", "Brier score (0-1)"))


def replay_proba_plot(run: RunTables) -> list[Plot]:
    r = _replay_rows(run)
    metrics = [(c, lab) for c, lab in _PROBA_METRICS if c in r.columns and r[c].notna().any()]
    if r.empty or not metrics:
        return []
    models = _models(r)
    several = len(models) > 1
    fig = Figure(figsize=(10, 2.6 * len(metrics) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(metrics), 1, sharex=True))
    for ax, (col, ylabel) in zip(axes, metrics):
        for i, model in enumerate(models):
            m = _of_model(r, model)
            x, c = m["window_start"], _COLORS[i]
            what = col.replace("_", " ")
            if col == "roc_auc" and "roc_auc_method" in m.columns and (m["roc_auc_method"] == "binned").any():
                what += " (binned)"
            ax.plot(x, _num(m[col]), "o-", ms=3, lw=1, color=c, label=_label(model, what, several))
            if {f"{col}_low", f"{col}_high"} <= set(m.columns):
                ax.fill_between(x, _num(m[f"{col}_low"]), _num(m[f"{col}_high"]), color=c, alpha=0.15)
        ax.set_ylabel(ylabel)
        band = ", 95% band" if {f"{col}_low", f"{col}_high"} <= set(r.columns) else ""
        ax.set_title(f"{col.replace('_', ' ')} per {_window_name(r)}{band}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _date_axis(axes[-1])
    title = f"Replay of {_replay_period(r, run)}: probability metrics per {_window_name(r)}"
    fig.suptitle(title)
    return [Plot("replay-proba", "replay", title, fig)]


def score_distribution_plot(run: RunTables) -> list[Plot]:
    r = _replay_rows(run)
    qs = [q for q in ("p50", "p90", "p99") if f"proba_{q}" in r.columns]
    if r.empty or not qs:
        return []
    m = _of_model(r, _models(r)[0])
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax = fig.subplots()
    for i, q in enumerate(qs):
        c = _COLORS[i]
        ax.plot(m["window_start"], _num(m[f"proba_{q}"]), "o-", ms=3, color=c, label=f"{q} of scores per window")
        if f"train_proba_{q}" in m.columns and m[f"train_proba_{q}"].notna().any():
            ax.axhline(float(_num(m[f"train_proba_{q}"])[0]), color=c, ls=":", label=f"{q} on training data")
    ax.set_ylabel("predicted probability of the positive class (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _date_axis(ax)
    model = m["model"].iloc[0] if "model" in m.columns and len(m) else "the model"
    title = f"Score distribution of {model} per {_window_name(r)} vs training"
    ax.set_title(title)
    return [Plot("score-dist", "replay", title, fig)]


def delta_plot(run: RunTables) -> list[Plot]:
    r = _replay_rows(run)
    if r.empty or "delta_f1" not in r.columns or len(_models(r)) < 2:
        return []
    models = _models(r)
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.subplots()
    for i, model in enumerate(models[1:], start=1):
        m = _of_model(r, model)
        ax.plot(m["window_start"], _num(m["delta_f1"]), "o-", ms=3, color=_COLORS[i], label=f"{model} − {models[0]}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("F1 difference (points of F1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _date_axis(ax)
    title = f"F1 per {_window_name(r)} relative to {models[0]}"
    ax.set_title(title)
    return [Plot("replay-delta", "replay", title, fig)]


# ---------------------------------------------------------------------------------------
# monthly
# ---------------------------------------------------------------------------------------
def monthly_plot(run: RunTables) -> list[Plot]:
    mt = run["monthly"]
    if mt.empty or not {"month", "f1"} <= set(mt.columns):
        return []
    months = sorted(mt["month"].astype(str).unique())
    pos = {m: i for i, m in enumerate(months)}
    models = _models(mt)
    several = len(models) > 1
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    metrics = [("f1", "-", 2.0)] + ([("precision", ":", 1.2), ("recall", "--", 1.2)] if len(models) <= 2 else [])
    for i, model in enumerate(models):
        m = _of_model(mt, model).sort_values("month")
        x = [pos[str(v)] for v in m["month"]]
        for col, style, lw in metrics:
            if col in m.columns:
                ax.plot(x, _num(m[col]), style, lw=lw, marker="o", ms=4, color=_COLORS[i],
                        label=_label(model, col, several))
    labels = months
    if "role" in mt.columns and not several:
        roles = dict(zip(mt["month"].astype(str), mt["role"].astype(str)))
        labels = [f"{m}\n{roles.get(m, '')}" for m in months]
    _month_axis(ax, labels, "evaluation month (YYYY-MM) and its role")
    ax.set_ylabel("metric value (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    title = "Metrics per evaluation month"
    ax.set_title(title)
    return [Plot("monthly", "monthly", title, fig)]


# ---------------------------------------------------------------------------------------
# shift
# ---------------------------------------------------------------------------------------
def _window_labels(s: pd.DataFrame) -> pd.Series:
    if "window_start" in s.columns and s["window_start"].notna().all():
        ws = pd.to_datetime(s["window_start"])
        if (ws.dt.day == 1).all() and (ws.dt.hour == 0).all():
            return ws.dt.strftime("%Y-%m")
        return ws.dt.strftime("%Y-%m-%d" if (ws.dt.hour == 0).all() else "%Y-%m-%d %H:%M")
    return s["window"].astype(str) if "window" in s.columns else s["window_start"].astype(str)


def shift_overview(run: RunTables) -> list[Plot]:
    """One feature x window map over all statistics: the largest value / threshold (1 = at the alarm line)."""
    s = run["shift"]
    if not run.has("shift", "feature", "value", "threshold", "statistic") or s["statistic"].nunique() < 2:
        return []
    s = s[pd.to_numeric(s["threshold"], errors="coerce") > 0].copy()
    if s.empty:
        return []
    s["_w"] = _window_labels(s)
    s["_ratio"] = _num(s["value"]) / _num(s["threshold"])
    s["_a"] = s["alarm"].fillna(False).astype(bool) if "alarm" in s.columns else False
    ref = ", ".join(map(str, s["reference"].unique())) if "reference" in s.columns else "the reference"
    order = s.drop_duplicates("_w").sort_values("window_start" if "window_start" in s.columns else "_w")["_w"].tolist()
    features = list(dict.fromkeys(s["feature"].tolist()))
    idx = s.groupby(["feature", "_w"])["_ratio"].idxmax().dropna()
    top = s.loc[idx.to_numpy()]
    val = top.pivot(index="feature", columns="_w", values="_ratio").reindex(index=features, columns=order)
    stat = top.pivot(index="feature", columns="_w", values="statistic").reindex(index=features, columns=order)
    alarm = s.groupby(["feature", "_w"])["_a"].max().unstack().reindex(index=features, columns=order).fillna(False).astype(bool)
    nf, nw = val.shape
    fig = Figure(figsize=(min(18, max(7, 0.9 * nw + 4)), min(14, 0.34 * nf + 2.0)), layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(val.to_numpy(dtype=float))
    vmax = max(2.0, float(np.nanmax(val.to_numpy(dtype=float)))) if finite.any() else 2.0
    im = ax.imshow(np.ma.masked_invalid(val.to_numpy(dtype=float)), aspect="auto", cmap="Reds", vmin=0, vmax=vmax,
                   interpolation="nearest")
    ax.set_yticks(range(nf), features, fontsize=8)
    step = max(1, int(np.ceil(nw / 24)))
    ax.set_xticks(range(0, nw, step), order[::step], rotation=45 if nw > 6 else 0, ha="right" if nw > 6 else "center", fontsize=8)
    for i, j in zip(*np.nonzero(alarm.to_numpy())):
        ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="black", linewidth=2))
    if nf * nw <= 160:
        for i in range(nf):
            for j in range(nw):
                v = val.iat[i, j]
                if pd.notna(v):
                    ax.text(j, i, f"{v:.2f} {stat.iat[i, j]}", ha="center", va="center", fontsize=6.5,
                            color="white" if v > 0.6 * vmax else "black")
    ax.set_xlabel("compared month (YYYY-MM)" if all(len(w) == 7 for w in order) else "compared window (start, New York local time)")
    ax.set_ylabel("feature")
    title = f"Shift vs {ref}: largest statistic / its alarm threshold per feature and window (alarms boxed)"
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="value / threshold (1 = alarm line)")
    return [Plot("shift-overview", "shift", title, fig)]


def shift_heatmaps(run: RunTables, max_maps: int = 12) -> list[Plot]:
    s = run["shift"]
    if not run.has("shift", "feature", "value") or not ({"window", "window_start"} & set(s.columns)):
        return []
    s = s.copy()
    s["_w"] = _window_labels(s)
    if "statistic" not in s.columns:
        s["statistic"] = "statistic"
    if "reference" not in s.columns:
        s["reference"] = "reference"
    if "alarm" not in s.columns:
        s["alarm"] = False
    plots = []
    groups = list(s.groupby(["reference", "statistic"], sort=False))[:max_maps]
    for k, ((ref, stat), g) in enumerate(groups):
        order = g.drop_duplicates("_w").sort_values("window_start" if "window_start" in g.columns else "_w")["_w"].tolist()
        features = list(dict.fromkeys(g["feature"].tolist()))
        val = g.pivot_table(index="feature", columns="_w", values="value", aggfunc="max").reindex(index=features, columns=order)
        alarm = (g.assign(_a=g["alarm"].fillna(False).astype(bool))
                 .pivot_table(index="feature", columns="_w", values="_a", aggfunc="max")
                 .reindex(index=features, columns=order).fillna(False).astype(bool))
        nf, nw = val.shape
        fig = Figure(figsize=(min(18, max(7, 0.45 * nw + 3.5)), min(14, 0.32 * nf + 2.0)), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(np.ma.masked_invalid(val.to_numpy(dtype=float)), aspect="auto", cmap="Reds",
                       interpolation="nearest")
        ax.set_yticks(range(nf), features, fontsize=8)
        step = max(1, int(np.ceil(nw / 24)))
        ax.set_xticks(range(0, nw, step), order[::step], rotation=45 if nw > 6 else 0,
                      ha="right" if nw > 6 else "center", fontsize=8)
        for i, j in zip(*np.nonzero(alarm.to_numpy())):
            ax.add_patch(Rectangle((j - 0.45, i - 0.45), 0.9, 0.9, fill=False, edgecolor="black", linewidth=2))
        if nf * nw <= 240:
            vmax = np.nanmax(val.to_numpy(dtype=float)) if np.isfinite(val.to_numpy(dtype=float)).any() else 1.0
            for i in range(nf):
                for j in range(nw):
                    v = val.iat[i, j]
                    if pd.notna(v):
                        ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6.5,
                                color="white" if v > 0.6 * vmax else "black")
        wlabel = "compared month (YYYY-MM)" if all(len(w) == 7 for w in order) else "compared window (start, New York local time)"
        ax.set_xlabel(wlabel)
        ax.set_ylabel("feature")
        n_alarm = int(alarm.to_numpy().sum())
        title = f"Shift: {stat} per feature and window vs reference {ref} ({n_alarm} alarms, boxed in black)"
        ax.set_title(title)
        fig.colorbar(im, ax=ax, label=f"{stat} statistic (unitless)")
        plots.append(Plot(f"shift-{k}", "shift", title, fig))
    return plots


def attribution_plot(run: RunTables, top: int = 20) -> list[Plot]:
    a = run["attribution"]
    if not run.has("attribution", "feature"):
        return []
    num = [c for c in a.columns if c != "feature" and pd.api.types.is_numeric_dtype(a[c])
           and not pd.api.types.is_bool_dtype(a[c]) and "rank" not in c.lower()]
    preferred = [c for c in ("score", "metric_drop_alarm", "spearman") if c in num and a[c].notna().any()]
    plain = [c for c in num if not c.startswith("n_") and a[c].notna().any()]
    col = (preferred or plain or [None])[0]
    if col is None:
        return []
    agg = a.groupby("feature", sort=False)[col].max().dropna().sort_values(ascending=False).head(top)
    if agg.empty:
        return []
    fig = Figure(figsize=(8, 0.3 * len(agg) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh(agg.index.astype(str), agg.to_numpy(dtype=float), color="#c44e52")
    ax.invert_yaxis()
    metric = str(a["metric"].iloc[0]) if "metric" in a.columns else "metric"
    ax.set_xlabel(f"{metric} drop in windows with an alarm vs without (points of {metric})" if col == "metric_drop_alarm"
                  else f"{col} (largest over statistics and windows)")
    ax.set_ylabel("feature")
    title = f"Shift attribution: features ranked by {col}"
    ax.set_title(title)
    return [Plot("attribution", "shift", title, fig)]


# ---------------------------------------------------------------------------------------
# backtest
# ---------------------------------------------------------------------------------------
def _staleness_source(run: RunTables) -> pd.DataFrame:
    if run.has("staleness", "origin", "eval_month", "f1"):
        return run["staleness"]
    return pd.DataFrame()


def staleness_matrix(run: RunTables) -> list[Plot]:
    st = _staleness_source(run)
    if st.empty:
        return []
    st = st.assign(origin=st["origin"].astype(str), eval_month=st["eval_month"].astype(str))
    m = st.pivot_table(index="origin", columns="eval_month", values="f1", aggfunc="mean")
    m = m.reindex(index=sorted(m.index), columns=sorted(m.columns))
    no, ne = m.shape
    fig = Figure(figsize=(min(18, max(7, 0.42 * ne + 3)), min(14, 0.32 * no + 2.2)), layout="constrained")
    ax = fig.subplots()
    vals = m.to_numpy(dtype=float)
    im = ax.imshow(np.ma.masked_invalid(vals), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(no), m.index, fontsize=8)
    step = max(1, int(np.ceil(ne / 24)))
    ax.set_xticks(range(0, ne, step), list(m.columns[::step]), rotation=45, ha="right", fontsize=8)
    if no * ne <= 240:
        for i in range(no):
            for j in range(ne):
                if np.isfinite(vals[i, j]):
                    ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=6.5, color="white")
    ax.set_xlabel("evaluation month (YYYY-MM)")
    ax.set_ylabel("model origin (last training month)")
    title = "Staleness matrix: F1 of each origin's model on every later month"
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="F1 (0-1)")
    return [Plot("staleness", "backtest", title, fig)]


def staleness_curve(run: RunTables) -> list[Plot]:
    st = _staleness_source(run)
    if st.empty or "model_age_months" not in st.columns:
        bt = run["backtest"]
        if not run.has("backtest", "model_age_months", "f1"):
            return []
        st = bt
    g = st.groupby("model_age_months")["f1"].agg(["mean", "min", "max", "count"]).reset_index()
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.subplots()
    x = g["model_age_months"].to_numpy(dtype=float)
    ax.plot(x, g["mean"], "o-", color=_COLORS[0], label="mean over origins")
    ax.fill_between(x, g["min"], g["max"], color=_COLORS[0], alpha=0.15, label="min-max over origins")
    ax.set_xlabel("model age (months since the last training month)")
    ax.set_ylabel("F1 (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    title = "Staleness: F1 by model age"
    ax.set_title(title)
    return [Plot("staleness-age", "backtest", title, fig)]


def policy_plot(run: RunTables) -> list[Plot]:
    bt = run["backtest"]
    if not run.has("backtest", "policy", "eval_month", "f1"):
        return []
    months = sorted(bt["eval_month"].astype(str).unique())
    pos = {m: i for i, m in enumerate(months)}
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, (policy, g) in enumerate(bt.groupby("policy", sort=False)):
        g = g.sort_values("eval_month")
        c = _COLORS[i % len(_COLORS)]
        x = np.array([pos[str(m)] for m in g["eval_month"]])
        ax.plot(x, _num(g["f1"]), "-", lw=1.6, color=c, label=str(policy))
        if "retrained" in g.columns:
            rt = g["retrained"].fillna(False).astype(bool).to_numpy()
            ax.plot(x[rt], _num(g["f1"])[rt], "^", ms=7, color=c)
    ax.plot([], [], "^", color="gray", label="retrained before this month")
    _month_axis(ax, months)
    ax.set_ylabel("F1 (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=3)
    title = "Retraining policies: F1 per evaluation month (triangles: retrained)"
    ax.set_title(title)
    return [Plot("policies", "backtest", title, fig)]


def policy_cost_plot(run: RunTables) -> list[Plot]:
    from ._tables import policy_summary

    ps = policy_summary(run)
    if ps.empty or not {"train_seconds", "mean_f1"} <= set(ps.columns):
        return []
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    for i, row in enumerate(ps.itertuples(index=False)):
        ax.scatter(row.train_seconds, row.mean_f1, s=50, color=_COLORS[i % len(_COLORS)])
        ax.annotate(str(row.policy), (row.train_seconds, row.mean_f1), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.set_xlabel("total training time (seconds)")
    ax.set_ylabel("mean F1 over evaluation months (0-1)")
    ax.grid(alpha=0.3)
    ax.margins(0.2)
    title = "Retraining policies: quality vs training cost"
    ax.set_title(title)
    return [Plot("policy-cost", "backtest", title, fig)]


BUILDERS: tuple[Callable[[RunTables], list[Plot]], ...] = (
    rows_plot, timings_plot,
    replay_f1_plot, label_delay_plot, replay_proba_plot, score_distribution_plot, delta_plot,
    monthly_plot,
    shift_overview, shift_heatmaps, attribution_plot,
    staleness_matrix, staleness_curve, policy_plot, policy_cost_plot,
)


def build_plots(run: RunTables) -> list[Plot]:
    """Every figure the run's tables support, in page order."""
    return [p for build in BUILDERS for p in build(run)]
