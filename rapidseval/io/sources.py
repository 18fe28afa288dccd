"""Where a month's trips come from: URIs, filesystems, and a cheap look at each input.

A job names its data as a named source (:data:`NAMED_SOURCES`), a URI template
(``s3://bucket/yellow_tripdata_{month}.parquet``; ``{year}`` and ``{mm}``
work too), or an explicit list of URIs, one per month.  URIs may be local
paths, ``file://``, ``s3://`` (s3fs) or ``http(s)://`` (fsspec's
HTTPFileSystem, optionally cached on local disk so a re-run downloads
nothing).

Credentials never come from a job: S3 uses the standard AWS environment,
profile and config chain (or ``anon: true``), and storage options that look
like secrets are refused.  Every failure to find, reach or open an input is a
one-line :class:`~rapidseval.core.errors.SourceError` naming the month and the URI,
raised from its cause; an input that is not what it claims to be is a
:class:`~rapidseval.core.errors.DataError`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.errors import DataError, SourceError, SpecError
from ..core.time import US_PER_SECOND, check_month, month_range

__all__ = [
    "NAMED_SOURCES",
    "InputInfo",
    "detect_format",
    "inspect_input",
    "is_local",
    "month_range",
    "open_kwargs",
    "parquet_footer",
    "open_fs",
    "protocol_of",
    "read_csv_header",
    "read_line",
    "redact_uri",
    "resolve_uris",
    "source_error",
    "storage_options_for",
]

#: named sources -> URI templates
NAMED_SOURCES: dict[str, str] = {
    "tlc": "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_{month}.parquet",
}

#: template placeholders -> how a ``YYYY-MM`` month fills them
PLACEHOLDERS: dict[str, Any] = {
    "month": lambda m: m,
    "year": lambda m: m[:4],
    "mm": lambda m: m[5:7],
}

#: storage options of rapidseval itself (translated, never passed on verbatim)
TIMEOUT_OPTIONS: dict[str, tuple[str, float]] = {
    "connect_timeout": ("RAPIDSEVAL_CONNECT_TIMEOUT", 5.0),
    "read_timeout": ("RAPIDSEVAL_READ_TIMEOUT", 60.0),
}

#: option names that carry secrets (matched anywhere in nested options)
#: retries of transient S3 errors (5xx, throttling, dropped connections): botocore's
#: "standard" mode, exponential backoff with jitter (random(0, 1) * 2**attempt s, at most 20 s)
RETRY_OPTIONS: dict[str, tuple[str, int]] = {
    "max_attempts": ("RAPIDSEVAL_S3_MAX_ATTEMPTS", 4),
}

_SECRET_OPTION = re.compile(
    r"(secret|token|password|passwd|credential|signature|authorization|cookie|access_key|^key$|_key$|^username$)",
    re.IGNORECASE,
)
_SENSITIVE_QUERY = re.compile(r"(signature|token|credential|key|secret|sig|auth)", re.IGNORECASE)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PARQUET_EXT = (".parquet", ".parq", ".pq")
_CSV_EXT = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz", ".txt")
_TAIL_GUESS = 64 * 1024
_CSV_SAMPLE = 1 << 20


# ---------------------------------------------------------------------------------------
# months and URIs
# ---------------------------------------------------------------------------------------
def protocol_of(uri: str) -> str:
    """``"file"``, ``"s3"``, ``"http"``, ``"https"``, ... (``"file"`` for plain paths)."""
    if "::" in uri:
        uri = uri.rsplit("::", 1)[1]
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("", "file", "local") or re.match(r"^[a-zA-Z]$", scheme):  # C:\ on Windows
        return "file"
    return "s3" if scheme in ("s3", "s3a") else scheme


def _fill(template: str, month: str) -> str:
    def sub(m: re.Match) -> str:
        name = m[1]
        if name not in PLACEHOLDERS:
            raise SpecError(
                f"data source {redact_uri(template)!r}: unknown placeholder {{{name}}}; "
                f"use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            )
        return PLACEHOLDERS[name](month)

    return _PLACEHOLDER.sub(sub, template)


def _normalise_uri(uri: str) -> str:
    if protocol_of(uri) == "file" and "::" not in uri:
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return os.path.abspath(os.path.expanduser(path))
    return uri


def resolve_uris(source: str | Sequence[str], months: Sequence[str]) -> dict[str, str]:
    """Month -> URI for every month.

    Parameters
    ----------
    source : str or sequence of str
        A name from :data:`NAMED_SOURCES`, a template with ``{month}``
        (``{year}``, ``{mm}``), or one URI per month in the order of ``months``.
    months : sequence of str
        ``YYYY-MM`` months.
    """
    for month in months:
        check_month(month)
    if isinstance(source, str):
        template = NAMED_SOURCES.get(source, source)
        if not _PLACEHOLDER.search(template) and len(months) > 1:
            raise SpecError(
                f"data source {redact_uri(template)!r} has no {{month}} placeholder but {len(months)} months "
                f"were asked for; use a template like s3://bucket/yellow_tripdata_{{month}}.parquet, "
                f"a list of URIs, or one of the named sources {', '.join(NAMED_SOURCES)}"
            )
        return {month: _normalise_uri(_fill(template, month)) for month in months}
    uris = list(source)
    if len(uris) != len(months):
        raise SpecError(f"data source lists {len(uris)} URI(s) for {len(months)} month(s); give one per month, in order")
    return {month: _normalise_uri(_fill(uri, month)) for month, uri in zip(months, uris)}


def redact_uri(uri: str) -> str:
    """``uri`` without user info (``user:pass@``) or sensitive query values (signatures)."""
    prefix, _, tail = str(uri).rpartition("::")
    try:
        parts = urlsplit(tail)
    except ValueError:
        return str(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SENSITIVE_QUERY.search(k) else v) for k, v in pairs], safe="*")
    out = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)) if parts.scheme else tail
    return f"{prefix}::{out}" if prefix else out


# ---------------------------------------------------------------------------------------
# storage options and filesystems
# ---------------------------------------------------------------------------------------
def reject_secrets(options: Mapping[str, Any], prefix: str = "") -> None:
    """Raise SpecError if storage options carry credentials (they belong in the environment)."""
    for key, value in options.items():
        if _SECRET_OPTION.search(str(key)):
            raise SpecError(
                f"storage_options.{prefix}{key}: credentials never go in a job file; use the environment "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE) or ~/.aws/credentials"
            )
        if isinstance(value, Mapping):
            reject_secrets(value, f"{prefix}{key}.")


def _timeouts(options: dict[str, Any]) -> tuple[float, float]:
    out = []
    for name, (env, default) in TIMEOUT_OPTIONS.items():
        raw = options.pop(name, None)
        if raw is None:
            raw = os.environ.get(env, default)
        try:
            value = float(raw)
            if value <= 0:
                raise ValueError
        except (TypeError, ValueError) as exc:
            raise SpecError(f"storage_options.{name} (or {env}) must be a positive number of seconds, got {raw!r}") from exc
        out.append(value)
    return out[0], out[1]


def _max_attempts(options: dict[str, Any], proto: str) -> int:
    env, default = RETRY_OPTIONS["max_attempts"]
    given = options.pop("max_attempts", None)
    if given is not None and proto != "s3":
        raise SpecError(f"storage_options.max_attempts applies to s3:// URIs only, not {proto}")
    raw = given if given is not None else os.environ.get(env, default)
    try:
        value = int(raw)
        if value < 1 or value != float(raw):
            raise ValueError
    except (TypeError, ValueError) as exc:
        raise SpecError(f"storage_options.max_attempts (or {env}) must be a whole number >= 1, got {raw!r}") from exc
    return value


def storage_options_for(
    uri: str, options: Mapping[str, Any] | None = None, *, cache_dir: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The fsspec URL and keyword options to open ``uri`` with.

    ``fsspec.core.url_to_fs(url, **options)`` (or ``dask.dataframe.read_parquet(url,
    storage_options=options)``) then opens it.  Adds short timeouts
    (``connect_timeout`` 5 s, ``read_timeout`` 60 s; options or
    ``RAPIDSEVAL_CONNECT_TIMEOUT`` / ``RAPIDSEVAL_READ_TIMEOUT``); S3 requests
    that fail transiently (HTTP 5xx, throttling, a dropped connection) are
    retried with exponential backoff and jitter, up to ``max_attempts`` tries
    in all (default 4; option or ``RAPIDSEVAL_S3_MAX_ATTEMPTS``); with
    ``cache_dir``, http(s) URLs become ``simplecache::`` URLs cached there.

    Raises
    ------
    SpecError
        An option looks like a credential (``key``, ``secret``, ``token``, ...).
    """
    opts = dict(options or {})
    reject_secrets(opts)
    connect, read = _timeouts(opts)
    proto = protocol_of(uri)
    attempts = _max_attempts(opts, proto)
    if proto == "s3":
        return uri, _s3_options(opts, connect_timeout=connect, read_timeout=read, max_attempts=attempts)
    if proto in ("http", "https"):
        opts = _http_options(opts, connect_timeout=connect, read_timeout=read)
        if cache_dir:
            return f"simplecache::{uri}", {
                "simplecache": {"cache_storage": os.path.abspath(os.path.expanduser(cache_dir))},
                proto: opts,
            }
    return uri, opts


