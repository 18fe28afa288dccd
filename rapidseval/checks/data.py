"""Data invariants: rules on columns and features, counted per part on the workers and merged
per month and per replay window on the client.

INTERFACE (filled by the data-checks work; the study calls exactly this):

- :class:`DataRule`: one resolved rule (the jobs layer builds them from ``checks.data``);
- :class:`DataReduce` (picklable; runs on the workers): ``read_columns()`` names the
  canonical columns it needs read beyond the features; ``reduce(raw, frame, month=, backend=)``
  returns a small host-side :class:`DataCounts` for one part, where ``raw`` is the part's
  canonical frame as read (before the drop rules) and ``frame`` the prepared one;
- :class:`DataAccumulator` (client): ``add(month, counts)``, then ``rows()``: the
  ``checks.parquet`` rows (:func:`rapidseval.checks.check_row`), per month then per window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DataRule", "DataReduce", "DataCounts", "DataAccumulator"]


@dataclass(frozen=True)
class DataRule:
    """One data check, resolved: ``on`` is ``read`` (a canonical column, every row read) or
    ``used`` (a feature or the target, the rows the job used)."""

    label: str
    column: str
    rule: str
    on: str
    severity: str
    min: float | None = None
    max: float | None = None
    values: tuple[float, ...] | None = None
    where_min: float | None = None
    where_max: float | None = None
    where_values: tuple[float, ...] | None = None
    tolerance: float = 0.0


@dataclass
class DataCounts:
    """What one part's reduction sends back (host arrays and numbers only)."""

    per_rule: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataReduce:
    """The workers' half: every rule over one part, per month and per window of the replay."""

    rules: tuple[DataRule, ...]
    window: str | None = None          # the replay's window ('D', '6h', ...), None: months only
    time_column: str = "dropoff_datetime"
    window_months: tuple[str, ...] = ()  # windows are counted for rows of these months only

    def read_columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.column for r in self.rules if r.on == "read"))

    def reduce(self, raw, frame, *, month: str, backend) -> DataCounts:
        raise NotImplementedError("data checks: not built yet")


class DataAccumulator:
    """The client's half: parts merged per month and window, then one check row each."""

    def __init__(self, reduce: DataReduce):
        self.reduce = reduce

    def add(self, month: str, counts: DataCounts) -> None:
        raise NotImplementedError("data checks: not built yet")

    def rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError("data checks: not built yet")
