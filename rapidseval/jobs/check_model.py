"""The job's model checks (``checks.assertions``, ``checks.leakage``, ``checks.consistency``):
the spec's sections turned into :mod:`rapidseval.checks.model` calls at the stages of a run.

A study calls, in order: :func:`model_checks` at the start (the assertion file is read and
validated before any training), :meth:`ModelChecks.on_training_frame` on each training frame
before it is dropped, :meth:`ModelChecks.on_models` once the thresholds are known; then
:meth:`ModelChecks.rows`, :meth:`ModelChecks.tables` and :attr:`ModelChecks.files` join the
run directory. A backtest builds :func:`fold_checks` at its start; each fold task calls
:meth:`FoldChecks.run` and keeps the result in the fold's marker; :func:`fold_check_tables`
gathers them.

Model files: ``models/<model name>.pkl`` (a pickle of the fitted model) are written to the
run directory only when ``checks.consistency`` is on: they are what that check reads back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

from ..checks import checks_table
from ..checks.model import (AssertionOutcome, AssertionSet, assertion_row, assertions_table, consistency_rows,
                            feature_aucs, leakage_rows, load_assertions, model_file_bytes, score_assertions,
                            time_leakage_rows)
from ..features import FeatureSpec
from ..spec import JobSpec

__all__ = ["ModelChecks", "model_checks", "FoldChecks", "fold_checks", "fold_check_rows", "fold_assertions",
           "fold_check_tables"]


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
        if checks.leakage is not None:
            self.check_rows += _leakage(train, self.fspec, self.spec.seed, checks.leakage, backend, models=models,
                                        month=_months_label(train_months))
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
            data = model_file_bytes(model) if checks.consistency is not None else None
            if data is not None:
                self.files[f"models/{name}.pkl"] = data
            rows, outcome = _model_rows(model, name, threshold, self.assertion_set, checks.assertions,
                                        checks.consistency, data,
                                        self.samples[name] if data is not None else None, self.fspec, backend)
            self.check_rows += rows
            if outcome is not None:
                self.outcomes.append(outcome)

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


@dataclass(frozen=True)
class FoldChecks:
    """A backtest's model checks, run in each fold task where the fold's model is in memory
    (:meth:`run`); pickled to the workers. Each row's ``month`` is the fold's origin."""

    model_name: str
    seed: int
    fspec: FeatureSpec
    assertion_set: AssertionSet | None
    assertions: Any = None   # the spec's sections (None: not run)
    leakage: Any = None
    consistency: Any = None

    @property
    def key(self) -> str:
        """What the checks are (a fold marker whose key differs is fitted again, so a resumed
        job never lacks a check, nor keeps the outcomes of an assertion file since edited)."""
        sections = [s.model_dump(mode="json") if s is not None else None
                    for s in (self.assertions, self.leakage, self.consistency)]
        aset = self.assertion_set
        return json.dumps([self.model_name, sections, [aset.source, aset.fingerprint()] if aset else None],
                          sort_keys=True)

    def run(self, model, file_bytes: bytes, train, threshold: float, backend, *, origin: str) -> dict[str, Any]:
        """The fold's check rows and assertion outcomes, JSON-able for its marker:
        ``{"key", "rows", "assertions"}``. ``file_bytes`` are the model file the fold wrote
        (consistency reloads them). A fold's training months precede its evaluation months by
        construction, so its time-leakage row passes."""
        rows: list[dict[str, Any]] = []
        if self.leakage is not None:
            rows += _leakage(train, self.fspec, self.seed, self.leakage, backend, models=[self.model_name],
                             month=origin)
            rows += time_leakage_rows({}, [self.model_name], severity=self.leakage.severity,
                                      month_of={self.model_name: origin})
        sample = train.head(self.consistency.sample_rows) if self.consistency is not None else None
        model_rows, outcome = _model_rows(model, self.model_name, threshold, self.assertion_set, self.assertions,
                                          self.consistency, file_bytes, sample, self.fspec, backend, month=origin)
        rows += model_rows
        return {"key": self.key, "rows": [{**r, "window_start": None} for r in rows],
                "assertions": [outcome.to_json()] if outcome is not None else []}


def _leakage(train, fspec: FeatureSpec, seed: int, leakage, backend, *, models: Sequence[str],
             month: str | None) -> list[dict[str, Any]]:
    """The ``leakage`` rows of a training frame (``leakage``: the spec's section), for ``models``."""
    aucs = feature_aucs(train, fspec.features, fspec.target, backend, seed=seed)
    return leakage_rows(aucs, max_feature_auc=leakage.max_feature_auc, severity=leakage.severity, models=models,
                        month=month, rows=len(train))


def _model_rows(model, name: str, threshold: float, aset: AssertionSet | None, assertions, consistency,
                file_bytes: bytes | None, sample, fspec: FeatureSpec, backend, *, month: str | None = None
                ) -> tuple[list[dict[str, Any]], AssertionOutcome | None]:
    """One fitted model's ``assertions`` and ``consistency`` rows (the spec's sections; None: not
    run), and its assertion outcome (None without a set): what a study's model and a
    backtest's fold both get."""
    rows: list[dict[str, Any]] = []
    outcome = None
    if aset is not None:
        outcome = score_assertions(aset, model, threshold, backend, model_name=name, month=month)
        rows.append(assertion_row(outcome, aset.source, severity=assertions.severity,
                                  max_failures=assertions.max_failures))
    if consistency is not None:
        rows += consistency_rows(model, file_bytes, sample, fspec.features, backend, model_name=name,
                                 severity=consistency.severity, gpu_cpu_tolerance=consistency.gpu_cpu_tolerance,
                                 month=month)
    return rows, outcome


def fold_checks(spec: JobSpec, fspec: FeatureSpec) -> FoldChecks | None:
    """A backtest's :class:`FoldChecks` (None without model checks), the assertion file read
    and validated now, before any fold is fitted."""
    base = model_checks(spec, fspec)
    if base is None:
        return None
    checks = spec.checks
    return FoldChecks(spec.model_specs()[0].name, spec.seed, fspec, base.assertion_set, checks.assertions,
                      checks.leakage, checks.consistency)


def fold_check_rows(records: Sequence[dict[str, Any]], checks: FoldChecks | None) -> list[dict[str, Any]]:
    """The folds' check rows, in origin order, from their records (none without model checks)."""
    if checks is None:
        return []
    return [row for r in sorted(records, key=lambda r: r["origin"]) for row in r["checks"]["rows"]]


def fold_assertions(records: Sequence[dict[str, Any]], checks: FoldChecks | None) -> dict[str, pd.DataFrame]:
    """``assertions`` (the failing rows, in origin order) from the folds' records, when the job
    has an assertion set."""
    if checks is None or checks.assertion_set is None:
        return {}
    ordered = sorted(records, key=lambda r: r["origin"])
    return {"assertions": assertions_table([AssertionOutcome.from_json(o) for r in ordered
                                            for o in r["checks"]["assertions"]])}


def fold_check_tables(records: Sequence[dict[str, Any]], checks: FoldChecks | None) -> dict[str, pd.DataFrame]:
    """``checks`` (the folds' rows, in origin order) and ``assertions`` (the failing rows) from
    the folds' records."""
    if checks is None:
        return {}
    return {"checks": checks_table(fold_check_rows(records, checks)), **fold_assertions(records, checks)}


def _months_label(months: Sequence[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
