import subprocess
import sys

import numpy as np
import pytest

from rapidseval import BackendUnavailable, get_backend
from rapidseval.backend import gpu_available


def test_import_rapidseval_loads_no_gpu_library():
    code = (
        "import sys, rapidseval, rapidseval.jobs.study, rapidseval.cli, rapidseval.shift;"
        "print(','.join(m for m in ('cudf','cupy','cuml','dask_cuda','dask_cudf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cpu_backend_carries_numpy_pandas_sklearn():
    be = get_backend("cpu")
    import pandas
    from distributed import LocalCluster
    from sklearn.ensemble import RandomForestClassifier

    assert be.name == "cpu" and be.xp is np and be.xdf is pandas and be.dask_backend == "pandas"
    assert be.random_forest_classifier is RandomForestClassifier
    assert be.cluster_factory is LocalCluster


def test_auto_says_what_it_picked():
    be = get_backend("auto")
    ok, why = gpu_available()
    assert be.name == ("gpu" if ok else "cpu")
    assert be.reason.startswith("auto")


def test_gpu_without_gpu_is_a_clear_error():
    ok, _ = gpu_available()
    if ok:
        pytest.skip("a GPU is available here")
    with pytest.raises(BackendUnavailable, match="backend 'gpu' asked for but unavailable"):
        get_backend("gpu")


def test_unknown_backend_lists_choices():
    with pytest.raises(BackendUnavailable, match="auto, cpu, gpu"):
        get_backend("tpu")


@pytest.mark.rapids
def test_gpu_backend_carries_cupy_cudf_cuml():
    pytest.importorskip("cudf")
    pytest.importorskip("cuml")
    ok, why = gpu_available()
    if not ok:
        pytest.skip(why)
    be = get_backend("gpu")
    assert be.xp.__name__ == "cupy" and be.xdf.__name__ == "cudf" and be.dask_backend == "cudf"


def test_auto_picks_the_gpu_without_dask_cudf(monkeypatch):
    """dask_cudf is needed only for Dask DataFrames of cuDF frames, not to pick the GPU."""
    import importlib.util

    from rapidseval import backend

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "dask_cudf" else (real(name, *a) or object()))
    monkeypatch.setattr(backend, "_nvidia_gpu_visible", lambda: True)
    ok, why = backend.gpu_available()
    assert ok, why


def test_cpu_backend_makes_dask_dataframes_of_pandas(tmp_path):
    import dask.dataframe as dd
    import pandas

    from rapidseval.backend import frame_backend

    be = get_backend("cpu")
    frame = pandas.DataFrame({"x": np.arange(10)})
    ddf = be.to_dask(frame, npartitions=2)
    assert isinstance(ddf, dd.DataFrame) and ddf.npartitions == 2 and frame_backend(ddf) == "cpu"
    frame.to_parquet(tmp_path / "x.parquet")
    with be.dask_dataframes():
        read = dd.read_parquet(tmp_path / "x.parquet")
    assert isinstance(read._meta, pandas.DataFrame)
    pandas.testing.assert_frame_equal(read.compute().reset_index(drop=True), frame)
