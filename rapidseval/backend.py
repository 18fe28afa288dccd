"""Compute backends: the ONLY module that names cudf, cupy, cuml, dask_cuda or dask_cudf.

Everything else in rapidseval is written once against a :class:`Backend`,
which carries the array module (numpy | cupy), the frame module
(pandas | cudf), the Dask DataFrame backend name, the model classes
(scikit-learn | cuML) and the cluster factory (``LocalCluster`` |
``dask_cuda.LocalCUDACluster``).  GPU libraries are imported lazily, inside
:func:`get_backend`, never at ``import rapidseval`` time: a CUDA context must
not be created before a cluster has set ``CUDA_VISIBLE_DEVICES`` per worker.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy

from .core.arrays import array_namespace, to_host
from .core.errors import BackendUnavailable

__all__ = ["Backend", "get_backend", "gpu_available", "cupy_available", "frame_backend", "BACKEND_NAMES"]

BACKEND_NAMES = ("auto", "cpu", "gpu")


# the GPU halves of :mod:`rapidseval.core.arrays`' dispatchers: they import cupy / cudf the first
# time a CuPy or cuDF object is dispatched on, never before
@array_namespace.register_lazy("cupy")
@to_host.register_lazy("cupy")
def _register_cupy() -> None:
    import cupy

    array_namespace.register(cupy.ndarray, lambda _obj: cupy)
    to_host.register(cupy.ndarray, cupy.asnumpy)


@array_namespace.register_lazy("cudf")
@to_host.register_lazy("cudf")
def _register_cudf() -> None:
    import cudf
    import cupy

    array_namespace.register((cudf.Series, cudf.Index), lambda _obj: cupy)
    to_host.register((cudf.DataFrame, cudf.Series, cudf.Index), lambda obj: obj.to_pandas())


@dataclass(frozen=True)
class Backend:
    """What a stage needs to run on one kind of device.

    Attributes
    ----------
    name : {"cpu", "gpu"}
    xp : module
        Array module (``numpy`` or ``cupy``).
    xdf : module
        Frame module (``pandas`` or ``cudf``).
    dask_backend : str
        Dask DataFrame backend name (``"pandas"`` or ``"cudf"``).
    random_forest_classifier : type
        Single-process random forest (sklearn or cuML).
    cluster_factory : callable
        ``LocalCluster`` or ``dask_cuda.LocalCUDACluster``.
    reason : str
        Why this backend was picked (shown to the user for ``auto``).
    logistic_regression, standard_scaler : type
        Linear baseline and its scaler (sklearn or cuML).
    """

    name: str
    xp: Any = field(repr=False)
    xdf: Any = field(repr=False)
    dask_backend: str
    random_forest_classifier: type = field(repr=False)
    cluster_factory: Callable[..., Any] = field(repr=False)
    reason: str = ""
    logistic_regression: type | None = field(default=None, repr=False)
    standard_scaler: type | None = field(default=None, repr=False)

    # -- conversions every stage needs -------------------------------------------------
    def from_arrow(self, table):
        """Arrow table -> backend frame (pandas or cuDF)."""
        if self.name == "gpu":
            return self.xdf.DataFrame.from_arrow(table)
        return table.to_pandas()

    def to_host(self, obj):
        """Frame, series or array -> pandas / numpy on the host (:func:`rapidseval.core.arrays.to_host`:
        a no-op for host objects, whichever backend)."""
        return to_host(obj)

    def asarray(self, obj, dtype=None):
        """Column or array -> backend array (numpy or cupy)."""
        if hasattr(obj, "to_cupy") and self.name == "gpu":
            if dtype is not None and numpy.dtype(dtype).kind == "f":
                return obj.to_cupy(dtype=dtype, na_value=numpy.nan)  # cuDF nulls -> NaN, as pandas
            return obj.to_cupy(dtype=dtype) if dtype is not None else obj.to_cupy()
        if hasattr(obj, "to_numpy"):
            return obj.to_numpy(dtype=dtype)
        return self.xp.asarray(obj, dtype=dtype)

    def time_us(self, series):
        """Datetime column -> int64 microseconds since the epoch (NaT -> arbitrary; mask it)."""
        series = series.astype("datetime64[us]")
        if self.name == "gpu":
            return series.astype("int64").fillna(0).to_cupy()
        return series.to_numpy().view("int64")

    # -- Dask DataFrames -----------------------------------------------------------------
    @contextlib.contextmanager
    def dask_dataframes(self):
        """Within it, ``dask.dataframe`` builds this backend's frames (``dataframe.backend``:
        ``pandas``, or ``cudf`` with dask_cudf, imported here, which registers that backend)."""
        import dask

        if self.dask_backend == "cudf":
            _import_dask_cudf()
        with dask.config.set({"dataframe.backend": self.dask_backend}):
            yield

    def to_dask(self, frame, npartitions: int = 1):
        """A pandas or cuDF frame as a Dask DataFrame of ``npartitions`` (dask_cudf's on GPU)."""
        if self.name == "gpu":
            return _import_dask_cudf().from_cudf(frame, npartitions=npartitions)
        import dask.dataframe as dd

        return dd.from_pandas(frame, npartitions=npartitions)

    def device_description(self) -> dict[str, Any]:
        """Hardware facts for the manifest."""
        info: dict[str, Any] = {"backend": self.name, "cpu_count": os.cpu_count()}
        if self.name == "gpu":
            try:
                dev = self.xp.cuda.Device()
                props = self.xp.cuda.runtime.getDeviceProperties(dev.id)
                name = props["name"]
                info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
                info["gpu_memory_bytes"] = int(props["totalGlobalMem"])
                info["cuda_runtime"] = int(self.xp.cuda.runtime.runtimeGetVersion())
            except Exception as exc:  # pragma: no cover - informative only
                info["gpu"] = f"unknown ({exc})"
        return info


def _import_dask_cudf():
    """dask_cudf, which only Dask-cuDF frames need (the GPU backend's jobs read with cuDF)."""
    try:
        import dask_cudf
    except ImportError as exc:
        raise BackendUnavailable(f"Dask DataFrames of cuDF frames need dask_cudf (pip install 'rapidseval[gpu]'): "
                                 f"{exc}") from exc
    return dask_cudf


def frame_backend(frame) -> str:
    """``"gpu"`` for a cuDF frame or series (or a Dask collection of them), else ``"cpu"``;
    tells by the type's module, so nothing is imported."""
    meta = getattr(frame, "_meta", frame)  # a Dask DataFrame's empty partition
    return "gpu" if type(meta).__module__.split(".", 1)[0] == "cudf" else "cpu"


def _nvidia_gpu_visible() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if shutil.which("nvidia-smi") is None:
        return os.path.exists("/dev/nvidia0")
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


#: what the GPU backend imports (dask_cudf is only for Dask-cuDF frames: see :meth:`Backend.to_dask`)
_GPU_MODULES = ("cudf", "cuml", "cupy", "dask_cuda")


def _rapids_missing() -> list[str]:
    missing = []
    for mod in _GPU_MODULES:
        if importlib.util.find_spec(mod) is None:
            missing.append(mod)
    return missing


def gpu_available() -> tuple[bool, str]:
    """Whether the GPU backend can run here, and why (not) — without importing RAPIDS."""
    missing = _rapids_missing()
    if missing:
        return False, f"RAPIDS not installed ({', '.join(missing)} missing; pip install 'rapidseval[gpu]')"
    if not _nvidia_gpu_visible():
        return False, "no NVIDIA GPU visible (nvidia-smi lists none or CUDA_VISIBLE_DEVICES hides them)"
    return True, "cuDF, cuML and a GPU are available"


def cupy_available() -> tuple[bool, str]:
    """Whether CuPy alone can run here (the ``cupy`` tests and the device's quick check need no
    cuDF or cuML), and why (not) - without importing CuPy."""
    if importlib.util.find_spec("cupy") is None:
        return False, "CuPy not installed (pip install cupy-cuda13x, or 'rapidseval[gpu]')"
    if not _nvidia_gpu_visible():
        return False, "no NVIDIA GPU visible (nvidia-smi lists none or CUDA_VISIBLE_DEVICES hides them)"
    return True, "CuPy and a GPU are available"


def _cpu(reason: str) -> Backend:
    import numpy
    import pandas
    from distributed import LocalCluster
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    return Backend(
        name="cpu",
        xp=numpy,
        xdf=pandas,
        dask_backend="pandas",
        random_forest_classifier=RandomForestClassifier,
        cluster_factory=LocalCluster,
        reason=reason,
        logistic_regression=LogisticRegression,
        standard_scaler=StandardScaler,
    )


#: RAPIDS 26.10 wheels: nvforest bundles treelite 4.7.0 while cuML requires treelite >= 4.7.2,
#: so every model load says it "originated from a newer Treelite version" (harmless: same trees)
TREELITE_SKEW = r".*originated from a newer Treelite version"


def _gpu(reason: str) -> Backend:
    # as dask-cuda does: importing RAPIDS must not create a CUDA context before a
    # cluster has set CUDA_VISIBLE_DEVICES for its workers
    os.environ.setdefault("RAPIDS_NO_INITIALIZE", "1")
    warnings.filterwarnings("ignore", TREELITE_SKEW, UserWarning)
    try:
        import cudf
        import cupy
        from cuml.ensemble import RandomForestClassifier
        from cuml.linear_model import LogisticRegression
        from cuml.preprocessing import StandardScaler
        from dask_cuda import LocalCUDACluster
    except ImportError as exc:
        raise BackendUnavailable(f"backend 'gpu' asked for but RAPIDS failed to import: {exc}") from exc
    return Backend(
        name="gpu",
        xp=cupy,
        xdf=cudf,
        dask_backend="cudf",
        random_forest_classifier=RandomForestClassifier,
        cluster_factory=LocalCUDACluster,
        reason=reason,
        logistic_regression=LogisticRegression,
        standard_scaler=StandardScaler,
    )


@functools.lru_cache(maxsize=None)
def get_backend(name: str = "auto") -> Backend:
    """Return the backend called ``name``.

    Parameters
    ----------
    name : {"auto", "cpu", "gpu"}
        ``"auto"`` picks the GPU only when cuDF and cuML import and a GPU is
        visible, and says which it picked in ``Backend.reason``.  ``"gpu"``
        where there is none raises :class:`BackendUnavailable`; it never falls
        back silently.
    """
    if name not in BACKEND_NAMES:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if name == "cpu":
        return _cpu("asked for cpu")
    ok, why = gpu_available()
    if name == "gpu":
        if not ok:
            raise BackendUnavailable(f"backend 'gpu' asked for but unavailable: {why}")
        return _gpu("asked for gpu")
    if ok:
        return _gpu(f"auto: {why}")
    return _cpu(f"auto: cpu, because {why}")
