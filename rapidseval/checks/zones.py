"""The TLC taxi-zone lookup that ships with rapidseval: LocationID -> borough or service zone.

The lookup (``taxi_zone_lookup.csv``, public, from the NYC Taxi & Limousine Commission)
has 265 LocationIDs. Two of them are labels of the lookup itself, kept as they are:
264 is borough ``Unknown`` and 265 (outside of NYC) is borough ``N/A`` (read with
``keep_default_na=False``: "N/A" is a label there, not a missing value).

A value that is not one of the 265 LocationIDs (outside ``1..265``, not a whole number,
or the job's fill value for a missing zone) maps to :data:`UNMAPPED`, ``"unknown"``.
"""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

__all__ = ["ZONE_MAPPINGS", "UNMAPPED", "taxi_zone_lookup", "taxi_zone_borough", "taxi_zone_service_zone",
           "zone_mapping"]

#: the label of a value that is no LocationID of the lookup (or the fill value)
UNMAPPED = "unknown"


@functools.lru_cache(maxsize=1)
def taxi_zone_lookup() -> pd.DataFrame:
    """The lookup as shipped: LocationID (int64), Borough, Zone, service_zone (strings)."""
    with resources.files("rapidseval.checks").joinpath("taxi_zone_lookup.csv").open("rb") as f:
        table = pd.read_csv(f, keep_default_na=False, dtype={"Borough": str, "Zone": str, "service_zone": str})
    table["LocationID"] = table["LocationID"].astype("int64")
    return table


def _by_location(column: str) -> dict[int, str]:
    table = taxi_zone_lookup()
    return dict(zip(table["LocationID"].tolist(), table[column].tolist()))


def taxi_zone_borough() -> dict[int, str]:
    """LocationID -> Borough (``EWR``, ``Queens``, ..., ``Unknown`` for 264, ``N/A`` for 265)."""
    return _by_location("Borough")


def taxi_zone_service_zone() -> dict[int, str]:
    """LocationID -> service_zone (``EWR``, ``Boro Zone``, ``Yellow Zone``, ``Airports``, ``N/A``)."""
    return _by_location("service_zone")


#: the shipped mappings by the name ``evaluation.slices[].mapping`` gives them
ZONE_MAPPINGS = {"taxi_zone_borough": taxi_zone_borough, "taxi_zone_service_zone": taxi_zone_service_zone}


def zone_mapping(name: str) -> dict[int, str]:
    """A shipped mapping by name (:data:`ZONE_MAPPINGS`); ``KeyError`` naming the choices otherwise."""
    if name not in ZONE_MAPPINGS:
        raise KeyError(f"unknown mapping {name!r}; choose one of {', '.join(ZONE_MAPPINGS)}")
    return ZONE_MAPPINGS[name]()
