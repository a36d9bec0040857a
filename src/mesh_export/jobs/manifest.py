"""The batch's record of what it did, and what lets a re-run resume.

The manifest (``<out_dir>/manifest.jsonl``) gets one JSON line per finished id, flushed and
fsynced as it finishes, and is compacted to the last line per id when the run ends. It is
the resume record together with the sidecars: an id whose output and sidecar exist, and
whose sidecar's ``request`` matches this run's, is skipped (``overwrite=True`` forces).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from mesh_export.core.parsing import parse_root_id
from mesh_export.errors import EXIT_INTERNAL, InvalidArgumentError, MeshExportError
from mesh_export.jobs.naming import DEFAULT_NAME, output_name

MANIFEST_NAME = "manifest.jsonl"


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


# ------------------------------------------------------------------------- records


def record_ok(result, started: float) -> dict:
    """The manifest line of an id exported (``result``: its ``ExportResult``)."""
    summary = result.summary()
    # Absolute paths: the manifest is read back from wherever the next run starts.
    for key in ("output", "sidecar", "preview"):
        if summary.get(key):
            summary[key] = os.path.abspath(summary[key])
    outputs = [os.path.abspath(p) for p in (result.output, result.sidecar, result.preview) if p]
    return {**summary, "outputs": outputs, "duration": round(time.perf_counter() - started, 4)}


def record_failed(root_id, exc: BaseException, started: float, token: str | None = None) -> dict:
    """The manifest line of an id that failed: the first line of the error (token redacted)
    and its exit code."""
    from mesh_export.retrieve.auth import redact, resolve_token

    text = str(exc).strip().splitlines()
    message = redact(text[0] if text else type(exc).__name__, token or resolve_token().value)
    code = exc.exit_code if isinstance(exc, MeshExportError) else EXIT_INTERNAL
    return {"root_id": str(root_id), "status": "failed", "error": message, "error_type": type(exc).__name__,
            "exit_code": code, "duration": round(time.perf_counter() - started, 4)}


# -------------------------------------------------------------------------- resume


def _request_kwargs(export_kwargs: dict) -> dict:
    return {k: v for k, v in export_kwargs.items()
            if k not in ("out_dir", "token", "cache_dir", "use_cache", "offline", "timeout", "overwrite", "sidecar",
                         "progress")}


def _already_in_layers(root_id: str, out_dir: Path, export_kwargs: dict) -> dict | None:
    """--format precomputed: the id is in the layers' record, added by this same request."""
    from mesh_export.jobs.provenance import export_request

    try:
        record = json.loads((out_dir / "mesh-export.json").read_text())
        entry = record["cells"][str(parse_root_id(root_id))]
    except (OSError, ValueError, KeyError, TypeError, InvalidArgumentError):
        return None
    if entry.get("request") != export_request(root_id, **_request_kwargs(export_kwargs)):
        return None
    return {"root_id": str(root_id), "status": "ok", "output": str(out_dir.absolute()), "sidecar": None,
            "outputs": [str(out_dir.absolute())], "lod": entry.get("request", {}).get("lod"),
            "vertices": None, "faces": (entry.get("faces_per_lod") or [None])[0], "nodes": None, "units": "nm",
            "incomplete": False, "bytes": None, "cache": None, "duration": 0.0, "skipped": True}


def already_exported(root_id: str, export_kwargs: dict, previous: dict | None) -> dict | None:
    """The record of an earlier export of this exact request, if its files are all there."""
    from mesh_export.jobs.provenance import export_request
    from mesh_export.writers.catalog import get_writer

    out_dir = Path(export_kwargs.get("out_dir", "."))
    from mesh_export.jobs.layers import writes_layers

    if writes_layers(get_writer(export_kwargs.get("format", "stl"))):
        return _already_in_layers(root_id, out_dir, export_kwargs)
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
    request_kwargs = _request_kwargs(export_kwargs)
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
