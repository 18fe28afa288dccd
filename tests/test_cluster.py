"""Jobs on a real Dask cluster: ``dask scheduler`` + 2 ``dask worker`` processes on loopback.

- ``rapidseval run JOB --scheduler ADDRESS`` (S3 inputs read by the workers) gives the same
  tables as a local run, prints the dashboard link, and a planted AWS secret appears in no
  output file, no line of stdout/stderr and no scheduler/worker log;
- a worker killed while it runs a scoring task (a worker plugin SIGKILLs it on its first one)
  still gives identical tables;
- an unreachable scheduler, or one without workers, is a clear error within cluster.timeout;
- tls:// schedulers with certificate paths from the job (never the keys themselves).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import rapidseval
from rapidseval import BackendUnavailable, RapidsEvalError, SpecError
from rapidseval.cli import app
from rapidseval.data.synthetic import generate
from rapidseval.io.rundir import check_complete

from _compare import assert_tables_equal
from _dask_procs import REPO, KillOnFirstTask, dask_processes
from _jobs import override
from _servers import DUMMY_KEY_ID, DUMMY_SECRET, free_port

TABLES = ("monthly", "replay", "shift")
MONTHS = ("2020-01", "2020-03")

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def months(tmp_path_factory):
    out = tmp_path_factory.mktemp("cluster-tlc")
    # the smoke job's shape; 5k-row row groups -> 2 parts per month, so each worker gets tasks
    generate(out, *MONTHS, 20_000, scenario="march2020", seed=1, chunk_rows=5_000)
    return out


def _job(source, out, **extra):
    job = {
        "name": "clustered", "seed": 0, "backend": "cpu",
        "data": {"source": str(source), "start": MONTHS[0], "end": MONTHS[1], "partition_rows": 10_000},
        "model": {"kind": "random_forest", "params": {"n_estimators": 20, "max_depth": 8}},
        "evaluation": {
            "train": ["2020-01"], "test": ["2020-02"], "score": ["2020-03"],
            "replay": {"months": ["2020-03"], "window": "D"},
            "shift": {"reference": "2020-01", "compare": ["2020-02", "2020-03"]},
        },
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out), "report": False},
    }
    return override(job, extra)


@pytest.fixture(scope="module")
def local_run(months, tmp_path_factory):
    return rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path_factory.mktemp("c") / "local"))


@pytest.fixture(scope="module")
def procs(tmp_path_factory):
    """The external cluster; workers hold the same dummy AWS credentials as the ``aws_env`` fixture."""
    logs = tmp_path_factory.mktemp("dask-logs")
    env = {
        "AWS_ACCESS_KEY_ID": DUMMY_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(logs / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(logs / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with dask_processes(logs, n_workers=2, env=env) as p:
        yield p


def _assert_same_tables(a: Path, b: Path) -> None:
    for t in TABLES:
        assert_tables_equal(pq.read_table(a / f"{t}.parquet"), pq.read_table(b / f"{t}.parquet"))


def test_cli_run_on_an_external_scheduler_equals_local_and_leaks_no_secret(
        procs, local_run, months, s3_bucket, s3_endpoint, tmp_path):
    bucket, client = s3_bucket
    for f in sorted(months.glob("*.parquet")):
        client.upload_file(str(f), bucket, f"trips/{f.name}")
    job = tmp_path / "job.yaml"
    import yaml

    job.write_text(yaml.safe_dump(_job(f"s3://{bucket}/trips/yellow_tripdata_{{month}}.parquet", tmp_path / "unused",
                                       **{"data.storage_options": {"endpoint_url": s3_endpoint}})))
    out = tmp_path / "remote"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    assert env["AWS_SECRET_ACCESS_KEY"] == DUMMY_SECRET  # planted (aws_env)
    proc = subprocess.run(
        [sys.executable, "-m", "rapidseval.cli", "run", str(job), "--scheduler", procs.address, "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert procs.address in text and procs.dashboard in text  # the dashboard link is printed
    check_complete(out)
    _assert_same_tables(local_run.run_dir, out)
    man = (out / "manifest.json").read_text()
    assert '"kind": "scheduler"' in man and procs.address in man

    leaks = []
    for where, content in [("stdout", proc.stdout), ("stderr", proc.stderr), ("dask logs", procs.log_text())]:
        leaks += [where for secret in (DUMMY_SECRET, DUMMY_KEY_ID) if secret in content]
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            leaks += [f.name for secret in (DUMMY_SECRET, DUMMY_KEY_ID) if secret.encode() in data]
    assert not leaks


def test_worker_killed_mid_task_gives_identical_tables(procs, local_run, months, tmp_path):
    from distributed import Client

    workers = procs.wait_for_workers(2)
    victim_addr = next(a for a, w in workers.items() if w["name"] == "w0")
    victim = procs.workers[0]
    with Client(procs.address, set_as_default=False, timeout=30) as c:
        c.register_plugin(KillOnFirstTask(victim_addr, "_evaluate_part"))
        try:
            t0 = time.monotonic()
            res = rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path / "killed"),
                                 scheduler=procs.address)
            elapsed = time.monotonic() - t0
        finally:
            c.unregister_worker_plugin(KillOnFirstTask.name)
    try:
        assert victim.wait(timeout=10) == -9  # it really died, in the middle of a scoring task
        assert elapsed < 60
        check_complete(res.run_dir)
        _assert_same_tables(local_run.run_dir, res.run_dir)
        rows = res.manifest["rows"]["total"]
        assert rows == local_run.manifest["rows"]["total"]  # no part counted twice or lost
    finally:
        procs.spawn_worker()  # leave two workers for whoever comes next
        procs.wait_for_workers(2)


def test_unreachable_scheduler_is_a_clear_error_within_the_timeout(months, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(RapidsEvalError, match=rf"cannot reach Dask scheduler at {address} within 2 s") as err:
        rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path / "o", **{"cluster.timeout": 2}),
                       scheduler=address)
    assert time.monotonic() - t0 < 2 + 5
    assert "\n" not in str(err.value).strip()
    job = tmp_path / "job.yaml"
    import yaml

    job.write_text(yaml.safe_dump(_job(months / "yellow_tripdata_{month}.parquet", tmp_path / "o")))
    res = CliRunner().invoke(app, ["run", str(job), "--scheduler", address, "--set", "cluster.timeout=1", "-q"])
    assert res.exit_code == 2 and "cannot reach Dask scheduler" in res.output and "Traceback" not in res.output


def test_scheduler_without_workers_is_a_clear_error(months, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        t0 = time.monotonic()
        with pytest.raises(RapidsEvalError, match="has no workers after 1 s"):
            rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path / "o", **{"cluster.timeout": 1}),
                           scheduler=empty.scheduler_address)
        assert time.monotonic() - t0 < 1 + 5


def test_tls_scheduler_with_certificate_paths(local_run, months, tmp_path):
    pytest.importorskip("cryptography")
    from distributed import LocalCluster
    from distributed.security import Security

    sec = Security.temporary()
    certs = {}
    for name, pem in (("ca.pem", sec.tls_ca_file), ("cert.pem", sec.tls_client_cert), ("key.pem", sec.tls_client_key)):
        certs[name] = tmp_path / name
        certs[name].write_text(pem)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tls://", security=sec,
                      dashboard_address=":0") as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        tls = {"ca_file": str(certs["ca.pem"]), "cert": str(certs["cert.pem"]), "key": str(certs["key.pem"])}
        res = rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path / "tls",
                                  **{"cluster.tls": tls}), scheduler=cluster.scheduler_address)
        _assert_same_tables(local_run.run_dir, res.run_dir)
        with pytest.raises(RapidsEvalError, match="cannot reach Dask scheduler"):  # no certificate, no connection
            rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path / "plain",
                                **{"cluster.timeout": 2}), scheduler=cluster.scheduler_address)


def test_tls_spec_takes_paths_never_keys(tmp_path):
    from rapidseval.spec import load_job

    with pytest.raises(SpecError, match="path of a PEM file"):
        load_job({"cluster": {"kind": "scheduler", "address": "tls://h:8786",
                              "tls": {"ca_file": "ca.pem", "cert": "c.pem", "key": "-----BEGIN PRIVATE KEY-----\nMII"}}})
    with pytest.raises(SpecError, match="tls:// scheduler address"):
        load_job({"cluster": {"kind": "scheduler", "address": "tcp://h:8786", "tls": {"ca_file": "a", "cert": "b"}}})
    with pytest.raises(SpecError, match="no credentials"):
        load_job({"cluster": {"kind": "scheduler", "address": "tcp://user:pw@h:8786"}})
    spec = load_job({"cluster": {"kind": "scheduler", "address": "tls://h:8786",
                                 "tls": {"ca_file": str(tmp_path / "missing.pem"), "cert": "c.pem"}}})
    from rapidseval.cluster import security_for

    with pytest.raises(SpecError, match=r"cluster.tls.ca_file: no such file .*missing.pem"):
        security_for(spec.cluster)


def test_local_cuda_needs_the_gpu_backend(months, tmp_path):
    with pytest.raises(BackendUnavailable, match="local-cuda needs the gpu backend"):
        rapidseval.run(_job(months / "yellow_tripdata_{month}.parquet", tmp_path / "o", **{"cluster.kind": "local-cuda"}))


def _slow_add(item, shared):
    time.sleep(0.05)
    return item + shared["offset"]


def test_shared_data_lost_everywhere_is_scattered_again_and_each_item_yielded_once():
    from distributed import Client, LocalCluster

    from rapidseval.cluster import Executor

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        ex = Executor("scheduler", client=client, description="test cluster")
        shared = ex.share({"offset": 100})
        first_key = shared.future.key
        seen = []
        for i, value in ex.map_unordered(_slow_add, range(8), shared):
            if not seen:
                client.cancel([shared.future], force=True)  # as if every worker holding it had died
            seen.append((i, value))
        assert sorted(seen) == [(i, i + 100) for i in range(8)]  # each item exactly once, none lost
        assert shared.future.key != first_key  # it was scattered again
