"""Batch export: many root ids, concurrently or on a Dask cluster, resumable.

One per-id job (:func:`run_one`: ``export()`` with every failure caught and turned into a
record) runs on one of two executors:

- ``local``: a thread pool of ``workers`` threads. Fetching is I/O (sockets, Draco decode
  and the numpy writers release the GIL), so threads overlap well and meshes stream through:
  at most ``2 * workers`` ids are in flight, and nothing but a small record is kept per id.
- ``dask``: the same job submitted to a ``distributed`` cluster (``client=``, a scheduler
  address, or a ``LocalCluster`` for ``dask-local``). Workers write outputs to ``out_dir``,
  which must be a path they share with the client; records come back to the client, which
  writes the manifest.

The manifest (``<out_dir>/manifest.jsonl``) gets one JSON line per finished id, flushed and
fsynced as it finishes, and is compacted to the last line per id when the run ends. It is
the resume record together with the sidecars: an id whose output and sidecar exist, and
whose sidecar's ``request`` matches this run's, is skipped (``overwrite=True`` forces).

Politeness: a process-wide token bucket (``max_requests_per_second``; each fetch call takes
a token) and a backoff shared by all workers of a process (see :mod:`mesh_export.retrieve.fetch`).
On Dask each worker process gets an equal share of the rate.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from mesh_export.errors import (EXIT_ALL_FAILED, EXIT_ALL_OK, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_SOME_FAILED,  # noqa: F401
                                InvalidArgumentError, MeshExportError)

MANIFEST_NAME = "manifest.jsonl"
EXECUTORS = ("local", "dask", "dask-local")
_ID_COLUMNS = ("root_id", "pt_root_id", "segment_id", "id")


# ------------------------------------------------------------------------------ ids


def _ids_from_lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            yield text.split(",")[0].split()[0].strip()


def _ids_from_csv(path: Path, column: str | None) -> list[str]:
    import csv

    with open(path, newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        dialect = csv.Sniffer().sniff(sample, delimiters=",\t;") if sample.strip() else csv.excel
        rows = list(csv.reader(handle, dialect))
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    if column is None:
        if header and header[0].isdigit():  # no header: the first column holds the ids
            return [r[0].strip() for r in rows if r and r[0].strip()]
    index = header.index(_id_column(path, column, header))
    return [r[index].strip() for r in rows[1:] if len(r) > index and r[index].strip()]


def _id_column(path: Path, column: str | None, names: list[str]) -> str:
    """The column holding the ids: the one asked for, or a conventional name."""
    if column is None:
        column = next((c for c in _ID_COLUMNS if c in names), None)
        if column is None:
            raise InvalidArgumentError(f"{path}: which column holds the ids? pass --id-column "
                                       f"(columns: {', '.join(names)})")
    if column not in names:
        raise InvalidArgumentError(f"{path} has no column {column!r} (columns: {', '.join(names)})")
    return column


def _ids_from_parquet(path: Path, column: str | None) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidArgumentError(f"reading {path} needs pyarrow: pip install pyarrow") from None
    try:
        names = pq.read_schema(path).names
    except Exception as exc:
        raise InvalidArgumentError(f"cannot read {path} as Parquet: {exc}") from None
    column = _id_column(path, column, names)
    values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    return [str(v) for v in values if v is not None]


def read_ids(args: Iterable[str] = (), ids_file: str | os.PathLike | None = None,
             id_column: str | None = None, stdin=None) -> list[str]:
    """Root ids from arguments (``-`` reads stdin, one per line), then ``ids_file``: one per
    line, or a CSV/TSV or Parquet column (``id_column``; default the first of root_id,
    pt_root_id, segment_id, id). Duplicates are dropped (first kept); ids are validated by
    the per-id job, so one malformed id fails alone."""
    ids: list[str] = []
    for arg in args or ():
        if str(arg).strip() == "-":
            ids.extend(_ids_from_lines(stdin if stdin is not None else sys.stdin))
        else:
            ids.append(str(arg).strip())
    if ids_file is not None:
        path = Path(ids_file)
        if not path.is_file():
            from mesh_export.errors import InputError

            raise InputError(f"ids file not found: {path}")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            ids.extend(_ids_from_parquet(path, id_column))
        elif suffix in (".csv", ".tsv") or id_column is not None:
            ids.extend(_ids_from_csv(path, id_column))
        else:
            with open(path) as handle:
                ids.extend(_ids_from_lines(handle))
    return list(dict.fromkeys(ids))


# ------------------------------------------------------------------------ manifest


class Manifest:
    """Append-only JSON lines, one per finished id, each flushed and fsynced; the last line
    for an id wins. ``compact()`` rewrites it (atomically) to one line per id."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.previous = self.read(self.path)
        self._handle = None

    @staticmethod
    def read(path: str | os.PathLike) -> dict[str, dict]:
        records: dict[str, dict] = {}
        try:
            with open(path) as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:  # a line cut by a hard kill: ignore it
                        continue
                    if isinstance(record, dict) and "root_id" in record:
                        records[str(record["root_id"])] = record
        except FileNotFoundError:
            pass
        return records

    def append(self, record: dict) -> None:
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            if self._handle is None:
                self._handle = open(self.path, "a")
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def compact(self) -> None:
        self.close()
        records = self.read(self.path)
        if not records:
            return
        from mesh_export.core.atomic import replaced_file

        # A unique temporary name: two runs compacting the same manifest never share one.
        with replaced_file(self.path, "w", fsync=True) as handle:
            for record in records.values():
                handle.write(json.dumps(record, default=str) + "\n")


