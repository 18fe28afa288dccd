"""The ``rapidseval`` command line: generate | run | validate | report | bench.

One error boundary (:class:`_ErrorBoundary`, the command group) turns every
exception a command lets out into one line on stderr, ``error: ...``, and exit
status 2; ``--debug`` (anywhere on the command line, or ``RAPIDSEVAL_DEBUG=1``)
prints the traceback instead.  An interrupt (Ctrl-C, SIGINT) ends with one
line, ``interrupted``, and exit status 130 (128 + SIGINT, the shell's
convention).  Usage errors (a missing option) stay Click's: usage, a message,
status 2.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import List, Optional

import click
import typer
from typer.core import TyperGroup

from .core.errors import RapidsEvalError

#: exit status of every error; an interrupt exits with 130
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
_DEBUG = "rapidseval.debug"

#: what Click/Typer raise to end a command themselves (usage errors print usage, status 2):
#: the boundary lets them through.  Typer >= 0.26 vendors its own Click, whose exceptions
#: derive from ``typer.TyperException``, not from ``click.ClickException``.
_CLICK_EXITS: tuple[type[BaseException], ...] = (
    click.exceptions.Exit, click.ClickException, click.exceptions.Abort, typer.Exit, typer.Abort,
    *((typer.TyperException,) if hasattr(typer, "TyperException") else ()),
)


#: ``rapidseval run``'s exit code when a check of severity ``fail`` did not hold (the run
#: directory is complete); an error or a usage error exits with EXIT_ERROR (2)
EXIT_CHECKS_FAILED = 3


def _one_line(exc: BaseException) -> str:
    from .io.lineage import redact

    text = str(exc) if isinstance(exc, (RapidsEvalError, TypeError)) and str(exc) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:  # e.g. PermissionError: name the file, say why
        names = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        text = f"{names}: {exc.strerror}" if names else exc.strerror
    return " ".join(redact(text).replace("\n", "; ").split())


def _quiet_unraisable(unraisable) -> None:
    """After an interrupt: errors of clean-up callbacks (atexit) are left unreported."""


class _ErrorBoundary(TyperGroup):
    """The group: ``--debug`` accepted anywhere; any exception -> one line and status 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        head, sep, tail = (args[:args.index("--")], ["--"], args[args.index("--") + 1:]) if "--" in args else (args, [], [])
        if "--debug" in head:
            ctx.meta[_DEBUG] = True
            head = [a for a in head if a != "--debug"]
        return super().parse_args(ctx, head + sep + tail)

    def invoke(self, ctx: click.Context):
        debug = ctx.meta.get(_DEBUG) or os.environ.get("RAPIDSEVAL_DEBUG", "") not in ("", "0")
        try:
            return super().invoke(ctx)
        except _CLICK_EXITS:
            raise
        except KeyboardInterrupt:
            if debug:
                traceback.print_exc()
            else:  # a cluster interrupted while starting fails again in Dask's atexit close: keep that quiet too
                sys.unraisablehook = _quiet_unraisable
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:  # the one boundary: no raw traceback reaches a user
            if debug:
                traceback.print_exc()
            unexpected = not isinstance(exc, (RapidsEvalError, TypeError)) and not debug
            click.echo(f"error: {_one_line(exc)}" + (" (unexpected: --debug shows the traceback)" if unexpected else ""),
                       err=True)
            ctx.exit(EXIT_ERROR)


