"""Progress for long work: a rich bar per stage and per month or fold, or silence for scripts.

Each job kind (:mod:`rapidseval.jobs.study`, :mod:`rapidseval.jobs.backtest`) talks to the
:class:`Reporter` its :class:`~rapidseval.jobs.JobContext` holds::

    with reporter.stage("score + reduce", total=len(parts), items={"2020-03": 4, "2020-04": 4}) as st:
        for part in done_parts:
            st.advance(item=part.month)          # the stage bar and that month's bar move

    with reporter.stage("backtest", total=len(folds), unit="fold") as st:
        for fold in folds:
            with st.item(f"origin {fold.origin}", total=len(fold.months)) as it:
                for month in fold.months:
                    ...
                    it.advance()
            st.advance()

:class:`Reporter` itself does nothing (``--quiet``, ``--json``, the Python
API); :class:`RichReporter` draws the bars on a terminal (stderr), and prints
one line per finished stage with its wall time, which is also all it prints
when stderr is not a terminal (CI logs).
"""

from __future__ import annotations

import contextlib
import time
from typing import Iterator, Mapping

__all__ = ["Reporter", "NullReporter", "RichReporter", "default_reporter"]


class Reporter:
    """Interface and silent implementation: stages with steps, items (months, folds) within them, messages."""

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None, *, unit: str = "step",
              items: Mapping[str, int | None] | None = None) -> Iterator["Reporter"]:
        """A stage of ``total`` steps; ``items`` (label -> steps) gets one bar per month or fold."""
        yield self

    def advance(self, n: int = 1, *, item: str | None = None) -> None:
        """``n`` steps of the current stage done (and of ``item``'s bar, when given)."""

    @contextlib.contextmanager
    def item(self, label: str, total: int | None = None) -> Iterator["Reporter"]:
        """A bar for one month or fold of the current stage, while the block runs; ``advance`` moves it."""
        yield self

    def log(self, message: str) -> None:
        """A line of information (backend chosen, cluster address)."""


NullReporter = Reporter


class _ItemHandle:
    def __init__(self, progress, task):
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, **_ignored) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


class RichReporter(Reporter):
    """Rich progress bars per stage and per item (month, fold), and a line when each stage finishes.

    Parameters
    ----------
    console : rich.console.Console, optional
        Where to draw (default: a console on stderr, so stdout keeps only results).
    """

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress = None
        self._task = None
        self._items: dict[str, int] = {}
        #: (stage name, seconds, finished) for every stage entered, in order
        self.stages: list[tuple[str, float, bool]] = []

    def _make_progress(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(
            TextColumn("{task.description:<30}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None, *, unit: str = "step",
              items: Mapping[str, int | None] | None = None):
        t0 = time.perf_counter()
        progress = self._make_progress()
        ok = False
        units = unit if total is None or total == 1 else unit + "s"
        try:
            with progress:
                self._progress = progress
                self._task = progress.add_task(name, total=total, unit=units)
                self._items = {label: progress.add_task(f"  {label}", total=n, unit="")
                               for label, n in (items or {}).items()}
                yield self
                ok = True
        finally:
            done = progress.tasks[0].completed if progress.tasks else 0
            self._progress = self._task = None
            self._items = {}
            seconds = time.perf_counter() - t0
            self.stages.append((name, seconds, ok))
            count = f"{int(done):>5} {units}" if total is not None else " " * (6 + len(units))
            mark = "[green]✓[/]" if ok else "[red]✗[/]"
            self.console.print(f"{mark} {name:<30} {count} {seconds:8.1f} s", highlight=False)

    def advance(self, n: int = 1, *, item: str | None = None) -> None:
        if self._progress is None:
            return
        self._progress.advance(self._task, n)
        if item is not None:
            if item not in self._items:
                self._items[item] = self._progress.add_task(f"  {item}", total=None, unit="")
            self._progress.advance(self._items[item], n)

    @contextlib.contextmanager
    def item(self, label: str, total: int | None = None):
        if self._progress is None:
            yield _ItemHandle(None, None)
            return
        progress = self._progress
        task = progress.add_task(f"  {label}", total=total, unit="")
        try:
            yield _ItemHandle(progress, task)
        finally:
            progress.remove_task(task)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)


def default_reporter(quiet: bool = False) -> Reporter:
    """A silent reporter for ``--quiet``/``--json``, else rich bars on stderr."""
    if quiet:
        return Reporter()
    return RichReporter()
