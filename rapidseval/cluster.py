"""Where tasks run: a local Dask cluster (CPU or CUDA), an existing scheduler, or threads.

:func:`open_executor` is a context manager yielding an :class:`Executor`
with one verb, :meth:`Executor.map_unordered`, which runs a function over
items where the data lives and yields results as they finish (so progress
can be shown).  Large shared arguments (a fitted model) are broadcast once
with :meth:`Executor.share`.

Cluster kinds (``cluster.kind`` in the job, :data:`rapidseval.spec.CLUSTER_KINDS`):

``local``
    ``LocalCluster`` of worker processes (``n_workers`` x
    ``threads_per_worker``, ``memory_limit`` each); on the gpu backend the
    backend's cluster factory (``LocalCUDACluster``, one worker per GPU).
``local-cuda``
    ``LocalCUDACluster`` explicitly (gpu backend only): one worker per
    visible GPU, an RMM pool (``rmm_pool_size``) and device-to-host spilling
    above ``device_memory_limit``.  Built by the backend's cluster factory:
    only :mod:`rapidseval.backend` imports ``dask_cuda``.
``scheduler``
    An existing cluster at ``address`` (``tcp://`` or ``tls://``).  TLS
    files come from ``cluster.tls`` (paths) or Dask's own configuration
    (``distributed.comm.tls.*``), as for any Dask client.  Failing to
    connect, or a scheduler with no workers, is a clear error within
    ``timeout`` seconds.
``threads``
    A thread pool in this process (debugging, tests).

Fault tolerance: the tasks are pure functions of their part, so when a
worker dies Dask reruns its tasks elsewhere and the results are the same.
Each item is yielded exactly once.  Shared objects are broadcast to every
worker; should every copy be lost anyway, they are scattered again and the
unfinished items resubmitted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .core.errors import BackendUnavailable, RapidsEvalError, SpecError

__all__ = ["Executor", "open_executor", "security_for"]

#: how often a round of items is resubmitted after shared data was lost
_MAX_RESUBMITS = 3


@dataclass
class _Shared:
    """An object broadcast to the workers: the object itself (to scatter again) and its future."""

    obj: Any
    future: Any


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
            return _Shared(obj, self._scatter(obj))
        return obj

    def _scatter(self, obj):
        # a list of one, so that a dict or list is shipped whole rather than element by element
        return self.client.scatter([obj], broadcast=True, hash=False)[0]

    def _check_connected(self, exc: BaseException) -> None:
        if self.client is not None and self.client.status not in ("running", "connecting"):
            raise RapidsEvalError(f"lost the Dask cluster ({self.description}): {exc}") from exc

    def map_unordered(self, fn: Callable, items: Iterable[Any], *args, **kwargs) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(item, *args, **kwargs))`` as tasks finish, each index exactly once."""
        items = list(items)
        if self.client is None:
            assert self.pool is not None
            futures = {self.pool.submit(fn, item, *args, **kwargs): i for i, item in enumerate(items)}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
            return
        yield from self._map_dask(fn, items, args, kwargs)

    def _map_dask(self, fn, items, args, kwargs):
        from distributed import as_completed as dask_as_completed

        pending = set(range(len(items)))
        for attempt in range(_MAX_RESUBMITS + 1):
            a = [x.future if isinstance(x, _Shared) else x for x in args]
            kw = {k: (v.future if isinstance(v, _Shared) else v) for k, v in kwargs.items()}
            futures = {self.client.submit(fn, items[i], *a, pure=False, **kw): i for i in sorted(pending)}
            index = {f.key: i for f, i in futures.items()}
            lost: list[BaseException] = []
            try:
                for fut in dask_as_completed(list(futures), loop=self.client.loop):
                    try:
                        result = fut.result()
                    except CancelledError as exc:  # a shared input was lost with every worker holding it
                        self._check_connected(exc)
                        lost.append(exc)
                        continue
                    except OSError as exc:
                        self._check_connected(exc)
                        raise
                    i = index[fut.key]
                    pending.discard(i)
                    yield i, result
            finally:
                for f in futures:
                    f.release()
            if not pending:
                return
            if attempt < _MAX_RESUBMITS:
                shared = [x for x in (*args, *kwargs.values()) if isinstance(x, _Shared)]
                for s in shared:
                    s.future = self._scatter(s.obj)
        raise RapidsEvalError(
            f"{len(pending)} task(s) of {getattr(fn, '__name__', fn)} could not finish on {self.description}: "
            f"{lost[-1] if lost else 'cancelled'} (after {_MAX_RESUBMITS} resubmissions)"
        )


def security_for(cluster_spec):
    """The ``distributed.security.Security`` for ``cluster_spec`` (None: Dask's configured default).

    Raises
    ------
    SpecError
        A TLS file named in ``cluster.tls`` does not exist.
    """
    tls = cluster_spec.tls
    if tls is None:
        return None
    from distributed.security import Security

    paths = {}
    for field, value in (("ca_file", tls.ca_file), ("cert", tls.cert), ("key", tls.key)):
        if value is None:
            continue
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.isfile(path):
            raise SpecError(f"cluster.tls.{field}: no such file {path}")
        paths[field] = path
    return Security(
        tls_ca_file=paths["ca_file"],
        tls_client_cert=paths["cert"],
        tls_client_key=paths.get("key"),
        require_encryption=True,
    )


