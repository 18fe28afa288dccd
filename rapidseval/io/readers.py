"""Reading one part of one month into a canonical pyarrow Table.

A month's input is planned into :class:`Part` objects (:func:`plan_parts`):
consecutive Parquet row groups grouped up to a target row count, or the whole
file for CSV.  :func:`read_part` reads only the source columns that the
requested canonical columns need and maps them with
:func:`rapidseval.io.schema.to_canonical`, so a CSV and a Parquet file of
the same month give identical tables.  Parts are small, picklable values:
Dask tasks (pandas or cuDF) take one each.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..core.errors import DataError, SchemaError, SourceError, SpecError
from .canonical import CANONICAL_SCHEMA
from .schema import (
    ColumnMapping,
    TEXT_CODED_COLUMNS,
    TIMESTAMP_COLUMNS,
    canonical_arrow_schema,
    check_columns,
    empty_canonical_table,
    map_columns,
    to_canonical,
)
from .sources import (
    InputInfo,
    inspect_input,
    is_local,
    open_fs,
    open_kwargs,
    read_csv_header,
    read_line,
    redact_uri,
    source_error,
)

__all__ = ["Part", "plan_parts", "read_month", "read_part", "read_sample"]

_CSV_BLOCK = 16 << 20
_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


@dataclass(frozen=True)
class Part:
    """One unit of work: a month's file, or a run of its Parquet row groups.

    Attributes
    ----------
    uri, month : str
    fmt : str
        ``"parquet"`` or ``"csv"``.
    row_groups : tuple of int or None
        Parquet row-group indices to read; None for the whole file.
    storage_options : dict
        As given by the job (validated: no secrets).
    index : int
        Position of this part within its month (0, 1, ...).
    rows : int or None
        Rows this part holds, where the footer says (Parquet).
    cache_dir : str or None
        Local cache for http(s) inputs.
    """

    uri: str
    month: str
    fmt: str
    row_groups: tuple[int, ...] | None
    storage_options: dict[str, Any] = field(default_factory=dict)
    index: int = 0
    rows: int | None = None
    cache_dir: str | None = None


def plan_parts(
    info: InputInfo,
    *,
    target_rows: int = 2_000_000,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: str | None = None,
) -> list[Part]:
    """Split one month's input into parts of about ``target_rows`` rows.

    Consecutive Parquet row groups are grouped while the total stays within
    ``target_rows`` (a row group larger than that is a part of its own); a
    CSV file, or a Parquet file without row groups, is one part.  Parts read
    through ``cache_dir`` (default: the cache ``info`` was inspected through).
    """
    if target_rows < 1:
        raise SpecError(f"target_rows must be >= 1, got {target_rows}")
    opts = dict(storage_options or {})
    cache_dir = info.cache_dir if cache_dir is None else cache_dir
    if info.format != "parquet" or not info.row_groups:
        return [Part(info.uri, info.month, info.format, row_groups=None, storage_options=opts, index=0, rows=info.rows,
                     cache_dir=cache_dir)]
    runs: list[list[int]] = [[]]  # consecutive row-group indices, one list per part
    run_rows = [0]
    for group, group_rows in enumerate(info.row_groups):
        if runs[-1] and run_rows[-1] + group_rows > target_rows:
            runs.append([])
            run_rows.append(0)
        runs[-1].append(group)
        run_rows[-1] += group_rows
    return [
        Part(info.uri, info.month, "parquet", row_groups=tuple(run), storage_options=opts, index=index, rows=rows,
             cache_dir=cache_dir)
        for index, (run, rows) in enumerate(zip(runs, run_rows))
    ]


def read_part(part: Part, columns: Sequence[str] | Mapping[str, Sequence[str]]) -> pa.Table:
    """Canonical ``columns`` of one part, in canonical types.

    ``columns`` may be a mapping canonical column -> what needs it (as
    :func:`rapidseval.features.required_columns` returns), so that a month
    that lacks a column is reported with the features that need it.

    Raises
    ------
    SourceError
        The input cannot be found, reached or read.
    SchemaError
        A requested column has no source column in this file.
    DataError
        The file is corrupt, or a value cannot be converted.
    """
    needs = columns if isinstance(columns, Mapping) else None
    names = list(columns)
    canonical_arrow_schema(names)  # validates the names
    columns = {c: list(needs[c]) for c in names} if needs is not None else names
    fs, path = open_fs(part.uri, part.storage_options, cache_dir=part.cache_dir, month=part.month)
    shown = redact_uri(part.uri)  # what errors name
    if part.fmt == "parquet":
        return _read_parquet(fs, path, part, columns, shown)
    if part.fmt == "csv":
        return _read_csv(fs, path, part, columns, shown)
    raise SpecError(f"{shown} ({part.month}): unknown format {part.fmt!r}; use parquet or csv")


def read_month(
    uri: str,
    month: str,
    columns: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: str | None = None,
    fmt: str = "auto",
) -> pa.Table:
    """Canonical ``columns`` of a whole month (convenience: inspect, plan, read, concatenate)."""
    info = inspect_input(uri, month, storage_options, cache_dir=cache_dir, fmt=fmt)
    parts = plan_parts(info, target_rows=max(sum(info.row_groups), 1), storage_options=storage_options, cache_dir=cache_dir)
    tables = [read_part(p, columns) for p in parts]
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------
def _is_decode_error(exc: BaseException) -> bool:
    """An error of pyarrow's own decoding (not one raised by the filesystem underneath).

    pyarrow reports bad data as ArrowException or as a bare ``OSError`` without
    errno; errors of fsspec filesystems keep their own types (or carry an errno).
    """
    return isinstance(exc, pa.ArrowException) or (type(exc) is OSError and exc.errno is None)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _read_parquet(fs, path: str, part: Part, columns, shown: str) -> pa.Table:
    where = f"{shown} ({part.month})"
    handle = None
    try:
        if is_local(fs):
            size = os.path.getsize(path)
            source: Any = path
        else:
            size = int(fs.size(path))
            handle = source = fs.open(path, "rb", **open_kwargs(fs, size))
        if size == 0:
            return empty_canonical_table(columns)
        try:
            pf = pq.ParquetFile(source, pre_buffer=handle is not None)
        except Exception as exc:
            if _is_decode_error(exc):
                raise DataError(f"{where}: not a valid Parquet file ({_short(exc)})") from exc
            raise
        mapping = map_columns(pf.schema_arrow.names, path=shown, month=part.month)
        check_columns(mapping, columns, path=shown, month=part.month)
        wanted = mapping.source_names(columns)
        rgs = list(range(pf.num_row_groups)) if part.row_groups is None else list(part.row_groups)
        bad = [i for i in rgs if not 0 <= i < pf.num_row_groups]
        if bad:
            raise DataError(f"{where}: row group(s) {bad} not in file of {pf.num_row_groups}; did the file change?")
        try:
            if rgs:
                table = pf.read_row_groups(rgs, columns=wanted, use_threads=True)
            else:
                table = pf.schema_arrow.empty_table().select(wanted)
        except Exception as exc:
            if _is_decode_error(exc):
                raise DataError(f"{where}: cannot decode Parquet data, corrupt or truncated? ({_short(exc)})") from exc
            raise
    except (DataError, SchemaError, SourceError, SpecError):
        raise
    except Exception as exc:
        raise source_error(exc, part.uri, part.month) from exc
    finally:
        if handle is not None:
            handle.close()
    return to_canonical(table, mapping, columns, path=shown, month=part.month)


# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------
def _csv_types(mapping, columns) -> dict[str, pa.DataType]:
    """Source column -> type to parse it as (text where words or timestamps may appear)."""
    types: dict[str, pa.DataType] = {}
    for c in columns:
        src = mapping.source_of[c]
        text = c in TIMESTAMP_COLUMNS or c in TEXT_CODED_COLUMNS or CANONICAL_SCHEMA[c] == "string"
        types[src] = pa.string() if text else pa.float64()
    return types


def _peek_fields(f) -> int | None:
    """Fields in the first non-blank data line (file position is restored)."""
    pos = f.tell()
    try:
        for _ in range(2):
            line = read_line(f)
            if not line:
                return None
            if line.strip():
                return len(next(csv.reader([line.decode("utf-8", errors="replace")])))
        return None
    finally:
        f.seek(pos)


def _read_csv(fs, path: str, part: Part, columns, shown: str) -> pa.Table:
    try:
        size = int(fs.size(path))
        if size == 0:
            return empty_canonical_table(columns)
        with fs.open(path, "rb", compression="infer", **open_kwargs(fs, size)) as f:
            read = _read_csv_stream(f, part, columns, shown, use_threads=True, block_size=_CSV_BLOCK)
    except (DataError, SchemaError, SourceError, SpecError):
        raise
    except Exception as exc:
        raise source_error(exc, part.uri, part.month) from exc
    return _csv_canonical(read, part, columns, shown)


def _read_csv_stream(stream, part: Part, columns, shown: str, *, use_threads: bool,
                     block_size: int | None = None) -> tuple[pa.Table, ColumnMapping] | None:
    """A CSV stream (a file, or a sample's first lines) as Arrow reads it, with its column
    mapping (None without rows): the header mapped and checked, trailing fields beyond the
    header named, parse errors as one line naming the column (:func:`_csv_error`).  Shared by
    :func:`read_part` and :func:`read_sample`; :func:`_csv_canonical` converts the result."""
    header = read_csv_header(stream)
    if not header:
        return None
    mapping = map_columns(header, path=shown, month=part.month)
    check_columns(mapping, columns, path=shown, month=part.month)
    names = list(header)
    fields = _peek_fields(stream)
    if fields is None:  # a header and no rows
        return None
    names += [f"__extra_{i}" for i in range(max(fields - len(names), 0))]  # TLC rows with trailing empty fields
    read_options = pacsv.ReadOptions(column_names=names, use_threads=use_threads,
                                      **({"block_size": block_size} if block_size else {}))
    try:
        table = pacsv.read_csv(
            stream, read_options=read_options,
            convert_options=pacsv.ConvertOptions(
                include_columns=mapping.source_names(columns), column_types=_csv_types(mapping, columns),
                strings_can_be_null=True, quoted_strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(exc, f"{shown} ({part.month})", names, columns, mapping) from exc
    return table, mapping


def _csv_canonical(read: tuple[pa.Table, ColumnMapping] | None, part: Part, columns, shown: str) -> pa.Table:
    if read is None:
        return empty_canonical_table(columns)
    table, mapping = read
    return to_canonical(table, mapping, columns, path=shown, month=part.month)


# ---------------------------------------------------------------------------------------
# samples (the up-front type check of run and validate)
# ---------------------------------------------------------------------------------------
def read_sample(part: Part, columns: Sequence[str] | Mapping[str, Sequence[str]], *, max_rows: int = 2_000,
                max_bytes: int = 1 << 20) -> pa.Table:
    """The first rows of ``part`` in canonical types, through the same mapping and conversions as
    :func:`read_part`: at most ``max_rows`` rows of its first Parquet row group, or the complete
    lines of a CSV's first ``max_bytes``.  What it cannot convert (text in a fare column, a
    garbled CSV, an unparsable timestamp) fails here, before any training, with the message
    :func:`read_part` would give.

    Raises
    ------
    SourceError, SchemaError, DataError
        As :func:`read_part`.
    """
    import io

    names = list(columns)
    canonical_arrow_schema(names)
    columns = {c: list(columns[c]) for c in names} if isinstance(columns, Mapping) else names
    fs, path = open_fs(part.uri, part.storage_options, cache_dir=part.cache_dir, month=part.month)
    shown = redact_uri(part.uri)
    try:
        size = int(fs.size(path))
        if size == 0:
            return empty_canonical_table(columns)
        if part.fmt == "parquet":
            with fs.open(path, "rb", **open_kwargs(fs, size)) as f:
                return _parquet_sample(f, part, columns, shown, max_rows=max_rows)
        with fs.open(path, "rb", compression="infer", **open_kwargs(fs, size)) as f:
            head = _complete_lines(f, max_bytes)
        read = _read_csv_stream(io.BytesIO(head), part, columns, shown, use_threads=False)
    except (DataError, SchemaError, SourceError, SpecError):
        raise
    except Exception as exc:
        raise source_error(exc, part.uri, part.month) from exc
    return _csv_canonical(read, part, columns, shown)


def _parquet_sample(f, part: Part, columns, shown: str, *, max_rows: int) -> pa.Table:
    """At most ``max_rows`` rows of the part's first row group (of the Parquet file open as ``f``), canonical."""
    try:
        parquet = pq.ParquetFile(f)
        mapping = map_columns(parquet.schema_arrow.names, path=shown, month=part.month)
        check_columns(mapping, columns, path=shown, month=part.month)
        wanted = mapping.source_names(columns)
        groups = list(part.row_groups) if part.row_groups is not None else list(range(parquet.num_row_groups))
        batch = next(parquet.iter_batches(batch_size=max_rows, row_groups=groups[:1], columns=wanted), None) \
            if groups else None
    except (DataError, SchemaError):
        raise
    except Exception as exc:
        if _is_decode_error(exc):
            raise DataError(f"{shown} ({part.month}): cannot decode Parquet data, corrupt or truncated? "
                            f"({_short(exc)})") from exc
        raise
    table = pa.Table.from_batches([batch]) if batch is not None else parquet.schema_arrow.empty_table().select(wanted)
    return to_canonical(table, mapping, columns, path=shown, month=part.month)


def _complete_lines(f, max_bytes: int) -> bytes:
    """The first ``max_bytes`` of the file open as ``f``, cut after its last complete line (all of a shorter file)."""
    head = f.read(max_bytes + 1)
    if len(head) > max_bytes:
        head = head[:max_bytes]
        head = head[: head.rfind(b"\n") + 1] if b"\n" in head else head
    return head


def _csv_error(exc: Exception, where: str, names: list[str], columns, mapping) -> DataError:
    """A CSV that Arrow cannot parse: one line naming the file, month and (canonical) column."""
    msg = str(exc)
    m = _CSV_COLUMN.search(msg)
    col = ""
    if m and int(m[1]) < len(names):
        src = names[int(m[1])]
        canon = next((c for c in columns if mapping.source_of[c] == src), src)
        col = f" column {canon}" + (f" (source {src!r})" if src != canon else "")
    return DataError(f"{where}:{col} cannot parse CSV: {' '.join(msg.split())[:300]}")
