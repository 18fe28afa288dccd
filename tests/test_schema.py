"""TLC schema eras -> canonical schema (rapidseval.io.schema)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _compare import assert_tables_equal

from rapidseval.io.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA
from rapidseval.io.readers import read_month
from rapidseval.io.schema import (
    ALIASES,
    ERAS,
    ColumnMapping,
    canonical_arrow_schema,
    check_columns,
    empty_canonical_table,
    map_columns,
    required_columns_error,
    to_canonical,
)
from rapidseval.core.errors import DataError, SchemaError

DATA = Path(__file__).parent / "data"
ZONES = ("pickup_location_id", "dropoff_location_id")
LATLON = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")




def _canon(table: pa.Table, columns=None, *, path="f.parquet", month="2020-01") -> pa.Table:
    mapping = map_columns(table.column_names, path=path, month=month)
    columns = columns or [c for c in CANONICAL_COLUMNS if c in mapping.source_of]
    return to_canonical(table, mapping, columns, path=path, month=month)


# ---------------------------------------------------------------------------------------
# eras of the real samples
# ---------------------------------------------------------------------------------------
SAMPLES = [
    # file, era, canonical columns it must provide, canonical columns it lacks
    ("snake_case_2018-01.parquet", "snake_case", (*ZONES, "rate_code_id", "congestion_surcharge"), (*LATLON, "airport_fee")),
    ("tlc_2021-10.parquet", "tlc-2016-07", (*ZONES, "rate_code_id", "congestion_surcharge"), (*LATLON, "airport_fee")),
    ("bigquery_2022.parquet", "bigquery", (*ZONES, "rate_code_id", "improvement_surcharge", "airport_fee"), (*LATLON, "congestion_surcharge")),
    ("tlc_latlon_2015-01.parquet", "tlc-2015", (*LATLON, "rate_code_id", "improvement_surcharge"), (*ZONES, "congestion_surcharge", "airport_fee")),
    ("tlc2009style_2015-01.parquet", "tlc-2009", (*LATLON, "rate_code_id", "extra", "store_and_fwd_flag"), (*ZONES, "improvement_surcharge")),
    ("tlc2010style_2015-01.csv", "tlc-2010", (*LATLON, "rate_code_id", "extra", "store_and_fwd_flag"), (*ZONES, "improvement_surcharge")),
]  # fmt: skip
CORE = ("vendor_id", "pickup_datetime", "dropoff_datetime", "passenger_count", "trip_distance", "payment_type",
        "fare_amount", "mta_tax", "tip_amount", "tolls_amount", "total_amount")  # fmt: skip


def _header(path: Path) -> list[str]:
    if path.suffix == ".csv":
        return path.read_text().splitlines()[0].split(",")
    return pq.read_schema(path).names


@pytest.mark.parametrize("name,era,has,lacks", SAMPLES, ids=[s[1] for s in SAMPLES])
def test_sample_eras_map(name, era, has, lacks):
    path = DATA / name
    mapping = map_columns(_header(path), path=str(path), month="x")
    assert mapping.era == era
    assert mapping.missing([*CORE, *has]) == []
    assert mapping.missing(lacks) == list(lacks)
    present = [c for c in CANONICAL_COLUMNS if c in mapping.source_of]
    table = read_month(str(path), "2015-01", present)
    assert table.schema == canonical_arrow_schema(present)
    assert table.num_rows == 500
    # a real month: every trip has both timestamps, and cash/card payments dominate
    assert table["pickup_datetime"].null_count == 0
    codes = set(table["payment_type"].to_pylist())
    assert codes <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0} and {1.0, 2.0} <= codes  # 0 appears from 2021


def test_2009_2010_and_2015_layouts_of_the_same_rows_agree():
    cols = [c for c in CANONICAL_COLUMNS if c not in (*ZONES, "improvement_surcharge", "congestion_surcharge", "airport_fee")]
    t15 = read_month(str(DATA / "tlc_latlon_2015-01.parquet"), "2015-01", cols)
    t09 = read_month(str(DATA / "tlc2009style_2015-01.parquet"), "2015-01", cols)
    t10 = read_month(str(DATA / "tlc2010style_2015-01.csv"), "2015-01", cols)
    assert_tables_equal(t09, t15)
    assert_tables_equal(t10, t15)
    assert set(t09["vendor_id"].to_pylist()) == {1.0, 2.0}


def test_snake_case_and_tlc_names_give_same_table():
    t = pq.read_table(DATA / "snake_case_2018-01.parquet")
    tlc_names = {"vendor_id": "VendorID", "pickup_datetime": "tpep_pickup_datetime",
                 "dropoff_datetime": "tpep_dropoff_datetime", "rate_code_id": "RatecodeID",
                 "pickup_location_id": "PULocationID", "dropoff_location_id": "DOLocationID"}  # fmt: skip
    renamed = t.rename_columns([tlc_names.get(c, c) for c in t.column_names])
    assert map_columns(renamed.column_names, path="p").era == "tlc-2016-07"
    assert_tables_equal(_canon(renamed), _canon(t))


def test_bigquery_names_and_types():
    t = pq.read_table(DATA / "bigquery_2022.parquet")
    m = map_columns(t.column_names, path="bq")
    assert m.source_of["rate_code_id"] == "rate_code"
    assert m.source_of["improvement_surcharge"] == "imp_surcharge"
    assert m.source_of["pickup_location_id"] == "pickup_location_id"
    out = _canon(t, ["vendor_id", "pickup_location_id", "rate_code_id", "airport_fee"])
    assert out.schema == canonical_arrow_schema(["vendor_id", "pickup_location_id", "rate_code_id", "airport_fee"])
    np.testing.assert_array_equal(out["pickup_location_id"].to_numpy(), t["pickup_location_id"].to_numpy().astype(float))


# ---------------------------------------------------------------------------------------
# header variations and codes
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "names",
    [
        [" VendorID", "TPEP_PICKUP_DATETIME ", " RateCodeID ", "Airport_fee", "pulocationid"],
        ["vendorid", "tpep_pickup_datetime", "RatecodeID", "airport_fee", "PULocationID"],
        ["\ufeffVendorID", " tpep_pickup_datetime", "ratecodeid", "AIRPORT_FEE", "PULocationId"],
    ],
)
def test_header_case_and_whitespace(names):
    m = map_columns(names, path="p")
    assert m.source_of == {
        "vendor_id": names[0],
        "pickup_datetime": names[1],
        "rate_code_id": names[2],
        "pickup_location_id": names[4],
        "airport_fee": names[3],
    }
    assert m.era == "tlc-2016-07"


def test_space_padded_2014_csv_header_era():
    m = map_columns(["vendor_id", " pickup_datetime", " dropoff_datetime", " pickup_longitude", " rate_code"], path="p")
    assert m.era == "tlc-2010"
    assert m.source_of["pickup_datetime"] == " pickup_datetime"
    assert m.source_of["rate_code_id"] == " rate_code"


def test_alias_table_covers_canonical_schema_and_eras_are_named():
    assert set(ALIASES) == set(CANONICAL_SCHEMA)
    assert [e.name for e in ERAS] == ["bigquery", "tlc-2009", "tlc-2016-07", "tlc-2015", "snake_case", "tlc-2010"]
    assert map_columns(["a", "b"], path="p").era == "unknown"


def test_same_name_twice_up_to_case_is_an_error():
    with pytest.raises(SchemaError, match=r"data\.parquet \(2023-01\).*'airport_fee' and 'Airport_fee'.*airport_fee"):
        map_columns(["airport_fee", "Airport_fee"], path="data.parquet", month="2023-01")


def test_priority_between_different_aliases_is_declared_order():
    m = map_columns(["rate_code", "RatecodeID"], path="p")
    assert m.source_of["rate_code_id"] == "RatecodeID"


@pytest.mark.parametrize(
    "arr",
    [
        pa.array([1, 2, None, 4], pa.int64()),
        pa.array([1.0, 2.0, None, 4.0], pa.float64()),
        pa.array([1, 2, None, 4], pa.int32()),
        pa.array([1.0, 2.0, float("nan"), 4.0], pa.float32()),
        pa.array(["1", "2.0", "", "4"], pa.string()),
        pa.array(["1", "2", None, "4"], pa.large_string()),
        pa.array([1, 2, None, 4], pa.int64()).dictionary_encode(),
    ],
    ids=["int64", "float64", "int32", "float32-nan", "string", "large_string", "dictionary"],
)
def test_int_float_and_string_codes_agree(arr):
    out = _canon(pa.table({"RatecodeID": arr, "PULocationID": arr}))
    for col in ("rate_code_id", "pickup_location_id"):
        assert out[col].type == pa.float64()
        assert out[col].null_count == 0  # missing is NaN, not null
        np.testing.assert_array_equal(out[col].to_numpy(), [1.0, 2.0, np.nan, 4.0])


def test_payment_type_words_to_tlc_codes():
    words = ["CASH", "Cash", "Credit", "CREDIT", "CRD", "CSH", "No Charge", "NOC", "Dispute", "DIS", "UNK", " crd ", "1", None, ""]
    out = _canon(pa.table({"Payment_Type": words}))["payment_type"].to_numpy()
    np.testing.assert_array_equal(out, [2, 2, 1, 1, 1, 2, 3, 3, 4, 4, 5, 1, 1, np.nan, np.nan])


def test_vendor_words_to_codes():
    out = _canon(pa.table({"vendor_name": ["CMT", "VTS", "DDS", "cmt", None]}))["vendor_id"].to_numpy()
    np.testing.assert_array_equal(out, [1, 2, 3, 1, np.nan])


def test_unknown_payment_word_is_a_data_error():
    with pytest.raises(DataError, match=r"x\.csv \(2010-03\): column payment_type.*'bitcoin'"):
        _canon(pa.table({"payment_type": ["CSH", "Bitcoin"]}), path="x.csv", month="2010-03")


def test_store_and_forward_flag_spellings():
    out = _canon(pa.table({"store_and_forward": pa.array([0.0, 1.0, None])}))
    assert out["store_and_fwd_flag"].to_pylist() == ["N", "Y", None]
    out = _canon(pa.table({"store_and_fwd_flag": pa.array([" N", "y", "", None, "1"], pa.large_string())}))
    assert out["store_and_fwd_flag"].type == pa.string()
    assert out["store_and_fwd_flag"].to_pylist() == ["N", "Y", None, None, "Y"]


# ---------------------------------------------------------------------------------------
# timestamps
# ---------------------------------------------------------------------------------------
WANT = [dt.datetime(2020, 1, 1, 0, 28, 15), dt.datetime(2020, 1, 31, 23, 59, 59, 500000), None]


@pytest.mark.parametrize(
    "arr",
    [
        pa.array(["2020-01-01 00:28:15", "2020-01-31 23:59:59.5", None]),
        pa.array(["2020-01-01 00:28:15", "2020-01-31T23:59:59.500000", ""], pa.large_string()),
        pa.array(WANT, pa.timestamp("ns")),
        pa.array(WANT, pa.timestamp("ms")),
        pa.array(WANT, pa.timestamp("us")),
        pa.array(
            [dt.datetime(2020, 1, 1, 5, 28, 15), dt.datetime(2020, 2, 1, 4, 59, 59, 500000), None],
            pa.timestamp("us", tz="UTC"),
        ).cast(pa.timestamp("us", tz="America/New_York")),
    ],
    ids=["str", "iso-T-large_string", "ns", "ms", "us", "tz-aware"],
)
def test_timestamps_become_naive_microseconds(arr):
    out = _canon(pa.table({"tpep_pickup_datetime": arr}))
    assert out.schema.field("pickup_datetime").type == pa.timestamp("us")
    assert out["pickup_datetime"].to_pylist() == WANT


def test_whole_second_strings_take_the_fast_format():
    arr = pa.array(["2009-01-04 02:52:00", "2009-01-04 03:31:00"])
    out = _canon(pa.table({"Trip_Pickup_DateTime": arr}))
    assert out["pickup_datetime"].to_pylist() == [dt.datetime(2009, 1, 4, 2, 52), dt.datetime(2009, 1, 4, 3, 31)]


def test_unparsable_timestamp_names_file_month_column_and_value():
    t = pa.table({"tpep_pickup_datetime": ["2020-01-01 00:00:00", "yesterday"]})
    with pytest.raises(DataError) as info:
        _canon(t, path="s3://b/yellow_2020-01.parquet", month="2020-01")
    msg = str(info.value)
    assert "s3://b/yellow_2020-01.parquet (2020-01)" in msg
    assert "pickup_datetime" in msg and "tpep_pickup_datetime" in msg and "'yesterday'" in msg
    assert isinstance(info.value.__cause__, pa.ArrowInvalid)


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------
def test_fare_as_text_is_a_data_error_naming_file_month_column():
    t = pa.table({"fare_amount": ["12.5", "n/a", "7"]})
    with pytest.raises(DataError) as info:
        _canon(t, ["fare_amount"], path="/data/yellow_2020-02.parquet", month="2020-02")
    msg = str(info.value)
    assert msg.startswith("/data/yellow_2020-02.parquet (2020-02): column fare_amount")
    assert "'n/a'" in msg
    assert "\n" not in msg


def test_unsupported_type_is_a_data_error():
    t = pa.table({"fare_amount": pa.array([[1.0]], pa.list_(pa.float64()))})
    with pytest.raises(DataError, match=r"column fare_amount.*list"):
        _canon(t, ["fare_amount"])


def test_renamed_column_fails_naming_file_column_found_and_aliases():
    t = pq.read_table(DATA / "tlc_2021-10.parquet")
    t = t.rename_columns(["fare" if c == "fare_amount" else c for c in t.column_names])
    mapping = map_columns(t.column_names, path="yellow_tripdata_2021-10.parquet", month="2021-10")
    with pytest.raises(SchemaError) as info:
        to_canonical(t, mapping, ["fare_amount", "tip_amount"], path="yellow_tripdata_2021-10.parquet", month="2021-10")
    msg = str(info.value)
    assert msg.startswith("yellow_tripdata_2021-10.parquet (2021-10): no source column for canonical fare_amount")
    assert "fare_amount <- fare_amount|Fare_Amt" in msg  # accepted aliases
    assert "columns found: VendorID, tpep_pickup_datetime" in msg and ", fare," in msg
    assert "\n" not in msg


def test_latlon_month_asked_for_zone_ids_names_features():
    mapping = map_columns(pq.read_schema(DATA / "tlc_latlon_2015-01.parquet").names, path="p")
    needs = {"pickup_location_id": ["PULocationID"], "dropoff_location_id": ["DOLocationID"], "fare_amount": ["fare"]}
    assert mapping.missing(list(needs)) == ["pickup_location_id", "dropoff_location_id"]
    with pytest.raises(SchemaError) as info:
        check_columns(mapping, needs, path="yellow_tripdata_2015-01.parquet", month="2015-01")
    msg = str(info.value)
    assert "yellow_tripdata_2015-01.parquet (2015-01)" in msg
    assert "pickup_location_id (needed by PULocationID)" in msg
    assert "dropoff_location_id (needed by DOLocationID)" in msg
    assert "'tlc-2015'" in msg and "longitude/latitude, not the taxi-zone IDs" in msg
    assert "fare_amount (" not in msg


def test_zone_era_asked_for_lat_lon_says_so():
    mapping = map_columns(pq.read_schema(DATA / "tlc_2021-10.parquet").names, path="p")
    err = required_columns_error(mapping, {"pickup_longitude": ["pickup_lon", "distance_km"]}, path="p", month="2021-10")
    assert isinstance(err, SchemaError)
    assert "needed by pickup_lon, distance_km" in str(err)
    assert "taxi-zone IDs, not the longitude/latitude" in str(err)
    assert required_columns_error(mapping, ["fare_amount"], path="p", month="2021-10") is None


def test_non_canonical_name_requested():
    with pytest.raises(SchemaError, match="not canonical column.*fare\\b"):
        to_canonical(pa.table({"fare_amount": [1.0]}), map_columns(["fare_amount"], path="p"), ["fare"], path="p", month=None)


# ---------------------------------------------------------------------------------------
# shape of the output
# ---------------------------------------------------------------------------------------
def test_output_is_exactly_the_requested_columns_in_order():
    t = pq.read_table(DATA / "snake_case_2018-01.parquet")
    cols = ["tip_amount", "pickup_datetime", "payment_type"]
    out = _canon(t, cols)
    assert out.column_names == cols
    assert out.schema == canonical_arrow_schema(cols)


def test_empty_and_zero_row_tables_have_canonical_types():
    assert empty_canonical_table().schema == canonical_arrow_schema()
    t = pq.read_table(DATA / "tlc2009style_2015-01.parquet").slice(0, 0)
    out = _canon(t)
    assert out.num_rows == 0
    assert out.schema == canonical_arrow_schema(out.column_names)


def test_mapping_object():
    m = ColumnMapping(era="x", source_of={"fare_amount": "Fare_Amt", "tip_amount": "Tip_Amt"})
    assert m.missing(["fare_amount", "extra"]) == ["extra"]
    assert m.source_names(["tip_amount", "fare_amount", "tip_amount"]) == ["Tip_Amt", "Fare_Amt"]
