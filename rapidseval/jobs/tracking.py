"""MLflow tracking (``output.mlflow``, the optional extra ``mlflow``): a finished run, logged.

:func:`log_run` is called by :func:`rapidseval.jobs.run` after the run directory is written,
only when ``output.mlflow`` is set; MLflow is imported then and never otherwise. What goes where:

- **params**: the resolved job (``spec.model_dump``, as the manifest's ``job``) flattened to
  dotted keys (``model.params.n_estimators``). Strings as they are, every other value as JSON
  (``true``, ``null``, ``[2020-01]`` → ``["2020-01"]``); a mapping with a key that cannot be one
  segment of an MLflow key (or holds a dot) is one JSON value; a value longer than MLflow's 6000
  characters is cut, saying so (the whole job is in the logged ``manifest.json``).
- **tags**: ``rapidseval.job_hash``, ``rapidseval.git_commit`` (also ``mlflow.source.git.commit``),
  ``rapidseval.backend``, ``rapidseval.version``, ``rapidseval.job_kind``, ``rapidseval.run_dir``.
- **metrics** (every numeric column of the table; booleans as 0/1; NaN kept):

  - a study: ``monthly.<model>.<column>`` from ``monthly.parquet``, step = the month's index
    (:func:`rapidseval.core.time.month_index`: ``year * 12 + month - 1``), timestamp = the month's
    start (UTC ms); ``replay.<model>.<column>`` from ``replay.parquet``, step = the window's number
    (0, 1, ... in time order per model), timestamp = ``window_start`` (its wall-clock time as UTC ms);
  - a backtest: the parent run has ``policies.<policy>.<column>`` from ``policies.parquet``
    (step 0; a character MLflow refuses in a key becomes ``_``; the child run keeps the name); each policy's child run has ``<column>`` from its rows of ``backtest.parquet``,
    step = the eval month's index, timestamp = its start;
  - both, when the job has checks: ``checks.pass`` / ``checks.warn`` / ``checks.fail`` /
    ``checks.total`` (rows of ``checks.parquet`` by status) and ``checks.<group>.<status>`` per
    rubric group (data, model, infrastructure, monitoring).
- **datasets**: every input month through :mod:`mlflow.data` (a ``MetaDataset``): name = the
  month, source = its URI (redacted, as in the manifest), digest = the first 36 hex digits of
  its fingerprint (MLflow's limit), context = its role(s) in the job (``train``, ``test``,
  ``threshold``, ``score``, ``replay``, ``shift`` joined by ``+``; ``backtest``); input tags
  ``rapidseval.fingerprint`` (whole), ``rapidseval.rows``, ``rapidseval.bytes``.
- **artifacts**: the whole run directory, ``report.html`` included (an ``s3://`` one is copied to a
  temporary directory first).

A backtest logs one parent run (params, tags, the policies' metrics, datasets, artifacts) and one
nested child run per policy (tag ``mlflow.parentRunId``; its policy's spec as params).

Credentials and MLflow's own settings come from the environment (``MLFLOW_TRACKING_USERNAME``,
``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ...). MLflow 3 sends anonymous usage
telemetry unless ``MLFLOW_DISABLE_TELEMETRY=true`` (or ``DO_NOT_TRACK=true``) is set; rapidseval
leaves that choice to the environment.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from ..checks import RUBRIC
from ..core.errors import RapidsEvalError
from ..core.time import month_index
from ..io.sources import redact_uri
from ..spec import JobSpec, job_kind
from .progress import Reporter
from .results import BacktestResult, JobResult, StudyResult

__all__ = ["TrackedRun", "TrackingError", "log_run", "flat_params", "import_mlflow", "require_mlflow", "MAX_PARAM_VALUE_LENGTH"]

#: MLflow's limits: a param value's length, a key's length, entities per ``log_batch`` call
MAX_PARAM_VALUE_LENGTH = 6000
_MAX_KEY_LENGTH = 250
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
_DATASETS_PER_BATCH = 1000
_MAX_DIGEST_LENGTH = 36
_TRUNCATED = "... (cut at MLflow's 6000 characters; the whole job is in manifest.json)"
#: a mapping key that can be one segment of a dotted param key: what MLflow accepts in a key
#: (``mlflow.utils.validation``: letters, digits, _ - . space / :) less the dot, so that two
#: different paths never give one key
_KEY_SEGMENT = re.compile(r"[\w\- /:]+")
#: the statuses of checks.parquet, each counted (zeros included)
_STATUSES = ("pass", "warn", "fail")


@dataclass(frozen=True)
class TrackedRun:
    """Where a job was logged: the experiment, its (parent) run and, for a backtest, one child
    run per policy (policy -> run id)."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    child_run_ids: dict[str, str] = field(default_factory=dict)


