"""The run report: ``report.html``, the terminal summary and the ``--json`` summary, from a run directory.

Everything here reads the run directory's tables and manifest alone
(:func:`load_run`), so ``rapidseval report RUN_DIR`` rebuilds the same page
any time, and an older run directory (fewer tables or columns) still renders:
what is absent is left out.  A run with ``checks.parquet`` gets a "Checks"
section grouped like the ML Test Score rubric and one ``checks:`` line in the
terminal; one with ``slices.parquet`` a "Slices" section and a ``slices:`` line
(:mod:`._checks` derives what both show); ``--json`` gains ``checks`` and ``slices``.
"""

from __future__ import annotations

from ._html import render_html, write_report
from ._load import TABLES, RunTables, load_run
from ._plots import Plot, build_plots
from ._tables import summarize
from ._terminal import print_summary

__all__ = ["TABLES", "Plot", "RunTables", "build_plots", "load_run", "print_summary", "render_html", "summarize", "write_report"]
