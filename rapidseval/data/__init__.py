"""The synthetic TLC-like trip generator (:mod:`rapidseval.data.synthetic`) and the calibration it
reads (``calibration.json``, re-derived from real samples by ``tools/calibrate.py``).

Sources, schema eras and readers are the io layer's (:mod:`rapidseval.io`).
"""

from __future__ import annotations
