"""Run Evidently's DataDriftPreset on two Parquet frames; print the seconds it took (JSON).

Runs inside its own virtual environment (Evidently 0.7.23 pins pandas < 2.4):
``make bench-evidently-env``.  Usage: ``python _evidently_drift.py REF.parquet CUR.parquet``.
"""

import json
import sys
import time

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
t0 = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
seconds = time.perf_counter() - t0
metrics = [str(m.get("metric_id", "")) for m in snapshot.dict()["metrics"]]
print(json.dumps({"seconds": seconds, "rows": [len(ref), len(cur)], "metrics": len(metrics), "first": metrics[:1]}, default=str))
