"""Declared feature kinds, and alarms that explain themselves (what moved, with an effect size).

Explanations are checked against pandas / NumPy on the same generated rows: shares with
``value_counts(normalize=True)``, percentiles with ``numpy.quantile(method="inverted_cdf")``
(the stated definition), the effect with ``scipy.stats.ks_2samp`` or the total variation of
the shares; tolerance 1e-12 (shares and effects are ratios of exact integer counts).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from scipy import stats

from _report_runs import write_run
from rapidseval.shift._verdict import from_score
from rapidseval.core.errors import SpecError
from rapidseval.features import FEATURE_KINDS, FEATURES
from rapidseval.jobs.checks import drift_calculator, shift_calculator
from rapidseval.spec import load_job
from rapidseval.shift import (DEFAULT_STATISTICS, EXPLAIN_COLUMNS, KINDS, Dist, ShiftCalculator, alarmed_pairs,
                              day_value_counts, explain, explanation_lines)
from rapidseval.shift._explain import quantiles

D0 = int(np.datetime64("2020-01-01", "D").astype("int64"))  # a Wednesday
FILL = -1.0
CATS = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


def _rows(rng, days, per_day, *, moved_share=0.0, moved_to=5.0, shift=0.0, scale=1.0) -> pd.DataFrame:
    """Generated rows: a categorical code, a continuous measurement, an integer count; ``moved_share``
    of the rows moved to category ``moved_to``; the measurement shifted by ``shift`` and scaled."""
    day = np.repeat(np.asarray(days, dtype="int64"), per_day)
    n = len(day)
    cat = rng.choice(CATS, size=n, p=[0.4, 0.25, 0.2, 0.1, 0.05])
    cat = np.where(rng.random(n) < moved_share, moved_to, cat)
    cat = np.where(rng.random(n) < 0.02, FILL, cat)  # some missing, filled
    x = (rng.gamma(4.0, 1.5, size=n) * scale + shift).round(2)
    x = np.where(rng.random(n) < 0.01, FILL, x)
    k = rng.poisson(1.5, size=n).astype("float64")
    other = rng.normal(0, 1, size=n).round(3)
    return pd.DataFrame({"day": day, "cat": cat.astype("float32"), "x": x.astype("float32"), "k": k.astype("float32"),
                         "other": other.astype("float32")})


def _counts(df: pd.DataFrame) -> dict:
    return {f: day_value_counts(df["day"].to_numpy(), df[f].to_numpy()) for f in ("cat", "x", "k", "other")}


KINDS_OF = {"cat": "categorical", "x": "continuous", "k": "integer", "other": "continuous"}


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(14)
    ref = _rows(rng, np.arange(D0, D0 + 28), 400)
    calc = ShiftCalculator(list(KINDS_OF), kinds=KINDS_OF, frequency="D", calendar="none").fit(_counts(ref))
    return calc, ref, rng


def _explained(calc, cur):
    counts = _counts(cur)
    table = calc.calculate(counts).table
    return table, explain(calc, counts, table)


def test_categorical_explanation_equals_pandas_shares(fitted):
    calc, ref, rng = fitted
    cur = _rows(rng, [D0 + 40], 600, moved_share=0.3)
    table, ex = _explained(calc, cur)
    assert list(ex.columns) == EXPLAIN_COLUMNS
    rows = ex[ex["feature"] == "cat"]
    assert len(rows) == 3 and (rows["item"] == "category").all() and (rows["kind"] == "categorical").all()
    p = ref["cat"].value_counts(normalize=True)
    q = cur["cat"].value_counts(normalize=True)
    both = pd.concat([p, q], axis=1, keys=["p", "q"]).fillna(0.0)
    moved = (both["q"] - both["p"]).abs()
    # the three categories whose share moved most, largest first
    assert rows["category"].tolist() == moved.sort_values(ascending=False, kind="mergesort").index[:3].astype(float).tolist()
    for r in rows.itertuples():
        assert abs(r.reference_value - both.loc[r.category, "p"]) <= 1e-12
        assert abs(r.window_value - both.loc[r.category, "q"]) <= 1e-12
        assert abs(r.change - (both.loc[r.category, "q"] - both.loc[r.category, "p"])) <= 1e-12
    assert abs(rows["effect"].iloc[0] - 0.5 * moved.sum()) <= 1e-12
    assert (rows["effect_measure"] == "tvd").all()
    assert rows["category"].iloc[0] == 5.0 and rows["what"].iloc[0].startswith("5: ")


def test_numeric_explanation_equals_numpy_quantiles_and_scipy_ks(fitted):
    calc, ref, rng = fitted
    cur = _rows(rng, [D0 + 41], 600, shift=3.0)
    cur.loc[cur.index[:5], "x"] = np.float32(500.0)  # beyond the reference's range
    table, ex = _explained(calc, cur)
    rows = ex[ex["feature"] == "x"].set_index("item")
    assert {"p1", "p50", "p99", "out_of_range", "missing"} <= set(rows.index)
    a = ref.loc[ref["x"] != FILL, "x"].to_numpy("float64")
    b = cur.loc[cur["x"] != FILL, "x"].to_numpy("float64")
    for item, q in (("p1", 0.01), ("p50", 0.5), ("p99", 0.99)):
        assert rows.loc[item, "reference_value"] == np.quantile(a, q, method="inverted_cdf")
        assert rows.loc[item, "window_value"] == np.quantile(b, q, method="inverted_cdf")
    out = float(((b < a.min()) | (b > a.max())).mean())
    assert abs(rows.loc["out_of_range", "window_value"] - out) <= 1e-12 and out > 0
    assert abs(rows.loc["missing", "reference_value"] - (ref["x"] == FILL).mean()) <= 1e-12
    assert abs(rows.loc["missing", "window_value"] - (cur["x"] == FILL).mean()) <= 1e-12
    ks = stats.ks_2samp(ref["x"].to_numpy("float64"), cur["x"].to_numpy("float64")).statistic
    assert abs(rows["effect"].iloc[0] - ks) <= 1e-12 and (rows["effect_measure"] == "ks").all()


def test_integer_features_with_few_values_also_list_the_values_that_moved(fitted):
    calc, ref, rng = fitted
    cur = _rows(rng, [D0 + 42], 600)
    cur["k"] = np.where(np.random.default_rng(1).random(len(cur)) < 0.3, 0.0, cur["k"]).astype("float32")
    table, ex = _explained(calc, cur)
    rows = ex[ex["feature"] == "k"]
    assert not rows.empty and (rows["kind"] == "integer").all()
    values = rows[rows["item"] == "value"]
    assert values["category"].iloc[0] == 0.0
    p0, q0 = (ref["k"] == 0).mean(), (cur["k"] == 0).mean()
    assert abs(values["reference_value"].iloc[0] - p0) <= 1e-12 and abs(values["window_value"].iloc[0] - q0) <= 1e-12


def test_weekday_matched_reference_is_the_one_compared():
    """With calendar="weekday" a daily window is explained against the reference's same weekdays."""
    rng = np.random.default_rng(3)
    ref = _rows(rng, np.arange(D0, D0 + 28), 300)
    calc = ShiftCalculator(["cat", "x"], kinds=KINDS_OF, frequency="D").fit(_counts(ref))
    cur = _rows(rng, [D0 + 35], 500, moved_share=0.4, shift=2.0)  # a Wednesday
    counts = {f: _counts(cur)[f] for f in ("cat", "x")}
    table = calc.calculate(counts).table
    ex = explain(calc, counts, table, pairs=table[["reference", "window", "window_start", "window_end", "feature"]]
                 .drop_duplicates("feature"))
    same_day = ref[(ref["day"] - D0) % 7 == 0]  # the reference's Wednesdays
    x = ex[(ex["feature"] == "x") & (ex["item"] == "p50")]
    a = same_day.loc[same_day["x"] != FILL, "x"].to_numpy("float64")
    assert x["reference_value"].iloc[0] == np.quantile(a, 0.5, method="inverted_cdf")
    c = ex[(ex["feature"] == "cat")].iloc[0]
    assert abs(c.reference_value - (same_day["cat"] == c.category).mean()) <= 1e-12


