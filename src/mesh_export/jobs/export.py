"""The main job: root id -> source -> cache -> steps -> writer, plus a provenance sidecar
(what the sidecar records, and writing it: :mod:`mesh_export.jobs.provenance`)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh_export.core.atomic import check_target, make_output_dir
from mesh_export.errors import InvalidArgumentError
from mesh_export.jobs.naming import DEFAULT_NAME, output_name
from mesh_export.jobs.provenance import export_provenance, export_request, pieces_bbox, write_sidecar
from mesh_export.model import SURFACE, CachedSurface, kind_of
from mesh_export.retrieve.cached import check_fetch_request, fetch_cached
from mesh_export.writers.catalog import get_writer


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


def refuse_circuit(writer) -> None:
    """A circuit format takes many ids into one output: not a per-id export's."""
    from mesh_export.model import CIRCUIT

    if CIRCUIT in writer.accepts:
        raise InvalidArgumentError(f"{writer.name} writes one circuit of many cells: use export_circuit "
                                   f"(the CLI's --format {writer.name} does)")


def units_for_writer(mesh, writer):
    """A surface in units ``writer`` cannot state, converted to the first it can (3MF: nm -> um).

    A step like any other: recorded in ``metadata["steps"]`` with the reason, so the sidecar
    (and convert's --json) says what the file holds. Other meshes are returned as they are.
    """
    if not writer.units or kind_of(mesh) != SURFACE:
        return mesh
    units = getattr(mesh, "units", None)
    if units is None or units in writer.units:
        return mesh
    from mesh_export.process.steps import convert_units

    converted = convert_units(mesh, writer.units[0])
    converted.metadata["steps"][-1]["reason"] = f"{writer.name} cannot state {units}"
    return converted


def companion_files(mesh, written: Path, writer) -> dict[str, Any]:
    """Files a writer put beside its output that the sidecar names: an OBJ's material library
    (the compartments' colours)."""
    from mesh_export.model import FACE_ATTRIBUTES, element_attributes

    if writer.name == "obj" and "compartment" in element_attributes(mesh, FACE_ATTRIBUTES):
        from mesh_export.writers.obj import mtl_name

        return {"companions": [{"file": mtl_name(written), "what": "material library: a colour per compartment"}]}
    return {}


def viewer_units(writer, units: str | None, scale: float | None, steps) -> str | None:
    """``units``, or for a format that holds scenes (glTF, a VTK multiblock) given neither
    units nor a scale, :data:`~mesh_export.model.VIEWER_UNITS`: the size a viewer shows."""
    from mesh_export.model import SCENE, VIEWER_UNITS

    if units or scale is not None or SCENE not in writer.accepts:
        return units
    if steps is not None and (steps.units or steps.scale is not None):
        return units
    return VIEWER_UNITS


def _cave_request(*, source, datastack, static, server, version, token, timeout, cache_dir, use_cache, offline):
    """Where to ask CAVE about a root id's morphology (nucleus, synapses, the skeleton service):
    its datastack, when the mesh came from one."""
    if source is not None:
        return None
    from mesh_export.retrieve.auth import resolve_token
    from mesh_export.retrieve.cave_tables import CaveRequest
    from mesh_export.retrieve.sources import DEFAULT_DATASTACK, STATIC_SOURCES

    datastack = datastack or DEFAULT_DATASTACK
    if static and version is None and datastack in STATIC_SOURCES:
        version = STATIC_SOURCES[datastack][1]
    return CaveRequest(datastack, server=server, version=version, token=resolve_token(token, server).value,
                       timeout=timeout, cache_dir=cache_dir, use_cache=use_cache, offline=offline)


