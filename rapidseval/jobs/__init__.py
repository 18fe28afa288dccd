"""Running jobs: load the spec, claim the run directory, run the job's kind.

Each job kind is one module whose ``run(ctx: JobContext)`` is a readable
sequence of stages and returns the kind's result (:mod:`rapidseval.jobs.study`,
:mod:`rapidseval.jobs.backtest`); :data:`JOB_RUNNERS` maps a kind's name
(:data:`rapidseval.spec.JOB_KINDS`) to it, so a third kind is its spec class in
:mod:`rapidseval.spec`, one new module here and one entry there.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from ..io.rundir import claim_run_dir
from ..spec import check_overrides_type, job_kind
from .checks import load_job
from . import backtest, study
from .context import JobContext
from .inputs import MonthInput, input_months, resolve_inputs
from .progress import Reporter
from .results import BacktestResult, JobResult, StudyResult
from ..core.errors import RapidsEvalError
from .tracking import TrackingError, log_run, require_mlflow

__all__ = ["run", "JOB_RUNNERS", "job_kind", "JobContext", "JobResult", "StudyResult", "BacktestResult", "TrackingError",
           "MonthInput", "input_months", "resolve_inputs"]

#: job kind (:func:`rapidseval.spec.job_kind`) -> the function that runs it on a :class:`JobContext`
JOB_RUNNERS: dict[str, Callable[[JobContext], JobResult]] = {
    "study": study.run,
    "backtest": backtest.run,
}


def run(job, *, backend: str | None = None, scheduler: str | None = None, out: str | os.PathLike | None = None,
        overrides=None, reporter: Reporter | None = None) -> JobResult:
    """Run a job (path, mapping or :class:`~rapidseval.spec.JobSpec`) and write its run directory.

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

    Returns
    -------
    StudyResult or BacktestResult
        The result of the job's kind, its tables as DataFrames.

    Raises
    ------
    TypeError
        An argument of the wrong type (e.g. ``overrides`` as one string).
    RapidsEvalError
        Anything the job, its inputs or its output directory make impossible;
        the output directory is checked and locked before any work starts.
    TrackingError
        (a RapidsEvalError) ``output.mlflow`` logging failed after the run directory was
        complete; its ``result`` is the run's result.
    """
    _check_types(backend=backend, scheduler=scheduler, out=out, reporter=reporter)
    check_overrides_type(overrides)
    spec = load_job(job, _all_overrides(overrides, backend=backend, scheduler=scheduler, out=out))
    reporter = reporter or Reporter()
    if spec.output.mlflow is not None:
        require_mlflow()  # a missing extra is said before any work, not after the run
    with claim_run_dir(spec, reporter):  # refused or locked before any work; released when written
        result = JOB_RUNNERS[job_kind(spec)](JobContext.start(spec, reporter))
        if spec.output.mlflow is not None:  # after the run directory is complete; imports MLflow only then
            try:
                log_run(result, spec, reporter=reporter)
            except RapidsEvalError as exc:  # the run is complete: its result travels with the error
                raise TrackingError(str(exc), result) from exc
        return result


def _all_overrides(overrides, *, backend: str | None, scheduler: str | None, out: str | os.PathLike | None):
    """``overrides`` with the named arguments added, in the form ``overrides`` came in (None when none)."""
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
    if isinstance(overrides, (list, tuple)):
        combined: Any = list(overrides) + [f"{k}={json.dumps(v)}" for k, v in extra.items()]
    else:
        combined = extra
    return combined or None


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
