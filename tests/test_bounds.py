"""Bounded by design: damaged inputs end in a counted drop or a one-line error, under an
address-space limit, with tables sized by the job's period; warnings for months a run
leaves out or that look misplaced; duplicate inputs refused; time zones converted."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import rapidseval
from rapidseval import DataError, SpecError
from rapidseval.io.readers import read_month
from rapidseval.data.synthetic import generate
from rapidseval.spec import load_job
from rapidseval.jobs.inputs import resolve_inputs

from _damage import DAMAGED, PERIOD_WINDOWS, ROWS, TRAIN, damage_column, job, month_file, rewrite, zero_middle

HERE = Path(__file__).parent
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc/self/status are Linux's")
LIMIT = 2 * 1024**3  # address space of the child (issue 15: 2 GB)
# an address-space limit counts reservations, not use: keep the allocators from reserving
# arenas per thread (glibc) and big regions up front (jemalloc), so the limit measures the job
ALLOCATORS = {"MALLOC_ARENA_MAX": "2", "ARROW_DEFAULT_MEMORY_POOL": "system", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

_LIMITED_CLI = textwrap.dedent("""
    import atexit, json, os, resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    def _peak():
        status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
        with open(os.environ["PEAK_FILE"], "w") as f:
            json.dump({k: int(status[k].split()[0]) // 1024 for k in ("VmHWM", "VmPeak")}, f)
    atexit.register(_peak)
    sys.argv = ["rapidseval", *sys.argv[2:]]
    from rapidseval.cli import main
    main()
""")


def _limited_cli(args, tmp_path, limit=LIMIT, timeout=300):
    """``rapidseval ARGS`` in a child under RLIMIT_AS; (rc, stdout, stderr, peak MiB)."""
    peak = tmp_path / "peak.json"
    env = {**os.environ, **ALLOCATORS, "PEAK_FILE": str(peak)}
    proc = subprocess.run([sys.executable, "-c", _LIMITED_CLI, str(limit), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout, proc.stderr, json.loads(peak.read_text()) if peak.exists() else {}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    generate(root, TRAIN, DAMAGED, ROWS, scenario="none", seed=5)
    return root


def _variant(clean, root: Path, **rewrite_kw) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(month_file(clean, TRAIN), month_file(root, TRAIN))
    rewrite(month_file(clean, DAMAGED), month_file(root, DAMAGED), **rewrite_kw)
    return root


def _dropoff(year: str):
    return [("tpep_dropoff_datetime", 17, int(np.datetime64(year, "us").astype("int64")))]


DAMAGES = {
    # one row whose dropoff is in 2200 / 9999 (issue 15: 65,685 windows / ArrayMemoryError)
    "dropoff_2200": dict(values=_dropoff("2200-01-01")),
    "dropoff_9999": dict(values=_dropoff("9999-12-31T23:59:59")),
    # 5,000 bytes zeroed in the middle of plain, uncompressed pages: garbage values that
    # decode "fine" (issue 15: years -290307..294240, 23.6 GB) ...
    "zeroed_plain": dict(compression="none", use_dictionary=False, zero=True),
    # ... and of compressed, dictionary-encoded pages (as TLC writes them)
    "zeroed_zstd": dict(compression="zstd", use_dictionary=True, zero=True),
    # bytes flipped in the middle of the dropoff column's plain pages: timestamps from
    # about -290,000 to +290,000 years, which decode without error
    "flipped_dropoffs": dict(compression="none", use_dictionary=False, flip="tpep_dropoff_datetime"),
    "flipped_distances": dict(compression="none", use_dictionary=False, flip="trip_distance"),
}


def _damaged_data(clean, root: Path, case: str) -> Path:
    kw = dict(DAMAGES[case])
    zero, flip = kw.pop("zero", False), kw.pop("flip", None)
    data = _variant(clean, root, **kw)
    if zero:
        zero_middle(month_file(data, DAMAGED), 5_000)
    if flip:
        damage_column(month_file(data, DAMAGED), flip, "flip", 5_000)
    return data


def _check_accounted(case: str, manifest: dict, replay: pd.DataFrame) -> None:
    acc = manifest["rows"]["by_month"][DAMAGED]
    rules = acc["dropped_by_rule"]
    assert acc["rows_read"] == acc["rows_used"] + acc["rows_dropped"]
    if case.startswith("dropoff"):
        assert rules["outside_period"] == 1
    if case == "flipped_dropoffs":  # the garbage rows are counted by the guards, not kept
        assert rules["outside_period"] + rules["dropoff_before_pickup"] >= 100
    if case == "flipped_distances":
        assert rules["distance_above_max"] + rules["speed_above_max"] + rules["non_finite_value"] >= 100
    assert len(replay) <= PERIOD_WINDOWS  # windows come from the period, not from the data
    assert replay["window_start"].min() >= pd.Timestamp(DAMAGED + "-01")


# the CLI in a child under the limit (each about 10 s: interpreter, imports, kernels) ...
@linux_only
@pytest.mark.slow
@pytest.mark.parametrize("case", ["dropoff_9999", "zeroed_zstd", "flipped_dropoffs"])
def test_damaged_month_ends_in_a_counted_drop_or_one_line_error_within_2gb(clean, tmp_path, case):
    data = _damaged_data(clean, tmp_path / "data", case)
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job(data, tmp_path / "run")))
    rc, out, err, peak = _limited_cli(["run", job_file, "--quiet"], tmp_path)
    print(f"{case}: rc {rc}, peak RSS {peak.get('VmHWM')} MiB, peak address space {peak.get('VmPeak')} MiB")
    assert "Traceback" not in err + out
    if rc == 0:
        man = json.loads((tmp_path / "run" / "manifest.json").read_text())
        _check_accounted(case, man, pd.read_parquet(tmp_path / "run" / "replay.parquet"))
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and DAMAGED in lines[0], err
    assert peak["VmHWM"] < 1024  # MiB: bounded by the job (a 3,000-row month), far below the limit


# ... and the other damages in this process (the property test below covers them under the limit)
@pytest.mark.parametrize("case", ["dropoff_2200", "zeroed_plain", "flipped_distances"])
def test_damaged_month_in_process(clean, tmp_path, case):
    data = _damaged_data(clean, tmp_path / "data", case)
    try:
        res = rapidseval.run(job(data, tmp_path / "run"))
    except rapidseval.RapidsEvalError as exc:
        assert "\n" not in str(exc) and DAMAGED in str(exc)
    else:
        _check_accounted(case, res.manifest, res.replay)


@linux_only
@pytest.mark.slow
def test_corruption_property_under_2gb(clean, tmp_path):
    """Hypothesis zeroes, flips and sets byte ranges and plants extreme values in a small
    Parquet month (tests/_corrupt_worker.py): every run ends in a one-line error or an
    accounted result with windows inside the period, each within 60 s, the whole under 2 GB."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, **ALLOCATORS}
    proc = subprocess.run([sys.executable, str(HERE / "_corrupt_worker.py"), str(LIMIT), str(clean), str(work), "10", "60"],
                          capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    outcomes = [r["outcome"] for r in records if "outcome" in r]
    assert len(outcomes) == 10 and {"ok", "error"} <= set(outcomes)
    assert records[-1]["maxrss_mib"] < 1024


# ---------------------------------------------------------------------------------------
# warnings, duplicates, validate
# ---------------------------------------------------------------------------------------
def test_period_guard_keeps_a_year_2200_dropoff_out_of_every_table(clean, tmp_path):
    data = _variant(clean, tmp_path / "data", values=_dropoff("2200-01-01"))
    res = rapidseval.run(job(data, tmp_path / "run"))
    assert res.manifest["rows"]["by_month"][DAMAGED]["dropped_by_rule"]["outside_period"] == 1
    assert len(res.replay) <= PERIOD_WINDOWS and res.replay["window_start"].max() < pd.Timestamp("2020-03-02")
    assert res.shift["window"].nunique() <= 29
    assert res.manifest["drop_rules"]["outside_period"] == {"max_trip_hours": 24.0}
    assert res.manifest["replay_summary"]["rows_outside_windows"] == 0


@linux_only
def test_validate_sees_footer_values_beyond_the_period(clean, tmp_path):
    data = _variant(clean, tmp_path / "data", values=_dropoff("2200-01-01") + [("trip_distance", 3, 1e39)])
    warnings: list[str] = []
    notes: list[str] = []
    spec = load_job(job(data, tmp_path / "run"))
    resolve_inputs(spec, [TRAIN, DAMAGED], warnings=warnings, notes=notes)
    assert warnings == [] and len(notes) == 2, notes  # dropped and counted by the rules: notes, not warnings
    assert "tpep_dropoff_datetime" not in notes[0] and "dropoff_datetime spans" in notes[0]
    assert "2200-01-01" in notes[0] and "outside_period" in notes[0]
    assert "trip_distance reaches 1e+39" in notes[1] and "float32" in notes[1]
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump(job(data, tmp_path / "run")))
    rc, out, err, _ = _limited_cli(["validate", job_file], tmp_path)
    assert rc == 0 and out.count("note: ") == 2 and "warning: " not in out and "is valid" in out


def test_empty_and_all_dropped_months_warn(clean, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(month_file(clean, TRAIN), month_file(data, TRAIN))
    table = pq.read_table(month_file(clean, DAMAGED))
    pq.write_table(table.slice(0, 0), month_file(data, DAMAGED))
    res = rapidseval.run(job(data, tmp_path / "empty", evaluation={"train": [TRAIN], "test": [DAMAGED], "score": [],
                                                                    "replay": None, "shift": None}))
    assert [w for w in res.manifest["warnings"] if w.startswith(f"{DAMAGED}: ")] == [  # said once, before the run
        f"{DAMAGED}: {month_file(data, DAMAGED)} has no rows; the month's metrics and shift comparison will be left out"]
    # every fare zero: every row dropped
    fares = pa.array(np.zeros(len(table)), pa.float64())
    pq.write_table(table.set_column(table.schema.get_field_index("fare_amount"), "fare_amount", fares),
                   month_file(data, DAMAGED))
    res = rapidseval.run(job(data, tmp_path / "dropped", evaluation={"train": [TRAIN], "test": [DAMAGED], "score": [],
                                                                      "replay": None, "shift": None}))
    line = next(w for w in res.manifest["warnings"] if w.startswith(f"{DAMAGED}: all"))
    assert f"all {len(table):,} rows were dropped (fare_not_positive {len(table):,})" in line
    from rich.console import Console

    from rapidseval.report import load_run, print_summary, summarize, write_report

    run = load_run(res.run_dir)
    assert summarize(run)["warnings"] == res.manifest["warnings"]
    console = Console(record=True, width=200)
    print_summary(run, console)
    assert f"warning: {line}" in console.export_text()
    page = write_report(res.run_dir).read_text()
    assert "id='warnings'" in page and html.escape(line) in page


def test_inputs_out_of_order_warn_and_duplicates_are_refused(clean, tmp_path):
    uris = [str(month_file(clean, DAMAGED)), str(month_file(clean, TRAIN))]  # listed the wrong way round
    evaluation = {"train": [TRAIN], "test": [DAMAGED], "score": [], "replay": None, "shift": None}
    with pytest.raises(rapidseval.RapidsEvalError, match="no usable training rows"):
        rapidseval.run(job(clean, tmp_path / "run", data={"source": uris, "start": TRAIN, "end": DAMAGED},
                           evaluation=evaluation))
    warnings: list[str] = []
    resolve_inputs(load_job(job(clean, tmp_path / "run", data={"source": uris, "start": TRAIN, "end": DAMAGED},
                                evaluation=evaluation)), [TRAIN, DAMAGED], warnings=warnings)
    assert sum("in month order" in w for w in warnings) == 2
    assert sum("every pickup falls outside" in w for w in warnings) == 2
    twice = [str(month_file(clean, TRAIN))] * 2
    with pytest.raises(SpecError, match=f"data: lists .*yellow_tripdata_{TRAIN}.parquet more than once "
                                        f"\\(for {TRAIN}, {DAMAGED}\\)"):
        rapidseval.run(job(clean, tmp_path / "run", data={"source": twice, "start": TRAIN, "end": DAMAGED}))
    # the same file under two spellings is caught once the URIs are resolved
    spelled = [str(month_file(clean, TRAIN)), f"{clean}/./{month_file(clean, TRAIN).name}"]
    with pytest.raises(SpecError, match=f"data.source: {TRAIN} and {DAMAGED} both read .*yellow_tripdata_{TRAIN}"):
        rapidseval.run(job(clean, tmp_path / "run", data={"source": spelled, "start": TRAIN, "end": DAMAGED}))
    copy = tmp_path / "copy.parquet"
    shutil.copy(month_file(clean, TRAIN), copy)
    with pytest.raises(DataError, match=f"copy.parquet \\({DAMAGED}\\) is a copy of the {TRAIN} input"):
        rapidseval.run(job(clean, tmp_path / "run", data={"source": [str(month_file(clean, TRAIN)), str(copy)],
                                                          "start": TRAIN, "end": DAMAGED}))


def test_misplaced_rows_warn_after_the_run(clean, tmp_path):
    """A month whose rows mostly fall outside it (a file of another month under a name
    that does not say so, and no footer to tell) is named in the warnings after the run."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(month_file(clean, TRAIN), data / "a.parquet")
    table = pq.read_table(month_file(clean, TRAIN)).to_pandas()  # January's rows, as CSV
    table.iloc[1:].to_csv(data / "b.csv", index=False, date_format="%Y-%m-%d %H:%M:%S")
    res = rapidseval.run(job(data, tmp_path / "run", data={"source": [str(data / "a.parquet"), str(data / "b.csv")],
                                                           "start": TRAIN, "end": DAMAGED},
                             evaluation={"train": [TRAIN], "test": [DAMAGED], "score": [], "replay": None, "shift": None}))
    mine = [w for w in res.manifest["warnings"] if w.startswith(f"{DAMAGED}: ")]
    assert len(mine) == 2, mine  # every row dropped, and why that is likely
    assert f"rows have pickups outside {DAMAGED}: is the input listed under the right month" in mine[1]


def test_tz_aware_timestamps_become_new_york_wall_clock(clean, tmp_path):
    table = pq.read_table(month_file(clean, DAMAGED))
    naive = table.column("tpep_pickup_datetime").to_pandas()
    for name in ("tpep_pickup_datetime", "tpep_dropoff_datetime"):
        i = table.schema.get_field_index(name)
        utc = pd.Series(table.column(name).to_pandas()).dt.tz_localize("America/New_York", ambiguous=False,
                                                                        nonexistent="shift_forward").dt.tz_convert("UTC")
        table = table.set_column(i, name, pa.array(utc, pa.timestamp("us", tz="UTC")))
    path = tmp_path / "utc" / f"yellow_tripdata_{DAMAGED}.parquet"
    path.parent.mkdir()
    pq.write_table(table, path)
    back = read_month(str(path), DAMAGED, ["pickup_datetime"]).column("pickup_datetime").to_pandas()
    assert (back == naive).all()
    shutil.copy(month_file(clean, TRAIN), path.parent / month_file(clean, TRAIN).name)
    res = rapidseval.run(job(path.parent, tmp_path / "run", evaluation={"train": [TRAIN], "test": [DAMAGED], "score": [],
                                                                         "replay": None, "shift": None}))
    entry = next(i for i in res.manifest["inputs"] if i["month"] == DAMAGED)
    assert entry["timestamps"] == "time zone UTC converted to America/New_York wall-clock time"
    assert res.manifest["wall_clock_zone"] == "America/New_York"
