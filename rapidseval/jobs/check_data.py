"""The job's data checks (``checks.data``): rules resolved from the spec, for the score pass
(study) and the features stage (backtest)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from ..checks.data import DataAccumulator, DataReduce, DataRule
from ..core.errors import SpecError
from ..core.time import period_windows
from ..features import FeatureSpec
from ..io.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA
from ..spec import DataCheckSpec, JobSpec

__all__ = ["data_plan", "data_rules", "data_column_problems", "rules_hash"]


def _used_names(spec: JobSpec) -> tuple[str, ...]:
    """The columns of the rows used a rule may name: the job's features and its target."""
    return (*spec.features.features, spec.features.target)


def _resolve(i: int, check: DataCheckSpec, used_names: tuple[str, ...], fill_value: float | None = None
             ) -> DataRule:
    """One spec entry -> :class:`DataRule` (``on`` from where the column is), or SpecError.

    ``used_names`` are the job's features then its target (last): a used feature holds
    ``fill_value`` where its input was missing, and the rule counts that value as missing."""
    where = f"checks.data[{i}].column"
    on = check.on or ("read" if check.column in CANONICAL_COLUMNS else "used" if check.column in used_names else None)
    if on is None or (on == "read" and check.column not in CANONICAL_COLUMNS) or (
            on == "used" and check.column not in used_names):
        choices = (f"a canonical column ({', '.join(CANONICAL_COLUMNS)}) or a feature/target of the job "
                   f"({', '.join(used_names)})") if check.on is None else (
            f"with on: read, a canonical column ({', '.join(CANONICAL_COLUMNS)})" if check.on == "read"
            else f"with on: used, a feature or the target of the job ({', '.join(used_names)})")
        raise SpecError(f"{where}: unknown column {check.column!r}; choose {choices}")
    numeric = on == "used" or CANONICAL_SCHEMA[check.column] == "float64"
    if not numeric and check.rule != "not_null":
        raise SpecError(f"checks.data[{i}].rule: {check.column} is a {CANONICAL_SCHEMA[check.column]} column; "
                        f"only not_null applies to it, not {check.rule}")
    where_spec = check.where
    return DataRule(
        label=check.label, column=check.column, rule=check.rule, on=on, severity=check.severity,
        min=check.min, max=check.max, values=tuple(check.values) if check.values is not None else None,
        where_min=where_spec.min if where_spec else None, where_max=where_spec.max if where_spec else None,
        where_values=tuple(where_spec.values) if where_spec and where_spec.values is not None else None,
        tolerance=check.tolerance, window_rate=check.window_rate, numeric=numeric,
        missing_value=fill_value if on == "used" and check.column in used_names[:-1] else None,
    )


def data_rules(spec: JobSpec, fspec: FeatureSpec) -> tuple[DataRule, ...]:
    """Every ``checks.data`` entry resolved (SpecError naming ``checks.data[i].<field>`` on the first bad one)."""
    used_names = (*fspec.features, fspec.target)
    return tuple(_resolve(i, check, used_names, fspec.fill_value) for i, check in enumerate(spec.checks.data))


def data_column_problems(spec: JobSpec) -> list[tuple[str, str]]:
    """``(where, message)`` for every ``checks.data`` entry that does not resolve (for ``validate``)."""
    problems = []
    for i, check in enumerate(spec.checks.data):
        try:
            _resolve(i, check, _used_names(spec))
        except SpecError as exc:
            where, _, message = str(exc).partition(": ")
            problems.append((where, message))
    return problems


def rules_hash(reduce: DataReduce) -> str:
    """A short hash of what shapes a month's data-check counts (the rules and the windows)."""
    text = json.dumps(asdict(reduce), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def data_plan(spec: JobSpec, fspec: FeatureSpec, *, windows: bool = True
              ) -> tuple[DataReduce | None, DataAccumulator | None]:
    """The workers' reduction and the client's accumulator of ``spec.checks.data`` (None, None without).

    With ``windows`` (the study) and a replay, the rules are also counted per replay window for
    the rows of the replay months, windows bounded by the period plus the longest trip the
    ``outside_period`` guard lets spill past it (as the replay's own windows are); the backtest
    counts months only (``windows=False``).
    """
    if not spec.checks.data:
        return None, None
    rules = data_rules(spec, fspec)
    replay = spec.evaluation.replay if spec.evaluation is not None else None
    if not windows or replay is None:
        reduce = DataReduce(rules)
    else:
        keys = period_windows(replay.months[0], replay.months[-1], replay.window, spill_hours=fspec.max_trip_hours)
        reduce = DataReduce(rules, replay.window, replay.time_column, tuple(replay.months), keys.lo, keys.hi,
                            keys.last_in_period)
    return reduce, DataAccumulator(reduce)
