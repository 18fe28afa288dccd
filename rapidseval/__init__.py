"""rapidseval: replay ML models over months of tabular data, on CPU or GPU.

``import rapidseval`` imports no GPU library; the backend loads them only
when a GPU backend is asked for.
"""

from __future__ import annotations

from . import shift
from .backend import get_backend
from .core.errors import BackendUnavailable, DataError, RapidsEvalError, SchemaError, SourceError, SpecError

__version__ = "0.1.0"

__all__ = [
    "run",
    "shift",
    "get_backend",
    "load_job",
    "JobSpec",
    "JobResult",
    "StudyResult",
    "BacktestResult",
    "RapidsEvalError",
    "SpecError",
    "SourceError",
    "SchemaError",
    "DataError",
    "BackendUnavailable",
    "__version__",
]


def __getattr__(name: str):
    # the job layer (pydantic) loads on first use: the engines (``rapidseval.shift``, ``replay``,
    # ``features``) import without it, as on a bare GPU image (benchmarks/gpu_device.sh quick)
    if name == "JobSpec":
        from .spec import JobSpec

        return JobSpec
    if name == "load_job":  # the spec, then the job's domain checks (policies, folds, run directory)
        from .jobs.checks import load_job

        return load_job
    if name in ("JobResult", "StudyResult", "BacktestResult"):
        from .jobs import results

        return getattr(results, name)
    raise AttributeError(f"module 'rapidseval' has no attribute {name!r}")


def run(job, **kwargs):
    """Run a job; return its kind's result (see :func:`rapidseval.jobs.run`)."""
    from .jobs import run as _run

    return _run(job, **kwargs)
