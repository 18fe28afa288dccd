"""Comparison helpers shared by the tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def assert_tables_equal(a: pa.Table, b: pa.Table) -> None:
    """Same schema and values (NaN equals NaN)."""
    assert a.schema == b.schema
    for name in a.column_names:
        x, y = a[name], b[name]
        if pa.types.is_floating(x.type):
            np.testing.assert_array_equal(x.to_numpy(), y.to_numpy(), err_msg=name)
        else:
            assert x.to_pylist() == y.to_pylist(), name
