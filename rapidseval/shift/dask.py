"""Shift on the frames people have: pandas, cuDF, and Dask DataFrames (``dask.dataframe`` or dask_cudf).

The calculator works on per-day value counts (:class:`~rapidseval.shift.DayCounts`), the
reduction that merges by addition.  :func:`frame_day_counts` computes them from a frame: a
pandas or cuDF frame at once, a Dask DataFrame one partition at a time where the partition
lives (pandas or cuDF partitions alike), the partitions' counts merged on the client.  Counts
are exact, so a Dask DataFrame gives the same counts, and the same shift table, as the pandas
frame it was made from.

>>> from rapidseval.shift import ShiftCalculator
>>> from rapidseval.shift.dask import frame_day_counts, shift
>>> result = shift(reference, analysis, time_column="pickup_datetime",
...                calculator=ShiftCalculator(["trip_distance"], frequency="W"))  # doctest: +SKIP
>>> result.to_df()  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from ..backend import frame_backend, get_backend
from ..core.errors import SpecError
from ._calculator import ShiftCalculator, ShiftResult
from ._counts import DayCounts
from ._stream import ShiftReduce

__all__ = ["is_dask_frame", "frame_day_counts", "shift"]


def is_dask_frame(frame: Any) -> bool:
    """Whether ``frame`` is a Dask collection (a Dask DataFrame of pandas or cuDF partitions)."""
    import dask

    return dask.is_dask_collection(frame)


def _partition_day_counts(part, reduce: ShiftReduce) -> dict[str, DayCounts]:
    """The per-day counts of one pandas or cuDF frame (a whole frame or a Dask partition):
    the reduction a job runs on each part, on the frame's own backend."""
    return reduce(part, get_backend(frame_backend(part)))


def frame_day_counts(frame, *, time_column: str, features: Sequence[str], fill_value: float = -1.0,
                     threads: int = 1) -> dict[str, DayCounts]:
    """Exact counts per ``(day, value)`` of each feature of a pandas, cuDF or Dask DataFrame.

    Parameters
    ----------
    frame : pandas.DataFrame, cudf.DataFrame or dask.dataframe.DataFrame
    time_column : str
        The datetime column whose day a row belongs to (naive wall clock).
    features : sequence of str
    fill_value : float
        Missing values are counted as this value (as the calculator's ``fill_value``, which
        ``missing_rate`` counts).
    threads : int
        NumPy threads per frame or partition (the counts do not depend on it).
    """
    features = tuple(features)
    missing = [c for c in (time_column, *features) if c not in frame.columns]
    if missing:
        raise SpecError(f"the frame has no column {', '.join(missing)} (columns: {', '.join(map(str, frame.columns))})")
    count = functools.partial(_partition_day_counts,
                              reduce=ShiftReduce(features, time_column, fill_value=fill_value, threads=threads))
    if not is_dask_frame(frame):
        return count(frame)
    import dask
    import dask.dataframe as dd

    if not isinstance(frame, dd.DataFrame):
        raise SpecError(f"expected a Dask DataFrame, got {type(frame).__name__}")
    per_partition = dask.compute(*[dask.delayed(count)(part) for part in frame.to_delayed()])
    return {name: DayCounts.merge([counts[name] for counts in per_partition]) for name in features}


def shift(reference, analysis, *, time_column: str, calculator: ShiftCalculator | None = None,
          features: Sequence[str] | None = None, reference_label: str = "reference") -> ShiftResult:
    """Fit ``calculator`` on the ``reference`` frame and compare every window of ``analysis`` with it.

    Parameters
    ----------
    reference, analysis : pandas, cuDF or Dask DataFrames
    time_column : str
        The datetime column that places a row in its day (and so in its windows).
    calculator : ShiftCalculator, optional
        Default: ``ShiftCalculator(features)`` (monthly windows, the default statistics).
    features : sequence of str, optional
        Default: the calculator's features; one of the two must name them.
    """
    calculator = calculator if calculator is not None else ShiftCalculator(features)
    features = tuple(features or calculator.features or ())
    if not features:
        raise SpecError("shift: name the features (features= or the calculator's)")
    counts = functools.partial(frame_day_counts, time_column=time_column, features=features,
                               fill_value=calculator.fill_value)
    calculator.fit(counts(reference), label=reference_label)
    return calculator.calculate(counts(analysis))
