"""Sources, filesystems and readers: local files, S3 (moto server) and HTTP (local server)."""

from __future__ import annotations

import gzip
import os
import shutil
import time
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from _compare import assert_tables_equal

from rapidseval.io.canonical import CANONICAL_COLUMNS
from rapidseval.io.readers import Part, plan_parts, read_month, read_part
from rapidseval.io.schema import canonical_arrow_schema, map_columns
from rapidseval.io.sources import (
    NAMED_SOURCES,
    InputInfo,
    inspect_input,
    month_range,
    open_fs,
    redact_uri,
    resolve_uris,
    storage_options_for,
)
from rapidseval.core.errors import DataError, SchemaError, SourceError, SpecError

try:
    from ._servers import DUMMY_SECRET, aws_env, free_port, http_server, s3_bucket, s3_endpoint  # noqa: F401
except ImportError:
    from _servers import DUMMY_SECRET, aws_env, free_port, http_server, s3_bucket, s3_endpoint  # noqa: F401

DATA = Path(__file__).parent / "data"
SNAKE = DATA / "snake_case_2018-01.parquet"
TLC21 = DATA / "tlc_2021-10.parquet"
COLS = ["pickup_datetime", "dropoff_datetime", "passenger_count", "trip_distance", "rate_code_id",
        "pickup_location_id", "dropoff_location_id", "payment_type", "fare_amount", "tip_amount",
        "store_and_fwd_flag", "congestion_surcharge"]  # fmt: skip




def _months_dir(root: Path, fmt: str = "parquet") -> dict[str, Path]:
    """Two months of real data laid out as yellow_tripdata_{month}.<fmt> under root."""
    out = {}
    for month, src in (("2018-01", SNAKE), ("2021-10", TLC21)):
        dest = root / f"yellow_tripdata_{month}.{fmt}"
        if fmt == "parquet":
            shutil.copyfile(src, dest)
        else:
            pacsv.write_csv(pq.read_table(src), dest)
        out[month] = dest
    return out


# ---------------------------------------------------------------------------------------
# months and URIs
# ---------------------------------------------------------------------------------------
def test_month_range():
    assert month_range("2019-11", "2020-02") == ["2019-11", "2019-12", "2020-01", "2020-02"]
    assert month_range("2020-01", "2020-01") == ["2020-01"]
    assert len(month_range("2009-01", "2024-12")) == 16 * 12


@pytest.mark.parametrize("start,end", [("2020-1", "2020-02"), ("2020-13", "2021-01"), ("2020-01", "20-02"), ("2020-03", "2020-01")])
def test_month_range_rejects(start, end):
    with pytest.raises(SpecError):
        month_range(start, end)


def test_resolve_uris_templates_and_named_sources(tmp_path):
    months = ["2020-01", "2020-02"]
    assert resolve_uris("s3://b/yellow_{month}.parquet", months) == {
        "2020-01": "s3://b/yellow_2020-01.parquet",
        "2020-02": "s3://b/yellow_2020-02.parquet",
    }
    assert resolve_uris("https://h/{year}/{mm}/t.csv", months)["2020-02"] == "https://h/2020/02/t.csv"
    assert resolve_uris("tlc", ["2020-01"]) == {"2020-01": NAMED_SOURCES["tlc"].format(month="2020-01")}
    assert resolve_uris(["s3://b/a.parquet", "s3://b/b.parquet"], months)["2020-02"] == "s3://b/b.parquet"
    local = resolve_uris("data/yellow_{month}.parquet", ["2020-01"])["2020-01"]
    assert os.path.isabs(local) and local.endswith(os.path.join("data", "yellow_2020-01.parquet"))
    assert resolve_uris(f"file://{tmp_path}/y_{{month}}.parquet", ["2020-01"])["2020-01"] == f"{tmp_path}/y_2020-01.parquet"


@pytest.mark.parametrize(
    "source,match",
    [
        ("s3://b/yellow.parquet", "no {month} placeholder"),
        ("s3://b/yellow_{date}.parquet", "unknown placeholder {date}"),
        (["s3://b/a.parquet"], "1 URI.*2 month"),
    ],
)
def test_resolve_uris_rejects(source, match):
    with pytest.raises(SpecError, match=match):
        resolve_uris(source, ["2020-01", "2020-02"])