def processed_mesh(root_id, vertices, faces, fetched_meta: dict, writer, steps, synapses, cave: dict,
                   as_fetched: bool = False, layers: bool = False):
    """A fetched mesh (nm) -> what ``writer`` is given: the arrays as they are (``as_fetched``),
    the steps' surface (labelled by its morphology with ``steps.compartments``), or the
    morphology; for Neuroglancer ``layers`` with a morphology, ``(surface, morphology)``.
    ``cave``: where the mesh came from (export's source keywords), for the morphology's CAVE
    lookups."""
    from mesh_export.core.units import set_mesh_units
    from mesh_export.process.steps import apply_steps

    metadata = {"units": "nm", "root_id": str(root_id), "lod": fetched_meta["lod"],
                "source": fetched_meta["source"].get("url")}
    if as_fetched:
        return CachedSurface(vertices, faces, metadata)
    import trimesh  # ~0.6 s to import: only when a real mesh is needed

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    set_mesh_units(mesh, "nm")
    mesh.metadata.update(metadata)
    if not (steps.skeletonize or steps.compartments):
        return units_for_writer(apply_steps(mesh, steps), writer)
    # the soma, compartments, synapses, or the skeleton itself from CAVE
    from mesh_export.jobs.synapses import check_landed, morphology_answers
    from mesh_export.process.steps import make_labelled_surface, make_morphology

    request = _cave_request(**cave)
    answers = morphology_answers(steps, synapses, cave=request, root_id=root_id,
                                 no_cave_reason="the mesh came from --source, not a CAVE datastack")
    if steps.compartments and not steps.skeletonize:
        return units_for_writer(make_labelled_surface(mesh, steps, answers), writer)
    if layers:
        from mesh_export.process.steps import surface_and_morphology

        surface, morphology = surface_and_morphology(mesh, steps, answers)
        check_landed(morphology, synapses)
        return surface, morphology
    morphology = make_morphology(mesh, steps, answers)
    check_landed(morphology, synapses)
    return morphology


