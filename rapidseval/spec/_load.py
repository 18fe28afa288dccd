"""Reading a job: file or mapping -> strict YAML -> ``--set`` overrides -> the job's kind, validated."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..core.errors import SpecError
from ._base import MAX_JOB_BYTES
from ._job import JOB_ADAPTER, JOB_KINDS, JobSpec
from ._yaml import parse_override_value, yaml_load, yaml_problem

__all__ = ["load_job", "apply_overrides", "check_overrides_type", "spec_hash", "job_origin"]


def format_errors(exc: ValidationError, origin: str) -> str:
    """One line per error: ``origin: dotted.field: message`` (a whole-job check names its fields itself)."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        if loc and loc[0] in JOB_KINDS and err["type"] != "job_kind":
            loc = loc[1:]  # the union's tag: the job's kind, not a field of the job
        where = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "job_kind" and isinstance(err.get("input"), dict) and "kind" in err["input"]:
            msg = f"unknown job kind {err['input']['kind']!r}; {msg}"  # name what the file says
        elif err["type"] == "missing" and tuple(err["loc"]) == ("backtest", "backtest"):
            msg = "a backtest job (kind: backtest) needs a backtest section"
        lines.append(f"{origin}: {where}: {msg}" if where else f"{origin}: {msg}")
    return "\n".join(lines)


def _override_pairs(overrides: dict[str, Any] | list[str]) -> list[tuple[str, Any]]:
    """``[("a.b", value), ...]`` of overrides given as a mapping or as ``"a.b=value"`` strings."""
    if not isinstance(overrides, (list, tuple)):
        return list(overrides.items())
    pairs = []
    for item in overrides:
        if "=" not in item:
            raise SpecError(f"--set {item!r}: expected key=value (e.g. model.params.n_estimators=50)")
        key, _, value = item.partition("=")
        pairs.append((key.strip(), parse_override_value(value)))
    return pairs


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Apply ``{"a.b": value}`` or ``["a.b=value", ...]`` to a raw job mapping (a copy).

    Raises
    ------
    TypeError
        ``overrides`` is neither a mapping nor a list of strings (a single
        ``"a.b=value"`` string must be wrapped in a list).
    SpecError
        An item without ``=``, an empty key or key part.
    """
    check_overrides_type(overrides)
    out = json.loads(json.dumps(raw or {}))
    if not overrides:
        return out
    for key, value in _override_pairs(overrides):
        parts = key.split(".")
        if not key or any(not p.strip() for p in parts):
            raise SpecError(f"--set {key}={value!r}: the key {key!r} is empty or has an empty part; "
                            "name a job field by its dotted path (e.g. model.params.n_estimators=50)")
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise SpecError(f"--set {key}: {p} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def check_overrides_type(overrides) -> None:
    """TypeError unless ``overrides`` is None, a mapping of dotted paths, or a list of ``"a.b=value"`` strings."""
    if overrides is None or isinstance(overrides, dict):
        if overrides and not all(isinstance(k, str) for k in overrides):
            raise TypeError("overrides: every key must be a dotted field path (str), e.g. {'model.params.n_estimators': 50}")
        return
    if isinstance(overrides, (list, tuple)) and all(isinstance(item, str) for item in overrides):
        return
    hint = (f"; wrap one in a list: [{overrides!r}]" if isinstance(overrides, str) else "")
    raise TypeError("overrides must be a mapping {'a.b': value} or a list of 'a.b=value' strings, "
                    f"got {type(overrides).__name__}{hint}")


def job_origin(job: str | Path | dict[str, Any] | JobSpec) -> str:
    """What error messages call the job: its file's path, else ``job``."""
    return "job" if isinstance(job, (dict, JobSpec)) else str(Path(job))


def _read_job_file(path: Path) -> dict[str, Any]:
    """The raw mapping of a job file (strict YAML, at most :data:`MAX_JOB_BYTES`)."""
    try:
        if not path.exists():
            raise SpecError(f"{path}: no such job file")
        if path.is_dir():
            raise SpecError(f"{path}: is a directory, not a job file (YAML)")
        if path.stat().st_size > MAX_JOB_BYTES:
            raise SpecError(f"{path}: {path.stat().st_size:,} bytes; a job file is at most {MAX_JOB_BYTES:,} bytes")
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read job file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not a text file (UTF-8): {exc.reason} at byte {exc.start}") from exc
    try:
        raw = yaml_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {yaml_problem(exc)}") from exc
    if raw is None:
        raise SpecError(f"{path}: the job file is empty; a job needs at least its sections "
                        "(see jobs/smoke.yaml for a complete example)")
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a job file must be a mapping of sections, got {type(raw).__name__}")
    return raw


def load_job(job: str | Path | dict[str, Any] | JobSpec, overrides=None) -> JobSpec:
    """Load and validate a job from a YAML path, a mapping or a JobSpec.

    Returns the job's kind (:class:`StudyJob` or :class:`BacktestJob`). This is
    the spec alone; :func:`rapidseval.load_job` also runs the job's domain checks
    (policies, folds, run directory, storage options: :func:`rapidseval.jobs.checks.check_job`).

    Raises
    ------
    TypeError
        ``job`` or ``overrides`` of a type that cannot be a job or overrides.
    SpecError
        The file cannot be read, is empty, is not strict YAML (aliases,
        duplicate keys), or the job is invalid; the message names the file,
        line or field.
    """
    check_overrides_type(overrides)
    if not isinstance(job, (str, Path, dict, JobSpec)) and not hasattr(job, "__fspath__"):
        raise TypeError(f"job must be a path to a YAML file, a mapping or a JobSpec, got {type(job).__name__}")
    if isinstance(job, JobSpec):
        if not overrides:
            return job
        raw = job.model_dump(mode="json", exclude_unset=True)  # what the job set: defaults stay defaults
    elif isinstance(job, dict):
        raw = job
    else:
        raw = _read_job_file(Path(job))
    raw = apply_overrides(raw, overrides)
    try:
        return JOB_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise SpecError(format_errors(exc, job_origin(job))) from exc


def spec_hash(spec: JobSpec) -> str:
    """sha256 of the resolved spec (canonical JSON)."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
