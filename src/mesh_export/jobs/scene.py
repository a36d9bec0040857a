"""Many cells in ONE file to look at (``--scene NAME.glb|.gltf|.vtm``): each id fetched through
the cache and processed as an export would (its compartments and synapses with
``--compartments``), given its colour, and the surfaces written together as a
:class:`~mesh_export.model.Scene`, with a ``<scene>.json`` sidecar (units, cells, failures).

A failed id is recorded as a batch records it (:func:`~mesh_export.jobs.manifest.record_failed`)
and the scene holds the rest; with no cell left nothing is written. A GLB's size is checked
from the counts before anything is built (glTF's 4 GiB limit)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from mesh_export.errors import EXIT_ALL_FAILED, EXIT_ALL_OK, EXIT_SOME_FAILED, InvalidArgumentError

__all__ = ["SceneOptions", "SceneResult", "export_scene", "SCENE_FORMATS", "COLOR_BY"]

#: Scene file extensions -> the format that writes them.
SCENE_FORMATS = {".glb": "glb", ".gltf": "gltf", ".vtm": "vtm"}
COLOR_BY = ("cell", "compartment")


@dataclass
class SceneOptions:
    """``output``: the scene file (``NAME.glb``, ``.gltf`` or ``.vtm``; a bare name goes into the
    export's ``out_dir``, a path is used as given). ``colors``: root id -> colour (``#rrggbb``,
    ``r,g,b`` or RGBA; an ids file's ``color`` column), the rest from the palette.
    ``color_by``: ``cell`` (each cell its colour, its compartments still separate parts) or
    ``compartment`` (every cell's parts in the compartment colours)."""

    output: str | os.PathLike
    colors: dict[str, Any] = field(default_factory=dict)
    color_by: str = "cell"

    @property
    def format(self) -> str:
        suffix = Path(self.output).suffix.lower()
        if suffix not in SCENE_FORMATS:
            raise InvalidArgumentError(f"--scene writes {', '.join(SCENE_FORMATS)}, not {Path(self.output).name!r}")
        return SCENE_FORMATS[suffix]

    def target(self, out_dir) -> Path:
        path = Path(self.output)
        return path if len(path.parts) > 1 or path.is_absolute() else Path(out_dir) / path

    def checked(self) -> "SceneOptions":
        from mesh_export.core.colors import parse_color

        self.format  # noqa: B018  (a bad extension fails here)
        if self.color_by not in COLOR_BY:
            raise InvalidArgumentError(f"--color-by is cell or compartment, not {self.color_by!r}")
        colors = {str(k).strip(): (tuple(v) if isinstance(v, (tuple, list)) else parse_color(v))
                  for k, v in (self.colors or {}).items()}
        return SceneOptions(self.output, colors, self.color_by)


@dataclass
class SceneResult:
    output: Path | None
    sidecar: Path | None
    cells: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    units: str | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        if not self.failed:
            return EXIT_ALL_OK
        return EXIT_ALL_FAILED if not self.cells else EXIT_SOME_FAILED

    def summary(self) -> dict[str, Any]:
        return {"output": str(self.output) if self.output else None,
                "sidecar": str(self.sidecar) if self.sidecar else None, "units": self.units,
                "cells": self.cells, "failed": self.failed, "seconds": round(self.seconds, 3)}

    def summary_table(self) -> str:
        lines = [f"scene: {len(self.cells) + len(self.failed)} ids   in the scene {len(self.cells)}   "
                 f"failed {len(self.failed)}   {self.seconds:.1f} s"]
        for record in self.failed[:20]:
            lines.append(f"  {record['root_id']}  {record.get('exit_code', '')}  {record.get('error', '')}")
        return "\n".join(lines)


def export_scene(root_ids: Iterable[int | str], *, scene: SceneOptions, out_dir: str | os.PathLike = ".",
                 workers: int = 1, overwrite: bool = False, sidecar: bool = True, steps=None, synapses=None,
                 units: str | None = None, scale: float | None = None, lod: int | None = None,
                 source: str | None = None, datastack: str | None = None, static: bool = False,
                 server: str | None = None, version: int | None = None, token: str | None = None,
                 cache_dir=None, use_cache: bool = True, offline: bool = False, allow_missing: bool = False,
                 timeout: float = 120.0, preview: bool = False, **ignored: Any) -> SceneResult:
    """Write the cells of ``root_ids`` into one scene file (see the module docstring)."""
    from mesh_export.core.atomic import check_target, make_output_dir
    from mesh_export.core.colors import palette
    from mesh_export.jobs.export import viewer_units
    from mesh_export.jobs.manifest import record_failed
    from mesh_export.process.steps import plan_for_writer
    from mesh_export.writers.catalog import get_writer

    started = time.perf_counter()
    scene = scene.checked()
    ids = list(dict.fromkeys(str(i).strip() for i in root_ids))
    if not ids:
        raise InvalidArgumentError("no root ids given for the scene (arguments, --ids-file, or - for stdin)")
    if workers < 1:
        raise InvalidArgumentError(f"--workers must be 1 or more, got {workers}")
    writer = get_writer(scene.format)
    units = viewer_units(writer, units, scale, steps)
    steps, _ = plan_for_writer(steps, writer, {}, units=units, scale=scale)
    # --center centres the scene, not each cell (which would stack them on one another).
    centre, steps.center = steps.center, False
    if steps.volume or steps.skeletonize:
        raise InvalidArgumentError("a scene holds surfaces: drop --volume / --skeletonize")
    if steps.compartments:
        from mesh_export.jobs.synapses import SynapseOptions
        from mesh_export.process.morphology import check_request

        check_request(steps, from_datastack=source is None)
        synapses = (synapses or SynapseOptions()).checked()
    if synapses is not None:
        synapses.check_steps(steps, writer.name)
    make_output_dir(out_dir)
    target = check_target(scene.target(out_dir), overwrite)
    colors = dict(zip(ids, palette(len(ids))))
    colors.update({k: v for k, v in scene.colors.items() if k in colors})
    fetch = dict(source=source, datastack=datastack, static=static, server=server, version=version, lod=lod,
                 token=token, cache_dir=cache_dir, use_cache=use_cache, offline=offline,
                 allow_missing=allow_missing, timeout=timeout)

    def one(root_id: str):
        began = time.perf_counter()
        try:
            return _cell(root_id, writer, steps, synapses, fetch), None
        except Exception as exc:  # one failed id never stops the scene
            return None, record_failed(root_id, exc, began, token)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(one, ids))
    cells, failed = [], []
    for root_id, (cell, failure) in zip(ids, outcomes):
        if failure is not None:
            failed.append(failure)
            continue
        if scene.color_by == "cell":
            cell.metadata["color"] = tuple(int(c) for c in colors[root_id])
        cells.append(cell)
    result = SceneResult(None, None, failed=failed, seconds=0.0)
    if not cells:
        result.seconds = time.perf_counter() - started
        return result
    from mesh_export.model import Scene
    from mesh_export.writers.output import write

    if centre:
        cells = _centred(cells)

    units_written = getattr(cells[0], "units", None)
    data = Scene(cells, units_written, {"name": target.stem})
    written = write(data, target, format=writer.name, overwrite=overwrite)
    result.output, result.units = written, units_written
    result.cells = [_cell_record(cell, colors.get(cell.metadata["root_id"]) if scene.color_by == "cell" else None)
                    for cell in cells]
    if preview:
        from mesh_export.look.preview import render_scene_png

        render_scene_png(data, written.with_name(written.name + ".png"), overwrite=overwrite)
    if sidecar:
        from mesh_export._version import __version__
        from mesh_export.jobs.provenance import _sha256, write_sidecar

        record = {"tool": f"mesh-export {__version__}",
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "output": {"file": written.name, "format": writer.name, "bytes": written.stat().st_size,
                             "sha256": _sha256(written)},
                  "units": units_written, "scene": {"color_by": scene.color_by, "cells": len(cells),
                                                    "failed": len(failed)},
                  "request": {"root_ids": ids, "lod": lod, "units": units, "scale": scale,
                              "compartments": bool(steps.compartments), "center": bool(centre)},
                  "cells": result.cells, "failed": failed}
        result.sidecar = write_sidecar(written, record)
    result.seconds = time.perf_counter() - started
    return result


def _centred(cells: list) -> list:
    """The cells moved together so that the scene's bounding box is centred on the origin
    (their synapse points with them), each recording the step."""
    import numpy as np

    from mesh_export.model import SYNAPSE_POINTS
    from mesh_export.process.derived import derived_mesh

    lo = np.min([np.asarray(c.vertices).min(axis=0) for c in cells], axis=0)
    hi = np.max([np.asarray(c.vertices).max(axis=0) for c in cells], axis=0)
    offset = -(lo + hi) / 2.0
    moved = []
    for cell in cells:
        out = derived_mesh(cell, np.asarray(cell.vertices) + offset,
                           {"step": "center", "offset": offset.tolist(), "of": "the scene's bounding box"})
        points = cell.metadata.get(SYNAPSE_POINTS)
        if points:
            out.metadata[SYNAPSE_POINTS] = {**points, "positions": (np.asarray(points["positions"]) + offset)
                                            .astype(np.float32)}
        moved.append(out)
    return moved


def _cell(root_id: str, writer, steps, synapses, fetch: dict):
    from mesh_export.core.parsing import parse_root_id
    from mesh_export.jobs.export import processed_mesh
    from mesh_export.retrieve.cached import check_fetch_request, fetch_cached

    root_id = parse_root_id(root_id)
    check_fetch_request(root_id, fetch["lod"], fetch["use_cache"], fetch["offline"])
    vertices, faces, fetched_meta, cache_state = fetch_cached(root_id, **fetch)
    cave = {k: fetch[k] for k in ("source", "datastack", "static", "server", "version", "token", "timeout",
                                  "cache_dir", "use_cache", "offline")}
    mesh = processed_mesh(root_id, vertices, faces, fetched_meta, writer, steps, synapses, cave)
    mesh.metadata["cache"] = cache_state
    return mesh


def _cell_record(cell, color) -> dict[str, Any]:
    from mesh_export.model import FACE_ATTRIBUTES, SYNAPSE_POINTS, element_attributes

    metadata = cell.metadata
    record: dict[str, Any] = {"root_id": str(metadata["root_id"]), "lod": metadata.get("lod"),
                              "cache": metadata.get("cache"), "vertices": int(len(cell.vertices)),
                              "faces": int(len(cell.faces)),
                              "steps": list(metadata.get("steps", []))}
    if color is not None:
        record["color"] = "#" + "".join(f"{int(c):02x}" for c in color[:3])
    labels = element_attributes(cell, FACE_ATTRIBUTES).get("compartment")
    if labels is not None:
        from mesh_export.model import COMPARTMENT_NAMES
        import numpy as np

        counts = np.bincount(labels, minlength=len(COMPARTMENT_NAMES))
        record["faces_per_compartment"] = {name: int(counts[k]) for k, name in COMPARTMENT_NAMES.items()}
    points = metadata.get(SYNAPSE_POINTS)
    if points:
        import numpy as np

        directions = np.asarray(points["direction"]).astype(str)
        record["synapses"] = {"input": int((directions == "input").sum()), "output": int((directions == "output").sum())}
    return record
