"""glTF 2.0 scenes written natively: cells with their parts told apart, synapses as spheres.

What trimesh's exporter cannot say is written here: a surface whose faces carry a
``compartment`` becomes one mesh with one primitive per compartment, each with its own named
material (``soma``, ``axon``, ``basal_dendrite``, ``apical_dendrite``, ``unknown``), so Blender
shows them in colour as separate material slots; a cell's synapses become two child nodes
(``<root id> inputs`` / ``<root id> outputs``) of small low-poly spheres merged into one mesh
each, with every synapse's id, partner, size and tag in that mesh's ``extras`` (glTF vertex
attributes cannot hold a 64-bit root id). A :class:`~mesh_export.model.Scene` writes a node per
cell, named by its root id, in the cell's colour (or its compartments').

Each primitive has its own vertices (those its faces use), so an importer that splits
primitives (Blender does) holds exactly the vertex count the sidecar states. The units go in
``asset.extras.units`` (glTF's own unit is the metre). The byte count is known from the counts
before anything is built: a GLB past its 4 GiB limit is refused first.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

from mesh_export.core.units import conversion_factor
from mesh_export.errors import OutputError
from mesh_export.model import (COMPARTMENT_COLORS, COMPARTMENT_NAMES, FACE_ATTRIBUTES, SCENE, SYNAPSE_COLORS,
                               SYNAPSE_POINTS, Scene, element_attributes, kind_of)
from mesh_export.writers._mesh import provenance_line, units_of

__all__ = ["write_scene_glb", "write_scene_gltf", "is_scene_data", "as_scene", "planned_bytes",
           "GLB_LIMIT", "SYNAPSE_RADIUS_UM"]

#: A GLB's length is a uint32 (trimesh issue 1770: past it the header overflows).
GLB_LIMIT = 2**32 - 1
#: Synapse spheres' radius.
SYNAPSE_RADIUS_UM = 0.5
_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def is_scene_data(data) -> bool:
    """A Scene, or a surface with compartments or synapse points: what this module writes."""
    if kind_of(data) == SCENE:
        return True
    metadata = getattr(data, "metadata", None) or {}
    return "compartment" in element_attributes(data, FACE_ATTRIBUTES) or bool(metadata.get(SYNAPSE_POINTS))


def as_scene(data) -> Scene:
    return data if kind_of(data) == SCENE else Scene([data], getattr(data, "units", None),
                                                     dict(getattr(data, "metadata", {}) or {}))


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5**0.5) / 2
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
                  [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], dtype=np.float64)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.uint32)
    return v / np.linalg.norm(v, axis=1, keepdims=True), f


_SPHERE_VERTICES, _SPHERE_FACES = _icosahedron()


def synapse_radius(units: str | None, vertices) -> float:
    """Sphere radius in the scene's units (unknown units: 0.2% of the extent)."""
    if units and units != "unknown":
        return SYNAPSE_RADIUS_UM * conversion_factor("um", units)
    vertices = np.asarray(vertices)
    return 0.002 * float(np.ptp(vertices, axis=0).max()) if len(vertices) else 1.0


def _compartments(cell) -> np.ndarray | None:
    return element_attributes(cell, FACE_ATTRIBUTES).get("compartment")


def planned_bytes(scene: Scene) -> int:
    """The binary chunk's size, from the counts alone (checked before anything is built)."""
    total = 0
    for cell in scene.cells:
        faces = len(cell.faces)
        parts = len(np.unique(_compartments(cell))) if _compartments(cell) is not None else 1
        # Each part's vertices: at most every vertex once per part; faces 12 bytes.
        total += 12 * faces + 12 * min(parts * len(cell.vertices), 3 * faces)
        points = (getattr(cell, "metadata", {}) or {}).get(SYNAPSE_POINTS) or {}
        total += len(points.get("positions", ())) * (12 * len(_SPHERE_VERTICES) + 12 * len(_SPHERE_FACES))
    return total


