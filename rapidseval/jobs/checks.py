"""The domain side of a job spec: checks that need domain code, and the objects a spec describes.

:mod:`rapidseval.spec` is pure (it validates names against the registries);
what only the domain can judge runs here, after the spec has validated:

* the retraining policies bind their parameters (:func:`rapidseval.backtest.make_policy`);
* the backtest's folds fit the data period (:class:`rapidseval.backtest.MonthSplitter`);
* ``output.dir`` follows the run directory's rules (:func:`rapidseval.io.rundir.check_dir_template`);
* no ``storage_options`` carries credentials (:func:`rapidseval.io.sources.reject_secrets`).

:func:`load_job` is the spec's ``load_job`` plus :func:`check_job`: what
``rapidseval validate``, ``rapidseval run`` and :func:`rapidseval.load_job` call,
so all three give the same errors. The builders (:func:`shift_calculator`,
:func:`drift_calculator`, :func:`splitter`) turn spec sections into engine objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backtest import MonthSplitter, make_policy
from ..core.errors import RapidsEvalError, SpecError
from ..io.rundir import check_dir_template
from ..io.sources import reject_secrets
from ..models import make_model
from ..shift import ShiftCalculator, Threshold, threshold_from_options
from ..spec import AlarmSpec, BacktestSpec, DriftSpec, JobSpec, ShiftSpec, job_origin
from ..spec import load_job as load_spec
from .check_data import data_column_problems
from .check_slices import slice_problems
from .tracking import require_mlflow

__all__ = ["JobProblem", "job_problems", "check_job", "check_models", "load_job", "shift_calculator", "drift_calculator", "splitter"]


@dataclass(frozen=True)
class JobProblem:
    """One domain check a job fails: the dotted field path (empty for the whole job) and the message."""

    where: str
    message: str

    def line(self, origin: str) -> str:
        """``origin: where: message``, as the spec's own errors read."""
        return f"{origin}: {self.where}: {self.message}" if self.where else f"{origin}: {self.message}"


def _secrets(where: str, options: Mapping[str, Any]) -> Iterator[JobProblem]:
    try:
        reject_secrets(options)
    except SpecError as exc:
        yield JobProblem(where, str(exc))


def _output_dir(template: str) -> Iterator[JobProblem]:
    try:
        check_dir_template(template)
    except ValueError as exc:
        yield JobProblem("output.dir", str(exc))


def _policies(backtest: BacktestSpec) -> Iterator[JobProblem]:
    for i, policy in enumerate(backtest.policies):
        try:
            make_policy(policy.kind, policy.params)
        except SpecError as exc:
            yield JobProblem(f"backtest.policies.{i}", str(exc))


def _folds(backtest: BacktestSpec, months: Sequence[str]) -> Iterator[JobProblem]:
    try:
        splitter(backtest).folds(list(months))
    except SpecError as exc:
        yield JobProblem("", f"backtest: {exc}")


def _data_checks(spec: JobSpec) -> Iterator[JobProblem]:
    for where, message in data_column_problems(spec):
        yield JobProblem(where, message)


def _tracking(spec: JobSpec) -> Iterator[JobProblem]:
    """``output.mlflow``: the extra installed, and a local sqlite store's folder there (found
    now, not after the whole run)."""
    tracking = spec.output.mlflow
    if tracking is None:
        return
    try:
        require_mlflow()
    except RapidsEvalError as exc:
        yield JobProblem("", str(exc))  # the message names output.mlflow
    uri = tracking.tracking_uri
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        if not folder.is_dir():
            yield JobProblem("output.mlflow.tracking_uri", f"{uri}: the folder {folder} of the sqlite store "
                                                           "does not exist (MLflow creates the file, not its folder)")


def job_problems(spec: JobSpec) -> list[JobProblem]:
    """Every domain check ``spec`` fails, in the order of its fields (empty when it passes them all)."""
    problems = [*_secrets("data.storage_options", spec.data.storage_options), *_output_dir(spec.output.dir),
                *_secrets("output.storage_options", spec.output.storage_options)]
    problems.extend(_data_checks(spec))  # checks.data: each column canonical, a feature or the target
    problems.extend(JobProblem(where, message) for where, message in slice_problems(spec))
    problems.extend(_tracking(spec))
    if spec.backtest is not None:
        problems.extend(_policies(spec.backtest))
        if not problems:  # the folds are judged once every section holds, as the whole-job checks are
            problems.extend(_folds(spec.backtest, spec.data.months))
    return problems


