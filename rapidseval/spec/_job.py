"""A whole job: the sections every kind shares, and one class per job kind.

A job is a study (``evaluation``: train, test, score, replay, shift) or a
backtest (``backtest``: rolling origins with retraining policies).
:data:`Job` is the discriminated union of the two, by ``kind``; a job file
without ``kind`` is a backtest when it has a ``backtest`` section. ``kind`` is
not part of the dump (the manifest's ``job`` and :func:`spec_hash` stay those
of the job file).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, TypeAdapter, field_validator, model_validator

from ..core.registry import FEATURES
from ..core.time import month_index
from ._backtest import BacktestSpec
from ._base import MAX_SEED, Section, statistic_problem
from ._checks import ChecksSpec
from ._data import DataSpec, FeaturesSpec
from ._evaluation import EvaluationSpec
from ._model import ModelSpec
from ._runtime import ClusterSpec, OutputSpec

__all__ = ["JobSpec", "StudyJob", "BacktestJob", "Job", "JOB_KINDS", "JOB_ADAPTER", "job_kind"]

#: the job kinds, as ``kind`` names them
JOB_KINDS = ("study", "backtest")


class JobSpec(Section):
    """A whole job: the sections every kind shares. See ``jobs/*.yaml`` for examples.

    :func:`rapidseval.spec.load_job` returns the job's kind: a :class:`StudyJob`
    or a :class:`BacktestJob` (both are JobSpecs; ``spec.backtest is None`` tells them apart too).
    """

    name: str = "job"
    seed: int = Field(0, ge=0, le=MAX_SEED)
    backend: Literal["auto", "cpu", "gpu"] = "auto"
    data: DataSpec = Field(default_factory=DataSpec)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    models: list[ModelSpec] | None = Field(
        None, description="several models on the same stream (the first is the primary); instead of model"
    )
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    checks: ChecksSpec = Field(default_factory=ChecksSpec, description="tests of data, model and system (README, "
                                                                      "\"Checks\"); a failed fail check: exit 3")
    backtest: BacktestSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("name must be letters, digits, '.', '_' or '-' (it names the run directory)")
        return v

    def model_specs(self) -> list[ModelSpec]:
        """Every model of the job, named (the first is the primary)."""
        specs = self.models if self.models is not None else [self.model]
        return [m if m.name else m.model_copy(update={"name": m.kind}) for m in specs]

    def train_months(self, m: ModelSpec) -> list[str]:
        return list(m.train) if m.train is not None else list(self.evaluation.train)

    def threshold_months(self, m: ModelSpec) -> list[str]:
        if isinstance(m.threshold, float):
            return []
        return list(m.threshold.months) if m.threshold.months is not None else list(self.evaluation.test)

    def eval_months(self) -> list[str]:
        """Months the models are judged on: evaluation.test, score and replay months, in data order."""
        ev = self.evaluation
        wanted = set(ev.test) | set(ev.score) | set(ev.replay.months if ev.replay is not None else ())
        return [m for m in self.data.months if m in wanted] if wanted else []

    def train_eval_overlap(self) -> dict[str, dict[str, list[str]]]:
        """Per model name, its training months that overlap or follow the first evaluation month
        (and the evaluation months they leak into); empty when every model trains strictly before
        (a backtest's folds never overlap)."""
        return {}

    def evaluated_months(self) -> list[str]:
        """Months scored by the models, in data order (a backtest: every data month)."""
        return list(self.data.months)

    def shift_months(self) -> list[str]:
        """Months the shift study reads (reference and compare), in data order (none but a study's)."""
        return []


class StudyJob(JobSpec):
    """A study: train, test, score, replay and the shift study of ``evaluation`` (no ``backtest``)."""

    kind: Literal["study"] = Field("study", exclude=True, description="the job kind (default: study unless a "
                                                                      "backtest section is given)")
    backtest: None = None

    @field_validator("backtest", mode="before")
    @classmethod
    def _no_backtest(cls, v):
        if v is not None:
            raise ValueError("a study has no backtest section (kind: study); leave kind out or set kind: backtest")
        return v

    @model_validator(mode="after")
    def _months_in_range(self):
        months = set(self.data.months)
        for where, used in self._months_used().items():
            outside = [m for m in used if m not in months]
            if outside:
                raise ValueError(
                    f"{where}: month(s) {', '.join(outside)} outside data months {self.data.start}..{self.data.end}"
                )
        leaks = self.train_eval_overlap()
        if leaks and not self.evaluation.allow_overlap:
            name, leak = next(iter(leaks.items()))
            where = "model" if self.models is None else f"models.{[m.name for m in self.model_specs()].index(name)}"
            raise ValueError(
                f"{where}.train: time leakage: model {name} trains on {', '.join(leak['train_months'])}, "
                f"not before the month(s) it is evaluated on ({', '.join(leak['eval_months'])}); train on earlier "
                "months, or set evaluation.allow_overlap: true to accept (the manifest then records it)")
        return self

    def _months_used(self) -> dict[str, list[str]]:
        """Dotted field path -> the months it names (each must be a data month)."""
        ev = self.evaluation
        used = {"evaluation.train": ev.train, "evaluation.test": ev.test, "evaluation.score": ev.score}
        if ev.replay is not None:
            used["evaluation.replay.months"] = ev.replay.months
        if ev.shift is not None:
            used["evaluation.shift.reference"] = [ev.shift.reference]
            used["evaluation.shift.compare"] = ev.shift.compare
        for i, m in enumerate(self.model_specs()):
            where = "model" if self.models is None else f"models.{i}"
            used[f"{where}.train"] = self.train_months(m)
            if not isinstance(m.threshold, float):
                used[f"{where}.threshold.months"] = self.threshold_months(m)
        return used

    @model_validator(mode="after")
    def _shift_kinds(self):
        """Statistics named per feature must apply to the feature's kind as the job declares it."""
        shift = self.evaluation.shift
        if shift is None:
            return self
        kinds = self.features.feature_kinds()
        for feature, names in shift.per_feature.items():
            problem = statistic_problem(names, feature, kinds.get(feature, FEATURES.get(feature, "continuous")))
            if problem:
                raise ValueError(f"evaluation.shift.per_feature: {problem}")
        return self

    @model_validator(mode="after")
    def _models(self):
        if self.models is not None:
            if "model" in self.model_fields_set:
                raise ValueError("give either model or models, not both")
            if not self.models:
                raise ValueError("models: at least one model is needed")
            names = [m.name or m.kind for m in self.models]
            dup = sorted(x for x, k in Counter(names).items() if k > 1)
            if dup:
                raise ValueError(f"models: names must differ ({', '.join(dup)} repeated; set name:)")
        for i, m in enumerate(self.model_specs()):
            if not isinstance(m.threshold, float) and not self.threshold_months(m):
                where = "model" if self.models is None else f"models.{i}"
                raise ValueError(f"{where}.threshold: learning a threshold needs months (threshold.months or evaluation.test)")
        return self

    def train_eval_overlap(self) -> dict[str, dict[str, list[str]]]:
        evals = self.eval_months()
        if not evals:
            return {}
        first = month_index(evals[0])
        out = {}
        for m in self.model_specs():
            late = [t for t in self.train_months(m) if month_index(t) >= first]
            if late:
                last = max(month_index(t) for t in late)
                out[m.name] = {"train_months": late, "eval_months": [e for e in evals if month_index(e) <= last]}
        return out

    def evaluated_months(self) -> list[str]:
        ev = self.evaluation
        wanted = set(ev.train) | set(ev.test) | set(ev.score)
        for m in self.model_specs():
            wanted |= set(self.train_months(m)) | set(self.threshold_months(m))
        if ev.replay is not None:
            wanted |= set(ev.replay.months)
        return [m for m in self.data.months if m in wanted]

    def shift_months(self) -> list[str]:
        shift = self.evaluation.shift
        if shift is None:
            return []
        wanted = {shift.reference, *shift.compare}
        return [m for m in self.data.months if m in wanted]


class BacktestJob(JobSpec):
    """A backtest: retraining policies of one model compared over rolling origins (``backtest``
    replaces ``evaluation``). Its folds must fit the data period: :func:`rapidseval.jobs.checks.check_job`."""

    kind: Literal["backtest"] = Field("backtest", exclude=True, description="the job kind")
    backtest: BacktestSpec = Field(..., description="the backtest (kind: backtest needs one, {} for the defaults)")

    @model_validator(mode="after")
    def _backtest_sections(self):
        if "evaluation" in self.model_fields_set:
            raise ValueError("a job with a backtest section has no evaluation section (the backtest replaces it)")
        if self.models is not None:
            raise ValueError("a backtest compares retraining policies of one model: give model, not models")
        if not isinstance(self.model.threshold, float):
            raise ValueError("model.threshold: a backtest takes a fixed threshold (a number), not a learned one")
        unknown = [f for f in self.backtest.drift.features or () if f not in self.features.features]
        if unknown:
            raise ValueError(f"backtest.drift.features: {', '.join(unknown)} not among the job's features "
                             f"({', '.join(self.features.features)})")
        return self


def job_kind(raw: Any) -> str | None:
    """The kind of a raw job (a mapping) or of a job: ``kind`` when given, else ``backtest``
    when the job has a backtest section, else ``study``. None for a kind that is not one of
    :data:`JOB_KINDS` (the union then names the choices)."""
    if isinstance(raw, JobSpec):  # a StudyJob or BacktestJob says so; a bare JobSpec by its sections
        return getattr(raw, "kind", None) or ("backtest" if raw.backtest is not None else "study")
    if not isinstance(raw, dict):
        return None
    kind = raw.get("kind")
    if kind is None:
        return "backtest" if raw.get("backtest") is not None else "study"
    return kind if kind in JOB_KINDS else None


#: a job of any kind, told apart by :func:`job_kind`
Job = Annotated[
    Annotated[StudyJob, Tag("study")] | Annotated[BacktestJob, Tag("backtest")],
    Discriminator(job_kind, custom_error_type="job_kind",
                  custom_error_message=f"kind must be one of {', '.join(JOB_KINDS)} (left out: backtest when the "
                                       "job has a backtest section, else study)"),
]

#: validates a raw job mapping into its kind's class
JOB_ADAPTER: TypeAdapter[StudyJob | BacktestJob] = TypeAdapter(Job)
