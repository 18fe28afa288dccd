"""Run a job end to end: sources -> read -> features -> train -> replay/shift -> results.

Data flows one way.  Each month is split into parts (groups of Parquet row
groups); every part is read, cleaned and featurised *where it runs* (a Dask
worker), scored by the broadcast model and reduced to small tables (row
accounting, confusion counts per window, exact value counts for shift); only
those travel back.  The training months are the only data gathered to the
client, because the forest is fitted there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io import lineage
from ..backend import get_backend
from ..cluster import open_executor
from ..core.errors import DataError, RapidsEvalError, SpecError
from ..features import FeatureSpec, PartStats, prepare, required_columns
from ..spec import JobSpec, check_overrides_type, spec_hash
from .checks import load_job, shift_calculator, splitter
from ..io.sources import redact_uri
from ..metrics import COUNT_COLUMNS, add_metrics, learn_threshold
from ..core.time import US_PER_HOUR, month_bounds, month_index
from ..models import fit, make_model, predict_positive_proba, set_threads
from .progress import Reporter
from ..core.time import parse_delay_hours, parse_window, period_window_keys
from ..replay import (
    ScoreSummary,
    merge_summaries,
    pooled_metrics,
    replay_frame,
    summarize_scores,
)
from ..shift import ShiftAccumulator, ShiftReduce, alarms, attribute

__all__ = ["run", "RunResult", "resolve_inputs"]


@dataclass
class RunResult:
    """What a run produced: the tables of the run directory, as DataFrames."""

    spec: JobSpec
    run_dir: Path
    manifest: dict[str, Any]
    monthly: pd.DataFrame
    replay: pd.DataFrame
    shift: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    model: Any = None
    models: list[Any] = field(default_factory=list)
    attribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    explain: pd.DataFrame = field(default_factory=pd.DataFrame)  # what moved in each alarmed (window, feature)
    backtest: pd.DataFrame | None = None  # backtest jobs: policy x eval month
    staleness: pd.DataFrame | None = None  # backtest jobs: origin x eval month
    policies: pd.DataFrame | None = None  # backtest jobs: one row per policy

    def shift_alarms(self) -> pd.DataFrame:
        """Alarm rows of the shift table: feature, window, statistic, value, threshold."""
        return alarms(self.shift)

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"


# ---------------------------------------------------------------------------------------
# tasks (module level: they are pickled to Dask workers)
# ---------------------------------------------------------------------------------------
def _load_features(part, fspec: FeatureSpec, backend_name: str):
    from ..io.readers import read_part

    be = get_backend(backend_name)
    table = read_part(part, required_columns(fspec))
    return prepare(be.from_arrow(table), fspec, month=part.month, backend=be, path=part.uri)


def _score(part, fspec: FeatureSpec, backend_name: str, models):
    """Read, featurise and score one part: (backend, frame, stats, [P(y=1) per model])."""
    be = get_backend(backend_name)
    frame, stats = _load_features(part, fspec, backend_name)
    try:
        probas = [predict_positive_proba(m, frame[list(fspec.features)], be) if len(frame) else be.xp.zeros(0)
                  for m in models]
    except ValueError as exc:  # e.g. a feature beyond float32 ("Input X contains infinity")
        raise DataError(f"{redact_uri(part.uri)} ({part.month}): cannot score its rows: {exc} "
                        "(a feature value beyond what the model takes, e.g. a distance of 1e39?)") from exc
    return be, frame, stats, probas


def _threshold_part(part, fspec: FeatureSpec, backend_name: str, models) -> list[tuple]:
    """Exact (score, label) counts of one validation part, per model."""
    be, frame, _stats, probas = _score(part, fspec, backend_name, models)
    y = be.asarray(frame[fspec.target]).astype("int8") if len(frame) else be.xp.zeros(0, "int8")
    out = []
    for p in probas:
        s = summarize_scores(be.xp.zeros(len(p), "int64"), y, p, threshold=0.5, window="M", exact=True, xp=be.xp)
        out.append(s.exact[1:])
    return out


def _evaluate_part(part, fspec: FeatureSpec, backend_name: str, models, thresholds, score_opts: dict[str, Any],
                   time_column: str, shift: ShiftReduce | None) -> dict[str, Any]:
    be, frame, stats, probas = _score(part, fspec, backend_name, models)
    out: dict[str, Any] = {"stats": stats, "summaries": [], "shift": None}
    if len(frame):
        t_us = be.time_us(frame[time_column])
        y_true = be.asarray(frame[fspec.target])
    else:
        t_us, y_true = be.xp.zeros(0, "int64"), be.xp.zeros(0, "int8")
    for proba, threshold in zip(probas, thresholds):
        out["summaries"].append(summarize_scores(t_us, y_true, proba, threshold=threshold, xp=be.xp, **score_opts))
    if shift is not None:  # exact counts per (day, value) of every feature, host arrays
        out["shift"] = shift(frame, be)
    return out


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def _synthetic_source(spec: JobSpec, reporter: Reporter) -> str:
    """Generate (once, cached by parameters) the job's synthetic months; return the template."""
    from ..data.synthetic import generate

    syn = spec.data.synthetic
    key = json.dumps(
        {"start": spec.data.start, "end": spec.data.end, **syn.model_dump(exclude={"cache_dir"})}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(syn.cache_dir).expanduser()
    target = root / f"{syn.scenario}-{syn.rows_per_month}-{digest}"
    if not (target / "ground_truth.json").exists():
        tmp = root / f".tmp-{digest}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        months = spec.data.months
        with reporter.stage("generate data", total=len(months), unit="month") as st:
            done = set()

            def tick(month, rows_done, rows_total):
                if rows_done >= rows_total and month not in done:
                    done.add(month)
                    st.advance()

            generate(tmp, spec.data.start, spec.data.end, syn.rows_per_month, scenario=syn.scenario,
                     seed=syn.seed, scenario_month=syn.scenario_month, progress=tick)
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return str(target / "yellow_tripdata_{month}.parquet")


def input_months(spec: JobSpec) -> list[str]:
    """The months a run of ``spec`` reads, in data order (what ``validate`` checks too)."""
    if spec.backtest is not None:
        folds = splitter(spec.backtest).folds(spec.data.months)
        first = min(month_index(f.train_start) for f in folds)
        return [m for m in spec.data.months if month_index(m) >= first]
    wanted = set(spec.evaluated_months()) | set(spec.shift_months())
    return [m for m in spec.data.months if m in wanted]


def resolve_inputs(spec: JobSpec, months: list[str], reporter: Reporter | None = None,
                   warnings: list[str] | None = None, notes: list[str] | None = None):
    """month -> (InputInfo, [Part], schema era) for ``months``, after the up-front checks that
    ``run`` and ``validate`` share: every input found, its columns mapped, and a sample of its
    first rows converted to the canonical types (so text in a fare column or a garbled CSV
    fails here, not after training); training months that all lack rows are an error.

    Raises :class:`SpecError` when two months resolve to the same input and
    :class:`DataError` when two months' files are byte-for-byte copies (same size
    and footer).  What the inputs' names and footers show, one line each: a month a
    run will leave out or that looks misplaced (an empty file, a file named for
    another month, no pickup inside the month) is appended to ``warnings``; values
    the rules will drop and count (times beyond the period, numbers beyond
    float32) to ``notes``, which ``validate`` prints.
    """
    from ..io.readers import plan_parts, read_sample
    from ..io.schema import check_columns, map_columns
    from ..io.sources import inspect_input, resolve_uris

    reporter = reporter or Reporter()
    warnings = [] if warnings is None else warnings
    notes = [] if notes is None else notes
    fspec = _feature_spec(spec)
    need = required_columns(fspec)
    source = spec.data.source
    if source == "synthetic":
        source = _synthetic_source(spec, reporter)
    uris = resolve_uris(source, spec.data.months)
    seen: dict[str, str] = {}
    for month, uri in uris.items():
        if uri in seen:
            raise SpecError(f"data.source: {seen[uri]} and {month} both read {redact_uri(uri)}; "
                            "give each month its own input, in month order")
        seen[uri] = month
    out = {}
    fingerprints: dict[str, str] = {}
    empty: list[str] = []
    for month in months:
        info = inspect_input(uris[month], month, spec.data.storage_options or None, cache_dir=spec.data.cache_dir)
        if info.bytes and info.fingerprint in fingerprints:
            raise DataError(f"{redact_uri(info.uri)} ({month}) is a copy of the {fingerprints[info.fingerprint]} input "
                            "(same size and footer): is a month listed twice?")
        fingerprints[info.fingerprint] = month
        if spec.data.format != "auto" and info.format != spec.data.format:
            raise SpecError(f"{info.uri} ({month}): data.format is {spec.data.format} but the file is {info.format}")
        # fail in the first second, not after training, when a month cannot give what the job needs
        mapping = map_columns(info.columns, path=info.uri, month=month)
        check_columns(mapping, need, path=info.uri, month=month)
        said = _input_warnings(info, month, mapping, fspec)
        warnings.extend(said["warnings"])
        notes.extend(said["notes"])
        parts = plan_parts(info, target_rows=spec.data.partition_rows, storage_options=spec.data.storage_options or None)
        sample = read_sample(parts[0], need)
        if info.rows == 0 or (info.rows is None and sample.num_rows == 0):
            empty.append(month)
            if not info.rows == 0 and not info.bytes == 0:  # the footer did not tell (_input_warnings did not say it)
                warnings.append(f"{month}: {redact_uri(info.uri)} has no rows; the month's metrics and shift "
                                "comparison will be left out")
        out[month] = (info, parts, mapping.era)
    if spec.backtest is None:  # what cannot work without rows fails now, not after training
        needs = {f"model {m.name}: its training month(s)": spec.train_months(m) for m in spec.model_specs()}
        needs.update({f"model {m.name}: its threshold month(s)": spec.threshold_months(m) for m in spec.model_specs()})
        if spec.evaluation.shift is not None:
            needs["evaluation.shift.reference"] = [spec.evaluation.shift.reference]
        for what, needed in needs.items():
            if needed and all(m in empty for m in needed) and all(m in out for m in needed):
                raise DataError(f"{what} {', '.join(needed)} hold no rows "
                                f"({', '.join(redact_uri(out[m][0].uri) for m in needed)})")
    return out


_MONTH_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d\d)[-_]?(0[1-9]|1[0-2])(?!\d)")


