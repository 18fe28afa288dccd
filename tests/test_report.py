"""report.html, the terminal summary and --json, for each job kind, from run tables alone."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from _report_runs import FEATURES, KINDS, write_run
from rapidseval.core.errors import DataError
from rapidseval.report import build_plots, load_run, print_summary, render_html, summarize, write_report

#: figure ids each job kind's page must show
EXPECTED_PLOTS = {
    "study": {"rows", "timings", "replay-f1", "label-delay", "replay-proba", "score-dist", "monthly", "shift-overview",
              "shift-0", "shift-1", "attribution"},
    "replay": {"rows", "timings", "replay-f1", "label-delay", "replay-proba", "score-dist", "replay-delta", "monthly"},
    "backtest": {"rows", "timings", "monthly", "staleness", "staleness-age", "policies", "policy-cost"},
    "old": {"rows", "replay-f1", "monthly"},
}
#: an axis label names its unit in parentheses, or counts a thing (rows, features, stages)
UNIT = re.compile(r"\(.+\)|^rows\b|^feature$|^stage$")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for kind in (*KINDS, "old"):
        d = write_run(root, kind)
        write_report(d)
        out[kind] = d
    return out


def _figures(page: str) -> dict[str, bytes]:
    found = re.findall(r"<figure class='plot' id='plot-([^']+)'><img alt='([^']+)' src='data:image/png;base64,([^']+)'>", page)
    return {fid: base64.b64decode(b64) for fid, _alt, b64 in found}


@pytest.mark.parametrize("kind", [*KINDS, "old"])
def test_page_has_every_plot_of_its_kind_as_a_real_image(runs, kind):
    page = (runs[kind] / "report.html").read_text()
    figs = _figures(page)
    assert set(figs) == EXPECTED_PLOTS[kind]
    import matplotlib.image as mpimg

    for fid, png in figs.items():
        img = mpimg.imread(io.BytesIO(png), format="png")
        assert img.shape[0] > 150 and img.shape[1] > 300, fid
        assert img[..., :3].std() > 0.05, f"{fid} is blank"  # drawn, not an empty canvas


@pytest.mark.parametrize("kind", [*KINDS, "old"])
def test_page_is_self_contained(runs, kind):
    page = (runs[kind] / "report.html").read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    # every src/href is inline data or an anchor on the page itself
    for attr in re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)""", page):
        assert attr.startswith(("data:image/png;base64,", "#")), attr[:80]
    assert "url(" not in page and "@import" not in page


def test_sections_follow_the_tables(runs):
    def sections(kind):
        return re.findall(r"<section id='([a-z]+)'>", (runs[kind] / "report.html").read_text())

    assert sections("study") == ["summary", "replay", "monthly", "shift", "lineage"]
    assert sections("replay") == ["summary", "replay", "monthly", "lineage"]  # its shift table is empty
    assert sections("backtest") == ["summary", "monthly", "backtest", "lineage"]
    assert sections("old") == ["summary", "replay", "monthly", "lineage"]


def test_summary_and_lineage_come_from_the_manifest(runs):
    page = (runs["study"] / "report.html").read_text()
    man = json.loads((runs["study"] / "manifest.json").read_text())
    tot = man["rows"]["total"]
    assert f"read {tot['rows_read']:,}, dropped {tot['rows_dropped']:,}" in page
    assert "dropped: fare_not_positive" in page and "dropped: pickup_outside_month" in page
    assert "score_reduce" in page and "local" in page and "n_workers 2" in page
    for inp in man["inputs"]:
        assert inp["fingerprint"] in page and inp["uri"] in page
    assert man["git_commit"] in page and man["job_hash"] in page
    assert "random_forest" in page and "id='incomplete'" not in page


def test_alarms_are_listed_and_label_delay_is_named(runs):
    page = (runs["study"] / "report.html").read_text()
    s = pd.read_parquet(runs["study"] / "shift.parquet")
    assert f"Alarms ({int(s.alarm.sum()):,} of {len(s):,} comparisons)" in page
    assert "2 alarms, boxed" in page  # ks: trip_time in two months
    replay_page = (runs["replay"] / "report.html").read_text()
    assert "Label-delay view (delay 7D)" in replay_page
    assert "No label-delay columns" in (runs["old"] / "report.html").read_text()


