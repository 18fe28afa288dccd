"""A job's inputs: which months it reads, where they are, and the up-front checks every run and
``rapidseval validate`` share (every input found, its columns mapped, a sample of its first
rows converted), before any training.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError, SpecError
from ..core.time import US_PER_HOUR, month_bounds, month_index
from ..features import FeatureSpec, PartStats, required_columns
from ..io.readers import Part, plan_parts, read_sample
from ..io.schema import check_columns, map_columns
from ..io.sources import InputInfo, inspect_input, redact_uri, resolve_uris
from ..spec import JobSpec
from .checks import splitter
from .progress import Reporter

__all__ = ["MonthInput", "InputNotes", "feature_spec", "input_months", "resolve_inputs", "synthetic_source",
           "input_warnings", "month_warnings"]


@dataclass(frozen=True)
class MonthInput:
    """One month's input, checked: what its footer says, its planned parts and its schema era."""

    info: InputInfo
    parts: list[Part]
    schema_era: str


@dataclass
class InputNotes:
    """What the inputs' names and footers show, one line each: ``warnings`` (a month a run will
    leave out or that looks misplaced) and ``notes`` (values the rules will drop and count)."""

    warnings: list[str]
    notes: list[str]


def feature_spec(spec: JobSpec) -> FeatureSpec:
    """The :class:`~rapidseval.features.FeatureSpec` of the job's ``features`` section."""
    f = spec.features
    return FeatureSpec(tuple(f.features), f.target, f.rule_names(), f.fill_value, rule_params=f.rule_params())


def input_months(spec: JobSpec) -> list[str]:
    """The months a run of ``spec`` reads, in data order (what ``validate`` checks too)."""
    if spec.backtest is not None:
        folds = splitter(spec.backtest).folds(spec.data.months)
        first = min(month_index(f.train_start) for f in folds)
        return [m for m in spec.data.months if month_index(m) >= first]
    wanted = set(spec.evaluated_months()) | set(spec.shift_months())
    return [m for m in spec.data.months if m in wanted]


