"""The data and features sections: where the months come from, and what the model sees."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..core.registry import DEFAULT_DROP_RULES, DROP_RULES, FEATURE_KINDS, FEATURES, SCENARIOS, STUDY_FEATURES, TARGETS
from ..core.time import month_index, month_range
from ._base import MAX_PERIOD_MONTHS, MAX_ROWS, MAX_SEED, Section, checked_month

__all__ = ["SyntheticSpec", "DataSpec", "FeaturesSpec", "normalise_drop_rules"]


class SyntheticSpec(Section):
    """How ``data.source: synthetic`` makes its months (cached by these values)."""

    rows_per_month: int = Field(200_000, ge=1, le=MAX_ROWS)
    scenario: str = "march2020"
    seed: int = Field(2020, ge=0, le=MAX_SEED)
    scenario_month: str | None = None
    cache_dir: str = ".rapidseval/synthetic"

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, v: str) -> str:
        return SCENARIOS.check(v)


class DataSpec(Section):
    """The months of the job and where each comes from.

    Credentials are refused in ``storage_options`` by the job's domain checks
    (:func:`rapidseval.jobs.checks.check_job`), which know the storage layer's names for them.
    """

    source: str | list[str] = Field(
        "synthetic",
        description="'synthetic', a named source ('tlc'), or a URI template with {month} (local, s3://, https://), or a list of URIs",
    )
    start: str = "2020-01"
    end: str = "2020-06"
    format: Literal["auto", "parquet", "csv"] = "auto"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    cache_dir: str | None = Field(None, description="local cache for http(s) inputs, so a re-run downloads nothing")
    partition_rows: int = Field(2_000_000, ge=10_000, le=MAX_ROWS,
                                description="target rows per partition (Parquet row groups are grouped)")
    synthetic: SyntheticSpec = SyntheticSpec()

    @field_validator("start", "end")
    @classmethod
    def _months(cls, v: str) -> str:
        return checked_month(v)

    @field_validator("source")
    @classmethod
    def _no_user_info(cls, v):
        for uri in [v] if isinstance(v, str) else v:
            if re.search(r"://[^/@\s]+@", uri):
                raise ValueError(
                    "credentials never go in a job file (user:password@ in the URI); "
                    "use the environment or the standard AWS config"
                )
        return v

    @model_validator(mode="after")
    def _order(self):
        first, last = (month_index(m) for m in (self.start, self.end))
        if last < first:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if last - first + 1 > MAX_PERIOD_MONTHS:
            raise ValueError(f"{self.start}..{self.end} spans {last - first + 1:,} months; a job spans at most "
                             f"{MAX_PERIOD_MONTHS} (split a longer history into several jobs)")
        if isinstance(self.source, list):
            self._each_input_once(month_range(self.start, self.end))
        return self

    def _each_input_once(self, months: list[str]) -> None:
        twice = sorted({u for u in self.source if self.source.count(u) > 1})
        if twice:
            where = {u: [m for m, v in zip(months, self.source) if v == u] for u in twice}
            raise ValueError("lists " + "; ".join(f"{u} more than once (for {', '.join(where[u]) or 'no month'})"
                                                  for u in twice) + ": give each month its own input, in month order")

    @property
    def months(self) -> list[str]:
        return month_range(self.start, self.end)


def _rule_params(name: str, given: Any) -> dict[str, float]:
    """Every parameter of drop rule ``name``: the defaults, with ``given`` checked against the rule's bounds."""
    rule = DROP_RULES[name]
    if given is None or given is True:
        given = {}
    if not isinstance(given, dict):
        raise ValueError(f"drop rule {name}: give true, false or a mapping of its parameters, got {given!r}")
    if given and not rule.params:
        raise ValueError(f"drop rule {name} takes no parameters")
    unknown = [k for k in given if k not in rule.params]
    if unknown:
        raise ValueError(f"drop rule {name}: unknown parameter(s) {', '.join(map(str, unknown))}; "
                         f"choose from {', '.join(rule.params)}")
    out = rule.defaults()
    for key, value in given.items():
        p = rule.params[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"drop rule {name}: {key} must be a number, got {value!r}")
        if not p.low <= value <= p.high:
            raise ValueError(f"drop rule {name}: {key} must be within [{p.low:g}, {p.high:g}] ({p.doc}), got {value!r}")
        out[key] = float(value)
    return out


def _known_rule(name: Any) -> None:
    if name not in DROP_RULES:
        raise ValueError(f"unknown drop rule {name!r}; choose from {DROP_RULES.choices()}")


