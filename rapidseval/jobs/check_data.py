"""The job's data checks (``checks.data``): rules resolved from the spec, for the score pass."""

from __future__ import annotations

from ..checks.data import DataAccumulator, DataReduce
from ..features import FeatureSpec
from ..spec import JobSpec

__all__ = ["data_plan"]


def data_plan(spec: JobSpec, fspec: FeatureSpec) -> tuple[DataReduce | None, DataAccumulator | None]:
    """The workers' reduction and the client's accumulator of ``spec.checks.data`` (None, None without)."""
    if not spec.checks.data:
        return None, None
    raise NotImplementedError("data checks: not built yet")