# ------------------------------------------------------------------- per-id job


def _record_ok(result, started: float) -> dict:
    summary = result.summary()
    # Absolute paths: the manifest is read back from wherever the next run starts.
    for key in ("output", "sidecar", "preview"):
        if summary.get(key):
            summary[key] = os.path.abspath(summary[key])
    outputs = [os.path.abspath(p) for p in (result.output, result.sidecar, result.preview) if p]
    return {**summary, "outputs": outputs, "duration": round(time.perf_counter() - started, 4)}


def _record_failed(root_id, exc: BaseException, started: float, token: str | None = None) -> dict:
    from mesh_export.retrieve.auth import redact, resolve_token

    text = str(exc).strip().splitlines()
    message = redact(text[0] if text else type(exc).__name__, token or resolve_token().value)
    code = exc.exit_code if isinstance(exc, MeshExportError) else EXIT_INTERNAL
    return {"root_id": str(root_id), "status": "failed", "error": message, "error_type": type(exc).__name__,
            "exit_code": code, "duration": round(time.perf_counter() - started, 4)}


def fragment_threads(concurrent_exports: int) -> int:
    """Fragment requests in flight per export when ``concurrent_exports`` share a process:
    about 32 in all (what hides a 50 ms round trip), never fewer than 4 each."""
    return max(4, 32 // max(1, concurrent_exports))


def run_one(root_id, export_kwargs: dict, rate: float | None = None, threads: int = 32) -> dict:
    """Export one id and return its manifest record; never raises for a failed id.

    The same function runs in a local thread and on a Dask worker; ``rate`` is this
    process's share of the request rate, ``threads`` this export's graphene fragment threads."""
    from mesh_export.jobs.export import export
    from mesh_export.retrieve.fetch import FRAGMENT_THREADS, GRAPHENE_THREADS, set_rate_limit

    set_rate_limit(rate)
    FRAGMENT_THREADS.set(1)  # the batch's workers are the parallelism
    # Our own graphene fetch sizes its pool to its threads (no shared 10-connection pool to
    # wait on), so a worker still keeps several fragment requests in flight to hide latency.
    GRAPHENE_THREADS.set(threads)
    started = time.perf_counter()
    try:
        return _record_ok(export(root_id, **export_kwargs), started)
    except Exception as exc:  # one failed id never stops the batch
        return _record_failed(root_id, exc, started)


# ------------------------------------------------------------------- resume check


def _skip_record(root_id: str, export_kwargs: dict, previous: dict | None) -> dict | None:
    """The record of an earlier export of this exact request, if its files are all there."""
    from mesh_export.core.parsing import parse_root_id
    from mesh_export.jobs.export import export_request
    from mesh_export.jobs.naming import DEFAULT_NAME, output_name
    from mesh_export.writers.registry import get_writer

    out_dir = Path(export_kwargs.get("out_dir", "."))
    candidates = []
    if previous and previous.get("status") == "ok" and previous.get("output"):
        candidates.append(Path(previous["output"]))
    lod = export_kwargs.get("lod")
    if lod != -1:  # the coarsest lod's number, and so its file's name, is only known after fetching
        try:
            name = output_name(export_kwargs.get("name", DEFAULT_NAME), root_id=parse_root_id(root_id),
                               lod=lod or 0, writer=get_writer(export_kwargs.get("format", "stl")),
                               datastack=export_kwargs.get("datastack"))
        except InvalidArgumentError:
            pass  # a malformed id or a bad --name: nothing was exported under it; its own export says why
        else:
            candidates.append(out_dir / name)
    request_kwargs = {k: v for k, v in export_kwargs.items()
                      if k not in ("out_dir", "token", "cache_dir", "use_cache", "offline", "timeout",
                                   "overwrite", "sidecar", "progress")}
    request = None
    for output in candidates:
        sidecar = output.with_name(output.name + ".json")
        try:
            meta = json.loads(sidecar.read_text())
            size = output.stat().st_size
        except (OSError, ValueError):
            continue
        if request is None:
            request = export_request(root_id, **request_kwargs)
        if meta.get("request") != request or meta.get("output", {}).get("bytes") != size:
            continue
        if (meta.get("check") or {}).get("failures"):  # written, but it failed --check: redo it
            continue
        if previous and previous.get("status") == "ok" and Path(previous.get("output", "")).absolute() == output.absolute():
            return {**previous, "skipped": True}
        output, sidecar = output.absolute(), sidecar.absolute()
        return {"root_id": str(root_id), "status": "ok", "output": str(output), "sidecar": str(sidecar),
                "outputs": [str(output), str(sidecar)], "lod": meta.get("lod"),
                "vertices": meta.get("vertices"), "faces": meta.get("faces"), "nodes": meta.get("nodes"),
                "units": meta.get("units"), "incomplete": meta.get("incomplete", False),
                "bytes": size, "cache": None, "duration": 0.0, "skipped": True}
    return None


# ----------------------------------------------------------------------- progress


class Progress:
    """One status line on stderr: done / failed / remaining, rate, ETA (terminals only)."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last = 0.0
        self.ok = self.failed = self.skipped = 0

    def update(self, record: dict, force: bool = False) -> None:
        if record.get("skipped"):
            self.skipped += 1
        elif record.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.draw(force)

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        done = self.ok + self.failed + self.skipped
        worked = self.ok + self.failed
        rate = worked / (now - self.started) if now > self.started else 0.0
        remaining = self.total - done
        eta = f"{int(remaining / rate) // 60}:{int(remaining / rate) % 60:02d}" if rate > 0 else "?"
        width = 24
        filled = int(width * done / self.total) if self.total else width
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}  ok {self.ok}"
                          f"  skipped {self.skipped}  failed {self.failed}  remaining {remaining}"
                          f"  {rate:.1f}/s  ETA {eta} ")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


# ------------------------------------------------------------------------ result


@dataclass
class BatchResult:
    records: list[dict] = field(default_factory=list)  # one per id that finished or was skipped
    total: int = 0
    interrupted: bool = False
    abandoned: bool = False  # a second Ctrl-C: running exports were left behind
    stopped: bool = False  # fail_fast stopped scheduling
    seconds: float = 0.0
    manifest: Path | None = None

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.records if r.get("status") == "ok" and not r.get("skipped")]

    @property
    def skipped(self) -> list[dict]:
        return [r for r in self.records if r.get("skipped")]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r.get("status") != "ok"]

    @property
    def not_run(self) -> int:
        return self.total - len(self.records)

    @property
    def exit_code(self) -> int:
        """0 all ok (or skipped as already done), 20 some failed or not run, 21 none
        succeeded, 130 interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        good = len(self.ok) + len(self.skipped)
        if good == self.total:
            return EXIT_ALL_OK
        return EXIT_ALL_FAILED if good == 0 else EXIT_SOME_FAILED

    def summary_table(self) -> str:
        rate = len(self.ok) / self.seconds if self.seconds else 0.0
        lines = [f"batch: {self.total} ids   ok {len(self.ok)}   skipped (already done) {len(self.skipped)}   "
                 f"failed {len(self.failed)}   not run {self.not_run}   "
                 f"{self.seconds:.1f} s ({rate:.1f} exports/s)"]
        if self.interrupted:
            lines.append("interrupted: re-run the same command to resume")
        elif self.stopped:
            lines.append("stopped after the first failure (--fail-fast)")
        failed = self.failed
        if failed:
            by_type: dict[str, int] = {}
            for r in failed:
                by_type[r.get("error_type", "?")] = by_type.get(r.get("error_type", "?"), 0) + 1
            lines.append("failures: " + ", ".join(f"{k} {v}" for k, v in sorted(by_type.items())))
            width = max(len(r["root_id"]) for r in failed)
            lines.append(f"  {'root id'.ljust(width)}  code  error")
            for r in failed[:20]:
                lines.append(f"  {r['root_id'].ljust(width)}  {str(r.get('exit_code', '')).rjust(4)}  {r.get('error', '')}")
            if len(failed) > 20:
                lines.append(f"  ... and {len(failed) - 20} more (see the manifest)")
        if self.manifest is not None:
            lines.append(f"manifest: {self.manifest}")
        return "\n".join(lines)


# ------------------------------------------------------------------- executors


class _Stop:
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


def _run_local(todo: list[str], export_kwargs: dict, workers: int, rate: float | None,
               deliver: Callable[[dict], bool], stop: _Stop) -> bool:
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
                pending.add(pool.submit(run_one, root_id, export_kwargs, rate, fragment_threads(workers)))

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


def _dask_client(executor: str, scheduler: str | None, workers: int):
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


def _run_dask(client, todo: list[str], export_kwargs: dict, rate: float | None,
              deliver: Callable[[dict], bool], stop: _Stop) -> bool:
    from distributed import as_completed

    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    threads = sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()) or 1
    share = rate / n_workers if rate else None
    ids = iter(todo)
    window = 2 * threads
    owner: dict = {}  # future -> (root id, submitted at): a failed task's key is not its id

    def submit(rid):
        future = client.submit(run_one, rid, export_kwargs, share, fragment_threads(threads // n_workers),
                               pure=False)
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
                record = _record_failed(rid, exc, submitted, export_kwargs.get("token"))
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


# ------------------------------------------------------------------------- API


def export_many(root_ids: Iterable[int | str], *, workers: int = 1, client=None, executor: str = "local",
                scheduler: str | None = None, manifest: bool | str | os.PathLike | None = True,
                fail_fast: bool = False, max_requests_per_second: float | None = None,
                progress: bool = False, on_record: Callable[[dict], None] | None = None,
                **export_kwargs: Any) -> BatchResult:
    """Export many root ids, resumably; one failed id never stops the others.

    ``workers``: concurrent exports (threads) with the local executor, or the LocalCluster's
    worker processes with ``executor="dask-local"``. ``client``: a ``distributed.Client`` (or
    ``executor="dask", scheduler="tcp://host:port"``) runs the same per-id job on a cluster;
    ``out_dir`` must then be a path the workers share. ``manifest``: True for
    ``<out_dir>/manifest.jsonl``, a path, or False. Ids already exported by the same request
    (output + matching sidecar) are skipped unless ``overwrite=True``. ``on_record`` is called
    (in the calling thread) with each id's record as it finishes. Every other keyword goes
    to :func:`mesh_export.jobs.export.export`. Returns a :class:`BatchResult` (``exit_code``,
    ``records``, ``summary_table()``).
    """
    if executor not in EXECUTORS:
        raise InvalidArgumentError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers < 1:
        raise InvalidArgumentError(f"--workers must be 1 or more, got {workers}")
    if max_requests_per_second is not None and max_requests_per_second <= 0:
        raise InvalidArgumentError("--max-requests-per-second must be positive")
    ids = list(dict.fromkeys(str(i).strip() for i in root_ids))
    if not ids:
        raise InvalidArgumentError("no root ids given (arguments, --ids-file, or - for stdin)")
    from mesh_export.core.atomic import make_output_dir

    out_dir = make_output_dir(export_kwargs.get("out_dir", "."))
    export_kwargs["progress"] = False  # per-mesh bars would fight the batch bar
    from mesh_export.writers.registry import get_writer

    get_writer(export_kwargs.get("format", "stl"))  # an unknown format fails once, not per id

    started = time.perf_counter()
    book = None
    if manifest:
        book = Manifest(out_dir / MANIFEST_NAME if manifest is True else manifest)
    result = BatchResult(total=len(ids), manifest=book.path if book else None)
    bar = Progress(len(ids), progress)

    def announce(text: str) -> None:
        bar.clear()
        print(f"mesh-export: {text}", file=sys.stderr, flush=True)

    def deliver(record: dict) -> bool:
        result.records.append(record)
        if book is not None and not (record.get("skipped") and book.previous.get(record["root_id"]) is not None
                                     and book.previous[record["root_id"]].get("status") == "ok"):
            book.append({k: v for k, v in record.items() if k != "skipped"})
        if on_record is not None:
            bar.clear()
            on_record(record)
        bar.update(record)
        if fail_fast and record.get("status") != "ok":
            result.stopped = True
            return False
        return True

    todo = []
    overwrite = export_kwargs.get("overwrite", False)
    for root_id in ids:
        skip = None if overwrite else _skip_record(root_id, export_kwargs,
                                                   book.previous.get(root_id) if book else None)
        if skip is not None:
            deliver(skip)
        else:
            todo.append(root_id)

    cluster = None
    owned_client = None
    try:
        with _Stop(announce) as stop:
            if not todo:
                interrupted = False
            elif executor == "local" and client is None:
                interrupted = _run_local(todo, export_kwargs, workers, max_requests_per_second, deliver, stop)
            else:
                if client is None:
                    owned_client, cluster = _dask_client(executor, scheduler, workers)
                interrupted = _run_dask(client or owned_client, todo, export_kwargs, max_requests_per_second,
                                        deliver, stop)
    finally:
        if owned_client is not None:
            owned_client.close()
        if cluster is not None:
            cluster.close()
        bar.draw(force=True)
        bar.clear()
        if book is not None:
            book.compact()
    result.interrupted = interrupted
    result.abandoned = stop.abandon
    result.seconds = time.perf_counter() - started
    return result