def test_planted_category_and_location_shifts_come_first(fitted):
    calc, ref, rng = fitted
    cat_day = _rows(rng, [D0 + 43], 800, moved_share=0.25, moved_to=4.0)
    loc_day = _rows(rng, [D0 + 44], 800, shift=4.0)
    both = pd.concat([cat_day, loc_day], ignore_index=True)
    table, ex = _explained(calc, both)
    first = explanation_lines(ex).query("rank == 1").set_index("window")["feature"]
    assert first.to_dict() == {pd.Timestamp(D0 + 43, unit="D").strftime("%Y-%m-%d"): "cat",
                               pd.Timestamp(D0 + 44, unit="D").strftime("%Y-%m-%d"): "x"}
    lines = explanation_lines(ex)
    assert lines.groupby("window")["rank"].apply(lambda r: r.tolist() == list(range(1, len(r) + 1))).all()
    assert (lines.groupby("window")["effect"].apply(lambda e: e.is_monotonic_decreasing)).all()


def test_only_alarmed_pairs_are_explained_and_the_rule_is_one_function(fitted):
    calc, ref, rng = fitted
    cur = _rows(rng, [D0 + 45, D0 + 46], 500)
    table, ex = _explained(calc, cur)
    alarmed = table[table["alarm"]][["window", "feature"]].drop_duplicates()
    got = ex[["window", "feature"]].drop_duplicates()
    assert sorted(map(tuple, got.to_numpy())) == sorted(map(tuple, alarmed.to_numpy()))
    # a window-level verdict, where the table has one, gates the pairs
    gated = table.assign(alarm=True, window_alarm=table["window"] == table["window"].iloc[0])
    assert set(alarmed_pairs(gated)["window"]) == {table["window"].iloc[0]}
    assert alarmed_pairs(table.iloc[0:0]).empty and alarmed_pairs(None).empty


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 40) | st.floats(0, 100, allow_nan=False, width=32), min_size=1, max_size=120),
       st.sampled_from([0.01, 0.1, 0.25, 0.5, 0.9, 0.99]))
