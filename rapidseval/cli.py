"""The ``rapidseval`` command line: generate | run | validate | report | bench."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import RapidsEvalError

app = typer.Typer(
    name="rapidseval",
    help="Replay ML models over months of tabular data: windowed metrics, shift statistics, backtests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _console():
    from rich.console import Console

    return Console()


def _fail(exc: Exception) -> None:
    from .lineage import redact

    typer.echo(f"error: {redact(str(exc))}", err=True)
    raise typer.Exit(code=2)


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="directory for yellow_tripdata_YYYY-MM files"),
    start: str = typer.Option(..., "--start", help="first month, YYYY-MM"),
    end: str = typer.Option(..., "--end", help="last month, YYYY-MM (inclusive)"),
    rows_per_month: int = typer.Option(..., "--rows-per-month", help="nominal rows per month"),
    scenario: str = typer.Option("none", "--scenario", help="none | march2020 | units_bug | schema_change"),
    fmt: str = typer.Option("parquet", "--format", help="parquet | csv"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed -> same data)"),
    scenario_month: Optional[str] = typer.Option(None, "--scenario-month", help="month the scenario hits (default: per scenario)"),
) -> None:
    """Write TLC-like monthly files (and ground_truth.json) made locally."""
    from rich.progress import Progress

    from .data.synthetic import generate as _generate

    try:
        with Progress(console=_console(), transient=True) as progress:
            tasks: dict[str, int] = {}

            def tick(month, done, total):
                if month not in tasks:
                    tasks[month] = progress.add_task(f"generate {month}", total=total)
                progress.update(tasks[month], completed=done)

            res = _generate(out, start, end, rows_per_month, scenario=scenario, fmt=fmt, seed=seed,
                            scenario_month=scenario_month, progress=tick)
    except RapidsEvalError as exc:
        _fail(exc)
    total = sum(res.rows.values())
    typer.echo(f"wrote {len(res.files)} files, {total:,} rows to {res.out_dir} in {res.seconds:.1f} s "
               f"({total / max(res.seconds, 1e-9) / 1e6:.2f}M rows/s)")


def _print_summary(result, console) -> None:
    """The final summary, read back from the run directory like ``report.html``."""
    from .report import load_run, print_summary

    print_summary(load_run(result.run_dir), console)


@app.command()
def run(
    job: Path = typer.Argument(..., help="job spec (YAML)"),
    backend: Optional[str] = typer.Option(None, "--backend", help="auto | cpu | gpu (overrides the job)"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="address of an existing Dask scheduler"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (overrides output.dir)"),
    set_: List[str] = typer.Option([], "--set", help="override any job field: key.path=value (repeatable)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress, only the summary line"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary on stdout"),
) -> None:
    """Run a job: read, train, replay, shift; print a summary; write a run directory."""
    from .progress import default_reporter
    from .runner import run as _run

    try:
        result = _run(job, backend=backend, scheduler=scheduler, out=out, overrides=list(set_),
                      reporter=default_reporter(quiet or as_json))
    except RapidsEvalError as exc:
        _fail(exc)
    if as_json:
        from .report import load_run, summarize

        typer.echo(json.dumps(summarize(load_run(result.run_dir)), indent=2))
    elif quiet:
        typer.echo(f"{result.run_dir} " + " ".join(f"{r.month}:{r.f1:.4f}" for r in result.monthly.itertuples())
                   + (f" report {result.report_path}" if result.report_path.exists() else ""))
    else:
        _print_summary(result, _console())


@app.command()
def validate(
    job: Path = typer.Argument(..., help="job spec (YAML)"),
    set_: List[str] = typer.Option([], "--set", help="override any job field: key.path=value"),
) -> None:
    """Check the spec and every input's schema, without training."""
    from .jobs import load_job
    from .runner import resolve_inputs

    try:
        spec = load_job(job, list(set_))
        months = [m for m in spec.data.months if m in set(spec.evaluated_months()) | set(spec.shift_months())]
        warnings: list[str] = []
        notes: list[str] = []
        for month, (info, parts, era) in resolve_inputs(spec, months, warnings=warnings, notes=notes).items():  # maps and checks every schema
            typer.echo(f"ok {month}: {info.uri} ({info.format}, era {era}, "
                       f"{info.rows if info.rows is not None else '?'} rows, {len(parts)} parts)")
        for line in warnings:
            typer.echo(f"warning: {line}")
        for line in notes:
            typer.echo(f"note: {line}")
    except RapidsEvalError as exc:
        _fail(exc)
    typer.echo(f"job {spec.name} is valid")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """Rebuild report.html from a run directory's tables."""
    from .report import write_report
    from .rundir import IncompleteRunDir, check_complete

    try:
        check_complete(run_dir)  # an interrupted run's tables are not reported as if they were results
    except IncompleteRunDir as exc:
        _fail(exc)
    try:
        path = write_report(run_dir)
    except (OSError, ValueError, KeyError) as exc:
        _fail(RapidsEvalError(f"{run_dir}: cannot rebuild the report: {exc}"))
    typer.echo(f"report: {path}")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Run the throughput benchmarks (pytest-benchmark under benchmarks/; extra args go to pytest)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent / "benchmarks"
    if not root.exists():
        _fail(RapidsEvalError(f"benchmarks not found at {root} (they ship with the source checkout)"))
    cmd = [sys.executable, "-m", "pytest", str(root), "-p", "no:cacheprovider", "--benchmark-only", *ctx.args]
    raise typer.Exit(subprocess.call(cmd))


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
