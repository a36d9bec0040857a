"""Where a batch's per-id jobs run, and how Ctrl-C stops them.

One per-id job (:func:`run_one`: ``export()`` with every failure caught and turned into a
record) runs on one of two executors:

- ``local`` (:func:`run_local`): a thread pool of ``workers`` threads. Fetching is I/O
  (sockets, Draco decode and the numpy writers release the GIL), so threads overlap well and
  meshes stream through: at most ``2 * workers`` ids are in flight, and nothing but a small
  record is kept per id.
- ``dask`` (:func:`run_dask`): the same job submitted to a ``distributed`` cluster
  (``client=``, a scheduler address, or a ``LocalCluster`` for ``dask-local``). Workers write
  outputs to ``out_dir``, which must be a path they share with the client; records come back
  to the client, which writes the manifest.

Politeness: a process-wide token bucket (``max_requests_per_second``; each fetch call takes
a token) and a backoff shared by all workers of a process (see :mod:`mesh_export.retrieve.fetch`).
On Dask each worker process gets an equal share of the rate.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

from mesh_export.errors import InvalidArgumentError
from mesh_export.jobs.manifest import record_failed, record_ok

EXECUTORS = ("local", "dask", "dask-local")


# ------------------------------------------------------------------- per-id job


def run_one(root_id, export_kwargs: dict, rate: float | None = None, threads: int | None = None) -> dict:
    """Export one id and return its manifest record; never raises for a failed id.

    The same function runs in a local thread and on a Dask worker; ``rate`` is this
    process's share of the request rate, ``threads`` this export's graphene fragment requests in
    flight (None: a whole manifest at once; the process-wide ``--max-connections`` cap is shared)."""
    from mesh_export.jobs.export import export
    from mesh_export.retrieve.fetch import FRAGMENT_THREADS, GRAPHENE_THREADS, set_rate_limit

    set_rate_limit(rate)
    FRAGMENT_THREADS.set(1)  # the batch's workers are the parallelism
    # Our own graphene fetch asks for every fragment at once; the process-wide cap on requests
    # in flight, not a per-worker share, keeps the batch polite.
    GRAPHENE_THREADS.set(threads)
    started = time.perf_counter()
    try:
        return record_ok(export(root_id, **export_kwargs), started)
    except Exception as exc:  # one failed id never stops the batch
        return record_failed(root_id, exc, started)


# ------------------------------------------------------------------------ Ctrl-C


class StopOnInterrupt:
    """SIGINT, first time: stop scheduling and let running ids finish. Second time: abandon."""

    def __init__(self, announce: Callable[[str], None]):
        self.event = threading.Event()
        self.abandon = False
        self._announce = announce
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame):
        if self.event.is_set():
            self.abandon = True
            raise KeyboardInterrupt
        self.event.set()
        self._announce("interrupted: finishing the running exports (Ctrl-C again to abandon them)")


# ------------------------------------------------------------------- executors


def run_local(todo: list[str], export_kwargs: dict, workers: int, rate: float | None,
               deliver: Callable[[dict], bool], stop: StopOnInterrupt) -> bool:
    """Run ``todo`` on a thread pool; ``deliver`` returns False to stop scheduling.
    Returns True if interrupted."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    ids = iter(todo)
    pending: set = set()
    halted = False
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mesh-export")
    try:
        def fill():
            while not halted and not stop.event.is_set() and len(pending) < 2 * workers:
                root_id = next(ids, None)
                if root_id is None:
                    return
                pending.add(pool.submit(run_one, root_id, export_kwargs, rate))

        fill()
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                pending.discard(future)
                if not deliver(future.result()):
                    halted = True
            if stop.event.is_set() or halted:
                for future in list(pending):
                    if future.cancel():
                        pending.discard(future)
            fill()
    except KeyboardInterrupt:  # second Ctrl-C (or an interrupt outside the main thread)
        stop.event.set()
        stop.abandon = True
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        return True
    pool.shutdown(wait=True)
    return stop.event.is_set()


def dask_client(executor: str, scheduler: str | None, workers: int):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InvalidArgumentError("the dask executors need dask.distributed: "
                                   "pip install 'mesh-export[dask]'") from None
    if executor == "dask":
        if not scheduler:
            raise InvalidArgumentError("--executor dask needs --scheduler tcp://HOST:PORT")
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as exc:
            from mesh_export.errors import NetworkError

            raise NetworkError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    return Client(cluster), cluster


def run_dask(client, todo: list[str], export_kwargs: dict, rate: float | None,
              deliver: Callable[[dict], bool], stop: StopOnInterrupt) -> bool:
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()) or 1
    share = rate / n_workers if rate else None
    ids = iter(todo)
    window = 2 * threads
    owner: dict = {}  # future -> (root id, submitted at): a failed task's key is not its id

    def submit(rid):
        future = client.submit(run_one, rid, export_kwargs, share, pure=False)
        owner[future] = (rid, time.perf_counter())
        return future

    futures = [submit(rid) for rid in (next(ids, None) for _ in range(window)) if rid is not None]
    queue = as_completed(futures)
    halted = False
    try:
        for future in queue:
            try:
                record = future.result()
            except Exception as exc:  # the worker died, or the task could not be unpickled
                rid, submitted = owner[future]
                record = record_failed(rid, exc, submitted, export_kwargs.get("token"))
            if not deliver(record):
                halted = True
            if halted or stop.event.is_set():
                client.cancel([f for f in futures if not f.done()])
                break
            root_id = next(ids, None)
            if root_id is not None:
                new = submit(root_id)
                futures.append(new)
                queue.add(new)
            futures = [f for f in futures if not f.done()]
    except KeyboardInterrupt:
        stop.event.set()
        client.cancel([f for f in futures if not f.done()])
        return True
    return stop.event.is_set()
