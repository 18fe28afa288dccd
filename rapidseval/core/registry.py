"""Registries of names: what a job may choose (features, drop rules, statistics, models, ...).

The job spec (:mod:`rapidseval.spec`) validates a job's choices against these
names and lists them in its errors, without importing the domain code that
defines them: each registry names its *provider*, ``"module:attribute"``, the
domain mapping (or sequence) it reads on first lookup, the way dask's
``Dispatch.register_lazy`` imports a backend only when one is needed.  The
provider's mapping is read live, so names registered later (a user's
``register_policy``) are seen; :meth:`Registry.register` adds names here.

Entries are whatever the domain holds under the name (a drop rule with its
``params`` and ``always``, a statistic with its ``kinds``, a feature's default
kind); a registry of a sequence holds the names with no entry (``None``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "Registry",
    "FEATURES",
    "STUDY_FEATURES",
    "TARGETS",
    "DROP_RULES",
    "DEFAULT_DROP_RULES",
    "FEATURE_KINDS",
    "SHIFT_STATISTICS",
    "MODEL_KINDS",
    "SCENARIOS",
]


class Registry(Mapping[str, Any]):
    """Names of one kind of choice -> their entries, filled by the domain module that owns them.

    Parameters
    ----------
    kind_label : str
        What a name names ("drop rule", "shift statistic"), for messages.
    provider : str, optional
        ``"module:attribute"``: a mapping (name -> entry) or a sequence of names
        in a domain module, imported by string on first lookup.
    """

    def __init__(self, kind_label: str, *, provider: str | None = None) -> None:
        self.kind_label = kind_label
        self.provider = provider
        self._registered: dict[str, Any] = {}
        self._provided: Mapping[str, Any] | None = None
        self._lock = threading.RLock()

    def register(self, name: str, entry: Any = None) -> None:
        """Add ``name`` (with its ``entry``) to the choices."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind_label} name must be a non-empty string, got {name!r}")
        self._registered[name] = entry

    def _provided_entries(self) -> Mapping[str, Any]:
        """The provider's mapping (imported once), or an empty one when there is no provider."""
        if self._provided is None:
            with self._lock:
                if self._provided is None:
                    self._provided = _load_provider(self.provider) if self.provider else {}
        return self._provided

    def __getitem__(self, name: str) -> Any:
        provided = self._provided_entries()
        if name in provided:
            return provided[name]
        return self._registered[name]

    def __iter__(self) -> Iterator[str]:
        provided = self._provided_entries()
        yield from provided
        yield from (name for name in self._registered if name not in provided)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return name in self._provided_entries() or name in self._registered

    def check(self, name: Any) -> Any:
        """``name`` when it is one of the choices; a ValueError that lists them otherwise
        (pydantic reports it under the field)."""
        if name not in self:
            raise ValueError(f"unknown {self.kind_label} {name!r}; choose one of {self.choices()}")
        return name

    def choices(self) -> str:
        """The names, comma-separated, in registration order (for error messages)."""
        return ", ".join(self)

    def __repr__(self) -> str:
        return f"Registry({self.kind_label!r}, provider={self.provider!r})"


def _load_provider(provider: str) -> Mapping[str, Any]:
    """Import ``"module:attribute"`` and return its mapping (a sequence becomes names -> None)."""
    module_name, _, attribute = provider.partition(":")
    value = getattr(importlib.import_module(module_name), attribute)
    if isinstance(value, Mapping):
        return value  # read live: later registrations in the domain show
    return dict.fromkeys(value)


#: model feature -> its default kind (categorical | integer | continuous), in the registry's order
FEATURES = Registry("feature", provider="rapidseval.features:FEATURE_KINDS")
#: the features of the study (the default of ``features.features``)
STUDY_FEATURES = Registry("study feature", provider="rapidseval.features:STUDY_FEATURES")
#: label name -> (columns, doc)
TARGETS = Registry("target", provider="rapidseval.features:TARGETS")
#: drop rule -> rule (``params``: name -> (default, low, high, doc); ``always``; ``defaults()``), in precedence order
DROP_RULES = Registry("drop rule", provider="rapidseval.features:DROP_RULES")
#: the rules a job applies when it does not say
DEFAULT_DROP_RULES = Registry("default drop rule", provider="rapidseval.features:DEFAULT_DROP_RULES")
#: feature kinds a job may declare (``features.kinds``)
FEATURE_KINDS = Registry("feature kind", provider="rapidseval.shift:KINDS")
#: shift statistic -> statistic (``kinds``: the feature kinds it applies to)
SHIFT_STATISTICS = Registry("shift statistic", provider="rapidseval.shift:STATISTICS")
#: model kind -> estimator factory
MODEL_KINDS = Registry("model kind", provider="rapidseval.models:MODELS")
#: synthetic scenario -> scenario
SCENARIOS = Registry("scenario", provider="rapidseval.data.synthetic:SCENARIOS")
