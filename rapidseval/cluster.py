"""Where tasks run: a local Dask cluster, an existing scheduler, or threads.

:func:`open_executor` is a context manager yielding an :class:`Executor`
with one verb, :meth:`Executor.map_unordered`, which runs a function over
items where the data lives and yields results as they finish (so progress
can be shown).  Large shared arguments (a fitted model) are broadcast once
with :meth:`Executor.share`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .errors import RapidsEvalError

__all__ = ["Executor", "open_executor"]


@dataclass
class Executor:
    """Runs tasks on a Dask client or, for ``kind: threads``, a thread pool."""

    kind: str
    client: Any = None
    pool: ThreadPoolExecutor | None = None
    description: str = ""
    dashboard_link: str | None = None

    def share(self, obj):
        """Ship ``obj`` to every worker once; pass the result to :meth:`map_unordered`."""
        if self.client is not None:
            return self.client.scatter(obj, broadcast=True, hash=False)
        return obj

    def map_unordered(self, fn: Callable, items: Iterable[Any], *args, **kwargs) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(item, *args, **kwargs))`` as tasks finish."""
        items = list(items)
        if self.client is not None:
            from distributed import as_completed as dask_as_completed

            futures = [self.client.submit(fn, item, *args, pure=False, **kwargs) for item in items]
            index = {f.key: i for i, f in enumerate(futures)}
            try:
                for fut in dask_as_completed(futures, loop=self.client.loop):
                    yield index[fut.key], fut.result()
            finally:
                for f in futures:
                    f.release()
            return
        assert self.pool is not None
        futures = {self.pool.submit(fn, item, *args, **kwargs): i for i, item in enumerate(items)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


@contextlib.contextmanager
def open_executor(cluster_spec, backend) -> Iterator[Executor]:
    """Start (or connect to) what ``cluster_spec`` names; tear it down after."""
    kind = cluster_spec.kind
    if kind == "threads":
        n = cluster_spec.n_workers * cluster_spec.threads_per_worker
        with ThreadPoolExecutor(max_workers=n) as pool:
            yield Executor(kind, pool=pool, description=f"{n} threads in this process")
        return

    from distributed import Client

    if kind == "scheduler":
        address = cluster_spec.address
        try:
            client = Client(address, timeout=cluster_spec.timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise RapidsEvalError(
                f"cannot reach Dask scheduler at {address} within {cluster_spec.timeout:g} s: {exc}"
            ) from exc
        try:
            n = len(client.scheduler_info().get("workers", {}))
            yield Executor(kind, client=client, description=f"scheduler {address} ({n} workers)", dashboard_link=client.dashboard_link)
        finally:
            client.close()
        return

    # local: LocalCluster on CPU, LocalCUDACluster (one worker per GPU) on GPU
    # task errors reach the user once, as rapidseval's one-line error, not as worker log tracebacks
    kwargs: dict[str, Any] = {"dashboard_address": ":0", "silence_logs": logging.CRITICAL}
    if backend.name == "cpu":
        kwargs.update(
            n_workers=cluster_spec.n_workers,
            threads_per_worker=cluster_spec.threads_per_worker,
            processes=True,
            memory_limit=cluster_spec.memory_limit,
        )
    os.environ.setdefault("RAPIDS_NO_INITIALIZE", "1")
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(backend.cluster_factory(**kwargs))
        client = stack.enter_context(Client(cluster, set_as_default=False))
        n = len(cluster.workers)
        what = "LocalCUDACluster" if backend.name == "gpu" else "LocalCluster"
        yield Executor(
            kind,
            client=client,
            description=f"{what}: {n} worker processes x {cluster_spec.threads_per_worker} threads",
            dashboard_link=client.dashboard_link,
        )
