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

rapidseval never removes what it did not write.  Before any work starts,
:func:`claim_run_dir` checks the target: it may not exist yet, be empty, or be
a run directory rapidseval wrote (its :data:`COMPLETE_MARKER` in rapidseval's
format, every file it lists unchanged, nothing else in it but ``report.html``);
anything else is refused, naming what is in the way.  The claim holds an
exclusive lock (``.NAME.lock`` beside a local run directory, an advisory
``flock`` the kernel drops when the process dies): a second run writing the
same directory fails at once, naming the holder's PID; a lock file left by a
killed run is simply taken over.  Holding the lock, it removes the
``.NAME.partial-PID-*`` and ``.NAME.old-PID-*`` directories that a killed
run left behind (that exact naming, and only when that PID is no longer
running).  ``s3://`` outputs are checked the same way; their lock is a file
in the local temporary directory, so it covers runs on one machine only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shutil
import socket
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pandas as pd

from . import lineage
from ..core.errors import RapidsEvalError, SpecError

__all__ = [
    "COMPLETE_MARKER",
    "DIR_PLACEHOLDERS",
    "IncompleteRunDir",
    "RunDirLocked",
    "check_complete",
    "claim_run_dir",
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


class RunDirLocked(RapidsEvalError):
    """Another live rapidseval process is writing the same run directory."""


#: files a run directory may hold besides those its marker lists (written after the marker by ``report``)
_UNLISTED_OWN = ("report.html",)


# ---------------------------------------------------------------------------------------
# names and paths
# ---------------------------------------------------------------------------------------
def _is_plain_name(name: str) -> bool:
    """Whether ``name`` is a plain file name: letters, digits, '.', '_', '-'; no '/' and no '..'."""
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name


def safe_file_name(name: str, what: str = "table name") -> str:
    """``name`` if it is a plain file name (no separators, no ``..``), else SpecError."""
    if not _is_plain_name(name):
        raise SpecError(f"{what} {name!r} is not a plain file name (letters, digits, '.', '_', '-'; no '..' or '/')")
    return name


def _plain_path(name: str) -> bool:
    """Whether a name the marker lists is a file inside the run directory: plain file names
    joined by '/' (``manifest.json``, ``models/primary.pkl``), no ``..``."""
    return all(_is_plain_name(part) for part in name.split("/"))


def safe_file_path(path: str) -> str:
    """``path`` if it is a relative path of plain file names (``models/primary.pkl``), else SpecError."""
    parts = path.split("/")
    for part in parts:
        safe_file_name(part, "file name")
    return path


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
#: what a caller adds to a run directory after its tables and manifest, before the marker
#: (the jobs layer passes the report writer: ``finish(directory)`` writes ``report.html``)
Finish = Callable[[Path], Any]


def _write_local(tmp: Path, manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame],
                 finish: Finish | None, files_to_write: Mapping[str, bytes] | None = None) -> None:
    """Write tables, files, manifest, ``finish(tmp)`` (the report) and (last) the completion marker into ``tmp``."""
    files = []
    for name, table in tables.items():
        fname = safe_file_name(f"{name}.parquet")
        part = tmp / f".{fname}.tmp"
        table.to_parquet(part, index=False)
        os.replace(part, tmp / fname)
        files.append(fname)
    for rel, data in (files_to_write or {}).items():
        target = tmp / safe_file_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.parent / f".{target.name}.tmp"
        part.write_bytes(data)
        os.replace(part, target)
        files.append(rel)
    lineage.write_json_atomic(tmp / "manifest.json", manifest)
    files.append("manifest.json")
    if finish is not None:
        finish(tmp)
    marker = {
        "rapidseval_run": 1,
        "complete": True,
        "created_utc": lineage.utc_now(),
        "files": {f: {"bytes": (tmp / f).stat().st_size, "sha256": lineage.file_sha256(tmp / f)} for f in files},
    }
    lineage.write_json_atomic(tmp / COMPLETE_MARKER, marker)


