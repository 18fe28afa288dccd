"""A 12-month replay through an external 2-worker cluster vs the same job on LocalCluster.

Bar: external wall time <= 1.3x LocalCluster's (the job starts its LocalCluster itself,
as a user's run does; the external cluster is already up, as it would be).  Both use
2 single-threaded worker processes.  Rounds are interleaved (local, then external) so
that load from elsewhere hits both alike; the ratio of medians is printed and kept in
the benchmark's extra_info.

    RAPIDSEVAL_BENCH_CLUSTER_ROWS=1000000 .venv/bin/python -m pytest benchmarks/bench_cluster.py --benchmark-only -s

Environment: RAPIDSEVAL_BENCH_CLUSTER_ROWS (rows per month, default 20000 so it runs in
a minute), RAPIDSEVAL_BENCH_ROUNDS (default 3), RAPIDSEVAL_BENCH_ASSERT=1 to fail above the bar.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rapidseval

ROWS = int(os.environ.get("RAPIDSEVAL_BENCH_CLUSTER_ROWS", "20000"))
ROUNDS = int(os.environ.get("RAPIDSEVAL_BENCH_ROUNDS", "3"))
BAR = 1.3
REPLAY = [f"2020-{m:02d}" for m in range(1, 13)]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """``dask scheduler`` + 2 ``dask worker`` processes (1 thread each) on loopback."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("bench-dask")
    port = _port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(rapidseval.__file__).parent.parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    address = f"tcp://127.0.0.1:{port}"
    cmds = [[sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--dashboard-address", ":0", "--no-show"]]
    cmds += [[sys.executable, "-m", "dask", "worker", address, "--nworkers", "1", "--nthreads", "1",
              "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(logs / f"w{i}")] for i in range(2)]
    procs = []
    try:
        for i, cmd in enumerate(cmds):
            with open(logs / f"p{i}.log", "wb") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
            if i == 0:
                time.sleep(1.0)
        with Client(address, timeout=60, set_as_default=False) as c:
            c.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=15)


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    from rapidseval.data.synthetic import generate

    out = tmp_path_factory.mktemp("bench-cluster-tlc")
    generate(out, "2019-12", "2020-12", ROWS, scenario="march2020", seed=3)
    return out


def _job(months: Path, out: Path, kind: str) -> dict:
    return {
        "name": f"bench-{kind}", "seed": 0, "backend": "cpu",
        "data": {"source": str(months / "yellow_tripdata_{month}.parquet"), "start": "2019-12", "end": "2020-12"},
        "model": {"params": {"n_estimators": 20, "max_depth": 8}},
        "evaluation": {"train": ["2019-12"], "test": [], "score": [],
                       "replay": {"months": REPLAY, "window": "D"},
                       "shift": {"reference": "2019-12", "compare": REPLAY}},
        "cluster": {"kind": "local", "n_workers": 2, "threads_per_worker": 1},
        "output": {"dir": str(out), "report": False},
    }


def test_replay_12_months_external_vs_local_cluster(benchmark, external, months, tmp_path):
    local_times: list[float] = []
    results = {}

    def run_local():
        t0 = time.perf_counter()
        results["local"] = rapidseval.run(_job(months, tmp_path / "local", "local"))
        local_times.append(time.perf_counter() - t0)

    def run_external():
        results["external"] = rapidseval.run(_job(months, tmp_path / "external", "external"), scheduler=external)

    benchmark.pedantic(run_external, setup=run_local, rounds=ROUNDS, warmup_rounds=1)
    ext = benchmark.stats.stats.median
    loc = statistics.median(local_times[1:] or local_times)  # the first local run is the warm-up's
    ratio = ext / loc
    def compute(res):  # wall time less cluster start-up: reading, training, scoring, assembling
        t = res.manifest["timings_s"]
        return sum(t.get(k, 0.0) for k in ("resolve_inputs", "read_train", "train", "score_reduce", "assemble"))

    compute_ratio = compute(results["external"]) / compute(results["local"])
    benchmark.extra_info.update({"compute_ratio_last_round": round(compute_ratio, 3)})
    benchmark.extra_info.update({"rows_per_month": ROWS, "months_replayed": len(REPLAY), "local_median_s": round(loc, 3),
                                 "external_median_s": round(ext, 3), "ratio": round(ratio, 3), "bar": BAR})
    print(f"\n12-month replay, {ROWS:,} rows/month: LocalCluster {loc:.2f} s, external 2-worker cluster {ext:.2f} s, "
          f"ratio {ratio:.2f} (bar <= {BAR}); without LocalCluster start-up (last round) {compute_ratio:.2f}")
    for t in ("monthly", "replay", "shift"):  # same job, same answers, wherever it ran
        a, b = getattr(results["local"], t), getattr(results["external"], t)
        assert a.equals(b), t
    if os.environ.get("RAPIDSEVAL_BENCH_ASSERT") == "1":
        assert ratio <= BAR
