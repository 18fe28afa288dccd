"""What every job kind shares: the backend, the executor, the progress reporter, the inputs,
timings, warnings, the manifest and the writing of the run directory.

A job kind's module receives a :class:`JobContext` and reads as its stages::

    def run(ctx: JobContext) -> StudyResult:
        ctx.resolve_inputs(months)
        with ctx.open_executor() as executor:
            with ctx.timed("train"):
                ...
        manifest = ctx.manifest(stats)
        return StudyResult(..., run_dir=ctx.write(manifest, tables))
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import pandas as pd

from ..backend import Backend, get_backend
from ..cluster import open_executor
from ..features import PartStats
from ..io import lineage
from ..io.rundir import write_run_dir
from ..io.schema import WALL_CLOCK_ZONE
from ..io.sources import redact_uri
from ..spec import JobSpec, spec_hash
from .inputs import MonthInput, feature_spec, month_warnings, resolve_inputs
from .progress import Reporter

__all__ = ["JobContext", "Stopwatch", "stopwatch"]


@dataclass
class Stopwatch:
    """Seconds a ``with stopwatch()`` block took (set when the block ends)."""

    seconds: float = 0.0


@contextlib.contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Time a block: ``with stopwatch() as clock: ...; clock.seconds``."""
    clock = Stopwatch()
    started = time.perf_counter()
    yield clock
    clock.seconds = time.perf_counter() - started


@dataclass
class JobContext:
    """One run of a validated job whose run directory is claimed: what its stages share.

    Attributes
    ----------
    spec : JobSpec
    reporter : Reporter
    backend : Backend
    inputs : dict of str to MonthInput
        Filled by :meth:`resolve_inputs`.
    timings : dict of str to float
        Seconds per stage, accumulated by :meth:`timed`.
    warnings : list of str
        Lines for the manifest's ``warnings`` (the inputs' first).
    cluster_started : str or None
        What the executor started (set by :meth:`open_executor`).
    """

    spec: JobSpec
    reporter: Reporter
    backend: Backend
    inputs: dict[str, MonthInput] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cluster_started: str | None = None
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, spec: JobSpec, reporter: Reporter) -> "JobContext":
        """The context of a run of ``spec``: its backend chosen (and said)."""
        started = time.perf_counter()
        backend = get_backend(spec.backend)
        reporter.log(f"backend: {backend.name} ({backend.reason})")
        return cls(spec, reporter, backend, started=started)

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[Stopwatch]:
        """Time a block and add its seconds to ``timings[stage]`` (a stage may be timed in pieces)."""
        with stopwatch() as clock:
            yield clock
        self.timings[stage] = self.timings.get(stage, 0.0) + clock.seconds

    def resolve_inputs(self, months: list[str]) -> dict[str, MonthInput]:
        """Check and plan the inputs of ``months`` (:func:`~rapidseval.jobs.inputs.resolve_inputs`)."""
        with self.timed("resolve_inputs"):
            self.inputs = resolve_inputs(self.spec, months, self.reporter, self.warnings)
        return self.inputs

    def parts(self, months) -> list:
        """The planned parts of ``months``, in month order."""
        return [part for month in months for part in self.inputs[month].parts]

    @contextlib.contextmanager
    def open_executor(self) -> Iterator[Any]:
        """The job's executor (:func:`rapidseval.cluster.open_executor`), its description said and kept."""
        with open_executor(self.spec.cluster, self.backend) as executor:
            link = f" — dashboard {executor.dashboard_link}" if executor.dashboard_link else ""
            self.reporter.log(f"cluster: {executor.description}{link}")
            self.cluster_started = executor.description
            yield executor

    def manifest(self, stats: Mapping[str, PartStats]) -> dict[str, Any]:
        """The manifest every job kind writes (a kind adds its own keys after these), the total
        time taken now; its warnings are said."""
        self.timings["total"] = time.perf_counter() - self.started
        manifest = _manifest(self.spec, self.backend, self.inputs, stats, self.timings, self.warnings)
        for line in manifest["warnings"]:
            self.reporter.log(f"warning: {line}")
        manifest["cluster_started"] = self.cluster_started  # what ran (e.g. one worker per GPU), beside what was asked
        return manifest

    def write(self, manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame],
              files: Mapping[str, bytes] | None = None):
        """Write the run directory (local or ``s3://``, see :mod:`rapidseval.io.rundir`), with
        ``report.html`` when ``output.report``; return where it is.

        ``files`` (relative path -> bytes, e.g. ``models/primary.pkl``) are written beside the
        tables and listed in the completion marker with their sha256."""
        finish = None
        if self.spec.output.report:
            from ..report import write_report

            finish = write_report
        return write_run_dir(self.spec, manifest, tables, self.reporter, finish=finish, files=files)


def _manifest(spec: JobSpec, backend: Backend, inputs: Mapping[str, MonthInput], stats: Mapping[str, PartStats],
              timings: Mapping[str, float], warnings=()) -> dict[str, Any]:
    totals = PartStats()
    for month_stats in stats.values():
        totals = totals.merge(month_stats)
    return {
        "rapidseval_manifest": 1,
        "complete": True,
        "created_utc": lineage.utc_now(),
        "job": spec.model_dump(mode="json"),
        "job_hash": spec_hash(spec),
        "seed": spec.seed,
        "backend": backend.name,
        "backend_reason": backend.reason,
        "hardware": {**lineage.host_description(), **backend.device_description()},
        "cluster": spec.cluster.model_dump(mode="json"),
        "packages": lineage.package_versions(),
        "git_commit": lineage.git_commit(),
        "inputs": [_input_record(month, month_input) for month, month_input in inputs.items()],
        "wall_clock_zone": WALL_CLOCK_ZONE,
        "drop_rules": feature_spec(spec).active_rules(),
        "warnings": list(dict.fromkeys([*warnings, *month_warnings(dict(stats), list(warnings))])),
        "rows": {"total": totals.to_dict(),
                 "by_month": {m: {"uri": redact_uri(inputs[m].info.uri), **stats[m].to_dict()} for m in stats}},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        # models whose training months overlap or follow their evaluation months (allowed by
        # evaluation.allow_overlap): model -> {train_months, eval_months}; empty when none
        "train_eval_overlap": spec.train_eval_overlap(),
    }


def _input_record(month: str, month_input: MonthInput) -> dict[str, Any]:
    """The manifest's line for one input."""
    info = month_input.info
    record = {"month": month, "uri": redact_uri(info.uri), "format": info.format, "bytes": info.bytes,
              "rows": info.rows, "fingerprint": info.fingerprint, "schema_era": month_input.schema_era,
              "parts": len(month_input.parts)}
    if info.time_zones:
        record["timestamps"] = (f"time zone {', '.join(sorted(set(info.time_zones.values())))} "
                                f"converted to {WALL_CLOCK_ZONE} wall-clock time")
    return record
