"""Month arithmetic and weekdays of rapidseval.core.time: the one copy every layer uses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rapidseval.core.errors import SpecError
from rapidseval.core.time import month_from_index, month_index, month_range, months_between, weekday


@given(st.integers(1, 9999), st.integers(1, 12))
def test_month_index_round_trips(year, month):
    name = f"{year:04d}-{month:02d}"
    assert month_from_index(month_index(name)) == name
    assert month_index(name) == year * 12 + month - 1


def test_months_between_counts_calendar_months():
    assert months_between("2020-01", "2020-01") == 0
    assert months_between("2019-11", "2020-02") == 3
    assert months_between("2020-02", "2019-11") == -3
    assert months_between("2020-01", "2020-12") == len(month_range("2020-01", "2020-12")) - 1
    with pytest.raises(SpecError, match="later month"):
        months_between("2020-01", "2020-13")


def test_weekday_is_monday_zero_on_numpy_and_ints():
    days = (np.array(["1970-01-01", "2020-03-02", "2020-03-08"], "datetime64[D]")).astype("int64")
    assert weekday(days).tolist() == [3, 0, 6]  # Thursday, Monday, Sunday
    assert weekday(int(days[1])) == 0
