"""Bad input and hostile conditions: each case ends in one line on stderr with exit status 2
(or a counted warning), no traceback, and no file of the user's lost.

The catalogue runs the CLI in-process (Click's runner); a few cases go through the real
console script; the output lock is tried by two real processes; a YAML "billion laughs"
must fail within seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from _jobs import override

import rapidseval
from rapidseval.cli import app
from rapidseval.data.synthetic import generate
from rapidseval.jobs.progress import Reporter
from rapidseval.io.rundir import COMPLETE_MARKER

EXE = Path(sys.executable).with_name("rapidseval")
MONTHS = ("2020-01", "2020-02", "2020-03")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tlc")
    generate(out, MONTHS[0], MONTHS[-1], 2_000, scenario="none", seed=3)
    return out


def _job(source: str, out: str, **extra) -> dict:
    job = {
        "name": "bad", "seed": 1, "backend": "cpu",
        "data": {"source": source, "start": MONTHS[0], "end": MONTHS[-1], "partition_rows": 10_000},
        "model": {"params": {"n_estimators": 3, "max_depth": 3}},
        "evaluation": {"train": ["2020-01"], "test": ["2020-02"], "score": ["2020-03"],
                       "replay": {"months": ["2020-03"]}, "shift": {"reference": "2020-01", "compare": ["2020-02"]}},
        "cluster": {"kind": "threads", "n_workers": 1},
        "output": {"dir": out, "report": False},
    }
    return override(job, extra)


def _write_job(path: Path, job: dict) -> Path:
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def genuine_run(data, tmp_path_factory) -> Path:
    """A run directory rapidseval wrote (copied by the cases that damage one)."""
    out = tmp_path_factory.mktemp("genuine") / "run"
    rapidseval.run(_job(str(data / "yellow_tripdata_{month}.parquet"), str(out)))
    return out


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------
# the catalogue: set-up -> command line, expected status, message fragment
# ---------------------------------------------------------------------------------------
def _std(tmp: Path, data: Path, **extra) -> Path:
    return _write_job(tmp / "job.yaml", _job(str(data / "yellow_tripdata_{month}.parquet"), str(tmp / "out"), **extra))


def case_foreign_dir_with_a_manifest(tmp, data, genuine):
    d = tmp / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("my thesis")
    (d / "manifest.json").write_text("{}")
    # the data do not exist: the output is refused first, before any work
    job = _write_job(tmp / "job.yaml", _job(str(tmp / "nowhere_{month}.parquet"), str(d)))
    return ["run", str(job), "--quiet"], 2, "not a run directory rapidseval wrote: it holds manifest.json, notes.txt"


def case_run_dir_with_a_user_file_added(tmp, data, genuine):
    d = tmp / "run"
    shutil.copytree(genuine, d)
    (d / "my_notes.txt").write_text("mine")
    return ["run", str(_std(tmp, data)), "--out", str(d), "--quiet"], 2, "did not write: my_notes.txt"


def case_run_dir_with_a_changed_table(tmp, data, genuine):
    d = tmp / "run"
    shutil.copytree(genuine, d)
    pd.DataFrame({"mine": [1]}).to_parquet(d / "monthly.parquet")
    return ["run", str(_std(tmp, data)), "--out", str(d), "--quiet"], 2, "monthly.parquet was changed after"


def case_run_dir_with_a_foreign_marker(tmp, data, genuine):
    d = tmp / "run"
    d.mkdir()
    (d / "data.csv").write_text("a,b\n1,2\n")
    (d / COMPLETE_MARKER).write_text(json.dumps({"files": {}}))
    return ["run", str(_std(tmp, data)), "--out", str(d), "--quiet"], 2, f"its {COMPLETE_MARKER} is not one rapidseval wrote"


def case_out_is_a_file(tmp, data, genuine):
    (tmp / "afile").write_text("mine")
    return ["run", str(_std(tmp, data)), "--out", str(tmp / "afile"), "--quiet"], 2, "it is a file, not a directory"


def case_out_under_a_file(tmp, data, genuine):
    (tmp / "afile").write_text("mine")
    return ["run", str(_std(tmp, data)), "--out", str(tmp / "afile" / "run"), "--quiet"], 2, "afile is a file, not a directory"


def case_out_in_a_read_only_parent(tmp, data, genuine):
    if os.geteuid() == 0:  # root writes anywhere a mode allows: /proc/1 refuses even root
        return ["run", str(_std(tmp, data)), "--out", "/proc/1/run", "--quiet"], 2, "cannot write in /proc/1"
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ["run", str(_std(tmp, data)), "--out", str(ro / "run"), "--quiet"], 2, f"cannot write in {ro}"


def case_yaml_alias_bomb(tmp, data, genuine):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(97 + i)}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]" for i in range(1, 9)]
    (tmp / "bomb.yaml").write_text("\n".join(lines) + "\n")
    return ["validate", str(tmp / "bomb.yaml")], 2, "line 1, column 4: YAML anchors (&a) are not allowed"


def case_yaml_alias(tmp, data, genuine):
    (tmp / "alias.yaml").write_text("name: x\nseed: *x\n")
    return ["validate", str(tmp / "alias.yaml")], 2, "YAML aliases (*x) are not allowed"


def case_duplicate_key(tmp, data, genuine):
    (tmp / "dup.yaml").write_text("name: a\nseed: 1\nname: b\n")
    return ["validate", str(tmp / "dup.yaml")], 2, "line 3, column 1: duplicate key 'name' (first on line 1)"


def case_empty_job_file(tmp, data, genuine):
    (tmp / "empty.yaml").write_text("# nothing\n")
    return ["validate", str(tmp / "empty.yaml")], 2, "the job file is empty"


def case_job_file_missing(tmp, data, genuine):
    return ["validate", str(tmp / "nope.yaml")], 2, "nope.yaml: no such job file"


def case_job_file_is_binary(tmp, data, genuine):
    (tmp / "job.yaml").write_bytes(b"\xff\xfe\x00garbage")
    return ["run", str(tmp / "job.yaml")], 2, "not a text file (UTF-8)"


def _set(value, fragment):
    def case(tmp, data, genuine):
        return ["validate", str(_std(tmp, data)), "--set", value], 2, fragment
    case.__name__ = f"case_set_{value}"
    return case


SET_CASES = [
    _set("data.end=9999-12", "data: 2020-01..9999-12 spans 95,760 months; a job spans at most 600"),
    _set("evaluation.replay.window=100000000D", "evaluation.replay.window: window '100000000D' is longer than a year"),
    _set("evaluation.replay.label_delay=100000D", "evaluation.replay.label_delay: label_delay '100000D' is longer"),
    _set("cluster.memory_limit=banana", "cluster.memory_limit: memory_limit 'banana' is not a size"),
    _set("cluster.memory_limit=10", "cluster.memory_limit: memory_limit 10 is 10 bytes; give between 1 MiB and 1 PiB"),
    _set("evaluation.shift.bins=100000000", "evaluation.shift.bins: Input should be less than or equal to 1000"),
    _set("model.params.n_estimators=100000000", "model.params: n_estimators=100000000 is outside [1, 10000]"),
    _set("data.synthetic.rows_per_month=1000000000000", "data.synthetic.rows_per_month"),
    _set("data.partition_rows=1e30", "data.partition_rows"),
    _set("cluster.n_workers=100000", "cluster.n_workers"),
    _set("seed=-1", "seed: Input should be greater than or equal to 0"),
    _set("evaluation.shift.k_std=.inf", "evaluation.shift.k_std"),
    _set("=5", "--set =5: the key '' is empty"),
    _set("model..kind=x", "the key 'model..kind' is empty or has an empty part"),
    _set("evaluation.train=[2020-03]", "time leakage: model random_forest trains on 2020-03"),
    _set("evaluation.train=[2020-02]", "not before the month(s) it is evaluated on (2020-02)"),
]


def case_report_missing_path(tmp, data, genuine):
    return ["report", str(tmp / "gone")], 2, "gone: no such run directory"


def case_report_on_a_file(tmp, data, genuine):
    (tmp / "afile").write_text("mine")
    return ["report", str(tmp / "afile")], 2, "afile: not a directory"


def case_report_marker_with_traversal(tmp, data, genuine):
    d = tmp / "run"
    shutil.copytree(genuine, d)
    marker = json.loads((d / COMPLETE_MARKER).read_text())
    marker["files"]["../victim.txt"] = {"bytes": 4, "sha256": "0" * 64}
    (d / COMPLETE_MARKER).write_text(json.dumps(marker))
    (tmp / "victim.txt").write_text("mine")
    return ["report", str(d)], 2, "lists '../victim.txt', which is not a plain file name inside the run directory"


def case_report_marker_lists_no_files(tmp, data, genuine):
    d = tmp / "run"
    shutil.copytree(genuine, d)
    marker = json.loads((d / COMPLETE_MARKER).read_text())
    marker["files"] = {}
    (d / COMPLETE_MARKER).write_text(json.dumps(marker))
    return ["report", str(d)], 2, "does not list manifest.json (it lists no files)"


def case_generate_out_is_a_file(tmp, data, genuine):
    (tmp / "afile").write_text("mine")
    return (["generate", "--out", str(tmp / "afile"), "--start", "2020-01", "--end", "2020-01", "--rows-per-month", "10"],
            2, "afile is a file, not a directory")


def case_generate_over_user_trip_files(tmp, data, genuine):
    d = tmp / "real"
    d.mkdir()
    (d / "yellow_tripdata_2020-01.parquet").write_bytes(b"the real thing")
    return (["generate", "--out", str(d), "--start", "2020-01", "--end", "2020-01", "--rows-per-month", "10"],
            2, "already holds yellow_tripdata_2020-01.parquet, not made by rapidseval generate")


@pytest.mark.parametrize("argv, fragment", [
    (["--start", "2020-13"], "--start must look like YYYY-MM"),
    (["--end", "2019-01"], "--end 2019-01 is before --start 2020-01"),
    (["--rows-per-month", "0"], "--rows-per-month must be between 1 and"),
    (["--format", "xls"], "--format 'xls' is unknown; choose one of parquet, csv"),
    (["--scenario", "meteor"], "--scenario 'meteor' is unknown; choose one of"),
    (["--scenario-month", "2021-01"], "--scenario-month 2021-01 is outside --start 2020-01 .. --end 2020-01"),
])
def test_generate_errors_name_the_options(tmp_path, argv, fragment):
    base = {"--out": str(tmp_path / "g"), "--start": "2020-01", "--end": "2020-01", "--rows-per-month": "10"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    res = CliRunner().invoke(app, ["generate", *[x for kv in base.items() for x in kv]])
    assert res.exit_code == 2 and fragment in res.stderr, res.output
    assert "rows_per_month" not in res.stderr and "fmt" not in res.stderr  # no internal names
    assert not (tmp_path / "g").exists()


def _month_dir(tmp: Path, data: Path) -> Path:
    d = tmp / "months"
    shutil.copytree(data, d)
    return d


def case_validate_sees_text_in_a_fare_column(tmp, data, genuine):
    d = _month_dir(tmp, data)
    path = d / "yellow_tripdata_2020-03.parquet"
    table = pq.read_table(path)
    fare = pc.cast(table["fare_amount"], pa.string())
    fare = pa.chunked_array([pa.array(["twelve dollars"] + fare.to_pylist()[1:])])
    pq.write_table(table.set_column(table.schema.get_field_index("fare_amount"), "fare_amount", fare), path)
    job = _write_job(tmp / "job.yaml", _job(str(d / "yellow_tripdata_{month}.parquet"), str(tmp / "out")))
    return ["validate", str(job)], 2, "yellow_tripdata_2020-03.parquet (2020-03): column fare_amount: cannot convert"


def case_validate_sees_a_garbled_csv(tmp, data, genuine):
    d = tmp / "csv"
    d.mkdir()
    for m in MONTHS:
        pq.read_table(data / f"yellow_tripdata_{m}.parquet").to_pandas().to_csv(d / f"yellow_tripdata_{m}.csv", index=False)
    path = d / "yellow_tripdata_2020-02.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:5] + ["\x00\x07garbage;;;", *lines[5:]]) + "\n")
    job = _write_job(tmp / "job.yaml", _job(str(d / "yellow_tripdata_{month}.csv"), str(tmp / "out")))
    return ["validate", str(job)], 2, "yellow_tripdata_2020-02.csv (2020-02): cannot parse CSV"


def case_validate_sees_empty_training_month(tmp, data, genuine):
    d = _month_dir(tmp, data)
    path = d / "yellow_tripdata_2020-01.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    job = _write_job(tmp / "job.yaml", _job(str(d / "yellow_tripdata_{month}.parquet"), str(tmp / "out")))
    return ["validate", str(job)], 2, "model random_forest: its training month(s) 2020-01 hold no rows"


def case_validate_sees_an_empty_shift_reference(tmp, data, genuine):
    d = _month_dir(tmp, data)
    path = d / "yellow_tripdata_2020-02.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    job = _write_job(tmp / "job.yaml", _job(str(d / "yellow_tripdata_{month}.parquet"), str(tmp / "out"),
                                            **{"evaluation.shift.reference": "2020-02",
                                               "evaluation.shift.compare": ["2020-03"]}))
    return ["validate", str(job)], 2, "evaluation.shift.reference 2020-02 hold no rows"


CASES = [
    case_foreign_dir_with_a_manifest, case_run_dir_with_a_user_file_added, case_run_dir_with_a_changed_table,
    case_run_dir_with_a_foreign_marker, case_out_is_a_file, case_out_under_a_file, case_out_in_a_read_only_parent,
    case_yaml_alias_bomb, case_yaml_alias, case_duplicate_key, case_empty_job_file, case_job_file_missing,
    case_job_file_is_binary, *SET_CASES, case_report_missing_path, case_report_on_a_file,
    case_report_marker_with_traversal, case_report_marker_lists_no_files, case_generate_out_is_a_file,
    case_generate_over_user_trip_files, case_validate_sees_text_in_a_fare_column, case_validate_sees_a_garbled_csv,
    case_validate_sees_empty_training_month, case_validate_sees_an_empty_shift_reference,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.removeprefix("case_") for c in CASES])
def test_bad_input_ends_in_one_line(case, tmp_path, data, genuine_run):
    argv, status, fragment = case(tmp_path, data, genuine_run)
    before = _snapshot(tmp_path)
    t0 = time.perf_counter()
    res = CliRunner().invoke(app, argv)
    seconds = time.perf_counter() - t0
    assert res.exit_code == status, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in res.output
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # no file of the user's lost or changed
    assert not [p for p in tmp_path.rglob(".*partial-*")]
    assert seconds < 30


def test_an_empty_month_outside_training_is_a_warning(tmp_path, data):
    d = _month_dir(tmp_path, data)
    path = d / "yellow_tripdata_2020-03.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    job = _write_job(tmp_path / "job.yaml", _job(str(d / "yellow_tripdata_{month}.parquet"), str(tmp_path / "out")))
    res = CliRunner().invoke(app, ["validate", str(job)])
    assert res.exit_code == 0, res.output
    assert "warning: 2020-03:" in res.stdout and "has no rows" in res.stdout and "is valid" in res.stdout


def test_the_yaml_bomb_fails_fast_through_the_console_script(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{chr(97 + i)}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]" for i in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    for command in ("validate", "run"):
        t0 = time.perf_counter()
        out = subprocess.run([str(EXE), command, str(tmp_path / "bomb.yaml")], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "YAML anchors" in out.stderr, out.stderr
        assert time.perf_counter() - t0 < 30


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    import rapidseval.jobs.checks

    def boom(*args, **kwargs):
        raise ZeroDivisionError("division by zero (simulated)")

    monkeypatch.setattr(rapidseval.jobs.checks, "load_job", boom)
    (tmp_path / "job.yaml").write_text("name: x\n")
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "job.yaml")])
    assert res.exit_code == 2
    assert res.stderr == ("error: ZeroDivisionError: division by zero (simulated) "
                          "(unexpected: --debug shows the traceback)\n")
    for argv in (["--debug", "validate", str(tmp_path / "job.yaml")], ["validate", str(tmp_path / "job.yaml"), "--debug"]):
        res = CliRunner().invoke(app, argv)
        assert res.exit_code == 2 and "Traceback" in res.stderr and "ZeroDivisionError" in res.stderr


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"rapidseval {rapidseval.__version__}"


# ---------------------------------------------------------------------------------------
# the Python API checks its argument types
# ---------------------------------------------------------------------------------------
def test_api_argument_types_are_checked(data, tmp_path):
    job = _job(str(data / "yellow_tripdata_{month}.parquet"), str(tmp_path / "out"))
    with pytest.raises(TypeError, match=r"overrides must be a mapping .* got str; wrap one in a list"):
        rapidseval.run(job, overrides="model.params.n_estimators=5")
    with pytest.raises(TypeError, match="out must be a path"):
        rapidseval.run(job, out=5)
    with pytest.raises(TypeError, match="job must be a path to a YAML file, a mapping or a JobSpec"):
        rapidseval.load_job(42)
    with pytest.raises(TypeError, match="overrides"):
        rapidseval.load_job(job, [("model.kind", "x")])
    assert not (tmp_path / "out").exists()


def test_leakage_is_allowed_only_when_declared_and_the_manifest_records_it(data, tmp_path):
    job = _job(str(data / "yellow_tripdata_{month}.parquet"), str(tmp_path / "out"),
               **{"evaluation.train": ["2020-01", "2020-02"], "evaluation.allow_overlap": True,
                  "evaluation.shift": None, "evaluation.replay": None})
    res = rapidseval.run(job)
    assert res.manifest["train_eval_overlap"] == {
        "random_forest": {"train_months": ["2020-02"], "eval_months": ["2020-02"]}}
    assert json.loads((res.run_dir / "manifest.json").read_text())["job"]["evaluation"]["allow_overlap"] is True
    clean = rapidseval.load_job(_job("x_{month}.parquet", "o"))
    assert clean.train_eval_overlap() == {}


# ---------------------------------------------------------------------------------------
# two writers, a killed writer's leftovers
# ---------------------------------------------------------------------------------------
HOLDER = """
import sys, time
from rapidseval.spec import load_job
from rapidseval.io.rundir import claim_run_dir
spec = load_job({"name": "held", "output": {"dir": sys.argv[1]}})
with claim_run_dir(spec):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_fails_fast_and_a_killed_writer_leaves_nothing_behind(data, tmp_path):
    out = tmp_path / "held"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(rapidseval.__file__).parent.parent),
                                                        os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "holding"
        job = _write_job(tmp_path / "job.yaml", _job(str(data / "yellow_tripdata_{month}.parquet"), str(out)))
        t0 = time.perf_counter()
        second = subprocess.run([str(EXE), "run", str(job), "--quiet"], capture_output=True, text=True, timeout=120, env=env)
        assert second.returncode == 2, second.stderr
        assert f"is being written by another rapidseval run (pid {holder.pid} on" in second.stderr
        assert second.stderr.count("\n") == 1 and time.perf_counter() - t0 < 60
        # the holder dies without a word (SIGKILL): its lock file stays, its partial directory too
        dead = tmp_path / f".held.partial-{holder.pid}-0123abcd"
        dead.mkdir()
        (dead / "monthly.parquet").write_bytes(b"half")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert (tmp_path / ".held.lock").exists()
    alive = tmp_path / f".held.partial-{os.getpid()}-0123abcd"  # a live process's: not touched
    alive.mkdir()
    mine = tmp_path / ".held.partial-notes"  # not rapidseval's naming: not touched
    mine.mkdir()
    res = CliRunner().invoke(app, ["run", str(job), "--quiet"])
    assert res.exit_code == 0, res.output
    assert not dead.exists() and alive.exists() and mine.exists()
    assert not (tmp_path / ".held.lock").exists()  # released
    assert (out / COMPLETE_MARKER).exists()
    res = CliRunner().invoke(app, ["run", str(job), "--quiet"])  # its own run directory: replaced
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("when", ["cluster starting", "cluster running"])
def test_interrupt_is_one_line(data, tmp_path, when):
    """Ctrl-C (SIGINT to the whole process group) while the local cluster starts, or once it
    runs: one line, status 130, no worker's traceback (see rapidseval.cluster._start_local_cluster).
    The signal is repeated every half second, as a user would press again, should one land in
    the instant the worker processes are forked (SIGINT is ignored then)."""
    job = _write_job(tmp_path / "job.yaml", _job(str(data / "yellow_tripdata_{month}.parquet"), str(tmp_path / "out"),
                                                 **{"cluster.kind": "local", "cluster.n_workers": 2}))
    trigger = "backend:" if when == "cluster starting" else "cluster:"
    proc = subprocess.Popen([str(EXE), "run", str(job)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: list[str] = []
    with proc.stderr:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith(trigger):
                break
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        try:
            for _ in range(240):  # until rapidseval says it was interrupted (then one Ctrl-C is enough)
                os.killpg(proc.pid, signal.SIGINT)
                time.sleep(0.5)
                if proc.poll() is not None or any(line.startswith("interrupted") for line in lines):
                    break
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        reader.join(timeout=30)
    stderr = "".join(lines)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.rstrip().splitlines()[-1] == "interrupted", stderr
    if when == "cluster starting":
        assert "cluster:" not in stderr  # it stopped before the cluster was up
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


# ---------------------------------------------------------------------------------------
# a backtest's work area: a model damaged after it was written is fitted again
# ---------------------------------------------------------------------------------------
class _StopAfterFolds(Reporter):
    """Raises (like a killed driver) after ``after`` folds, leaving the work area behind."""

    def __init__(self, after: int):
        self.after, self.done, self.in_folds, self.lines = after, 0, False, []

    def stage(self, name, total=None, **kwargs):
        import contextlib

        @contextlib.contextmanager
        def stage():
            self.in_folds = name.startswith("folds")
            try:
                yield self
            finally:
                self.in_folds = False

        return stage()

    def advance(self, n=1, **kwargs):
        if self.in_folds:
            self.done += n
            if self.done >= self.after:
                raise KeyboardInterrupt

    def log(self, message):
        self.lines.append(message)


def _backtest_job(data, out, cache):
    return {
        "name": "bt", "seed": 2, "backend": "cpu",
        "data": {"source": str(data / "yellow_tripdata_{month}.parquet"), "start": MONTHS[0], "end": MONTHS[-1]},
        "model": {"params": {"n_estimators": 3, "max_depth": 3}},
        "cluster": {"kind": "threads", "n_workers": 1},
        "output": {"dir": str(out), "report": False},
        "backtest": {"train_months": 1, "horizon": 1, "cache_dir": str(cache), "policies": [{"kind": "static"}],
                     "metric": "accuracy"},
    }


def test_a_damaged_model_in_the_work_area_is_fitted_again(data, tmp_path):
    job = _backtest_job(data, tmp_path / "bt", tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        rapidseval.run(job, reporter=_StopAfterFolds(after=1))
    models = sorted((tmp_path / ".bt.work" / "models").glob("*.pkl"))
    assert models and not (tmp_path / "bt").exists()
    models[0].write_bytes(models[0].read_bytes()[:20])  # truncated after rapidseval wrote it
    reporter = _StopAfterFolds(after=10**6)
    res = rapidseval.run(job, reporter=reporter)
    assert res.manifest["backtest"]["folds_reused"] == len(models) - 1
    assert any("damaged since written; fitting them again" in line for line in reporter.lines), reporter.lines
    assert not (tmp_path / ".bt.work").exists()


def test_a_model_that_cannot_be_loaded_is_named_with_the_way_out(tmp_path):
    from rapidseval.jobs.backtest import _load_model
    from rapidseval.core.errors import DataError

    path = tmp_path / "work" / "models" / "m.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x80\x05\x95")
    with pytest.raises(DataError, match=rf"{path}: cannot load this backtest model .* delete {tmp_path / 'work'}"):
        _load_model(str(path))


def test_quiet_backtest_prints_the_policies_metrics(data, tmp_path):
    job = _write_job(tmp_path / "job.yaml", _backtest_job(data, tmp_path / "bt", tmp_path / "cache"))
    res = CliRunner().invoke(app, ["run", str(job), "--quiet"])
    assert res.exit_code == 0, res.output
    line = res.stdout.strip()
    assert line.startswith(str(tmp_path / "bt") + " static:mean_accuracy=0.") and ",worst_accuracy=0." in line, line


# ---------------------------------------------------------------------------------------
# s3:// outputs: checked before any work; an interrupted upload is still known as rapidseval's
# ---------------------------------------------------------------------------------------
def test_s3_output_of_someone_else_is_refused_before_any_work(tmp_path, s3_bucket, s3_endpoint):
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="theirs/notes.txt", Body=b"keep me")
    job = _job(str(tmp_path / "nowhere_{month}.parquet"), f"s3://{bucket}/theirs",
               **{"output.storage_options": {"endpoint_url": s3_endpoint}})
    with pytest.raises(rapidseval.RapidsEvalError, match=r"not a run directory rapidseval wrote: it holds notes.txt"):
        rapidseval.run(job)  # the inputs do not exist: the output was refused first
    assert client.get_object(Bucket=bucket, Key="theirs/notes.txt")["Body"].read() == b"keep me"


def test_s3_interrupted_upload_is_replaced_and_reads_as_incomplete(data, tmp_path, s3_bucket, s3_endpoint):
    from rapidseval.io.rundir import IncompleteRunDir, check_complete

    bucket, client = s3_bucket
    writing = {"rapidseval_run": 1, "complete": False, "files": {"monthly.parquet": {}, "manifest.json": {}}}
    client.put_object(Bucket=bucket, Key=f"run/{COMPLETE_MARKER}", Body=json.dumps(writing).encode())
    client.put_object(Bucket=bucket, Key="run/monthly.parquet", Body=b"half")
    local = tmp_path / "copy"
    local.mkdir()
    (local / COMPLETE_MARKER).write_text(json.dumps(writing))
    (local / "monthly.parquet").write_bytes(b"half")
    with pytest.raises(IncompleteRunDir, match="says a write was under way"):
        check_complete(local)
    res = rapidseval.run(_job(str(data / "yellow_tripdata_{month}.parquet"), f"s3://{bucket}/run",
                              **{"output.storage_options": {"endpoint_url": s3_endpoint}}))
    marker = json.loads(client.get_object(Bucket=bucket, Key=f"run/{COMPLETE_MARKER}")["Body"].read())
    assert marker["complete"] is True and "monthly.parquet" in marker["files"]
    assert res.monthly["month"].tolist() == list(MONTHS)


def test_validation_is_linear_in_the_months_and_the_period_is_bounded():
    from rapidseval.spec import MAX_PERIOD_MONTHS
    from rapidseval.core.time import month_range

    months = month_range("1975-01", "2024-12")
    assert len(months) == MAX_PERIOD_MONTHS
    job = {"data": {"source": "x_{month}.parquet", "start": months[0], "end": months[-1]},
           "evaluation": {"train": months[:1], "test": months[1:2], "score": months[2:], "replay": None,
                          "shift": {"reference": months[0], "compare": months[1:]}}}
    t0 = time.perf_counter()
    spec = rapidseval.load_job(job)
    assert len(spec.evaluated_months()) == MAX_PERIOD_MONTHS
    assert time.perf_counter() - t0 < 5  # was quadratic: --set data.end=9999-12 did not return in 120 s
    job["data"]["end"] = "2025-01"
    with pytest.raises(rapidseval.SpecError, match="spans 601 months; a job spans at most 600"):
        rapidseval.load_job(job)


@pytest.mark.parametrize("names", [None, {"never": "static", "monthly": "periodic", "on_alarm": "drift_triggered"}])
def test_piped_policy_table_keeps_whole_headers_in_80_columns(tmp_path, names):
    # names: the shipped job's policies; "drift_triggered" once pushed the table to 86 columns
    # (the box's blank edges and separators), cutting "accura…", "2020-…"
    import io

    from rich.console import Console

    from _report_runs import write_run
    from rapidseval.report import load_run, print_summary

    run = load_run(write_run(tmp_path, "backtest"))
    policies = run["policies"].rename(columns={"mean_f1": "mean_accuracy", "worst_f1": "worst_accuracy"})
    run.tables["policies"] = policies.assign(metric="accuracy", mean_f1=0.5, worst_month="2020-03")
    if names:
        run.tables["policies"]["policy"] = run.tables["policies"]["policy"].map(names)
    buffer = io.StringIO()
    print_summary(run, Console(file=buffer, width=80))
    text = buffer.getvalue()
    table = text[text.index("retraining policies"):text.index("every column in policies.parquet")]
    assert "…" not in table and max(len(line) for line in table.splitlines()) <= 80, table
    for word in ("accuracy", "worst", "month", "retrains", "2020-03", *(names or {"on_alarm": "on_alarm"}).values()):
        assert word in table, table
    # worst_month is the month of worst_f1: beside "worst accuracy" it once read as that one's month
    from rapidseval.report._terminal import _policy_header

    assert _policy_header("worst_month", "accuracy") == "worst f1 month" and "f1" in table, table
    assert _policy_header("worst_month", "f1") == "worst month"


def test_two_threads_of_one_process_do_not_share_a_claim(tmp_path):
    import threading

    from rapidseval.spec import load_job
    from rapidseval.io.rundir import RunDirLocked, claim_run_dir

    spec = load_job({"name": "t", "output": {"dir": str(tmp_path / "t")}})
    errors = []
    with claim_run_dir(spec):
        def other():
            try:
                with claim_run_dir(spec):
                    pass
            except RunDirLocked as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        with claim_run_dir(spec):  # nested in the same thread: the outer claim covers it
            pass
    assert len(errors) == 1 and f"(pid {os.getpid()} on" in errors[0]
    with claim_run_dir(spec):  # released
        pass