def _input_warnings(info, month: str, mapping, fspec: FeatureSpec) -> dict[str, list[str]]:
    """What an input's name and footer show before any row is read: ``warnings`` (an empty
    file, a file named for another month, no pickup in the month) and ``notes`` (event
    times beyond the period, values beyond float32: rows the rules will drop and count)."""
    where = f"{month}: {redact_uri(info.uri)}"
    out: list[str] = []
    notes: list[str] = []
    if info.rows == 0 or info.bytes == 0:
        out.append(f"{where} has no rows; the month's metrics and shift comparison will be left out")
    named = {f"{y}-{m}" for y, m in _MONTH_IN_NAME.findall(os.path.basename(info.uri.rstrip("/")))}
    if len(named) == 1 and month not in named:
        out.append(f"{where} is named for {named.pop()}: are data.source's inputs in month order?")
    ranges = {canon: info.ranges[src] for canon, src in mapping.source_of.items() if src in info.ranges}
    rules = fspec.active_rules()
    lo, hi = (int(b.astype("int64")) for b in month_bounds(month))
    period_end = hi + int(rules["outside_period"]["max_trip_hours"] * US_PER_HOUR)

    def ts(us: int) -> str:
        return str(np.datetime64(int(us), "us").astype("datetime64[s]")).replace("T", " ")

    beyond = []
    for col in ("pickup_datetime", "dropoff_datetime"):
        if col in ranges:
            a, b = ranges[col]
            if a < lo or b > period_end:
                beyond.append(f"{col} spans {ts(a)} .. {ts(b)}")
    if "pickup_datetime" in ranges and (ranges["pickup_datetime"][1] < lo or ranges["pickup_datetime"][0] >= hi):
        out.append(f"{where}: every pickup falls outside {month} (footer statistics), so every row will be dropped: "
                   "is the input listed under the right month?")
    elif beyond:
        notes.append(f"{where}: {'; '.join(beyond)} (footer statistics); rows outside {ts(lo)} .. {ts(period_end)} "
                     "will be dropped (outside_period, pickup_outside_month)")
    f32 = float(np.finfo(np.float32).max)
    wide = [f"{c} reaches {max(abs(a), abs(b)):.3g}" for c, (a, b) in ranges.items()
            if c in required_columns(fspec) and not c.endswith("_datetime") and max(abs(a), abs(b)) > f32]
    if wide:
        notes.append(f"{where}: {', '.join(wide)} (footer statistics), beyond float32: those rows will be dropped")
    return {"warnings": out, "notes": notes}


