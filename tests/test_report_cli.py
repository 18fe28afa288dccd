"""The real smoke job through the CLI: the summary it prints, --quiet, --json, the page and its rebuild."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rapidseval.cli import app

JOBS = Path(__file__).resolve().parent.parent / "jobs"
runner = CliRunner()


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """``rapidseval run jobs/smoke.yaml`` (small: 6k rows a month, 5 trees, threads) with the default output."""
    root = tmp_path_factory.mktemp("smoke")
    sets = ["--set", "data.synthetic.rows_per_month=6000", "--set", f"data.synthetic.cache_dir={root / 'cache'}",
            "--set", "model.params.n_estimators=5", "--set", "cluster.kind=threads"]
    res = runner.invoke(app, ["run", str(JOBS / "smoke.yaml"), "--backend", "cpu", "--out", str(root / "run"), *sets])
    assert res.exit_code == 0, res.output
    return root / "run", sets, res


def test_summary_names_months_replay_shift_rows_and_the_report(smoke):
    run_dir, _sets, res = smoke
    out = res.stdout
    assert "smoke (study job) · backend cpu · cluster threads" in out
    assert "metrics per month" in out and "2020-01" in out and "score+replay" in out
    assert re.search(r"replay per D: cumulative F1 at end 0\.\d{4}", out)
    assert "most shifted features" in out and "rows read" in out and "time per stage" in out
    assert f"report: {run_dir / 'report.html'}" in out
    assert "✓ score + reduce" in res.stderr  # stage lines go to stderr, results to stdout


def test_real_run_page_and_rebuild_from_tables_alone(smoke):
    run_dir, _sets, _res = smoke
    page = (run_dir / "report.html").read_text()
    assert re.findall(r"<section id='([a-z]+)'>", page) == ["summary", "replay", "monthly", "shift", "lineage"]
    figs = set(re.findall(r"<figure class='plot' id='plot-([^']+)'>", page))
    assert figs >= {"rows", "timings", "replay-f1", "monthly", "shift-0"}
    (run_dir / "report.html").unlink()
    res = runner.invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "report.html").read_text() == page  # same tables -> same page, byte for byte


def test_quiet_and_json(smoke, tmp_path):
    _run_dir, sets, _res = smoke
    res = runner.invoke(app, ["run", str(JOBS / "smoke.yaml"), "--backend", "cpu", "--out", str(tmp_path / "q"),
                              "--quiet", *sets])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(rf"{re.escape(str(tmp_path / 'q'))} (2020-0\d:0\.\d{{4}} ?){{3}} report \S+report\.html",
                                            lines[0]), lines

    res = runner.invoke(app, ["run", str(JOBS / "smoke.yaml"), "--backend", "cpu", "--out", str(tmp_path / "j"),
                              "--json", *sets])
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    s = json.loads(res.stdout)
    assert s["kind"] == "study" and s["complete"] is True and s["report"] == str(tmp_path / "j" / "report.html")
    assert [m["month"] for m in s["monthly"]] == ["2020-01", "2020-02", "2020-03"]
    assert s["replay"][0]["window"] == "D" and 0 < s["replay"][0]["cumulative_f1"] < 1
    shift = pd.read_parquet(tmp_path / "j" / "shift.parquet")
    assert s["shift"]["comparisons"] == len(shift) and s["shift"]["alarms"] == int(shift["alarm"].sum())
    assert set(s["timings_s"]) >= {"train", "total"}
