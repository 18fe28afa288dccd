"""Job specification: YAML -> validated pydantic model.

A job file is data: it is read with a strict ``yaml.SafeLoader`` (no
aliases or anchors, so no "billion laughs"; no duplicate keys; at most
:data:`MAX_JOB_BYTES`), every section forbids unknown fields, every number
is bounded, and every error names the field (by its dotted path) and, where
the choices come from a registry, lists them.  ``--set a.b=c`` overrides are
applied to the raw mapping before validation, so they are validated exactly
like the file.

The spec is pure: it imports only :mod:`rapidseval.core`, and validates names
against the registries of :mod:`rapidseval.core.registry`. What needs domain
code (policies bind their parameters, folds fit the period, the run
directory's rules, the calculators) is in :mod:`rapidseval.jobs.checks`;
:func:`rapidseval.load_job` is this module's :func:`load_job` plus those checks.

Modules: ``_yaml`` (the strict reader), ``_base`` (sections, bounds, the
statistic-name check), ``_data``, ``_model``, ``_alarm``, ``_evaluation``,
``_backtest``, ``_runtime`` (the sections), ``_job`` (the job kinds and their
union), ``_load`` (reading, overrides, hashing).
"""

from __future__ import annotations

from ._alarm import AlarmSpec
from ._backtest import BacktestSpec, DriftSpec, PolicySpec
from ._checks import (DATA_RULES, SEVERITIES, SLICE_MAPPINGS, AssertionsSpec, BaselineSpec, ChecksSpec,
                      ConsistencySpec, DataCheckSpec, JumpsSpec, LeakageSpec, MlflowSpec, PredicateSpec, SliceSpec,
                      SlicesSpec)
from ._base import MAX_JOB_BYTES, MAX_PERIOD_MONTHS, MAX_ROWS, MAX_SEED, statistic_problem
from ._data import DataSpec, FeaturesSpec, SyntheticSpec, normalise_drop_rules
from ._evaluation import BandSpec, EvaluationSpec, ReplaySpec, ShiftSpec
from ._job import JOB_ADAPTER, JOB_KINDS, BacktestJob, Job, JobSpec, StudyJob, job_kind
from ._load import apply_overrides, check_overrides_type, job_origin, load_job, spec_hash
from ._model import MODEL_PARAM_BOUNDS, ModelSpec, ThresholdSpec
from ._runtime import CLUSTER_KINDS, ClusterSpec, OutputSpec, TLSSpec

__all__ = [
    "JobSpec", "StudyJob", "BacktestJob", "Job", "JOB_KINDS", "JOB_ADAPTER", "job_kind",
    "load_job", "apply_overrides", "spec_hash", "check_overrides_type", "job_origin",
    "MAX_PERIOD_MONTHS", "MAX_JOB_BYTES", "MAX_ROWS", "MAX_SEED", "MODEL_PARAM_BOUNDS", "CLUSTER_KINDS",
    "DataSpec", "SyntheticSpec", "FeaturesSpec", "normalise_drop_rules", "ModelSpec", "ThresholdSpec",
    "EvaluationSpec", "ReplaySpec", "BandSpec", "ShiftSpec", "AlarmSpec", "statistic_problem",
    "BacktestSpec", "PolicySpec", "DriftSpec", "ClusterSpec", "TLSSpec", "OutputSpec",
    "ChecksSpec", "DataCheckSpec", "PredicateSpec", "AssertionsSpec", "BaselineSpec", "JumpsSpec", "LeakageSpec",
    "ConsistencySpec", "SlicesSpec", "SliceSpec", "MlflowSpec", "SEVERITIES", "DATA_RULES", "SLICE_MAPPINGS",
]
