"""The backtest job: features once, one fit per distinct model, policies replayed over months.

Work is shared: a model is defined by ``(kind, params, seed, threshold,
backend, training months)``, so each fold's model is fitted once and each
``(model, month)`` pair scored once, whichever policies use it.

1. **features**: every month is read, cleaned and featurised once, as a
   Dask task, into the feature cache (:mod:`rapidseval.jobs.cached_features`).
2. **folds** (parallel, one task per origin): fit the origin's model
   (single-threaded on CPU, one single-GPU forest per worker on GPU), score
   it on the origin's ``horizon`` months, write the model, its scores and
   finally a marker into the work area; an interrupted job skips every fold
   with a marker.  When a policy may look at drift, the fold also fits the
   drift reference (a :class:`~rapidseval.shift.ShiftCalculator` on its
   training months' per-day counts) and each scored month gets its drift
   signal beside its scores: the calibration is the costliest step outside
   the forests, and on the client it was serial (at 12 origins x 50k
   rows/month it was ~6 of ~8 client CPU seconds).
3. **policies** (on the client): each policy walks the origins and decides
   to keep or retrain from what was known then (scores and drift signals read
   from the work area); any ``(model, month)`` it needs that no fold scored (a
   static model far past its horizon) is scored in parallel, in rounds, and
   the walk repeated.
4. **tables**: per policy and month, per origin and month (staleness), per
   policy, per fitted model.

:func:`run` is that sequence; each stage is one function below.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pickle
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..backend import get_backend
from ..checks import checks_table
from ..backtest import (BACKTEST_COLUMNS, POLICY_COLUMNS, STALENESS_COLUMNS, DriftSignal, Fold, ModelPlan,
                        Needs, PolicyWalk, backtest_table, daily_table, drift_signal, fit_reference, make_policy,
                        metrics_of_counts, models_table, policy_table, staleness_table, walk_policies)
from ..core.errors import DataError, RapidsEvalError, SpecError
from ..core.time import month_from_index, month_index, months_between
from ..features import FeatureSpec
from ..io.lineage import file_sha256
from ..io.feature_cache import CachedMonth, read_month_features, write_atomic
from ..io.rundir import resolve_run_dir
from ..models import fit, make_model, predict_positive_proba
from ..replay import window_counts
from .cached_features import DAY_COLUMN, build_month, data_check_rows, read_day_counts
from .check_compare import (FoldBaseline, backtest_compare_rows, fit_fold_baseline, fold_baseline,
                            fold_baseline_done)
from .check_data import data_plan
from .check_model import FoldChecks, fold_assertions, fold_check_rows, fold_checks
from .checks import drift_calculator, splitter
from .context import JobContext, stopwatch
from .inputs import feature_spec
from .results import BacktestResult

__all__ = ["run", "BacktestResult", "BACKTEST_COLUMNS", "STALENESS_COLUMNS", "POLICY_COLUMNS"]

@dataclass(frozen=True)
class _ModelConfig:
    """What defines a fold's model besides its training months (and the backend)."""

    kind: str
    params: dict[str, Any]
    seed: int
    threshold: float
    max_train_rows: int | None


@dataclass(frozen=True)
class _MonthToCache:
    """A month the features stage caches: its input's parts and fingerprint."""

    month: str
    parts: list[Any]
    fingerprint: str


# ---------------------------------------------------------------------------------------
# tasks (module level: they are pickled to Dask workers)
# ---------------------------------------------------------------------------------------
def _month_task(item: _MonthToCache, fspec: FeatureSpec, backend_name: str, root: str, data=None) -> CachedMonth:
    return build_month(item.month, item.parts, fspec, backend_name, root=root, fingerprint=item.fingerprint,
                       data=data)


def _score_path(work: str, model_key: str, entry: CachedMonth) -> Path:
    return Path(work) / "scores" / model_key / f"{entry.key}.parquet"


def _scored(work: str, model_key: str, entry: CachedMonth, drift: "_DriftPlan | None") -> bool:
    """Whether (model, month) is done: its scores, and its drift signal when one is wanted."""
    return _score_path(work, model_key, entry).exists() and (
        drift is None or _drift_path(work, model_key, entry, drift).exists())


