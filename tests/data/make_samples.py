"""Rebuild the sample files in this directory from /work/shared/data/tlc-real.

    python tests/data/make_samples.py [SOURCE_DIR]

Real rows only: 500-row heads of real TLC samples, plus two files whose
*headers and value spellings* are those of TLC's 2009 and 2010-2014 files,
made by renaming and re-spelling the 2015 lat/lon sample (no 2009/2010 sample
exists in the shared data).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROWS = 500

HEADS = {
    "yellow_tripdata_sample_2018-01.parquet": "snake_case_2018-01.parquet",
    "gx_yellow_tripdata_sample_2021-10.parquet": "tlc_2021-10.parquet",
    "bq_yellow_trips_2022_sample.parquet": "bigquery_2022.parquet",
    "yellow_tripdata_sample_2015-01_legacy_latlon.parquet": "tlc_latlon_2015-01.parquet",
}


def _spell(codes: pa.Array, spellings: dict[int, list[str]]) -> pa.Array:
    """Codes -> words, cycling through each code's spellings (deterministic)."""
    out, seen = [], {}
    for c in codes.to_pylist():
        if c is None:
            out.append(None)
            continue
        words = spellings[c]
        k = seen.get(c, 0)
        seen[c] = k + 1
        out.append(words[k % len(words)])
    return pa.array(out, pa.string())


def _strings(ts: pa.ChunkedArray) -> pa.Array:
    return pc.strftime(pc.cast(ts, pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")


def main(src: Path) -> None:
    for name, out in HEADS.items():
        t = pq.read_table(src / name).slice(0, ROWS)
        pq.write_table(t, HERE / out, compression="zstd")

    t = pq.read_table(src / "yellow_tripdata_sample_2015-01_legacy_latlon.parquet").slice(0, ROWS)
    vendor = _spell(t["VendorID"].combine_chunks(), {1: ["CMT"], 2: ["VTS"]})

    # TLC 2009 layout (its Parquet stores the datetimes as strings)
    pay09 = _spell(
        t["payment_type"].combine_chunks(),
        {1: ["Credit", "CREDIT", "Cre"], 2: ["CASH", "Cash", "CAS"], 3: ["No Charge"], 4: ["Dispute"], 5: ["Unknown"]},
    )
    flag = pc.if_else(pc.equal(t["store_and_fwd_flag"], "Y"), 1.0, 0.0)
    t09 = pa.table(
        {
            "vendor_name": vendor,
            "Trip_Pickup_DateTime": _strings(t["tpep_pickup_datetime"]),
            "Trip_Dropoff_DateTime": _strings(t["tpep_dropoff_datetime"]),
            "Passenger_Count": t["passenger_count"],
            "Trip_Distance": t["trip_distance"],
            "Start_Lon": t["pickup_longitude"],
            "Start_Lat": t["pickup_latitude"],
            "Rate_Code": t["RateCodeID"],
            "store_and_forward": flag,
            "End_Lon": t["dropoff_longitude"],
            "End_Lat": t["dropoff_latitude"],
            "Payment_Type": pay09,
            "Fare_Amt": t["fare_amount"],
            "surcharge": t["extra"],
            "mta_tax": t["mta_tax"],
            "Tip_Amt": t["tip_amount"],
            "Tolls_Amt": t["tolls_amount"],
            "Total_Amt": t["total_amount"],
        }
    )
    pq.write_table(t09, HERE / "tlc2009style_2015-01.parquet", compression="zstd")

    # TLC 2010-2014 layout, as TLC's CSVs: space-padded header, blank second line
    pay10 = _spell(t["payment_type"].combine_chunks(), {1: ["CRD"], 2: ["CSH"], 3: ["NOC"], 4: ["DIS"], 5: ["UNK"]})
    t10 = pa.table(
        {
            "vendor_id": vendor,
            "pickup_datetime": _strings(t["tpep_pickup_datetime"]),
            "dropoff_datetime": _strings(t["tpep_dropoff_datetime"]),
            "passenger_count": t["passenger_count"],
            "trip_distance": t["trip_distance"],
            "pickup_longitude": t["pickup_longitude"],
            "pickup_latitude": t["pickup_latitude"],
            "rate_code": t["RateCodeID"],
            "store_and_fwd_flag": t["store_and_fwd_flag"],
            "dropoff_longitude": t["dropoff_longitude"],
            "dropoff_latitude": t["dropoff_latitude"],
            "payment_type": pay10,
            "fare_amount": t["fare_amount"],
            "surcharge": t["extra"],
            "mta_tax": t["mta_tax"],
            "tip_amount": t["tip_amount"],
            "tolls_amount": t["tolls_amount"],
            "total_amount": t["total_amount"],
        }
    )
    body = pa.BufferOutputStream()
    pacsv.write_csv(t10, body, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    header = ",".join(("" if i == 0 else " ") + n for i, n in enumerate(t10.column_names))
    with open(HERE / "tlc2010style_2015-01.csv", "wb") as f:
        f.write((header + "\r\n\r\n").encode())
        f.write(body.getvalue().to_pybytes())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data/tlc-real"))
