"""The one confusion-count engine (rapidseval.core.confusion) against scikit-learn's
``confusion_matrix`` per key, on any keys: negative, small, sparse, one or many."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix

from rapidseval.core.confusion import (
    CODES,
    DENSE_KEY_LIMIT,
    KeyedCounts,
    confusion_codes,
    count_by_key,
    count_codes,
    group_keys,
    sum_by_key,
)


def _sklearn_counts(keys, y_true, y_pred) -> dict[int, list[int]]:
    """Per key, ``[tn, fp, fn, tp]`` from ``sklearn.metrics.confusion_matrix``."""
    out = {}
    for key in np.unique(keys):
        sel = keys == key
        out[int(key)] = confusion_matrix(y_true[sel], y_pred[sel], labels=[0, 1]).ravel().tolist()
    return out


def _engine_counts(table: KeyedCounts) -> dict[int, list[int]]:
    return {int(k): row.tolist() for k, row in zip(table.keys, table.counts)}


#: key ranges that take each path of the engine: own position (small non-negative keys),
#: dense with an offset (negative keys), sorted unique (a range wider than the dense limit)
KEY_RANGES = [(0, 40), (-30, 30), (DENSE_KEY_LIMIT - 5, DENSE_KEY_LIMIT + 5), (-(10**12), 10**12)]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=200),
    key_range=st.sampled_from(KEY_RANGES),
    dense_limit=st.sampled_from([None, 1, 64]),
    label_dtype=st.sampled_from(["bool", "int8", "int64", "float64"]),
    overwrite=st.booleans(),
)
def test_counts_per_key_equal_sklearn_confusion_matrix(rows, key_range, dense_limit, label_dtype, overwrite):
    lo, hi = key_range
    slots = np.array([lo, hi, (lo + hi) // 2, lo + 1], dtype="int64")
    keys = slots[np.array([r[0] for r in rows])]
    y_true = np.array([r[1] for r in rows]).astype(label_dtype)
    y_pred = np.array([r[2] for r in rows])
    expected = _sklearn_counts(keys, y_true.astype(int), y_pred.astype(int))

    table = count_by_key(keys.copy(), confusion_codes(y_true, y_pred), dense_limit=dense_limit, overwrite_keys=overwrite)

    assert table.keys.dtype == np.int64 and table.counts.dtype == np.int64
    assert list(table.keys) == sorted(expected), "only the keys with rows, ascending"
    assert _engine_counts(table) == expected
    assert table.counts.sum() == len(rows)


@settings(max_examples=50, deadline=None)
@given(
    keys=st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=100),
    dense_limit=st.sampled_from([1, 10**7]),
)
def test_grouping_dense_and_unique_agree(keys, dense_limit):
    keys = np.array(keys, dtype="int64")
    rng = np.random.default_rng(len(keys))
    codes = confusion_codes(rng.integers(0, 2, len(keys)), rng.integers(0, 2, len(keys)))
    groups = group_keys(keys, dense_limit=dense_limit)
    assert (groups.unique_keys is None) == (int(keys.max() - keys.min()) + 1 <= dense_limit)
    np.testing.assert_array_equal(groups.keys()[groups.index], keys)
    table = count_codes(groups, codes)
    assert table.shape == (groups.n_groups, 4) and table.sum() == len(keys)


def test_codes_name_the_confusion_cells():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 0, 1])
    codes = confusion_codes(y_true, y_pred)
    assert codes.dtype == np.int8
    assert [list(CODES)[c] for c in codes] == ["tn", "fp", "fn", "tp"]


def test_no_rows_give_an_empty_table():
    table = count_by_key(np.zeros(0, "int64"), np.zeros(0, "int8"))
    assert table.keys.shape == (0,) and table.counts.shape == (0, 4)


def test_counting_in_place_reuses_the_keys_only_when_allowed():
    keys = np.array([3, 3, 5], dtype="int64")
    codes = confusion_codes([1, 0, 1], [1, 1, 1])
    count_by_key(keys, codes)
    assert keys.tolist() == [3, 3, 5]
    table = count_by_key(keys, codes, overwrite_keys=True)
    assert table.column("tp").tolist() == [1, 1] and table.column("fp").tolist() == [1, 0]


def test_sum_by_key_adds_tables_that_share_keys():
    keys, sums = sum_by_key(np.array([7, 2, 7]), np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 2]]))
    assert keys.tolist() == [2, 7] and sums.tolist() == [[0, 1, 0, 0], [1, 0, 0, 2]]


@pytest.mark.cupy
def test_counts_on_cupy_equal_numpy(cp):
    rng = np.random.default_rng(5)
    n = 200_000
    for keys in (rng.integers(0, 500, n), rng.integers(-500, 500, n), rng.integers(0, 2**40, n) * 3):
        y_true, y_pred = rng.integers(0, 2, n).astype("int8"), rng.random(n) > 0.5
        host = count_by_key(keys, confusion_codes(y_true, y_pred))
        device = count_by_key(cp.asarray(keys), confusion_codes(cp.asarray(y_true), cp.asarray(y_pred)), xp=cp)
        np.testing.assert_array_equal(device.keys, host.keys)
        np.testing.assert_array_equal(device.counts, host.counts)
