"""The checks' reductions on CuPy arrays equal them on NumPy arrays (host numbers back).

This module imports no job layer (no Dask, pydantic or the backend module), so the device's
quick check (``benchmarks/gpu_device.sh quick``) runs it on the bare device image; the
backends are stand-ins that hold only what the reductions use: ``xp``, ``asarray`` and
``time_us`` over pandas frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rapidseval.checks.data import DataReduce
from rapidseval.checks.slices import SliceDef, SliceReduce
from rapidseval.checks.zones import UNMAPPED, taxi_zone_borough

from _data_rules import RULES


class _Arrays:
    """A backend's array half: pandas frames in, ``xp`` arrays out."""

    def __init__(self, xp):
        self.xp = xp
        self.name = "cpu" if xp is np else "gpu"

    def asarray(self, obj, dtype=None):
        return self.xp.asarray(obj.to_numpy(dtype=dtype))

    def time_us(self, series):
        return self.xp.asarray(series.astype("datetime64[us]").to_numpy().view("int64"))




@pytest.mark.gpu
@pytest.mark.cupy
def test_data_reduce_on_cupy_equals_numpy(cp):
    rng = np.random.default_rng(3)
    n = 50_000
    hours = rng.integers(0, 31 * 24, n) * np.timedelta64(1, "h")
    frame = pd.DataFrame({"x": rng.choice([-1.0, 0.0, 1.0, 2.5, np.nan], n),
                          "t": np.datetime64("2020-03-01", "us") + hours})
    reduce = DataReduce(RULES, "D", "t", ("2020-03",), 18322, 18353, 18352)
    host = reduce.reduce(frame, frame, month="2020-03", backend=_Arrays(np))
    device = reduce.reduce(frame, frame, month="2020-03", backend=_Arrays(cp))
    assert device.to_json() == host.to_json()


@pytest.mark.gpu
@pytest.mark.cupy
def test_slice_reduce_on_cupy_equals_numpy(cp):
    rng = np.random.default_rng(8)
    n = 20_000
    frame = pd.DataFrame({
        "PULocationID": rng.choice(np.array([-1, 1, 4, 132, 161, 264, 265, 300], dtype="float32"), n),
        "trip_distance": np.where(rng.random(n) < 0.05, -1.0, rng.exponential(2.5, n)).astype("float32"),
        "pickup_hour": rng.integers(-1, 24, n).astype("float32"),
        "high_tip": rng.integers(0, 2, n).astype("int8"),
        "dropoff_datetime": pd.Timestamp("2020-01-20") + pd.to_timedelta(rng.integers(0, 60 * 86400, n), "s"),
    })
    borough = SliceDef("PULocationID/taxi_zone_borough", "PULocationID",
                       mapping=tuple(sorted((float(k), v) for k, v in taxi_zone_borough().items())),
                       unmapped=UNMAPPED)
    slices = (borough, SliceDef("trip_distance", "trip_distance", bins=(0.0, 1.0, 2.5, 6.0)),
              SliceDef("pickup_hour", "pickup_hour"))
    probas = [rng.random(n)]
    for window, month in (("D", None), ("M", "2020-02")):
        reduce = SliceReduce(slices, "high_tip", window=window)
        host = reduce.reduce(frame, probas, [0.4], backend=_Arrays(np), month=month)
        device = reduce.reduce(frame, [cp.asarray(p) for p in probas], [0.4], backend=_Arrays(cp), month=month)
        for label, counts in host.per_slice.items():
            other = device.per_slice[label]
            assert counts.labels == other.labels
            for name in ("slice_index", "window_key", "counts"):
                assert isinstance(getattr(other, name), np.ndarray)
                np.testing.assert_array_equal(getattr(counts, name), getattr(other, name))
