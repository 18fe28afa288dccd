"""What a run returns: one result type per job kind, each holding the run directory's tables.

Every result shares :class:`JobResult` (the spec, the run directory, the manifest, timings)
and gives its tables by name with :meth:`~JobResult.to_df` and as attributes; in a
notebook it shows a short summary and the heads of its tables.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from ..checks import failed_checks
from ..shift import alarms
from ..spec import JobSpec

__all__ = ["JobResult", "StudyResult", "BacktestResult"]

#: rows of each table a notebook shows
_HEAD_ROWS = 5


@dataclass
class JobResult:
    """What every job kind's run produced: the spec, the run directory and its manifest.

    A kind adds its tables as fields and names them in ``TABLES``.
    """

    TABLES: ClassVar[tuple[str, ...]] = ()

    spec: JobSpec
    run_dir: Path
    manifest: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def failed_checks(self) -> pd.DataFrame:
        """The checks whose status is ``fail`` (``rapidseval run`` then exits 3); empty when none."""
        return failed_checks(getattr(self, "checks", None))

    def to_df(self, name: str | None = None) -> pd.DataFrame:
        """The table ``name`` (one of ``TABLES``; by default the first, the kind's main table)
        as a pandas DataFrame.

        Raises
        ------
        KeyError
            ``name`` is not one of this job kind's tables (the message lists them).
        """
        name = self.TABLES[0] if name is None else name
        if name not in self.TABLES:
            raise KeyError(f"{type(self).__name__} has no table {name!r}; its tables: {', '.join(self.TABLES)}")
        table = getattr(self, name)
        return table if table is not None else pd.DataFrame()

    def tables(self) -> dict[str, pd.DataFrame]:
        """name -> table, every table of the result."""
        return {name: self.to_df(name) for name in self.TABLES}

    def _summary_lines(self) -> list[str]:
        rows = self.manifest.get("rows", {}).get("total", {})
        lines = [f"run directory {self.run_dir}", f"backend {self.manifest.get('backend', '?')}"]
        if "rows_used" in rows and "rows_read" in rows:
            lines.append(f"{rows['rows_used']:,} rows used of {rows['rows_read']:,} read")
        lines.append(f"{self.timings.get('total', 0.0):.1f} s")
        return lines

    def __repr__(self) -> str:
        """One line: the kind, the job, the run directory and each table's shape (the
        dataclass repr printed the whole spec, manifest and tables: ~18k characters)."""
        shapes = ", ".join(f"{name} {len(t):,}×{len(t.columns)}" for name, t in self.tables().items())
        return f"<{type(self).__name__} {self.spec.name!r}: {self.run_dir}; tables {shapes}>"

    def _repr_html_(self) -> str:
        """A short summary and the head of every table (Jupyter calls this)."""
        title = f"{type(self).__name__}: {html.escape(self.spec.name)}"
        summary = " · ".join(html.escape(line) for line in self._summary_lines())
        sections = [f"<h4>{title}</h4>", f"<p>{summary}</p>"]
        for name, table in self.tables().items():
            shape = f"{len(table):,} × {len(table.columns)}"  # rows x columns, as pandas shows a shape
            sections.append(f"<details><summary><code>{name}</code> ({shape})</summary>"
                            f"{table.head(_HEAD_ROWS).to_html(index=False, max_cols=12)}</details>")
        return "\n".join(sections)


@dataclass(repr=False)  # JobResult's one-line repr
class StudyResult(JobResult):
    """A study's run (train, threshold, replay, shift): its tables and its fitted models."""

    TABLES: ClassVar[tuple[str, ...]] = ("monthly", "replay", "shift", "attribution", "explain", "checks", "slices")

    monthly: pd.DataFrame = field(default_factory=pd.DataFrame)
    replay: pd.DataFrame = field(default_factory=pd.DataFrame)
    shift: pd.DataFrame = field(default_factory=pd.DataFrame)
    attribution: pd.DataFrame = field(default_factory=pd.DataFrame)
    explain: pd.DataFrame = field(default_factory=pd.DataFrame)  # what moved in each alarmed (window, feature)
    checks: pd.DataFrame = field(default_factory=pd.DataFrame)  # checks.parquet: one row per check and window
    slices: pd.DataFrame = field(default_factory=pd.DataFrame)  # slices.parquet: metrics per slice and window
    models: list[Any] = field(default_factory=list)

    @property
    def model(self) -> Any:
        """The first model of the job (its primary model)."""
        return self.models[0] if self.models else None

    def shift_alarms(self) -> pd.DataFrame:
        """Alarm rows of the shift table: feature, window, statistic, value, threshold."""
        return alarms(self.shift)


@dataclass(repr=False)
class BacktestResult(JobResult):
    """A backtest's run: per policy and month, per origin and month, per policy, per model."""

    TABLES: ClassVar[tuple[str, ...]] = ("backtest", "staleness", "policies", "models", "checks")

    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)
    staleness: pd.DataFrame = field(default_factory=pd.DataFrame)
    policies: pd.DataFrame = field(default_factory=pd.DataFrame)
    models: pd.DataFrame = field(default_factory=pd.DataFrame)
    checks: pd.DataFrame = field(default_factory=pd.DataFrame)  # checks.parquet: per fold and month
