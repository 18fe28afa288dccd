"""Run directories: where a run's tables go, written so that a half-written one is never taken for a result.

A run directory is a local directory or an ``s3://`` prefix holding the
tables (``monthly.parquet``, ``replay.parquet``, ...), ``manifest.json``,
``report.html`` and, written last, :data:`COMPLETE_MARKER`: a small JSON file
listing every table with its size and sha256.  A directory without the
marker, or whose files do not match it, is incomplete
(:func:`check_complete` says what is wrong).

Locally everything is written into a hidden sibling directory which is then
renamed into place (a rename is atomic on one filesystem).  S3 has no rename:
the directory is written locally first, the old marker (if any) is deleted,
every file is uploaded, and the marker goes up last.

Paths are checked before anything is written: ``output.dir`` may use only the
``{name}`` placeholder, the filled path must stay inside the part of the
template before the placeholder, and table names are plain file names, so no
job field can make rapidseval write outside the directory it names.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from . import lineage
from .errors import RapidsEvalError, SpecError

__all__ = [
    "COMPLETE_MARKER",
    "DIR_PLACEHOLDERS",
    "IncompleteRunDir",
    "check_complete",
    "check_dir_template",
    "resolve_run_dir",
    "safe_file_name",
    "write_run_dir",
]

#: written last; its presence (with matching files) is what "complete" means
COMPLETE_MARKER = "complete.json"
#: placeholders ``output.dir`` may use
DIR_PLACEHOLDERS = ("name",)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


class IncompleteRunDir(RapidsEvalError):
    """A run directory that is missing its completion marker or some of its files."""


# ---------------------------------------------------------------------------------------
# names and paths
# ---------------------------------------------------------------------------------------
def safe_file_name(name: str, what: str = "table name") -> str:
    """``name`` if it is a plain file name (no separators, no ``..``), else SpecError."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise SpecError(f"{what} {name!r} is not a plain file name (letters, digits, '.', '_', '-'; no '..' or '/')")
    return name


def check_dir_template(template: str) -> None:
    """Raise ValueError unless ``template`` uses only :data:`DIR_PLACEHOLDERS` and balanced braces."""
    for m in _PLACEHOLDER.finditer(template):
        if m[1] not in DIR_PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {{{m[1]}}} in output.dir; use {', '.join('{' + p + '}' for p in DIR_PLACEHOLDERS)}"
            )
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        raise ValueError("output.dir has an unbalanced '{' or '}'")
    if "\0" in template:
        raise ValueError("output.dir contains a NUL character")


def _is_s3(uri: str) -> bool:
    return uri.startswith(("s3://", "s3a://"))


def resolve_run_dir(template: str, name: str) -> str:
    """The run directory ``template`` names for job ``name``: an absolute local path or an ``s3://`` URI.

    Raises
    ------
    SpecError
        An unknown placeholder, or a filled path that leaves the template's
        fixed prefix (``runs/{name}`` with a name like ``../x``).
    """
    try:
        check_dir_template(template)
    except ValueError as exc:
        raise SpecError(f"output.dir {template!r}: {exc}") from exc
    safe_file_name(name, "job name")
    filled = _PLACEHOLDER.sub(lambda m: name, template)
    first = template.find("{")
    fixed = template if first < 0 else template[:first]
    if _is_s3(template):
        scheme, _, rest = filled.partition("://")
        bucket, _, key = rest.partition("/")
        if not bucket or "{" in bucket or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,62}", bucket):
            raise SpecError(f"output.dir {template!r}: not a valid s3://bucket/prefix")
        key = posixpath.normpath("/" + key)
        fixed_key = posixpath.normpath("/" + fixed.partition("://")[2].partition("/")[2])
        base = fixed_key if fixed.endswith("/") or first < 0 else posixpath.dirname(fixed_key)
        if key == "/" or (first >= 0 and not key.startswith(base.rstrip("/") + "/")):
            raise SpecError(f"output.dir {template!r} with name {name!r} leaves {scheme}://{bucket}{base}")
        return f"{scheme}://{bucket}{key}"
    path = os.path.abspath(os.path.expanduser(filled))
    if first >= 0:
        base_text = os.path.expanduser(fixed)
        base = os.path.abspath(base_text if base_text.endswith(os.sep) or not base_text else os.path.dirname(base_text) or ".")
        if os.path.commonpath([path, base]) != base or path == base:
            raise SpecError(f"output.dir {template!r} with name {name!r} leaves {base}")
    return path


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_local(tmp: Path, manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame], report: bool) -> None:
    """Write tables, manifest, report and (last) the completion marker into ``tmp``."""
    from .report import write_report

    files = []
    for name, table in tables.items():
        fname = safe_file_name(f"{name}.parquet")
        part = tmp / f".{fname}.tmp"
        table.to_parquet(part, index=False)
        os.replace(part, tmp / fname)
        files.append(fname)
    lineage.write_json_atomic(tmp / "manifest.json", manifest)
    files.append("manifest.json")
    if report:
        write_report(tmp)
    marker = {
        "rapidseval_run": 1,
        "complete": True,
        "created_utc": lineage.utc_now(),
        "files": {f: {"bytes": (tmp / f).stat().st_size, "sha256": _sha256(tmp / f)} for f in files},
    }
    lineage.write_json_atomic(tmp / COMPLETE_MARKER, marker)