@pytest.mark.parametrize(
    "options",
    [
        {"key": "SEEKRIT"},
        {"secret": "SEEKRIT"},
        {"token": "SEEKRIT"},
        {"aws_secret_access_key": "SEEKRIT"},
        {"aws_access_key_id": "SEEKRIT"},
        {"client_kwargs": {"aws_secret_access_key": "SEEKRIT"}},
        {"headers": {"Authorization": "Bearer SEEKRIT"}},
        {"password": "SEEKRIT"},
    ],
)
def test_secret_storage_options_are_refused(options):
    with pytest.raises(SpecError, match="use the environment") as info:
        storage_options_for("s3://b/k.parquet", options)
    assert "SEEKRIT" not in str(info.value)


def test_storage_options_for_s3_and_http(tmp_path):
    url, opts = storage_options_for("s3://b/k.parquet", {"anon": True, "client_kwargs": {"endpoint_url": "http://h:9"}})
    assert url == "s3://b/k.parquet"
    assert opts["anon"] is True and opts["endpoint_url"] == "http://h:9"
    assert opts["config_kwargs"]["connect_timeout"] == 5.0
    url, opts = storage_options_for("s3://b/k.parquet", {"endpoint_url": "http://h:9", "connect_timeout": 1.5})
    assert opts["config_kwargs"]["connect_timeout"] == 1.5 and "connect_timeout" not in opts
    url, opts = storage_options_for("https://h/x.parquet", None, cache_dir=str(tmp_path))
    assert url == "simplecache::https://h/x.parquet"
    assert opts["simplecache"] == {"cache_storage": str(tmp_path)}
    assert opts["https"]["client_kwargs"]["timeout"].sock_connect == 5.0
    with pytest.raises(SpecError, match="connect_timeout"):
        storage_options_for("s3://b/k", {"connect_timeout": "soon"})


def test_redact_uri():
    assert redact_uri("https://user:pw@h/x.parquet?X-Amz-Signature=abc&v=1") == "https://***@h/x.parquet?X-Amz-Signature=***&v=1"
    assert redact_uri("s3://bucket/key.parquet") == "s3://bucket/key.parquet"
    assert redact_uri("/data/x.parquet") == "/data/x.parquet"


# ---------------------------------------------------------------------------------------
# local inputs
# ---------------------------------------------------------------------------------------
def test_inspect_parquet_and_fingerprint_is_content_based(tmp_path):
    info = inspect_input(str(SNAKE), "2018-01")
    assert isinstance(info, InputInfo)
    assert (info.format, info.rows, info.bytes) == ("parquet", 500, SNAKE.stat().st_size)
    assert info.row_groups == (500,)
    assert info.columns[:3] == ("vendor_id", "pickup_datetime", "dropoff_datetime")
    assert info.fingerprint.startswith("blake2b:")
    copy = tmp_path / "elsewhere.parquet"
    shutil.copyfile(SNAKE, copy)
    assert inspect_input(str(copy), "2099-12").fingerprint == info.fingerprint
    assert inspect_input(str(TLC21), "2018-01").fingerprint != info.fingerprint
    assert info.to_dict()["row_groups"] == [500]


def test_inspect_csv(tmp_path):
    path = _months_dir(tmp_path, "csv")["2018-01"]
    info = inspect_input(str(path), "2018-01")
    assert (info.format, info.rows, info.row_groups) == ("csv", None, ())
    assert info.columns == tuple(pq.read_schema(SNAKE).names)
    copy = tmp_path / "copy.data"
    shutil.copyfile(path, copy)
    assert inspect_input(str(copy), "2018-01", fmt="csv").fingerprint == info.fingerprint
    # same size, one byte changed in the middle of a > 2 MiB file: still caught when in head/tail
    big = tmp_path / "big.csv"
    big.write_bytes(path.read_bytes() * 40)
    before = inspect_input(str(big), "2018-01").fingerprint
    raw = bytearray(big.read_bytes())
    raw[-10] = ord("9") if raw[-10] != ord("9") else ord("8")
    big.write_bytes(bytes(raw))
    assert inspect_input(str(big), "2018-01").fingerprint != before


def test_missing_local_file_is_source_error(tmp_path):
    uri = str(tmp_path / "yellow_tripdata_2020-03.parquet")
    with pytest.raises(SourceError) as info:
        inspect_input(uri, "2020-03")
    msg = str(info.value)
    assert msg == f"2020-03: cannot inspect {uri}: no such file"
    assert isinstance(info.value.__cause__, FileNotFoundError)
    with pytest.raises(SourceError, match="2020-03.*no such file"):
        read_part(Part(uri, "2020-03", "parquet", None, {}, 0), ["fare_amount"])


