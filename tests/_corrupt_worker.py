"""Property-based corruption of a small Parquet month, run by ``test_bounds.py`` in a
subprocess under an address-space limit (``resource.setrlimit(RLIMIT_AS)``).

usage: python _corrupt_worker.py LIMIT_BYTES CLEAN_DIR WORK_DIR EXAMPLES SECONDS_PER_EXAMPLE

Hypothesis rewrites the damaged month (compressed or not, with or without
dictionaries), plants extreme values in it and overwrites byte ranges (zeroed,
flipped, set).  Every run of the job must end in a one-line rapidseval error or
in a result whose rows are all accounted for, with every window inside the
period, within the time bound.  Exit status 0 when all examples hold; the
outcomes are printed as JSON lines.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

limit, clean, work, examples, seconds = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import rapidseval  # noqa: E402
from rapidseval.core.errors import RapidsEvalError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _damage import DAMAGED, PERIOD_WINDOWS, TRAIN, job, month_file, overwrite_bytes, rewrite  # noqa: E402

_US_2020 = int(np.datetime64("2020-02-10", "us").astype("int64"))
extreme_times = st.sampled_from([np.iinfo(np.int64).min + 1, np.iinfo(np.int64).max, 0, -_US_2020,
                                 int(np.datetime64("2200-01-01", "us").astype("int64")),
                                 int(np.datetime64("9999-12-31", "us").astype("int64")), _US_2020])
extreme_numbers = st.sampled_from([1e39, -1e39, float("inf"), float("-inf"), float("nan"), 0.0, -5.0, 1e308, 5e-324])
plants = st.lists(st.one_of(
    st.tuples(st.sampled_from(["tpep_pickup_datetime", "tpep_dropoff_datetime"]), st.integers(0, 10_000), extreme_times),
    st.tuples(st.sampled_from(["trip_distance", "fare_amount", "tip_amount", "passenger_count", "PULocationID"]),
              st.integers(0, 10_000), extreme_numbers),
), max_size=4)
edits = st.lists(st.tuples(st.sampled_from(["zero", "flip", "ones"]), st.floats(0.0, 1.0), st.integers(1, 6_000)),
                 max_size=3)


def _run(data_dir: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    try:
        result = rapidseval.run(job(data_dir, out))
    except RapidsEvalError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not one line: {message!r}"
        return {"outcome": "error", "message": message[:200], "seconds": time.perf_counter() - t0}
    acc = result.manifest["rows"]["by_month"][DAMAGED]
    assert acc["rows_read"] == acc["rows_used"] + acc["rows_dropped"], acc
    assert len(result.replay) <= PERIOD_WINDOWS, len(result.replay)
    if not result.shift.empty:
        assert result.shift["window"].nunique() <= PERIOD_WINDOWS
    return {"outcome": "ok", "read": acc["rows_read"], "dropped": {k: v for k, v in acc["dropped_by_rule"].items() if v},
            "seconds": time.perf_counter() - t0}


# the first run also compiles the shift kernels: outside the time bound
with tempfile.TemporaryDirectory(dir=work) as warm:
    _run(clean, Path(warm) / "run")


@settings(max_examples=examples, deadline=timedelta(seconds=seconds), derandomize=True, database=None,
          suppress_health_check=list(HealthCheck), print_blob=True)
@given(compression=st.sampled_from(["none", "zstd", "snappy"]), dictionary=st.booleans(), values=plants, damage=edits)
def check(compression, dictionary, values, damage):
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        shutil.copy(month_file(clean, TRAIN), month_file(data, TRAIN))
        path = rewrite(month_file(clean, DAMAGED), month_file(data, DAMAGED), compression=compression,
                       use_dictionary=dictionary, values=values)
        overwrite_bytes(path, damage)
        outcome = _run(data, Path(tmp) / "run")
        print(json.dumps({"compression": compression, "dictionary": dictionary, "values": len(values),
                          "edits": damage, **outcome}, default=str), flush=True)


check()
print(json.dumps({"maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
