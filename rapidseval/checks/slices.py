"""Windowed metrics per slice: confusion counts per (slice, window, model) reduced per part on
the workers, merged on the client, then metrics with bands.

INTERFACE (filled by the slices work; the study calls exactly this):

- :class:`SliceDef`: one resolved way to slice (a feature's values, bins, or a mapping);
- :class:`SliceReduce` (picklable; runs on the workers): ``reduce(frame, probas, thresholds,
  backend=)`` returns a host-side :class:`SliceCounts` for one part (``frame`` is the
  prepared frame: features, target, event times; ``probas`` one P(y=1) array per model);
- :class:`SliceAccumulator` (client): ``add(counts)``, then ``table()``: ``slices.parquet``
  (:data:`rapidseval.checks.SLICE_COLUMNS`), and ``rows()``: check rows of kind ``slices``
  for the slices significantly worse than the whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["SliceDef", "SliceReduce", "SliceCounts", "SliceAccumulator"]


@dataclass(frozen=True)
class SliceDef:
    label: str
    feature: str
    bins: tuple[float, ...] | None = None
    mapping: tuple[tuple[float, str], ...] | None = None  # (value, label) pairs; unmapped values: 'other'


@dataclass
class SliceCounts:
    per_slice: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SliceReduce:
    slices: tuple[SliceDef, ...]
    target: str
    window: str = "M"
    time_column: str = "dropoff_datetime"

    def reduce(self, frame, probas, thresholds, *, backend) -> SliceCounts:
        raise NotImplementedError("slices: not built yet")


class SliceAccumulator:
    def __init__(self, reduce: SliceReduce, models: list[str], *, min_support: int, metric: str = "f1",
                 level: float = 0.95, replicates: int = 1000, seed: int = 0):
        self.reduce = reduce
        self.models = models

    def add(self, counts: SliceCounts) -> None:
        raise NotImplementedError("slices: not built yet")

    def table(self) -> pd.DataFrame:
        raise NotImplementedError("slices: not built yet")

    def rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError("slices: not built yet")
