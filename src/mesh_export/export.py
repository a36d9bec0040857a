"""The main job: root id -> source -> cache -> steps -> writer, plus a provenance sidecar."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from . import __version__
from .atomic import atomic_output, check_target, make_output_dir
from .errors import CacheMissError, InvalidArgumentError
from .writers.registry import get_writer

DEFAULT_NAME = "{root_id}_lod{lod}.{ext}"
MAX_ROOT_ID = 2**64 - 1
# Part of the cache key: how fragments are merged into one mesh.
MERGE_RULE = "exact-vertex-merge/1"
_LIBRARIES = ("cloud-volume", "caveclient", "trimesh", "numpy", "DracoPy", "meshio")


def parse_root_id(value: Any) -> int:
    """A root id is a positive integer below 2**64 (uint64 in every connectomics store)."""
    text = str(value).strip()
    if not text.isdigit():
        raise InvalidArgumentError(f"malformed root id {text!r}: expected a positive integer")
    root_id = int(text)
    if root_id == 0 or root_id > MAX_ROOT_ID:
        raise InvalidArgumentError(f"malformed root id {text}: must be between 1 and 2**64-1")
    return root_id


@dataclass
class CachedSurface:
    """A mesh as fetched or cached (nm), handed as it is to a binary native writer.

    Those writers write float32 vertices and int32 indices whatever they are given, and read
    only ``vertices``, ``faces`` and the units; a trimesh.Trimesh would first widen both arrays
    to 64 bits (~50 MB of copies for a 1.3M-face mesh) only for the writer to narrow them again.
    """

    vertices: Any
    faces: Any
    metadata: dict[str, Any]

    @property
    def units(self) -> str | None:
        return self.metadata.get("units")


@dataclass
class ExportResult:
    root_id: int
    output: Path
    sidecar: Path | None
    cache: str  # "hit", "miss" or "off"
    provenance: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    preview: Path | None = None

    def summary(self) -> dict[str, Any]:
        p = self.provenance
        return {"root_id": str(self.root_id), "status": "ok", "output": str(self.output),
                "sidecar": str(self.sidecar) if self.sidecar else None, "cache": self.cache,
                "lod": p.get("lod"), "vertices": p.get("vertices"), "faces": p.get("faces"),
                "nodes": p.get("nodes"),
                "units": p.get("units"), "incomplete": p.get("incomplete", False),
                "bytes": p.get("output", {}).get("bytes"), "steps": p.get("steps", []),
                "check": p.get("check"), "preview": str(self.preview) if self.preview else None,
                "seconds": round(self.seconds, 4)}


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


def _request_identity(source: str | None, datastack: str | None, static: bool, server: str | None,
                      version: int | None = None) -> dict:
    """What identifies the mesh source without asking the network (so --offline can key the cache).

    A static request is keyed by the release it resolves to (``version`` picks it: seg_m943
    and seg_m1300 are different entries), a dynamic one by datastack and server."""
    from .datastacks import DEFAULT_DATASTACK, static_release
    from .sources import normalize_url

    if source is not None:
        return {"source": normalize_url(source)}
    datastack = datastack or DEFAULT_DATASTACK
    if static:
        return {"source": normalize_url(static_release(datastack, version)[1].url)}
    return {"datastack": datastack, "server": server, "mode": "dynamic"}


def units_for_writer(mesh, writer):
    """A surface in units ``writer`` cannot state, converted to the first it can (3MF: nm -> um).

    A step like any other: recorded in ``metadata["steps"]`` with the reason, so the sidecar
    (and convert's --json) says what the file holds. Other meshes are returned as they are.
    """
    units = getattr(mesh, "units", None)
    if not writer.units or not hasattr(mesh, "faces") or units is None or units in writer.units:
        return mesh
    from .steps import convert_units

    converted = convert_units(mesh, writer.units[0])
    converted.metadata["steps"][-1]["reason"] = f"{writer.name} cannot state {units}"
    return converted


def _counts(data, options: dict[str, Any]) -> dict[str, Any]:
    """Size facts for the sidecar: faces for a surface; nodes, length, area for a skeleton."""
    if hasattr(data, "faces"):
        return {"vertices": int(len(data.vertices)), "faces": int(len(data.faces)), "bbox": _bbox(data.vertices)}
    if hasattr(data, "cells"):  # a tetrahedral volume mesh (meshio.Mesh)
        record = data.metadata["steps"][-1]
        return {"units": data.metadata.get("units"), "nodes": int(len(data.points)),
                "elements": record["elements"], "volume": record["volume"], "bbox": _bbox(data.points)}
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
    import numpy as np

    # Column by column: numpy's axis-0 reduction over (n, 3) rows is ~7x slower.
    columns = [np.asarray(vertices)[:, k] for k in range(3)]
    return [[float(c.min()) for c in columns], [float(c.max()) for c in columns]]


def _check_request(root_id: int | str, lod: int | None, use_cache: bool, offline: bool) -> int:
    """The parsed root id, after the checks that need no network (so they fail first)."""
    root_id = parse_root_id(root_id)
    if offline and not use_cache:
        raise InvalidArgumentError("--offline serves from the cache; it cannot be combined with --no-cache")
    if lod is not None and lod < -1:
        raise InvalidArgumentError(f"--lod must be 0 or more (or -1 for the coarsest), got {lod}")
    return root_id


def fetch_cached(root_id: int | str, *, source: str | None = None, datastack: str | None = None,
                 static: bool = False, server: str | None = None, version: int | None = None,
                 lod: int | None = None, token: str | None = None,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 offline: bool = False, allow_missing: bool = False, timeout: float = 120.0,
                 progress: bool = False) -> tuple[Any, Any, dict[str, Any], str]:
    """A root id's merged mesh arrays (nm) through the verified cache.

    Returns ``(vertices, faces, meta, cache_state)``: ``meta`` has ``source`` (the resolved
    source's provenance), ``lod`` (resolved), ``lods_available``, ``fragments``,
    ``missing_fragments``, ``merged_vertices``, ``retries``, ``fetched``; ``cache_state`` is
    "hit", "miss" or "off". Every command that needs a root id's mesh goes through here, so
    they share cache entries.
    """
    from .auth import resolve_token
    from .cache import MeshCache, cache_key
    from .datastacks import server_for
    from .fetch import fetch_mesh
    from .sources import resolve

    root_id = _check_request(root_id, lod, use_cache, offline)
    identity = _request_identity(source, datastack, static, server, version)

    def key(level: int) -> str:
        return cache_key(**identity, root_id=root_id, lod=level, version=version, merge=MERGE_RULE,
                         allow_missing=allow_missing)

    # Omitted and 0 are the same request, so one entry. -1 (coarsest) is only resolved by
    # fetching: its key is an alias to the resolved lod's entry, so it shares that entry.
    requested = 0 if lod is None else lod
    cache = MeshCache(cache_dir) if use_cache else None
    entry = cache.get(key(requested)) if cache else None
    if entry is not None:
        return entry.vertices, entry.faces, entry.meta, "hit"
    if offline:
        raise CacheMissError(f"root id {root_id} is not in the cache ({cache.directory}) and --offline was given")
    token_info = resolve_token(token, server_for(datastack, server) if source is None else server)
    resolved = resolve(source=source, datastack=datastack, static=static, server=server,
                       token=token_info.value, version=version, timeout=timeout)
    fetched = fetch_mesh(resolved, root_id, lod=lod, token=token_info.value, timeout=timeout,
                         allow_missing=allow_missing, progress=progress)
    meta = {"source": resolved.provenance(), **fetched.info(),
            "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if cache is None:
        return fetched.vertices, fetched.faces, meta, "off"
    try:
        cache.put(key(fetched.lod), fetched.vertices, fetched.faces, meta)
        if fetched.lod != requested:
            cache.alias(key(requested), key(fetched.lod))
    except OSError as exc:  # a full or read-only cache must not fail a download that worked
        import warnings

        warnings.warn(f"mesh-export: could not cache root id {root_id}: {exc.strerror or exc}", stacklevel=2)
        return fetched.vertices, fetched.faces, meta, "off"
    return fetched.vertices, fetched.faces, meta, "miss"


def _cave_request(source, datastack, static, server, version, token, timeout, cache_dir, use_cache, offline):
    """Where to ask CAVE about a root id's morphology: its datastack, when the mesh came from one."""
    if source is not None:
        return None
    from .auth import resolve_token
    from .cave_morphology import CaveRequest
    from .sources import DEFAULT_DATASTACK, STATIC_SOURCES

    datastack = datastack or DEFAULT_DATASTACK
    if static and version is None and datastack in STATIC_SOURCES:
        version = STATIC_SOURCES[datastack][1]
    return CaveRequest(datastack, server=server, version=version, token=resolve_token(token, server).value,
                       timeout=timeout, cache_dir=cache_dir, use_cache=use_cache, offline=offline)


def export_request(root_id: int | str, *, format: str = "stl", name: str = DEFAULT_NAME,
                   datastack: str | None = None, version: int | None = None, server: str | None = None,
                   source: str | None = None, static: bool = False, lod: int | None = None,
                   allow_missing: bool = False, units: str | None = None, scale: float | None = None,
                   steps=None, check: bool = False, preview: bool = False, **options: Any) -> dict[str, Any]:
    """What was asked for (never the token): recorded as ``request`` in the sidecar, so a batch
    re-run can tell an output made by the same request (skip it) from one made otherwise."""
    from dataclasses import asdict

    request = {"root_id": str(root_id).strip(), "format": format, "name": name,
               **_request_identity(source, datastack, static, server, version),
               "version": version, "lod": lod, "allow_missing": allow_missing, "units": units, "scale": scale,
               "steps": asdict(steps) if steps is not None else None, "check": check, "preview": preview,
               "options": {k: v for k, v in sorted(options.items()) if v is not None}}
    return json.loads(json.dumps(request, default=str))


def export(root_id: int | str, *, format: str = "stl", out_dir: str | os.PathLike = ".",
           name: str = DEFAULT_NAME, datastack: str | None = None, version: int | None = None,
           server: str | None = None, source: str | None = None, static: bool = False,
           lod: int | None = None, token: str | None = None, cache_dir: str | os.PathLike | None = None,
           use_cache: bool = True, offline: bool = False, allow_missing: bool = False,
           timeout: float = 120.0, units: str | None = None, scale: float | None = None,
           steps=None, check: bool = False, overwrite: bool = False, sidecar: bool = True,
           preview: bool = False, progress: bool = False, **options: Any) -> ExportResult:
    """Export one root id to a file; see the CLI's help for what each argument does."""
    from . import api
    from .steps import apply_steps, plan_for_writer
    from .units import set_mesh_units
    from .writers._layout import hashing_output

    started = time.perf_counter()
    request = export_request(root_id, format=format, name=name, datastack=datastack, version=version,
                             server=server, source=source, static=static, lod=lod,
                             allow_missing=allow_missing, units=units, scale=scale, steps=steps,
                             check=check, preview=preview, **options)
    root_id = _check_request(root_id, lod, use_cache, offline)
    writer = get_writer(format)
    # A copy: the plan adjusts it, and a batch shares one StepOptions across threads.
    steps, options = plan_for_writer(steps, writer, options,
                                     units=units, scale=scale)
    if preview and steps.volume:
        raise InvalidArgumentError("--preview draws surfaces and morphologies, not tetrahedral meshes")
    if steps.skeletonize:
        from .morphology import check_request

        check_request(steps, from_datastack=source is None)
    extension = writer.extensions[0].lstrip(".") if writer.extensions else writer.name
    out_dir = make_output_dir(out_dir)

    def target_for(level: int) -> Path:
        try:
            filename = name.format(root_id=root_id, lod=level, ext=extension, format=writer.name,
                                   datastack=datastack or "")
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidArgumentError(f"bad --name template {name!r}: use {{root_id}}, {{lod}}, "
                                       "{ext}, {format}, {datastack}") from exc
        target = check_target(out_dir / filename, overwrite)
        if preview:  # the picture beside it obeys --overwrite too
            check_target(target.with_name(target.name + ".png"), overwrite)
        return target

    if lod != -1:  # the coarsest lod's number is only known after fetching
        target_for(lod or 0)  # fail before any download

    vertices, faces, fetched_meta, cache_state = fetch_cached(
        root_id, source=source, datastack=datastack, static=static, server=server, version=version,
        lod=lod, token=token, cache_dir=cache_dir, use_cache=use_cache, offline=offline,
        allow_missing=allow_missing, timeout=timeout, progress=progress)

    target = target_for(fetched_meta["lod"])
    metadata = {"units": "nm", "root_id": str(root_id), "lod": fetched_meta["lod"],
                "source": fetched_meta["source"].get("url")}
    # The binary native writers (those that check values themselves) take the cached arrays
    # as they are; anything that needs a real mesh (steps, --check, --preview, text) gets one.
    if (writer.checks_values and not options.get("ascii") and not steps.changes_mesh()
            and not check and not preview):
        mesh = CachedSurface(vertices, faces, metadata)
    else:
        import trimesh  # ~0.6 s to import: only when a real mesh is needed

        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
        set_mesh_units(mesh, "nm")
        mesh.metadata.update(metadata)
        if steps.skeletonize:  # the soma, compartments, or the skeleton itself from CAVE
            from .morphology import make_morphology

            mesh = make_morphology(mesh, steps, root_id=root_id, cave=_cave_request(
                source, datastack, static, server, version, token, timeout, cache_dir, use_cache, offline),
                no_cave_reason="the mesh came from --source, not a CAVE datastack")
        else:
            mesh = units_for_writer(apply_steps(mesh, steps), writer)
    with hashing_output(enabled=sidecar) as digest:
        written = api.write(mesh, target, format=writer.name, overwrite=overwrite, **options)
    check_report = None
    if check and hasattr(mesh, "faces"):
        from .check import CheckFailedError, check_mesh

        check_report = check_mesh(mesh, size=steps.print_size, min_feature=steps.min_feature,
                                  max_memory=steps.max_memory)
    preview_path = None
    if preview:
        from .preview import default_caption, render_png

        # "<file>.png" like the "<file>.json" sidecar: two formats of one id never collide.
        preview_path = render_png(mesh, written.with_name(written.name + ".png"), overwrite=overwrite,
                                  caption=default_caption(mesh, f"id {root_id}")).path

    size = written.stat().st_size
    provenance = {
        "tool": f"mesh-export {__version__}",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "root_id": str(root_id),
        "datastack": fetched_meta["source"].get("datastack"),
        "version": version if version is not None else fetched_meta["source"].get("version"),
        "source": fetched_meta["source"],
        "lod": fetched_meta["lod"],
        "lods_available": fetched_meta.get("lods_available"),
        "units": getattr(mesh, "units", None),
        **_counts(mesh, options),
        "steps": mesh.metadata.get("steps", []),
        "fetch": {k: fetched_meta.get(k) for k in ("fragments", "missing_fragments", "merged_vertices",
                                                   "retries", "fetched")} | {"cache": cache_state},
        "incomplete": bool(fetched_meta.get("missing_fragments")),
        "libraries": dict(_library_versions()),
        # Hashing costs ~30 ms per 64 MB: only done for the sidecar that records it, while the
        # file is written when the writer lays it out with write_layout, else by reading it back.
        "output": {"file": written.name, "format": writer.name, "bytes": size,
                   "sha256": ((digest.hexdigest(size) or _sha256(written)) if digest else None)},
        "request": request,
    }
    if check_report is not None:
        provenance["check"] = check_report
    if preview_path is not None:
        provenance["preview"] = preview_path.name
    sidecar_path = None
    if sidecar:
        sidecar_path = written.with_name(written.name + ".json")
        with atomic_output(sidecar_path, overwrite=True) as tmp:
            tmp.write_text(json.dumps(provenance, indent=2) + "\n")
    if check_report is not None and check_report["failures"]:
        raise CheckFailedError(f"{written}: " + "; ".join(check_report["failures"]))
    return ExportResult(root_id, written, sidecar_path, cache_state, provenance,
                        time.perf_counter() - started, preview_path)


def export_many(root_ids: Iterable[int | str], **kwargs: Any):
    """Export many ids: concurrently (``workers=N``) or on a Dask cluster (``client=``), with a
    resumable manifest. See :func:`mesh_export.batch.export_many` (this is the same function)."""
    from .batch import export_many as _export_many

    return _export_many(root_ids, **kwargs)