def export(root_id: int | str, *, format: str = "stl", out_dir: str | os.PathLike = ".",
           name: str = DEFAULT_NAME, datastack: str | None = None, version: int | None = None,
           server: str | None = None, source: str | None = None, static: bool = False,
           lod: int | None = None, token: str | None = None, cache_dir: str | os.PathLike | None = None,
           use_cache: bool = True, offline: bool = False, allow_missing: bool = False,
           timeout: float = 120.0, units: str | None = None, scale: float | None = None,
           steps=None, check: bool = False, overwrite: bool = False, sidecar: bool = True,
           preview: bool = False, progress: bool = False, synapses=None, **options: Any) -> ExportResult:
    """Export one root id to a file; see the CLI's help for what each argument does.
    ``synapses``: a :class:`~mesh_export.jobs.synapses.SynapseOptions` (a morphology's synapses:
    from the datastack's table by default, or a file; their table written beside it)."""
    from mesh_export.writers.output import write
    from mesh_export.process.steps import plan_for_writer
    from mesh_export.writers._layout import hashing_output

    started = time.perf_counter()
    request = export_request(root_id, format=format, name=name, datastack=datastack, version=version,
                             server=server, source=source, static=static, lod=lod,
                             allow_missing=allow_missing, units=units, scale=scale, steps=steps,
                             check=check, preview=preview, synapses=synapses, **options)
    root_id = check_fetch_request(root_id, lod, use_cache, offline)
    writer = get_writer(format)
    refuse_circuit(writer)
    from mesh_export.jobs.layers import writes_layers

    layers = writes_layers(writer)
    units = viewer_units(writer, units, scale, steps)
    # A copy: the plan adjusts it, and a batch shares one StepOptions across threads.
    steps, options = plan_for_writer(steps, writer, options,
                                     units=units, scale=scale)
    if preview and steps.volume:
        raise InvalidArgumentError("--preview draws surfaces and morphologies, not tetrahedral meshes")
    if layers and (steps.units or steps.scale is not None or steps.center or steps.print_size is not None):
        raise InvalidArgumentError("precomputed layers lie on the dataset, in nm: --units, --scale, --center "
                                   "and --print would move them off it")
    if layers and (preview or check or steps.volume):
        raise InvalidArgumentError("--format precomputed writes layers for a viewer: --preview, --check and "
                                   "--volume go with file formats")
    table_format = None
    if synapses is not None:
        synapses.check_steps(steps, writer.name)
    if steps.skeletonize or steps.compartments:
        from mesh_export.jobs.synapses import SynapseOptions
        from mesh_export.process.morphology import check_request

        check_request(steps, from_datastack=source is None)
        synapses = (synapses or SynapseOptions()).checked()
        if (steps.skeletonize and synapses.source_for(steps, from_datastack=source is None) != "none"
                and not layers):
            table_format = synapses.format
    if layers:  # the cell joins the layers in out_dir itself
        from mesh_export.jobs.layers import check_layers_target

        out_dir = check_layers_target(out_dir, root_id, options, overwrite)
    else:
        out_dir = make_output_dir(out_dir)

    def target_for(level: int) -> Path:
        filename = output_name(name, root_id=root_id, lod=level, writer=writer, datastack=datastack)
        target = check_target(out_dir / filename, overwrite)
        if preview:  # the picture beside it obeys --overwrite too
            check_target(target.with_name(target.name + ".png"), overwrite)
        if table_format:  # and so does the synapse table
            for companion in synapses.outputs(target):
                check_target(companion, overwrite)
        if writer.name == "obj" and steps.compartments:  # and the OBJ's material library
            check_target(target.with_suffix(".mtl"), overwrite)
        return target

    # The binary native writers (those that check values themselves) take the cached arrays
    # as they are; anything that needs a real mesh (steps, --check, --preview, text) gets one.
    # Layers too: their lods are made from the float32 arrays, never a float64 copy.
    as_fetched = ((writer.checks_values or layers) and not options.get("ascii") and not steps.changes_mesh()
                  and not check and not preview)
    if lod != -1 and not layers:  # the coarsest lod's number is only known after fetching
        target_for(lod or 0)  # fail before any download
    # A triangle list (binary STL) needs no merged mesh: the fetched fragments are written as
    # they are when nothing else needs the merge either, neither a cache entry nor a sidecar
    # (it records the merged mesh's vertex count). The same file, 0.8 s sooner at 9M faces.
    pieces: list | None = ([] if as_fetched and writer.write_pieces is not None and not use_cache and not sidecar
                           and not layers else None)

    vertices, faces, fetched_meta, cache_state = fetch_cached(
        root_id, source=source, datastack=datastack, static=static, server=server, version=version,
        lod=lod, token=token, cache_dir=cache_dir, use_cache=use_cache, offline=offline,
        allow_missing=allow_missing, timeout=timeout, progress=progress, unmerged=pieces)
    if vertices is None:
        return _export_pieces(pieces, target_for(fetched_meta["lod"]), root_id=root_id, fetched=fetched_meta,
                              writer=writer, options=options, overwrite=overwrite, request=request, version=version,
                              started=started)

    target = out_dir if layers else target_for(fetched_meta["lod"])
    cave = dict(source=source, datastack=datastack, static=static, server=server, version=version, token=token,
                timeout=timeout, cache_dir=cache_dir, use_cache=use_cache, offline=offline)
    mesh = processed_mesh(root_id, vertices, faces, fetched_meta, writer, steps, synapses, cave, as_fetched,
                          layers=layers)
    if layers:
        surface, skeleton = mesh if isinstance(mesh, tuple) else (mesh, None)
        return _add_to_layers(surface, skeleton, root_id=root_id, out_dir=out_dir, options=options,
                              overwrite=overwrite, datastack=datastack, version=version,
                              source=fetched_meta["source"].get("url"), request=request, fetched=fetched_meta,
                              cache_state=cache_state, started=started)
    with hashing_output(enabled=sidecar) as digest:
        written = write(mesh, target, format=writer.name, overwrite=overwrite, **options)
    table = None
    if table_format:
        from mesh_export.jobs.synapses import write_table

        table = write_table(mesh, written, synapses, units=options.get("units"), overwrite=overwrite,
                            template=options.get("template"))
    check_report = None
    if check and kind_of(mesh) == SURFACE:
        from mesh_export.process.check import CheckFailedError, check_mesh

        check_report = check_mesh(mesh, size=steps.print_size, min_feature=steps.min_feature,
                                  max_memory=steps.max_memory)
    preview_path = None
    if preview:
        from mesh_export.look.preview import default_caption, render_png

        # "<file>.png" like the "<file>.json" sidecar: two formats of one id never collide.
        preview_path = render_png(mesh, written.with_name(written.name + ".png"), overwrite=overwrite,
                                  caption=default_caption(mesh, f"id {root_id}")).path

    provenance = export_provenance(mesh, root_id=root_id, version=version, fetched=fetched_meta,
                                   cache_state=cache_state, written=written, writer=writer, options=options,
                                   request=request, digest=digest, check=check_report, preview=preview_path,
                                   synapses=table)
    provenance.update(companion_files(mesh, written, writer))
    sidecar_path = write_sidecar(written, provenance) if sidecar else None
    if check_report is not None and check_report["failures"]:
        raise CheckFailedError(f"{written}: " + "; ".join(check_report["failures"]))
    return ExportResult(root_id, written, sidecar_path, cache_state, provenance,
                        time.perf_counter() - started, preview_path)