_MISSING = ("output.mlflow needs MLflow, which is not installed: pip install 'rapidseval[mlflow]' "
            "(mlflow-skinny, sqlalchemy and alembic)")


class TrackingError(RapidsEvalError):
    """Logging a complete run to MLflow failed: the message says why; ``result`` is the run's
    result all the same (its run directory is complete, its checks judged)."""

    def __init__(self, message: str, result):
        super().__init__(message)
        self.result = result


def require_mlflow() -> None:
    """A one-line :class:`RapidsEvalError` naming the extra when MLflow is not installed; imports
    nothing (so a job says so before its work starts, not after)."""
    try:
        found = importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        found = False
    if not found:
        raise RapidsEvalError(_MISSING)


def import_mlflow():
    """The ``mlflow`` module, or a one-line :class:`RapidsEvalError` naming the extra to install."""
    try:
        import mlflow
    except ImportError as exc:
        raise RapidsEvalError(f"{_MISSING} ({exc})") from exc
    return mlflow


#: what the line before logging to a tracking server says of MLflow's retries (its defaults: 7 retries
#: with exponential backoff, about four minutes against a server that refuses the connection)
MLFLOW_RETRIES_HINT = ("MLflow retries an unreachable server for minutes: "
                       "MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT")


def log_run(result: JobResult, spec: JobSpec, *, reporter: Reporter | None = None) -> TrackedRun | None:
    """Log a finished run (its run directory already written) to ``spec.output.mlflow``.

    Returns
    -------
    TrackedRun or None
        Where it went; None when the job has no ``output.mlflow``.

    Raises
    ------
    RapidsEvalError
        MLflow is not installed, or the tracking store could not be reached or refused the run
        (one line naming the tracking URI; the run directory is complete either way).
    """
    settings = spec.output.mlflow
    if settings is None:
        return None
    import_mlflow()
    from mlflow.tracking import MlflowClient

    uri = _shown_uri(settings.tracking_uri)
    reporter = reporter or Reporter()
    if not settings.tracking_uri.startswith(("sqlite:", "file:", "/", ".")):  # a server: MLflow retries for minutes
        reporter.log(f"mlflow: logging to {uri} (the run directory is complete; {MLFLOW_RETRIES_HINT})")
    try:
        client = MlflowClient(tracking_uri=settings.tracking_uri)
        experiment_id = _experiment_id(client, settings)
        if isinstance(result, BacktestResult):
            tracked = _log_backtest(client, experiment_id, result, spec)
        else:
            tracked = _log_study(client, experiment_id, result, spec)
    except Exception as exc:  # the error boundary of tracking: any failure of the store, one line
        raise RapidsEvalError(f"MLflow tracking at {uri} failed ({type(exc).__name__}: {_first_line(exc)}); "
                              f"the run directory {result.run_dir} is complete") from exc
    reporter.log(f"mlflow: logged run {tracked.run_id} to experiment {settings.experiment!r} at {uri}")
    return TrackedRun(uri, tracked.experiment_id, tracked.run_id, tracked.child_run_ids)


# ---------------------------------------------------------------------------------------
# the runs
# ---------------------------------------------------------------------------------------
def _log_study(client, experiment_id: str, result: StudyResult, spec: JobSpec) -> TrackedRun:
    metrics = [*monthly_metrics(result.monthly), *replay_metrics(result.replay), *checks_metrics(result.checks)]
    run_id = _start_run(client, experiment_id, spec, tags=_tags(spec, result))
    with _finished_or_failed(client, run_id):
        _log_common(client, run_id, spec, result, metrics)
    return TrackedRun(client.tracking_uri, experiment_id, run_id)