# ---------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------
def _feature_spec(spec: JobSpec) -> FeatureSpec:
    f = spec.features
    return FeatureSpec(tuple(f.features), f.target, f.rule_names(), f.fill_value, rule_params=f.rule_params())


def _roles(spec: JobSpec, month: str, model=None) -> str:
    ev = spec.evaluation
    train = spec.train_months(model) if model is not None else ev.train
    roles = [r for r, ms in (("train", train), ("test", ev.test), ("score", ev.score)) if month in ms]
    if ev.replay is not None and month in ev.replay.months:
        roles.append("replay")
    return "+".join(roles)


def run(job, *, backend: str | None = None, scheduler: str | None = None, out: str | os.PathLike | None = None,
        overrides=None, reporter: Reporter | None = None) -> RunResult:
    """Run a job (path, mapping or :class:`JobSpec`) and write its run directory.

    Parameters
    ----------
    job : str, Path, dict or JobSpec
    backend : {"auto", "cpu", "gpu"}, optional
        Overrides the job's ``backend``.
    scheduler : str, optional
        Address of an existing Dask scheduler (overrides ``cluster``).
    out : path, optional
        Run directory (overrides ``output.dir``).
    overrides : dict or list of "a.b=value", optional
        Any other job field by dotted path, validated like the file.
    reporter : Reporter, optional
        Progress display; silent by default.

    Raises
    ------
    TypeError
        An argument of the wrong type (e.g. ``overrides`` as one string).
    RapidsEvalError
        Anything the job, its inputs or its output directory make impossible;
        the output directory is checked and locked before any work starts.
    """
    _check_types(backend=backend, scheduler=scheduler, out=out, reporter=reporter)
    check_overrides_type(overrides)
    extra: dict[str, Any] = {}
    if isinstance(overrides, dict):
        extra.update(overrides)
    if backend is not None:
        extra["backend"] = backend
    if scheduler is not None:
        extra["cluster.kind"] = "scheduler"
        extra["cluster.address"] = scheduler
    if out is not None:
        extra["output.dir"] = str(out)
    ov: Any = extra if not isinstance(overrides, (list, tuple)) else list(overrides) + [f"{k}={json.dumps(v)}" for k, v in extra.items()]
    spec = load_job(job, ov or None)
    reporter = reporter or Reporter()
    from ..io.rundir import claim_run_dir

    with claim_run_dir(spec, reporter):  # refused or locked before any work; released when written
        if spec.backtest is not None:
            from .backtest import run_backtest

            return run_backtest(spec, reporter=reporter)
        return _run_evaluation(spec, reporter)


