"""glTF 2.0 (GLB and embedded .gltf) and 3MF, through trimesh's exporters.

glTF has no units field (the spec says metres), so the mesh's units and the tool go in
``asset.extras`` and ``asset.generator``. trimesh's 3MF exporter always declares
millimetres, so 3MF is refused for meshes in other units instead of mislabelling them.
"""

from __future__ import annotations

from ..errors import UnitsError
from ._mesh import provenance_line, units_of
from .registry import Writer, register


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


def write_3mf(mesh, path) -> None:
    from trimesh.exchange.threemf import export_3MF

    if units_of(mesh) not in ("mm", "unknown"):
        raise UnitsError(f"3MF files are in millimetres and this mesh is in {units_of(mesh)}; add --units mm")
    with open(path, "xb") as handle:
        handle.write(export_3MF(_plain_copy(mesh)))


register(Writer("glb", (".glb",), write_glb, modes=("binary",), backend="trimesh",
                description="binary glTF 2.0; Blender, three.js, web viewers"))
register(Writer("gltf", (".gltf",), write_gltf, modes=("ascii",), backend="trimesh",
                description="glTF 2.0 JSON with embedded buffer"))
register(Writer("3mf", (".3mf",), write_3mf, modes=("binary",), backend="trimesh",
                description="3D Manufacturing Format (millimetres); slicers"))