@dataclass(frozen=True)
class _DriftPlan:
    """How drift signals are computed (None in a job whose policies never look at drift)."""

    spec: Any  # rapidseval.spec.DriftSpec
    features: tuple[str, ...]
    fill_value: float
    kinds: tuple[tuple[str, str], ...] = ()  # (feature, kind) of the job's features.kinds, resolved

    @property
    def tag(self) -> str:
        """Hash of the settings: a resumed job with other drift settings recomputes its signals."""
        text = json.dumps([self.spec.model_dump(mode="json"), self.features, self.fill_value, dict(self.kinds)],
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _drift_path(work: str, model_key: str, entry: CachedMonth, drift: _DriftPlan) -> Path:
    return Path(work) / "scores" / model_key / f"{entry.key}.drift-{drift.tag}.json"


_REFERENCES: dict[tuple[str, str, str], Any] = {}  # (work, model key, drift tag) -> fitted ShiftCalculator
_REFERENCES_LOCK = threading.Lock()


def _reference(work: str, model_key: str, train: list[CachedMonth], drift: _DriftPlan):
    """The model's drift reference, fitted on its training months (kept for the model's next months)."""
    ident = (work, model_key, drift.tag)
    with _REFERENCES_LOCK:
        ref = _REFERENCES.get(ident)
    if ref is None:
        per = [read_day_counts(e, drift.features) for e in train]
        # NumPy on every backend: the counts are small host arrays, and a retraining decision
        # must not depend on the device (a threshold crossed on one backend and not the other
        # would change the whole walk); one thread, as the fold's forest: the workers already
        # use every core, one task each
        calc = drift_calculator(drift.spec, drift.features, fill_value=drift.fill_value, threads=1,
                                kinds=dict(drift.kinds))
        ref = fit_reference(per, calc, label=f"training months {train[0].month}..{train[-1].month}")
        with _REFERENCES_LOCK:
            while len(_REFERENCES) >= 2:  # a worker moves from model to model: keep the latest few
                _REFERENCES.pop(next(iter(_REFERENCES)))
            _REFERENCES[ident] = ref
    return ref


def _signal_to_json(sig: DriftSignal) -> dict[str, Any]:
    return dataclasses.asdict(sig)


def _signal_from_json(d: dict[str, Any]) -> DriftSignal:
    return DriftSignal(**d)


def _score(model, entry: CachedMonth, fspec, be, threshold: float, work: str, model_key: str,
           drift: _DriftPlan | None = None, reference=None) -> pd.DataFrame:
    """Daily confusion counts of ``model`` on a cached month (and the month's drift signal
    against ``reference``); written to the work area, the drift signal first (the scores'
    file marks the pair done)."""
    if drift is not None:
        sig = drift_signal(reference, read_day_counts(entry, drift.features), month=entry.month)
        write_atomic(_drift_path(work, model_key, entry, drift),
                     lambda p: p.write_text(json.dumps(_signal_to_json(sig), sort_keys=True)))

    frame = read_month_features(entry, be, [*fspec.features, fspec.target, DAY_COLUMN])
    if len(frame):
        proba = predict_positive_proba(model, frame[list(fspec.features)], be)
        counts = window_counts(be.time_us(frame[DAY_COLUMN]), be.asarray(frame[fspec.target]),
                               proba > threshold, window="D", xp=be.xp)
    else:
        counts = window_counts(np.zeros(0, "int64"), np.zeros(0), np.zeros(0), window="D")
    write_atomic(_score_path(work, model_key, entry), lambda p: counts.to_parquet(p, index=False))
    return counts


@functools.lru_cache(maxsize=2)
def _load_model(path: str):
    """A fold's model from the work area (rapidseval wrote it; a damaged one is named, with the way out)."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError, TypeError) as exc:
        work = Path(path).parent.parent
        raise DataError(
            f"{path}: cannot load this backtest model ({type(exc).__name__}: {exc}); the file is in rapidseval's "
            f"work area, damaged after it was written: delete {work} (only rapidseval's resumable state) and "
            "re-run the job to refit its folds") from exc


def _fold_done(work: Path, key: str, checks_key: str | None = None) -> dict[str, Any] | None:
    """The record of a fold the work area holds intact, or None (absent, or its model damaged:
    then it is fitted again, since rapidseval wrote it and can write it again; or its model
    checks are not ``checks_key``'s; a job without model checks reuses any intact fold)."""
    marker, model = work / "folds" / f"{key}.json", work / "models" / f"{key}.pkl"
    if not (marker.exists() and model.exists()):
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if checks_key is not None and (record.get("checks") or {}).get("key") != checks_key:
        return None  # model checks: the marker must hold this job's (without checks, any fold will do)
    if "model_sha256" in record and (model.stat().st_size != record.get("model_bytes")
                                     or file_sha256(model) != record["model_sha256"]):
        return None
    return record


@dataclass(frozen=True)
class _FittedFold:
    """What a fold task sends back: its record (also its marker in the work area) and its scores."""

    record: dict[str, Any]
    scores: dict[str, pd.DataFrame]  # horizon month -> daily confusion counts


def _fold_task(plan: ModelPlan, entries: dict[str, CachedMonth], fspec, backend_name: str, model_cfg: _ModelConfig,
               work: str, drift: _DriftPlan | None = None, checks: FoldChecks | None = None,
               baseline: FoldBaseline | None = None) -> _FittedFold:
    """Fit one fold's model (and its drift reference, and its baseline), score its horizon
    months, run its model checks (``checks``: kept in the marker), then write its marker (last)."""
    be = get_backend(backend_name)
    fold = plan.fold
    where = f"fold {fold.origin} (training months {fold.train_start}..{fold.train_end})"
    train = _fold_training_frame(fold, entries, fspec, be, model_cfg, where)
    # folds run in parallel, one single-threaded forest each
    model = make_model(be, model_cfg.kind, model_cfg.params, model_cfg.seed, n_jobs=1)
    with stopwatch() as fitting:
        try:
            fit(model, train[list(fspec.features)], train[fspec.target], be)
        except RapidsEvalError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
    rows = int(len(train))
    if baseline is not None:  # checks.baseline: fitted on the same rows, scored on the same months (work area)
        fit_fold_baseline(baseline, train, plan.key, entries, fold.eval, fspec, be, work)
    blob = pickle.dumps(model, protocol=5)
    write_atomic(Path(work) / "models" / f"{plan.key}.pkl", lambda p: p.write_bytes(blob))
    checked = (checks.run(model, blob, train, model_cfg.threshold, be, origin=fold.origin)
               if checks is not None else None)  # model checks: leakage, assertions, the model file reloaded
    del train
    reference = None
    with stopwatch() as referencing:
        if drift is not None:
            reference = _reference(work, plan.key, [entries[m] for m in fold.train], drift)
    scores = {m: _score(model, entries[m], fspec, be, model_cfg.threshold, work, plan.key, drift, reference)
              for m in fold.eval}
    record = {"key": plan.key, "origin": fold.origin, "train": list(fold.train), "eval": list(fold.eval),
              "train_rows": rows, "train_seconds": fitting.seconds, "backend": be.name,
              "drift_reference_seconds": referencing.seconds if drift is not None else None,
              "model_bytes": len(blob), "model_sha256": hashlib.sha256(blob).hexdigest()}
    if checked is not None:
        record["checks"] = checked
    write_atomic(Path(work) / "folds" / f"{plan.key}.json", lambda p: p.write_text(json.dumps(record)))
    return _FittedFold(record, scores)


def _fold_training_frame(fold: Fold, entries: dict[str, CachedMonth], fspec, be, model_cfg: _ModelConfig, where: str):
    """The fold's training rows from the feature cache (sampled down to ``max_train_rows``)."""
    frames = [read_month_features(entries[m], be, [*fspec.features, fspec.target]) for m in fold.train]
    train = be.xdf.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    del frames
    if len(train) == 0:
        raise RapidsEvalError(f"{where}: no usable training rows after cleaning")
    if model_cfg.max_train_rows is not None and len(train) > model_cfg.max_train_rows:
        train = train.sample(n=model_cfg.max_train_rows, random_state=model_cfg.seed)
    return train


def _fold_baseline_task(plan: ModelPlan, entries: dict[str, CachedMonth], fspec, backend_name: str,
                        model_cfg: _ModelConfig, work: str, baseline: FoldBaseline) -> str:
    """The baseline of a fold the work area holds without it (a resumed job that now has
    ``checks.baseline``): fitted on the fold's training rows, scored on its horizon."""
    be = get_backend(backend_name)
    fold = plan.fold
    where = f"fold {fold.origin} baseline (training months {fold.train_start}..{fold.train_end})"
    train = _fold_training_frame(fold, entries, fspec, be, model_cfg, where)
    fit_fold_baseline(baseline, train, plan.key, entries, fold.eval, fspec, be, work)
    return plan.key


@dataclass(frozen=True)
class _ScoreRequest:
    """A (model, month) pair no fold scored, and the model's training months (its drift reference)."""

    model_key: str
    month: str
    train_months: tuple[str, ...]


def _score_task(request: _ScoreRequest, entries: dict[str, CachedMonth], fspec, backend_name: str, threshold: float,
                work: str, drift: _DriftPlan | None = None) -> pd.DataFrame:
    """Score (and drift-check) one (model, month) pair no fold scored."""
    be = get_backend(backend_name)
    model = _load_model(str(Path(work) / "models" / f"{request.model_key}.pkl"))
    reference = None if drift is None else _reference(work, request.model_key,
                                                      [entries[m] for m in request.train_months], drift)
    return _score(model, entries[request.month], fspec, be, threshold, work, request.model_key, drift, reference)


# ---------------------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------------------
def _model_key(model_cfg: _ModelConfig, backend_name: str, fold: Fold, entries: dict[str, CachedMonth]) -> str:
    ident = {**dataclasses.asdict(model_cfg), "backend": backend_name, "train": [entries[m].key for m in fold.train]}
    text = json.dumps(ident, sort_keys=True, default=str)
    return f"{fold.origin}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _work_dir(spec) -> Path:
    """Where folds leave their results until the run completes: beside a local run
    directory (``.<name>.work``), or under the feature cache for an ``s3://`` output."""
    target = resolve_run_dir(spec.output.dir, spec.name)
    if "://" in target:
        return Path(spec.backtest.cache_dir).expanduser().resolve() / "work" / spec.name
    run_dir = Path(target)
    return run_dir.parent / f".{run_dir.name}.work"


@dataclass(frozen=True)
class _BacktestPlan:
    """What the backtest will do, settled before any input is read."""

    fspec: FeatureSpec
    folds: list[Fold]
    truncated: list[str]  # origins whose horizon the data end cuts
    months: list[str]  # every month a fold reads (from the first training month)
    decisions: list[Callable]  # one per policy
    watched: tuple[str, ...]  # the features drift signals look at
    drift: _DriftPlan | None  # None when no policy may look at drift
    model_cfg: _ModelConfig
    work: Path  # the resumable work area
    cache_root: str  # the feature cache
    checks: FoldChecks | None = None  # the model checks each fold runs (checks.assertions/leakage/consistency)


def _plan_backtest(ctx: JobContext) -> _BacktestPlan:
    """Folds, policies, drift settings and the model: what cannot work fails here, before any read."""
    spec, bt = ctx.spec, ctx.spec.backtest
    fspec = feature_spec(spec)
    watched = tuple(bt.drift.features or fspec.features)
    unknown = [f for f in watched if f not in fspec.features]
    if unknown:
        raise SpecError(f"backtest.drift.features: {', '.join(unknown)} not among the job's features "
                        f"({', '.join(fspec.features)})")
    folds = splitter(bt).folds(spec.data.months)
    truncated = [f.origin for f in folds if f.truncated]
    if truncated:
        ctx.reporter.log(f"horizon {bt.horizon} truncated at the data end ({spec.data.end}) for origin(s) "
                         f"{', '.join(truncated)}")
    first = min(month_index(f.train_start) for f in folds)
    decisions = [make_policy(p.kind, p.params) for p in bt.policies]
    # a drift reference only where a policy reads drift (the built-in static and periodic do not)
    drift = (_DriftPlan(bt.drift, watched, float(fspec.fill_value),
                        tuple((f, k) for f, k in spec.features.feature_kinds().items() if f in watched))
             if any("drift" in decide.reads for decide in decisions) else None)
    model_cfg = _ModelConfig(spec.model.kind, spec.model.params, spec.seed, spec.model.threshold, bt.max_train_rows)
    make_model(ctx.backend, model_cfg.kind, model_cfg.params, model_cfg.seed)  # bad params fail before any read
    return _BacktestPlan(fspec, folds, truncated, [m for m in spec.data.months if month_index(m) >= first],
                         decisions, watched, drift, model_cfg, _work_dir(spec),
                         str(Path(bt.cache_dir).expanduser().resolve()),
                         fold_checks(spec, fspec))  # the assertion set validated before any read


# ---------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------
def run(ctx: JobContext) -> BacktestResult:
    """The backtest of ``ctx``'s validated spec (it has a ``backtest`` section), its run directory claimed."""
    plan = _plan_backtest(ctx)
    baseline = fold_baseline(ctx.spec)  # checks.baseline: one more (cheap) model per fold
    ctx.resolve_inputs(plan.months)
    with ctx.open_executor() as executor:
        entries = _cache_features(ctx, executor, plan)
        folds = _fit_folds(ctx, executor, plan, entries, baseline)
        if baseline is not None:
            _fit_fold_baselines(ctx, executor, plan, entries, folds, baseline)
        with ctx.timed("policies"):
            walked = _walk_policies(ctx, executor, plan, entries, folds)
    with ctx.timed("assemble"):
        tables = _assemble_tables(ctx.spec.backtest, folds, walked)
        if ctx.spec.checks.any:
            tables.update(_check_tables(ctx.spec, plan, entries, folds, walked, tables["backtest"]))
    manifest = ctx.manifest({m: entries[m].stats for m in plan.months})
    manifest["backtest"] = {
        "folds": len(folds.plans), "folds_reused": len(folds.plans) - folds.fitted,
        "scores_extra": walked.scores_extra, "score_rounds": walked.score_rounds,
        "origins": [p.fold.origin for p in folds.plans],
        "truncated_origins": plan.truncated,
        "feature_cache": {"dir": plan.cache_root, "months": len(entries), "reused": sum(e.hit for e in entries.values())},
        "models_fitted": folds.fitted,
        "drift_signals": plan.drift is not None,
        "day_time_column": DAY_COLUMN,
    }
    run_dir = ctx.write(manifest, tables)
    shutil.rmtree(plan.work, ignore_errors=True)  # the run is complete: nothing left to resume
    return BacktestResult(ctx.spec, run_dir, manifest, ctx.timings, backtest=tables["backtest"],
                          staleness=tables["staleness"], policies=tables["policies"], models=tables["models"],
                          checks=tables.get("checks", pd.DataFrame()))


# -- 1. features, once per month ---------------------------------------------------------------
def _cache_features(ctx: JobContext, executor, plan: _BacktestPlan) -> dict[str, CachedMonth]:
    """month -> its feature cache entry (built on the workers where missing)."""
    entries: dict[str, CachedMonth] = {}
    items = [_MonthToCache(m, ctx.inputs[m].parts, ctx.inputs[m].info.fingerprint) for m in plan.months]
    with ctx.timed("features"):
        with ctx.reporter.stage("features (cached)", total=len(items)) as stage:
            data = data_plan(ctx.spec, plan.fspec, windows=False)[0]  # checks.data, counted as months are read
            for i, entry in executor.map_unordered(_month_task, items, plan.fspec, ctx.backend.name, plan.cache_root,
                                                   data):
                entries[plan.months[i]] = entry
                stage.advance()
    hits = sum(e.hit for e in entries.values())
    ctx.reporter.log(f"feature cache {plan.cache_root}: {hits} of {len(entries)} months reused")
    return entries


# -- 2. folds: one fit per distinct model, scored on its horizon -----------------------------
@dataclass
class _Folds:
    """Every fold's model: its plan, its record, the scores its fit computed, how many were fitted now."""

    plans: list[ModelPlan]
    records: dict[str, dict[str, Any]]
    scores: dict[tuple[str, str], pd.DataFrame]  # (model key, month) -> daily counts
    fitted: int


def _fit_folds(ctx: JobContext, executor, plan: _BacktestPlan, entries: dict[str, CachedMonth],
               baseline: FoldBaseline | None = None) -> _Folds:
    """Fit (in parallel) every fold the work area does not hold intact; reuse the others."""
    with ctx.timed("folds"):
        plans = [ModelPlan(_model_key(plan.model_cfg, ctx.backend.name, f, entries), f) for f in plan.folds]
        folds = _Folds(plans, {}, {}, 0)
        todo = _folds_to_fit(ctx, plan.work, folds, plan.checks.key if plan.checks is not None else None)
        folds.fitted = len(todo)
        with ctx.reporter.stage(f"folds ({len(todo)} to fit)", total=len(todo)) as stage:
            for _, fitted in executor.map_unordered(_fold_task, todo, entries, plan.fspec, ctx.backend.name,
                                                    plan.model_cfg, str(plan.work), plan.drift, plan.checks,
                                                    baseline):
                record = fitted.record
                folds.records[record["key"]] = record
                # not read back from disk
                folds.scores.update({(record["key"], m): c for m, c in fitted.scores.items()})
                ctx.reporter.log(f"fold {record['origin']}: trained on {record['train'][0]}..{record['train'][-1]} "
                                 f"({record['train_rows']:,} rows) in {record['train_seconds']:.1f} s")
                stage.advance()
    return folds


def _fit_fold_baselines(ctx: JobContext, executor, plan: _BacktestPlan, entries: dict[str, CachedMonth],
                        folds: _Folds, baseline: FoldBaseline) -> None:
    """Fit the baseline of every fold whose baseline scores the work area lacks (folds fitted
    now scored theirs in the fold task; a resumed fold may not have)."""
    work = str(plan.work)
    todo = [p for p in folds.plans if not fold_baseline_done(baseline, work, p.key, entries, p.fold.eval)]
    if not todo:
        return
    with ctx.timed("folds"), ctx.reporter.stage(f"baselines ({len(todo)} folds)", total=len(todo)) as stage:
        for _ in executor.map_unordered(_fold_baseline_task, todo, entries, plan.fspec, ctx.backend.name,
                                        plan.model_cfg, work, baseline):
            stage.advance()


def _folds_to_fit(ctx: JobContext, work: Path, folds: _Folds, checks_key: str | None = None) -> list[ModelPlan]:
    """The folds the work area lacks (or holds damaged, or without this job's model checks,
    ``checks_key``); the records of the others go into ``folds``."""
    todo, damaged = [], []
    for plan in folds.plans:
        record = _fold_done(work, plan.key, checks_key)
        if record is not None:
            folds.records[plan.key] = record
        else:
            todo.append(plan)
            if (work / "folds" / f"{plan.key}.json").exists():
                damaged.append(plan.fold.origin)
    if damaged:
        ctx.reporter.log(f"work area {work}: fold(s) {', '.join(damaged)} damaged since written; fitting them again")
    if folds.records:
        ctx.reporter.log(f"resuming: {len(folds.records)} of {len(folds.plans)} folds already done in {work}")
    return todo


# -- 3. policies: walk the origins; score what they need that no fold did -------------------
@dataclass
class _Walked:
    """What the policy walks left: the finished walks and the evidence the tables read."""

    walks: list[PolicyWalk]
    evidence: "_WorkAreaEvidence"
    truth_known: bool  # generated data: drift triggers checked against the ground truth
    scores_extra: int  # (model, month) pairs scored beyond the folds' horizons
    score_rounds: int


class _WorkAreaEvidence:
    """What the job knows of (model, month) pairs: scores and drift signals in the work area
    (or just computed), read once each (:class:`rapidseval.backtest.Evidence`)."""

    def __init__(self, work: Path, entries: dict[str, CachedMonth], drift_plan: "_DriftPlan | None",
                 scores: dict[tuple[str, str], pd.DataFrame], known: set):
        self.work, self.entries, self.drift_plan = work, entries, drift_plan
        self.scores = scores  # (model key, month) -> daily counts
        self.known = known  # pairs scored (with their drift signal where one is wanted)
        self._metrics: dict[tuple[str, str], dict[str, Any]] = {}
        self._signals: dict[tuple[str, str], DriftSignal] = {}

    def has_scores(self, pair) -> bool:
        return tuple(pair) in self.known

    def has_drift(self, pair) -> bool:
        return self.drift_plan is not None and tuple(pair) in self.known

    def counts(self, pair) -> pd.DataFrame:
        pair = tuple(pair)
        if pair not in self.scores:
            self.scores[pair] = pd.read_parquet(_score_path(str(self.work), pair[0], self.entries[pair[1]]))
        return self.scores[pair]

    def metrics(self, pair) -> dict[str, Any]:
        pair = tuple(pair)
        if pair not in self._metrics:
            self._metrics[pair] = metrics_of_counts(self.counts(pair))
        return self._metrics[pair]

    def drift(self, pair) -> DriftSignal:
        """The calibrated drift signal of the month against the model's training months
        (computed on the workers beside the scores)."""
        pair = tuple(pair)
        if pair not in self._signals:
            path = _drift_path(str(self.work), pair[0], self.entries[pair[1]], self.drift_plan)
            self._signals[pair] = _signal_from_json(json.loads(path.read_text()))
        return self._signals[pair]


def _prefetch_block(needs: Needs, plans: list[ModelPlan], horizon: int, last_month: str, known) -> set:
    """The pairs to score for ``needs``: a decision will likely look further ahead, so each
    needed month comes with a block of the model's next months, as long as the model has lived
    already (at least the horizon): a model that stays for L months costs log2(L / horizon)
    rounds, not L / horizon (each round ends in a barrier that idles workers), and the scores
    of months it no longer governs are at most as many as those it used."""
    by_key = {plan.key: plan for plan in plans}
    last = month_index(last_month)
    wanted = set()
    for key, month in needs.pairs:
        block = max(horizon, months_between(by_key[key].fold.origin, month))
        wanted.add((key, month))
        for j in range(month_index(month) + 1, min(month_index(month) + block, last + 1)):
            wanted.add((key, month_from_index(j)))
    return wanted - set(known)


def _walk_policies(ctx: JobContext, executor, plan: _BacktestPlan, entries: dict[str, CachedMonth],
                   folds: _Folds) -> _Walked:
    """Walk every policy over the origins (:func:`rapidseval.backtest.walk_policies`, a
    request/resolve loop); score on the workers, in rounds, what the walks need that no fold did."""
    spec, bt = ctx.spec, ctx.spec.backtest
    work = str(plan.work)
    known = {(p.key, m) for p in folds.plans for m in plan.months if _scored(work, p.key, entries[m], plan.drift)}
    evidence = _WorkAreaEvidence(plan.work, entries, plan.drift, folds.scores, known)
    by_key = {p.key: p for p in folds.plans}
    rounds = {"scores_extra": 0, "score_rounds": 0}

    def resolve(pairs) -> None:
        pairs = sorted(pairs)
        rounds["score_rounds"] += 1
        rounds["scores_extra"] += len(pairs)
        items = [_ScoreRequest(key, month, tuple(by_key[key].fold.train)) for key, month in pairs]
        for i, counts in executor.map_unordered(_score_task, items, entries, plan.fspec, ctx.backend.name,
                                                spec.model.threshold, work, plan.drift):
            folds.scores[pairs[i]] = counts
            known.add(pairs[i])

    # the staleness grid: every fold on its horizon (a resumed fold may lack a newer horizon's months)
    first_round = {(p.key, m) for p in folds.plans for m in p.fold.eval} - known
    if first_round:
        resolve(first_round)
    truth = _ground_truth(spec, plan.watched)
    walks = [PolicyWalk(p.label, decide, folds.plans, metric=bt.metric, floor=bt.floor, label_delay=bt.label_delay,
                        truth=truth) for p, decide in zip(bt.policies, plan.decisions)]
    with ctx.reporter.stage("policies", total=len(walks)) as stage:
        walk_policies(walks, evidence,
                      lambda needs: resolve(_prefetch_block(needs, folds.plans, bt.horizon, plan.months[-1], known)),
                      on_finished=lambda walk: stage.advance())
    return _Walked(walks, evidence, truth is not None, rounds["scores_extra"], rounds["score_rounds"])


# -- 4. tables -------------------------------------------------------------------------------
def _assemble_tables(bt, folds: _Folds, walked: _Walked) -> dict[str, pd.DataFrame]:
    """name -> table, as the run directory holds them."""
    evidence = walked.evidence
    backtest = backtest_table(walked.walks, evidence.metrics, metric=bt.metric, floor=bt.floor,
                              train_seconds={key: record["train_seconds"] for key, record in folds.records.items()})
    tables = {"backtest": backtest, "staleness": staleness_table(folds.plans, evidence.metrics),
              "policies": policy_table({p.label: p.kind for p in bt.policies}, backtest, metric=bt.metric,
                                       floor=bt.floor, truth_known=walked.truth_known),
              "models": _models_table(folds)}
    if bt.daily:
        tables["backtest_daily"] = daily_table(walked.walks, evidence.counts)
    return tables


def _check_tables(spec, plan: _BacktestPlan, entries: dict[str, CachedMonth], folds: _Folds, walked: _Walked,
                  backtest: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``checks``: the data rows (per rule and month, from the counts kept beside the cached
    months), the folds' model checks (from their markers), the baseline per fold and month and
    the jumps per policy; and ``assertions`` (the failing rows) with an assertion set."""
    records = [folds.records[p.key] for p in folds.plans]
    rows = [*data_check_rows(spec, plan.fspec, entries), *fold_check_rows(records, plan.checks),
            *backtest_compare_rows(spec, [(p.fold.origin, p.key, list(p.fold.eval)) for p in folds.plans],
                                   walked.evidence.counts, backtest, str(plan.work), entries)]
    return {"checks": checks_table(rows), **fold_assertions(records, plan.checks)}


def _models_table(folds: _Folds) -> pd.DataFrame:
    """One row per fitted model (:func:`rapidseval.backtest.models_table`), in origin order."""
    by_key = {p.key: p for p in folds.plans}
    keys = sorted(folds.records, key=lambda k: folds.records[k]["origin"])
    return models_table([by_key[k] for k in keys], train_rows={k: folds.records[k]["train_rows"] for k in keys},
                        train_seconds={k: folds.records[k]["train_seconds"] for k in keys})


def _ground_truth(spec, watched):
    """``truth(train_months, month) -> bool`` for generated data (None otherwise): whether the
    generator's ground truth changes something in a watched feature between the model's
    training months and ``month``, the month whose drift signal triggered a retrain.

    A month's state under a change is ``none``, ``all`` (every day after its start) or
    ``part`` (the change starts inside it); the trigger is true when the month's state differs
    from a training month's, or either is ``part``.  Beside the scenario's changes
    (``ground_truth.json``), the generator's calendar changes one thing in every scenario:
    the share of rows with missing codes (none before mid-2019, then a yearly level,
    :func:`~rapidseval.data.synthetic.missing_code_rate`); a month whose share differs from a
    training month's differs in those features.
    """
    if spec.data.source != "synthetic":
        return None
    from ..data.synthetic import MISSING_CODE_FEATURES, SCENARIOS, missing_code_rate

    syn = spec.data.synthetic
    changes = [c for c in SCENARIOS[syn.scenario].changes(spec.data.months, syn.scenario_month)
               if set(c.get("features") or ()) & set(watched)]

    def state(change, month):
        if month not in change["months"]:
            return "none"
        return "part" if change["from"][:7] == month and change["from"][8:10] != "01" else "all"

    codes_watched = bool(set(MISSING_CODE_FEATURES) & set(watched))

    def truth(train, month):
        if codes_watched and any(round(missing_code_rate(t), 9) != round(missing_code_rate(month), 9) for t in train):
            return True
        for c in changes:
            s = state(c, month)
            if any(state(c, t) != s or s == "part" or state(c, t) == "part" for t in train):
                return True
        return False

    return truth
