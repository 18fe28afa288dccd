"""Start a Dask cluster on SLURM for rapidseval (needs `pip install dask-jobqueue`).

    python cluster/slurm.py --jobs 4 --gpus-per-job 1 --scheduler-file ~/rapidseval-scheduler.json
    rapidseval run jobs/nyc_taxi_2020.yaml --scheduler <printed address> --backend gpu

Each SLURM job runs one Dask worker (``dask cuda worker``, one process per GPU, with
``--gpus-per-job``).  Workers read the inputs themselves: give them S3 credentials
through the environment (``--env AWS_PROFILE=...``, exported before the job starts) or
an instance role, never through the job file.  For TLS, pass ``--tls-dir`` holding
``ca.pem``, ``cert.pem`` and ``key.pem``; then run with ``--scheduler tls://...`` and
``cluster.tls`` paths in the job (or Dask's TLS config).
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="SLURM jobs (one worker each)")
    ap.add_argument("--cores", type=int, default=8)
    ap.add_argument("--memory", default="64GB")
    ap.add_argument("--gpus-per-job", type=int, default=0)
    ap.add_argument("--queue", default=None)
    ap.add_argument("--account", default=None)
    ap.add_argument("--walltime", default="04:00:00")
    ap.add_argument("--rmm-pool-size", default="0.9", help="GPU workers: RMM pool per GPU")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE exported in each job (repeatable)")
    ap.add_argument("--tls-dir", default=None, help="directory with ca.pem, cert.pem, key.pem")
    ap.add_argument("--scheduler-file", default=None, help="also write the scheduler's address here")
    args = ap.parse_args()

    from dask_jobqueue import SLURMCluster

    kwargs = {}
    if args.gpus_per_job:
        kwargs["job_extra_directives"] = [f"--gres=gpu:{args.gpus_per_job}"]
        kwargs["worker_command"] = f"dask cuda worker --rmm-pool-size {args.rmm_pool_size}"
    if args.tls_dir:
        from distributed.security import Security

        d = os.path.abspath(args.tls_dir)
        pem = {n: os.path.join(d, f"{n}.pem") for n in ("ca", "cert", "key")}
        kwargs["protocol"] = "tls://"
        kwargs["security"] = Security(
            tls_ca_file=pem["ca"], tls_scheduler_cert=pem["cert"], tls_scheduler_key=pem["key"],
            tls_worker_cert=pem["cert"], tls_worker_key=pem["key"],
            tls_client_cert=pem["cert"], tls_client_key=pem["key"], require_encryption=True,
        )
    if args.scheduler_file:
        kwargs["scheduler_options"] = {"scheduler_file": os.path.expanduser(args.scheduler_file)}
    cluster = SLURMCluster(
        cores=args.cores,
        processes=1,
        memory=args.memory,
        queue=args.queue,
        account=args.account,
        walltime=args.walltime,
        job_script_prologue=[f"export {e}" for e in args.env],
        **kwargs,
    )
    cluster.scale(jobs=args.jobs)
    print(f"scheduler: {cluster.scheduler_address}  dashboard: {cluster.dashboard_link}", flush=True)
    print(f"run: rapidseval run JOB --scheduler {cluster.scheduler_address}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
