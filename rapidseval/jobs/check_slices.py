"""The job's slices (``evaluation.slices``): resolved from the spec, for the score pass."""

from __future__ import annotations

from ..checks.slices import SliceAccumulator, SliceReduce
from ..features import FeatureSpec
from ..spec import JobSpec

__all__ = ["slice_plan"]


def slice_plan(spec: JobSpec, fspec: FeatureSpec,
               model_names: list[str]) -> tuple[SliceReduce | None, SliceAccumulator | None]:
    """The workers' reduction and the client's accumulator of ``evaluation.slices`` (None, None without)."""
    slices = getattr(spec.evaluation, "slices", None) if spec.backtest is None else None
    if slices is None:
        return None, None
    raise NotImplementedError("slices: not built yet")
