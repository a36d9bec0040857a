"""Batch export: many root ids, concurrently or on a Dask cluster, resumable.

:func:`export_many` wires the parts: the ids (:mod:`~mesh_export.jobs.ids`), the manifest and
the resume check (:mod:`~mesh_export.jobs.manifest`), the status line
(:mod:`~mesh_export.jobs.progress`), and the executors that run the per-id job, local threads
or Dask, with Ctrl-C handling (:mod:`~mesh_export.jobs.executors`). The result is a
:class:`BatchResult`: the records, the exit code, the summary table.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from mesh_export.errors import (EXIT_ALL_FAILED, EXIT_ALL_OK, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_SOME_FAILED,  # noqa: F401
                                InvalidArgumentError)
from mesh_export.jobs.executors import EXECUTORS, StopOnInterrupt, dask_client, run_dask, run_local
from mesh_export.jobs.executors import run_one  # noqa: F401  (re-exported)
from mesh_export.jobs.ids import read_ids  # noqa: F401  (re-exported: the CLI and tests read ids from here)
from mesh_export.jobs.manifest import MANIFEST_NAME, Manifest, already_exported
from mesh_export.jobs.progress import Progress


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
    from mesh_export.jobs.export import refuse_circuit
    from mesh_export.writers.catalog import get_writer

    refuse_circuit(get_writer(export_kwargs.get("format", "stl")))  # an unknown format fails once, not per id
    out_dir = make_output_dir(export_kwargs.get("out_dir", "."))
    export_kwargs["progress"] = False  # per-mesh bars would fight the batch bar

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
        skip = None if overwrite else already_exported(root_id, export_kwargs,
                                                   book.previous.get(root_id) if book else None)
        if skip is not None:
            deliver(skip)
        else:
            todo.append(root_id)

    cluster = None
    owned_client = None
    try:
        with StopOnInterrupt(announce) as stop:
            if not todo:
                interrupted = False
            elif executor == "local" and client is None:
                interrupted = run_local(todo, export_kwargs, workers, max_requests_per_second, deliver, stop)
            else:
                if client is None:
                    owned_client, cluster = dask_client(executor, scheduler, workers)
                interrupted = run_dask(client or owned_client, todo, export_kwargs, max_requests_per_second,
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