def _s3_options(opts: dict[str, Any], *, connect_timeout: float, read_timeout: float, max_attempts: int) -> dict[str, Any]:
    """s3fs options: botocore's timeouts and standard retries (unless the job set them), and a
    ``client_kwargs.endpoint_url`` lifted to s3fs's own ``endpoint_url``."""
    config = dict(opts.pop("config_kwargs", None) or {})
    config.setdefault("connect_timeout", connect_timeout)
    config.setdefault("read_timeout", read_timeout)
    config.setdefault("retries", {"max_attempts": max_attempts, "mode": "standard"})
    opts["config_kwargs"] = config
    client = opts.get("client_kwargs")
    if isinstance(client, Mapping) and "endpoint_url" in client and "endpoint_url" not in opts:
        client = dict(client)
        opts["endpoint_url"] = client.pop("endpoint_url")
        opts["client_kwargs"] = client
    return opts


def _http_options(opts: dict[str, Any], *, connect_timeout: float, read_timeout: float) -> dict[str, Any]:
    """HTTPFileSystem options: aiohttp's connect and read timeouts (unless the job set one)."""
    import aiohttp

    client = dict(opts.pop("client_kwargs", None) or {})
    client.setdefault("timeout", aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout))
    opts["client_kwargs"] = client
    return opts


