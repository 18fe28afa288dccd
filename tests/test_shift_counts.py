"""Per-(day, value) counts: counted in pieces (row chunks, threads) they merge by addition into
exactly the counts of all rows at once, bit for bit (fill values, -0.0 and NaN included)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidseval.shift import DayCounts, count_days, day_value_counts
from rapidseval.shift._counts import MAX_DENSE_BINS, MIN_PIECE_ROWS, _count, _dense_plan, _Days

FILL = -1.0


def _same(a: DayCounts, b: DayCounts) -> bool:
    """Equal bit for bit (a NaN equals a NaN with the same bits)."""
    return (a.day.dtype == b.day.dtype and a.value.dtype == b.value.dtype and a.count.dtype == b.count.dtype
            and np.array_equal(a.day, b.day) and np.array_equal(a.value.view(np.uint32), b.value.view(np.uint32))
            and np.array_equal(a.count, b.count))


def _expected(day: np.ndarray, values: np.ndarray) -> DayCounts:
    """The counts by a plain dictionary: -0.0 counts as +0.0; NaN keeps its bits; sorted by day,
    then by value (NaN with the sign bit clear after +inf, with it set before -inf: the float
    order of the bits)."""
    bits = (values.astype(np.float32) + np.float32(0)).view(np.uint32)
    tally = Counter(zip(day.tolist(), bits.tolist()))

    def order(item):
        (d, b), _ = item
        return d, (~b & 0xFFFFFFFF) if b & 0x80000000 else b | 0x80000000

    items = sorted(tally.items(), key=order)
    return DayCounts(np.array([d for (d, _), _ in items], "int64"),
                     np.array([b for (_, b), _ in items], "uint32").view(np.float32),
                     np.array([c for _, c in items], "int64"))


def _values(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """One feature's float32 values of a given kind, with fill values, -0.0 and NaN planted."""
    if kind == "small_whole":  # dense, every day in one pass
        v = rng.integers(-1, 30, n).astype("float32")
    elif kind == "wide_whole":  # whole seconds: dense a few days at a time (MAX_DENSE_BINS)
        v = rng.integers(0, 400_000, n).astype("float32")
    elif kind == "cents":  # two decimals (distances, fares): dense at 100 steps per unit
        v = np.round(rng.lognormal(0, 1, n), 2).astype("float32")
    elif kind == "whole_then_fraction":  # whole bounds and head, a fraction inside: the dense pass gives way
        v = rng.integers(0, 50, n).astype("float32")
        v[rng.integers(n // 2, n, max(n // 1000, 1))] = 7.25
    else:  # continuous (sorted), with ties
        v = rng.lognormal(0, 1, n).astype("float32")
        v[::7] = v[0]
    planted = rng.integers(0, n, max(n // 50, 1))
    v[planted[0::3]] = FILL
    v[planted[1::3]] = -0.0
    if kind == "continuous":  # NaN: no dense bounds, sorted (its bits kept)
        v[planted[2::3]] = np.nan
    return v


def _days(rng: np.random.Generator, n: int, ndays: int, ordered: bool) -> np.ndarray:
    day = 18_262 + rng.integers(0, ndays, n)
    return np.sort(day) if ordered else day


KINDS = ["small_whole", "wide_whole", "cents", "whole_then_fraction", "continuous"]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3_000), ndays=st.integers(1, 40),
       kind=st.sampled_from(KINDS), cuts=st.lists(st.floats(0, 1), max_size=5))
def test_chunks_counted_apart_merge_into_the_counts_of_all_rows(seed, n, ndays, kind, cuts):
    rng = np.random.default_rng(seed)
    day, v = _days(rng, n, ndays, ordered=False), _values(rng, n, kind)
    bounds = [0, *sorted(int(c * n) for c in cuts), n]
    chunks = [day_value_counts(day[a:b], v[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    whole = day_value_counts(day, v)
    assert _same(whole, _expected(day, v))
    assert _same(DayCounts.merge(chunks), whole)
    assert _same(DayCounts.merge(chunks[::-1]), whole)  # in any order
    assert whole.n == n


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), pieces=st.integers(1, 3), ndays=st.integers(1, 35),
       threads=st.integers(2, 4), ordered=st.booleans())
def test_count_days_in_threads_equals_one_thread(seed, pieces, ndays, threads, ordered):
    """Threads split the sorted features' rows into day ranges (2+ days, MIN_PIECE_ROWS+ rows
    each): the counts are those of one thread, feature by feature, in the given order."""
    rng = np.random.default_rng(seed)
    n = pieces * MIN_PIECE_ROWS + int(rng.integers(0, MIN_PIECE_ROWS))
    day = _days(rng, n, ndays, ordered)
    cols = {kind: _values(rng, n, kind) for kind in KINDS[::-1]}
    one, many = count_days(day, cols, threads=1), count_days(day, cols, threads=threads)
    assert list(many) == list(cols)
    for f in cols:
        assert _same(many[f], one[f]), f
        assert many[f].n == n
    assert _same(one["continuous"], _expected(day, cols["continuous"]))


@given(seed=st.integers(0, 2**32 - 1), ndays=st.integers(1, 40), parts=st.integers(1, 6),
       ordered=st.booleans(), n=st.integers(0, 5_000), max_days=st.none() | st.integers(1, 12))
@settings(max_examples=40, deadline=None)
def test_day_ranges_hold_every_row_once_in_day_order(seed, ndays, parts, ordered, n, max_days):
    rng = np.random.default_rng(seed)
    day = _days(rng, n, ndays, ordered)
    days = _Days.of(day, np)
    if days is None:
        assert n == 0
        return
    ranges = days.split(parts, min_rows=1, max_days=max_days)
    if max_days is None:
        assert 1 <= len(ranges) <= min(parts, len(np.unique(day)))
    else:
        assert all(piece.ndays <= max_days for piece in ranges)
    seen = np.zeros(n, "int64")
    last_day = -1
    for piece in ranges:
        rows = np.arange(n)[piece.rows]
        seen[rows] += 1
        got = piece.offsets.astype("int64") + piece.first_day
        assert np.array_equal(got, day[rows])  # the rows' own days, in the rows' order
        assert got.min() > last_day and got.max() < piece.first_day + piece.ndays
        last_day = got.max()
    assert np.all(seen == 1)
    if max_days is None and len(ranges) > 1:  # about equal rows: no range holds more than its share plus one day's rows
        per_day = np.bincount(day - day.min())
        sizes = [int(np.arange(n)[p.rows].size) for p in ranges]
        assert max(sizes) <= n / len(ranges) + per_day.max()


def test_merge_of_disjoint_day_ranges_is_their_concatenation():
    """Pieces of ascending, disjoint day ranges (what threads count) merge without a sort; the
    result equals merging overlapping pieces of the same rows."""
    rng = np.random.default_rng(5)
    day = np.sort(18_262 + rng.integers(0, 20, 10_000))
    v = np.round(rng.normal(0, 2, 10_000), 2).astype("float32")
    v[::17] = -0.0
    cut = np.searchsorted(day, 18_272)
    by_days = DayCounts.merge([day_value_counts(day[:cut], v[:cut]), day_value_counts(day[cut:], v[cut:])])
    interleaved = DayCounts.merge([day_value_counts(day[0::2], v[0::2]), day_value_counts(day[1::2], v[1::2])])
    assert _same(by_days, day_value_counts(day, v)) and _same(interleaved, by_days)


def test_dense_plan_finds_the_decimal_places_or_declines():
    """Whole numbers count at 1 step per unit, cents at 100; values that are no short decimal,
    NaN or infinities, and bins wider than one day's budget go to the sort."""
    f32 = lambda *v: np.array(v, dtype="float32")  # noqa: E731
    assert _dense_plan(f32(-1, 0, 3, 17)).scale == 1.0
    cents = _dense_plan(f32(-1, 0.25, 3.1, 150.0))
    assert (cents.scale, cents.first_code, cents.span) == (100.0, -100, 15_101)
    assert _dense_plan(f32(0.1, 1 / 3)) is None
    assert _dense_plan(f32(1, np.nan)) is None and _dense_plan(f32(1, np.inf)) is None
    assert _dense_plan(f32(0, MAX_DENSE_BINS)) is None


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("fraction_late", [False, True])
def test_dense_counts_a_few_days_at_a_time_exactly(ordered, fraction_late):
    """Bins of every day would exceed MAX_DENSE_BINS: the dense pass runs range by range (a
    slice of the rows when the days are in order, a mask otherwise); a fraction in a late
    range sends the whole feature to the sort.  Either way: the plain count."""
    rng = np.random.default_rng(11)
    n, ndays = 60_000, 30
    day = _days(rng, n, ndays, ordered)
    v = rng.integers(0, 400_000, n).astype("float32")
    v[::13], v[5::17] = FILL, -0.0
    if fraction_late:
        v[np.argmax(day)] = 0.5
    plan = _dense_plan(v)
    assert plan is not None and plan.span * ndays > MAX_DENSE_BINS
    assert _same(_count(_Days.of(day, np), v, np, plan), _expected(day, v))