@pytest.mark.parametrize("damage", ["not-parquet", "truncated", "bad-footer"])
def test_corrupt_parquet_is_data_error(tmp_path, damage):
    raw = SNAKE.read_bytes()
    path = tmp_path / "yellow_tripdata_2018-01.parquet"
    if damage == "not-parquet":
        path.write_bytes(b"<html>Not here</html>" * 10)
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        path.write_bytes(raw[:-300] + b"\x00" * 292 + raw[-8:])
    with pytest.raises(DataError) as info:
        read_month(str(path), "2018-01", ["fare_amount"])
    assert str(path) in str(info.value) and "2018-01" in str(info.value)


def test_truncated_data_pages_are_data_error(tmp_path):
    raw = SNAKE.read_bytes()
    footer_len = int.from_bytes(raw[-8:-4], "little")
    body_end = len(raw) - footer_len - 8
    path = tmp_path / "damaged.parquet"
    path.write_bytes(raw[:4] + b"\xff" * (body_end - 4) + raw[body_end:])  # pages garbled, footer intact
    info = inspect_input(str(path), "2018-01")
    assert info.rows == 500
    with pytest.raises(DataError, match=r"damaged\.parquet \(2018-01\)"):
        read_part(plan_parts(info)[0], ["fare_amount"])


def test_wrong_type_in_parquet_names_column(tmp_path):
    t = pq.read_table(TLC21)
    fares = pa.array([str(v) for v in t["fare_amount"].to_pylist()[:-1]] + ["twelve"])
    t = t.set_column(t.schema.get_field_index("fare_amount"), "fare_amount", fares)
    path = tmp_path / "yellow_tripdata_2021-10.parquet"
    pq.write_table(t, path)
    with pytest.raises(DataError) as info:
        read_month(str(path), "2021-10", ["fare_amount"])
    msg = str(info.value)
    assert str(path) in msg and "(2021-10)" in msg and "column fare_amount" in msg and "'twelve'" in msg


def test_missing_column_in_file_is_schema_error(tmp_path):
    path = tmp_path / "yellow_tripdata_2015-01.parquet"
    shutil.copyfile(DATA / "tlc_latlon_2015-01.parquet", path)
    with pytest.raises(SchemaError, match=r"\(2015-01\): no source column for canonical pickup_location_id"):
        read_month(str(path), "2015-01", ["fare_amount", "pickup_location_id"])


def test_read_part_names_what_needs_a_missing_column():
    info = inspect_input(str(DATA / "tlc_latlon_2015-01.parquet"), "2015-01")
    needs = {"fare_amount": ["target high_tip"], "pickup_location_id": ["PULocationID"]}
    with pytest.raises(SchemaError) as exc:
        read_part(plan_parts(info)[0], needs)
    msg = str(exc.value)
    assert "(2015-01): no source column for canonical pickup_location_id (needed by PULocationID)" in msg
    assert "not the taxi-zone IDs" in msg
    ok = read_part(plan_parts(info)[0], {"fare_amount": ["target high_tip"], "pickup_longitude": ["x"]})
    assert ok.column_names == ["fare_amount", "pickup_longitude"]


def test_empty_inputs_give_empty_canonical_tables(tmp_path):
    cols = ["pickup_datetime", "fare_amount", "store_and_fwd_flag"]
    zero_rows = tmp_path / "zero.parquet"
    pq.write_table(pq.read_table(SNAKE).slice(0, 0), zero_rows)
    empty_csv = tmp_path / "empty.csv"
    empty_csv.write_bytes(b"")
    header_only = tmp_path / "header.csv"
    header_only.write_text("VendorID,tpep_pickup_datetime,fare_amount,store_and_fwd_flag\n")
    empty_parquet = tmp_path / "empty.parquet"
    empty_parquet.write_bytes(b"")
    for path in (zero_rows, empty_csv, header_only, empty_parquet):
        info = inspect_input(str(path), "2020-01")
        assert info.rows in (0, None)
        out = read_month(str(path), "2020-01", cols)
        assert out.num_rows == 0 and out.schema == canonical_arrow_schema(cols), path.name


