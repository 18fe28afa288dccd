"""The command line: --help everywhere, generate, validate, run --quiet/--json, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rapidseval.cli import app

runner = CliRunner()
JOBS = Path(__file__).resolve().parent.parent / "jobs"


@pytest.mark.parametrize("command", [[], ["generate"], ["run"], ["validate"], ["report"], ["bench"]])
def test_help(command):
    res = runner.invoke(app, [*command, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("rapidseval")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "generate" in out.stdout and "validate" in out.stdout


def test_generate_validate_run_report(tmp_path):
    data = tmp_path / "tlc"
    res = runner.invoke(app, ["generate", "--out", str(data), "--start", "2020-01", "--end", "2020-03",
                              "--rows-per-month", "4000", "--scenario", "march2020", "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in data.glob("*.parquet")) == [f"yellow_tripdata_2020-0{i}.parquet" for i in (1, 2, 3)]
    assert (data / "ground_truth.json").exists()

    sets = ["--set", f"data.source={data}/yellow_tripdata_{{month}}.parquet", "--set", "cluster.kind=threads",
            "--set", "model.params.n_estimators=5"]
    res = runner.invoke(app, ["validate", str(JOBS / "smoke.yaml"), *sets])
    assert res.exit_code == 0, res.output
    assert "ok 2020-01" in res.output and "era tlc-2016-07" in res.output and "is valid" in res.output

    out = tmp_path / "run"
    res = runner.invoke(app, ["run", str(JOBS / "smoke.yaml"), "--backend", "cpu", "--out", str(out), "--json", *sets])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert [m["month"] for m in summary["monthly"]] == ["2020-01", "2020-02", "2020-03"]
    assert summary["rows"]["rows_read"] == summary["rows"]["rows_used"] + summary["rows"]["rows_dropped"]

    (out / "report.html").unlink()
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0 and (out / "report.html").stat().st_size > 10_000


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    res = runner.invoke(app, ["run", str(JOBS / "smoke.yaml"), "--set", "model.kind=xgboost"])
    assert res.exit_code == 2
    assert "model.kind: unknown model kind 'xgboost'; choose one of random_forest" in res.output
    res = runner.invoke(app, ["run", str(JOBS / "smoke.yaml"), "--set", f"data.source={tmp_path}/x_{{month}}.parquet",
                              "--set", "cluster.kind=threads"])
    assert res.exit_code == 2 and "2020-01" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no manifest.json" in res.output


@pytest.mark.parametrize("args, message", [(["run"], "Missing argument"), (["frob"], "No such command 'frob'"),
                                           (["run", "--bogus", "x.yaml"], "No such option: --bogus")])
def test_usage_errors_print_usage_not_an_unexpected_error(args, message):
    # typer >= 0.26 vendors Click: its usage errors are not click.ClickException, and the
    # boundary once reported them as "error: MissingParameter: ... (unexpected ...)"
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.output and "Usage:" in res.output
    assert "unexpected" not in res.output and "error:" not in res.output


@pytest.mark.parametrize("override, message", [
    ("model.params.n_estimators=abc", "The 'n_estimators' parameter of RandomForestClassifier must be an int"),
    ("model.params.n_estimatorz=5", "unexpected keyword argument 'n_estimatorz'"),
])
def test_validate_checks_model_params_as_a_run_does(override, message):
    # validate said "job smoke is valid" and the run then failed on the model's params
    res = runner.invoke(app, ["validate", str(JOBS / "smoke.yaml"), "--set", override])
    assert res.exit_code == 2 and "error: model.params: " in res.output and message in res.output
    assert "is valid" not in res.output


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "rapidseval", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "validate" in out.stdout and "run" in out.stdout, out.stderr


def test_validate_reads_the_assertion_set_as_a_run_does(tmp_path):
    # validate said "job smoke is valid" and the run then stopped on the assertion file
    from rapidseval.checks.model import read_assertion_file

    rows = read_assertion_file("builtin:high_tip").head(3).astype({"trip_distance": object})
    rows.loc[1, "trip_distance"] = "abc"
    rows.to_csv(tmp_path / "bad.csv", index=False)
    rows.drop(index=1).to_csv(tmp_path / "good.csv", index=False)
    base = ["validate", str(JOBS / "smoke.yaml"), "--set", "data.synthetic.rows_per_month=2000",
            "--set", f"output.dir={tmp_path}/out"]
    for name, message in [("missing.csv", f"error: checks.assertions.path: {tmp_path}/missing.csv: no such file"),
                          ("bad.csv", f"error: {tmp_path}/bad.csv: row 1: column trip_distance: 'abc' is not a number")]:
        res = runner.invoke(app, [*base, "--set", f"checks.assertions.path={tmp_path}/{name}"])
        assert res.exit_code == 2 and message in res.output and "is valid" not in res.output, res.output
    res = runner.invoke(app, [*base, "--set", f"checks.assertions.path={tmp_path}/good.csv"])
    assert res.exit_code == 0 and f"ok checks.assertions: {tmp_path}/good.csv (2 rows)" in res.output, res.output
