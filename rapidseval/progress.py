"""Progress lines and bars for long work (rich), or silence for scripts."""

from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["Reporter", "NullReporter", "RichReporter"]


class Reporter:
    """Interface: stages with a known number of steps, and plain messages."""

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator["Reporter"]:
        yield self

    def advance(self, n: int = 1) -> None:
        pass

    def log(self, message: str) -> None:
        pass


NullReporter = Reporter


class RichReporter(Reporter):
    """A rich progress bar per stage and a line when each stage finishes."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._progress = None
        self._task = None

    @contextlib.contextmanager
    def stage(self, name: str, total: int | None = None):
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        t0 = time.perf_counter()
        progress = Progress(
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        with progress:
            self._progress, self._task = progress, progress.add_task(name, total=total)
            try:
                yield self
            finally:
                self._progress = self._task = None
        self.console.print(f"[green]✓[/] {name:<22} {time.perf_counter() - t0:7.1f} s")

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)


def default_reporter(quiet: bool = False) -> Reporter:
    if quiet:
        return Reporter()
    return RichReporter()

