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


def _num(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _label(model, what: str, several: bool) -> str:
    return f"{model}: {what}" if several and model is not None else what


def _replay_rows(run: RunTables) -> pd.DataFrame:
    replay = run["replay"]
    if replay.empty or "window_start" not in replay.columns:
        return pd.DataFrame()
    if "in_period" in replay.columns:
        replay = replay[replay["in_period"].astype(bool)]
    replay = replay.copy()
    replay["window_start"] = pd.to_datetime(replay["window_start"])
    if "window_end" in replay.columns:
        replay["window_end"] = pd.to_datetime(replay["window_end"])
    return replay.sort_values("window_start", kind="stable")


def _window_days(replay: pd.DataFrame) -> float:
    """Width of one window in days (matplotlib's date unit), for bars."""
    if "window_end" in replay.columns and len(replay):
        width = (replay["window_end"] - replay["window_start"]).median()
        if pd.notna(width) and width > pd.Timedelta(0):
            return width / pd.Timedelta(days=1)
    if len(replay) > 1:
        return float(np.median(np.diff(replay["window_start"].drop_duplicates().to_numpy()) / np.timedelta64(1, "D")))
    return 1.0


def _replay_period(replay: pd.DataFrame, run: RunTables) -> str:
    spec = ((run.job.get("evaluation") or {}).get("replay") or {})
    months = spec.get("months") if isinstance(spec, dict) else None
    if months:
        return f"{months[0]}..{months[-1]}" if len(months) > 1 else str(months[0])
    if "months" in replay.columns and len(replay):
        return str(replay["months"].iloc[0])
    return f"{replay['window_start'].min():%Y-%m-%d}..{replay['window_start'].max():%Y-%m-%d}"


def _window_name(replay: pd.DataFrame) -> str:
    unit = str(replay["window"].iloc[0]) if "window" in replay.columns and len(replay) else "window"
    return {"D": "day", "h": "hour", "H": "hour", "W": "week", "MS": "month", "M": "month"}.get(unit, unit)


# ---------------------------------------------------------------------------------------
# run summary
# ---------------------------------------------------------------------------------------
def rows_plot(run: RunTables) -> list[Plot]:
    by_month = ((run.manifest.get("rows") or {}).get("by_month")) or {}
    if not by_month:
        return []
    months = sorted(by_month)
    used = [int(by_month[month].get("rows_used", 0) or 0) for month in months]
    rules = sorted({rule for month in months for rule, count in (by_month[month].get("dropped_by_rule") or {}).items() if count})
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    used_ax, dropped_ax = fig.subplots(1, 2)
    at = np.arange(len(months))
    used_ax.bar(at, used, color="#4c72b0")
    used_ax.set_title("rows used per input month")
    used_ax.set_ylabel("rows used")
    _month_axis(used_ax, months, "input month (YYYY-MM)")
    bottom = np.zeros(len(months))
    for rule_index, rule in enumerate(rules):
        dropped = np.array([int((by_month[month].get("dropped_by_rule") or {}).get(rule, 0) or 0) for month in months])
        dropped_ax.bar(at, dropped, bottom=bottom, label=rule, color=_COLORS[rule_index % len(_COLORS)])
        bottom += dropped
    dropped_ax.set_title("rows dropped per input month, by rule" + ("" if rules else " (none dropped)"))
    dropped_ax.set_ylabel("rows dropped")
    _month_axis(dropped_ax, months, "input month (YYYY-MM)")
    if rules:
        dropped_ax.legend(fontsize=7)
    title = "Row accounting: rows used and dropped by rule per input month"
    fig.suptitle(title)
    return [Plot("rows", "summary", title, fig)]


def timings_plot(run: RunTables) -> list[Plot]:
    seconds = {k: float(v) for k, v in (run.manifest.get("timings_s") or {}).items() if isinstance(v, (int, float))}
    total = seconds.pop("total", None)
    if not seconds:
        return []
    fig = Figure(figsize=(8, 0.35 * len(seconds) + 1.4), layout="constrained")
    ax = fig.subplots()
    names = list(seconds)
    ax.barh(names, [seconds[name] for name in names], color="#55a868")
    ax.invert_yaxis()
    for row, name in enumerate(names):
        ax.text(seconds[name], row, f" {seconds[name]:.2f} s", va="center", fontsize=8)
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
    replay = _replay_rows(run)
    if replay.empty or "f1" not in replay.columns:
        return []
    models = _models(replay)
    several = len(models) > 1
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax, axn = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for model_index, model in enumerate(models):
        rows = _of_model(replay, model)
        when, color = rows["window_start"], _COLORS[model_index]
        ax.plot(when, _num(rows["f1"]), "o", ms=3, color=color, alpha=0.8,
                label=_label(model, f"F1 per {_window_name(rows)}", several))
        if {"f1_low", "f1_high"} <= set(rows.columns):
            ax.fill_between(when, _num(rows["f1_low"]), _num(rows["f1_high"]), color=color, alpha=0.15, step=None,
                            label=_label(model, "95% band", several))
        if "cumulative_f1" in rows.columns:
            ax.plot(when, _num(rows["cumulative_f1"]), "-", lw=2, color=color, label=_label(model, "cumulative F1", several))
        if "trailing_f1" in rows.columns:
            trailing = rows["trailing_windows"].iloc[0] if "trailing_windows" in rows.columns else None
            what = f"trailing F1 ({trailing} windows)" if trailing is not None and pd.notna(trailing) else "trailing F1"
            ax.plot(when, _num(rows["trailing_f1"]), "--", lw=1.5, color=color, label=_label(model, what, several))
        if "below_floor" in rows.columns:
            low = rows[rows["below_floor"].fillna(False).astype(bool)]
            if len(low):
                ax.plot(low["window_start"], _num(low["f1"]), "x", ms=8, mew=2, color="black",
                        label=_label(model, "below floor", several) if model_index == 0 or several else None)
        if model_index == 0 and "n" in rows.columns:
            axn.bar(when, _num(rows["n"]), width=0.8 * _window_days(rows), align="edge", color="gray", alpha=0.5)
    floor = (((run.job.get("evaluation") or {}).get("replay") or {}) or {}).get("floor")
    if isinstance(floor, (int, float)):
        ax.axhline(float(floor), color="black", ls=":", lw=1, label=f"floor {floor:g}")
    ax.set_ylabel("F1 (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if several else 1, loc="lower left")
    bands = ", 95% bands" if {"f1_low", "f1_high"} <= set(replay.columns) else ""
    title = f"Replay of {_replay_period(replay, run)}: F1 per {_window_name(replay)} vs cumulative F1{bands}"
    ax.set_title(title)
    axn.set_ylabel("rows per window")
    axn.set_title("rows scored per window", fontsize=9)
    _date_axis(axn)
    return [Plot("replay-f1", "replay", title, fig)]


def label_delay_plot(run: RunTables) -> list[Plot]:
    replay = _replay_rows(run)
    if replay.empty or not ({"known_cumulative_f1", "known_trailing_f1"} & set(replay.columns)):
        return []
    models = _models(replay)
    several = len(models) > 1
    delay = str(replay["label_delay"].iloc[0]) if "label_delay" in replay.columns else "?"
    fig = Figure(figsize=(10, 5.2), layout="constrained")
    ax, axk = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    for model_index, model in enumerate(models):
        rows = _of_model(replay, model)
        when, color = rows["window_end"] if "window_end" in rows.columns else rows["window_start"], _COLORS[model_index]
        for true_col, known_col, what in (("cumulative_f1", "known_cumulative_f1", "cumulative F1"),
                                          ("trailing_f1", "known_trailing_f1", "trailing F1")):
            if known_col not in rows.columns:
                continue
            style = "-" if what.startswith("cumulative") else "--"
            if true_col in rows.columns:
                ax.plot(when, _num(rows[true_col]), style, lw=1, color=color, alpha=0.45,
                        label=_label(model, f"{what}, in hindsight", several))
            ax.plot(when, _num(rows[known_col]), style, lw=2, color=color, drawstyle="steps-post",
                    label=_label(model, f"{what}, as known then", several))
        if model_index == 0 and "labels_known_fraction" in rows.columns:
            axk.plot(when, 100 * _num(rows["labels_known_fraction"]), color="gray", drawstyle="steps-post")
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
    replay = _replay_rows(run)
    metrics = [(column, label) for column, label in _PROBA_METRICS
               if column in replay.columns and replay[column].notna().any()]
    if replay.empty or not metrics:
        return []
    models = _models(replay)
    several = len(models) > 1
    fig = Figure(figsize=(10, 2.6 * len(metrics) + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(metrics), 1, sharex=True))
    for ax, (col, ylabel) in zip(axes, metrics):
        for model_index, model in enumerate(models):
            rows = _of_model(replay, model)
            when, color = rows["window_start"], _COLORS[model_index]
            what = col.replace("_", " ")
            if col == "roc_auc" and "roc_auc_method" in rows.columns and (rows["roc_auc_method"] == "binned").any():
                what += " (binned)"
            ax.plot(when, _num(rows[col]), "o-", ms=3, lw=1, color=color, label=_label(model, what, several))
            if {f"{col}_low", f"{col}_high"} <= set(rows.columns):
                ax.fill_between(when, _num(rows[f"{col}_low"]), _num(rows[f"{col}_high"]), color=color, alpha=0.15)
        ax.set_ylabel(ylabel)
        band = ", 95% band" if {f"{col}_low", f"{col}_high"} <= set(replay.columns) else ""
        ax.set_title(f"{col.replace('_', ' ')} per {_window_name(replay)}{band}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _date_axis(axes[-1])
    title = f"Replay of {_replay_period(replay, run)}: probability metrics per {_window_name(replay)}"
    fig.suptitle(title)
    return [Plot("replay-proba", "replay", title, fig)]


def score_distribution_plot(run: RunTables) -> list[Plot]:
    replay = _replay_rows(run)
    quantiles = [quantile for quantile in ("p50", "p90", "p99") if f"proba_{quantile}" in replay.columns]
    if replay.empty or not quantiles:
        return []
    rows = _of_model(replay, _models(replay)[0])
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax = fig.subplots()
    for quantile_index, quantile in enumerate(quantiles):
        color = _COLORS[quantile_index]
        ax.plot(rows["window_start"], _num(rows[f"proba_{quantile}"]), "o-", ms=3, color=color,
                label=f"{quantile} of scores per window")
        if f"train_proba_{quantile}" in rows.columns and rows[f"train_proba_{quantile}"].notna().any():
            ax.axhline(float(_num(rows[f"train_proba_{quantile}"])[0]), color=color, ls=":", label=f"{quantile} on training data")
    ax.set_ylabel("predicted probability of the positive class (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _date_axis(ax)
    model = rows["model"].iloc[0] if "model" in rows.columns and len(rows) else "the model"
    title = f"Score distribution of {model} per {_window_name(replay)} vs training"
    ax.set_title(title)
    return [Plot("score-dist", "replay", title, fig)]


def delta_plot(run: RunTables) -> list[Plot]:
    replay = _replay_rows(run)
    if replay.empty or "delta_f1" not in replay.columns or len(_models(replay)) < 2:
        return []
    models = _models(replay)
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.subplots()
    for model_index, model in enumerate(models[1:], start=1):
        rows = _of_model(replay, model)
        ax.plot(rows["window_start"], _num(rows["delta_f1"]), "o-", ms=3, color=_COLORS[model_index],
                label=f"{model} − {models[0]}")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("F1 difference (points of F1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _date_axis(ax)
    title = f"F1 per {_window_name(replay)} relative to {models[0]}"
    ax.set_title(title)
    return [Plot("replay-delta", "replay", title, fig)]


# ---------------------------------------------------------------------------------------
# monthly
# ---------------------------------------------------------------------------------------
def monthly_plot(run: RunTables) -> list[Plot]:
    monthly = run["monthly"]
    if monthly.empty or not {"month", "f1"} <= set(monthly.columns):
        return []
    months = sorted(monthly["month"].astype(str).unique())
    position = {month: index for index, month in enumerate(months)}
    models = _models(monthly)
    several = len(models) > 1
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    metrics = [("f1", "-", 2.0)] + ([("precision", ":", 1.2), ("recall", "--", 1.2)] if len(models) <= 2 else [])
    for model_index, model in enumerate(models):
        rows = _of_model(monthly, model).sort_values("month")
        at = [position[str(v)] for v in rows["month"]]
        for col, style, line_width in metrics:
            if col in rows.columns:
                ax.plot(at, _num(rows[col]), style, lw=line_width, marker="o", ms=4, color=_COLORS[model_index],
                        label=_label(model, col, several))
    labels = months
    if "role" in monthly.columns and not several:
        roles = dict(zip(monthly["month"].astype(str), monthly["role"].astype(str)))
        labels = [f"{month}\n{roles.get(month, '')}" for month in months]
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
def _window_labels(shift: pd.DataFrame) -> pd.Series:
    if "window_start" in shift.columns and shift["window_start"].notna().all():
        starts = pd.to_datetime(shift["window_start"])
        if (starts.dt.day == 1).all() and (starts.dt.hour == 0).all():
            return starts.dt.strftime("%Y-%m")
        return starts.dt.strftime("%Y-%m-%d" if (starts.dt.hour == 0).all() else "%Y-%m-%d %H:%M")
    return shift["window"].astype(str) if "window" in shift.columns else shift["window_start"].astype(str)


def _window_order(shift: pd.DataFrame) -> list[str]:
    """The window labels (column ``_w``) in time order."""
    return shift.drop_duplicates("_w").sort_values("window_start" if "window_start" in shift.columns else "_w")["_w"].tolist()


def _feature_window_axes(ax, features: list, order: list[str]) -> None:
    """Features down, compared windows across (at most 24 labels), both named."""
    n_windows = len(order)
    ax.set_yticks(range(len(features)), features, fontsize=8)
    step = max(1, int(np.ceil(n_windows / 24)))
    ax.set_xticks(range(0, n_windows, step), order[::step], rotation=45 if n_windows > 6 else 0,
                  ha="right" if n_windows > 6 else "center", fontsize=8)
    ax.set_xlabel("compared month (YYYY-MM)" if all(len(w) == 7 for w in order)
                  else "compared window (start, New York local time)")
    ax.set_ylabel("feature")


def _box_alarms(ax, alarm: pd.DataFrame) -> None:
    """A black box around each alarmed (feature, window) cell."""
    for row, column in zip(*np.nonzero(alarm.to_numpy())):
        ax.add_patch(Rectangle((column - 0.45, row - 0.45), 0.9, 0.9, fill=False, edgecolor="black", linewidth=2))


def _annotate_cells(ax, values: pd.DataFrame, text: Callable[[int, int, float], str], vmax: float) -> None:
    """``text(row, column, value)`` in every cell with a value (white on dark cells)."""
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            value = values.iat[row, column]
            if pd.notna(value):
                ax.text(column, row, text(row, column, value), ha="center", va="center", fontsize=6.5,
                        color="white" if value > 0.6 * vmax else "black")


def shift_overview(run: RunTables) -> list[Plot]:
    """One feature x window map over all statistics: the largest value / threshold (1 = at the alarm line)."""
    shift = run["shift"]
    if not run.has("shift", "feature", "value", "threshold", "statistic") or shift["statistic"].nunique() < 2:
        return []
    shift = shift[pd.to_numeric(shift["threshold"], errors="coerce") > 0].copy()
    if shift.empty:
        return []
    shift["_w"] = _window_labels(shift)
    shift["_ratio"] = _num(shift["value"]) / _num(shift["threshold"])
    shift["_a"] = shift["alarm"].fillna(False).astype(bool) if "alarm" in shift.columns else False
    reference = ", ".join(map(str, shift["reference"].unique())) if "reference" in shift.columns else "the reference"
    order = _window_order(shift)
    features = list(dict.fromkeys(shift["feature"].tolist()))
    top = shift.loc[shift.groupby(["feature", "_w"])["_ratio"].idxmax().dropna().to_numpy()]
    ratio = top.pivot(index="feature", columns="_w", values="_ratio").reindex(index=features, columns=order)
    statistic = top.pivot(index="feature", columns="_w", values="statistic").reindex(index=features, columns=order)
    alarm = (shift.groupby(["feature", "_w"])["_a"].max().unstack()
             .reindex(index=features, columns=order).fillna(False).astype(bool))
    n_features, n_windows = ratio.shape
    fig = Figure(figsize=(min(18, max(7, 0.9 * n_windows + 4)), min(14, 0.34 * n_features + 2.0)), layout="constrained")
    ax = fig.subplots()
    finite = np.isfinite(ratio.to_numpy(dtype=float))
    vmax = max(2.0, float(np.nanmax(ratio.to_numpy(dtype=float)))) if finite.any() else 2.0
    image = ax.imshow(np.ma.masked_invalid(ratio.to_numpy(dtype=float)), aspect="auto", cmap="Reds", vmin=0, vmax=vmax,
                      interpolation="nearest")
    _feature_window_axes(ax, features, order)
    _box_alarms(ax, alarm)
    if n_features * n_windows <= 160:
        _annotate_cells(ax, ratio, lambda row, column, value: f"{value:.2f} {statistic.iat[row, column]}", vmax)
    title = f"Shift vs {reference}: largest statistic / its alarm threshold per feature and window (alarms boxed)"
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="value / threshold (1 = alarm line)")
    return [Plot("shift-overview", "shift", title, fig)]


def _shift_heatmap(rows: pd.DataFrame, reference: str, statistic: str, map_index: int) -> Plot:
    """One statistic against one reference: its value per feature and window, alarms boxed."""
    order = _window_order(rows)
    features = list(dict.fromkeys(rows["feature"].tolist()))
    values = (rows.pivot_table(index="feature", columns="_w", values="value", aggfunc="max")
              .reindex(index=features, columns=order))
    alarm = (rows.assign(_a=rows["alarm"].fillna(False).astype(bool))
             .pivot_table(index="feature", columns="_w", values="_a", aggfunc="max")
             .reindex(index=features, columns=order).fillna(False).astype(bool))
    n_features, n_windows = values.shape
    fig = Figure(figsize=(min(18, max(7, 0.45 * n_windows + 3.5)), min(14, 0.32 * n_features + 2.0)), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values.to_numpy(dtype=float)), aspect="auto", cmap="Reds",
                      interpolation="nearest")
    _feature_window_axes(ax, features, order)
    _box_alarms(ax, alarm)
    if n_features * n_windows <= 240:
        finite = np.isfinite(values.to_numpy(dtype=float))
        vmax = np.nanmax(values.to_numpy(dtype=float)) if finite.any() else 1.0
        _annotate_cells(ax, values, lambda row, column, value: f"{value:.3g}", vmax)
    n_alarm = int(alarm.to_numpy().sum())
    title = f"Shift: {statistic} per feature and window vs reference {reference} ({n_alarm} alarms, boxed in black)"
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=f"{statistic} statistic (unitless)")
    return Plot(f"shift-{map_index}", "shift", title, fig)


def shift_heatmaps(run: RunTables, max_maps: int = 12) -> list[Plot]:
    """One map per (reference, statistic), at most `max_maps`."""
    shift = run["shift"]
    if not run.has("shift", "feature", "value") or not ({"window", "window_start"} & set(shift.columns)):
        return []
    shift = shift.copy()
    shift["_w"] = _window_labels(shift)
    for column, default in (("statistic", "statistic"), ("reference", "reference"), ("alarm", False)):
        if column not in shift.columns:
            shift[column] = default
    groups = list(shift.groupby(["reference", "statistic"], sort=False))[:max_maps]
    return [_shift_heatmap(rows, reference, statistic, map_index)
            for map_index, ((reference, statistic), rows) in enumerate(groups)]


def attribution_plot(run: RunTables, top: int = 20) -> list[Plot]:
    attribution = run["attribution"]
    if not run.has("attribution", "feature"):
        return []
    numeric = [c for c in attribution.columns if c != "feature" and pd.api.types.is_numeric_dtype(attribution[c])
           and not pd.api.types.is_bool_dtype(attribution[c]) and "rank" not in c.lower()]
    preferred = [c for c in ("score", "metric_drop_alarm", "spearman") if c in numeric and attribution[c].notna().any()]
    plain = [c for c in numeric if not c.startswith("n_") and attribution[c].notna().any()]
    column = (preferred or plain or [None])[0]
    if column is None:
        return []
    by_feature = attribution.groupby("feature", sort=False)[column].max().dropna().sort_values(ascending=False).head(top)
    if by_feature.empty:
        return []
    fig = Figure(figsize=(8, 0.3 * len(by_feature) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh(by_feature.index.astype(str), by_feature.to_numpy(dtype=float), color="#c44e52")
    ax.invert_yaxis()
    metric = str(attribution["metric"].iloc[0]) if "metric" in attribution.columns else "metric"
    ax.set_xlabel(f"{metric} drop in windows with an alarm vs without (points of {metric})" if column == "metric_drop_alarm"
                  else f"{column} (largest over statistics and windows)")
    ax.set_ylabel("feature")
    title = f"Shift attribution: features ranked by {column}"
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
    staleness = _staleness_source(run)
    if staleness.empty:
        return []
    staleness = staleness.assign(origin=staleness["origin"].astype(str), eval_month=staleness["eval_month"].astype(str))
    f1 = staleness.pivot_table(index="origin", columns="eval_month", values="f1", aggfunc="mean")
    f1 = f1.reindex(index=sorted(f1.index), columns=sorted(f1.columns))
    n_origins, n_months = f1.shape
    fig = Figure(figsize=(min(18, max(7, 0.42 * n_months + 3)), min(14, 0.32 * n_origins + 2.2)), layout="constrained")
    ax = fig.subplots()
    values = f1.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(n_origins), f1.index, fontsize=8)
    step = max(1, int(np.ceil(n_months / 24)))
    ax.set_xticks(range(0, n_months, step), list(f1.columns[::step]), rotation=45, ha="right", fontsize=8)
    if n_origins * n_months <= 240:
        for row in range(n_origins):
            for column in range(n_months):
                if np.isfinite(values[row, column]):
                    ax.text(column, row, f"{values[row, column]:.2f}", ha="center", va="center", fontsize=6.5, color="white")
    ax.set_xlabel("evaluation month (YYYY-MM)")
    ax.set_ylabel("model origin (last training month)")
    title = "Staleness matrix: F1 of each origin's model on every later month"
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="F1 (0-1)")
    return [Plot("staleness", "backtest", title, fig)]


def staleness_curve(run: RunTables) -> list[Plot]:
    staleness = _staleness_source(run)
    if staleness.empty or "model_age_months" not in staleness.columns:
        backtest = run["backtest"]
        if not run.has("backtest", "model_age_months", "f1"):
            return []
        staleness = backtest
    by_age = staleness.groupby("model_age_months")["f1"].agg(["mean", "min", "max", "count"]).reset_index()
    fig = Figure(figsize=(8, 3.4), layout="constrained")
    ax = fig.subplots()
    age = by_age["model_age_months"].to_numpy(dtype=float)
    ax.plot(age, by_age["mean"], "o-", color=_COLORS[0], label="mean over origins")
    ax.fill_between(age, by_age["min"], by_age["max"], color=_COLORS[0], alpha=0.15, label="min-max over origins")
    ax.set_xlabel("model age (months since the last training month)")
    ax.set_ylabel("F1 (0-1)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    title = "Staleness: F1 by model age"
    ax.set_title(title)
    return [Plot("staleness-age", "backtest", title, fig)]


def policy_plot(run: RunTables) -> list[Plot]:
    backtest = run["backtest"]
    if not run.has("backtest", "policy", "eval_month", "f1"):
        return []
    months = sorted(backtest["eval_month"].astype(str).unique())
    position = {month: index for index, month in enumerate(months)}
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.subplots()
    for policy_index, (policy, rows) in enumerate(backtest.groupby("policy", sort=False)):
        rows = rows.sort_values("eval_month")
        color = _COLORS[policy_index % len(_COLORS)]
        at = np.array([position[str(month)] for month in rows["eval_month"]])
        ax.plot(at, _num(rows["f1"]), "-", lw=1.6, color=color, label=str(policy))
        if "retrained" in rows.columns:
            retrained = rows["retrained"].fillna(False).astype(bool).to_numpy()
            ax.plot(at[retrained], _num(rows["f1"])[retrained], "^", ms=7, color=color)
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

    policies = policy_summary(run)
    if policies.empty or not {"train_seconds", "mean_f1"} <= set(policies.columns):
        return []
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    for policy_index, row in enumerate(policies.itertuples(index=False)):
        ax.scatter(row.train_seconds, row.mean_f1, s=50, color=_COLORS[policy_index % len(_COLORS)])
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
    return [plot for build in BUILDERS for plot in build(run)]