def test_quantiles_from_counts_are_numpys_inverted_cdf(sample, q):
    x = np.asarray(sample, dtype="float32").astype("float64")
    got = quantiles(Dist.from_sample(x), [q], fill=-1.0)[0]
    assert got == np.quantile(x, q, method="inverted_cdf")


# ---------------------------------------------------------------------------------------
# declared kinds
# ---------------------------------------------------------------------------------------
def test_registry_kinds_are_known_and_the_engine_defaults_to_them():
    assert set(FEATURE_KINDS) == set(FEATURES) and set(FEATURE_KINDS.values()) <= set(KINDS)
    calc = ShiftCalculator()
    for f, kind in FEATURE_KINDS.items():
        assert calc.kind_of(f) == kind and calc.statistics_for(f) == DEFAULT_STATISTICS[kind]
    assert calc.kind_of("not_a_taxi_column") == "continuous"


def test_kinds_declared_in_the_job_change_the_default_statistics():
    spec = load_job({"features": {"kinds": {"trip_distance": "categorical", "RatecodeID": "continuous"}}})
    kinds = spec.features.feature_kinds()
    assert kinds["trip_distance"] == "categorical" and kinds["RatecodeID"] == "continuous"
    assert kinds["PULocationID"] == FEATURE_KINDS["PULocationID"]
    calc = shift_calculator(spec.evaluation.shift, spec.features.features, kinds=kinds)
    assert calc.statistics_for("trip_distance") == DEFAULT_STATISTICS["categorical"]
    assert "wasserstein_norm" not in calc.statistics_for("trip_distance")
    if "ks" not in DEFAULT_STATISTICS["categorical"]:  # issue 14: no order-based statistic on categories
        assert "ks" not in calc.statistics_for("trip_distance")
    assert calc.statistics_for("RatecodeID") == DEFAULT_STATISTICS["continuous"]
    # per-feature statistics are judged by the declared kind
    ok = {"features": {"kinds": {"RatecodeID": "continuous"}},
          "evaluation": {"shift": {"per_feature": {"RatecodeID": ["wasserstein"]}}}}
    assert load_job(ok).evaluation.shift.per_feature == {"RatecodeID": ["wasserstein"]}
    with pytest.raises(SpecError, match=r"evaluation\.shift\.per_feature.*'wasserstein' does not apply to RatecodeID"):
        load_job({"evaluation": {"shift": {"per_feature": {"RatecodeID": ["wasserstein"]}}}})


def test_backtest_drift_calculator_gets_the_jobs_kinds():
    from rapidseval.spec import DriftSpec

    calc = drift_calculator(DriftSpec(statistics=["ks", "wasserstein_norm"]), ["trip_distance", "x"],
                            kinds={"trip_distance": "categorical"})
    assert calc.statistics_for("trip_distance") == ("ks",) and calc.statistics_for("x") == ("ks", "wasserstein_norm")