def _listed_folders(marker_text: str | None) -> set[str]:
    """The folders a marker lists files in (``models`` of ``models/primary.pkl``); none when
    there is no marker or it is not one rapidseval wrote (then it is refused anyway)."""
    try:
        files = json.loads(marker_text)["files"] if marker_text is not None else {}
        return {f.split("/")[0] for f in files if isinstance(f, str) and "/" in f}
    except (ValueError, TypeError, KeyError, AttributeError):
        return set()


def _names_as_listed(paths, folders: set[str]) -> set[str]:
    """What a directory holding ``paths`` (relative, '/'-separated) holds, as its marker would
    list it: top-level names, and every path inside a folder the marker lists files in (so a
    file of someone else's inside ``models/`` is seen, not hidden behind the folder's name)."""
    out = set()
    for path in paths:
        top = path.split("/")[0]
        out.add(path if top in folders and "/" in path else top)
    return out


def _local_paths(run_dir: Path, folders: set[str]) -> list[str]:
    """The top-level names of ``run_dir`` and, inside ``folders``, every file and empty folder."""
    paths = []
    for p in run_dir.iterdir():
        if p.name in folders and p.is_dir() and not p.is_symlink():
            inner = [q for q in p.rglob("*") if not q.is_dir() or q.is_symlink() or not any(q.iterdir())]
            paths += [q.relative_to(run_dir).as_posix() for q in inner] or [p.name]
        else:
            paths.append(p.name)
    return paths


def _marker_problem(marker_text: str | None, names: set[str]) -> str | None:
    """Why a directory holding ``names`` (:func:`_names_as_listed`; and ``marker_text``, its
    marker's content) is not a rapidseval run directory; None when it is one (or empty)."""
    names = names - {COMPLETE_MARKER}
    if marker_text is None:
        if not names:
            return None
        shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
        return f"it holds {shown} but no {COMPLETE_MARKER} of a rapidseval run"
    try:
        marker = json.loads(marker_text)
        files = marker["files"]
        complete = marker.get("complete")
        ours = (marker.get("rapidseval_run") == 1 and complete in (True, False) and isinstance(files, dict)
                and all(isinstance(v, dict) and (complete is False or ("sha256" in v and "bytes" in v))
                        for v in files.values()))
    except (ValueError, TypeError, KeyError, AttributeError):
        ours = False
    if not ours:
        return f"its {COMPLETE_MARKER} is not one rapidseval wrote"
    foreign = sorted(names - set(files) - {f.split("/")[0] for f in files} - set(_UNLISTED_OWN))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        return f"it holds file(s) rapidseval did not write: {shown}"
    return None


def _local_problem(run_dir: Path) -> str | None:
    """Why rapidseval may not replace ``run_dir``; None when it may (absent, empty or its own)."""
    if not run_dir.exists() and not run_dir.is_symlink():
        return None
    if run_dir.is_symlink() or not run_dir.is_dir():
        return "it is a file, not a directory" if not run_dir.is_symlink() else "it is a symbolic link"
    try:
        marker_path = run_dir / COMPLETE_MARKER
        marker_text = marker_path.read_text() if marker_path.is_file() else None
        folders = _listed_folders(marker_text)
        names = _names_as_listed(_local_paths(run_dir, folders), folders)
    except (OSError, UnicodeDecodeError) as exc:
        return f"it cannot be read ({getattr(exc, 'strerror', None) or exc})"
    problem = _marker_problem(marker_text, names)
    if problem is None and marker_text is not None and json.loads(marker_text)["complete"] is True:
        for name, meta in json.loads(marker_text)["files"].items():
            f = run_dir / name
            if not _plain_path(name) or not f.is_file():
                return f"its {COMPLETE_MARKER} lists {name!r}, which is not one of its files"
            if f.stat().st_size != meta.get("bytes") or lineage.file_sha256(f) != meta.get("sha256"):
                return f"{name} was changed after rapidseval wrote it"
        for name in _UNLISTED_OWN:
            if (run_dir / name).exists() and not (run_dir / name).is_file():
                return f"{name} is not a file"
    return problem


