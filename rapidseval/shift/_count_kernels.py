"""Compiled counting pass of the dense path of per-(day, value) counts (see :mod:`._counts`)."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fixed_point_day_counts"]


@njit(cache=True, nogil=True)
def fixed_point_day_counts(d, values, scale, lo, span, out):
    """``out[d[i] * span + code - lo] += 1`` with ``code = rint(values[i] * scale)`` for every
    row, in one pass, while each value is exactly ``float32(code / scale)`` (a decimal with
    ``scale`` steps per unit: ``scale = 1`` for whole numbers, 100 for cents) and its code lies
    in ``[lo, lo + span)``; False at the first value that is not (``out`` is then incomplete).
    ``-0.0`` counts as 0."""
    whole = scale == 1.0
    for i in range(values.shape[0]):
        v = values[i]
        code = np.rint(np.float64(v) * scale)
        if not (code >= lo and code < lo + span):  # NaN fails here too
            return False
        if np.float32(code if whole else code / scale) != v:  # (x / 1.0 == x: the division spared)
            return False
        out[d[i] * span + (np.int64(code) - lo)] += 1
    return True
