"""Provenance: what an export records about itself in the ``<file>.json`` sidecar beside it.

The sidecar says what was asked for (:func:`export_request`, so that a batch re-run can tell an
output made by the same request from one made otherwise), where the mesh came from and how it
was fetched, the steps applied (``metadata["steps"]``), the size facts of what was written
(:func:`output_counts`, which convert's --json reports too), the libraries, and the output's
size and SHA-256. The job that produces all of it is :func:`mesh_export.jobs.export.export`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mesh_export._version import __version__
from mesh_export.core.atomic import atomic_output
from mesh_export.jobs.naming import DEFAULT_NAME
from mesh_export.model import SURFACE, VOLUME, kind_of
from mesh_export.retrieve.cached import request_identity

_LIBRARIES = ("cloud-volume", "caveclient", "trimesh", "numpy", "DracoPy", "meshio")


@functools.lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"mesh-export": __version__}
    for name in _LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


def export_request(root_id: int | str, *, format: str = "stl", name: str = DEFAULT_NAME,
                   datastack: str | None = None, version: int | None = None, server: str | None = None,
                   source: str | None = None, static: bool = False, lod: int | None = None,
                   allow_missing: bool = False, units: str | None = None, scale: float | None = None,
                   steps=None, check: bool = False, preview: bool = False, synapses=None,
                   **options: Any) -> dict[str, Any]:
    """What was asked for (never the token): recorded as ``request`` in the sidecar, so a batch
    re-run can tell an output made by the same request (skip it) from one made otherwise."""
    from dataclasses import asdict

    request = {"root_id": str(root_id).strip(), "format": format, "name": name,
               **request_identity(source, datastack, static, server, version),
               "version": version, "lod": lod, "allow_missing": allow_missing, "units": units, "scale": scale,
               "steps": asdict(steps) if steps is not None else None, "check": check, "preview": preview,
               "options": {k: v for k, v in sorted(options.items()) if v is not None}}
    if synapses is not None:  # (absent when not given: earlier sidecars still match)
        request["synapses"] = synapses.record()
    return json.loads(json.dumps(request, default=str))


def output_counts(data, options: dict[str, Any]) -> dict[str, Any]:
    """Size facts of what is written, for the sidecar and convert's --json: vertices, faces and bbox of
    a surface; nodes, elements, volume of a volume mesh; nodes, length, area, soma radius of a skeleton
    (in the units ``options`` asks for, um by default)."""
    kind = kind_of(data)
    if kind == SURFACE:
        return {"vertices": int(len(data.vertices)), "faces": int(len(data.faces)), "bbox": _bbox(data.vertices)}
    if kind == VOLUME:
        from mesh_export.core.cells import volume_figures

        figures = volume_figures(data)
        return {"units": (getattr(data, "metadata", None) or {}).get("units"), "nodes": int(len(data.points)),
                "elements": figures["elements"], "cells": figures["cells"], "volume": figures["volume"],
                "bbox": _bbox(data.points)}
    written = data.to_units(options.get("units") or "um")
    return {"units": written.units, "nodes": int(len(written.nodes)),
            "total_length": float(written.total_length()), "membrane_area": float(written.membrane_area()),
            "soma_radius": float(written.radii[written.root]), "bbox": _bbox(written.nodes)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _bbox(vertices) -> list[list[float]]:
    return pieces_bbox([vertices])


def pieces_bbox(pieces_vertices) -> list[list[float]]:
    """The lowest and highest coordinates of one or more vertex arrays (a mesh's fragments
    unmerged: the merged mesh's box), as floats; arrays without vertices are passed over."""
    from mesh_export.core.mesh_ops import column_extremes

    # 6 ms at 4M vertices; a min and max per column 50 ms
    extremes = [column_extremes(vertices) for vertices in pieces_vertices if len(vertices)]
    low = [min(float(low[k]) for low, _ in extremes) for k in range(3)]
    high = [max(float(high[k]) for _, high in extremes) for k in range(3)]
    return [low, high]


def export_provenance(data, *, root_id: int, version: int | None, fetched: dict[str, Any], cache_state: str,
                      written: Path, writer, options: dict[str, Any], request: dict[str, Any], digest,
                      check: dict[str, Any] | None = None, preview: Path | None = None,
                      synapses: dict[str, Any] | None = None, counts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar's record of one export: ``data`` as written to ``written`` by ``writer``,
    ``fetched`` the fetch's details (source, lod, fragments, ...), ``digest`` the hash taken while
    writing (``hashing_output``; None: no hash), ``check`` the --check report, ``preview`` the PNG,
    ``synapses`` the synapse table written beside it (file, format, units, counts); ``counts`` the
    size facts when ``data`` cannot give them (:func:`output_counts`: a file written from the
    fetched pieces, whose merged mesh was never made)."""
    size = written.stat().st_size
    provenance = {
        "tool": f"mesh-export {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "root_id": str(root_id),
        "datastack": fetched["source"].get("datastack"),
        "version": version if version is not None else fetched["source"].get("version"),
        "source": fetched["source"],
        "lod": fetched["lod"],
        "lods_available": fetched.get("lods_available"),
        # A volume mesh has no ``units`` attribute: output_counts gives its units from its metadata.
        "units": data.units if kind_of(data) != VOLUME else None,
        **(output_counts(data, options) if counts is None else counts),
        "steps": data.metadata.get("steps", []),
        **({"not_written": data.metadata["not_written"]} if data.metadata.get("not_written") else {}),
        "fetch": {k: fetched.get(k) for k in ("fragments", "missing_fragments", "merged_vertices",
                                              "retries", "fetched")} | {"cache": cache_state},
        "incomplete": bool(fetched.get("missing_fragments")),
        "libraries": dict(_library_versions()),
        # Hashing costs ~30 ms per 64 MB: only done for the sidecar that records it, while the
        # file is written when the writer lays it out with write_layout, else by reading it back.
        "output": {"file": written.name, "format": writer.name, "bytes": size,
                   "sha256": ((digest.hexdigest(size) or _sha256(written)) if digest else None)},
        "request": request,
    }
    if check is not None:
        provenance["check"] = check
    if preview is not None:
        provenance["preview"] = preview.name
    if synapses is not None:
        provenance["synapses"] = synapses
    return provenance


def write_sidecar(written: Path, provenance: dict[str, Any]) -> Path:
    """``provenance`` as ``<written>.json`` beside the output (replacing an older one), atomically."""
    sidecar_path = written.with_name(written.name + ".json")
    with atomic_output(sidecar_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(provenance, indent=2) + "\n")
    return sidecar_path
