"""The study job: read and train, learn thresholds, score and reduce every month, assemble the tables.

Data flows one way.  Each month is split into parts (groups of Parquet row
groups); every part is read, cleaned and featurised *where it runs* (a Dask
worker), scored by the broadcast models and reduced to small tables (row
accounting, confusion counts per window, exact value counts for shift); only
those travel back.  The training months are the only data gathered to the
client, because the forests are fitted there.

:func:`run` is the sequence of stages; each stage is one function below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..backend import get_backend
from ..checks import checks_table
from ..checks.data import DataAccumulator, DataReduce
from ..checks.slices import SliceAccumulator, SliceReduce
from ..core.errors import DataError, RapidsEvalError
from ..core.time import US_PER_HOUR, PeriodWindows, month_bounds, parse_delay_hours, parse_window, period_windows
from ..features import FeatureSpec, PartStats
from ..io.sources import redact_uri
from ..metrics import COUNT_COLUMNS, add_metrics, learn_threshold
from ..models import fit, make_model, predict_positive_proba, set_threads
from ..replay import ScoreSummary, merge_summaries, pooled_metrics, replay_frame, summarize_scores
from ..shift import SHIFT_COLUMNS, ShiftAccumulator, ShiftReduce, attribute
from ..spec import JobSpec
from .check_compare import baseline_name, study_compare_rows, with_baseline
from .cached_features import read_prepared
from .check_data import data_plan
from .check_model import ModelChecks, model_checks
from .check_slices import slice_plan
from .checks import shift_calculator
from .context import JobContext
from .inputs import feature_spec, input_months
from .results import StudyResult

__all__ = ["run", "StudyResult"]


# ---------------------------------------------------------------------------------------
# tasks (module level: they are pickled to Dask workers)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ScoredPart:
    """A part read, featurised and scored: the frame, its row accounting, P(y=1) per model."""

    frame: Any
    stats: PartStats
    probas: list[Any]
    raw: Any = None  # the canonical columns as read, kept only for the data checks


@dataclass(frozen=True)
class _ScoreCounts:
    """Exact counts of (score, label) pairs of validation rows, sorted by score."""

    scores: np.ndarray
    labels: np.ndarray
    counts: np.ndarray


@dataclass
class _PartResult:
    """What a worker sends back for one part: row accounting, one score summary per model and
    (when the job compares shift) the part's value counts per day."""

    stats: PartStats
    summaries: list[ScoreSummary]
    shift: dict[str, Any] | None = None
    data: Any = None    # the data checks' counts (checks.data.DataCounts), None without data checks
    slices: Any = None  # the slices' counts (checks.slices.SliceCounts), None without slices


@dataclass(frozen=True)
class _PartChecks:
    """What the score pass reduces per part besides scores and shift (None: nothing)."""

    data: DataReduce | None = None
    slices: SliceReduce | None = None
    slice_months: frozenset[str] = frozenset()  # slices judge held-out months only (never a training month)
    slice_models: tuple[int, ...] = ()  # the models sliced: the job's own (not the baseline)

    def read_columns(self) -> tuple[str, ...]:
        return self.data.read_columns() if self.data is not None else ()


def _load_features(part, fspec: FeatureSpec, backend_name: str):
    return read_prepared(part, fspec, get_backend(backend_name))[1:]


def _score(part, fspec: FeatureSpec, backend_name: str, models, checks: _PartChecks | None = None) -> _ScoredPart:
    """Read, featurise and score one part."""
    backend = get_backend(backend_name)
    raw, frame, stats = read_prepared(part, fspec, backend, checks.read_columns() if checks else ())
    try:
        probas = [predict_positive_proba(m, frame[list(fspec.features)], backend) if len(frame)
                  else backend.xp.zeros(0) for m in models]
    except ValueError as exc:  # e.g. a feature beyond float32 ("Input X contains infinity")
        raise DataError(f"{redact_uri(part.uri)} ({part.month}): cannot score its rows: {exc} "
                        "(a feature value beyond what the model takes, e.g. a distance of 1e39?)") from exc
    return _ScoredPart(frame, stats, probas, raw if checks is not None and checks.data is not None else None)


