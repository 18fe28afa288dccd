"""The job's model checks (``checks.assertions``, ``checks.leakage``, ``checks.consistency``):
the spec's sections turned into :mod:`rapidseval.checks.model` calls at the stages of a run.

A study calls, in order: :func:`model_checks` at the start (the assertion file is read and
validated before any training), :meth:`ModelChecks.on_training_frame` on each training frame
before it is dropped, :meth:`ModelChecks.on_models` once the thresholds are known; then
:meth:`ModelChecks.rows`, :meth:`ModelChecks.tables` and :attr:`ModelChecks.files` join the
run directory. A backtest's fold task calls :func:`fold_model_checks` (see there).

Model files: ``models/<model name>.pkl`` (a pickle of the fitted model) are written to the
run directory only when ``checks.consistency`` is on: they are what that check reads back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ..checks.model import (AssertionOutcome, AssertionSet, assertion_row, assertions_table, consistency_rows,
                            feature_aucs, leakage_rows, load_assertions, model_file_bytes, score_assertions,
                            time_leakage_rows)
from ..features import FeatureSpec
from ..spec import JobSpec

__all__ = ["ModelChecks", "model_checks", "fold_model_checks"]


@dataclass
class ModelChecks:
    """The model checks of one run: what they found so far (check rows, assertion outcomes,
    model files)."""

    spec: JobSpec
    fspec: FeatureSpec
    assertion_set: AssertionSet | None
    check_rows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[AssertionOutcome] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)  # model -> its consistency sample

    def on_training_frame(self, train, train_months: Sequence[str], models: Sequence[str], backend) -> None:
        """Leakage of ``train`` (the training frame of ``models``), and the consistency sample
        (its first ``sample_rows`` rows), before the frame is dropped."""
        checks = self.spec.checks
        month = _months_label(train_months)
        if checks.leakage is not None:
            aucs = feature_aucs(train, self.fspec.features, self.fspec.target, backend, seed=self.spec.seed)
            self.check_rows += leakage_rows(aucs, max_feature_auc=checks.leakage.max_feature_auc,
                                            severity=checks.leakage.severity, models=models, month=month,
                                            rows=len(train))
        if checks.consistency is not None:
            sample = train.head(checks.consistency.sample_rows)
            for name in models:
                self.samples[name] = sample

    def on_models(self, names: Sequence[str], models: Sequence[Any], thresholds: Sequence[float], backend) -> None:
        """The assertion set scored by every model, the time-leakage rows, and each model's file
        written and read back (consistency)."""
        checks = self.spec.checks
        if checks.leakage is not None:
            self.check_rows += time_leakage_rows(self.spec.train_eval_overlap(), names,
                                                 severity=checks.leakage.severity)
        for name, model, threshold in zip(names, models, thresholds):
            if self.assertion_set is not None:
                outcome = score_assertions(self.assertion_set, model, threshold, backend, model_name=name)
                self.outcomes.append(outcome)
                self.check_rows.append(assertion_row(outcome, self.assertion_set.source,
                                                     severity=checks.assertions.severity,
                                                     max_failures=checks.assertions.max_failures))
            if checks.consistency is not None:
                data = model_file_bytes(model)
                self.files[f"models/{name}.pkl"] = data
                self.check_rows += consistency_rows(
                    model, data, self.samples[name], self.fspec.features, backend, model_name=name,
                    severity=checks.consistency.severity, gpu_cpu_tolerance=checks.consistency.gpu_cpu_tolerance)

    def tables(self) -> dict[str, pd.DataFrame]:
        """``assertions.parquet`` (the failing rows) when the job has an assertion set."""
        return {"assertions": assertions_table(self.outcomes)} if self.assertion_set is not None else {}


def model_checks(spec: JobSpec, fspec: FeatureSpec) -> ModelChecks | None:
    """The run's model checks, the assertion file read and validated now (None without any)."""
    checks = spec.checks
    if checks.assertions is None and checks.leakage is None and checks.consistency is None:
        return None
    aset = None
    if checks.assertions is not None:
        aset = load_assertions(checks.assertions.path, fspec, storage_options=spec.data.storage_options or None)
    return ModelChecks(spec, fspec, aset)


def fold_model_checks(spec: JobSpec, fspec: FeatureSpec, aset: AssertionSet | None, *, model_name: str,
                      fold_label: str, model, threshold: float, train, backend) -> dict[str, Any]:
    """A backtest fold's model checks, in the fold task: ``{"rows": [...], "assertions": [...]}``
    (JSON-able, kept in the fold's marker so a resumed job keeps them). Each row's ``month`` is
    the fold (``fold_label``: its origin); a fold's training months never overlap its evaluation
    months, so its time-leakage row passes."""
    checks = spec.checks
    rows: list[dict[str, Any]] = []
    outcomes = []
    if checks.leakage is not None:
        aucs = feature_aucs(train, fspec.features, fspec.target, backend, seed=spec.seed)
        rows += leakage_rows(aucs, max_feature_auc=checks.leakage.max_feature_auc,
                             severity=checks.leakage.severity, models=[model_name], month=fold_label,
                             rows=len(train))
        rows += time_leakage_rows({}, [model_name], severity=checks.leakage.severity,
                                  month_of={model_name: fold_label})
    if aset is not None:
        outcome = score_assertions(aset, model, threshold, backend, model_name=model_name, month=fold_label)
        outcomes.append(outcome.to_json())
        rows.append(assertion_row(outcome, aset.source, severity=checks.assertions.severity,
                                  max_failures=checks.assertions.max_failures))
    if checks.consistency is not None:
        rows += consistency_rows(model, model_file_bytes(model), train.head(checks.consistency.sample_rows),
                                 fspec.features, backend, model_name=model_name,
                                 severity=checks.consistency.severity,
                                 gpu_cpu_tolerance=checks.consistency.gpu_cpu_tolerance, month=fold_label)
    return {"rows": rows, "assertions": outcomes}


def _months_label(months: Sequence[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
