"""Arrays from any backend: the array namespace of an object and its copy on the host.

Two small dispatchers in the manner of ``dask.utils.Dispatch``: a function is
looked up by the argument's type (walking its MRO), and a GPU library's
functions are registered *lazily*, by the top-level name of the module its
types come from (``register_lazy("cupy")``), so nothing here imports a GPU
library: the registrations live in :mod:`rapidseval.backend` (the one module
that names cupy and cudf) and run the first time a CuPy or cuDF object shows up.

>>> import numpy as np
>>> array_namespace(np.arange(3)) is np
True
>>> to_host(np.arange(3))
array([0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import SpecError

__all__ = ["Dispatch", "array_namespace", "require_columns", "to_host", "to_numpy"]


class Dispatch:
    """Single dispatch on the type of the first argument, with lazy registration by module.

    Parameters
    ----------
    name : str
        What the dispatcher does, for error messages.
    """

    def __init__(self, name: str):
        self.name = name
        self._lookup: dict[type, Callable[..., Any]] = {}
        self._lazy: dict[str, Callable[[], None]] = {}

    def register(self, types: type | tuple[type, ...], func: Callable[..., Any] | None = None):
        """Register ``func`` for ``types`` (usable as a decorator)."""

        def wrapper(func):
            for t in types if isinstance(types, tuple) else (types,):
                self._lookup[t] = func
            return func

        return wrapper(func) if func is not None else wrapper

    def register_lazy(self, toplevel: str, func: Callable[[], None] | None = None):
        """Register a function that registers the types of module ``toplevel`` when one of
        them is first dispatched on (usable as a decorator)."""

        def wrapper(func):
            self._lazy[toplevel] = func
            return func

        return wrapper(func) if func is not None else wrapper

    def dispatch(self, cls: type) -> Callable[..., Any]:
        """The function registered for ``cls`` (or its nearest base class)."""
        for base in cls.__mro__:
            if base in self._lookup:
                return self._lookup[base]
            toplevel = base.__module__.split(".", 1)[0]
            register = self._lazy.pop(toplevel, None)
            if register is not None:
                register()
                return self.dispatch(cls)
        raise TypeError(f"{self.name}: no implementation for {cls.__module__}.{cls.__qualname__}")

    def __call__(self, arg, *args, **kwargs):
        return self.dispatch(type(arg))(arg, *args, **kwargs)


#: the array module (numpy or cupy) whose functions apply to an array
array_namespace = Dispatch("array_namespace")
#: an array, series or frame as NumPy / pandas on the host (a no-op for host objects)
to_host = Dispatch("to_host")


@array_namespace.register(object)
def _numpy_namespace(_obj) -> Any:
    return np


@to_host.register((np.ndarray, np.generic, pd.DataFrame, pd.Series, pd.Index))
def _already_host(obj):
    return obj


@to_host.register(object)
def _as_numpy(obj):
    return np.asarray(obj)


def to_numpy(obj, dtype=None) -> np.ndarray:
    """An array or series as a NumPy array on the host."""
    host = to_host(obj)
    return np.asarray(host.to_numpy() if hasattr(host, "to_numpy") else host, dtype=dtype)


def require_columns(frame, columns: Mapping[str, str | Iterable[str] | None], *, what: str) -> None:
    """Raise one :class:`SpecError` naming every column ``frame`` lacks and the argument
    that named it (``columns``: argument -> a column, several, or ``None``), then the
    columns it has: ``replay: the frame has no column 'pickup' (time_column); its columns: ...``.
    """
    have = set(frame.columns)
    missing = []
    for argument, names in columns.items():
        names = [names] if isinstance(names, str) else list(names or ())
        missing += [f"{name!r} ({argument})" for name in names if name not in have]
    if missing:
        raise SpecError(f"{what}: the frame has no column {', '.join(missing)}; "
                        f"its columns: {', '.join(map(str, frame.columns))}")
