"""glTF 2.0 (GLB and embedded .gltf) and 3MF, through trimesh's exporters.

glTF has no units field (the spec says metres), so the mesh's units and the tool go in
``asset.extras`` and ``asset.generator``. 3MF's model has a ``unit`` attribute (core spec:
micron, millimeter, centimeter, inch, foot, meter; millimeter when absent). trimesh's
exporter always writes ``unit="millimeter"``, so the model XML is rewritten in the archive
with the mesh's unit; a nanometre mesh is written in micrometres (the export records that
conversion as a step before the writer sees the mesh: ``Writer.units``).
"""

from __future__ import annotations

import io
import zipfile

from mesh_export.errors import UnitsError
from mesh_export.writers._mesh import provenance_line, units_of
from mesh_export.writers.registry import Writer, register


def _plain_copy(mesh):
    import trimesh

    # Only geometry: trimesh would otherwise put arbitrary metadata into the file.
    return trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=False)


def _tag_asset(mesh):
    def postprocess(tree: dict) -> None:
        asset = tree.setdefault("asset", {})
        asset["generator"] = provenance_line(mesh)
        asset.setdefault("extras", {})["units"] = units_of(mesh)

    return postprocess


def write_glb(mesh, path) -> None:
    from trimesh.exchange.gltf import export_glb

    data = export_glb(_plain_copy(mesh).scene(), tree_postprocessor=_tag_asset(mesh))
    with open(path, "xb") as handle:
        handle.write(data)


def write_gltf(mesh, path) -> None:
    from trimesh.exchange.gltf import export_gltf

    files = export_gltf(_plain_copy(mesh).scene(), embed_buffers=True, tree_postprocessor=_tag_asset(mesh))
    with open(path, "xb") as handle:
        handle.write(files["model.gltf"])


#: Our unit names -> the 3MF core specification's ``unit`` values.
THREEMF_UNITS = {"um": "micron", "mm": "millimeter", "cm": "centimeter", "m": "meter"}
_MODEL = "3D/3dmodel.model"


def _with_unit(archive: bytes, unit: str, extra: dict[str, str] | None = None) -> bytes:
    """The 3MF package with the model's ``unit`` attribute set to ``unit`` (and ``extra``
    files added: name -> text)."""
    source = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=5) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == _MODEL:
                # The first unit attribute is the <model> element's (vertices follow it).
                head, found, tail = data.partition(b'unit="millimeter"')
                if not found:
                    raise UnitsError("trimesh's 3MF exporter no longer writes unit=\"millimeter\"; "
                                     "cannot state the units")
                data = head + f'unit="{unit}"'.encode() + tail
            target.writestr(item, data)
        for name, text in (extra or {}).items():
            target.writestr(name, text)
    return out.getvalue()


def slicer_files(mesh) -> dict[str, str]:
    """PrusaSlicer's settings for a print (supports on where the print step found overhangs,
    the bed of a planned plate): ``Metadata/Slic3r_PE.config``. Nothing for other meshes."""
    steps = {s.get("step"): s for s in getattr(mesh, "metadata", {}).get("steps", [])}
    if "print" not in steps:
        return {}
    from ..process.printing import slicer_config

    supports = bool(steps["print"].get("supports", {}).get("needed", False))
    bed = steps.get("plate", {}).get("plate_mm")
    return {"Metadata/Slic3r_PE.config": slicer_config(supports=supports, bed=tuple(bed) if bed else None)}


def write_3mf(mesh, path) -> None:
    from trimesh.exchange.threemf import export_3MF

    units = units_of(mesh)
    copy = _plain_copy(mesh)
    if units == "nm":  # 3MF has no nanometre unit: micrometres (export records this as a step)
        copy.vertices = copy.vertices * 1e-3
        units = "um"
    if units == "unknown":
        unit = "millimeter"  # what the specification assumes when the file says nothing
    elif units in THREEMF_UNITS:
        unit = THREEMF_UNITS[units]
    else:
        raise UnitsError(f"3MF files can be in {', '.join(THREEMF_UNITS)}, not {units}; add --units mm")
    data = _with_unit(export_3MF(copy), unit, slicer_files(mesh))
    with open(path, "xb") as handle:
        handle.write(data)


register(Writer("glb", (".glb",), write_glb, modes=("binary",), backend="trimesh",
                description="binary glTF 2.0; Blender, three.js, web viewers"))
register(Writer("gltf", (".gltf",), write_gltf, modes=("ascii",), backend="trimesh",
                description="glTF 2.0 JSON with embedded buffer"))
register(Writer("3mf", (".3mf",), write_3mf, modes=("binary",), backend="trimesh",
                units=tuple(THREEMF_UNITS),
                description="3D Manufacturing Format (um, mm, cm or m; nm written as um); slicers"))