def test_plan_parts_groups_row_groups(tmp_path):
    t = pq.read_table(SNAKE)
    path = tmp_path / "many.parquet"
    pq.write_table(t, path, row_group_size=50)  # 10 row groups
    info = inspect_input(str(path), "2018-01")
    assert info.row_groups == (50,) * 10
    parts = plan_parts(info, target_rows=120, storage_options={"anon": False})
    assert [p.row_groups for p in parts] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [p.index for p in parts] == [0, 1, 2, 3, 4] and all(p.rows == 100 for p in parts)
    assert parts[0].storage_options == {"anon": False}
    assert [p.row_groups for p in plan_parts(info, target_rows=10)] == [(i,) for i in range(10)]
    assert len(plan_parts(info)) == 1
    whole = read_month(str(SNAKE), "2018-01", COLS)
    assert_tables_equal(pa.concat_tables([read_part(p, COLS) for p in parts]), whole)


def test_csv_and_parquet_of_one_month_are_identical(tmp_path):
    (tmp_path / "pq").mkdir()
    (tmp_path / "csv").mkdir()
    paths_pq = _months_dir(tmp_path / "pq")
    paths_csv = _months_dir(tmp_path / "csv", "csv")
    for month in paths_pq:
        a = read_month(str(paths_pq[month]), month, COLS)
        b = read_month(str(paths_csv[month]), month, COLS)
        assert a.num_rows == 500
        assert_tables_equal(a, b)
    gz = tmp_path / "yellow_tripdata_2018-01.csv.gz"
    gz.write_bytes(gzip.compress(paths_csv["2018-01"].read_bytes()))
    assert_tables_equal(read_month(str(gz), "2018-01", COLS), read_month(str(paths_pq["2018-01"]), "2018-01", COLS))


def test_tlc_csv_quirks(tmp_path):
    # space-padded header, blank line after it, CRLF, trailing empty fields, string codes
    text = (
        "vendor_id, pickup_datetime, dropoff_datetime, passenger_count, payment_type, fare_amount\r\n"
        "\r\n"
        "CMT,2010-01-26 07:41:00,2010-01-26 07:45:00,1,CSH,4.5,,\r\n"
        "VTS,2010-01-30 23:31:00.250,2010-01-30 23:46:00,2,CRD,9.7,,\r\n"
    )
    path = tmp_path / "yellow_tripdata_2010-01.csv"
    path.write_text(text, newline="")
    cols = ["vendor_id", "pickup_datetime", "passenger_count", "payment_type", "fare_amount"]
    out = read_month(str(path), "2010-01", cols)
    assert out.to_pydict() == {
        "vendor_id": [1.0, 2.0],
        "pickup_datetime": [pa.scalar(1264491660, pa.timestamp("s")).as_py(), out["pickup_datetime"][1].as_py()],
        "passenger_count": [1.0, 2.0],
        "payment_type": [2.0, 1.0],
        "fare_amount": [4.5, 9.7],
    }
    assert out["pickup_datetime"][1].as_py().microsecond == 250000


def test_csv_with_text_in_fare_names_column(tmp_path):
    path = tmp_path / "yellow_tripdata_2012-05.csv"
    path.write_text("pickup_datetime,fare_amount,tip_amount\n2012-05-01 00:00:00,7.5,1\n2012-05-01 00:01:00,free,0\n")
    with pytest.raises(DataError) as info:
        read_month(str(path), "2012-05", ["pickup_datetime", "fare_amount"])
    msg = str(info.value)
    assert str(path) in msg and "(2012-05)" in msg and "column fare_amount" in msg and "free" in msg