def _refuse_foreign(run_dir: Path) -> None:
    if run_dir.exists() and (
        not run_dir.is_dir()
        or (any(run_dir.iterdir()) and not ((run_dir / "manifest.json").exists() or (run_dir / COMPLETE_MARKER).exists()))
    ):
        raise RapidsEvalError(
            f"{run_dir} exists and is not a run directory (no manifest.json); "
            "choose another --out or remove it yourself — rapidseval only replaces its own run directories"
        )


def write_run_dir(spec, manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame], reporter=None):
    """Write a run directory for ``spec`` (its ``output`` section); return where it is.

    Parameters
    ----------
    spec : JobSpec
    manifest : mapping
        Written as ``manifest.json`` (secrets redacted).
    tables : mapping of str to DataFrame
        ``name -> table``, written as ``name.parquet``; names must be plain file names.
    reporter : Reporter, optional

    Returns
    -------
    pathlib.Path or upath.UPath
        The local directory, or (``s3://`` outputs) a UPath to the prefix.
    """
    for name in tables:
        safe_file_name(f"{name}.parquet")
    target = resolve_run_dir(spec.output.dir, spec.name)
    if _is_s3(target):
        return _write_s3(target, spec, manifest, tables, reporter)
    run_dir = Path(target)
    _refuse_foreign(run_dir)
    tmp = run_dir.parent / f".{run_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        _write_local(tmp, manifest, tables, spec.output.report)
        if run_dir.exists():
            old = run_dir.parent / f".{run_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(run_dir, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, run_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return run_dir


def _write_s3(uri: str, spec, manifest, tables, reporter):
    from upath import UPath

    from .data.sources import open_fs, source_error, storage_options_for

    url, opts = storage_options_for(uri, spec.output.storage_options or None)
    fs, root = open_fs(uri, spec.output.storage_options or None, month="output")
    with tempfile.TemporaryDirectory(prefix="rapidseval-out-") as staging:
        local = Path(staging)
        _write_local(local, manifest, tables, spec.output.report)
        names = sorted(p.name for p in local.iterdir() if p.name != COMPLETE_MARKER)
        try:
            existing = [posixpath.basename(p) for p in fs.ls(root, detail=False, refresh=True)] if fs.exists(root) else []
            if existing and "manifest.json" not in existing and COMPLETE_MARKER not in existing:
                raise RapidsEvalError(
                    f"{uri} holds objects but is not a run directory (no manifest.json); "
                    "choose another output.dir — rapidseval only replaces its own run directories"
                )
            if COMPLETE_MARKER in existing:  # from now until the new marker lands, the prefix is incomplete
                fs.rm_file(f"{root}/{COMPLETE_MARKER}")
            for stale in set(existing) - set(names) - {COMPLETE_MARKER}:
                if not fs.isdir(f"{root}/{stale}"):
                    fs.rm_file(f"{root}/{stale}")
            for name in names:
                fs.put_file(str(local / name), f"{root}/{name}")
            fs.put_file(str(local / COMPLETE_MARKER), f"{root}/{COMPLETE_MARKER}")
        except RapidsEvalError:
            raise
        except Exception as exc:
            raise source_error(exc, uri, "output", "write") from exc
        finally:
            fs.invalidate_cache(root)
    if reporter is not None:
        reporter.log(f"uploaded {len(names) + 1} files to {uri}")
    return UPath(url, **opts)


# ---------------------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------------------
def check_complete(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The completion marker of a local run directory, after checking every file it lists.

    Raises
    ------
    IncompleteRunDir
        No marker (the run was interrupted, or is still writing), or a listed
        file is missing or differs from what the marker recorded.
    """
    d = Path(run_dir)
    hint = "the run was interrupted or is still writing; re-run the job to get trustworthy tables"
    if not d.is_dir():
        raise IncompleteRunDir(f"{d}: not a directory")
    if ".partial-" in d.name:
        raise IncompleteRunDir(f"{d} is an incomplete run directory (a partial write in progress or abandoned); {hint}")
    marker_path = d / COMPLETE_MARKER
    if not marker_path.exists():
        present = sorted(p.name for p in d.iterdir())
        if "manifest.json" not in present and not any(p.endswith(".parquet") for p in present):
            raise IncompleteRunDir(f"{d}: no manifest.json and no tables — not a run directory")
        raise IncompleteRunDir(
            f"{d} is an incomplete run directory: no {COMPLETE_MARKER} (found only {', '.join(present)}); {hint}"
        )
    try:
        marker = json.loads(marker_path.read_text())
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IncompleteRunDir(f"{d}: unreadable {COMPLETE_MARKER} ({exc}); {hint}") from exc
    problems = []
    for name, meta in files.items():
        f = d / safe_file_name(name, "file name")
        if not f.exists():
            problems.append(f"{name} missing")
        elif f.stat().st_size != meta.get("bytes") or _sha256(f) != meta.get("sha256"):
            problems.append(f"{name} differs from what was written")
    if problems:
        raise IncompleteRunDir(f"{d} is an incomplete run directory: {'; '.join(problems)}; {hint}")
    return marker