def _threshold_part(part, fspec: FeatureSpec, backend_name: str, models) -> list[_ScoreCounts]:
    """Exact (score, label) counts of one validation part, per model."""
    backend = get_backend(backend_name)
    scored = _score(part, fspec, backend_name, models)
    frame, xp = scored.frame, backend.xp
    labels = backend.asarray(frame[fspec.target]).astype("int8") if len(frame) else xp.zeros(0, "int8")
    out = []
    for proba in scored.probas:
        summary = summarize_scores(xp.zeros(len(proba), "int64"), labels, proba, threshold=0.5, window="M",
                                   exact=True, xp=xp)
        out.append(_ScoreCounts(summary.exact.score, summary.exact.label, summary.exact.count))
    return out


def _evaluate_part(part, fspec: FeatureSpec, backend_name: str, models, thresholds, score_opts: dict[str, Any],
                   time_column: str, shift: ShiftReduce | None, checks: _PartChecks | None = None) -> _PartResult:
    backend = get_backend(backend_name)
    scored = _score(part, fspec, backend_name, models, checks)
    frame, xp = scored.frame, backend.xp
    if len(frame):
        t_us = backend.time_us(frame[time_column])
        y_true = backend.asarray(frame[fspec.target])
    else:
        t_us, y_true = xp.zeros(0, "int64"), xp.zeros(0, "int8")
    summaries = [summarize_scores(t_us, y_true, proba, threshold=threshold, xp=xp, **score_opts)
                 for proba, threshold in zip(scored.probas, thresholds)]
    # exact counts per (day, value) of every feature, host arrays
    result = _PartResult(scored.stats, summaries, shift(frame, backend) if shift is not None else None)
    if checks is not None and checks.data is not None:
        result.data = checks.data.reduce(scored.raw, frame, month=part.month, backend=backend)
    if checks is not None and checks.slices is not None and part.month in checks.slice_months:
        sliced = checks.slice_models
        result.slices = checks.slices.reduce(frame, [scored.probas[i] for i in sliced],
                                             [thresholds[i] for i in sliced], backend=backend, month=part.month)
    return result


# ---------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------
def run(ctx: JobContext) -> StudyResult:
    """The study (train, thresholds, replay, shift) of ``ctx``'s validated spec, its run directory claimed."""
    spec = ctx.spec
    fspec = feature_spec(spec)
    model_specs = with_baseline(spec, spec.model_specs())  # checks.baseline: one more model, scored like a shadow
    months = input_months(spec)
    model_check = model_checks(spec, fspec)  # checks.assertions/leakage/consistency: the set validated now
    ctx.resolve_inputs(months)
    with ctx.open_executor() as executor:
        trained = _train_models(ctx, executor, fspec, model_specs, model_check)
        if ctx.backend.name == "cpu":  # fitted on every core, scored inside workers: one part per thread
            for model in trained.models:
                set_threads(model, 1)
        shared_models = executor.share(trained.models)
        thresholds = _learn_thresholds(ctx, executor, fspec, trained, model_specs)
        if model_check is not None:  # -- model checks: every trained model scores the assertion set, ...
            with ctx.timed("checks"):
                judged = _judged(spec, model_specs)
                model_check.on_models([model_specs[i].name for i in judged], [trained.models[i] for i in judged],
                                      [thresholds[i] for i in judged], ctx.backend)
        scored = _score_months(ctx, executor, fspec, shared_models, thresholds, months, model_specs)
    with ctx.timed("assemble"):
        tables = _assemble_tables(spec, fspec, model_specs, thresholds, scored)
        if tables.check_rows is not None:  # data and slices (the score pass), the models, the comparisons
            model_rows = model_check.check_rows if model_check is not None else []
            tables.checks = checks_table([*tables.check_rows, *model_rows,
                                          *study_compare_rows(spec, model_specs, tables.monthly, tables.replay)])
        model_tables = model_check.tables() if model_check is not None else {}
    manifest = ctx.manifest(tables.stats)
    manifest["models"] = [{"name": m.name, "kind": m.kind, **info} for m, info in zip(model_specs, trained.fit_info)]
    if tables.replay_summary:
        manifest["replay_summary"] = tables.replay_summary
    run_dir = ctx.write(manifest, {**tables.to_write(), **model_tables},
                        files=model_check.files if model_check is not None else None)
    return StudyResult(spec, run_dir, manifest, ctx.timings, monthly=tables.monthly, replay=tables.replay,
                       shift=tables.shift, attribution=tables.attribution,
                       explain=tables.explain if tables.explain is not None else pd.DataFrame(),
                       checks=tables.checks if tables.checks is not None else pd.DataFrame(),
                       slices=tables.slices if tables.slices is not None else pd.DataFrame(),
                       models=trained.models)