# ---------------------------------------------------------------------------------------
# S3 (moto server)
# ---------------------------------------------------------------------------------------
def _no_secret(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    assert DUMMY_SECRET not in text


def test_s3_read_inspect_and_errors(s3_bucket, s3_endpoint):
    bucket, client = s3_bucket
    local = {"2018-01": SNAKE, "2021-10": TLC21}
    for month, path in local.items():
        client.upload_file(str(path), bucket, f"trips/yellow_tripdata_{month}.parquet")
    uris = resolve_uris(f"s3://{bucket}/trips/yellow_tripdata_{{month}}.parquet", ["2018-01"])
    opts = {"endpoint_url": s3_endpoint}
    for month in ("2018-01", "2021-10"):
        uri = f"s3://{bucket}/trips/yellow_tripdata_{month}.parquet"
        if month == "2018-01":
            assert uris[month] == uri
        info = inspect_input(uri, month, opts)
        assert info.rows == 500 and info.bytes == local[month].stat().st_size
        assert info.fingerprint == inspect_input(str(local[month]), month).fingerprint
        got = read_month(uri, month, COLS, storage_options={"client_kwargs": {"endpoint_url": s3_endpoint}})
        assert_tables_equal(got, read_month(str(local[month]), month, COLS))

    missing_key = f"s3://{bucket}/trips/yellow_tripdata_2020-04.parquet"
    with pytest.raises(SourceError) as info:
        read_month(missing_key, "2020-04", COLS, storage_options=opts)
    assert str(info.value).startswith(f"2020-04: cannot inspect {missing_key}: ")
    assert "not found" in str(info.value)
    _no_secret(info.value)

    with pytest.raises(SourceError) as info:
        read_part(Part(missing_key, "2020-04", "parquet", None, opts, 0), COLS)
    assert missing_key in str(info.value) and "2020-04" in str(info.value)
    _no_secret(info.value)

    missing_bucket = "s3://rapidseval-no-such-bucket/yellow_tripdata_2020-05.parquet"
    with pytest.raises(SourceError) as info:
        inspect_input(missing_bucket, "2020-05", opts)
    assert missing_bucket in str(info.value) and "2020-05" in str(info.value)
    assert "bucket does not exist" in str(info.value)
    assert info.value.__cause__ is not None
    _no_secret(info.value)


def test_s3_anonymous_access_and_access_denied(s3_bucket, s3_endpoint):
    bucket, client = s3_bucket
    client.upload_file(str(SNAKE), bucket, "private/yellow_tripdata_2018-01.parquet")
    client.upload_file(str(SNAKE), bucket, "public/yellow_tripdata_2018-01.parquet", ExtraArgs={"ACL": "public-read"})
    anon = {"anon": True, "endpoint_url": s3_endpoint}
    got = read_month(f"s3://{bucket}/public/yellow_tripdata_2018-01.parquet", "2018-01", COLS, storage_options=anon)
    assert got.num_rows == 500
    uri = f"s3://{bucket}/private/yellow_tripdata_2018-01.parquet"
    with pytest.raises(SourceError) as info:
        read_month(uri, "2018-01", COLS, storage_options=anon)
    assert str(info.value).startswith(f"2018-01: cannot inspect {uri}: access denied")
    _no_secret(info.value)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda: PermissionError("denied"), "access denied"),
        (lambda: _client_error("AccessDenied"), "access denied"),
        (lambda: _client_error("InvalidAccessKeyId"), "credentials rejected (InvalidAccessKeyId)"),
        (lambda: _botocore("NoCredentialsError")(), "no AWS credentials found"),
        (lambda: _botocore("EndpointConnectionError")(endpoint_url="https://s3.example"), "endpoint unreachable"),
        (lambda: TimeoutError(), "timed out"),
    ],
)
def test_s3_error_reasons(make, reason, aws_env):
    from rapidseval.io.sources import source_error

    try:
        try:
            raise make()
        except Exception as inner:
            raise OSError("wrapped") from inner
    except OSError as exc:
        err = source_error(exc, "s3://bucket/yellow_tripdata_2020-01.parquet", "2020-01")
    assert isinstance(err, SourceError)
    assert str(err).startswith("2020-01: cannot read s3://bucket/yellow_tripdata_2020-01.parquet: " + reason)
    assert DUMMY_SECRET not in str(err)


def _botocore(name):
    import botocore.exceptions

    return getattr(botocore.exceptions, name)


def _client_error(code):
    return _botocore("ClientError")({"Error": {"Code": code, "Message": "no"}}, "GetObject")


def test_s3_unreachable_endpoint_is_quick_source_error(aws_env):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    uri = "s3://bucket/yellow_tripdata_2020-06.parquet"
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        inspect_input(uri, "2020-06", {"endpoint_url": endpoint, "connect_timeout": 1})
    assert time.monotonic() - t0 < 20
    msg = str(info.value)
    assert msg.startswith(f"2020-06: cannot inspect {uri}: endpoint unreachable")
    _no_secret(info.value)


def test_s3_secret_in_job_options_is_refused(aws_env):
    with pytest.raises(SpecError, match="use the environment"):
        read_month("s3://b/k.parquet", "2020-01", COLS, storage_options={"secret": aws_env["AWS_SECRET_ACCESS_KEY"]})


