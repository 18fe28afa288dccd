"""Every ``xp`` code path on CuPy equals NumPy (marker ``cupy``: CuPy and a GPU, no cuDF/cuML).

The device image has CuPy, so ``benchmarks/gpu_device.sh quick`` runs these without
carrying RAPIDS.  Each test feeds the same host arrays to the NumPy path and, copied to
the device, to the CuPy path, and compares on the host: counts and keys exactly, sums
of floats to 1e-12 relative.  Skipped cleanly (with the reason) where CuPy or a GPU is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.cupy

_US_PER_DAY = 86_400_000_000


def _times(rng, n, start="2020-03-01", days=31):
    t0 = np.datetime64(start, "us").astype("int64")
    return t0 + rng.integers(0, days * _US_PER_DAY, n)


def test_feature_arithmetic_on_cupy_equals_numpy(cp):
    """Each registered feature's formula on device columns gives NumPy's values (float64)."""
    from rapidseval.features import FEATURES

    rng = np.random.default_rng(0)
    n = 200_000
    pickup = _times(rng, n)
    cols = {
        "pickup_us": pickup,
        "dropoff_us": pickup + rng.integers(0, 3 * 3_600_000_000, n),
        "passenger_count": rng.integers(0, 7, n).astype("float64"),
        "trip_distance": rng.gamma(2, 1.5, n).round(2),
        "pickup_location_id": rng.integers(1, 266, n).astype("float64"),
        "dropoff_location_id": rng.integers(1, 266, n).astype("float64"),
        "rate_code_id": rng.integers(1, 7, n).astype("float64"),
    }
    dev = {k: cp.asarray(v) for k, v in cols.items()}
    for name, feature in FEATURES.items():
        host = np.asarray(feature.compute(cols, np), dtype="float64")
        got = cp.asnumpy(cp.asarray(feature.compute(dev, cp), dtype=cp.float64))
        np.testing.assert_array_equal(got, host, err_msg=name)


def test_confusion_codes_on_cupy_equal_numpy(cp):
    from rapidseval.metrics import confusion_codes

    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 10_000).astype("int8"), rng.random(10_000) > 0.5
    host = confusion_codes(y, p)
    dev = confusion_codes(cp.asarray(y), cp.asarray(p), xp=cp)
    np.testing.assert_array_equal(cp.asnumpy(dev), host)
    assert np.bincount(host, minlength=4).sum() == 10_000


@pytest.mark.parametrize("window", ["h", "6h", "D", "2D", "W", "M"])
def test_window_keys_on_cupy_equal_numpy(cp, window):
    from rapidseval.core.time import parse_window

    rng = np.random.default_rng(2)
    t = _times(rng, 50_000, start="2019-12-20", days=80)
    w = parse_window(window)
    np.testing.assert_array_equal(cp.asnumpy(w.keys(cp.asarray(t), xp=cp)), w.keys(t))


@pytest.mark.parametrize("kind", ["integer", "continuous", "with_nan_and_fill"])
def test_count_days_on_cupy_equals_numpy(cp, kind):
    """Per-(day, value) counts on the device are NumPy's exactly (sorted by day, then value)."""
    from rapidseval.shift import count_days

    rng = np.random.default_rng(3)
    n = 300_000
    day = 18_322 + rng.integers(0, 31, n)
    if kind == "integer":
        values = rng.integers(1, 266, n).astype("float32")
    else:
        values = rng.gamma(2, 1.5, n).round(2).astype("float32")
    if kind == "with_nan_and_fill":
        values[rng.random(n) < 0.01] = -1.0
        values[:10] = -0.0
    host = count_days(day, {"f": values})["f"]
    dev = count_days(cp.asarray(day), {"f": cp.asarray(values)}, xp=cp)["f"]
    for field in ("day", "value", "count"):
        got = getattr(dev, field)
        got = cp.asnumpy(got) if isinstance(got, cp.ndarray) else got
        np.testing.assert_array_equal(got, getattr(host, field), err_msg=field)
    assert int(host.count.sum()) == n


def test_replay_summaries_on_cupy_equal_numpy(cp):
    """Same predictions -> the same counts, histogram and (to float rounding) loss sums."""
    from rapidseval.replay import summarize_scores

    rng = np.random.default_rng(0)
    n = 500_000
    t = _times(rng, n)
    y = rng.integers(0, 2, n).astype("int8")
    p = np.round(rng.random(n), 3)
    for exact in (False, True):
        cpu = summarize_scores(t, y, p, threshold=0.5, window="D", exact=exact)
        gpu = summarize_scores(cp.asarray(t), cp.asarray(y), cp.asarray(p), threshold=0.5, window="D", exact=exact, xp=cp)
        np.testing.assert_array_equal(cpu.hours, gpu.hours)
        np.testing.assert_array_equal(cpu.counts, gpu.counts)
        np.testing.assert_array_equal(cpu.hist_keys, gpu.hist_keys)
        np.testing.assert_array_equal(cpu.hist_counts, gpu.hist_counts)
        np.testing.assert_allclose(cpu.sums, gpu.sums, rtol=1e-12)
        if exact:
            for field in ("window", "score", "label", "count"):
                np.testing.assert_array_equal(getattr(cpu.exact, field), getattr(gpu.exact, field))


def test_shift_calculator_on_cupy_calibrates_and_compares_like_numpy(cp):
    """The whole calculator with ``xp=cupy`` (device counting and grid calibration) gives
    NumPy's table: the same rows, KS values equal, every other value within 1e-12."""
    from rapidseval.shift import ShiftCalculator, count_days

    rng = np.random.default_rng(4)
    n = 200_000
    cols = {"trip_distance": rng.gamma(2, 1.5, n).round(2).astype("float32"),
            "pickup_hour": rng.integers(0, 24, n).astype("float32"),
            "PULocationID": rng.integers(1, 266, n).astype("float32")}
    ref_day, win_day = 18_262 + rng.integers(0, 31, n), 18_293 + rng.integers(0, 29, n)
    win = {k: (v * (1.05 if k == "trip_distance" else 1)).astype("float32") for k, v in cols.items()}
    tables = []
    for xp in (np, cp):
        ref = count_days(xp.asarray(ref_day), {k: xp.asarray(v) for k, v in cols.items()}, xp=xp)
        cmp_ = count_days(xp.asarray(win_day), {k: xp.asarray(v) for k, v in win.items()}, xp=xp)
        tables.append(ShiftCalculator(list(cols), frequency="D", xp=xp).fit(ref).calculate(cmp_).table)
    host, dev = tables
    keys = ["window_start", "feature", "statistic"]
    assert host[keys].equals(dev[keys])
    ks = host["statistic"] == "ks"
    np.testing.assert_array_equal(dev.loc[ks, "value"].to_numpy(), host.loc[ks, "value"].to_numpy())
    for col in ("value", "threshold", "null_mean", "null_std"):
        np.testing.assert_allclose(dev[col].to_numpy(), host[col].to_numpy(), rtol=1e-12, atol=1e-15, err_msg=col)
    assert (dev["alarm"] == host["alarm"]).all()


def test_the_array_dispatchers_register_cupy_lazily(cp):
    """core.arrays names no GPU library: the CuPy half, registered in the backend module,
    is found the first time a CuPy array is dispatched on."""
    from rapidseval.core.arrays import array_namespace, to_host, to_numpy

    device = cp.arange(5, dtype=cp.float64)
    assert array_namespace(device) is cp and array_namespace(np.arange(3)) is np
    host = to_host(device)
    assert isinstance(host, np.ndarray) and host.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert to_numpy(device, dtype="int64").tolist() == [0, 1, 2, 3, 4]
