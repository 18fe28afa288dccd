"""Slices (``evaluation.slices``): metrics per slice and window equal sklearn's on the same rows,
add up to the job's own counts, and name a planted bad slice (and no uniform one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

import rapidseval
from rapidseval import get_backend
from rapidseval.checks import SLICE_COLUMNS
from rapidseval.checks.slices import SLICE_EXTRA_COLUMNS, SliceAccumulator, SliceDef, SliceReduce
from rapidseval.checks.zones import taxi_zone_borough, taxi_zone_lookup, taxi_zone_service_zone
from rapidseval.core.errors import SpecError
from rapidseval.data.synthetic import generate
from rapidseval.jobs.check_slices import slice_def
from rapidseval.spec import SliceSpec

TOL = 1e-12
CPU = get_backend("cpu")
BINS = (0.0, 1.0, 2.5, 6.0)
BOROUGH = slice_def(SliceSpec(by="PULocationID", mapping="taxi_zone_borough"))
DISTANCE = SliceDef("trip_distance", "trip_distance", bins=BINS)
HOUR = SliceDef("pickup_hour", "pickup_hour")


# -- the expected slice of a row, written independently of checks.slices -----------------------------
def _expected_label(sdef: SliceDef, value: float) -> str:
    if sdef.mapping is not None:
        return dict(sdef.mapping).get(value, sdef.unmapped)
    if value == -1.0:
        return "missing"
    if sdef.bins is not None:
        for a, b in zip(sdef.bins, sdef.bins[1:]):
            if a <= value < b:
                return f"[{a:g}, {b:g})"
        return "outside bins"
    return f"{value:g}"


def _frame(rng, n, *, days=21, hours=6):
    zones = rng.choice(np.array([-1, 1, 4, 132, 161, 264, 265, 300], dtype="float32"), n)
    distance = np.where(rng.random(n) < 0.05, -1.0, rng.exponential(2.5, n)).astype("float32")
    return pd.DataFrame({
        "PULocationID": zones, "trip_distance": distance,
        "pickup_hour": rng.integers(-1, hours, n).astype("float32"),
        "high_tip": rng.integers(0, 2, n).astype("int8"),
        "dropoff_datetime": pd.Timestamp("2020-01-20") + pd.to_timedelta(rng.integers(0, days * 86400, n), "s"),
    })


def _reduce_in_parts(reduce, frame, probas, thresholds, models, n_parts, **acc_opts):
    acc = SliceAccumulator(reduce, models, min_support=acc_opts.pop("min_support", 1), replicates=50, **acc_opts)
    bounds = np.linspace(0, len(frame), n_parts + 1).astype(int)
    for lo, hi in reversed(list(zip(bounds, bounds[1:]))):  # any order
        acc.add(reduce.reduce(frame.iloc[lo:hi], [p[lo:hi] for p in probas], thresholds, backend=CPU))
    return acc


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 2000), n_parts=st.integers(1, 5),
       window=st.sampled_from(["W", "M"]))  # day windows: the study test, against the replay's days
def test_every_slice_row_equals_sklearn_on_its_rows(seed, n, n_parts, window):
    rng = np.random.default_rng(seed)
    frame = _frame(rng, n)
    probas = [rng.random(n), np.round(rng.random(n), 1)]  # ties at the threshold: predicted positive is p > t
    thresholds = [0.5, 0.3]
    reduce = SliceReduce((BOROUGH, DISTANCE, HOUR), "high_tip", window=window)
    table = _reduce_in_parts(reduce, frame, probas, thresholds, ["a", "b"], n_parts).table()
    assert list(table.columns) == SLICE_COLUMNS + SLICE_EXTRA_COLUMNS
    starts = frame["dropoff_datetime"].dt.to_period(window).dt.start_time.to_numpy()
    for sdef in reduce.slices:
        labels = np.asarray([_expected_label(sdef, float(v)) for v in frame[sdef.feature]])
        part = table[table["slice_by"] == sdef.label]
        assert part["n"].sum() == 2 * n  # every row in one slice, per model
        for m, (proba, t) in enumerate(zip(probas, thresholds)):
            rows = part[part["model"] == ["a", "b"][m]]
            assert len(rows) == len(set(zip(labels, starts)))  # exactly the slices and windows with rows
            for r in rows.itertuples():
                sel = (labels == r.slice) & (starts == r.window_start)
                y, pred = frame["high_tip"].to_numpy()[sel], proba[sel] > t
                assert r.n == sel.sum() and r.tp == (y & pred).sum() and r.tn == (~y.astype(bool) & ~pred).sum()
                assert abs(r.precision - precision_score(y, pred, zero_division=0)) <= TOL
                assert abs(r.recall - recall_score(y, pred, zero_division=0)) <= TOL
                assert abs(r.f1 - f1_score(y, pred, zero_division=0)) <= TOL
                assert abs(r.accuracy - accuracy_score(y, pred)) <= TOL
                assert abs(r.positive_rate - y.mean()) <= TOL
                win = starts == r.window_start
                assert r.all_n == win.sum()
                assert abs(r.all_value - f1_score(frame["high_tip"].to_numpy()[win], proba[win] > t,
                                                  zero_division=0)) <= TOL
                assert 0 <= r.f1_low <= r.f1_high <= 1 and (r.value_low, r.value_high) == (r.f1_low, r.f1_high)


def test_labels_of_values_bins_and_mappings():
    values = np.array([3.0, 0.5, -1.0, 7.0, 2.5, np.inf], dtype="float32")
    codes, labels = HOUR.codes(values, fill_value=-1.0, xp=np)
    assert [labels[c] for c in codes] == ["3", "0.5", "missing", "7", "2.5", "inf"]
    codes, labels = DISTANCE.codes(values, fill_value=-1.0, xp=np)
    assert [labels[c] for c in codes] == ["[2.5, 6)", "[0, 1)", "missing", "outside bins", "[2.5, 6)",
                                          "outside bins"]
    codes, labels = BOROUGH.codes(np.array([132, 1, 264, 265, 0, 266, -1, 1.5], "float32"), fill_value=-1.0, xp=np)
    assert [labels[c] for c in codes] == ["Queens", "EWR", "Unknown", "N/A", "unknown", "unknown", "unknown",
                                          "unknown"]
    own = slice_def(SliceSpec(by="PULocationID", mapping={1: "airport", "132": "airport"}))  # YAML: 1 is a number
    codes, labels = own.codes(np.array([1, 132, 5], "float32"), fill_value=-1.0, xp=np)
    assert [labels[c] for c in codes] == ["airport", "airport", "other"]


def test_zones_lookup():
    lookup = taxi_zone_lookup()
    assert len(lookup) == 265 and lookup["LocationID"].tolist() == list(range(1, 266))
    borough = taxi_zone_borough()
    assert (borough[132], borough[1], borough[264], borough[265]) == ("Queens", "EWR", "Unknown", "N/A")
    assert taxi_zone_service_zone()[132] == "Airports"
    assert set(borough.values()) == {"EWR", "Queens", "Bronx", "Manhattan", "Staten Island", "Brooklyn",
                                     "Unknown", "N/A"}


# -- a planted bad slice, a uniform slicing ------------------------------------------------------
def _planted(rng, per_cell=1500):
    """Two months x three boroughs, a good model everywhere except Queens in February, where the
    labels are flipped; ``block`` slices every (month, borough) cell into 4 blocks of identical rows."""
    frames = []
    base_y = rng.integers(0, 2, per_cell // 4).astype("int8")
    base_p = np.where(rng.random(len(base_y)) < 0.9, base_y, 1 - base_y) * 0.8 + 0.1
    for month in ("2020-01-05", "2020-02-05"):
        for zone in (132.0, 161.0, 61.0):  # Queens, Manhattan, Brooklyn
            y = np.tile(base_y, 4)
            flipped = month.startswith("2020-02") and zone == 132.0
            frames.append(pd.DataFrame({
                "PULocationID": np.float32(zone), "block": np.repeat(np.arange(4), len(base_y)).astype("float32"),
                "high_tip": (1 - y if flipped else y).astype("int8"), "proba": np.tile(base_p, 4),
                "dropoff_datetime": pd.Timestamp(month)}))
    return pd.concat(frames, ignore_index=True)


def test_a_planted_bad_slice_is_named_and_a_uniform_one_is_not():
    frame = _planted(np.random.default_rng(3))
    block = SliceDef("block", "block")
    reduce = SliceReduce((BOROUGH, block), "high_tip", window="M")
    acc = _reduce_in_parts(reduce, frame, [frame["proba"].to_numpy()], [0.5], ["m"], 3, min_support=200)
    table = acc.table()
    bad = table[table["worse_than_all"]]
    assert bad[["slice_by", "slice"]].values.tolist() == [[BOROUGH.label, "Queens"]]
    assert bad["window_start"].tolist() == [pd.Timestamp("2020-02-01")]
    assert not table.loc[table["slice_by"] == "block", "worse_than_all"].any()
    assert (table.loc[table["slice_by"] == "block", "gap"].abs() <= TOL).all()  # identical blocks: the whole's f1
    rows = pd.DataFrame(acc.rows())
    assert len(rows) == 4 and set(rows["kind"]) == {"slices"} and set(rows["severity"]) == {"warn"}
    warned = rows[rows["status"] == "warn"]
    assert warned[["check", "month"]].values.tolist() == [[f"slices {BOROUGH.label}", "2020-02"]]
    queens = bad.iloc[0]
    assert warned["value"].iloc[0] == queens["f1"] and warned["threshold"].iloc[0] == queens["all_value"]
    assert "Queens" in warned["detail"].iloc[0] and "1 of 3" in warned["detail"].iloc[0]
    assert f"{BOROUGH.label}=Queens {queens['f1']:.4f} [" in warned["detail"].iloc[0]  # named as the summary does
    worst = acc.worst(2)
    assert worst["slice"].tolist()[0] == "Queens" and len(worst) == 2 and worst["supported"].all()


def _equal_slices(rng, *, days=60, slices=8, per_cell=800):
    """``slices`` slices of one model's quality (the same label and score law everywhere), a
    window a day for ``days`` days: the ground truth is that no slice is worse."""
    n = days * slices * per_cell
    y = rng.integers(0, 2, n).astype("int8")
    p = np.clip(0.5 + (y - 0.5) * 0.3 + rng.normal(0, 0.25, n), 0, 1)
    return pd.DataFrame({"zone": rng.integers(0, slices, n).astype("float32"), "high_tip": y, "proba": p,
                         "dropoff_datetime": pd.Timestamp("2020-01-01")
                         + pd.to_timedelta(rng.integers(0, days * 86400, n), "s")})


def test_slices_of_equal_quality_warn_at_most_the_stated_rate_per_window():
    """The verdict a user acts on is a warning per (slicing, model, window): on slices of equal
    quality it must stay near ``window_rate`` (the band-below-the-whole rule warned on ~8% of
    these windows); a slice made worse is still found."""
    reduce = SliceReduce((SliceDef("zone", "zone"),), "high_tip", window="D")
    warned = windows = 0
    for seed in range(5):
        frame = _equal_slices(np.random.default_rng(seed))
        acc = _reduce_in_parts(reduce, frame, [frame["proba"].to_numpy()], [0.5], ["m"], 2, min_support=200,
                               window_rate=0.01)
        rows = pd.DataFrame(acc.rows())
        warned += int((rows["status"] == "warn").sum())
        windows += len(rows)
    assert windows == 5 * 60
    assert warned / windows <= 0.02, f"{warned} of {windows} windows warned on slices of equal quality"
    # ground truth: zone 3's labels flipped for a fifth of its rows on day 10 -> named that day only
    frame = _equal_slices(np.random.default_rng(11))
    day10 = (frame["dropoff_datetime"].dt.day == 10) & (frame["zone"] == 3)
    flip = day10 & (np.random.default_rng(12).random(len(frame)) < 0.2)
    frame.loc[flip, "high_tip"] = 1 - frame.loc[flip, "high_tip"]
    acc = _reduce_in_parts(reduce, frame, [frame["proba"].to_numpy()], [0.5], ["m"], 2, min_support=200,
                           window_rate=0.01)
    bad = acc.table().query("worse_than_all")
    assert (bad["slice"] == "3").all() and pd.Timestamp("2020-01-10") in set(bad["window_start"])
    assert len(bad) <= 2


def test_min_support_leaves_small_slices_unjudged():
    frame = _planted(np.random.default_rng(4), per_cell=400)
    reduce = SliceReduce((BOROUGH,), "high_tip", window="M")
    acc = _reduce_in_parts(reduce, frame, [frame["proba"].to_numpy()], [0.5], ["m"], 2, min_support=401)
    table = acc.table()
    assert not table["supported"].any() and not table["worse_than_all"].any()
    assert table[["f1_low", "f1_high"]].isna().all().all()  # no bands where nothing is judged
    rows = pd.DataFrame(acc.rows())
    assert (rows["status"] == "pass").all()
    # said "no slice of 0 with at least 401 rows has its f1 95% band below all rows' ..."
    assert (rows["detail"] == "no slice has 401 rows in this window (the minimum support): none judged").all()


# -- through a study -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def months_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tlc-slices")
    generate(out, "2020-01", "2020-03", 3000, seed=11)
    return out


def _job(months_dir, out, slices):
    return {
        "name": "slices", "seed": 2, "backend": "cpu",
        "data": {"source": str(months_dir / "yellow_tripdata_{month}.parquet"), "start": "2020-01", "end": "2020-03",
                 "partition_rows": 10_000},
        "models": [{"name": "forest", "kind": "random_forest", "params": {"n_estimators": 5, "max_depth": 4}},
                   {"name": "logit", "kind": "logistic_regression", "params": {"C": 1.0}}],
        "evaluation": {"train": ["2020-01"], "test": ["2020-02"], "score": ["2020-03"],
                       "replay": {"months": ["2020-02", "2020-03"], "window": "D", "bands": None},
                       "shift": None, "slices": slices},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out), "report": False},
    }


SLICES = {"window": "M", "min_support": 300, "by": [
    {"by": "PULocationID", "mapping": "taxi_zone_borough"},
    {"by": "trip_distance", "bins": [0, 1, 2, 5, float("inf")]},
    {"by": "pickup_hour"}]}


def test_a_study_writes_slices_that_add_up_to_its_counts(months_dir, tmp_path):
    res = rapidseval.run(_job(months_dir, tmp_path / "r", SLICES))
    slices = pd.read_parquet(res.run_dir / "slices.parquet")
    assert list(slices.columns) == SLICE_COLUMNS + SLICE_EXTRA_COLUMNS
    assert set(slices["slice_by"]) == {"PULocationID/taxi_zone_borough", "trip_distance", "pickup_hour"}
    assert set(slices["model"]) == {"forest", "logit"}
    counts = ["n", "tp", "fp", "fn", "tn"]
    # slices are judged on held-out months only: no model's training month
    held_out = res.monthly[~res.monthly["month"].isin(res.monthly.loc[res.monthly["role"].str.contains("train"),
                                                                         "month"])]
    assert not held_out.empty and set(slices["window_start"].dt.strftime("%Y-%m")) == set(held_out["month"])
    monthly = held_out.groupby("model")[counts].sum()
    per_month = held_out.assign(window_start=pd.to_datetime(held_out["month"])).set_index(["model", "window_start"])
    for slice_by, part in slices.groupby("slice_by"):
        totals = part.groupby("model")[counts].sum()
        for model, row in monthly.iterrows():  # every row of every held-out month, in one slice each
            assert totals.loc[model].tolist() == row.tolist(), (slice_by, model)
        # month by month: a monthly slice window is the file's month, as monthly.parquet counts it
        # (a trip ending after midnight on the last day stays in its month; no stray window)
        by_window = part.groupby(["model", "window_start"])[counts].sum()
        assert sorted(by_window.index) == sorted(per_month.index), slice_by
        for key, row in per_month[counts].iterrows():
            assert by_window.loc[key].tolist() == row.tolist(), (slice_by, key)
    assert (slices["supported"] == (slices["n"] >= 300)).all()
    assert not (slices["worse_than_all"] & ~slices["supported"]).any()
    checks = res.checks[res.checks["kind"] == "slices"]
    assert len(checks) == len(slices.groupby(["slice_by", "model", "window_start"]))
    assert set(checks["status"]) <= {"pass", "warn"} and res.failed_checks.empty


def test_a_slice_of_no_feature_is_a_one_line_error(months_dir, tmp_path):
    job = _job(months_dir, tmp_path / "r", {"by": [{"by": "DOLocationID"}]})
    job["features"] = {"features": ["pickup_hour", "trip_distance", "PULocationID"]}
    with pytest.raises(SpecError) as err:
        rapidseval.load_job(job)
    assert "evaluation.slices.by.0.by" in str(err.value) and "DOLocationID" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    continuous = {"by": [{"by": "trip_distance"}]}
    with pytest.raises(SpecError, match=r"evaluation\.slices\.by\.0\.by: trip_distance is a continuous feature"):
        rapidseval.load_job(_job(months_dir, tmp_path / "r", continuous))
    with pytest.raises(SpecError, match="mapping: 'x' is not a number"):
        rapidseval.load_job(_job(months_dir, tmp_path / "r", {"by": [{"by": "PULocationID", "mapping": {"x": "y"}}]}))


# (the reduction on CuPy arrays: tests/test_cupy_checks.py, which the device's quick check runs)


def test_no_rows_gives_an_empty_typed_table_and_no_check_rows():
    reduce = SliceReduce((BOROUGH, HOUR), "high_tip", window="D")
    acc = SliceAccumulator(reduce, ["a"], min_support=1)
    empty = _frame(np.random.default_rng(1), 0)
    acc.add(reduce.reduce(empty, [np.zeros(0)], [0.5], backend=CPU))
    table = acc.table()
    assert table.empty and list(table.columns) == SLICE_COLUMNS + SLICE_EXTRA_COLUMNS
    assert str(table["n"].dtype) == "int64" and str(table["window_start"].dtype) == "datetime64[us]"
    assert acc.rows() == [] and acc.worst(3).empty
    with pytest.raises(ValueError, match="metric 'roc_auc' is not one of f1, precision, recall, accuracy"):
        SliceAccumulator(reduce, ["a"], min_support=1, metric="roc_auc")
