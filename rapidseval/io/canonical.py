"""The canonical trip schema every TLC era and re-export is mapped to.

All downstream code (features, replay, shift) sees only these names and
dtypes, whatever file they came from.  Codes (vendor, rate code, zones,
payment type, passenger count) are float64 so that missing values are NaN on
every backend (pandas and cuDF alike) and int-vs-float exports agree.
"""

from __future__ import annotations

#: canonical column -> Arrow type name (pyarrow.type_for_alias)
CANONICAL_SCHEMA: dict[str, str] = {
    "vendor_id": "float64",
    "pickup_datetime": "timestamp[us]",
    "dropoff_datetime": "timestamp[us]",
    "passenger_count": "float64",
    "trip_distance": "float64",
    "pickup_longitude": "float64",
    "pickup_latitude": "float64",
    "dropoff_longitude": "float64",
    "dropoff_latitude": "float64",
    "rate_code_id": "float64",
    "store_and_fwd_flag": "string",
    "pickup_location_id": "float64",
    "dropoff_location_id": "float64",
    "payment_type": "float64",
    "fare_amount": "float64",
    "extra": "float64",
    "mta_tax": "float64",
    "tip_amount": "float64",
    "tolls_amount": "float64",
    "improvement_surcharge": "float64",
    "total_amount": "float64",
    "congestion_surcharge": "float64",
    "airport_fee": "float64",
}

CANONICAL_COLUMNS: tuple[str, ...] = tuple(CANONICAL_SCHEMA)