@pytest.mark.parametrize("kinds, pattern", [
    ({"RatecodeID": "nominal"}, r"features\.kinds: RatecodeID: unknown kind 'nominal'; choose one of "
                                r"categorical, integer, continuous"),
    ({"no_such": "integer"}, r"features: .*kinds: no_such not among the job's features; choose from pickup_weekday"),
])
def test_bad_kinds_are_a_spec_error_naming_the_field(kinds, pattern):
    with pytest.raises(SpecError, match=pattern):
        load_job({"features": {"kinds": kinds}})


def test_calculator_rejects_an_unknown_kind():
    with pytest.raises(SpecError, match=r"feature x: unknown kind 'ordinal'; choose one of categorical, integer, continuous"):
        ShiftCalculator(["x"], kinds={"x": "ordinal"})


# ---------------------------------------------------------------------------------------
# the terminal and the report
# ---------------------------------------------------------------------------------------
def _many_windows(n_windows: int, per_window: int) -> pd.DataFrame:
    rows = []
    for w in range(n_windows):
        start = pd.Timestamp("2020-03-01") + pd.Timedelta(days=w)
        for r in range(per_window):
            rows.append({"reference": "2020-01", "window": start.strftime("%Y-%m-%d"), "window_start": start,
                         "window_end": start + pd.Timedelta(days=1), "feature": f"f{r}", "kind": "categorical",
                         "rank": r + 1, "effect": 0.5 - 0.1 * r, "effect_noise": 0.01,
                         "effect_measure": "tvd", "item": "category",
                         "category": 2.0, "reference_value": 0.1, "window_value": 0.3, "change": 0.2,
                         "what": f"2: 10.0% → 30.0% (f{r})"})
    return pd.DataFrame(rows, columns=EXPLAIN_COLUMNS)


def test_terminal_shows_at_most_a_screenful_grouped_and_ranked(tmp_path):
    from rapidseval.report import load_run, print_summary, render_html, summarize

    d = write_run(tmp_path, "study")

    def terminal(explanation):
        explanation.to_parquet(d / "explain.parquet", index=False)
        console = Console(record=True, width=160, file=io.StringIO())
        run = load_run(d)
        print_summary(run, console)
        text = console.export_text()
        return run, text, [line for line in text.splitlines() if "→" in line]

    run, text, shown = terminal(_many_windows(8, 5))
    assert "what moved (40 alarmed features in 8 windows" in text
    assert len(shown) == 16  # a screenful: as many first-ranked features per window as 20 lines allow
    assert [s.split("(f")[1][0] for s in shown[:4]] == ["0", "1", "0", "1"]  # grouped by window, ranked
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in shown[:2]]
    assert cells[0][:2] == ["2020-03-01", "f0"] and cells[1][:2] == ["", "f1"]  # the window named once
    assert "... 24 more in explain.parquet and the report" in text
    assert summarize(run)["explain"]["more"] == 24
    page = render_html(run)
    block = page[page.index("id='what-moved'"):page.index("<figure", page.index("id='what-moved'"))]
    assert block.count("<li>") == 40 and "2020-03-01 against 2020-01" in block  # all of them, before the heatmaps
    assert block.index("(f0)") < block.index("(f1)")
    assert len(terminal(_many_windows(1, 6))[2]) == 6  # what fits is shown whole
    run, text, shown = terminal(_many_windows(30, 2))
    assert len(shown) == 20 and "... 40 more" in text  # one per window, the first 20 windows


def test_noise_level_is_the_null_mean_or_the_sampling_expectation(fitted):
    calc, ref, rng = fitted
    cur = _rows(rng, [D0 + 47], 600, moved_share=0.3, shift=3.0)
    table, ex = _explained(calc, cur)
    for feat, measure in (("cat", "tvd"), ("x", "ks")):
        row = table[(table["feature"] == feat) & (table["statistic"] == measure)]
        got = ex.loc[ex["feature"] == feat, ["effect", "effect_noise"]].iloc[0]
        # the calculator's calibrated null (learned on reference days, as size-standardised
        # scores) at this window's sizes, in the statistic's units
        score_mean = calc.null_.set_index(["feature", "statistic"]).loc[(feat, measure), "score_mean"]
        want = from_score(measure, score_mean, row["n_reference"].iloc[0], row["n_window"].iloc[0])
        assert got["effect_noise"] == pytest.approx(float(want), rel=1e-12)
        assert abs(got["effect"] - row["value"].iloc[0]) <= 1e-12  # the effect is that statistic's value


