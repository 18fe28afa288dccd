"""The one confusion-count engine: per-row confusion codes, counted per key.

Every confusion table in rapidseval (the replay's hourly summaries, the window
counts of the backtest, the metrics derived from them) comes from here.  A row's
outcome is one small integer code, ``2 * label + prediction``::

    0 = tn    1 = fp    2 = fn    3 = tp

so the four counts of every key (an hour, a window) come from a single
``bincount`` of ``group * 4 + code``.  Keys are grouped densely (``key - first``)
when their range is small, and by a sorted ``unique`` otherwise; both give the
keys in ascending order.  NumPy or CuPy: the array namespace comes from the
arrays themselves (:func:`rapidseval.core.arrays.array_namespace`), and the
tables come back to the host as int64.

>>> import numpy as np
>>> table = count_by_key(np.array([5, 5, 7]), confusion_codes([1, 0, 1], [1, 1, 0]))
>>> table.keys.tolist(), table.counts.tolist()
([5, 7], [[0, 1, 0, 1], [0, 0, 1, 0]])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import array_namespace, to_numpy

__all__ = [
    "CODES",
    "DENSE_KEY_LIMIT",
    "KeyGroups",
    "KeyedCounts",
    "confusion_codes",
    "group_keys",
    "count_codes",
    "count_by_key",
    "sum_by_key",
]

#: the confusion code of each outcome, and the column order of every count table here
CODES = {"tn": 0, "fp": 1, "fn": 2, "tp": 3}
#: keys in ``[0, DENSE_KEY_LIMIT)`` (hours or days since 1970) are counted at their own
#: position, with no offset pass; a bincount of ``4 * DENSE_KEY_LIMIT`` int64 is 128 MiB at most
DENSE_KEY_LIMIT = 1 << 22


def confusion_codes(y_true, y_pred, xp=None):
    """Per-row confusion code (int8): 0 = tn, 1 = fp, 2 = fn, 3 = tp.

    Parameters
    ----------
    y_true, y_pred : array-like
        Labels and predictions; any non-zero value (or ``True``) is the positive class.
    xp : module, optional
        ``numpy`` or ``cupy``; by default the namespace of ``y_true``.
    """
    xp = array_namespace(y_true) if xp is None else xp
    label = _as_int8_flags(xp.asarray(y_true), xp)
    prediction = _as_int8_flags(xp.asarray(y_pred), xp)
    return 2 * label + prediction


def _as_int8_flags(values, xp):
    """0/1 as int8: a view of a boolean array, ``values != 0`` otherwise."""
    return values.view(xp.int8) if values.dtype == bool else (values != 0).view(xp.int8)


@dataclass(frozen=True)
class KeyGroups:
    """Which group each row's key falls in.

    Attributes
    ----------
    index : array
        Per row, its group (``0 .. n_groups - 1``), groups in ascending key order.
    n_groups : int
        How many groups (dense: every key from ``first_key`` on, present or not).
    first_key : int
        Key of group 0.
    unique_keys : array or None
        The sorted distinct keys when grouped by ``unique``; ``None`` when dense.
    """

    index: object
    n_groups: int
    first_key: int
    unique_keys: object | None = None

    def keys(self, xp=np):
        """The key of each group, in the namespace of the rows."""
        if self.unique_keys is not None:
            return self.unique_keys
        return xp.arange(self.n_groups, dtype=xp.int64) + self.first_key


def group_keys(keys, *, dense_limit: int, xp=None) -> KeyGroups:
    """Group rows by an integer key: densely (``key - min``) when the keys span at most
    ``dense_limit`` values, by a sorted ``unique`` otherwise."""
    xp = array_namespace(keys) if xp is None else xp
    first = int(keys.min())
    span = int(keys.max()) - first + 1
    if span <= dense_limit:
        return KeyGroups(keys - first, span, first)
    unique_keys, inverse = xp.unique(keys, return_inverse=True)
    return KeyGroups(inverse.reshape(-1), int(unique_keys.shape[0]), first, unique_keys)


def count_codes(groups: KeyGroups, codes, xp=None):
    """``(n_groups, 4)`` counts of the codes per group (on the rows' device)."""
    xp = array_namespace(codes) if xp is None else xp
    flat = xp.bincount(groups.index * 4 + codes, minlength=4 * groups.n_groups)
    return flat.reshape(groups.n_groups, 4)


@dataclass(frozen=True)
class KeyedCounts:
    """Confusion counts per key, on the host.

    Attributes
    ----------
    keys : numpy.ndarray
        int64, ascending: the keys with at least one row.
    counts : numpy.ndarray
        int64 ``(len(keys), 4)``, columns in :data:`CODES` order (tn, fp, fn, tp).
    """

    keys: np.ndarray
    counts: np.ndarray

    def column(self, name: str) -> np.ndarray:
        """One count column by name (``"tp"``, ``"fp"``, ``"fn"`` or ``"tn"``)."""
        return self.counts[:, CODES[name]]

    @classmethod
    def empty(cls) -> KeyedCounts:
        return cls(np.zeros(0, dtype="int64"), np.zeros((0, 4), dtype="int64"))


def count_by_key(keys, codes, *, xp=None, dense_limit: int | None = None, overwrite_keys: bool = False) -> KeyedCounts:
    """Confusion counts per key of some rows: only the keys that have rows, ascending.

    Parameters
    ----------
    keys : array
        int64 key of each row (a window, an hour).
    codes : array
        Confusion code of each row (:func:`confusion_codes`).
    xp : module, optional
        ``numpy`` or ``cupy``; by default the namespace of ``keys``.
    dense_limit : int, optional
        Count densely when the keys span at most this many values (default: the number
        of rows, at least 2**20); by ``unique`` otherwise.
    overwrite_keys : bool
        ``keys`` may be used as scratch space (saves a copy the size of the rows when
        every key is in ``[0, DENSE_KEY_LIMIT)``).
    """
    xp = array_namespace(keys) if xp is None else xp
    if int(keys.shape[0]) == 0:
        return KeyedCounts.empty()
    first, last = int(keys.min()), int(keys.max())
    if 0 <= first and last < DENSE_KEY_LIMIT:
        table, table_keys = _count_at_own_position(keys, codes, first, last, xp, overwrite_keys)
    else:
        limit = max(int(keys.shape[0]), 1 << 20) if dense_limit is None else dense_limit
        groups = group_keys(keys, dense_limit=limit, xp=xp)
        table, table_keys = to_numpy(count_codes(groups, codes, xp)), to_numpy(groups.keys(xp))
    present = table.sum(axis=1) > 0
    return KeyedCounts(table_keys[present].astype("int64"), table[present].astype("int64"))


def _count_at_own_position(keys, codes, first: int, last: int, xp, overwrite_keys: bool):
    """Small non-negative keys (hours or days since 1970): ``bincount(key * 4 + code)``
    with no offset pass; the table starts at the first key."""
    if overwrite_keys:
        keys *= 4
        keys += codes
        flat = keys
    else:
        flat = keys * 4 + codes
    table = to_numpy(xp.bincount(flat, minlength=4 * (last + 1))).reshape(-1, 4)[first:]
    return table, np.arange(first, last + 1, dtype="int64")


def sum_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add host ``values`` (one per key, or rows of a 2-D table) that share a key.

    Returns the sorted distinct keys and their sums (what merges count tables by addition).
    """
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    if values.ndim == 1:
        return unique_keys, np.bincount(inverse, weights=values, minlength=len(unique_keys))
    out = np.zeros((len(unique_keys), values.shape[1]), dtype=values.dtype)
    np.add.at(out, inverse, values)
    return unique_keys, out
