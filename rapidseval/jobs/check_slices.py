"""The job's slices (``evaluation.slices``): resolved from the spec, for the score pass."""

from __future__ import annotations

from collections.abc import Iterator

from ..checks.slices import SliceAccumulator, SliceDef, SliceReduce
from ..checks.zones import UNMAPPED, zone_mapping
from ..core.errors import SpecError
from ..features import FeatureSpec
from ..spec import JobSpec, SliceSpec

__all__ = ["slice_plan", "slice_def", "slice_problems"]

#: the feature kinds a slice may take by value (a continuous feature needs bins or a mapping)
_BY_VALUE_KINDS = ("categorical", "integer")


def slice_problems(spec: JobSpec) -> Iterator[tuple[str, str]]:
    """``(field path, message)`` of every slice that cannot be taken of the job's features."""
    slices = spec.evaluation.slices
    if slices is None:
        return
    features, kinds = spec.features.features, spec.features.feature_kinds()
    for i, sl in enumerate(slices.by):
        where = f"evaluation.slices.by.{i}.by"
        if sl.by not in features:
            yield where, f"{sl.by!r} is not one of the job's features ({', '.join(features)})"
        elif sl.bins is None and sl.mapping is None and kinds[sl.by] not in _BY_VALUE_KINDS:
            yield where, (f"{sl.by} is a {kinds[sl.by]} feature: slice it by bins (e.g. bins: [0, 1, 5, .inf]) "
                          "or a mapping, not by each value")


def slice_def(sl: SliceSpec) -> SliceDef:
    """One :class:`SliceDef` of a slice of the spec (a shipped mapping resolved)."""
    if isinstance(sl.mapping, str):
        pairs = tuple((float(k), v) for k, v in sorted(zone_mapping(sl.mapping).items()))
        return SliceDef(sl.label, sl.by, mapping=pairs, unmapped=UNMAPPED)
    if isinstance(sl.mapping, dict):
        return SliceDef(sl.label, sl.by, mapping=tuple((float(k), v) for k, v in sl.mapping.items()))
    return SliceDef(sl.label, sl.by, bins=tuple(float(b) for b in sl.bins) if sl.bins is not None else None)


def slice_plan(spec: JobSpec, fspec: FeatureSpec,
               model_names: list[str]) -> tuple[SliceReduce | None, SliceAccumulator | None]:
    """The workers' reduction and the client's accumulator of ``evaluation.slices`` (None, None without).

    The window is ``evaluation.slices.window`` of the replay's time column (``dropoff_datetime``
    without a replay); the bands are the replay's (``replay.bands``: level and replicates), seeded
    by the job's seed.

    Raises
    ------
    SpecError
        ``evaluation.slices.by.<i>.by: ...``: a slice of no feature of the job, or a continuous
        feature without bins or a mapping.
    """
    slices = getattr(spec.evaluation, "slices", None) if spec.backtest is None else None
    if slices is None:
        return None, None
    problems = [f"{where}: {message}" for where, message in slice_problems(spec)]
    if problems:
        raise SpecError("\n".join(problems))
    replay = spec.evaluation.replay
    time_column = replay.time_column if replay is not None else "dropoff_datetime"
    bands = replay.bands if replay is not None else None
    reduce = SliceReduce(tuple(slice_def(sl) for sl in slices.by), fspec.target, window=slices.window,
                         time_column=time_column, fill_value=fspec.fill_value)
    acc = SliceAccumulator(reduce, list(model_names), min_support=slices.min_support, metric=slices.metric,
                           level=bands.level if bands is not None else 0.95,
                           replicates=bands.replicates if bands is not None else 1000, seed=spec.seed,
                           window_rate=slices.window_rate)
    return reduce, acc