# -- read + train ------------------------------------------------------------------------
@dataclass
class _Trained:
    """The job's models, fitted, and what each fit was (the manifest's ``models`` records)."""

    models: list[Any]
    fit_info: list[dict[str, Any]]


def _train_models(ctx: JobContext, executor, fspec: FeatureSpec, model_specs,
                  model_check: ModelChecks | None = None) -> _Trained:
    """Every model fitted, each training set read once; the models and what their fits were
    (``model_check`` sees each training frame before it is dropped: leakage, consistency sample)."""
    spec = ctx.spec
    models = [make_model(ctx.backend, m.kind, m.params, spec.seed) for m in model_specs]  # bad params fail first
    fit_info: list[dict[str, Any]] = [{} for _ in model_specs]
    by_train: dict[tuple[str, ...], list[int]] = {}
    for i, model_spec in enumerate(model_specs):
        by_train.setdefault(tuple(spec.train_months(model_spec)), []).append(i)
    for train_months, indices in by_train.items():
        with ctx.timed("read_train"):
            train = _read_training_frame(ctx, executor, fspec, train_months)
        for i in indices:
            fit_info[i] = _fit_model(ctx, models[i], model_specs[i].name, train, train_months, fspec)
        if model_check is not None:
            with ctx.timed("checks"):
                judged = set(_judged(spec, model_specs))
                model_check.on_training_frame(train, train_months, [model_specs[i].name for i in indices
                                                                    if i in judged], ctx.backend)
        del train
    return _Trained(models, fit_info)


def _read_training_frame(ctx: JobContext, executor, fspec: FeatureSpec, train_months: tuple[str, ...]):
    """The prepared rows of ``train_months``, gathered on the client (in part order)."""
    parts = ctx.parts(train_months)
    frames: list[Any] = [None] * len(parts)
    label = train_months[0] + (f"..{train_months[-1]}" if len(train_months) > 1 else "")
    with ctx.reporter.stage(f"read training data {label}", total=len(parts), unit="part",
                            items={m: len(ctx.inputs[m].parts) for m in train_months}) as stage:
        for i, (frame, _stats) in executor.map_unordered(_load_features, parts, fspec, ctx.backend.name):
            frames[i] = frame
            stage.advance(item=parts[i].month)
    train = ctx.backend.xdf.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(train) == 0:
        raise RapidsEvalError(f"no usable training rows in {', '.join(train_months)} after cleaning")
    return train


def _fit_model(ctx: JobContext, model, name: str, train, train_months, fspec: FeatureSpec) -> dict[str, Any]:
    """Fit ``model`` on ``train``; return the manifest's record of the fit."""
    with ctx.timed("train") as clock:
        with ctx.reporter.stage(f"train {name} ({len(train):,} rows)", total=1) as stage:
            try:
                fit(model, train[list(fspec.features)], train[fspec.target], ctx.backend)
            except DataError:
                raise
            except ValueError as exc:
                raise DataError(f"cannot train {name} on {', '.join(train_months)}: {exc} "
                                "(a feature value beyond what the model takes, e.g. a distance of 1e39?)") from exc
            stage.advance()
    return {"train_months": list(train_months), "train_rows": int(len(train)), "train_seconds": round(clock.seconds, 3)}


# -- thresholds ------------------------------------------------------------------------------
def _learn_thresholds(ctx: JobContext, executor, fspec: FeatureSpec, trained: _Trained, model_specs) -> list[float]:
    """Each model's threshold: as given, or learned on its validation months (then frozen);
    recorded in ``trained.fit_info``."""
    fit_info = trained.fit_info
    thresholds = [m.threshold if isinstance(m.threshold, float) else None for m in model_specs]
    to_learn = [i for i, t in enumerate(thresholds) if t is None]
    if to_learn:
        with ctx.timed("learn_threshold"):
            for i in to_learn:
                learned = _learn_threshold(ctx, executor, fspec, trained.models[i], model_specs[i])
                thresholds[i] = learned["threshold"]
                fit_info[i]["threshold_learned"] = learned
    for i, threshold in enumerate(thresholds):
        fit_info[i]["threshold"] = threshold
    return thresholds