def _export_pieces(pieces: list, target: Path, *, root_id, fetched, writer, options, overwrite, request, version,
                   started) -> ExportResult:
    """The export of a mesh left in its fetched pieces (no cache, no sidecar) by a writer that
    needs no merge (``Writer.write_pieces``). Unmerged, the mesh's vertex count is not known:
    the provenance says None; its faces are those written."""
    from mesh_export.core.options import check_options
    from mesh_export.errors import InvalidMeshError, NotFoundError
    from mesh_export.writers.output import write_pieces

    check_options(writer, options)
    bbox = pieces_bbox(vertices for vertices, _ in pieces)
    try:
        written, face_count = write_pieces(pieces, target, writer, overwrite, units="nm")
    except InvalidMeshError:  # the pieces were checked: the one left is that every face collapsed
        raise NotFoundError(f"root id {root_id}: the source returned an empty mesh") from None
    metadata = {"units": "nm", "root_id": str(root_id), "lod": fetched["lod"], "source": fetched["source"].get("url")}
    provenance = export_provenance(CachedSurface(None, None, metadata), root_id=root_id, version=version,
                                   fetched=fetched, cache_state="off", written=written, writer=writer, options=options,
                                   request=request, digest=None,
                                   counts={"vertices": None, "faces": face_count, "bbox": bbox})
    return ExportResult(root_id, written, None, "off", provenance, time.perf_counter() - started)


def _add_to_layers(surface, skeleton, *, root_id, out_dir, options, overwrite, datastack, version, source, request,
                   fetched, cache_state, started) -> ExportResult:
    """--format precomputed: the cell joins the layers in ``out_dir``; its record there is the provenance
    (no sidecar: the layers' ``mesh-export.json`` holds every cell's)."""
    from mesh_export.jobs.layers import add_cell

    entry = add_cell(surface, skeleton, root_id=root_id, out_dir=out_dir, options=options, overwrite=overwrite,
                     datastack=datastack, version=version, source=source, request=request)
    provenance = {"root_id": str(root_id), "lod": fetched["lod"], "units": "nm",
                  "vertices": int(len(surface.vertices)), "faces": int(len(surface.faces)),
                  "nodes": int(len(skeleton.nodes)) if skeleton is not None else None,
                  "steps": entry.get("steps", []), "layers": entry["layers"], "synapses": entry.get("synapses", 0),
                  "faces_per_lod": entry.get("faces_per_lod")}
    return ExportResult(root_id, Path(out_dir), None, cache_state, provenance, time.perf_counter() - started)
