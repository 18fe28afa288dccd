"""The run manifest: what ran, on what, from which inputs, and where every row went."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["package_versions", "git_commit", "host_description", "write_json_atomic", "redact", "file_sha256", "utc_now"]

_PACKAGES = (
    "rapidseval", "dask", "distributed", "pandas", "numpy", "pyarrow", "scipy", "scikit-learn",
    "s3fs", "fsspec", "pydantic", "cudf-cu13", "cuml-cu13", "cupy-cuda13x", "dask-cuda",
)
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")
_SECRET_PARAM = re.compile(r"(?i)\b(signature|sig|credential|token|secret|password)=[^&\s\"']+")
_USER_INFO = re.compile(r"://[^/@\s\"']+@")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the rapidseval checkout (None when installed from a wheel)."""
    here = Path(start or Path(__file__).resolve().parent)
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
    )
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def host_description() -> dict[str, Any]:
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "hostname_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:12],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": mem,
        "python": sys.version.split()[0],
    }


def redact(text: str) -> str:
    """Mask credential values from the environment, and signed-URL parameters, in ``text``."""
    for var in _SECRET_ENV:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    text = _USER_INFO.sub("://***@", text)
    return _SECRET_PARAM.sub(r"\1=***", text)


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (read in 1 MiB chunks), as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(redact(json.dumps(obj, indent=2, sort_keys=False, default=str)) + "\n")
    os.replace(tmp, path)