def _learn_threshold(ctx: JobContext, executor, fspec: FeatureSpec, model, model_spec) -> dict[str, Any]:
    """The threshold ``model_spec.threshold`` learns on its months, with how it was learned."""
    months = ctx.spec.threshold_months(model_spec)
    parts = ctx.parts(months)
    pieces: list[_ScoreCounts] = []
    with ctx.reporter.stage(f"learn threshold {model_spec.name}", total=len(parts)) as stage:
        for _, per_model in executor.map_unordered(_threshold_part, parts, fspec, ctx.backend.name,
                                                   executor.share([model])):
            pieces.append(per_model[0])
            stage.advance()
    rule = model_spec.threshold
    try:
        learned = learn_threshold(np.concatenate([p.scores for p in pieces]),
                                  np.concatenate([p.labels for p in pieces]),
                                  np.concatenate([p.counts for p in pieces]), how=rule.learn, target=rule.target)
    except ValueError as exc:
        raise RapidsEvalError(f"{model_spec.name}: threshold on {', '.join(months)}: {exc}") from exc
    return {"rule": rule.learn, "target": rule.target, "months": months, **learned}


# -- score + reduce --------------------------------------------------------------------------
@dataclass
class _Scored:
    """Every month scored: month -> its parts' results (in part order), and the shift
    accumulator (None without shift) that merged their value counts."""

    per_month: dict[str, list[_PartResult]]
    shift: ShiftAccumulator | None
    data: DataAccumulator | None = None
    slices: SliceAccumulator | None = None


def _score_months(ctx: JobContext, executor, fspec: FeatureSpec, shared_models, thresholds: list[float],
                  months: list[str], model_specs) -> _Scored:
    """Every month scored and reduced on the workers."""
    spec, ev = ctx.spec, ctx.spec.evaluation
    replay = ev.replay
    time_column = replay.time_column if replay is not None else "dropoff_datetime"
    score_opts = {"window": replay.window if replay is not None else "D",
                  "bins": replay.score_bins if replay else 1000, "exact": bool(replay and replay.auc == "exact")}
    with ctx.timed("score_reduce"):
        parts = ctx.parts(months)
        shift_reduce, shift_acc = _shift_plan(spec, fspec, ctx.inputs, ctx.backend.xp)
        data_reduce, data_acc = data_plan(spec, fspec)
        judged = _judged(spec, model_specs)
        slice_reduce, slice_acc = slice_plan(spec, fspec, [model_specs[i].name for i in judged])
        checks = (_PartChecks(data_reduce, slice_reduce, frozenset(_held_out_months(spec, model_specs)), tuple(judged))
                  if data_reduce is not None or slice_reduce is not None else None)
        results: dict[str, list[tuple[int, _PartResult]]] = {m: [] for m in months}
        with ctx.reporter.stage("score + reduce", total=len(parts), unit="part",
                                items={m: len(ctx.inputs[m].parts) for m in months}) as stage:
            for i, result in executor.map_unordered(_evaluate_part, parts, fspec, ctx.backend.name, shared_models,
                                                    thresholds, score_opts, time_column, shift_reduce, checks):
                if shift_acc is not None:  # merged and compared month by month, then dropped
                    shift_acc.add(parts[i].month, result.shift)
                    result.shift = None
                if data_acc is not None:
                    data_acc.add(parts[i].month, result.data)
                    result.data = None
                if slice_acc is not None and result.slices is not None:
                    slice_acc.add(result.slices)
                    result.slices = None
                results[parts[i].month].append((parts[i].index, result))
                stage.advance(item=parts[i].month)
        in_order = {m: [r for _, r in sorted(results[m], key=lambda x: x[0])] for m in months}
    return _Scored(in_order, shift_acc, data_acc, slice_acc)


def _judged(spec: JobSpec, model_specs) -> list[int]:
    """The indices of the models the checks judge: every model but the baseline, a yardstick
    (it keeps its rows in monthly and replay and is judged against in the ``baseline`` rows)."""
    baseline = baseline_name(spec)
    return [i for i, m in enumerate(model_specs) if m.name != baseline]


def _held_out_months(spec: JobSpec, model_specs) -> list[str]:
    """The evaluated months no model trains on: test, score and replay months (slices are
    judged there only; in-sample metrics flatter every slice)."""
    trained = {m for ms in model_specs for m in spec.train_months(ms)}
    return [m for m in spec.eval_months() if m not in trained]


