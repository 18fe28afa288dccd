"""What checks and slices cost: the demo job with and without them.

Bar (issue 17): the checks and slices of ``jobs/nyc_taxi_2020.yaml`` add <= 15% to its
score + reduce stage (``timings_s.score_reduce`` in the manifest: every month read,
featurised, scored and reduced on the workers, where the data checks and slice counts run
in the same pass). The whole job's wall time is reported beside it: the client-side checks
(assertions, leakage, consistency, the baseline's fit) sit outside score + reduce, and
their cost is shown, not hidden.

The two variants run alternately (on-off, off-on, ...) on the same generated months, each
with its own fresh cluster, after one dropped warm-up round; the medians are compared. The demo's size is the default::

    .venv/bin/python -m pytest benchmarks/bench_checks.py --benchmark-only -s
    RAPIDSEVAL_BENCH_CHECKS="rows_per_month,rounds"   (default 200000,5; asserted at 200000)
"""

from __future__ import annotations

import copy
import statistics
import os
from pathlib import Path

import pytest
import yaml

import rapidseval
from rapidseval.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
ROWS, ROUNDS = (int(x) for x in os.environ.get("RAPIDSEVAL_BENCH_CHECKS", "200000,5").split(","))
BAR = 0.15


def _demo_job(data_dir: Path, out: Path, *, checks: bool) -> dict:
    """The demo job on local generated months; without its checks and slices when ``checks`` is False."""
    raw = yaml.safe_load((ROOT / "jobs" / "nyc_taxi_2020.yaml").read_text())
    job = copy.deepcopy(raw)
    job["data"] = {**job["data"], "source": str(data_dir / "yellow_tripdata_{month}.parquet")}
    job["data"].pop("synthetic", None)
    job["output"] = {"dir": str(out), "report": False}
    if not checks:
        job.pop("checks", None)
        job["evaluation"].pop("slices", None)
    return job


@pytest.fixture(scope="module")
def demo_months(tmp_path_factory) -> Path:
    """The demo's months (its generator settings), written once."""
    raw = yaml.safe_load((ROOT / "jobs" / "nyc_taxi_2020.yaml").read_text())
    syn = raw["data"]["synthetic"]
    out = tmp_path_factory.mktemp("demo-months")
    generate(out, raw["data"]["start"], raw["data"]["end"], ROWS, scenario=syn["scenario"], seed=syn["seed"])
    return out


def _run(job: dict) -> dict[str, float]:
    result = rapidseval.run(job)
    timings = result.manifest["timings_s"]
    return {"score_reduce": timings["score_reduce"], "total": timings["total"],
            "checks": len(result.checks), "slices": len(result.slices)}


def test_checks_and_slices_cost(benchmark, demo_months, tmp_path):
    """Median score+reduce seconds with checks and slices vs without, alternating runs."""
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    rounds = {"n": 0}

    def both():
        # the order alternates (on-off, off-on, ...): neither variant always runs on a colder machine
        order = (True, False) if rounds["n"] % 2 == 0 else (False, True)
        rounds["n"] += 1
        for checks in order:
            runs[checks].append(_run(_demo_job(demo_months, tmp_path / f"run-{checks}", checks=checks)))

    # one warm-up round, dropped: the process's first job pays one-time costs (imports, compiled kernels)
    both()
    runs[True].clear(), runs[False].clear()
    benchmark.pedantic(both, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    on = {k: statistics.median(r[k] for r in runs[True]) for k in ("score_reduce", "total")}
    off = {k: statistics.median(r[k] for r in runs[False]) for k in ("score_reduce", "total")}
    added = on["score_reduce"] / off["score_reduce"] - 1
    benchmark.extra_info.update({"rows_per_month": ROWS, "score_reduce_on_s": on["score_reduce"],
                                 "score_reduce_off_s": off["score_reduce"], "added": added,
                                 "total_on_s": on["total"], "total_off_s": off["total"],
                                 "runs_on": runs[True], "runs_off": runs[False]})
    print(f"\ndemo job, {ROWS:,} rows/month, {ROUNDS} rounds (os.cpu_count()={os.cpu_count()}): "
          f"score+reduce {on['score_reduce']:.2f} s with checks+slices vs {off['score_reduce']:.2f} s without "
          f"-> +{added:.1%} (bar +{BAR:.0%}); whole job {on['total']:.1f} s vs {off['total']:.1f} s "
          f"({runs[True][0]['checks']} check rows, {runs[True][0]['slices']} slice rows)")
    assert runs[True][0]["checks"] > 0 and runs[True][0]["slices"] > 0, "the checks and slices did not run"
    if ROWS == 200_000:
        assert added <= BAR, f"checks and slices add {added:.1%} to score+reduce (bar {BAR:.0%})"