@pytest.mark.parametrize("kind", [*KINDS, "old"])
def test_every_plot_has_a_title_and_labelled_axes_with_units(runs, kind):
    for plot in build_plots(load_run(runs[kind])):
        fig = plot.figure
        assert plot.title
        suptitle = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                assert UNIT.search(ax.get_ylabel()), (plot.id, ax.get_ylabel())
                continue
            assert ax.get_title() or suptitle, plot.id
            assert UNIT.search(ax.get_ylabel()), (plot.id, ax.get_ylabel())
            xlabel = ax.get_xlabel() or next((s.get_xlabel() for s in ax.get_shared_x_axes().get_siblings(ax)
                                              if s.get_xlabel()), "")
            assert UNIT.search(xlabel), (plot.id, xlabel)


def test_rebuild_is_identical_and_needs_only_the_tables(runs, tmp_path):
    import shutil

    d = shutil.copytree(runs["study"], tmp_path / "copy")
    first = (d / "report.html").read_text()
    (d / "report.html").unlink()
    write_report(d)
    assert (d / "report.html").read_text() == first  # byte for byte, wherever the directory lives


def test_absent_tables_and_columns_leave_their_part_out(tmp_path):
    d = write_run(tmp_path, "study")
    for name in ("replay", "shift", "attribution", "monthly"):
        (d / f"{name}.parquet").unlink()
    page = render_html(load_run(d))
    assert re.findall(r"<section id='([a-z]+)'>", page) == ["summary", "lineage"]
    # a replay table with only a few columns still plots
    pd.DataFrame({"window_start": pd.date_range("2020-03-01", periods=4), "f1": [0.5, 0.6, np.nan, 0.7]}).to_parquet(
        d / "replay.parquet")
    pd.DataFrame({"feature": ["a", "b"], "window": ["2020-02", "2020-02"], "value": [0.1, 0.2]}).to_parquet(d / "shift.parquet")
    assert set(_figures(render_html(load_run(d)))) == {"rows", "timings", "replay-f1", "shift-0"}


def test_manifest_flagged_incomplete_gets_a_banner(tmp_path):
    d = write_run(tmp_path, "old")
    man = json.loads((d / "manifest.json").read_text())
    man["complete"] = False
    (d / "manifest.json").write_text(json.dumps(man))
    assert "id='incomplete'" in render_html(load_run(d))
    assert summarize(load_run(d))["complete"] is False