def test_noise_level_shrinks_with_the_window_like_the_statistic(fitted):
    """The noise of a week is the day-calibrated null at a week's size: the statistics shrink
    as 1/sqrt(rows), so a week's noise is well below a day's (it was the day's before)."""
    _, ref, rng = fitted
    weekly = ShiftCalculator(list(KINDS_OF), kinds=KINDS_OF, frequency="W", calendar="none").fit(_counts(ref))
    day_of, week_of = (calc for calc in (fitted[0], weekly))
    week0 = D0 + 49 - (D0 + 49 + 3) % 7  # a Monday: one whole week
    day = _explained(day_of, _rows(rng, [week0], 600, moved_share=0.3, shift=3.0))
    week = _explained(week_of, _rows(rng, range(week0, week0 + 7), 600, moved_share=0.3, shift=3.0))
    for feat in ("cat", "x"):
        noise = [ex.loc[ex["feature"] == feat, "effect_noise"].iloc[0] for _, ex in (day, week)]
        assert noise[1] < 0.6 * noise[0]


def test_sampling_expectation_of_the_total_variation_is_poissons():
    from scipy.stats import poisson

    from rapidseval.shift._explain import chance_effect

    p = np.array([0.5, 0.3, 0.15, 0.049, 0.001])
    ref = Dist(np.arange(5.0), np.rint(p * 1e7).astype("int64"))
    win = Dist(np.arange(5.0), np.array([300, 200, 80, 20, 0]))
    e = 1e7 * 600 / (1e7 + 600)
    k = np.arange(0, 2000)
    mad = [float(np.sum(np.abs(k - e * pk) * poisson.pmf(k, e * pk))) for pk in ref.weights / ref.total]
    assert chance_effect(ref, win, measure="tvd") == pytest.approx(0.5 * sum(mad) / e, rel=1e-9)
    assert chance_effect(ref, win, measure="ks") == pytest.approx(np.sqrt(np.pi / 2) * np.log(2) / np.sqrt(e), rel=1e-12)


def test_many_categories_do_not_outrank_a_real_shift_by_sampling_noise():
    """A 200-category code without a shift has a total variation of ~0.3 on 300 rows by chance alone;
    a location shift of half a standard deviation (KS ~0.2) must still rank first."""
    rng = np.random.default_rng(5)
    n_ref, n_win = 20 * 300, 300
    day = np.repeat(np.arange(D0, D0 + 20), 300)
    zone = rng.integers(1, 201, size=n_ref).astype("float32")
    x = rng.normal(0, 1, size=n_ref).astype("float32")
    ref = {"zone": day_value_counts(day, zone), "x": day_value_counts(day, x)}
    calc = ShiftCalculator(["zone", "x"], statistics=["ks"], kinds={"zone": "categorical"}, frequency="D",
                           calendar="none").fit(ref)
    wday = np.full(n_win, D0 + 30)
    cur = {"zone": day_value_counts(wday, rng.integers(1, 201, size=n_win).astype("float32")),
           "x": day_value_counts(wday, (rng.normal(0.5, 1, size=n_win)).astype("float32"))}
    table = calc.calculate(cur).table
    ex = explain(calc, cur, table, pairs=table.drop_duplicates("feature"))
    lines = explanation_lines(ex).set_index("feature")
    assert lines.loc["zone", "effect"] > lines.loc["x", "effect"]  # raw, the zone code looks larger
    assert lines.loc["x", "rank"] == 1 and lines.loc["zone", "rank"] == 2  # beyond chance, x moved
    assert abs(lines.loc["zone", "effect"] - lines.loc["zone", "effect_noise"]) < 0.05


def test_a_run_directory_without_the_explanation_still_renders(tmp_path):
    from rapidseval.report import load_run, print_summary, render_html

    d = write_run(tmp_path, "study")
    (d / "explain.parquet").unlink()  # a run directory from before explain.parquet
    run = load_run(d)
    page = render_html(run)
    assert "id='what-moved'" not in page and "id='plot-shift-0'" in page
    console = Console(record=True, width=160, file=io.StringIO())
    print_summary(run, console)
    assert "what moved" not in console.export_text()
