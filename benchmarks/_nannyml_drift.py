"""Run NannyML 0.13.1's default univariate drift on Parquet frames; write its per-chunk alerts as Parquet.

Runs inside its own virtual environment (``make bench-nannyml-env``), called by
``bench_power.py``.  Usage: ``python _nannyml_drift.py SPEC.json`` where SPEC holds::

    {"reference": "ref.parquet", "timestamp": "pickup_datetime", "chunk_period": "D",
     "categorical": ["PULocationID", ...],
     "analyses": [{"name": "quiet", "path": "a.parquet", "columns": ["trip_time", ...]}, ...],
     "out": "alerts.parquet"}

Defaults throughout: ``UnivariateDriftCalculator`` with its default methods (Jensen-Shannon
for continuous and categorical columns) and default thresholds (mean + 3 std of the
reference chunks' values); one chunk per ``chunk_period``.  Each column gets a calculator
of its own (the drift is univariate: the same values as one calculator of all columns), so
an analysis frame may carry only the columns that changed.  Prints the seconds it took (JSON).
"""

import json
import os
import sys
import time
import warnings

os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"  # NannyML sends usage statistics unless told not to

import pandas as pd  # noqa: E402
import nannyml as nml  # noqa: E402

warnings.simplefilter("ignore")  # its chunking and pandas warnings are not ours to fix
spec = json.loads(open(sys.argv[1]).read())
ts = spec["timestamp"]
reference = pd.read_parquet(spec["reference"])
columns = list(dict.fromkeys(c for a in spec["analyses"] for c in a["columns"]))
t0 = time.perf_counter()
calculators = {}
for c in columns:
    kind = {"treat_as_categorical": [c]} if c in spec["categorical"] else {"treat_as_numerical": [c]}
    calculators[c] = nml.UnivariateDriftCalculator(column_names=[c], timestamp_column_name=ts,
                                                    chunk_period=spec["chunk_period"], **kind).fit(reference[[c, ts]])
t_fit = time.perf_counter() - t0
rows = []
t0 = time.perf_counter()
for analysis in spec["analyses"]:
    frame = pd.read_parquet(analysis["path"])
    for c in analysis["columns"]:
        res = calculators[c].calculate(frame[[c, ts]]).filter(period="analysis").to_df()
        methods = sorted({m for col, m, _ in res.columns if col == c})
        for m in methods:
            rows.append(pd.DataFrame({
                "analysis": analysis["name"], "chunk": res[("chunk", "chunk", "key")].astype(str).to_numpy(),
                "column": c, "method": m, "value": res[(c, m, "value")].to_numpy(dtype="float64"),
                "upper_threshold": res[(c, m, "upper_threshold")].to_numpy(dtype="float64"),
                "alert": res[(c, m, "alert")].eq(True).to_numpy(dtype=bool)}))  # a missing alert is none
t_calc = time.perf_counter() - t0
pd.concat(rows, ignore_index=True).to_parquet(spec["out"])
print(json.dumps({"fit_s": t_fit, "calculate_s": t_calc, "nannyml": nml.__version__}))
