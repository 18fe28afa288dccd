"""A real Dask cluster for tests: a ``dask scheduler`` and ``dask worker`` processes on loopback.

Started with ``python -m dask`` from this interpreter on free ports, logs to
files (tests grep them), bounded waits, and every process killed at the end.
Also holds :class:`KillOnFirstTask`, a worker plugin that kills its own
worker process the moment it starts a chosen task: a deterministic
"worker dies mid-task".
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from distributed.diagnostics.plugin import WorkerPlugin

from _servers import free_port

REPO = Path(__file__).resolve().parent.parent


class KillOnFirstTask(WorkerPlugin):
    """SIGKILL the worker at ``address`` when it starts executing a task whose key contains ``prefix``."""

    name = "rapidseval-test-kill"

    def __init__(self, address: str, prefix: str):
        self.address = address
        self.prefix = prefix
        self.worker = None

    def setup(self, worker):
        self.worker = worker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and self.worker.address == self.address and self.prefix in str(key):
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class DaskProcesses:
    """A running scheduler and its workers (``Popen`` objects) with their log files."""

    address: str
    dashboard: str
    logs: Path
    env: dict[str, str]
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def spawn_worker(self, nthreads: int = 1) -> subprocess.Popen:
        i = len(self.workers)
        log = open(self.logs / f"worker-{i}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", self.address, "--nworkers", "1", "--nthreads", str(nthreads),
             "--no-nanny", "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}",
             "--local-directory", str(self.logs / f"w{i}")],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
        )
        log.close()
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 60) -> dict:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as c:
            c.wait_for_workers(n, timeout=timeout)
            return c.scheduler_info(n_workers=-1)["workers"]

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def dask_processes(logs: Path, n_workers: int = 2, env: dict[str, str] | None = None,
                   timeout: float = 60) -> Iterator[DaskProcesses]:
    """Scheduler + ``n_workers`` single-threaded worker processes; yields once all have joined."""
    logs.mkdir(parents=True, exist_ok=True)
    port, dash = free_port(), free_port()
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log = open(logs / "scheduler.log", "wb")
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", f"127.0.0.1:{dash}", "--no-show"],
        stdout=log, stderr=subprocess.STDOUT, env=full_env, start_new_session=True,
    )
    log.close()
    procs = DaskProcesses(f"tcp://127.0.0.1:{port}", f"http://127.0.0.1:{dash}/status", logs, full_env, scheduler)
    try:
        deadline = time.monotonic() + timeout
        while "Scheduler at:" not in (logs / "scheduler.log").read_text(errors="replace"):
            if scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start:\n{procs.log_text()}")
            time.sleep(0.1)
        for _ in range(n_workers):
            procs.spawn_worker()
        procs.wait_for_workers(n_workers, timeout=max(deadline - time.monotonic(), 5))
        yield procs
    finally:
        for p in [*procs.workers, scheduler]:
            _stop(p)
