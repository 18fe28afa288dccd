"""The report's Checks and Slices: the page's sections, the terminal's lines and ``--json``, from
fabricated ``checks.parquet`` / ``slices.parquet`` / ``assertions.parquet`` (the schemas of
:mod:`rapidseval.checks`); every expectation is recomputed here from the tables with pandas."""

from __future__ import annotations

import html
import io
import json
import re
import shutil

import pandas as pd
import pytest
from rich.console import Console

from _report_runs import HOSTILE_DETAIL, add_checks, write_run
from rapidseval.checks import RUBRIC, check_row, checks_table
from rapidseval.report import load_run, print_summary, render_html, summarize

GROUP_ORDER = ("data", "model", "infrastructure", "monitoring")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study run directory with checks, slices and assertions, and its page."""
    d = add_checks(write_run(tmp_path_factory.mktemp("checks"), "study"))
    return d, render_html(load_run(d))


def _section(page: str, key: str) -> str:
    match = re.search(rf"<section id='{key}'>.*?</section>", page, re.S)
    assert match, f"no section {key}"
    return match.group(0)


def _terminal(run_dir, width: int = 400) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    print_summary(load_run(run_dir), console)
    return console.export_text()


def _line(text: str, prefix: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return lines[0]


def _html_rows(table_html: str) -> list[list[str]]:
    """The body rows of the tables in ``table_html``, as cell texts."""
    rows = [[html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table_html)]
    return [row for row in rows if row]


def test_groups_and_counts_follow_the_rubric(study):
    d, page = study
    checks = pd.read_parquet(d / "checks.parquet")
    checks["group"] = checks["kind"].map(RUBRIC)
    section = _section(page, "checks")
    assert re.findall(r"<section id='([a-z]+)'>", page) == ["summary", "checks", "replay", "monthly", "slices", "shift",
                                                            "lineage"]
    assert "<a href='#checks'>Checks</a>" in page and "<a href='#slices'>Slices</a>" in page
    total = checks["status"].value_counts()
    assert (f"{len(checks)} results of {len(checks[['check', 'kind']].drop_duplicates())} checks: "
            f"{total['pass']} pass · <span class='warn'>{total['warn']} warn</span> · "
            f"<span class='fail'>{total['fail']} fail</span>") in section
    # the counts table: one row per group, in the rubric's order
    counts_table = section.split("<h3")[0]
    rows = _html_rows(counts_table)
    assert [row[0] for row in rows] == list(GROUP_ORDER)
    for group, kinds, n_checks, passed, warned, failed in rows:
        of = checks[checks["group"] == group]
        assert kinds.split(", ") == list(dict.fromkeys(of["kind"]))
        assert int(n_checks) == len(of[["check", "kind"]].drop_duplicates())
        assert [int(passed), int(warned), int(failed)] == [int((of["status"] == s).sum()) for s in ("pass", "warn", "fail")]
    assert "id='checks-data'>Data and features (data, leakage): 10 pass" in section


def test_results_that_did_not_hold_are_listed_in_their_group_fail_first(study):
    d, page = study
    checks = pd.read_parquet(d / "checks.parquet")
    section = _section(page, "checks")
    for group in GROUP_ORDER:
        part = re.search(rf"<h3 id='checks-{group}'>.*?(?=<h3|<details)", section, re.S).group(0)
        listed = _html_rows(part)
        expected = checks[checks["kind"].map(RUBRIC).eq(group) & checks["status"].ne("pass")]
        assert sorted((r[1], r[0]) for r in listed) == sorted(zip(expected["check"], expected["status"]))
        statuses = [r[0] for r in listed]
        assert statuses == sorted(statuses, key=lambda s: s != "fail")  # fail first, then warn
        if expected.empty:
            assert "every result held" in part
    data = _html_rows(re.search(r"<h3 id='checks-data'>.*?(?=<h3)", section, re.S).group(0))
    # status, check, kind, model (blank for a data check), where (month, else window start), value, threshold, detail
    assert data[0] == ["fail", "fare_amount min", "data", "", "2020-03", "0.0100", "0.0000", "194 of 19,400 rows below 0"]
    assert data[1][:5] == ["fail", "fare_amount min", "data", "", "2020-03-02"]
    assert data[2][:5] == ["fail", "fare_leak auc", "leakage", "random_forest", ""]
    assert "<details><summary>every check result</summary>" in section


def test_failed_assertion_rows_are_listed(study):
    d, page = study
    section = _section(page, "checks")
    part = re.search(r"<h3 id='checks-assertions'>.*?</div>", section, re.S).group(0)
    assertions = pd.read_parquet(d / "assertions.parquet")
    failed = assertions[~assertions["passed"]]
    assert f"Assertion rows a model got wrong ({len(failed)})" in part
    assert _html_rows(part) == [["2", "random_forest", "1", "0.3100", "0", "<b>card</b>, airport flat fare"]]


def test_user_text_is_escaped(study):
    _d, page = study
    assert HOSTILE_DETAIL not in page and "<script" not in page.lower()
    assert html.escape(HOSTILE_DETAIL, quote=True) in page
    assert "&lt;b&gt;card&lt;/b&gt;" in page  # an assertion row's note


def test_long_lists_are_capped_and_say_how_many_more(tmp_path):
    from rapidseval.report._html import MAX_CHECK_ROWS

    d = write_run(tmp_path, "backtest")
    days = pd.date_range("2019-01-01", periods=MAX_CHECK_ROWS + 25, freq="D")
    rows = [check_row("fare_amount min", "data", "fail", held=False, window_start=day, value=0.1, threshold=0.0,
                      detail=f"day {i}") for i, day in enumerate(days)]
    checks_table(rows).to_parquet(d / "checks.parquet", index=False)
    page = render_html(load_run(d))
    assert re.findall(r"<section id='([a-z]+)'>", page) == ["summary", "checks", "monthly", "backtest", "lineage"]
    part = re.search(r"<h3 id='checks-data'>.*?(?=<details)", _section(page, "checks"), re.S).group(0)
    assert len(_html_rows(part)) == MAX_CHECK_ROWS and "25 more in checks.parquet" in part
    assert "<section id='slices'>" not in page  # a backtest has no slices
    line = _line(_terminal(d), "checks:")
    assert line == f"checks: 0 pass · 0 warn · {len(days)} fail — fail: fare_amount min (2019-01-01 +{len(days) - 1} more)"


def _slices_expected(d) -> tuple[pd.DataFrame, pd.DataFrame]:
    slices = pd.read_parquet(d / "slices.parquet")
    whole = slices.groupby(["slice_by", "model", "window_start"])[["tp", "fp", "fn"]].transform("sum")
    slices["whole_f1"] = 2 * whole.tp / (2 * whole.tp + whole.fp + whole.fn)
    worst = (slices[slices["supported"]].sort_values(["f1", "n"], ascending=[True, False])
             .groupby(["slice_by", "model"], sort=False).head(3))  # worst: 3 in the job's evaluation.slices
    return slices, worst


def test_slices_worst_and_worse_than_the_whole(study):
    d, page = study
    slices, worst = _slices_expected(d)
    s = summarize(load_run(d))["slices"]
    assert s["metric"] == "f1" and s["min_support"] == 200
    got = pd.DataFrame(s["worst"])
    for slice_by in slices["slice_by"].unique():
        want = worst[worst["slice_by"] == slice_by]
        have = got[got["slice_by"] == slice_by]
        assert have["slice"].tolist() == want["slice"].tolist()
        assert have["f1"].tolist() == want["f1"].tolist() and have["n"].tolist() == want["n"].tolist()
        assert have["whole_f1"].tolist() == pytest.approx(want["whole_f1"].tolist(), abs=1e-12)
    assert "EWR" not in got["slice"].tolist()  # below the minimum support: never ranked
    flagged = slices[slices["worse_than_all"]]
    assert [(r["slice"], r["window_start"][:10]) for r in s["worse_than_all"]] == \
           [(r.slice, str(r.window_start.date())) for r in flagged.itertuples()] == [("Staten Island", "2020-03-01")]
    assert s["unsupported"] == slices.loc[~slices["supported"], ["slice_by", "slice"]].drop_duplicates().shape[0]

    section = _section(page, "slices")
    borough = re.search(r"<h3>PULocationID/taxi_zone_borough</h3>.*?(?=<h3>)", section, re.S).group(0)
    top = _html_rows(borough.split("Significantly worse")[0])
    assert [r[:3] for r in top] == [[r.slice, r.window_start.strftime("%Y-%m"), f"{r.n:,}"]
                                    for r in worst[worst["slice_by"] == "PULocationID/taxi_zone_borough"].itertuples()]
    assert "Significantly worse than the whole: 1</p>" in borough
    assert "Below the minimum support of 200 rows in a window, so not ranked: EWR (2 windows, at most 40 rows)" in borough
    assert "<details><summary>every slice and window</summary>" in section


def test_terminal_lines(study):
    d, _page = study
    text = _terminal(d)
    assert _line(text, "checks:") == ("checks: 14 pass · 3 warn · 3 fail — fail: fare_amount min (2020-03 +1 more), "
                                      "fare_leak auc (random_forest)")
    slices, worst = _slices_expected(d)
    staten = worst.iloc[0]
    line = _line(text, "slices:")
    assert line.startswith(f"slices: worst f1 PULocationID/taxi_zone_borough=Staten Island {staten.f1:.2f} (n 812, 2020-03), ")
    assert line.endswith(f"· significantly worse than the whole: 1 (PULocationID/taxi_zone_borough=Staten Island "
                         f"{staten.f1:.2f} (n 812, 2020-03))")
    assert line.count("=") == 1 + 3  # three worst slices, each named once, then the one worse than the whole


def test_terminal_counts_slices_worse_in_several_windows_once_and_their_windows(study, tmp_path):
    # "significantly worse than the whole: 21 (A, B, C +2 more)" read as 21 slices; there were 5, in 21 windows
    d = tmp_path / "run"
    shutil.copytree(study[0], d)
    slices = pd.read_parquet(d / "slices.parquet")
    staten = slices["slice"].eq("Staten Island") & slices["supported"]
    assert staten.sum() >= 2
    slices.loc[staten, "worse_than_all"] = True
    slices.to_parquet(d / "slices.parquet", index=False)
    line = _line(_terminal(d), "slices:")
    assert f"· significantly worse than the whole: 1 slice in {staten.sum()} slice-windows (PULocationID/" \
           f"taxi_zone_borough=Staten Island " in line and line.count("Staten Island") == 2


def test_terminal_names_warnings_when_nothing_failed_and_counts_the_rest(tmp_path):
    d = write_run(tmp_path, "study")
    rows = [check_row(f"column_{i} max", "data", "warn", held=False, month="2020-03", value=1.0, threshold=0.0)
            for i in range(5)] + [check_row("assertions", "assertions", "fail", held=True, model="rf", value=0, threshold=0)]
    checks_table(rows).to_parquet(d / "checks.parquet", index=False)
    assert _line(_terminal(d), "checks:") == ("checks: 1 pass · 5 warn · 0 fail — warn: column_0 max (2020-03), "
                                              "column_1 max (2020-03), column_2 max (2020-03) +2 more checks")
    checks_table(rows[-1:]).to_parquet(d / "checks.parquet", index=False)
    assert _line(_terminal(d), "checks:") == "checks: 1 pass · 0 warn · 0 fail"


def test_json_summary_has_checks_and_slices(study):
    d, _page = study
    s = summarize(load_run(d))
    json.dumps(s, allow_nan=False)
    checks = pd.read_parquet(d / "checks.parquet")
    c = s["checks"]
    assert (c["pass"], c["warn"], c["fail"]) == tuple(int((checks["status"] == x).sum()) for x in ("pass", "warn", "fail"))
    assert [r["check"] for r in c["failed"]] == ["fare_amount min", "fare_amount min", "fare_leak auc"]
    assert {r["status"] for r in c["failed"]} == {"fail"} and {r["status"] for r in c["warned"]} == {"warn"}
    assert c["failed"][0]["month"] == "2020-03" and c["failed"][1]["window_start"] == "2020-03-02T00:00:00"
    assert c["failed"][0]["model"] is None and c["failed"][2]["group"] == "data"
    assert c["groups"]["monitoring"] == {"pass": 0, "warn": 1, "fail": 0, "checks": 1}
    assert set(s["slices"]) >= {"worst", "worse_than_all"}


def test_several_models_and_another_metric(tmp_path):
    from _report_runs import slices_table

    d = add_checks(write_run(tmp_path, "old"), checks=False, assertions=False,
                   slice_settings={"metric": "precision", "worst": 2})
    slices = slices_table(models=("rf_small", "rf_large"), metric="precision")
    slices.to_parquet(d / "slices.parquet", index=False)
    s = summarize(load_run(d))["slices"]
    assert "checks" not in summarize(load_run(d))
    got = pd.DataFrame(s["worst"])
    assert s["metric"] == "precision" and "precision" in got.columns
    for (slice_by, model), rows in got.groupby(["slice_by", "model"], sort=False):
        of = slices[(slices["slice_by"] == slice_by) & (slices["model"] == model) & slices["supported"]]
        assert rows["precision"].tolist() == sorted(of["precision"])[:2]
    page = render_html(load_run(d))
    assert "<section id='checks'>" not in page
    section = _section(page, "slices")
    assert "<h3>pickup_hour · rf_large</h3>" in section and "Worst 2 supported by precision" in section
    assert "<th>precision_low</th><th>precision_high</th><th>whole precision</th>" in section  # the table's own band
    source = slices.set_index(["slice_by", "model", "slice", "window_start"])
    keys = list(zip(got["slice_by"], got["model"], got["slice"], pd.to_datetime(got["window_start"])))
    assert got["precision_low"].tolist() == source.loc[keys, "value_low"].tolist()
    assert got["whole_precision"].tolist() == source.loc[keys, "all_value"].tolist()
    line = _line(_terminal(d), "slices:")
    assert line.startswith("slices: worst precision ") and ", rf_" in line  # the model is named beside the window


def test_no_supported_slice_is_said_not_ranked(tmp_path):
    d = add_checks(write_run(tmp_path, "old"), checks=False, assertions=False, slice_settings={"min_support": 100_000})
    slices = pd.read_parquet(d / "slices.parquet").assign(supported=False, worse_than_all=False)
    slices.to_parquet(d / "slices.parquet", index=False)
    assert _line(_terminal(d), "slices:") == ("slices: no slice has 100,000 rows in a window (the minimum support): "
                                              "none ranked · significantly worse than the whole: 0")
    assert summarize(load_run(d))["slices"]["worst"] == []
    assert "no supported slice to rank" in render_html(load_run(d))


@pytest.mark.parametrize("kind", ["old", "study"])
def test_a_run_without_checks_renders_as_before(tmp_path, study, kind):
    # the same run with and without the tables: the page differs by the two sections, their
    # links and their styles alone; the terminal by its two lines; --json by its two keys
    with_checks, page = study if kind == "study" else (add_checks(write_run(tmp_path / "a", kind)), None)
    without = shutil.copytree(with_checks, tmp_path / "b" / kind)
    for name in ("checks", "slices", "assertions"):
        (without / f"{name}.parquet").unlink()
    from rapidseval.report._html import _CHECKS_CSS

    page, plain = page or render_html(load_run(with_checks)), render_html(load_run(without))
    stripped = re.sub(r"\n<section id='(checks|slices)'>.*?</section>", "", page, flags=re.S)
    stripped = re.sub(r"<a href='#(checks|slices)'>[A-Za-z]+</a>", "", stripped).replace(_CHECKS_CSS, "")
    assert stripped == plain and "id='checks" not in plain and "td.fail" not in plain
    assert [line for line in _terminal(with_checks).splitlines() if not line.startswith(("checks:", "slices:"))] == \
           [line for line in _terminal(without).replace(str(without), str(with_checks)).splitlines()]
    full, bare = summarize(load_run(with_checks)), summarize(load_run(without))
    assert set(full) - set(bare) == {"checks", "slices"}
    assert {k: v for k, v in full.items() if k not in ("checks", "slices", "run_dir", "report")} == \
           {k: v for k, v in bare.items() if k not in ("run_dir", "report")}


def test_where_a_result_or_a_slice_was_judged_reads_as_a_month_a_day_or_a_minute():
    from rapidseval.report._checks import where_label, window_label

    assert where_label("2020-03", pd.Timestamp("2020-03-05")) == "2020-03"  # a month names itself
    assert where_label(pd.NA, pd.Timestamp("2020-03-05")) == "2020-03-05"
    assert where_label(None, pd.Timestamp("2020-03-05 13:00")) == "2020-03-05 13:00"
    assert where_label(None, pd.NaT) == ""  # the whole run (a leakage or consistency check)
    assert window_label(pd.Timestamp("2020-03-01"), pd.Timestamp("2020-04-01")) == "2020-03"
    assert window_label(pd.Timestamp("2020-03-01"), pd.Timestamp("2020-03-02")) == "2020-03-01"
    assert window_label(pd.Timestamp("2020-03-02 06:00"), pd.Timestamp("2020-03-02 07:00")) == "2020-03-02 06:00"
    assert window_label(pd.NaT) == "all"


def test_slices_without_the_judged_columns_rank_the_same(tmp_path):
    # a slices table of SLICE_COLUMNS alone (no metric/value/all_value): the whole is computed from
    # the counts, and it equals the one the slices stage writes
    from _report_runs import slices_table

    d = add_checks(write_run(tmp_path, "old"), checks=False, assertions=False)
    judged = summarize(load_run(d))["slices"]
    slices_table(judged=False).to_parquet(d / "slices.parquet", index=False)
    plain = summarize(load_run(d))["slices"]
    assert [(r["slice"], r["window_start"]) for r in plain["worst"]] == [(r["slice"], r["window_start"]) for r in judged["worst"]]
    assert [r["whole_f1"] for r in plain["worst"]] == pytest.approx([r["whole_f1"] for r in judged["worst"]], abs=1e-12)
    assert plain["worse_than_all"] == judged["worse_than_all"]


def test_a_check_failing_for_several_models_is_named_once_with_them(tmp_path):
    d = write_run(tmp_path, "old")
    rows = [check_row("assertions builtin:high_tip", "assertions", "fail", held=False, model=model, value=3, threshold=0)
            for model in ("random_forest", "baseline_logistic_regression")]
    rows += [check_row("baseline f1", "baseline", "fail", held=False, model="random_forest", month=month, value=0.6,
                       threshold=0.66) for month in ("2020-02", "2020-03")]
    checks_table(rows).to_parquet(d / "checks.parquet", index=False)
    assert _line(_terminal(d), "checks:") == (
        "checks: 0 pass · 0 warn · 4 fail — fail: assertions builtin:high_tip (random_forest, "
        "baseline_logistic_regression), baseline f1 (random_forest, 2020-02 +1 more)")


def test_a_backtest_check_failing_for_many_folds_names_three_and_counts_the_rest(tmp_path):
    # a backtest's baseline rows carry one model per fold ("fold 2020-01"): 27 folds listed them all on one line
    d = write_run(tmp_path, "old")
    folds = [f"2020-{m:02d}" for m in range(1, 8)]
    rows = [check_row("baseline accuracy", "baseline", "warn", held=False, model=f"fold {fold}", month=fold,
                      value=0.5, threshold=0.52) for fold in folds]
    checks_table(rows).to_parquet(d / "checks.parquet", index=False)
    assert _line(_terminal(d), "checks:") == (
        "checks: 0 pass · 7 warn · 0 fail — warn: baseline accuracy (fold 2020-01, fold 2020-02, "
        "fold 2020-03 +4 more models, 2020-01 +6 more)")