def _shift_plan(spec, fspec, inputs, xp=None):
    """The workers' reduction and the host's month-by-month accumulator (None, None without shift)."""
    sh = spec.evaluation.shift
    if sh is None:
        return None, None
    months = {sh.reference, *sh.compare}
    acc = ShiftAccumulator(shift_calculator(sh, fspec.features, fill_value=fspec.fill_value, xp=xp,
                                            kinds=spec.features.feature_kinds()),
                           sh.reference, list(sh.compare),
                           {m: len(inputs[m].parts) for m in months})
    return ShiftReduce(tuple(fspec.features), sh.time_column), acc


# -- assemble tables on the host ------------------------------------------------------------
@dataclass
class _StudyTables:
    """The study's tables and what the manifest takes from them."""

    stats: dict[str, PartStats]
    monthly: pd.DataFrame
    replay: pd.DataFrame
    replay_summary: dict[str, Any]
    shift: pd.DataFrame
    attribution: pd.DataFrame
    explain: pd.DataFrame | None = None  # written whenever the run compared shift, even without alarms
    check_rows: list[dict[str, Any]] | None = None  # the score pass's (data, slices); None: no checks, no slices
    checks: pd.DataFrame | None = None  # every check row (checks.parquet), made by run()
    slices: pd.DataFrame | None = None  # written when the job has evaluation.slices

    def to_write(self) -> dict[str, pd.DataFrame]:
        """name -> table, as the run directory holds them."""
        tables = {"monthly": self.monthly, "replay": self.replay, "shift": self.shift}
        if self.checks is not None:
            tables["checks"] = self.checks
        if self.slices is not None:
            tables["slices"] = self.slices
        if self.explain is not None:
            tables["explain"] = self.explain
        if not self.attribution.empty:
            tables["attribution"] = self.attribution
        return tables


def _assemble_tables(spec: JobSpec, fspec: FeatureSpec, model_specs, thresholds, scored: _Scored) -> _StudyTables:
    stats: dict[str, PartStats] = {}
    summaries: dict[str, list[ScoreSummary]] = {}
    shift_acc = scored.shift
    for month, results in scored.per_month.items():
        total = PartStats()
        for result in results:
            total = total.merge(result.stats)
        stats[month] = total
        summaries[month] = [merge_summaries([r.summaries[i] for r in results]) for i in range(len(model_specs))]
    monthly = _monthly_table(spec, model_specs, thresholds, spec.evaluated_months(), stats, summaries)
    replay, replay_summary = _replay_table(spec, fspec, model_specs, thresholds, summaries)
    shift = shift_acc.table() if shift_acc is not None else pd.DataFrame(columns=SHIFT_COLUMNS)
    check_rows = []
    if scored.data is not None:
        check_rows += scored.data.rows()
    if scored.slices is not None:
        check_rows += scored.slices.rows()
    has_checks = spec.checks.any or scored.slices is not None
    return _StudyTables(stats, monthly, replay, replay_summary, shift,
                        attribution=_attribution_table(spec, shift, replay, monthly),
                        explain=shift_acc.explanation() if shift_acc is not None else None,
                        check_rows=check_rows if has_checks else None,
                        slices=scored.slices.table() if scored.slices is not None else None)


def _roles(spec: JobSpec, month: str, model=None) -> str:
    ev = spec.evaluation
    train = spec.train_months(model) if model is not None else ev.train
    roles = [r for r, ms in (("train", train), ("test", ev.test), ("score", ev.score)) if month in ms]
    if ev.replay is not None and month in ev.replay.months:
        roles.append("replay")
    return "+".join(roles)


def _monthly_table(spec, model_specs, thresholds, eval_months, stats, summaries) -> pd.DataFrame:
    rows = []
    for i, ms in enumerate(model_specs):
        for m in eval_months:
            s = summaries[m][i]
            row = {"model": ms.name, "month": m, "role": _roles(spec, m, ms), "threshold": thresholds[i]}
            row.update(s.count_totals())
            metrics = pooled_metrics(s)
            row.update({k: metrics[k] for k in ("roc_auc", "roc_auc_method", "log_loss", "brier", "mean_proba")})
            row["rows_read"] = stats[m].rows_read
            row["rows_dropped"] = sum(stats[m].dropped.values())
            rows.append(row)
    table = add_metrics(pd.DataFrame(rows))
    first = ["model", "month", "role", "threshold", *COUNT_COLUMNS, "n", "positives", "predicted_positives",
             "precision", "recall", "f1", "accuracy", "positive_rate", "predicted_positive_rate"]
    return table[first + [c for c in table.columns if c not in first]]