def _refusal(target: str, problem: str) -> RapidsEvalError:
    return RapidsEvalError(
        f"output directory {target} exists and is not a run directory rapidseval wrote: {problem}; choose another --out "
        "(or output.dir), or move it away yourself — rapidseval only replaces an empty directory or a run "
        "directory it wrote"
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _debris_pattern(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(name)}\.(?:partial|old)-(\d+)-[0-9a-f]{{8}}")


def _clean_debris(run_dir: Path, reporter=None) -> list[str]:
    """Remove ``.NAME.partial-PID-xxxxxxxx`` / ``.NAME.old-PID-xxxxxxxx`` directories beside
    ``run_dir`` whose PID is no longer running (what a killed run left); return their names."""
    pattern = _debris_pattern(run_dir.name)
    removed = []
    try:
        siblings = list(run_dir.parent.iterdir())
    except OSError:
        return removed
    for p in siblings:
        m = pattern.fullmatch(p.name)
        if m and int(m[1]) != os.getpid() and not _pid_alive(int(m[1])) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    if removed and reporter is not None:
        reporter.log(f"removed {len(removed)} directory(ies) a killed run left beside {run_dir}: {', '.join(sorted(removed))}")
    return removed


def _prepare_parent(run_dir: Path) -> None:
    """Create ``run_dir``'s parent, or say in one line why it cannot be."""
    parent = run_dir.parent
    for p in [parent, *parent.parents]:
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise RapidsEvalError(f"output directory {run_dir}: {p} is a file, not a directory")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RapidsEvalError(f"output directory {run_dir}: cannot create {parent}: "
                              f"{exc.strerror or exc}") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RapidsEvalError(f"output directory {run_dir}: cannot write in {parent} (permission denied or read-only)")


class _Lock:
    """An exclusive, non-blocking ``flock`` on ``path`` holding the owner's PID and host."""

    def __init__(self, path: Path, what: str):
        self.path, self.what, self.fd = path, what, None

    def acquire(self) -> None:
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                raise RapidsEvalError(f"{self.what}: cannot create the lock file {self.path}: "
                                      f"{exc.strerror or exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = self._holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RapidsEvalError(f"{self.what}: cannot lock {self.path}: {exc.strerror or exc}") from exc
                raise RunDirLocked(
                    f"{self.what} is being written by another rapidseval run ({holder}); wait for it to "
                    "finish or choose another --out") from None
            try:  # the file we locked must still be the one at the path (a releaser may have unlinked it)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                info = {"pid": os.getpid(), "host": socket.gethostname(), "started_utc": lineage.utc_now()}
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(info).encode())
                return
            os.close(fd)
        raise RunDirLocked(f"{self.what}: the lock {self.path} keeps changing hands; try again")

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {int(info['pid'])} on {info.get('host', '?')}, since {info.get('started_utc', '?')}"
        except (OSError, ValueError, KeyError, TypeError):
            return "pid unknown"

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)
        self.fd = None


#: claims held, by (target, thread): a nested claim in the same thread (run -> write_run_dir) reuses it
_HELD: dict[tuple[str, int], "RunDirClaim"] = {}