def _log_backtest(client, experiment_id: str, result: BacktestResult, spec: JobSpec) -> TrackedRun:
    metrics = [*policies_metrics(result.policies), *checks_metrics(result.checks)]
    tags = _tags(spec, result)
    run_id = _start_run(client, experiment_id, spec, tags=tags)
    children: dict[str, str] = {}
    with _finished_or_failed(client, run_id):
        _log_common(client, run_id, spec, result, metrics)
        policy_specs = {p.label: p for p in spec.backtest.policies} if spec.backtest is not None else {}
        for policy, rows in backtest_metrics_by_policy(result.backtest).items():
            child_tags = {**tags, "mlflow.parentRunId": run_id, "rapidseval.policy": policy}
            child = client.create_run(experiment_id, tags=child_tags, run_name=policy).info.run_id
            with _finished_or_failed(client, child):
                params = flat_params(policy_specs[policy].model_dump(mode="json")) if policy in policy_specs else {}
                _log_batches(client, child, params=params, metrics=rows)
            children[policy] = child
    return TrackedRun(client.tracking_uri, experiment_id, run_id, children)


def _log_common(client, run_id: str, spec: JobSpec, result: JobResult, metrics: list) -> None:
    """What every (parent) run gets: the job as params, the metrics, the inputs, the run directory."""
    _log_batches(client, run_id, params=flat_params(spec.model_dump(mode="json")), metrics=metrics)
    datasets = input_datasets(result.manifest, month_roles(spec))
    for start in range(0, len(datasets), _DATASETS_PER_BATCH):
        client.log_inputs(run_id, datasets=datasets[start:start + _DATASETS_PER_BATCH])
    with _local_copy(result.run_dir) as local:
        client.log_artifacts(run_id, str(local))


def _experiment_id(client, settings) -> str:
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(settings.experiment, artifact_location=_artifact_location(settings))
    except Exception:  # another run created it meanwhile: use that one; else the store's error stands
        experiment = client.get_experiment_by_name(settings.experiment)
        if experiment is None:
            raise
        return experiment.experiment_id


def _artifact_location(settings) -> str | None:
    """``artifact_location``, or for a ``sqlite:///`` store ``mlartifacts`` beside the database
    file (MLflow's own default is ``./mlruns`` in whatever the working directory is)."""
    if settings.artifact_location is not None:
        return settings.artifact_location
    prefix = "sqlite:///"
    if settings.tracking_uri.startswith(prefix):
        database = settings.tracking_uri[len(prefix):].split("?", 1)[0]
        if database and database != ":memory:":
            return (Path(database).expanduser().resolve().parent / "mlartifacts").as_uri()
    return None


def _start_run(client, experiment_id: str, spec: JobSpec, *, tags: dict[str, str]) -> str:
    name = spec.output.mlflow.run_name or spec.name
    return client.create_run(experiment_id, tags=tags, run_name=name).info.run_id


@contextlib.contextmanager
def _finished_or_failed(client, run_id: str) -> Iterator[None]:
    """Marks a run FINISHED when the block ends, FAILED (best effort) when it raises."""
    try:
        yield
    except BaseException:
        try:
            client.set_terminated(run_id, "FAILED")
        except Exception:  # the store already failed; the original error is what the user needs
            pass
        raise
    client.set_terminated(run_id, "FINISHED")


def _tags(spec: JobSpec, result: JobResult) -> dict[str, str]:
    manifest = result.manifest
    tags = {
        "rapidseval.job_hash": str(manifest.get("job_hash", "")),
        "rapidseval.backend": str(manifest.get("backend", "")),
        "rapidseval.version": str(manifest.get("packages", {}).get("rapidseval", "")),
        "rapidseval.job_kind": job_kind(spec) or "",
        "rapidseval.run_dir": str(result.run_dir),
    }
    commit = manifest.get("git_commit")
    if commit:
        tags["rapidseval.git_commit"] = str(commit)
        tags["mlflow.source.git.commit"] = str(commit)
    return tags


def _log_batches(client, run_id: str, *, params: dict[str, str], metrics: list) -> None:
    """``params`` and ``metrics`` in MLflow's batch sizes (100 params, 1000 metrics a call)."""
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=items[start:start + _PARAMS_PER_BATCH])
    for start in range(0, len(metrics), _METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + _METRICS_PER_BATCH])


