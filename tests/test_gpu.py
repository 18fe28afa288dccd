"""The study job on the GPU backend (cuDF + cuML on LocalCUDACluster) agrees with the CPU.

Skipped cleanly where RAPIDS or a GPU is missing. The forests differ (cuML
builds histogram splits, n_bins), so metrics are compared within a stated
tolerance, not predictions; shift statistics are computed on the same
float32 features and must agree exactly up to float32 rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rapidseval
from rapidseval.backend import gpu_available

SMOKE = Path(__file__).resolve().parent.parent / "jobs" / "smoke.yaml"

pytestmark = [pytest.mark.gpu, pytest.mark.rapids]  # CuPy-only paths: test_cupy_paths.py

F1_TOL = 0.03  # GPU (histogram) vs CPU (exact-split) forests on 20k-row months


@pytest.fixture(scope="module")
def gpu_ok():
    pytest.importorskip("cudf")
    pytest.importorskip("cuml")
    ok, why = gpu_available()
    if not ok:
        pytest.skip(why)


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    from rapidseval.data.synthetic import generate

    d = tmp_path_factory.mktemp("gpu-tlc")
    generate(d, "2020-01", "2020-03", 20_000, scenario="march2020", seed=11)
    return str(d / "yellow_tripdata_{month}.parquet")


def _run(months, backend, out):
    return rapidseval.run(
        SMOKE,
        backend=backend,
        out=out,
        overrides={"data.source": months, "cluster.kind": "local", "cluster.n_workers": 1},
    )


def test_smoke_job_gpu_agrees_with_cpu(gpu_ok, months, tmp_path):
    gpu = _run(months, "gpu", tmp_path / "gpu")
    cpu = _run(months, "cpu", tmp_path / "cpu")
    assert gpu.manifest["backend"] == "gpu"
    pd.testing.assert_series_equal(gpu.monthly["n"], cpu.monthly["n"])  # same rows used
    assert np.allclose(gpu.monthly["f1"], cpu.monthly["f1"], atol=F1_TOL)
    assert (gpu.replay["n"].to_numpy() == cpu.replay["n"].to_numpy()).all()
    assert np.allclose(gpu.shift["value"], cpu.shift["value"], rtol=0, atol=1e-12)


def test_features_identical_on_gpu(gpu_ok, months):
    from rapidseval import get_backend
    from rapidseval.io.readers import read_month
    from rapidseval.features import FeatureSpec, prepare, required_columns

    spec = FeatureSpec()
    table = read_month(months.format(month="2020-03"), "2020-03", required_columns(spec))
    cpu, cs = prepare(get_backend("cpu").from_arrow(table), spec, month="2020-03", backend=get_backend("cpu"))
    gb = get_backend("gpu")
    gpu, gs = prepare(gb.from_arrow(table), spec, month="2020-03", backend=gb)
    assert cs.to_dict() == gs.to_dict()
    pd.testing.assert_frame_equal(cpu, gpu.to_pandas(), check_exact=True)


def test_same_seed_same_tables_on_gpu(gpu_ok, months, tmp_path):
    a = _run(months, "gpu", tmp_path / "a")
    b = _run(months, "gpu", tmp_path / "b")
    for x, y in ((a.monthly, b.monthly), (a.replay, b.replay), (a.shift, b.shift)):
        pd.testing.assert_frame_equal(x, y, check_exact=True)