@dataclass
class _Builder:
    """A glTF document and its one binary buffer, grown a piece at a time."""

    chunks: list = field(default_factory=list)
    length: int = 0
    doc: dict = field(default_factory=lambda: {"bufferViews": [], "accessors": [], "meshes": [], "nodes": [],
                                               "materials": []})
    _materials: dict = field(default_factory=dict)

    def _view(self, array: np.ndarray, target: int) -> int:
        data = memoryview(np.ascontiguousarray(array)).cast("B")
        self.doc["bufferViews"].append({"buffer": 0, "byteOffset": self.length, "byteLength": data.nbytes,
                                        "target": target})
        self.chunks.append(data)
        self.length += data.nbytes
        pad = -self.length % 4
        if pad:
            self.chunks.append(b"\0" * pad)
            self.length += pad
        return len(self.doc["bufferViews"]) - 1

    def _accessor(self, array: np.ndarray, kind: str, component: int, target: int, bounds: bool = False) -> int:
        accessor = {"bufferView": self._view(array, target), "componentType": component,
                    "count": int(len(array)), "type": kind}
        if bounds and len(array):
            accessor["min"] = [float(x) for x in array.min(axis=0)]
            accessor["max"] = [float(x) for x in array.max(axis=0)]
        self.doc["accessors"].append(accessor)
        return len(self.doc["accessors"]) - 1

    def material(self, name: str, rgba) -> int:
        if name not in self._materials:
            color = [round(c / 255.0, 4) for c in rgba]
            self.doc["materials"].append({"name": name, "doubleSided": True, "pbrMetallicRoughness": {
                "baseColorFactor": color, "metallicFactor": 0.0, "roughnessFactor": 0.8}})
            self._materials[name] = len(self.doc["materials"]) - 1
        return self._materials[name]

    def primitive(self, vertices: np.ndarray, faces: np.ndarray, material: int) -> dict:
        position = self._accessor(np.asarray(vertices, dtype=np.float32).reshape(-1, 3), "VEC3", _FLOAT,
                                  _ARRAY_BUFFER, bounds=True)
        indices = self._accessor(np.asarray(faces, dtype=np.uint32).reshape(-1), "SCALAR", _UINT,
                                 _ELEMENT_ARRAY_BUFFER)
        return {"attributes": {"POSITION": position}, "indices": indices, "material": material, "mode": 4}

    def mesh(self, name: str, primitives: list[dict], extras: dict | None = None) -> int:
        mesh = {"name": name, "primitives": primitives}
        if extras:
            mesh["extras"] = extras
        self.doc["meshes"].append(mesh)
        return len(self.doc["meshes"]) - 1

    def node(self, name: str, mesh: int | None = None, children: list[int] | None = None,
             extras: dict | None = None) -> int:
        node = {"name": name}
        if mesh is not None:
            node["mesh"] = mesh
        if children:
            node["children"] = children
        if extras:
            node["extras"] = extras
        self.doc["nodes"].append(node)
        return len(self.doc["nodes"]) - 1


def _parts(vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray):
    """(label, part vertices, part faces) per label present, each part's vertices only those
    its faces use (one pass over a boolean mask per label, no sort of the vertices)."""
    used = np.zeros(len(vertices), dtype=bool)
    for label in np.unique(labels):
        part = faces[labels == label]
        used[:] = False
        used[part.ravel()] = True
        remap = np.cumsum(used, dtype=np.int64) - 1
        yield int(label), vertices[used], remap[part]


def _cell_name(cell, index: int) -> str:
    root_id = (getattr(cell, "metadata", None) or {}).get("root_id")
    return str(root_id) if root_id is not None else f"cell_{index}"


def _synapse_nodes(builder: _Builder, name: str, points: dict, radius: float) -> list[int]:
    nodes = []
    directions = np.asarray(points["direction"]).astype(str)
    for direction, label in (("input", "inputs"), ("output", "outputs")):
        keep = np.flatnonzero(directions == direction)
        if not len(keep):
            continue
        centres = np.asarray(points["positions"], dtype=np.float64)[keep]
        n_v, n_f = len(_SPHERE_VERTICES), len(_SPHERE_FACES)
        vertices = (centres[:, None, :] + radius * _SPHERE_VERTICES[None]).reshape(-1, 3)
        faces = (_SPHERE_FACES[None] + (np.arange(len(keep), dtype=np.uint32) * n_v)[:, None, None]).reshape(-1, 3)
        material = builder.material(f"synapse_{direction}", SYNAPSE_COLORS[direction])
        extras = {"synapses": {
            "count": int(len(keep)), "vertices_per_synapse": n_v, "faces_per_synapse": n_f,
            "radius": radius, "direction": direction,
            "id": [str(int(x)) for x in np.asarray(points["id"])[keep]],
            "partner": [str(int(x)) for x in np.asarray(points["partner"])[keep]],
            "size": [None if not np.isfinite(x) else float(x) for x in np.asarray(points["size"])[keep]],
            "tag": [str(x) for x in np.asarray(points["tag"])[keep]]}}
        mesh = builder.mesh(f"{name} {label}", [builder.primitive(vertices, faces, material)], extras)
        nodes.append(builder.node(f"{name} {label}", mesh=mesh))
    return nodes