def test_unreadable_table_names_the_file(tmp_path):
    d = write_run(tmp_path, "old")
    (d / "monthly.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"monthly\.parquet"):
        load_run(d)


@pytest.mark.parametrize("kind", KINDS)
def test_json_summary(runs, kind):
    s = summarize(load_run(runs[kind]))
    json.dumps(s, allow_nan=False)  # strict JSON: no NaN
    assert s["kind"] == kind and s["complete"] is True and s["report"].endswith("report.html")
    assert s["rows"]["rows_read"] == s["rows"]["rows_used"] + s["rows"]["rows_dropped"]
    if kind == "study":
        assert [m["month"] for m in s["monthly"]] == ["2020-01", "2020-02", "2020-03", "2020-04"]
        assert s["shift"]["alarms"] == int(pd.read_parquet(runs[kind] / "shift.parquet").alarm.sum())
        assert min(t["p_value"] for t in s["shift"]["top"] if t["p_value"] is not None) == 1e-15  # full precision
    if kind == "replay":
        assert [r["model"] for r in s["replay"]] == ["rf_small", "rf_large"]
        assert all(r["label_delay"] == "7D" for r in s["replay"])
        assert [r["windows_below_floor"] > 0 for r in s["replay"]] == [False, True]  # rf_large dips below 0.7
    if kind == "backtest":
        assert [p["policy"] for p in s["policies"]] == ["never", "monthly", "on_alarm"]


@pytest.mark.parametrize("kind", KINDS)
def test_terminal_summary(runs, kind):
    console = Console(record=True, width=140, file=io.StringIO())
    print_summary(load_run(runs[kind]), console)
    text = console.export_text()
    assert f"({kind} job)" in text and f"report: {runs[kind] / 'report.html'}" in text
    assert "rows read" in text and "time per stage" in text
    if kind == "study":
        assert "metrics per month" in text and "most shifted features (4 alarms in 60 comparisons)" in text and "ALARM" in text
        assert "what moved (2 alarmed features in 2 windows" in text and "p50 600 → 900" in text
    if kind == "replay":
        assert "with label delay 7D a monitor knew" in text and "rf_large" in text
    if kind == "backtest":
        assert "retraining policies" in text and "on_alarm" in text


def test_policy_summary_is_derived_when_the_table_is_absent(tmp_path):
    d = write_run(tmp_path, "backtest")
    expected = pd.read_parquet(d / "policies.parquet")
    (d / "policies.parquet").unlink()
    got = pd.DataFrame(summarize(load_run(d))["policies"])
    assert got["policy"].tolist() == expected["policy"].tolist()
    np.testing.assert_allclose(got["mean_f1"], expected["mean_f1"], rtol=0, atol=1e-12)
    assert got["retrains"].tolist() == expected["retrains"].tolist()


def test_features_of_the_shift_heatmap_keep_their_order(runs):
    run = load_run(runs["study"])
    ax = next(p for p in build_plots(run) if p.id == "shift-0").figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(FEATURES)


def test_bands_are_claimed_only_where_the_table_has_them(runs):
    assert "F1 per day vs cumulative F1, 95% bands" in (runs["study"] / "report.html").read_text()
    assert "95%" not in (runs["old"] / "report.html").read_text()  # its replay has no f1_low/f1_high


def test_most_shifted_ranks_alarms_then_distance_past_each_threshold(runs):
    from rapidseval.report._tables import shift_summary

    top = shift_summary(load_run(runs["study"]))["top"]
    # alarms first; within each group, by value / threshold (psi runs to 0.3, ks to 0.15: raw values would mislead)
    assert [t["alarm"] for t in top[:4]] == [True] * 4 and not any(t["alarm"] for t in top[4:])
    ratios = [t["value"] / t["threshold"] for t in top]
    assert ratios[:4] == sorted(ratios[:4], reverse=True) and ratios[4:] == sorted(ratios[4:], reverse=True)
    assert {t["statistic"] for t in top[:4]} == {"ks", "psi"}


def test_replay_summary_follows_the_jobs_floor_and_min_window_rows(tmp_path):
    # the terminal once said "0 windows below the floor" for a job with no floor, and named
    # worst windows of a handful of rows that the manifest's replay_summary leaves out
    d = write_run(tmp_path, "replay")
    replay = pd.read_parquet(d / "replay.parquet")
    small = replay.loc[replay["n"] > 0, "n"].median()
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["replay_summary"] = {"metric": "f1", "floor": None, "min_window_rows": int(small)}
    (d / "manifest.json").write_text(json.dumps(manifest))
    recs = summarize(load_run(d))["replay"]
    assert all("windows_below_floor" not in r for r in recs)
    for r in recs:
        rows = replay[replay["model"] == r["model"]]
        n = dict(zip(pd.to_datetime(rows["window_start"]), rows["n"]))
        assert r["min_window_rows"] == int(small) and all(n[pd.Timestamp(w["window_start"])] >= small for w in r["worst"])
    manifest["replay_summary"]["floor"] = 0.7
    (d / "manifest.json").write_text(json.dumps(manifest))
    console = Console(record=True, width=200, file=io.StringIO())
    print_summary(load_run(d), console)
    text = console.export_text()
    assert "below the floor (f1 < 0.7)" in text and f"worst (of ≥{int(small)} rows)" in text


def test_what_moved_heading_counts_one_window_in_the_singular(tmp_path):
    # the demo's report said "What moved (6 alarmed features in 1 windows)"
    from rapidseval.report._html import _count

    assert _count(1, "window") == "1 window" and _count(6, "alarmed feature") == "6 alarmed features"


def test_a_window_below_the_floor_is_flagged_below_not_alarm():
    # the replay table said ALARM in below_floor, beside the shift tables' ALARM for a shift
    from rapidseval.report._html import _cell

    assert _cell(True, "below_floor") == "<td class='alarm'>below</td>"
    assert _cell(True, "alarm") == "<td class='alarm'>ALARM</td>" and _cell(False, "below_floor") == "<td></td>"