# ---------------------------------------------------------------------------------------
# synthetic data
# ---------------------------------------------------------------------------------------
def synthetic_source(spec: JobSpec, reporter: Reporter) -> str:
    """Generate (once, cached by parameters) the job's synthetic months; return the template."""
    syn = spec.data.synthetic
    key = json.dumps(
        {"start": spec.data.start, "end": spec.data.end, **syn.model_dump(exclude={"cache_dir"})}, sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    root = Path(syn.cache_dir).expanduser()
    target = root / f"{syn.scenario}-{syn.rows_per_month}-{digest}"
    if not (target / "ground_truth.json").exists():
        tmp = root / f".tmp-{digest}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _generate_months(spec, tmp, reporter)
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    return str(target / "yellow_tripdata_{month}.parquet")


def _generate_months(spec: JobSpec, directory: Path, reporter: Reporter) -> None:
    """Write the job's synthetic months into ``directory``, a bar moving per finished month."""
    from ..data.synthetic import generate

    syn = spec.data.synthetic
    with reporter.stage("generate data", total=len(spec.data.months), unit="month") as stage:
        done: set[str] = set()

        def tick(month, rows_done, rows_total):
            if rows_done >= rows_total and month not in done:
                done.add(month)
                stage.advance()

        generate(directory, spec.data.start, spec.data.end, syn.rows_per_month, scenario=syn.scenario,
                 seed=syn.seed, scenario_month=syn.scenario_month, progress=tick)


# ---------------------------------------------------------------------------------------
# resolving and checking
# ---------------------------------------------------------------------------------------
def resolve_inputs(spec: JobSpec, months: list[str], reporter: Reporter | None = None,
                   warnings: list[str] | None = None, notes: list[str] | None = None) -> dict[str, MonthInput]:
    """month -> :class:`MonthInput` for ``months``, after the up-front checks that ``run`` and
    ``validate`` share: every input found, its columns mapped, and a sample of its first rows
    converted to the canonical types (so text in a fare column or a garbled CSV fails here, not
    after training); training months that all lack rows are an error.

    Raises :class:`SpecError` when two months resolve to the same input and
    :class:`DataError` when two months' files are byte-for-byte copies (same size
    and footer).  What the inputs' names and footers show, one line each: a month a
    run will leave out or that looks misplaced (an empty file, a file named for
    another month, no pickup inside the month) is appended to ``warnings``; values
    the rules will drop and count (times beyond the period, numbers beyond
    float32) to ``notes``, which ``validate`` prints.
    """
    reporter = reporter or Reporter()
    said = InputNotes([] if warnings is None else warnings, [] if notes is None else notes)
    fspec = feature_spec(spec)
    uris = _month_uris(spec, reporter)
    inputs: dict[str, MonthInput] = {}
    fingerprints: dict[str, str] = {}
    empty: list[str] = []
    for month in months:
        info = inspect_input(uris[month], month, spec.data.storage_options or None, cache_dir=spec.data.cache_dir)
        _check_not_a_copy(info, month, fingerprints)
        if spec.data.format != "auto" and info.format != spec.data.format:
            raise SpecError(f"{info.uri} ({month}): data.format is {spec.data.format} but the file is {info.format}")
        inputs[month] = _check_month_input(spec, info, month, fspec, said)
        if _holds_no_rows(inputs[month], month, fspec, said):
            empty.append(month)
    if spec.backtest is None:  # what cannot work without rows fails now, not after training
        _check_needed_months_have_rows(spec, inputs, empty)
    return inputs


def _month_uris(spec: JobSpec, reporter: Reporter) -> dict[str, str]:
    """month -> the input's URI (generating synthetic data first); one input per month."""
    source = spec.data.source
    if source == "synthetic":
        source = synthetic_source(spec, reporter)
    uris = resolve_uris(source, spec.data.months)
    seen: dict[str, str] = {}
    for month, uri in uris.items():
        if uri in seen:
            raise SpecError(f"data.source: {seen[uri]} and {month} both read {redact_uri(uri)}; "
                            "give each month its own input, in month order")
        seen[uri] = month
    return uris


def _check_not_a_copy(info: InputInfo, month: str, fingerprints: dict[str, str]) -> None:
    """DataError when ``info`` has the fingerprint of an earlier month's input (a month listed twice)."""
    if info.bytes and info.fingerprint in fingerprints:
        raise DataError(f"{redact_uri(info.uri)} ({month}) is a copy of the {fingerprints[info.fingerprint]} input "
                        "(same size and footer): is a month listed twice?")
    fingerprints[info.fingerprint] = month


def _check_month_input(spec: JobSpec, info: InputInfo, month: str, fspec: FeatureSpec,
                       said: InputNotes) -> MonthInput:
    """Map the input's columns and plan its parts; fail in the first second, not after
    training, when the month cannot give what the job needs."""
    mapping = map_columns(info.columns, path=info.uri, month=month)
    check_columns(mapping, required_columns(fspec), path=info.uri, month=month)
    shown = input_warnings(info, month, mapping, fspec)
    said.warnings.extend(shown.warnings)
    said.notes.extend(shown.notes)
    parts = plan_parts(info, target_rows=spec.data.partition_rows, storage_options=spec.data.storage_options or None)
    return MonthInput(info, parts, mapping.era)


def _holds_no_rows(month_input: MonthInput, month: str, fspec: FeatureSpec, said: InputNotes) -> bool:
    """Whether the month's input has no rows (read from a sample when the footer does not
    tell, which also converts its first rows: a garbled input fails here)."""
    info, parts = month_input.info, month_input.parts
    sample = read_sample(parts[0], required_columns(fspec))
    if info.rows == 0 or (info.rows is None and sample.num_rows == 0):
        if not info.rows == 0 and not info.bytes == 0:  # the footer did not tell (input_warnings did not say it)
            said.warnings.append(f"{month}: {redact_uri(info.uri)} has no rows; the month's metrics and "
                                 "shift comparison will be left out")
        return True
    return False


def _check_needed_months_have_rows(spec: JobSpec, inputs: dict[str, MonthInput], empty: list[str]) -> None:
    """DataError when every month a model trains or learns its threshold on (or the shift
    reference) holds no rows."""
    needs = {f"model {m.name}: its training month(s)": spec.train_months(m) for m in spec.model_specs()}
    needs.update({f"model {m.name}: its threshold month(s)": spec.threshold_months(m) for m in spec.model_specs()})
    if spec.evaluation.shift is not None:
        needs["evaluation.shift.reference"] = [spec.evaluation.shift.reference]
    for what, needed in needs.items():
        if needed and all(m in empty for m in needed) and all(m in inputs for m in needed):
            raise DataError(f"{what} {', '.join(needed)} hold no rows "
                            f"({', '.join(redact_uri(inputs[m].info.uri) for m in needed)})")


# ---------------------------------------------------------------------------------------
# what the inputs and the months' row accounting show
# ---------------------------------------------------------------------------------------
_MONTH_IN_NAME = re.compile(r"(?<!\d)((?:19|20)\d\d)[-_]?(0[1-9]|1[0-2])(?!\d)")


def _timestamp(us: int) -> str:
    return str(np.datetime64(int(us), "us").astype("datetime64[s]")).replace("T", " ")


def input_warnings(info: InputInfo, month: str, mapping, fspec: FeatureSpec) -> InputNotes:
    """What an input's name and footer show before any row is read: ``warnings`` (an empty
    file, a file named for another month, no pickup in the month) and ``notes`` (event
    times beyond the period, values beyond float32: rows the rules will drop and count)."""
    where = f"{month}: {redact_uri(info.uri)}"
    said = InputNotes([], [])
    if info.rows == 0 or info.bytes == 0:
        said.warnings.append(f"{where} has no rows; the month's metrics and shift comparison will be left out")
    named = {f"{y}-{m}" for y, m in _MONTH_IN_NAME.findall(os.path.basename(info.uri.rstrip("/")))}
    if len(named) == 1 and month not in named:
        said.warnings.append(f"{where} is named for {named.pop()}: are data.source's inputs in month order?")
    ranges = {canon: info.ranges[src] for canon, src in mapping.source_of.items() if src in info.ranges}
    _time_range_notes(ranges, month, fspec, where, said)
    f32 = float(np.finfo(np.float32).max)
    wide = [f"{c} reaches {max(abs(a), abs(b)):.3g}" for c, (a, b) in ranges.items()
            if c in required_columns(fspec) and not c.endswith("_datetime") and max(abs(a), abs(b)) > f32]
    if wide:
        said.notes.append(f"{where}: {', '.join(wide)} (footer statistics), beyond float32: those rows will be dropped")
    return said


def _time_range_notes(ranges: dict[str, tuple[Any, Any]], month: str, fspec: FeatureSpec, where: str,
                      said: InputNotes) -> None:
    """A warning when every pickup falls outside ``month``, else a note for event times beyond the period."""
    lo, hi = (int(b.astype("int64")) for b in month_bounds(month))
    period_end = hi + int(fspec.max_trip_hours * US_PER_HOUR)
    beyond = []
    for col in ("pickup_datetime", "dropoff_datetime"):
        if col in ranges:
            a, b = ranges[col]
            if a < lo or b > period_end:
                beyond.append(f"{col} spans {_timestamp(a)} .. {_timestamp(b)}")
    if "pickup_datetime" in ranges and (ranges["pickup_datetime"][1] < lo or ranges["pickup_datetime"][0] >= hi):
        said.warnings.append(f"{where}: every pickup falls outside {month} (footer statistics), so every row will "
                             "be dropped: is the input listed under the right month?")
    elif beyond:
        said.notes.append(f"{where}: {'; '.join(beyond)} (footer statistics); rows outside {_timestamp(lo)} .. "
                          f"{_timestamp(period_end)} will be dropped (outside_period, pickup_outside_month)")


def month_warnings(stats: dict[str, PartStats], already: list[str] | tuple[str, ...] = ()) -> list[str]:
    """One line per month the results leave out or that looks misplaced: empty, every row
    dropped, or most pickups outside the month (an input listed under the wrong month);
    none that repeats what ``already`` (the inputs' warnings) says of the month."""
    out = []
    for month, s in stats.items():
        said = " ".join(w for w in already if w.startswith(f"{month}: "))
        dropped = {k: v for k, v in s.dropped.items() if v}
        by_rule = ", ".join(f"{k} {v:,}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]))
        if s.rows_read == 0:
            if "has no rows" not in said:
                out.append(f"{month}: the input has no rows; the month's metrics and shift comparison are left out")
        elif s.rows_used == 0:
            out.append(f"{month}: all {s.rows_read:,} rows were dropped ({by_rule}); "
                       "the month's metrics and shift comparison are left out")
        misplaced = s.dropped.get("pickup_outside_month", 0) + s.dropped.get("outside_period", 0)
        if s.rows_read and misplaced > s.rows_read / 2 and "every pickup falls outside" not in said:
            out.append(f"{month}: {misplaced:,} of {s.rows_read:,} rows have pickups outside {month}: "
                       "is the input listed under the right month (data.source in month order)?")
    return out
