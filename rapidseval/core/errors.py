"""Domain exceptions.

Every error a user can cause (a bad job file, a missing month, an unmappable
column, an unreachable bucket) is raised as one of these, ``from`` its cause,
with the file, month and column named in the message.
"""

from __future__ import annotations

__all__ = [
    "RapidsEvalError",
    "SpecError",
    "SourceError",
    "SchemaError",
    "DataError",
    "BackendUnavailable",
]


class RapidsEvalError(Exception):
    """Base class of every error rapidseval raises on purpose."""


class SpecError(RapidsEvalError, ValueError):
    """The job specification (file or overrides) is invalid."""


class SourceError(RapidsEvalError, OSError):
    """An input could not be found, reached or opened (local, S3 or HTTP)."""


class SchemaError(RapidsEvalError, ValueError):
    """An input's columns cannot be mapped to the canonical schema."""


class DataError(RapidsEvalError, ValueError):
    """An input's content is unusable (corrupt file, wrong types, no usable rows)."""


class BackendUnavailable(RapidsEvalError, RuntimeError):
    """The requested compute backend cannot run on this machine."""
