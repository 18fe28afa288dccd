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
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import lineage
from .backend import get_backend
from .cluster import open_executor
from .errors import RapidsEvalError, SpecError
from .features import FeatureSpec, PartStats, prepare, required_columns
from .jobs import JobSpec, load_job, spec_hash
from .data.sources import redact_uri
from .metrics import COUNT_COLUMNS, add_metrics
from .months import month_bounds
from .models import fit, make_model, predict_positive_proba
from .progress import Reporter
from .replay import merge_window_counts, replay_table, window_counts, window_key_range
from .shift import ks_from_counts, merge_counts, value_counts

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

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"


# ---------------------------------------------------------------------------------------
# tasks (module level: they are pickled to Dask workers)
# ---------------------------------------------------------------------------------------
def _load_features(part, fspec: FeatureSpec, backend_name: str):
    from .data.readers import read_part

    be = get_backend(backend_name)
    table = read_part(part, required_columns(fspec))
    return prepare(be.from_arrow(table), fspec, month=part.month, backend=be, path=part.uri)


def _evaluate_part(part, fspec: FeatureSpec, backend_name: str, model, threshold: float, window: str,
                   time_column: str, shift_features: tuple[str, ...]) -> dict[str, Any]:
    be = get_backend(backend_name)
    frame, stats = _load_features(part, fspec, backend_name)
    out: dict[str, Any] = {"stats": stats, "windows": None, "counts": {}}
    if model is not None:
        if len(frame):
            proba = predict_positive_proba(model, frame[list(fspec.features)], be)
            y_pred = proba > threshold
            y_true = be.asarray(frame[fspec.target])
            out["windows"] = window_counts(be.time_us(frame[time_column]), y_true, y_pred, window=window, xp=be.xp)
        else:
            out["windows"] = window_counts(np.zeros(0, "int64"), np.zeros(0), np.zeros(0), window=window)
    for name in shift_features:
        values, counts = value_counts(be.asarray(frame[name]), be.xp)
        out["counts"][name] = (np.asarray(be.to_host(values)), np.asarray(be.to_host(counts)))
    return out


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def _synthetic_source(spec: JobSpec, reporter: Reporter) -> str:
    """Generate (once, cached by parameters) the job's synthetic months; return the template."""
    from .data.synthetic import generate

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


def resolve_inputs(spec: JobSpec, months: list[str], reporter: Reporter | None = None):
    """month -> (InputInfo, [Part]) for ``months``."""
    from .data.readers import plan_parts
    from .data.schema import check_columns, map_columns
    from .data.sources import inspect_input, resolve_uris

    reporter = reporter or Reporter()
    need = required_columns(_feature_spec(spec))
    source = spec.data.source
    if source == "synthetic":
        source = _synthetic_source(spec, reporter)
    uris = resolve_uris(source, spec.data.months)
    out = {}
    for month in months:
        info = inspect_input(uris[month], month, spec.data.storage_options or None, cache_dir=spec.data.cache_dir)
        if spec.data.format != "auto" and info.format != spec.data.format:
            raise SpecError(f"{info.uri} ({month}): data.format is {spec.data.format} but the file is {info.format}")
        # fail in the first second, not after training, when a month cannot give what the job needs
        mapping = map_columns(info.columns, path=info.uri, month=month)
        check_columns(mapping, need, path=info.uri, month=month)
        parts = plan_parts(info, target_rows=spec.data.partition_rows, storage_options=spec.data.storage_options or None)
        out[month] = (info, parts, mapping.era)
    return out


# ---------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------
def _feature_spec(spec: JobSpec) -> FeatureSpec:
    f = spec.features
    return FeatureSpec(tuple(f.features), f.target, tuple(f.drop_rules), f.fill_value)