def _build(scene: Scene) -> tuple[dict, list]:
    units = scene.units or units_of(scene.cells[0]) if scene.cells else "unknown"
    builder = _Builder()
    roots, counts = [], []
    for index, cell in enumerate(scene.cells):
        name = _cell_name(cell, index)
        vertices, faces = np.asarray(cell.vertices), np.asarray(cell.faces)
        labels = _compartments(cell)
        metadata = getattr(cell, "metadata", None) or {}
        primitives, written = [], 0
        color = metadata.get("color")
        own = builder.material(f"cell {name}", color or COMPARTMENT_COLORS[0]) if color or labels is None else None
        if labels is not None:  # a part per compartment, in its colour or the cell's
            for label, part_vertices, part_faces in _parts(vertices, faces, labels):
                key = label if label in COMPARTMENT_NAMES else 0
                material = own if own is not None else builder.material(COMPARTMENT_NAMES[key], COMPARTMENT_COLORS[key])
                primitive = builder.primitive(part_vertices, part_faces, material)
                primitive["extras"] = {"compartment": COMPARTMENT_NAMES[key]}
                primitives.append(primitive)
                written += len(part_vertices)
        else:
            primitives.append(builder.primitive(vertices, faces, own))
            written = len(vertices)
        mesh = builder.mesh(name, primitives)
        children = []
        points = metadata.get(SYNAPSE_POINTS)
        if points and len(points.get("positions", ())):
            children = _synapse_nodes(builder, name, points, synapse_radius(units, vertices))
        extras = {"root_id": name, "faces": int(len(faces)), "vertices": int(written), "units": units}
        roots.append(builder.node(name, mesh=mesh, children=children, extras=extras))
        counts.append(extras)
    doc = builder.doc
    doc["asset"] = {"version": "2.0", "generator": provenance_line(scene.cells[0]) if scene.cells else "mesh-export",
                    "extras": {"units": units, "unit_in_metres": _metres(units), "cells": counts}}
    doc["scene"] = 0
    doc["scenes"] = [{"name": scene.metadata.get("name", "mesh-export"), "nodes": roots}]
    doc["buffers"] = [{"byteLength": builder.length}]
    if not doc["materials"]:
        del doc["materials"]
    return doc, builder.chunks


def _metres(units: str) -> float | None:
    try:
        return conversion_factor(units, "m")
    except Exception:
        return None


def _check_size(scene: Scene) -> None:
    """Refuse, from the counts alone, a scene past a GLB's 4 GiB; then check the values."""
    from mesh_export.core.validate import check_surface_values

    planned = planned_bytes(scene)
    if planned + (1 << 20) > GLB_LIMIT:
        faces = sum(len(c.faces) for c in scene.cells)
        raise OutputError(f"this scene would be ~{planned / 2**30:.1f} GiB ({faces:,} faces), past glTF's 4 GiB "
                          "limit: choose a coarser --lod (or --simplify)")
    for index, cell in enumerate(scene.cells):
        check_surface_values(np.asarray(cell.vertices), np.asarray(cell.faces), _cell_name(cell, index))


def write_scene_glb(data, path) -> None:
    scene = as_scene(data)
    _check_size(scene)
    doc, chunks = _build(scene)
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    binary = sum(len(c) for c in chunks)
    total = 12 + 8 + len(text) + 8 + binary
    if total > GLB_LIMIT:
        raise OutputError(f"this scene is {total / 2**30:.1f} GiB, past glTF's 4 GiB limit: choose a coarser --lod")
    with open(path, "xb") as handle:
        handle.write(struct.pack("<4sII", b"glTF", 2, total))
        handle.write(struct.pack("<I4s", len(text), b"JSON"))
        handle.write(text)
        handle.write(struct.pack("<I4s", binary, b"BIN\0"))
        for chunk in chunks:
            handle.write(chunk)


def write_scene_gltf(data, path) -> None:
    import base64

    scene = as_scene(data)
    _check_size(scene)
    doc, chunks = _build(scene)
    doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(
        b"".join(bytes(c) for c in chunks)).decode("ascii")
    with open(path, "xb") as handle:
        handle.write(json.dumps(doc, separators=(",", ":")).encode())