# ---------------------------------------------------------------------------------------
# HTTP (local server)
# ---------------------------------------------------------------------------------------
def test_http_read_equals_local(http_server):
    paths = _months_dir(http_server.root)
    csv_path = http_server.root / "yellow_tripdata_2018-01.csv"
    pacsv.write_csv(pq.read_table(SNAKE), csv_path)
    for month, path in paths.items():
        uri = http_server.url_for(path.name)
        info = inspect_input(uri, month)
        assert info.rows == 500 and info.fingerprint == inspect_input(str(path), month).fingerprint
        assert_tables_equal(read_month(uri, month, COLS), read_month(str(path), month, COLS))
    assert http_server.requests.count("GET") > 0
    assert_tables_equal(
        read_month(http_server.url_for(csv_path.name), "2018-01", COLS), read_month(str(paths["2018-01"]), "2018-01", COLS)
    )


def test_http_row_group_parts_use_ranges(http_server):
    path = http_server.root / "many.parquet"
    pq.write_table(pq.read_table(SNAKE), path, row_group_size=100)
    uri = http_server.url_for(path.name)
    parts = plan_parts(inspect_input(uri, "2018-01"), target_rows=200)
    assert len(parts) == 3
    http_server.requests.clear()
    got = read_part(parts[1], COLS)
    assert got.num_rows == 200
    assert all(rng for method, _, rng, _ in http_server.requests.entries if method == "GET")
    assert_tables_equal(got, read_month(str(SNAKE), "2018-01", COLS).slice(200, 200))


@pytest.mark.parametrize(
    "name,reason",
    [("yellow_tripdata_2020-07.parquet", "not found (HTTP 404)"), ("forbidden_2020-07.parquet", "access denied (HTTP 403)")],
)
def test_http_errors_are_source_errors(http_server, name, reason):
    uri = http_server.url_for(name)
    with pytest.raises(SourceError) as info:
        read_month(uri, "2020-07", COLS)
    assert str(info.value) == f"2020-07: cannot inspect {uri}: {reason}"
    assert info.value.__cause__ is not None


def test_http_unreachable_is_source_error(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}/yellow_tripdata_2020-08.parquet"
    with pytest.raises(SourceError, match=r"^2020-08: cannot inspect http://127\.0\.0\.1:\d+/yellow_tripdata_2020-08\.parquet: endpoint unreachable"):
        inspect_input(uri, "2020-08", {"connect_timeout": 2})
    with pytest.raises(SourceError, match="2020-08.*endpoint unreachable"):
        read_month(uri, "2020-08", COLS, cache_dir=str(tmp_path / "cache"))
    assert not any(p.name.endswith(".part") for p in (tmp_path / "cache").iterdir())


def test_http_cache_second_run_downloads_nothing(http_server, tmp_path):
    paths = _months_dir(http_server.root)
    cache = str(tmp_path / "cache")
    uris = resolve_uris(http_server.url + "/yellow_tripdata_{month}.parquet", list(paths))
    first = {m: read_month(u, m, COLS, cache_dir=cache) for m, u in uris.items()}
    assert http_server.requests.count("GET") >= 2
    http_server.requests.clear()
    infos = {m: inspect_input(u, m, cache_dir=cache) for m, u in uris.items()}
    again = {m: read_month(u, m, COLS, cache_dir=cache) for m, u in uris.items()}
    assert http_server.requests.count() == 0  # no HEAD, no GET
    for m in uris:
        assert_tables_equal(again[m], first[m])
        assert infos[m].uri == uris[m] and infos[m].fingerprint == inspect_input(str(paths[m]), m).fingerprint
    # parts planned from a cached input read from the cache as well
    parts = plan_parts(infos["2018-01"])
    assert parts[0].cache_dir == cache
    assert_tables_equal(read_part(parts[0], COLS), first["2018-01"])
    assert http_server.requests.count() == 0
    fs, path = open_fs(uris["2018-01"], None, cache_dir=cache)
    assert path.startswith(cache)


def test_all_canonical_columns_via_http(http_server):
    path = http_server.root / "bq.parquet"
    shutil.copyfile(DATA / "bigquery_2022.parquet", path)
    mapping = map_columns(pq.read_schema(path).names, path=str(path))
    cols = [c for c in CANONICAL_COLUMNS if c in mapping.source_of]
    out = read_month(http_server.url_for(path.name), "2022-03", cols)
    assert out.schema == canonical_arrow_schema(cols) and out.num_rows == 500