def _cached_copy(uri: str, options: Mapping[str, Any] | None, cache_dir: str, month: str | None) -> str:
    """Local path of a complete copy of ``uri`` in ``cache_dir`` (downloaded once).

    Files are named as fsspec's ``simplecache`` names them (so the
    ``simplecache::`` URL of :func:`storage_options_for` finds them too), and
    written through a temporary name so that an interrupted download is never
    taken for a copy.
    """
    from fsspec.implementations.cache_mapper import create_cache_mapper

    url, opts = storage_options_for(uri, options)
    try:
        fs, path = fsspec.core.url_to_fs(url, **opts)
        root = os.path.abspath(os.path.expanduser(cache_dir))
        local = os.path.join(root, create_cache_mapper(False)(path))
        if os.path.exists(local):
            return local
        os.makedirs(root, exist_ok=True)
        tmp = f"{local}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
        try:
            fs.get_file(path, tmp)
            os.replace(tmp, local)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except (SpecError, SourceError):
        raise
    except Exception as exc:
        raise source_error(exc, uri, month, "download") from exc
    return local


def _filesystem(url: str, options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and path of a URL, as ``fsspec.core.url_to_fs`` gives them; S3 (s3fs) and
    http(s) (fsspec's aiohttp client) filesystems are built here by name, the others (local
    files, chained URLs) found in fsspec's registry."""
    proto = protocol_of(url)
    if proto == "s3":
        import s3fs

        filesystem_class = s3fs.S3FileSystem
    elif proto in ("http", "https"):
        from fsspec.implementations.http import HTTPFileSystem

        filesystem_class = HTTPFileSystem
    else:
        return fsspec.core.url_to_fs(url, **options)
    from_url = filesystem_class._get_kwargs_from_urls(url)
    return filesystem_class(**{**from_url, **options}), filesystem_class._strip_protocol(url)


def open_fs(
    uri: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    cache_dir: str | None = None,
    month: str | None = None,
) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and path for ``uri``.

    With ``cache_dir`` an http(s) input is first copied there in full (once;
    later calls, also from other processes, reuse the copy) and the local
    filesystem is returned.

    Raises
    ------
    SourceError
        The input cannot be reached (only when it had to be downloaded).
    SpecError
        Invalid storage options.
    """
    if cache_dir and protocol_of(uri) in ("http", "https"):
        return fsspec.filesystem("file"), _cached_copy(uri, storage_options, cache_dir, month)
    url, opts = storage_options_for(uri, storage_options)
    try:
        return _filesystem(url, opts)
    except (ImportError, ValueError, TypeError) as exc:
        raise SourceError(f"{month or 'input'}: cannot open {redact_uri(uri)}: {_scrub(str(exc))}") from exc


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------
def _scrub(text: str) -> str:
    """``text`` on one line, at most 300 characters, with secrets masked."""
    from .lineage import redact

    return " ".join(redact(text).split())[:300]


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _reason(exc: BaseException, proto: str) -> str:
    for error in _chain(exc):
        name = type(error).__name__
        status = getattr(error, "status", None)
        if name == "ClientResponseError" and isinstance(status, int):
            if status == 404:
                return "not found (HTTP 404)"
            if status in (401, 403):
                return f"access denied (HTTP {status})"
            return f"HTTP {status} {getattr(error, 'message', '')}".strip()
        if name in ("ClientConnectorError", "ClientConnectionError", "ServerTimeoutError", "ConnectionTimeoutError",
                    "EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "gaierror",
                    "ConnectionRefusedError", "ClientOSError", "ServerDisconnectedError"):  # fmt: skip
            return f"endpoint unreachable ({name}: {_scrub(str(error))})"
        if isinstance(error, TimeoutError) or name in ("ReadTimeoutError", "TimeoutError"):
            return f"timed out ({name}; see storage_options connect_timeout / read_timeout)"
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return (
                "no AWS credentials found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
                "or use storage_options anon: true for a public bucket"
            )
        code = getattr(error, "response", {}) or {}
        code = code.get("Error", {}).get("Code") if isinstance(code, dict) else None
        if name == "NoSuchBucket" or code == "NoSuchBucket" or "bucket does not exist" in str(error).lower():
            return "the bucket does not exist"
        if code in ("AccessDenied", "403", "AllAccessDisabled") or isinstance(error, PermissionError):
            return "access denied (check the credentials in the environment, or anon: true for public data)"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
            return f"credentials rejected ({code})"
    for error in _chain(exc):
        if isinstance(error, FileNotFoundError):
            if proto in ("http", "https"):
                return "not found (HTTP 404)"
            return "no such object (S3 key not found)" if proto == "s3" else "no such file"
        if isinstance(error, IsADirectoryError):
            return "is a directory, not a file"
    return f"{type(exc).__name__}: {_scrub(str(exc))}"


def source_error(exc: BaseException, uri: str, month: str | None, action: str = "read") -> SourceError:
    """A one-line :class:`SourceError` for ``exc``; raise it ``from exc``.

    Names the month and the (redacted) URI; never includes credentials.
    """
    proto = protocol_of(uri)
    return SourceError(f"{month or 'input'}: cannot {action} {redact_uri(uri)}: {_reason(exc, proto)}")


# ---------------------------------------------------------------------------------------
# inspection
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputInfo:
    """What the manifest records of one input, and what planning needs.

    Attributes
    ----------
    uri, month : str
    format : str
        ``"parquet"`` or ``"csv"``.
    bytes : int
        Size of the file as stored.
    rows : int or None
        Row count (Parquet); None for CSV (unknown until read).
    fingerprint : str
        ``blake2b:<hex>`` of the size plus the Parquet footer, or of the size
        plus the first and last MiB (CSV): content-based, so the same bytes at
        another URI have the same fingerprint.
    columns : tuple of str
        Source column names as found.
    row_groups : tuple of int
        Rows per Parquet row group (empty for CSV).
    cache_dir : str or None
        The local cache an http(s) input was inspected through (parts planned
        from this input read from it too).
    ranges : dict
        Source column -> (min, max) over the whole file from the Parquet footer's
        statistics, for numeric columns (as float) and timestamps (int64 microseconds,
        wall clock); columns without statistics in every row group are left out.
    time_zones : dict
        Source column -> time zone of tz-aware timestamp columns (Parquet).
    """

    uri: str
    month: str
    format: str
    bytes: int
    rows: int | None
    fingerprint: str
    columns: tuple[str, ...]
    row_groups: tuple[int, ...]
    cache_dir: str | None = None
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict, hash=False, compare=False)
    time_zones: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (URI redacted)."""
        return {
            "uri": redact_uri(self.uri),
            "month": self.month,
            "format": self.format,
            "bytes": self.bytes,
            "rows": self.rows,
            "fingerprint": self.fingerprint,
            "columns": list(self.columns),
            "row_groups": list(self.row_groups),
        }


def detect_format(uri: str, fmt: str = "auto") -> str | None:
    """``"parquet"`` / ``"csv"`` from ``fmt`` or the URI's extension; None if unknown."""
    if fmt in ("parquet", "csv"):
        return fmt
    if fmt != "auto":
        raise SpecError(f"format must be auto, parquet or csv, got {fmt!r}")
    path = urlsplit(uri.rsplit("::", 1)[-1]).path.lower() if protocol_of(uri) != "file" else uri.lower()
    if path.endswith(_PARQUET_EXT):
        return "parquet"
    if path.endswith(_CSV_EXT):
        return "csv"
    return None


def _fingerprint(*chunks: bytes) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for chunk in chunks:
        digest.update(struct.pack("<Q", len(chunk)))
        digest.update(chunk)
    return "blake2b:" + digest.hexdigest()


def parquet_footer(f, size: int, *, where: str) -> tuple[bytes, pq.FileMetaData]:
    """Footer bytes and parsed metadata of the Parquet file open as ``f``."""
    if size < 12:
        raise DataError(f"{where}: not a Parquet file ({size} bytes, too short)")
    tail_size = min(size, _TAIL_GUESS)
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    if len(tail) != tail_size:
        raise DataError(f"{where}: truncated read ({len(tail)} of {tail_size} bytes)")
    if tail[-4:] != b"PAR1":
        hint = " (encrypted footer is not supported)" if tail[-4:] == b"PARE" else ""
        raise DataError(f"{where}: not a Parquet file (no PAR1 magic at the end){hint}; corrupt or truncated?")
    footer_size = struct.unpack("<I", tail[-8:-4])[0]
    if footer_size + 12 > size:
        raise DataError(f"{where}: corrupt Parquet footer (claims {footer_size} bytes in a {size}-byte file)")
    if footer_size + 8 > tail_size:
        f.seek(size - footer_size - 8)
        tail = f.read(footer_size + 8)
    footer = tail[-footer_size - 8 : -8]
    try:
        meta = pq.read_metadata(io.BytesIO(b"PAR1" + footer + tail[-8:]))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{where}: corrupt Parquet footer ({_scrub(str(exc))})") from exc
    return footer, meta


_US_PER_UNIT = {"s": US_PER_SECOND, "ms": US_PER_SECOND // 1000, "us": 1, "ns": None}


class _FooterRanges(NamedTuple):
    ranges: dict[str, tuple[float, float]]  # source column -> (min, max) over the row groups
    time_zones: dict[str, str]  # source column -> time zone of a tz-aware timestamp


def _footer_ranges(meta: pq.FileMetaData) -> _FooterRanges:
    """Source column -> (min, max) from every row group's statistics, and column -> time zone.

    Only flat numeric and timestamp columns; a column is left out of the ranges when
    any row group lacks its statistics.  Nothing here is trusted for results: the
    ranges only let ``validate`` say early what a run will drop.
    """
    try:
        schema = meta.schema.to_arrow_schema()
    except Exception:  # noqa: BLE001 - an unusual footer only costs the early warnings
        return _FooterRanges({}, {})
    zones = {entry.name: str(entry.type.tz) for entry in schema if pa.types.is_timestamp(entry.type) and entry.type.tz}
    ranges: dict[str, tuple[float, float]] = {}
    if meta.num_row_groups == 0 or meta.num_columns != len(schema):
        return _FooterRanges(ranges, zones)
    for column, arrow_field in enumerate(schema):
        arrow_type = arrow_field.type
        if pa.types.is_timestamp(arrow_type):
            scale = _US_PER_UNIT.get(arrow_type.unit)
        elif pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type):
            scale = 0
        else:
            continue
        low = high = None
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max or not isinstance(stats.min_raw, (int, float)):
                low = None
                break
            group_low, group_high = stats.min_raw, stats.max_raw
            if scale:  # timestamp: raw int64 in its unit -> microseconds
                group_low, group_high = int(group_low) * scale, int(group_high) * scale
            elif scale is None:  # nanoseconds
                group_low, group_high = int(group_low) // 1000, int(group_high) // 1000
            low = group_low if low is None else min(low, group_low)
            high = group_high if high is None else max(high, group_high)
        if low is not None:
            ranges[arrow_field.name] = (low, high)
    return _FooterRanges(ranges, zones)


def open_kwargs(fs: fsspec.AbstractFileSystem, size: int) -> dict[str, Any]:
    """Extra ``fs.open`` arguments: HTTP files need no second HEAD when the size is known."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return {"size": size} if {"http", "https"} & set(protocols) else {}


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local filesystem (pyarrow can then read paths natively)."""
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def read_line(f, limit: int = _CSV_SAMPLE) -> bytes:
    """The next line of binary file ``f`` (at most ``limit`` bytes), leaving ``f`` just after it."""
    start = f.tell()
    buf = b""
    while len(buf) < limit:
        chunk = f.read(64 * 1024)
        if not chunk:
            return buf
        i = chunk.find(b"\n")
        if i >= 0:
            buf += chunk[: i + 1]
            f.seek(start + len(buf))
            return buf
        buf += chunk
    return buf


def read_csv_header(f) -> list[str]:
    """Column names from the first line of the CSV file open (binary) as ``f``."""
    line = read_line(f)
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    if not text.strip():
        return []
    return next(csv.reader([text]))


def inspect_input(
    uri: str,
    month: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    cache_dir: str | None = None,
    fmt: str = "auto",
) -> InputInfo:
    """Size, row count, columns, row groups and fingerprint of one month's input.

    Reads only the Parquet footer (or the first and last MiB of a CSV), except
    that with ``cache_dir`` an http(s) input is downloaded into the cache
    first (the run reads all of it anyway).

    Raises
    ------
    SourceError
        Missing file/key/bucket, HTTP 404/403, unreachable endpoint.
    DataError
        Not a Parquet file, corrupt or truncated footer.
    """
    fs, path = open_fs(uri, storage_options, cache_dir=cache_dir, month=month)
    try:
        size = fs.size(path)
        if size is None:
            raise SourceError(f"{month}: cannot inspect {redact_uri(uri)}: the server does not report the file size")
        size = int(size)
        kind = detect_format(uri, fmt)
        with fs.open(path, "rb", **open_kwargs(fs, size)) as f:
            kind = kind or _sniff_format(f, size)
            if size == 0:
                rows = 0 if kind == "parquet" else None
                return InputInfo(uri, month, kind, 0, rows, _fingerprint(b"\0" * 8), (), (), cache_dir)
            if kind == "parquet":
                return _inspect_parquet(f, size, uri=uri, month=month, cache_dir=cache_dir)
            head, tail = _csv_ends(f, size)
        with fs.open(path, "rb", compression="infer", **open_kwargs(fs, size)) as f:
            columns = tuple(read_csv_header(f))
        fingerprint = _fingerprint(struct.pack("<Q", size), head, tail)
        return InputInfo(uri, month, "csv", size, None, fingerprint, columns, (), cache_dir)
    except (DataError, SpecError, SourceError):
        raise
    except Exception as exc:
        raise source_error(exc, uri, month, "inspect") from exc


def _sniff_format(f, size: int) -> str:
    """``"parquet"`` if the file open as ``f`` ends in Parquet's magic, else ``"csv"``."""
    f.seek(max(size - 4, 0))
    return "parquet" if f.read(4) == b"PAR1" else "csv"


def _inspect_parquet(f, size: int, *, uri: str, month: str, cache_dir: str | None) -> InputInfo:
    """What the footer of the Parquet file open as ``f`` says: rows, columns, row groups, ranges."""
    footer, meta = parquet_footer(f, size, where=f"{redact_uri(uri)} ({month})")
    footer_ranges = _footer_ranges(meta)
    return InputInfo(
        uri=uri,
        month=month,
        format="parquet",
        bytes=size,
        rows=int(meta.num_rows),
        fingerprint=_fingerprint(struct.pack("<Q", size), footer),
        columns=tuple(meta.schema.to_arrow_schema().names),
        row_groups=tuple(int(meta.row_group(i).num_rows) for i in range(meta.num_row_groups)),
        cache_dir=cache_dir,
        ranges=footer_ranges.ranges,
        time_zones=footer_ranges.time_zones,
    )


class _FileEnds(NamedTuple):
    head: bytes
    tail: bytes  # empty when the head holds the whole file


def _csv_ends(f, size: int) -> _FileEnds:
    """The first and last MiB of the file open as ``f`` (what a CSV's fingerprint hashes)."""
    head = f.read(min(size, _CSV_SAMPLE))
    if size <= _CSV_SAMPLE:
        return _FileEnds(head, b"")
    f.seek(max(size - _CSV_SAMPLE, _CSV_SAMPLE))
    return _FileEnds(head, f.read())
