"""The job's comparing checks (``checks.baseline``, ``checks.jumps``): the baseline model a
study scores beside its own, the baseline each backtest fold fits, and the check rows
(:mod:`rapidseval.checks.compare`) from the tables the job already holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..checks.compare import BandSettings, BaselineRule, JumpRule, baseline_rows, jump_rows, season_lag
from ..core.errors import SpecError
from ..core.time import parse_window
from ..io.feature_cache import CachedMonth, read_month_features, write_atomic
from ..metrics import COUNT_COLUMNS
from ..models import fit, make_model, predict_positive_proba
from ..replay import window_counts
from ..spec import JobSpec, ModelSpec
from .cached_features import DAY_COLUMN

__all__ = ["baseline_name", "with_baseline", "study_compare_rows", "FoldBaseline", "fold_baseline",
           "fit_fold_baseline", "fold_baseline_done", "backtest_compare_rows"]


def baseline_name(spec: JobSpec) -> str | None:
    """The baseline model's name in the tables (``baseline_<kind>``), None without ``checks.baseline``."""
    return f"baseline_{spec.checks.baseline.kind}" if spec.checks.baseline is not None else None


def with_baseline(spec: JobSpec, model_specs: list[ModelSpec]) -> list[ModelSpec]:
    """``model_specs`` and, with ``checks.baseline``, the baseline last: its kind with default
    params, trained on the primary's months with the primary's threshold rule (a number, or
    learned the same way on the same months); scored like a shadow model."""
    name = baseline_name(spec)
    if name is None:
        return model_specs
    if any(m.name == name for m in model_specs):
        raise SpecError(f"checks.baseline: the job already has a model named {name!r}; the baseline takes that "
                        "name (rename the model)")
    primary = model_specs[0]
    baseline = ModelSpec(name=name, kind=spec.checks.baseline.kind, params={}, threshold=primary.threshold,
                         train=spec.train_months(primary))
    return [*model_specs, baseline]


def _bands(spec: JobSpec) -> BandSettings:
    rp = spec.evaluation.replay
    if rp is not None and rp.bands is not None:
        return BandSettings(rp.bands.level, rp.bands.replicates, spec.seed)
    return BandSettings(seed=spec.seed)


def study_compare_rows(spec: JobSpec, model_specs: list[ModelSpec], monthly: pd.DataFrame,
                       replay: pd.DataFrame) -> list[dict[str, Any]]:
    """The check rows of ``checks.baseline`` and ``checks.jumps`` of a study: per evaluated
    month outside the model's training months (``monthly``) and per in-period replay window."""
    checks, rp = spec.checks, spec.evaluation.replay
    rows: list[dict[str, Any]] = []
    windows = replay[replay["in_period"]] if not replay.empty else replay
    bands = _bands(spec)

    def months_of(model: ModelSpec) -> pd.DataFrame:
        table = monthly[monthly["model"] == model.name]
        return table[~table["month"].isin(spec.train_months(model))]

    if checks.baseline is not None:
        primary, name = model_specs[0], baseline_name(spec)
        base = next(m for m in model_specs if m.name == name)
        rule = BaselineRule(name, checks.baseline.kind, checks.baseline.metric, checks.baseline.margin,
                            checks.baseline.severity, min_rows=rp.min_window_rows if rp is not None else 1)
        rows += baseline_rows(months_of(primary), months_of(base), rule, model=primary.name, key="month",
                              bands=bands)
        if not windows.empty:
            rows += baseline_rows(windows[windows["model"] == primary.name], windows[windows["model"] == name],
                                  rule, model=primary.name, key="window_start", bands=bands)
    if checks.jumps is not None:
        monthly_rule = _jump_rule(spec, lag=1)
        window_rule = _jump_rule(spec, lag=_window_lag(spec)) if not windows.empty else None
        for i, model in enumerate(model_specs):
            if model.name == baseline_name(spec):  # a yardstick: its own jumps are not judged
                continue
            seeded = BandSettings(bands.level, bands.replicates, spec.seed * 1000 + i)
            rows += jump_rows(months_of(model), monthly_rule, model=model.name, key="month", bands=seeded)
            if not windows.empty:
                rows += jump_rows(windows[windows["model"] == model.name], window_rule, model=model.name,
                                  key="window_start", bands=seeded)
    return rows


def _jump_rule(spec: JobSpec, *, lag: int) -> JumpRule:
    jumps = spec.checks.jumps
    return JumpRule(jumps.metric, jumps.min_rows, jumps.severity, lag=lag, window_rate=jumps.window_rate)