class RunDirClaim:
    """The right to (re)write one run directory: checked, locked, debris cleared.

    Made by :func:`claim_run_dir`; :func:`write_run_dir` uses the claim this
    process holds for its target (or takes one for the write alone).
    """

    def __init__(self, target: str):
        self.target = target
        self.is_s3 = _is_s3(target)
        self.path = None if self.is_s3 else Path(target)
        if self.is_s3:
            lock_path = Path(tempfile.gettempdir()) / f"rapidseval-{hashlib.sha256(target.encode()).hexdigest()[:16]}.lock"
        else:
            lock_path = self.path.parent / f".{self.path.name}.lock"
        self._lock = _Lock(lock_path, f"output directory {target}")

    def check(self, spec=None) -> None:
        """Refuse a target rapidseval may not replace (raises RapidsEvalError naming what is in the way)."""
        if self.is_s3:
            problem = _s3_problem(self.target, spec)
        else:
            problem = _local_problem(self.path)
        if problem is not None:
            raise _refusal(self.target, problem)


def _s3_listing(fs, root: str) -> tuple[list[str], str | None]:
    """What the prefix ``root`` holds (relative, '/'-separated: the top-level names, and every
    object inside a folder its marker lists files in) and its marker's text (None: none)."""
    if not fs.exists(root):
        return [], None
    base = root.rstrip("/") + "/"
    top = [posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False, refresh=True)]
    marker = fs.cat_file(f"{base}{COMPLETE_MARKER}").decode("utf-8", "replace") if COMPLETE_MARKER in top else None
    folders = _listed_folders(marker)
    paths = []
    for name in top:
        inner = ([p[len(base):] for p in fs.find(base + name, refresh=True) if p.startswith(base + name + "/")]
                 if name in folders else [])
        paths += inner or [name]
    return paths, marker


def _s3_problem(uri: str, spec) -> str | None:
    from .sources import open_fs, source_error

    opts = (spec.output.storage_options or None) if spec is not None else None
    fs, root = open_fs(uri, opts, month="output")
    try:
        if not fs.exists(root):
            return None
        paths, marker = _s3_listing(fs, root)
        names = _names_as_listed(paths, _listed_folders(marker))
    except Exception as exc:
        raise source_error(exc, uri, "output", "inspect") from exc
    finally:
        fs.invalidate_cache(root)
    return _marker_problem(marker, names)


@contextlib.contextmanager
def claim_run_dir(spec, reporter=None) -> Iterator[RunDirClaim]:
    """Check ``spec``'s run directory and hold its lock for the ``with`` block (call it before any work).

    Raises
    ------
    RapidsEvalError
        The target exists and is not empty, nor a run directory rapidseval
        wrote; its parent is a file or cannot be written.
    RunDirLocked
        Another live rapidseval process holds the directory's lock.
    """
    target = resolve_run_dir(spec.output.dir, spec.name)
    key = (target, threading.get_ident())
    held = _HELD.get(key)
    if held is not None:  # nested (run -> write_run_dir): the outer claim covers it
        held.check(spec)
        yield held
        return
    claim = RunDirClaim(target)
    if claim.path is not None:
        _prepare_parent(claim.path)
    claim.check(spec)
    claim._lock.acquire()
    _HELD[key] = claim
    try:
        claim.check(spec)  # again, now that no other rapidseval run can change it
        if claim.path is not None:
            _clean_debris(claim.path, reporter)
        yield claim
    finally:
        _HELD.pop(key, None)
        claim._lock.release()