# ---------------------------------------------------------------------------------------
# params
# ---------------------------------------------------------------------------------------
def flat_params(job: dict[str, Any]) -> dict[str, str]:
    """A job dump flattened to dotted keys -> MLflow param values (see the module's doc).

    >>> flat_params({"model": {"kind": "rf", "params": {"n": 5}}, "months": ["2020-01"], "x": None})
    {'model.kind': 'rf', 'model.params.n': '5', 'months': '["2020-01"]', 'x': 'null'}
    """
    out: dict[str, str] = {}
    for key, value in _flatten("", job):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if len(text) > MAX_PARAM_VALUE_LENGTH:
            text = text[:MAX_PARAM_VALUE_LENGTH - len(_TRUNCATED)] + _TRUNCATED
        out[key] = text
    return out


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    flat = isinstance(value, dict) and value and all(
        isinstance(k, str) and _KEY_SEGMENT.fullmatch(k) and len(prefix) + len(k) < _MAX_KEY_LENGTH for k in value)
    if flat:
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else k, v)
    else:
        yield prefix or "job", value


# ---------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------
def _metric_columns(table: pd.DataFrame, keys: Iterable[str]) -> list[str]:
    """The numeric (and boolean) columns of ``table`` that are not among ``keys``."""
    return [c for c in table.columns if c not in set(keys) and pd.api.types.is_numeric_dtype(table[c])]


def _values(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=float, na_value=np.nan)