def check_job(spec: JobSpec, origin: str = "job") -> JobSpec:
    """``spec`` when it passes the domain checks, else a :class:`SpecError` with one line per problem.

    Parameters
    ----------
    spec : a validated job (:func:`rapidseval.spec.load_job`).
    origin : what the lines call the job (its file's path, else ``job``).
    """
    problems = job_problems(spec)
    if problems:
        raise SpecError("\n".join(problem.line(origin) for problem in problems))
    return spec


def check_models(spec: JobSpec, backend) -> None:
    """Build each of the job's models on ``backend`` as a run does before it reads any data
    (:func:`rapidseval.models.make_model`), for ``rapidseval validate``.

    Raises
    ------
    SpecError
        ``model.params: ...``: a parameter the estimator does not take, or (on the CPU
        backend, where a copy is fitted on a few rows) a value it refuses.
    """
    for model in spec.model_specs():
        make_model(backend, model.kind, model.params, spec.seed)


def load_job(job: str | Path | dict[str, Any] | JobSpec, overrides=None) -> JobSpec:
    """Load, validate and check a job: :func:`rapidseval.spec.load_job`, then :func:`check_job`.

    Raises
    ------
    TypeError
        ``job`` or ``overrides`` of a type that cannot be a job or overrides.
    SpecError
        The job cannot be read, or is invalid; the message names the file, line or field.
    """
    return check_job(load_spec(job, overrides), job_origin(job))


def alarm_threshold(alarm: AlarmSpec) -> Threshold:
    """The :class:`rapidseval.shift.thresholds.Threshold` of a section's alarm keys
    (``alarm``, ``window_alarm_rate``, ``k_std``, ``quantile``, ``min_effect``)."""
    return threshold_from_options(alarm.alarm, window_alarm_rate=alarm.window_alarm_rate, k_std=alarm.k_std,
                                  quantile=alarm.quantile, min_effect=alarm.min_effect)


def shift_calculator(shift: ShiftSpec, features: Sequence[str], *, fill_value: float = -1.0, xp=None,
                     kinds: Mapping[str, str] | None = None) -> ShiftCalculator:
    """The :class:`rapidseval.shift.ShiftCalculator` ``evaluation.shift`` describes.

    Parameters
    ----------
    shift : the job's shift section.
    features : the features compared.
    fill_value : the job's ``features.fill_value`` (missing values).
    xp : the backend's array module, for the calibration.
    kinds : the job's feature kinds (:meth:`rapidseval.spec.FeaturesSpec.feature_kinds`).
    """
    return ShiftCalculator(features, statistics=shift.statistics, per_feature=shift.per_feature, kinds=kinds,
                           frequency=shift.window, calendar=shift.calendar, threshold=alarm_threshold(shift),
                           bins=shift.bins, fill_value=fill_value, alpha=shift.alpha, xp=xp)


def drift_calculator(drift: DriftSpec, features: Sequence[str], *, fill_value: float = -1.0, xp=None,
                     threads: int | None = None, kinds: Mapping[str, str] | None = None) -> ShiftCalculator:
    """An unfitted :class:`rapidseval.shift.ShiftCalculator` for ``backtest.drift`` (monthly windows).

    Parameters are those of :func:`shift_calculator`; ``threads`` bounds the calculator's threads.
    """
    return ShiftCalculator(features, statistics=drift.statistics, kinds=kinds, frequency="M",
                           threshold=alarm_threshold(drift), fill_value=fill_value, xp=xp, threads=threads)


def splitter(backtest: BacktestSpec) -> MonthSplitter:
    """The :class:`rapidseval.backtest.MonthSplitter` of a backtest section (its rolling origins)."""
    return MonthSplitter(origins=backtest.origins, every=backtest.every, first_origin=backtest.first_origin,
                         train_months=backtest.train_months, gap=backtest.gap, horizon=backtest.horizon)