def _rules_from_mapping(value: dict[str, Any]) -> dict[str, Any]:
    """``name -> true | false | {param: value}``: the default rules, changed only where named."""
    chosen: dict[str, Any] = {name: None for name in DEFAULT_DROP_RULES}
    for name, setting in value.items():
        _known_rule(name)
        if setting is not False:
            chosen[name] = setting
            continue
        rule = DROP_RULES[name]
        if rule.always:
            raise ValueError(f"drop rule {name} is a guard that bounds the run and cannot be switched off"
                             + (f"; set its {', '.join(rule.params)} instead" if rule.params else ""))
        chosen.pop(name, None)
    return chosen


def _rules_from_list(value: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    """A list of names, where an item may also be ``{name: {param: value}}``: exactly these rules."""
    chosen: dict[str, Any] = {}
    for item in value:
        if isinstance(item, str):
            name, setting = item, None
        elif isinstance(item, dict) and len(item) == 1:
            name, setting = next(iter(item.items()))
        else:
            raise ValueError(f"drop_rules: each item is a rule name or {{name: {{parameter: value}}}}, got {item!r}")
        _known_rule(name)
        if name in chosen:
            raise ValueError(f"drop rule {name} is listed twice")
        chosen[name] = setting
    return chosen


def normalise_drop_rules(value: Any) -> list[Any]:
    """Every accepted form of ``features.drop_rules`` -> the list form, in precedence order,
    guards included, each rule with parameters as ``{name: {parameter: value}}`` (all given).

    * a list of names (the original form), where an item may also be ``{name: {param: value}}``:
      exactly these rules (and the guards);
    * a mapping ``name -> true | false | {param: value}``: the default rules, changed only
      where named.
    """
    if isinstance(value, dict):
        chosen = _rules_from_mapping(value)
    elif isinstance(value, (list, tuple)):
        chosen = _rules_from_list(value)
    else:
        raise ValueError("drop_rules: a list of rule names or a mapping name -> true | false | {parameter: value}")
    out: list[Any] = []
    for name, rule in DROP_RULES.items():  # precedence order; guards always
        if name not in chosen and not rule.always:
            continue
        params = _rule_params(name, chosen.get(name))
        out.append({name: params} if params else name)
    return out


class FeaturesSpec(Section):
    """The label, the model's features (and their kinds), and the rules that drop rows."""

    target: str = "high_tip"
    features: list[str] = Field(default_factory=lambda: list(STUDY_FEATURES))
    drop_rules: list[str | dict[str, dict[str, float]]] = Field(
        default_factory=lambda: normalise_drop_rules(list(DEFAULT_DROP_RULES)),
        description="rules that drop (and count) rows: a list of names, where an item may be "
                    "{name: {parameter: value}}; or a mapping name -> true | false | {parameter: value} "
                    "that changes only the rules it names",
    )
    fill_value: float = -1.0
    kinds: dict[str, str] = Field(
        default_factory=dict,
        description="feature -> categorical | integer | continuous, overriding the feature's default kind "
                    "(which shift statistics apply and how alarms are explained)")

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        return TARGETS.check(v)

    @field_validator("features")
    @classmethod
    def _features(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in FEATURES]
        if bad:
            raise ValueError(f"unknown feature(s) {', '.join(bad)}; choose from {FEATURES.choices()}")
        if not v:
            raise ValueError("at least one feature is needed")
        if len(set(v)) != len(v):
            raise ValueError("features are listed twice")
        return v

    @field_validator("drop_rules", mode="before")
    @classmethod
    def _rules(cls, v):
        return normalise_drop_rules(v)

    def rule_names(self) -> tuple[str, ...]:
        """The rules applied, in precedence order (guards included)."""
        return tuple(next(iter(r)) if isinstance(r, dict) else r for r in self.drop_rules)

    def rule_params(self) -> dict[str, dict[str, float]]:
        """Rule name -> parameters, for the rules that have any."""
        return {k: dict(p) for r in self.drop_rules if isinstance(r, dict) for k, p in r.items()}

    @field_validator("kinds")
    @classmethod
    def _kind_names(cls, v: dict[str, str]) -> dict[str, str]:
        for feature, kind in v.items():
            if kind not in FEATURE_KINDS:
                raise ValueError(f"{feature}: unknown kind {kind!r}; choose one of {FEATURE_KINDS.choices()}")
        return v

    @model_validator(mode="after")
    def _kinds_of_features(self):
        unknown = [f for f in self.kinds if f not in self.features]
        if unknown:
            raise ValueError(f"kinds: {', '.join(unknown)} not among the job's features; "
                             f"choose from {', '.join(self.features)}")
        return self

    def feature_kinds(self) -> dict[str, str]:
        """Every feature of the job -> its kind: declared in ``kinds``, else the feature's default."""
        return {f: self.kinds.get(f, FEATURES[f]) for f in self.features}
