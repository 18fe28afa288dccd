"""The study job at full size on the GPU and on the CPU, same generated months (issue 8).

Records, for each backend: wall time of the whole job and of each stage, rows/s,
the training step on January's ~6.4M rows (the study: 21.9 s on 3 T4s), and how
far the CPU and GPU tables agree: monthly and daily F1 (different forests:
cuML bins its splits), row counts (must be equal) and shift statistics (same
float32 features: equal up to float32 rounding).  Also the GPU shift bar:
11 features on two 6.4M-row months.

    python benchmarks/study_gpu_cpu.py --rows 6400000 --out DIR [--skip-cpu] [--data DIR]

Writes DIR/results.json and DIR/results.md; each section records its own
error and the script goes on, so one run tells everything that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rapidseval  # noqa: E402

STUDY = ROOT / "jobs" / "nyc_taxi_2020.yaml"
PACKAGES = ("rapidseval", "cudf-cu13", "cuml-cu13", "dask-cudf-cu13", "dask-cuda", "cupy-cuda13x", "rmm-cu13", "dask",
            "distributed", "pandas", "numpy", "pyarrow", "scikit-learn", "scipy")
STUDY_TRAIN_SECONDS_3_T4 = 21.9


def _versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def _gpu_facts() -> dict[str, str]:
    try:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20).stdout.strip()
        name, driver, mem = (s.strip() for s in q.splitlines()[0].split(","))
        cuda = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
        cuda_version = cuda.split("CUDA Version:")[1].split()[0] if "CUDA Version:" in cuda else "?"
        return {"gpu": name, "driver": driver, "gpu_memory": mem, "cuda_driver_api": cuda_version}
    except Exception as exc:  # no GPU: the CPU half still runs
        return {"gpu": f"none ({exc})"}


def _section(results: dict, name: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        value = fn(*args, **kwargs)
        results[name] = value
        print(json.dumps(value, default=str)[:2000], flush=True)
        return value
    except Exception as exc:
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-6000:]}
        print(results[name]["traceback"], flush=True)
        return None
    finally:
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)


def generate_months(data: Path, rows: int) -> dict:
    from rapidseval.data.synthetic import generate

    if (data / "ground_truth.json").exists():
        return {"generated": False, "dir": str(data)}
    t0 = time.perf_counter()
    generate(data, "2020-01", "2020-06", rows, scenario="march2020", seed=2020)
    return {"generated": True, "dir": str(data), "seconds": round(time.perf_counter() - t0, 2)}


def run_study(backend: str, data: Path, out: Path, cluster: dict) -> dict:
    overrides = {"data.source": str(data / "yellow_tripdata_{month}.parquet"), "seed": 42}
    overrides.update({f"cluster.{k}": v for k, v in cluster.items()})
    t0 = time.perf_counter()
    res = rapidseval.run(STUDY, backend=backend, out=out, overrides=overrides)
    wall = time.perf_counter() - t0
    man = res.manifest
    rows = int(man["rows"]["total"]["rows_read"])
    timings = {k: round(float(v), 3) for k, v in man["timings_s"].items()}
    train_rows = None
    for m in man.get("models", []) or []:
        train_rows = m.get("train_rows", train_rows)
    return {"backend": man.get("backend"), "wall_s": round(wall, 2), "timings_s": timings, "rows_read": rows,
            "rows_per_s": round(rows / wall), "train_rows": train_rows, "run_dir": str(out),
            "cluster": man.get("cluster"), "hardware": man.get("hardware")}


def compare(gpu_dir: Path, cpu_dir: Path) -> dict:
    import pandas as pd

    out = {}
    g, c = pd.read_parquet(gpu_dir / "monthly.parquet"), pd.read_parquet(cpu_dir / "monthly.parquet")
    out["monthly_rows_equal"] = bool((g["n"].to_numpy() == c["n"].to_numpy()).all())
    out["monthly"] = [{"month": str(m), "f1_gpu": round(float(a), 5), "f1_cpu": round(float(b), 5),
                       "diff": round(float(a - b), 5)} for m, a, b in zip(g["month"], g["f1"], c["f1"])]
    out["monthly_f1_max_abs_diff"] = float(np.max(np.abs(g["f1"].to_numpy() - c["f1"].to_numpy())))
    g, c = pd.read_parquet(gpu_dir / "replay.parquet"), pd.read_parquet(cpu_dir / "replay.parquet")
    out["daily_rows_equal"] = bool((g["n"].to_numpy() == c["n"].to_numpy()).all())
    d = np.abs(g["f1"].to_numpy() - c["f1"].to_numpy())
    out["daily_f1_max_abs_diff"] = float(np.nanmax(d))
    out["daily_f1_mean_abs_diff"] = float(np.nanmean(d))
    g, c = pd.read_parquet(gpu_dir / "shift.parquet"), pd.read_parquet(cpu_dir / "shift.parquet")
    key = ["window", "feature", "statistic"]
    m = g.merge(c, on=key, suffixes=("_gpu", "_cpu"))
    out["shift_rows"] = [len(g), len(c), len(m)]
    dv = np.abs(m["value_gpu"] - m["value_cpu"]).to_numpy()
    out["shift_value_max_abs_diff"] = float(np.nanmax(dv)) if len(dv) else None
    out["shift_value_max_rel_diff"] = float(np.nanmax(dv / np.maximum(np.abs(m["value_cpu"].to_numpy()), 1e-300))) if len(dv) else None
    out["shift_alarms_equal"] = bool((m["alarm_gpu"] == m["alarm_cpu"]).all())
    return out


def gpu_shift_bar(data: Path, repeats: int = 5, backend: str = "gpu") -> dict:
    """11 features on two 6.4M-row months on the GPU: counts per (day, value) on the device, then the
    engine (calibration on the device); one-off (both months counted, reference calibrated) and per
    further window (reference calibrated once); and ``ks_2samp`` on the raw CuPy columns."""
    from rapidseval import get_backend
    from rapidseval.io.readers import read_month
    from rapidseval.features import FeatureSpec, prepare, required_columns
    from rapidseval.shift import ShiftCalculator, count_days, ks_2samp

    be = get_backend(backend)
    spec = FeatureSpec()
    frames = {}
    for m in ("2020-01", "2020-02"):
        table = read_month(str(data / f"yellow_tripdata_{m}.parquet"), m, required_columns(spec))
        frames[m] = prepare(be.from_arrow(table), spec, month=m, backend=be)[0]
    arrays = {}
    for m, fr in frames.items():
        day = be.time_us(fr["pickup_datetime"]) // 86_400_000_000
        arrays[m] = (day, {f: be.asarray(fr[f], dtype="float32") for f in spec.features})
    xp = be.xp

    def counts(m):
        day, cols = arrays[m]
        return count_days(day, cols, xp=xp)

    def engine(stats):
        calc = ShiftCalculator(spec.features, frequency="M", statistics=stats, xp=xp).fit(counts("2020-01"))
        return calc.calculate(counts("2020-02")).table

    fitted = ShiftCalculator(spec.features, frequency="M", statistics=["ks"], xp=xp).fit(counts("2020-01"))

    def window():
        return fitted.calculate(counts("2020-02")).table

    def direct_ks():
        a, b = arrays["2020-01"][1], arrays["2020-02"][1]
        return [ks_2samp(a[f], b[f]) for f in spec.features]

    out = {"rows": [int(len(frames["2020-01"])), int(len(frames["2020-02"]))]}
    for name, fn in (("engine_ks_one_off", lambda: engine(["ks"])), ("engine_ks_per_window", window),
                     ("engine_default_statistics_one_off", lambda: engine(None)),
                     ("ks_2samp_cupy_11_features", direct_ks)):
        sync = xp.cuda.Device().synchronize if hasattr(xp, "cuda") else (lambda: None)
        fn()  # warm-up: kernels compiled, pools grown
        sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        out[name] = {"median_s": round(float(np.median(times)), 4), "all_s": [round(t, 4) for t in times]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=6_400_000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--skip-gpu", action="store_true")
    ap.add_argument("--cpu-workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--commit", default=os.environ.get("RAPIDSEVAL_COMMIT", "unknown"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data or args.out / f"data-{args.rows}"
    results: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": args.commit,
                     "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": platform.node(),
                     "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                     "rows_per_month": args.rows, **_gpu_facts(), "versions": _versions()}
    _section(results, "generate", generate_months, data, args.rows)
    if not args.skip_gpu:
        _section(results, "study_gpu", run_study, "gpu", data, args.out / "run-gpu", {"kind": "local-cuda"})
    if not args.skip_cpu:
        _section(results, "study_cpu", run_study, "cpu", data, args.out / "run-cpu",
                 {"kind": "local", "n_workers": args.cpu_workers, "threads_per_worker": 2})
    if not args.skip_gpu and not args.skip_cpu:
        _section(results, "agreement", compare, args.out / "run-gpu", args.out / "run-cpu")
    if not args.skip_gpu:
        _section(results, "shift_gpu", gpu_shift_bar, data)
        g = results.get("study_gpu") or {}
        if "timings_s" in g:
            results["train_vs_study"] = {"train_rows": g.get("train_rows"), "gpu_train_s": g["timings_s"].get("train"),
                                         "study_3xT4_s": STUDY_TRAIN_SECONDS_3_T4}
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