def _check_types(**args) -> None:
    """TypeError for API arguments of the wrong type (a silent no-op would run the wrong job)."""
    for name in ("backend", "scheduler"):
        if args[name] is not None and not isinstance(args[name], str):
            raise TypeError(f"{name} must be a str or None, got {type(args[name]).__name__}")
    out = args["out"]
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a path (str or os.PathLike) or None, got {type(out).__name__}")
    reporter = args["reporter"]
    if reporter is not None and not isinstance(reporter, Reporter):
        raise TypeError(f"reporter must be a rapidseval.jobs.progress.Reporter or None, got {type(reporter).__name__}")


def _run_evaluation(spec: JobSpec, reporter: Reporter) -> RunResult:
    """The evaluation job (train, replay, shift) of a validated ``spec``; its run directory claimed."""
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    be = get_backend(spec.backend)
    reporter.log(f"backend: {be.name} ({be.reason})")
    fspec = _feature_spec(spec)
    ev = spec.evaluation
    eval_months = spec.evaluated_months()
    months = input_months(spec)
    rp = ev.replay
    window = rp.window if rp is not None else "D"
    time_column = ev.replay.time_column if ev.replay is not None else "dropoff_datetime"

    t0 = time.perf_counter()
    warnings: list[str] = []
    inputs = resolve_inputs(spec, months, reporter, warnings)
    timings["resolve_inputs"] = time.perf_counter() - t0

    with open_executor(spec.cluster, be) as ex:
        reporter.log(f"cluster: {ex.description}" + (f" — dashboard {ex.dashboard_link}" if ex.dashboard_link else ""))
        cluster_started = ex.description

        # -- train: every model, each training set read once ----------------------------
        model_specs = spec.model_specs()
        models = [make_model(be, m.kind, m.params, spec.seed) for m in model_specs]  # bad params fail first
        fit_info: list[dict[str, Any]] = [{} for _ in model_specs]
        by_train: dict[tuple[str, ...], list[int]] = {}
        for i, m in enumerate(model_specs):
            by_train.setdefault(tuple(spec.train_months(m)), []).append(i)
        timings["read_train"] = timings["train"] = 0.0
        for train_months, idx in by_train.items():
            t0 = time.perf_counter()
            train_parts = [p for m in train_months for p in inputs[m][1]]
            frames = [None] * len(train_parts)
            with reporter.stage(f"read training data {train_months[0]}" + (f"..{train_months[-1]}" if len(train_months) > 1 else ""),
                                total=len(train_parts), unit="part", items={m: len(inputs[m][1]) for m in train_months}) as st:
                for i, (frame, _stats) in ex.map_unordered(_load_features, train_parts, fspec, be.name):
                    frames[i] = frame
                    st.advance(item=train_parts[i].month)
            train = be.xdf.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            if len(train) == 0:
                raise RapidsEvalError(f"no usable training rows in {', '.join(train_months)} after cleaning")
            timings["read_train"] += time.perf_counter() - t0
            for i in idx:
                t0 = time.perf_counter()
                with reporter.stage(f"train {model_specs[i].name} ({len(train):,} rows)", total=1) as st:
                    try:
                        fit(models[i], train[list(fspec.features)], train[fspec.target], be)
                    except DataError:
                        raise
                    except ValueError as exc:
                        raise DataError(f"cannot train {model_specs[i].name} on {', '.join(train_months)}: {exc} "
                                        "(a feature value beyond what the model takes, e.g. a distance of 1e39?)") from exc
                    st.advance()
                seconds = time.perf_counter() - t0
                timings["train"] += seconds
                fit_info[i] = {"train_months": list(train_months), "train_rows": int(len(train)), "train_seconds": round(seconds, 3)}
            del train, frames
        if be.name == "cpu":
            # fitted on every core; scoring parallelises over parts (one per worker thread), and a
            # forest that spawned its own threads inside a worker would oversubscribe the cores
            for m in models:
                set_threads(m, 1)
        shared_models = ex.share(models)

        # -- thresholds learned on validation months, then frozen --------------------------
        thresholds = [m.threshold if isinstance(m.threshold, float) else None for m in model_specs]
        learn = [i for i, t in enumerate(thresholds) if t is None]
        if learn:
            t0 = time.perf_counter()
            for i in learn:
                ms = model_specs[i]
                vparts = [p for m in spec.threshold_months(ms) for p in inputs[m][1]]
                pieces = []
                with reporter.stage(f"learn threshold {ms.name}", total=len(vparts)) as st:
                    for _, res in ex.map_unordered(_threshold_part, vparts, fspec, be.name, ex.share([models[i]])):
                        pieces.append(res[0])
                        st.advance()
                scores = np.concatenate([p[0] for p in pieces])
                labels = np.concatenate([p[1] for p in pieces])
                counts = np.concatenate([p[2] for p in pieces])
                try:
                    learned = learn_threshold(scores, labels, counts, how=ms.threshold.learn, target=ms.threshold.target)
                except ValueError as exc:
                    raise RapidsEvalError(f"{ms.name}: threshold on {', '.join(spec.threshold_months(ms))}: {exc}") from exc
                thresholds[i] = learned["threshold"]
                fit_info[i]["threshold_learned"] = {"rule": ms.threshold.learn, "target": ms.threshold.target,
                                                    "months": spec.threshold_months(ms), **learned}
            timings["learn_threshold"] = time.perf_counter() - t0
        for i, t in enumerate(thresholds):
            fit_info[i]["threshold"] = t

        # -- score every month: summaries + value counts, reduced on the workers ---------
        t0 = time.perf_counter()
        parts = [p for m in months for p in inputs[m][1]]
        shift_reduce, shift_acc = _shift_plan(spec, fspec, inputs, be.xp)
        score_opts = {"window": window, "bins": rp.score_bins if rp else 1000, "exact": bool(rp and rp.auc == "exact")}
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in months}
        with reporter.stage("score + reduce", total=len(parts), unit="part",
                            items={m: len(inputs[m][1]) for m in months}) as st:
            for i, res in ex.map_unordered(
                _evaluate_part, parts, fspec, be.name, shared_models, thresholds, score_opts, time_column, shift_reduce
            ):
                if shift_acc is not None:  # merged and compared month by month, then dropped
                    shift_acc.add(parts[i].month, res.pop("shift"))
                results[parts[i].month].append((parts[i].index, res))
                st.advance(item=parts[i].month)
        for m in months:
            results[m] = [r for _, r in sorted(results[m], key=lambda x: x[0])]
        timings["score_reduce"] = time.perf_counter() - t0

    # -- assemble tables on the host ---------------------------------------------------
    t0 = time.perf_counter()
    stats: dict[str, PartStats] = {}
    summaries: dict[str, list[ScoreSummary]] = {}
    for m in months:
        total = PartStats()
        for r in results[m]:
            total = total.merge(r["stats"])
        stats[m] = total
        summaries[m] = [merge_summaries([r["summaries"][i] for r in results[m]]) for i in range(len(models))]
    monthly = _monthly_table(spec, model_specs, thresholds, eval_months, stats, summaries)
    replay, replay_summary = _replay_table(spec, model_specs, thresholds, summaries)
    shift = _shift_table(spec, shift_acc)
    explanation = shift_acc.explanation() if shift_acc is not None else None
    attribution = _attribution_table(spec, shift, replay, monthly)
    timings["assemble"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    manifest = _manifest(spec, be, inputs, stats, timings, warnings)
    for line in manifest["warnings"]:
        reporter.log(f"warning: {line}")
    manifest["cluster_started"] = cluster_started  # what ran (e.g. one worker per GPU), beside what was asked
    manifest["models"] = [{"name": m.name, "kind": m.kind, **info} for m, info in zip(model_specs, fit_info)]
    if replay_summary:
        manifest["replay_summary"] = replay_summary
    run_dir = _write_run_dir(spec, manifest, monthly, replay, shift, reporter, {"attribution": attribution},
                             explanation=explanation)
    return RunResult(spec, run_dir, manifest, monthly, replay, shift, timings, model=models[0], models=models,
                     attribution=attribution, explain=explanation if explanation is not None else pd.DataFrame())


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


def _replay_table(spec, model_specs, thresholds, summaries) -> tuple[pd.DataFrame, dict[str, Any]]:
    rp = spec.evaluation.replay
    if rp is None:
        return pd.DataFrame(), {}
    # windows from the period (and the longest trip the guard lets spill past it), never from the data
    spill = _feature_spec(spec).active_rules()["outside_period"]["max_trip_hours"]
    lo, hi = period_window_keys(rp.months[0], rp.months[-1], rp.window, spill_hours=spill)
    last_in_period = period_window_keys(rp.months[0], rp.months[-1], rp.window)[1]
    period_start, period_end = month_bounds(rp.months[0], rp.months[-1])
    delay = parse_delay_hours(rp.label_delay)
    tables = []
    outside = 0
    for i, ms in enumerate(model_specs):
        stream = merge_summaries([summaries[m][i] for m in rp.months])
        train = merge_summaries([summaries[m][i] for m in spec.train_months(ms)])
        # spill-over windows after the period appear only as far as rows reach them
        spilled = parse_window(rp.window).keys(stream.hours[-1:] * US_PER_HOUR) if len(stream.hours) else []
        fill_to = min(hi, max([last_in_period, *map(int, spilled)]))
        table = replay_frame(
            stream, fill_from=lo, fill_to=fill_to, trailing=rp.trailing, label_delay_hours=delay,
            bands=rp.bands is not None, level=rp.bands.level if rp.bands else 0.95,
            replicates=rp.bands.replicates if rp.bands else 0, seed=spec.seed * 1000 + i, train=train,
            timezone=rp.timezone,
        )
        # windows outside the replayed months hold rows of those months whose event time
        # spilled over (a trip ending after midnight on the last day): kept, but flagged
        outside = max(outside, int(table.attrs.get("rows_outside_windows", 0)))
        start = table["window_start"].to_numpy()
        table.insert(0, "model", ms.name)
        table.insert(1, "window", rp.window)
        table.insert(2, "months", ",".join(rp.months))
        table.insert(3, "in_period", (table["window_end"].to_numpy() > period_start) & (start < period_end))
        table.insert(4, "threshold", thresholds[i])
        table["label_delay"] = rp.label_delay
        tables.append(table)
    primary = tables[0].set_index("window_start")
    for table in tables:
        for m in ("f1", "roc_auc", "log_loss"):
            table[f"delta_{m}"] = table[m].to_numpy() - primary[m].reindex(table["window_start"]).to_numpy()
    out = pd.concat(tables, ignore_index=True)
    metric = rp.floor_metric
    eligible = out["in_period"] & (out["n"] >= rp.min_window_rows)
    out["below_floor"] = eligible & (out[metric] < rp.floor) if rp.floor is not None else False
    summary: dict[str, Any] = {"metric": metric, "floor": rp.floor, "min_window_rows": rp.min_window_rows,
                               "rows_outside_windows": outside, "models": {}}
    for name, t in out[eligible].groupby("model", sort=False):
        worst = t.nsmallest(3, metric)
        below = t[t["below_floor"]]
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
    return out, summary


def _shift_plan(spec, fspec, inputs, xp=None):
    """The workers' reduction and the host's month-by-month accumulator (None, None without shift)."""
    sh = spec.evaluation.shift
    if sh is None:
        return None, None
    months = {sh.reference, *sh.compare}
    acc = ShiftAccumulator(shift_calculator(sh, fspec.features, fill_value=fspec.fill_value, xp=xp,
                                            kinds=spec.features.feature_kinds()),
                           sh.reference, list(sh.compare),
                           {m: len(inputs[m][1]) for m in months})
    return ShiftReduce(tuple(fspec.features), sh.time_column), acc


def _shift_table(spec, acc) -> pd.DataFrame:
    from ..shift import SHIFT_COLUMNS

    if acc is None:
        return pd.DataFrame(columns=SHIFT_COLUMNS)
    return acc.table()


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


def month_warnings(stats: dict[str, PartStats], already: list[str] | tuple[str, ...] = ()) -> list[str]:
    """One line per month the results leave out or that looks misplaced: empty, every row
    dropped, or most pickups outside the month (an input listed under the wrong month);
    none that repeats what ``already`` (the inputs' warnings) says of the month."""
    out = []
    for month, s in stats.items():
        said = " ".join(w for w in already if w.startswith(f"{month}: "))
        dropped = {k: v for k, v in s.dropped.items() if v}
        by_rule = ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]))
        if s.rows_read == 0:
            if "has no rows" not in said:
                out.append(f"{month}: the input has no rows; the month's metrics and shift comparison are left out")
        elif s.rows_used == 0:
            out.append(f"{month}: all {s.rows_read:,} rows were dropped ({by_rule}); "
                       "the month's metrics and shift comparison are left out")
        misplaced = s.dropped.get("pickup_outside_month", 0) + s.dropped.get("outside_period", 0)
        if s.rows_read and misplaced > s.rows_read / 2 and "every pickup falls outside" not in said:
            out.append(f"{month}: {misplaced:,} of {s.rows_read:,} rows have pickups outside {month}: "
                       "is the input listed under the right month (data.source in month order)?")
    return out


