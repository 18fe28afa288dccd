"""One data rule of every kind on a column ``x`` (with NaN) and a timestamp ``t``: the rules the
data-check tests and their CuPy twins share (this module imports no job layer)."""

from __future__ import annotations

from rapidseval.checks.data import DataRule

#: one rule of every kind on column x (with NaN)
RULES = (
    DataRule("x not_null", "x", "not_null", "used", "fail"),
    DataRule("x min", "x", "min", "used", "fail", min=0.0, tolerance=0.1),
    DataRule("x max", "x", "max", "used", "warn", max=5.0),
    DataRule("x between", "x", "between", "used", "fail", min=-1.0, max=3.0),
    DataRule("x in_set", "x", "in_set", "used", "fail", values=(0.0, 1.0, 2.0)),
    DataRule("x mean_between", "x", "mean_between", "used", "fail", min=-2.0, max=2.0),
    DataRule("x fraction_between", "x", "fraction_between", "used", "fail", min=0.1, max=0.9, where_min=0.0,
             where_max=2.0),
    DataRule("x fraction in set", "x", "fraction_between", "used", "fail", min=0.0, max=0.5,
             where_values=(1.0, 3.0)),
    DataRule("x unique_fraction", "x", "unique_fraction", "used", "fail", min=0.0, max=0.5),
    DataRule("t not_null", "t", "not_null", "used", "fail", numeric=False),
)