def _roles(spec: JobSpec, month: str) -> str:
    ev = spec.evaluation
    roles = [r for r, ms in (("train", ev.train), ("test", ev.test), ("score", ev.score)) if month in ms]
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
    """
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
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    be = get_backend(spec.backend)
    reporter.log(f"backend: {be.name} ({be.reason})")
    fspec = _feature_spec(spec)
    ev = spec.evaluation
    eval_months = spec.evaluated_months()
    shift_months = spec.shift_months()
    months = [m for m in spec.data.months if m in set(eval_months) | set(shift_months)]
    window = ev.replay.window if ev.replay is not None else "D"
    time_column = ev.replay.time_column if ev.replay is not None else "dropoff_datetime"

    t0 = time.perf_counter()
    inputs = resolve_inputs(spec, months, reporter)
    timings["resolve_inputs"] = time.perf_counter() - t0

    with open_executor(spec.cluster, be) as ex:
        reporter.log(f"cluster: {ex.description}" + (f" — dashboard {ex.dashboard_link}" if ex.dashboard_link else ""))

        # -- train -------------------------------------------------------------------
        model = make_model(be, spec.model.kind, spec.model.params, spec.seed)  # bad params fail before any read
        t0 = time.perf_counter()
        train_parts = [p for m in ev.train for p in inputs[m][1]]
        frames = [None] * len(train_parts)
        with reporter.stage("read training data", total=len(train_parts), unit="part",
                            items={m: len(inputs[m][1]) for m in ev.train}) as st:
            for i, (frame, _stats) in ex.map_unordered(_load_features, train_parts, fspec, be.name):
                frames[i] = frame
                st.advance(item=train_parts[i].month)
        train = be.xdf.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(train) == 0:
            raise RapidsEvalError(f"no usable training rows in {', '.join(ev.train)} after cleaning")
        timings["read_train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with reporter.stage(f"train ({len(train):,} rows)", total=1) as st:
            fit(model, train[list(fspec.features)], train[fspec.target], be)
            st.advance()
        del train, frames
        timings["train"] = time.perf_counter() - t0

        # -- score every month: window counts + value counts, reduced on the workers --
        t0 = time.perf_counter()
        if be.name == "cpu" and "n_jobs" in model.get_params():
            # scoring parallelises over parts (one per worker thread); a forest that
            # spawned its own threads inside a worker would oversubscribe the cores
            model.set_params(n_jobs=1)
        shared_model = ex.share(model)
        parts = [p for m in months for p in inputs[m][1]]
        feats = tuple(fspec.features) if shift_months else ()
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in months}
        with reporter.stage("score + reduce", total=len(parts), unit="part",
                            items={m: len(inputs[m][1]) for m in months}) as st:
            for i, res in ex.map_unordered(
                _evaluate_part, parts, fspec, be.name, shared_model, spec.model.threshold, window, time_column, feats
            ):
                results[parts[i].month].append((parts[i].index, res))
                st.advance(item=parts[i].month)
        for m in months:
            results[m] = [r for _, r in sorted(results[m], key=lambda x: x[0])]
        timings["score_reduce"] = time.perf_counter() - t0

    # -- assemble tables on the host ---------------------------------------------------
    t0 = time.perf_counter()
    stats: dict[str, PartStats] = {}
    windows: dict[str, pd.DataFrame] = {}
    for m in months:
        total = PartStats()
        for r in results[m]:
            total = total.merge(r["stats"])
        stats[m] = total
        windows[m] = merge_window_counts([r["windows"] for r in results[m] if r["windows"] is not None])
    monthly = _monthly_table(spec, eval_months, stats, windows)
    replay = _replay_table(spec, windows)
    shift = _shift_table(spec, results, feats)
    timings["assemble"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    manifest = _manifest(spec, be, inputs, stats, timings)
    run_dir = _write_run_dir(spec, manifest, monthly, replay, shift, reporter)
    return RunResult(spec, run_dir, manifest, monthly, replay, shift, timings, model)


def _monthly_table(spec, eval_months, stats, windows) -> pd.DataFrame:
    rows = []
    for m in eval_months:
        counts = windows[m][list(COUNT_COLUMNS)].sum()
        row = {"model": spec.model.kind, "month": m, "role": _roles(spec, m)}
        row.update({c: int(counts[c]) for c in COUNT_COLUMNS})
        row["rows_read"] = stats[m].rows_read
        row["rows_dropped"] = sum(stats[m].dropped.values())
        rows.append(row)
    table = add_metrics(pd.DataFrame(rows))
    return table


def _replay_table(spec, windows) -> pd.DataFrame:
    ev = spec.evaluation
    if ev.replay is None:
        return pd.DataFrame()
    w = ev.replay.window
    counts = merge_window_counts([windows[m] for m in ev.replay.months])
    lo = window_key_range(ev.replay.months[0], w)[0]
    hi = max(window_key_range(m, w)[1] for m in ev.replay.months)
    table = replay_table(counts, window=w, fill_from=lo, fill_to=hi)
    # windows outside the replayed months hold rows of those months whose event time
    # spilled over (a trip ending after midnight on the last day): kept, but flagged
    period_start, period_end = month_bounds(ev.replay.months[0], ev.replay.months[-1])
    start = table["window_start"].to_numpy()
    table["in_period"] = (table["window_end"].to_numpy() > period_start) & (start < period_end)
    table.insert(0, "model", spec.model.kind)
    table.insert(1, "window", w)
    table.insert(2, "months", ",".join(ev.replay.months))
    return table


def _shift_table(spec, results, feats) -> pd.DataFrame:
    sh = spec.evaluation.shift
    cols = ["reference", "window", "feature", "statistic", "value", "p_value", "threshold", "alarm", "p_below_alpha", "n_reference", "n_window"]
    if sh is None:
        return pd.DataFrame(columns=cols)
    merged = {
        m: {f: merge_counts([r["counts"][f] for r in results[m]]) for f in feats}
        for m in {sh.reference, *sh.compare}
    }
    rows = []
    for m in sh.compare:
        for f in feats:
            v1, c1 = merged[sh.reference][f]
            v2, c2 = merged[m][f]
            if c1.sum() == 0 or c2.sum() == 0:
                d, p = np.nan, np.nan
            else:
                d, p = ks_from_counts(v1, c1, v2, c2)
            rows.append({
                "reference": sh.reference, "window": m, "feature": f, "statistic": sh.statistic,
                "value": d, "p_value": p, "threshold": sh.threshold, "alarm": bool(d > sh.threshold),
                "p_below_alpha": bool(p < sh.alpha), "n_reference": int(c1.sum()), "n_window": int(c2.sum()),
            })
    return pd.DataFrame(rows, columns=cols)


def _manifest(spec, be, inputs, stats, timings) -> dict[str, Any]:
    rows = {
        m: {"uri": redact_uri(inputs[m][0].uri), **stats[m].to_dict()} for m in stats
    }
    totals = PartStats()
    for s in stats.values():
        totals = totals.merge(s)
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
            }
            for m, (info, parts, era) in inputs.items()
        ],
        "rows": {"total": totals.to_dict(), "by_month": rows},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def _write_run_dir(spec, manifest, monthly, replay, shift, reporter) -> Path:
    """Write every table into a fresh directory, then swap it into place."""
    from .report import write_report

    run_dir = Path(spec.output.dir.format(name=spec.name)).expanduser()
    if run_dir.exists() and (not run_dir.is_dir() or (any(run_dir.iterdir()) and not (run_dir / "manifest.json").exists())):
        raise RapidsEvalError(
            f"{run_dir} exists and is not a run directory (no manifest.json); "
            "choose another --out or remove it yourself — rapidseval only replaces its own run directories"
        )
    tmp = run_dir.parent / f".{run_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    monthly.to_parquet(tmp / "monthly.parquet", index=False)
    replay.to_parquet(tmp / "replay.parquet", index=False)
    shift.to_parquet(tmp / "shift.parquet", index=False)
    lineage.write_json_atomic(tmp / "manifest.json", manifest)
    if spec.output.report:
        write_report(tmp)
    if run_dir.exists():
        old = run_dir.parent / f".{run_dir.name}.old-{os.getpid()}"
        os.replace(run_dir, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, run_dir)
    return run_dir