def _manifest(spec, be, inputs, stats, timings, warnings=()) -> dict[str, Any]:
    from ..io.schema import WALL_CLOCK_ZONE

    rows = {
        m: {"uri": redact_uri(inputs[m][0].uri), **stats[m].to_dict()} for m in stats
    }
    totals = PartStats()
    for s in stats.values():
        totals = totals.merge(s)
    fspec = _feature_spec(spec)
    return {
        "rapidseval_manifest": 1,
        "complete": True,
        "created_utc": lineage.utc_now(),
        "job": spec.model_dump(mode="json"),
        "job_hash": spec_hash(spec),
        "seed": spec.seed,
        "backend": be.name,
        "backend_reason": be.reason,
        "hardware": {**lineage.host_description(), **be.device_description()},
        "cluster": spec.cluster.model_dump(mode="json"),
        "packages": lineage.package_versions(),
        "git_commit": lineage.git_commit(),
        "inputs": [
            {
                "month": m,
                "uri": redact_uri(info.uri),
                "format": info.format,
                "bytes": info.bytes,
                "rows": info.rows,
                "fingerprint": info.fingerprint,
                "schema_era": era,
                "parts": len(parts),
                **({"timestamps": f"time zone {', '.join(sorted(set(info.time_zones.values())))} "
                                  f"converted to {WALL_CLOCK_ZONE} wall-clock time"} if info.time_zones else {}),
            }
            for m, (info, parts, era) in inputs.items()
        ],
        "wall_clock_zone": WALL_CLOCK_ZONE,
        "drop_rules": fspec.active_rules(),
        "warnings": list(dict.fromkeys([*warnings, *month_warnings(stats, list(warnings))])),
        "rows": {"total": totals.to_dict(), "by_month": rows},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        # models whose training months overlap or follow their evaluation months (allowed by
        # evaluation.allow_overlap): model -> {train_months, eval_months}; empty when none
        "train_eval_overlap": spec.train_eval_overlap(),
    }


def _write_run_dir(spec, manifest, monthly, replay, shift, reporter, extra_tables=None, explanation=None):
    """Write the run directory (local or s3://; see :mod:`rapidseval.io.rundir`); ``explanation``
    (``explain.parquet``) is written whenever the run compared shift, even without alarms."""
    from ..io.rundir import write_run_dir

    tables = {"monthly": monthly, "replay": replay, "shift": shift}
    if explanation is not None:
        tables["explain"] = explanation
    tables.update({k: t for k, t in (extra_tables or {}).items() if t is not None and not t.empty})
    return write_run_dir(spec, manifest, tables, reporter)
