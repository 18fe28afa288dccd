"""Start a Dask cluster on SLURM for rapidseval (needs `pip install dask-jobqueue`).

    python cluster/slurm.py --jobs 4 --gpus-per-job 1
    rapidseval run jobs/nyc_taxi_2020.yaml --scheduler <printed address> --backend gpu
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cores", type=int, default=8)
    ap.add_argument("--memory", default="64GB")
    ap.add_argument("--gpus-per-job", type=int, default=0)
    ap.add_argument("--queue", default=None)
    ap.add_argument("--walltime", default="04:00:00")
    args = ap.parse_args()

    from dask_jobqueue import SLURMCluster

    extra = [f"--gres=gpu:{args.gpus_per_job}"] if args.gpus_per_job else []
    worker_cmd = "dask cuda worker" if args.gpus_per_job else None
    cluster = SLURMCluster(
        cores=args.cores,
        memory=args.memory,
        queue=args.queue,
        walltime=args.walltime,
        job_extra_directives=extra,
        **({"worker_command": worker_cmd} if worker_cmd else {}),
    )
    cluster.scale(jobs=args.jobs)
    print(f"scheduler: {cluster.scheduler_address}  dashboard: {cluster.dashboard_link}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        cluster.close()


if __name__ == "__main__":
    main()
