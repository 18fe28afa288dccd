"""Read a run directory back: the manifest and whichever tables it holds.

The report is built from these alone.  A table that is absent (an older run
directory, a job kind that does not produce it, a job without ``checks:`` or
``evaluation.slices``) reads as an empty frame, and a
column that is absent is simply not shown: every consumer checks with
:meth:`RunTables.has` before it uses one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.errors import DataError

__all__ = ["RunTables", "load_run", "TABLES"]

#: every table the report knows how to show, in the order of the page
TABLES = ("monthly", "replay", "shift", "explain", "attribution", "backtest", "staleness", "policies", "checks",
          "slices", "assertions")


@dataclass
class RunTables:
    """A run directory's manifest and tables (empty frames for absent ones)."""

    run_dir: Path
    manifest: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def has(self, name: str, *columns: str) -> bool:
        """True when table ``name`` has rows and every one of ``columns``."""
        t = self[name]
        return not t.empty and all(c in t.columns for c in columns)

    @property
    def job(self) -> dict[str, Any]:
        return self.manifest.get("job") or {}

    @property
    def name(self) -> str:
        return str(self.job.get("name") or self.run_dir.name)

    @property
    def kind(self) -> str:
        """``study``, ``replay`` or ``backtest``: the job's own ``kind`` if it names one, else what the tables say."""
        kind = self.job.get("kind")
        if isinstance(kind, str) and kind:
            return kind
        if self.has("backtest"):
            return "backtest"
        if self.has("replay") and not self.has("shift"):
            return "replay"
        return "study"

    @property
    def complete(self) -> bool:
        """False only when the manifest says so (older manifests carry no flag)."""
        return self.manifest.get("complete", True) is not False


def load_run(run_dir: str | Path) -> RunTables:
    """Read ``run_dir/manifest.json`` and every ``<table>.parquet`` of :data:`TABLES` that exists.

    Raises
    ------
    DataError
        When the manifest or a table exists but cannot be read (the file is named).
    FileNotFoundError
        When there is no ``manifest.json``.
    """
    run_dir = Path(run_dir)
    path = run_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: the manifest is not a JSON object")
    tables = {}
    for name in TABLES:
        table_path = run_dir / f"{name}.parquet"
        if not table_path.exists():
            continue
        try:
            tables[name] = pd.read_parquet(table_path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{table_path}: cannot read table {name}: {exc}") from exc
    return RunTables(run_dir, manifest, tables)
