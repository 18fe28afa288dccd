"""What every section of a job shares: strictness, the bounds, and the small field checks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

from ..core.registry import SHIFT_STATISTICS
from ..core.time import check_month

__all__ = ["Section", "MAX_PERIOD_MONTHS", "MAX_JOB_BYTES", "MAX_ROWS", "MAX_SEED", "checked_month",
           "unique_sorted", "statistic_problem"]

#: longest data period a job may span (50 years): resources are bounded by the period
MAX_PERIOD_MONTHS = 600
#: largest job file read (job files are a few KiB)
MAX_JOB_BYTES = 1 << 20
#: most rows a synthetic month or a partition may ask for
MAX_ROWS = 100_000_000
#: largest seed (scikit-learn's random_state and NumPy's legacy seeding take 32 bits)
MAX_SEED = 2**32 - 1


class Section(BaseModel):
    """A section of a job: unknown fields refused, frozen, and no NaN or infinity in any number
    (a threshold of nan compares false everywhere)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def checked_month(value: str, where: str = "month") -> str:
    """``value`` if it is a ``YYYY-MM`` month (ValueError naming ``where`` otherwise)."""
    check_month(value, where)
    return value


def unique_sorted(months: list[str], where: str) -> list[str]:
    """``months`` if each appears once and they are in calendar order (ValueError naming ``where``)."""
    if len(set(months)) != len(months):
        dup = sorted(m for m, n in Counter(months).items() if n > 1)
        raise ValueError(f"{where} lists {', '.join(dup)} more than once")
    if months != sorted(months):
        raise ValueError(f"{where} must be in calendar order, got {', '.join(months)}")
    return months


def statistic_problem(names: Iterable[str], feature: str | None = None, kind: str | None = None) -> str | None:
    """What is wrong with shift statistic ``names`` (None when nothing): the one check of a statistic name.

    Every name must be registered (:data:`rapidseval.core.registry.SHIFT_STATISTICS`); with a
    ``kind``, every statistic must apply to that kind of feature. The message lists the choices.

    Parameters
    ----------
    names : statistic names as the job gives them.
    feature : the feature they are for, named in the message.
    kind : the feature's kind (categorical, integer, continuous), when the statistics are for one feature.
    """
    for name in names:
        if name not in SHIFT_STATISTICS:
            where = f" for {feature}" if feature else ""
            return f"unknown shift statistic {name!r}{where}; choose from {SHIFT_STATISTICS.choices()}"
        if kind is not None and kind not in SHIFT_STATISTICS[name].kinds:
            fitting = [s for s, statistic in SHIFT_STATISTICS.items() if kind in statistic.kinds]
            return f"shift statistic {name!r} does not apply to {feature} ({kind}); choose from {', '.join(fitting)}"
    return None