app = typer.Typer(
    name="rapidseval",
    cls=_ErrorBoundary,
    help="Replay ML models over months of tabular data: windowed metrics, shift statistics, backtests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"rapidseval {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
    debug: bool = typer.Option(False, "--debug", help="on an error, print the traceback (also after a command, "
                               "or RAPIDSEVAL_DEBUG=1)"),
) -> None:
    """Replay ML models over months of tabular data: windowed metrics, shift statistics, backtests."""


def _console():
    from rich.console import Console

    return Console()


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {_one_line(exc)}", err=True)
    raise typer.Exit(code=EXIT_ERROR)


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

    _check_generate_args(out, start=start, end=end, rows_per_month=rows_per_month, scenario=scenario, fmt=fmt,
                         seed=seed, scenario_month=scenario_month)
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
    typer.echo(f"wrote {len(res.files)} file{'' if len(res.files) == 1 else 's'}, {total:,} rows to {res.out_dir} in {res.seconds:.1f} s "
               f"({total / max(res.seconds, 1e-9) / 1e6:.2f}M rows/s)")


def _check_generate_args(out: Path, *, start, end, rows_per_month, scenario, fmt, seed, scenario_month) -> None:
    """The generator's checks, in the option names a user typed; and ``--out`` never overwrites
    files rapidseval did not make (a directory without ground_truth.json keeps its trip files)."""
    from .data.synthetic import FORMATS, SCENARIOS
    from .spec import MAX_PERIOD_MONTHS, MAX_ROWS, MAX_SEED
    from .core.errors import SpecError
    from .core.time import check_month, month_index

    for option, value in (("--start", start), ("--end", end), ("--scenario-month", scenario_month)):
        if value is not None:
            check_month(value, option)
    if month_index(end) < month_index(start):
        raise SpecError(f"--end {end} is before --start {start}")
    if month_index(end) - month_index(start) + 1 > MAX_PERIOD_MONTHS:
        raise SpecError(f"--start {start} --end {end} spans more than {MAX_PERIOD_MONTHS} months")
    if scenario_month is not None and not month_index(start) <= month_index(scenario_month) <= month_index(end):
        raise SpecError(f"--scenario-month {scenario_month} is outside --start {start} .. --end {end}")
    if not 1 <= rows_per_month <= MAX_ROWS:
        raise SpecError(f"--rows-per-month must be between 1 and {MAX_ROWS:,}, got {rows_per_month}")
    if not 0 <= seed <= MAX_SEED:
        raise SpecError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")
    if scenario not in SCENARIOS:
        raise SpecError(f"--scenario {scenario!r} is unknown; choose one of {', '.join(SCENARIOS)}")
    if fmt not in FORMATS:
        raise SpecError(f"--format {fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    for p in [out, *out.absolute().parents]:
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise RapidsEvalError(f"--out {out}: {p} is a file, not a directory")
            break
    if out.is_dir() and not (out / "ground_truth.json").exists():
        names = [f"yellow_tripdata_{m}.{fmt}" for m in _months(start, end)]
        clash = [n for n in names if (out / n).exists()]
        if clash:
            raise RapidsEvalError(f"--out {out} already holds {', '.join(clash[:3])}{', ...' if len(clash) > 3 else ''}, "
                                  "not made by rapidseval generate (no ground_truth.json); choose another --out")


def _months(start: str, end: str) -> list[str]:
    from .core.time import month_range

    return month_range(start, end)


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
    """Run a job (a study: read, train, replay, shift; or a backtest: folds and retraining policies);
    print a summary; write a run directory."""
    from .jobs import TrackingError
    from .jobs import run as _run
    from .jobs.progress import default_reporter

    tracking_error = None
    try:
        result = _run(job, backend=backend, scheduler=scheduler, out=out, overrides=list(set_),
                      reporter=default_reporter(quiet or as_json))
    except TrackingError as exc:  # the run is complete: its summary and its checks' verdict still count
        result, tracking_error = exc.result, exc
    if as_json:
        from .report import load_run, summarize

        typer.echo(json.dumps(summarize(load_run(result.run_dir)), indent=2))
    elif quiet:
        typer.echo(_quiet_line(result))
    else:
        _print_summary(result, _console())
    if tracking_error is not None:
        typer.echo(f"error: {_one_line(tracking_error)}", err=True)
    failed = result.failed_checks
    if not failed.empty:  # the run directory is complete; a CI pipeline gates on the exit code
        names = ", ".join(dict.fromkeys(failed["check"].astype(str)))
        typer.echo(f"checks failed: {len(failed)} fail result(s) ({names}); see checks.parquet (exit code 3)", err=True)
        raise typer.Exit(EXIT_CHECKS_FAILED)  # the verdict outranks a tracking failure (said above)
    if tracking_error is not None:
        raise typer.Exit(EXIT_ERROR)


def _quiet_line(result) -> str:
    """``RUN_DIR month:F1 ... [report PATH]``; a backtest: ``RUN_DIR policy:mean_<metric>=v,worst_<metric>=v ...``."""
    from .jobs import BacktestResult

    items = _policy_items(result.policies) if isinstance(result, BacktestResult) else _month_items(result.monthly)
    return " ".join([str(result.run_dir), *items]) + (f" report {result.report_path}" if result.report_path.exists() else "")


def _policy_items(policies) -> list[str]:
    """``policy:mean_<metric>=v,worst_<metric>=v,retrains=n`` per policy of a backtest."""
    items = []
    if policies is None or policies.empty:
        return items
    metric = str(policies["metric"].iloc[0]) if "metric" in policies.columns else "f1"
    for rec in policies.to_dict("records"):
        values = [f"{k}={rec[k]:.4f}" for k in (f"mean_{metric}", f"worst_{metric}") if rec.get(k) is not None]
        values += [f"retrains={int(rec['retrains'])}"] if rec.get("retrains") is not None else []
        items.append(f"{rec['policy']}:{','.join(values)}")
    return items


def _month_items(monthly) -> list[str]:
    """``month:F1`` per evaluated month of a study."""
    if monthly is None or monthly.empty:
        return []
    return [f"{r.month}:{r.f1:.4f}" for r in monthly.itertuples()]


@app.command()
def validate(
    job: Path = typer.Argument(..., help="job spec (YAML)"),
    set_: List[str] = typer.Option([], "--set", help="override any job field: key.path=value"),
) -> None:
    """Check the spec, the output directory and every input's schema and types (as a run does first), without training."""
    from .backend import get_backend
    from .jobs.checks import check_models, load_job
    from .io.rundir import RunDirClaim, resolve_run_dir
    from .jobs.check_model import model_checks
    from .jobs.inputs import feature_spec, input_months, resolve_inputs

    spec = load_job(job, list(set_))
    warnings: list[str] = []
    notes: list[str] = []
    if spec.backend == "gpu":  # validated where the job will run, perhaps not this machine
        notes.append("model.params not checked here (backend gpu: cuML checks them when the run builds the model)")
    else:  # as a run does before reading: model.params=abc or an unknown parameter fails now
        check_models(spec, get_backend(spec.backend))
    RunDirClaim(resolve_run_dir(spec.output.dir, spec.name)).check(spec)  # refused now, not after the run
    model_check = model_checks(spec, feature_spec(spec))  # checks.assertions: read and checked, as a run does
    if model_check is not None and model_check.assertion_set is not None:
        aset = model_check.assertion_set
        typer.echo(f"ok checks.assertions: {aset.source} ({len(aset)} rows)")
    inputs = resolve_inputs(spec, input_months(spec), warnings=warnings, notes=notes)  # the run's up-front checks
    for month, month_input in inputs.items():
        info = month_input.info
        typer.echo(f"ok {month}: {info.uri} ({info.format}, era {month_input.schema_era}, "
                   f"{info.rows if info.rows is not None else '?'} rows, {len(month_input.parts)} parts)")
    for name, leak in spec.train_eval_overlap().items():
        typer.echo(f"note: model {name} trains on {', '.join(leak['train_months'])}, overlapping or after its "
                   f"evaluation months {', '.join(leak['eval_months'])} (evaluation.allow_overlap: true)")
    for line in warnings:
        typer.echo(f"warning: {line}")
    for line in notes:
        typer.echo(f"note: {line}")
    typer.echo(f"job {spec.name} is valid")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory")) -> None:
    """Rebuild report.html from a run directory's tables."""
    from .report import write_report
    from .io.rundir import check_complete

    check_complete(run_dir)  # an interrupted or tampered run's tables are not reported as if they were results
    try:
        path = write_report(run_dir)
    except (OSError, ValueError, KeyError) as exc:
        raise RapidsEvalError(f"{run_dir}: cannot rebuild the report: {_one_line(exc)}") from exc
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