def _window_lag(spec: JobSpec) -> int:
    """``checks.jumps.lag`` of replay windows: as given, or (auto) a week of the replay's windows."""
    lag = spec.checks.jumps.lag
    if lag != "auto":
        return int(lag)
    window = parse_window(spec.evaluation.replay.window)
    return season_lag(window.unit, window.count)


# ---------------------------------------------------------------------------------------
# backtests: a baseline per fold, scored on the fold's horizon beside the fold's model
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FoldBaseline:
    """The baseline each fold fits beside its model (default params, the fold model's threshold)."""

    kind: str
    threshold: float
    seed: int


def fold_baseline(spec: JobSpec) -> FoldBaseline | None:
    """The folds' baseline of a backtest with ``checks.baseline`` (None without)."""
    if spec.checks.baseline is None:
        return None
    if spec.checks.baseline.metric == "roc_auc":
        raise SpecError("checks.baseline.metric: a backtest compares count metrics per month "
                        "(f1, precision, recall, accuracy), not roc_auc")
    return FoldBaseline(spec.checks.baseline.kind, float(spec.model.threshold), spec.seed)


def _score_path(work: str, fold_key: str, baseline: FoldBaseline, entry: CachedMonth) -> Path:
    """Keyed by the fold's model key (its training months, config, backend) and the baseline's
    kind and threshold: a resumed job with another baseline scores it again."""
    return Path(work) / "baseline" / fold_key / f"{baseline.kind}-{baseline.threshold!r}" / f"{entry.key}.parquet"


def fold_baseline_done(baseline: FoldBaseline, work: str, fold_key: str, entries: dict[str, CachedMonth],
                       months) -> bool:
    """Whether the work area holds the baseline's counts of every month in ``months``."""
    return all(_score_path(work, fold_key, baseline, entries[m]).exists() for m in months)


def fit_fold_baseline(baseline: FoldBaseline, train, fold_key: str, entries: dict[str, CachedMonth], months,
                      fspec, be, work: str) -> None:
    """Fit the baseline on the fold's training frame ``train``; write its daily confusion
    counts on each of ``months`` into the work area (on a worker: one thread)."""
    model = make_model(be, baseline.kind, {}, baseline.seed, n_jobs=1)
    fit(model, train[list(fspec.features)], train[fspec.target], be)
    for month in months:
        entry = entries[month]
        frame = read_month_features(entry, be, [*fspec.features, fspec.target, DAY_COLUMN])
        if len(frame):
            proba = predict_positive_proba(model, frame[list(fspec.features)], be)
            counts = window_counts(be.time_us(frame[DAY_COLUMN]), be.asarray(frame[fspec.target]),
                                   proba > baseline.threshold, window="D", xp=be.xp)
        else:
            counts = window_counts(np.zeros(0, "int64"), np.zeros(0), np.zeros(0), window="D")
        write_atomic(_score_path(work, fold_key, baseline, entry), lambda p: counts.to_parquet(p, index=False))


def _month_totals(counts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """month -> daily counts, as one row of summed counts per month."""
    return pd.DataFrame([{"month": m, **{c: int(t[c].sum()) for c in COUNT_COLUMNS}} for m, t in counts.items()],
                        columns=["month", *COUNT_COLUMNS])


def backtest_compare_rows(spec: JobSpec, folds: list[tuple[str, str, list[str]]], counts: Callable,
                          backtest: pd.DataFrame, work: str, entries: dict[str, CachedMonth]) -> list[dict[str, Any]]:
    """The check rows of a backtest: per fold (``(origin, model key, horizon months)``) and
    horizon month, the fold model (``counts((key, month))``: daily counts) against its
    baseline (model ``fold <origin>``); per policy, jumps month to month in ``backtest``."""
    checks, rows = spec.checks, []
    baseline = fold_baseline(spec)
    if baseline is not None:
        cfg = checks.baseline
        rule = BaselineRule(baseline_name(spec), cfg.kind, cfg.metric, cfg.margin, cfg.severity)
        for i, (origin, key, months) in enumerate(folds):
            ours = _month_totals({m: counts((key, m)) for m in months})
            theirs = _month_totals({m: pd.read_parquet(_score_path(work, key, baseline, entries[m])) for m in months})
            rows += baseline_rows(ours, theirs, rule, model=f"fold {origin}", key="month",
                                  bands=BandSettings(seed=spec.seed * 1000 + i))
    if checks.jumps is not None:
        rule = _jump_rule(spec, lag=1)
        for i, (policy, table) in enumerate(backtest.groupby("policy", sort=False)):
            table = table.rename(columns={"eval_month": "month"})[["month", *COUNT_COLUMNS]]
            rows += jump_rows(table, rule, model=str(policy), key="month",
                              bands=BandSettings(seed=spec.seed * 1000 + i))
    return rows
