"""TLC schema eras -> the canonical schema (:mod:`rapidseval.io.canonical`).

The same yellow-taxi trips have been published under several headers: TLC's
2009 files (``Trip_Pickup_DateTime``, ``Fare_Amt``, string ``Payment_Type``),
2010-2014 (``vendor_id``, ``pickup_datetime``, ``rate_code``, 'CRD'/'CSH'),
2015-2016-06 (``VendorID``, ``tpep_pickup_datetime``, longitude/latitude),
2016-07 onwards (``PULocationID``/``DOLocationID`` taxi zones, later
``congestion_surcharge`` and ``airport_fee``), and re-exports (snake_case
copies, the BigQuery public dataset).  TLC's CSVs also vary in header case and
carry stray spaces (`` pickup_datetime``).

Everything here is driven by two declared tables:

* :data:`ALIASES` -- canonical column -> accepted source names, matched after
  stripping whitespace and ignoring case, in priority order;
* :data:`ERAS` -- how a header is recognised as one era (for messages and the
  manifest; the mapping itself never depends on the era).

and three value tables for columns whose values changed spelling over time
(:data:`PAYMENT_TYPE_CODES`, :data:`VENDOR_CODES`, :data:`FLAG_VALUES`).

:func:`map_columns` maps a header, :func:`check_columns` raises a
:class:`~rapidseval.core.errors.SchemaError` naming what a file cannot provide (and
which features need it), :func:`to_canonical` renames and casts a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..core.errors import DataError, SchemaError
from .canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA

__all__ = [
    "ALIASES",
    "ERAS",
    "FLAG_VALUES",
    "PAYMENT_TYPE_CODES",
    "VENDOR_CODES",
    "WALL_CLOCK_ZONE",
    "ColumnMapping",
    "Era",
    "canonical_arrow_schema",
    "check_columns",
    "empty_canonical_table",
    "map_columns",
    "normalise_name",
    "required_columns_error",
    "to_canonical",
]

# ---------------------------------------------------------------------------------------
# declared tables
# ---------------------------------------------------------------------------------------
#: canonical column -> accepted source column names, in priority order.  Matching
#: strips surrounding whitespace and ignores case (``RatecodeID`` == ``RateCodeID``,
#: ``Airport_fee`` == ``airport_fee``, `` pickup_datetime`` == ``pickup_datetime``).
ALIASES: dict[str, tuple[str, ...]] = {
    "vendor_id": ("VendorID", "vendor_id", "vendor_name"),
    "pickup_datetime": ("tpep_pickup_datetime", "pickup_datetime", "Trip_Pickup_DateTime"),
    "dropoff_datetime": ("tpep_dropoff_datetime", "dropoff_datetime", "Trip_Dropoff_DateTime"),
    "passenger_count": ("passenger_count",),
    "trip_distance": ("trip_distance",),
    "pickup_longitude": ("pickup_longitude", "Start_Lon"),
    "pickup_latitude": ("pickup_latitude", "Start_Lat"),
    "dropoff_longitude": ("dropoff_longitude", "End_Lon"),
    "dropoff_latitude": ("dropoff_latitude", "End_Lat"),
    "rate_code_id": ("RatecodeID", "rate_code_id", "rate_code"),
    "store_and_fwd_flag": ("store_and_fwd_flag", "store_and_forward"),
    "pickup_location_id": ("PULocationID", "pickup_location_id"),
    "dropoff_location_id": ("DOLocationID", "dropoff_location_id"),
    "payment_type": ("payment_type",),
    "fare_amount": ("fare_amount", "Fare_Amt"),
    "extra": ("extra", "surcharge"),
    "mta_tax": ("mta_tax",),
    "tip_amount": ("tip_amount", "Tip_Amt"),
    "tolls_amount": ("tolls_amount", "Tolls_Amt"),
    "improvement_surcharge": ("improvement_surcharge", "imp_surcharge"),
    "total_amount": ("total_amount", "Total_Amt"),
    "congestion_surcharge": ("congestion_surcharge",),
    "airport_fee": ("airport_fee",),
}


@dataclass(frozen=True)
class Era:
    """One recognisable header layout."""

    name: str
    markers: tuple[str, ...]  # any of these (normalised) source names identifies the era
    description: str
    zones: bool  # True where trips carry taxi-zone IDs, False where longitude/latitude


#: Checked in order; the first era with a marker column present wins.
ERAS: tuple[Era, ...] = (
    Era(
        "bigquery",
        ("data_file_year", "data_file_month", "imp_surcharge"),
        "BigQuery public-dataset export (rate_code, imp_surcharge, pickup_location_id, data_file_year)",
        True,
    ),
    Era(
        "tlc-2009",
        ("trip_pickup_datetime", "fare_amt", "vendor_name"),
        "TLC 2009 layout (Trip_Pickup_DateTime, Fare_Amt, string Payment_Type, Start_Lon/Start_Lat)",
        False,
    ),
    Era(
        "tlc-2016-07",
        ("pulocationid", "dolocationid"),
        "TLC 2016-07+ layout (tpep_*_datetime, RatecodeID, PULocationID/DOLocationID taxi zones)",
        True,
    ),
    Era(
        "tlc-2015",
        ("tpep_pickup_datetime", "tpep_dropoff_datetime", "ratecodeid"),
        "TLC 2015-01..2016-06 layout (tpep_*_datetime, RateCodeID, pickup/dropoff longitude/latitude)",
        False,
    ),
    Era(
        "snake_case",
        ("pickup_location_id", "dropoff_location_id", "rate_code_id"),
        "snake_case re-export of the TLC 2016-07+ layout (vendor_id, rate_code_id, pickup_location_id)",
        True,
    ),
    Era(
        "tlc-2010",
        ("pickup_datetime", "dropoff_datetime", "pickup_longitude"),
        "TLC 2010-2014 layout (vendor_id, pickup_datetime, rate_code, 'CRD'/'CSH' payment types, longitude/latitude)",
        False,
    ),
)
_UNKNOWN_ERA = "unknown"

#: payment-type spellings (lower-cased, stripped) -> TLC codes
#: (1 credit card, 2 cash, 3 no charge, 4 dispute, 5 unknown, 6 voided trip).
#: Numeric strings ('1', '2.0') are accepted as the codes they spell.
PAYMENT_TYPE_CODES: dict[str, float] = {
    "credit": 1.0, "crd": 1.0, "cre": 1.0, "card": 1.0, "credit card": 1.0,
    "cash": 2.0, "csh": 2.0, "cas": 2.0,
    "no charge": 3.0, "noc": 3.0, "no": 3.0, "no chg": 3.0,
    "dispute": 4.0, "dis": 4.0,
    "unknown": 5.0, "unk": 5.0, "na": 5.0,
    "voided": 6.0, "voided trip": 6.0, "vod": 6.0,
}  # fmt: skip

#: vendor spellings of 2009-2014 -> TLC vendor codes.  CMT (Creative Mobile
#: Technologies) and VTS (VeriFone) are TLC's codes 1 and 2; DDS (Digital
#: Dispatch Systems, gone by 2015) never had a TLC code and is given 3, which
#: no later TLC vendor uses.
VENDOR_CODES: dict[str, float] = {"cmt": 1.0, "vts": 2.0, "dds": 3.0}

#: store-and-forward spellings -> canonical 'Y' / 'N' (others are kept as written)
FLAG_VALUES: dict[str, str] = {
    "y": "Y", "n": "N", "1": "Y", "0": "N", "1.0": "Y", "0.0": "N", "true": "Y", "false": "N",
}  # fmt: skip

_VALUE_CODES: dict[str, dict[str, float]] = {
    "payment_type": PAYMENT_TYPE_CODES,
    "vendor_id": VENDOR_CODES,
}

#: canonical columns parsed from strings in CSV (and accepted as strings in Parquet)
#: the wall clock of canonical timestamps: TLC files are naive New York times; tz-aware
#: timestamps (e.g. UTC in a re-export) are converted to it
WALL_CLOCK_ZONE = "America/New_York"

TIMESTAMP_COLUMNS: tuple[str, ...] = tuple(c for c, t in CANONICAL_SCHEMA.items() if t.startswith("timestamp"))
#: canonical columns whose source may hold words rather than numbers
TEXT_CODED_COLUMNS: tuple[str, ...] = (*_VALUE_CODES, "store_and_fwd_flag")

_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?$"


def normalise_name(name: str) -> str:
    """How source column names are compared: stripped (also of a BOM), lower case."""
    return str(name).strip().lstrip("\ufeff").strip().lower()


_ALIAS_INDEX: dict[str, tuple[str, int]] = {}
for _canon, _names in ALIASES.items():
    for _rank, _name in enumerate(_names):
        _key = normalise_name(_name)
        if _key in _ALIAS_INDEX:  # pragma: no cover - guards the table itself
            raise RuntimeError(f"alias {_name!r} declared twice")
        _ALIAS_INDEX[_key] = (_canon, _rank)
if set(ALIASES) != set(CANONICAL_COLUMNS):  # pragma: no cover - guards the table itself
    raise RuntimeError("ALIASES must cover exactly the canonical columns")


def canonical_arrow_schema(columns: Sequence[str] = CANONICAL_COLUMNS) -> pa.Schema:
    """Arrow schema of ``columns`` (canonical names) in canonical types."""
    unknown = [column for column in columns if column not in CANONICAL_SCHEMA]
    if unknown:
        raise SchemaError(
            f"not canonical column(s): {', '.join(unknown)}; canonical columns are {', '.join(CANONICAL_COLUMNS)}"
        )
    return pa.schema([(column, pa.type_for_alias(CANONICAL_SCHEMA[column])) for column in columns])


def empty_canonical_table(columns: Sequence[str] = CANONICAL_COLUMNS) -> pa.Table:
    """A zero-row table of ``columns`` in canonical types."""
    return canonical_arrow_schema(columns).empty_table()


# ---------------------------------------------------------------------------------------
# mapping
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnMapping:
    """How one file's header maps to canonical columns.

    Attributes
    ----------
    era : str
        The recognised layout (a name from :data:`ERAS`, or ``"unknown"``).
    source_of : dict
        canonical column -> source column name, only for columns present.
    source_columns : tuple of str
        The file's header as found (for messages).
    """

    era: str
    source_of: dict[str, str]
    source_columns: tuple[str, ...] = field(default=())

    def missing(self, required: Sequence[str]) -> list[str]:
        """Canonical columns of ``required`` that this file cannot provide."""
        return [c for c in required if c not in self.source_of]

    def source_names(self, columns: Sequence[str]) -> list[str]:
        """Source columns to read for canonical ``columns`` (present ones, no repeats)."""
        out: list[str] = []
        for c in columns:
            src = self.source_of.get(c)
            if src is not None and src not in out:
                out.append(src)
        return out

    @property
    def era_description(self) -> str:
        for era in ERAS:
            if era.name == self.era:
                return era.description
        return "unrecognised layout"


def _where(path: str, month: str | None) -> str:
    return f"{path} ({month})" if month else str(path)


def map_columns(source_columns: Sequence[str], *, path: str, month: str | None = None) -> ColumnMapping:
    """Map a file's header to canonical columns through :data:`ALIASES`.

    Parameters
    ----------
    source_columns : sequence of str
        The header as found in the file.
    path, month : str
        Named in errors.

    Raises
    ------
    SchemaError
        Two source columns are the same name up to case/whitespace
        (``airport_fee`` and ``Airport_fee``), so which one to use is a guess.
    """
    best: dict[str, tuple[int, str]] = {}
    for name in source_columns:
        hit = _ALIAS_INDEX.get(normalise_name(name))
        if hit is None:
            continue
        canon, rank = hit
        if canon in best and best[canon][0] == rank:
            raise SchemaError(
                f"{_where(path, month)}: columns {best[canon][1]!r} and {name!r} both map to canonical "
                f"{canon}; keep only one"
            )
        if canon not in best or rank < best[canon][0]:
            best[canon] = (rank, name)
    source_of = {c: best[c][1] for c in CANONICAL_COLUMNS if c in best}
    return ColumnMapping(era=_detect_era(source_columns), source_of=source_of, source_columns=tuple(source_columns))


def _detect_era(source_columns: Sequence[str]) -> str:
    present = {normalise_name(c) for c in source_columns}
    for era in ERAS:
        if present.intersection(era.markers):
            return era.name
    return _UNKNOWN_ERA


def required_columns_error(
    mapping: ColumnMapping,
    required: Mapping[str, Sequence[str]] | Sequence[str],
    *,
    path: str,
    month: str | None,
) -> SchemaError | None:
    """The :class:`SchemaError` for what ``mapping`` lacks of ``required``, or None.

    ``required`` is either canonical columns, or canonical column -> names of
    the features that need it (so the message can say which features a month
    cannot provide).
    """
    needs = dict(required) if isinstance(required, Mapping) else {c: () for c in required}
    unknown = [c for c in needs if c not in CANONICAL_SCHEMA]
    if unknown:
        return SchemaError(
            f"{_where(path, month)}: not canonical column(s) {', '.join(unknown)}; "
            f"canonical columns are {', '.join(CANONICAL_COLUMNS)}"
        )
    missing = mapping.missing(list(needs))
    if not missing:
        return None
    what = ", ".join(f"{c} (needed by {', '.join(needs[c])})" if needs[c] else c for c in missing)
    parts = [f"{_where(path, month)}: no source column for canonical {what}"]
    era = next((e for e in ERAS if e.name == mapping.era), None)
    zone_cols = {"pickup_location_id", "dropoff_location_id"}
    latlon_cols = {"pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude"}
    if era is not None and not era.zones and zone_cols & set(missing):
        parts.append(
            f"this file is era {era.name!r} ({era.description}), which records pickup/dropoff "
            "longitude/latitude, not the taxi-zone IDs these need (TLC files carry zone IDs from 2016-07)"
        )
    elif era is not None and era.zones and latlon_cols & set(missing):
        parts.append(
            f"this file is era {era.name!r} ({era.description}), which records taxi-zone IDs, "
            "not the longitude/latitude these need (TLC files carry them up to 2016-06)"
        )
    elif era is not None:
        parts.append(f"this file is era {era.name!r} ({era.description})")
    parts.append("accepted source names: " + "; ".join(f"{c} <- {'|'.join(ALIASES[c])}" for c in missing))
    found = ", ".join(mapping.source_columns) if mapping.source_columns else "none"
    parts.append(f"columns found: {found}")
    return SchemaError("; ".join(parts))


def check_columns(
    mapping: ColumnMapping,
    required: Mapping[str, Sequence[str]] | Sequence[str],
    *,
    path: str,
    month: str | None,
) -> None:
    """Raise :class:`SchemaError` if ``mapping`` lacks any of ``required``.

    See :func:`required_columns_error` for ``required``.
    """
    err = required_columns_error(mapping, required, path=path, month=month)
    if err is not None:
        raise err


# ---------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------
def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _decode(arr):
    if pa.types.is_dictionary(arr.type):
        return pc.cast(arr, arr.type.value_type)
    return arr


def _clean_text(arr):
    """Trimmed strings (as pa.string()), empty strings as null."""
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


def _first_bad(arr, ok) -> str | None:
    """First non-null value of ``arr`` where ``ok`` is false."""
    bad = pc.and_(pc.invert(ok), pc.is_valid(arr))
    idx = pc.index(bad, True).as_py()
    return None if idx < 0 else arr[idx].as_py()


def _map_values(array, table: Mapping[str, object], out_type: pa.DataType, numeric_fallback, where: str):
    """Map text values through ``table`` (case-insensitively), via the unique values."""
    text = _clean_text(array)
    lower = pc.utf8_lower(text)
    unique = pc.unique(lower)
    values, unknown = [], []
    for value in unique.to_pylist():
        if value is None:
            values.append(None)
        elif value in table:
            values.append(table[value])
        else:
            code = numeric_fallback(value)
            if code is None:
                unknown.append(value)
            values.append(code)
    if unknown:
        shown = ", ".join(repr(value) for value in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise DataError(f"{where}: unrecognised value(s) {shown}; accepted: {', '.join(table)} or numeric codes")
    positions = pc.index_in(lower, value_set=unique)
    return pc.take(pa.array(values, out_type), positions)


def _float_or_none(text: str) -> float | None:
    try:
        return float(text) if re.match(_NUMBER, text) else None
    except ValueError:  # pragma: no cover - regex already filters
        return None


def _cast_text(arr, to: pa.DataType, where: str, valid: str, problem: str):
    """Cast strings to ``to``; on failure retry trimmed (empty -> null), then name a bad value."""
    try:
        return pc.cast(arr, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    text = _clean_text(arr)
    try:
        return pc.cast(text, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        bad = _first_bad(text, pc.match_substring_regex(text, valid))
        raise DataError(f"{where}: {problem} {bad!r}") from exc


def _to_float(array, canon: str, where: str):
    array = _decode(array)
    arrow_type = array.type
    if pa.types.is_null(arrow_type):
        out = pc.cast(array, pa.float64())
    elif pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type) or pa.types.is_decimal(arrow_type):
        out = array if pa.types.is_float64(arrow_type) else pc.cast(array, pa.float64())
    elif _is_text(arrow_type):
        if canon in _VALUE_CODES:
            out = _map_values(array, _VALUE_CODES[canon], pa.float64(), _float_or_none, where)
        else:
            out = _cast_text(array, pa.float64(), where, _NUMBER, "cannot convert to float64, found text")
    else:
        raise DataError(f"{where}: cannot convert type {arrow_type} to float64")
    if out.null_count:
        out = pc.fill_null(out, float("nan"))  # missing is NaN on every backend
    return out


def _to_timestamp(array, where: str):
    array = _decode(array)
    arrow_type = array.type
    microseconds = pa.timestamp("us")
    if pa.types.is_null(arrow_type):
        return pc.cast(array, microseconds)
    if pa.types.is_timestamp(arrow_type):
        if arrow_type.tz is not None:  # an instant -> New York wall-clock time, the TLC's (and the windows') clock
            array = pc.local_timestamp(pc.cast(array, pa.timestamp(arrow_type.unit, WALL_CLOCK_ZONE)))
        return array if array.type == microseconds else pc.cast(array, microseconds, safe=False)
    if pa.types.is_date(arrow_type):
        return pc.cast(array, microseconds)
    if _is_text(arrow_type):
        # Arrow's ISO 8601 cast reads '%Y-%m-%d %H:%M:%S', fractional seconds and 'T'
        # (and is ~4x faster than strptime with that format)
        return _cast_text(array, microseconds, where, _TIMESTAMP, f"cannot parse timestamp (expected '{_TIMESTAMP_FORMAT}'), found")
    raise DataError(f"{where}: cannot convert type {arrow_type} to timestamp[us]")


def _to_flag(array, canon: str, where: str):
    array = _decode(array)
    arrow_type = array.type
    if pa.types.is_null(arrow_type):
        return pc.cast(array, pa.string())
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type):
        nonzero = pc.not_equal(pc.cast(array, pa.float64()), 0.0)
        return pc.if_else(nonzero, pa.scalar("Y"), pa.scalar("N"))
    if _is_text(arrow_type):
        return _map_values(array, FLAG_VALUES, pa.string(), lambda u: u.upper(), where)
    raise DataError(f"{where}: cannot convert type {arrow_type} to string")


_CONVERTERS = {
    "float64": _to_float,
    "timestamp[us]": lambda arr, canon, where: _to_timestamp(arr, where),
    "string": _to_flag,
}


def to_canonical(
    table: pa.Table,
    mapping: ColumnMapping,
    columns: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    path: str,
    month: str | None,
) -> pa.Table:
    """Rename and cast ``table`` (source names) to exactly ``columns`` in canonical types.

    ``columns`` may be a mapping canonical column -> names of what needs it
    (features, target, rules); its keys are the columns and its values are
    named when a column is missing.

    Codes become float64 (missing as NaN), payment-type and vendor words become
    TLC codes, string timestamps are parsed (``%Y-%m-%d %H:%M:%S``, fractional
    seconds and ISO ``T`` accepted) and every timestamp becomes tz-naive
    ``timestamp[us]`` wall-clock time: naive ones are kept as they are (TLC files
    are New York wall-clock times), tz-aware ones are converted to
    :data:`WALL_CLOCK_ZONE` first.

    Raises
    ------
    SchemaError
        A requested canonical column has no source column.
    DataError
        A value cannot be converted (text in a fare column, an unparsable
        timestamp, an unknown payment type); the message names file, month,
        canonical and source column.
    """
    schema = canonical_arrow_schema(list(columns))
    check_columns(mapping, columns, path=path, month=month)
    arrays = []
    for arrow_field in schema:
        source = mapping.source_of[arrow_field.name]
        if source not in table.column_names:
            raise SchemaError(
                f"{_where(path, month)}: source column {source!r} (canonical {arrow_field.name}) was not read; "
                f"read columns: {', '.join(table.column_names)}"
            )
        where = f"{_where(path, month)}: column {arrow_field.name}" + (f" (source {source!r})" if source != arrow_field.name else "")
        try:
            out = _CONVERTERS[CANONICAL_SCHEMA[arrow_field.name]](table.column(source), arrow_field.name, where)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(f"{where}: {exc}") from exc
        if isinstance(out, pa.Array):
            out = pa.chunked_array([out], type=arrow_field.type)
        if out.type != arrow_field.type:
            out = pc.cast(out, arrow_field.type)
        arrays.append(out)
    return pa.Table.from_arrays(arrays, schema=schema)