def _month_start_ms(month: str) -> int:
    return int(pd.Timestamp(f"{month}-01").value // 1_000_000)


def _metrics(prefix: str, rows: pd.DataFrame, columns: list[str], steps, timestamps) -> list:
    from mlflow.entities import Metric

    out = []
    for column in columns:
        for value, step, timestamp in zip(_values(rows[column]), steps, timestamps):
            out.append(Metric(f"{prefix}{column}", float(value), int(timestamp), int(step)))
    return out


def monthly_metrics(monthly: pd.DataFrame) -> list:
    """``monthly.<model>.<column>`` per month (step = month index, timestamp = month start)."""
    if monthly is None or monthly.empty:
        return []
    columns = _metric_columns(monthly, ("model", "month"))
    out = []
    for model, rows in monthly.groupby("model", sort=False):
        months = list(rows["month"])
        out += _metrics(f"monthly.{model}.", rows, columns, [month_index(m) for m in months],
                        [_month_start_ms(m) for m in months])
    return out


def replay_metrics(replay: pd.DataFrame) -> list:
    """``replay.<model>.<column>`` per window (step = window number, timestamp = window_start ms)."""
    if replay is None or replay.empty:
        return []
    columns = _metric_columns(replay, ("model",))
    out = []
    for model, rows in replay.groupby("model", sort=False):
        rows = rows.sort_values("window_start", kind="stable")
        starts = pd.to_datetime(rows["window_start"]).astype("datetime64[ms]").astype("int64")
        out += _metrics(f"replay.{model}.", rows, columns, range(len(rows)), list(starts))
    return out


def policies_metrics(policies: pd.DataFrame) -> list:
    """``policies.<policy>.<column>`` (step 0): a backtest's summary per policy."""
    if policies is None or policies.empty:
        return []
    columns = _metric_columns(policies, ("policy",))
    segments = _key_segments(str(p) for p in policies["policy"])
    out = []
    for position in range(len(policies)):
        row = policies.iloc[[position]]
        out += _metrics(f"policies.{segments[str(row['policy'].iloc[0])]}.", row, columns, [0], [0])
    return out


def _key_segments(names: Iterable[str]) -> dict[str, str]:
    """Name -> a segment MLflow accepts in a metric key: a policy's name (free text) with any
    other character as ``_``, and ``_2``, ``_3``, ... where two names would then be one."""
    out: dict[str, str] = {}
    for name in dict.fromkeys(names):
        base = re.sub(r"[^\w\- /:]", "_", name) or "_"
        segment, n = base, 1
        while segment in out.values():
            n += 1
            segment = f"{base}_{n}"
        out[name] = segment
    return out


def backtest_metrics_by_policy(backtest: pd.DataFrame) -> dict[str, list]:
    """Policy -> ``<column>`` per eval month of its rows of ``backtest.parquet`` (step = month index)."""
    if backtest is None or backtest.empty:
        return {}
    columns = _metric_columns(backtest, ("policy",))
    out = {}
    for policy, rows in backtest.groupby("policy", sort=False):
        months = list(rows["eval_month"])
        if len(set(months)) != len(months):
            raise RapidsEvalError(f"backtest.parquet: policy {policy!r} has several rows for one eval month")
        out[str(policy)] = _metrics("", rows, columns, [month_index(m) for m in months],
                                    [_month_start_ms(m) for m in months])
    return out


def checks_metrics(checks: pd.DataFrame | None) -> list:
    """The rows of ``checks.parquet`` counted by status (step 0): ``checks.<status>`` and
    ``checks.total``, and per rubric group (:data:`rapidseval.checks.RUBRIC`: data, model,
    infrastructure, monitoring) ``checks.<group>.<status>`` for the groups the job checked."""
    from mlflow.entities import Metric

    if checks is None or checks.empty or "status" not in checks.columns:
        return []
    status = checks["status"].astype(str)
    out = [Metric(f"checks.{s}", float((status == s).sum()), 0, 0) for s in _STATUSES]
    out.append(Metric("checks.total", float(len(checks)), 0, 0))
    groups = checks["kind"].astype(str).map(RUBRIC).fillna("other")
    for group in sorted(groups.unique()):
        out += [Metric(f"checks.{group}.{s}", float(((groups == group) & (status == s)).sum()), 0, 0)
                for s in _STATUSES]
    return out


# ---------------------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------------------
def month_roles(spec: JobSpec) -> dict[str, str]:
    """Month -> its role(s) in the job, ``+``-joined (a backtest's months: ``backtest``)."""
    if spec.backtest is not None:
        return {m: "backtest" for m in spec.data.months}
    ev = spec.evaluation
    models = spec.model_specs()
    named = {
        "train": {m for model in models for m in spec.train_months(model)},
        "test": set(ev.test),
        "threshold": {m for model in models for m in spec.threshold_months(model)} - set(ev.test),
        "score": set(ev.score),
        "replay": set(ev.replay.months) if ev.replay is not None else set(),
        "shift": set(spec.shift_months()),
    }
    return {month: "+".join(role for role, months in named.items() if month in months) or "input"
            for month in spec.data.months}


def input_datasets(manifest: dict[str, Any], roles: dict[str, str]) -> list:
    """One ``DatasetInput`` per input of the manifest (see the module's doc)."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset, DatasetInput, InputTag

    out = []
    for record in manifest.get("inputs", []):
        fingerprint = str(record.get("fingerprint") or "")
        digest = fingerprint.rpartition(":")[2][:_MAX_DIGEST_LENGTH] or None
        meta = MetaDataset(_dataset_source(str(record["uri"])), name=record["month"], digest=digest)
        tags = [InputTag("mlflow.data.context", roles.get(record["month"], "input")),
                InputTag("rapidseval.fingerprint", fingerprint),
                InputTag("rapidseval.rows", str(record.get("rows"))),
                InputTag("rapidseval.bytes", str(record.get("bytes")))]
        out.append(DatasetInput(dataset=Dataset(**meta.to_dict()), tags=tags))
    return out


def _dataset_source(uri: str):
    """MLflow's dataset source for ``uri`` (local, s3, http, ...): its registry, each kind once
    (it registers some twice, then warns that a URI "can be interpreted in multiple ways")."""
    from mlflow.data.dataset_source_registry import get_registered_sources, resolve_dataset_source

    kinds: dict[str, type] = {}
    for source in get_registered_sources():
        kinds.setdefault(source.__name__, source)
    return resolve_dataset_source(uri, candidate_sources=list(kinds.values()))


# ---------------------------------------------------------------------------------------
# artifacts
# ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _local_copy(run_dir) -> Iterator[Path]:
    """The run directory as a local path: itself, or (``s3://``) a temporary copy of its files."""
    if isinstance(run_dir, Path):
        yield run_dir
        return
    with tempfile.TemporaryDirectory(prefix="rapidseval-mlflow-") as tmp:
        local = Path(tmp) / run_dir.name
        fs, base = run_dir.fs, run_dir.path.rstrip("/")
        fs.invalidate_cache(base)  # the listing the writer cached may predate report.html
        for path in fs.find(base):
            parts = path[len(base):].lstrip("/").split("/")
            if any(part in ("", ".", "..") for part in parts):
                raise RapidsEvalError(f"run directory {run_dir}: a key {path!r} that is not a plain file path")
            target = local.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(fs.cat_file(path))
        yield local


def _shown_uri(uri: str) -> str:
    """``uri`` as messages show it: as given, unless it has user info or a query to redact
    (redacting re-joins the URI, which would turn ``sqlite:////abs/path`` into another path)."""
    return redact_uri(uri) if "@" in uri or "?" in uri else uri


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= 300 else line[:297] + "..."