def _size(text: str) -> float | int | str:
    """dask-cuda sizes: ``"0.8"`` -> 0.8 (a fraction of the device), ``"1e9"`` -> bytes, ``"24GB"`` as is."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if value <= 1 else int(value)


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Ignore SIGINT in this process while the block runs: processes it starts inherit "ignored"."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _spawned_workers(before: set[int]) -> int:
    """Worker processes (multiprocessing spawn children) started since ``before`` (their PIDs)."""
    import psutil

    count = 0
    for child in psutil.Process().children():
        if child.pid in before:
            continue
        try:
            if any("spawn_main" in part for part in child.cmdline()):
                count += 1
        except psutil.Error:
            continue
    return count


def _start_local_cluster(factory: Callable[..., Any], kwargs: dict[str, Any], workers: int | None):
    """Start a local cluster so that a Ctrl-C stops only this process, which tears the cluster down.

    A Ctrl-C goes to the whole process group: a worker process interrupted half-way through
    its imports prints its own traceback.  So this process ignores SIGINT while the workers
    are forked (they inherit "ignored" for their lifetime), and takes it again as soon as the
    ``workers`` expected processes exist, while they still import and connect: the cluster
    is built in a helper thread and the main thread waits, interruptibly.  An interrupt then
    waits for the start to end, closes the cluster and raises KeyboardInterrupt.  With
    ``workers`` None (how many is not known up front: one per GPU) SIGINT stays ignored for
    the whole start.
    """
    import psutil

    if workers is None or threading.current_thread() is not threading.main_thread():
        with _workers_ignore_sigint():
            return factory(**kwargs)
    outcome: dict[str, Any] = {}

    def build():
        try:
            outcome["cluster"] = factory(**kwargs)
        except BaseException as exc:  # handed to the main thread
            outcome["error"] = exc

    before = {p.pid for p in psutil.Process().children()}
    thread = threading.Thread(target=build, name="rapidseval-cluster-start", daemon=True)
    with _workers_ignore_sigint():
        thread.start()
        while thread.is_alive() and _spawned_workers(before) < workers:
            thread.join(0.02)
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        with _workers_ignore_sigint():
            thread.join()
            if "cluster" in outcome:
                with contextlib.suppress(Exception):
                    outcome["cluster"].close()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["cluster"]


@contextlib.contextmanager
def _connect(cluster_spec) -> Iterator[Executor]:
    from distributed import Client

    address = cluster_spec.address
    timeout = cluster_spec.timeout
    security = security_for(cluster_spec)
    try:
        client = Client(address, timeout=timeout, set_as_default=False, security=security)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:  # TypeError: tls:// without TLS settings
        raise RapidsEvalError(
            f"cannot reach Dask scheduler at {address} within {timeout:g} s (cluster.timeout): {exc}"
        ) from exc
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError) as exc:
            raise RapidsEvalError(f"Dask scheduler at {address} has no workers after {timeout:g} s (cluster.timeout)") from exc
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        yield Executor(
            "scheduler",
            client=client,
            description=f"scheduler {address} ({len(workers)} workers, {threads} threads)",
            dashboard_link=client.dashboard_link,
        )
    finally:
        client.close()


@contextlib.contextmanager
def open_executor(cluster_spec, backend) -> Iterator[Executor]:
    """Start (or connect to) what ``cluster_spec`` names; tear it down after."""
    kind = cluster_spec.kind
    if kind == "threads":
        n = cluster_spec.n_workers * cluster_spec.threads_per_worker
        with ThreadPoolExecutor(max_workers=n) as pool:
            yield Executor(kind, pool=pool, description=f"{n} threads in this process")
        return

    if kind == "scheduler":
        with _connect(cluster_spec) as ex:
            yield ex
        return

    from distributed import Client

    if kind == "local-cuda" and backend.name != "gpu":
        raise BackendUnavailable(
            f"cluster.kind local-cuda needs the gpu backend, but the backend is {backend.name} ({backend.reason})"
        )
    # task errors reach the user once, as rapidseval's one-line error, not as worker log tracebacks
    kwargs: dict[str, Any] = {"dashboard_address": ":0", "silence_logs": logging.CRITICAL}
    if backend.name == "cpu":
        kwargs.update(
            n_workers=cluster_spec.n_workers,
            threads_per_worker=cluster_spec.threads_per_worker,
            processes=True,
            memory_limit=_size(cluster_spec.memory_limit),
        )
    else:  # LocalCUDACluster: one worker per visible GPU (CUDA_VISIBLE_DEVICES)
        kwargs.update(threads_per_worker=cluster_spec.threads_per_worker, memory_limit=_size(cluster_spec.memory_limit))
        if cluster_spec.rmm_pool_size is not None:
            kwargs["rmm_pool_size"] = _size(cluster_spec.rmm_pool_size)
        if cluster_spec.device_memory_limit is not None:
            kwargs["device_memory_limit"] = _size(cluster_spec.device_memory_limit)
    os.environ.setdefault("RAPIDS_NO_INITIALIZE", "1")
    with contextlib.ExitStack() as stack:
        expected = cluster_spec.n_workers if backend.name == "cpu" else None
        cluster = stack.enter_context(_start_local_cluster(backend.cluster_factory, kwargs, expected))
        client = stack.enter_context(Client(cluster, set_as_default=False))
        n = len(cluster.workers)
        if backend.name == "gpu":
            what = f"LocalCUDACluster: {n} workers (one per GPU)"
            if cluster_spec.rmm_pool_size:
                what += f", RMM pool {cluster_spec.rmm_pool_size}"
            if cluster_spec.device_memory_limit:
                what += f", spilling to host above {cluster_spec.device_memory_limit}"
        else:
            what = f"LocalCluster: {n} worker processes x {cluster_spec.threads_per_worker} threads"
        yield Executor(kind, client=client, description=what, dashboard_link=client.dashboard_link)