def _replay_table(spec, fspec, model_specs, thresholds, summaries) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per model x window of the replayed months, and the manifest's ``replay_summary``."""
    rp = spec.evaluation.replay
    if rp is None:
        return pd.DataFrame(), {}
    # windows from the period (and the longest trip the guard lets spill past it), never from the data
    keys = period_windows(rp.months[0], rp.months[-1], rp.window, spill_hours=fspec.max_trip_hours)
    tables, outside = [], 0
    for i, model_spec in enumerate(model_specs):
        table = _model_replay(spec, model_spec, i, thresholds[i], summaries, keys)
        # windows outside the replayed months hold rows of those months whose event time
        # spilled over (a trip ending after midnight on the last day): kept, but flagged
        outside = max(outside, int(table.attrs.get("rows_outside_windows", 0)))
        tables.append(table)
    primary = tables[0].set_index("window_start")
    for table in tables:
        for m in ("f1", "roc_auc", "log_loss"):
            table[f"delta_{m}"] = table[m].to_numpy() - primary[m].reindex(table["window_start"]).to_numpy()
    out = pd.concat(tables, ignore_index=True)
    eligible = out["in_period"] & (out["n"] >= rp.min_window_rows)
    out["below_floor"] = eligible & (out[rp.floor_metric] < rp.floor) if rp.floor is not None else False
    return out, _replay_summary(rp, out, eligible, outside)


def _model_replay(spec, model_spec, index: int, threshold: float, summaries, keys: PeriodWindows) -> pd.DataFrame:
    """The replay windows of one model (the ``index``-th), labelled (``keys``: the period's windows)."""
    rp = spec.evaluation.replay
    period_start, period_end = month_bounds(rp.months[0], rp.months[-1])
    stream = merge_summaries([summaries[m][index] for m in rp.months])
    train = merge_summaries([summaries[m][index] for m in spec.train_months(model_spec)])
    # spill-over windows after the period appear only as far as rows reach them
    spilled = parse_window(rp.window).keys(stream.hours[-1:] * US_PER_HOUR) if len(stream.hours) else []
    table = replay_frame(
        stream, fill_from=keys.lo, fill_to=min(keys.hi, max([keys.last_in_period, *map(int, spilled)])),
        trailing=rp.trailing,
        label_delay_hours=parse_delay_hours(rp.label_delay), bands=rp.bands is not None,
        level=rp.bands.level if rp.bands else 0.95, replicates=rp.bands.replicates if rp.bands else 0,
        seed=spec.seed * 1000 + index, train=train, timezone=rp.timezone,
    )
    start = table["window_start"].to_numpy()
    table.insert(0, "model", model_spec.name)
    table.insert(1, "window", rp.window)
    table.insert(2, "months", ",".join(rp.months))
    table.insert(3, "in_period", (table["window_end"].to_numpy() > period_start) & (start < period_end))
    table.insert(4, "threshold", threshold)
    table["label_delay"] = rp.label_delay
    return table


def _replay_summary(rp, out: pd.DataFrame, eligible: pd.Series, outside: int) -> dict[str, Any]:
    """Per model: the worst windows and the first below the floor (the manifest's ``replay_summary``)."""
    metric = rp.floor_metric
    summary: dict[str, Any] = {"metric": metric, "floor": rp.floor, "min_window_rows": rp.min_window_rows,
                               "rows_outside_windows": outside, "models": {}}
    for name, table in out[eligible].groupby("model", sort=False):
        worst = table.nsmallest(3, metric)
        below = table[table["below_floor"]]
        summary["models"][name] = {
            "worst_windows": [
                {"window_start": str(r.window_start), metric: float(getattr(r, metric)), "n": int(r.n)}
                for r in worst.itertuples()
            ],
            "first_below_floor": None if below.empty else {
                "window_start": str(below["window_start"].iloc[0]), metric: float(below[metric].iloc[0]),
                "n": int(below["n"].iloc[0]),
            },
            "windows_below_floor": int(len(below)),
        }
    return summary


def _attribution_table(spec, shift, replay, monthly) -> pd.DataFrame:
    """Features ranked by how their shift tracks F1: against replay windows when the shift
    windows have the replay's frequency, against monthly F1 for monthly shift windows."""
    sh, ev = spec.evaluation.shift, spec.evaluation
    if sh is None or shift.empty:
        return attribute(None, None)
    if ev.replay is not None and ev.replay.window == sh.window and not replay.empty:
        return attribute(shift, replay)
    if sh.window == "M":
        return attribute(shift, monthly)
    return attribute(None, None)