def write_run_dir(spec, manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame], reporter=None, *,
                  finish: Finish | None = None, files: Mapping[str, bytes] | None = None):
    """Write a run directory for ``spec`` (its ``output`` section); return where it is.

    The directory is claimed first (see :func:`claim_run_dir`): only an absent or
    empty directory, or one rapidseval wrote, is replaced.

    Parameters
    ----------
    spec : JobSpec
    manifest : mapping
        Written as ``manifest.json`` (secrets redacted).
    tables : mapping of str to DataFrame
        ``name -> table``, written as ``name.parquet``; names must be plain file names.
    reporter : Reporter, optional
    finish : callable, optional
        ``finish(directory)`` runs in the not yet complete directory after the tables
        and the manifest are written, before the completion marker (the jobs layer
        writes ``report.html`` with it); what it writes is not listed in the marker
        (:data:`_UNLISTED_OWN` names the files a run directory may hold unlisted).
    files : mapping of str to bytes, optional
        ``relative path -> content`` of other files (``models/primary.pkl``), written as
        they are and listed in the marker with their size and sha256 like the tables;
        each part of a path must be a plain file name.

    Returns
    -------
    pathlib.Path or upath.UPath
        The local directory, or (``s3://`` outputs) a UPath to the prefix.
    """
    for name in tables:
        safe_file_name(f"{name}.parquet")
    for rel in files or {}:
        safe_file_path(rel)
    with claim_run_dir(spec, reporter) as claim:
        if claim.is_s3:
            return _write_s3(claim.target, spec, manifest, tables, reporter, finish, files)
        run_dir = claim.path
        tmp = run_dir.parent / f".{run_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _write_local(tmp, manifest, tables, finish, files)
            if run_dir.exists():
                old = run_dir.parent / f".{run_dir.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                os.replace(run_dir, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, run_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return run_dir


def _write_s3(uri: str, spec, manifest, tables, reporter, finish: Finish | None = None,
              files: Mapping[str, bytes] | None = None):
    from upath import UPath

    from .sources import open_fs, source_error, storage_options_for

    url, opts = storage_options_for(uri, spec.output.storage_options or None)
    fs, root = open_fs(uri, spec.output.storage_options or None, month="output")
    with tempfile.TemporaryDirectory(prefix="rapidseval-out-") as staging:
        local = Path(staging)
        _write_local(local, manifest, tables, finish, files)
        names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*")
                       if p.is_file() and p.name != COMPLETE_MARKER)
        try:
            existing = _s3_listing(fs, root)[0]  # inside models/ too: a model file this run drops goes
            # from now until the new marker lands the prefix is incomplete, and says so: a marker
            # listing every name this write may leave, so an interrupted write is still known as ours
            writing = {"rapidseval_run": 1, "complete": False, "created_utc": lineage.utc_now(),
                       "files": {n: {} for n in sorted(set(existing) | set(names)) if n != COMPLETE_MARKER}}
            fs.pipe_file(f"{root}/{COMPLETE_MARKER}", json.dumps(writing).encode())
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
    if not d.exists():
        raise IncompleteRunDir(f"{d}: no such run directory")
    if not d.is_dir():
        raise IncompleteRunDir(f"{d}: not a directory (a run directory holds manifest.json, the tables and {COMPLETE_MARKER})")
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
        if not isinstance(files, dict):
            raise TypeError("'files' is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IncompleteRunDir(f"{d}: unreadable {COMPLETE_MARKER} ({exc}); {hint}") from exc
    if marker.get("complete") is not True:
        raise IncompleteRunDir(f"{d} is an incomplete run directory: its {COMPLETE_MARKER} says a write was under way; {hint}")
    if "manifest.json" not in files:
        raise IncompleteRunDir(f"{d}: its {COMPLETE_MARKER} does not list manifest.json (it lists "
                               f"{', '.join(sorted(files)) or 'no files'}): the marker was changed after rapidseval "
                               "wrote it, so its tables cannot be trusted; re-run the job")
    for name in files:
        if not isinstance(name, str) or not _plain_path(name):
            raise IncompleteRunDir(f"{d}: its {COMPLETE_MARKER} lists {name!r}, which is not a plain file name "
                                   "inside the run directory (path traversal refused); the marker was tampered with")
    problems = []
    for name, meta in files.items():
        f = d / name
        if not isinstance(meta, dict):
            problems.append(f"{name} has no size and hash in {COMPLETE_MARKER}")
        elif not f.is_file():
            problems.append(f"{name} missing")
        elif f.stat().st_size != meta.get("bytes") or lineage.file_sha256(f) != meta.get("sha256"):
            problems.append(f"{name} differs from what was written")
    if problems:
        raise IncompleteRunDir(f"{d} is an incomplete run directory: {'; '.join(problems)}; {hint}")
    return marker
