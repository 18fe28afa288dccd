"""Job dicts for tests: dotted-path overrides, e.g. ``{"cluster.kind": "local"}``."""

from __future__ import annotations

from typing import Any


def override(job: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Set ``extra``'s values in ``job`` at their dotted paths (sections made as needed); returns ``job``."""
    for key, value in extra.items():
        node = job
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return job
