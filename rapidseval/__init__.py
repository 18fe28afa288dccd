"""rapidseval: replay ML models over months of tabular data, on CPU or GPU.

``import rapidseval`` imports no GPU library; the backend loads them only
when a GPU backend is asked for.
"""

from __future__ import annotations

from . import shift
from .backend import get_backend
from .errors import BackendUnavailable, DataError, RapidsEvalError, SchemaError, SourceError, SpecError
from .jobs import JobSpec, load_job

__version__ = "0.1.0"

__all__ = [
    "run",
    "shift",
    "get_backend",
    "load_job",
    "JobSpec",
    "RapidsEvalError",
    "SpecError",
    "SourceError",
    "SchemaError",
    "DataError",
    "BackendUnavailable",
    "__version__",
]


def run(job, **kwargs):
    """Run a job; see :func:`rapidseval.runner.run`."""
    from .runner import run as _run

    return _run(job, **kwargs)
