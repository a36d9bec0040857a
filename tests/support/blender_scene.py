"""Run INSIDE Blender (``blender -b --factory-startup --python blender_scene.py -- IN.json OUT.json``):
import each glTF file named in IN.json with Blender's own importer, default options, into an
empty scene and report what Blender holds: objects (type, parent, vertex and face counts,
dimensions, world bounds, material slots), materials (base colour), and the 3D view's clip range.
Blender's Python has no mesh_export: this file imports only bpy, numpy and the standard library."""

import json
import sys

import bpy
import numpy

# Debian's Blender 3.4 importer still calls numpy.bool (gone since numpy 1.24) when it guesses
# smooth shading from normals (its default): the importer's bug, shimmed so that the default
# options run as a user's would.
if not hasattr(numpy, "bool") or "bool" in getattr(numpy, "__former_attrs__", {}):
    numpy.bool = numpy.bool_


def _base_color(material):
    if material.use_nodes:
        for node in material.node_tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                return [round(float(c), 4) for c in node.inputs["Base Color"].default_value]
    return [round(float(c), 4) for c in material.diffuse_color]


def _report(path: str) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=path)
    objects = {}
    for obj in bpy.data.objects:
        entry = {"type": obj.type, "parent": obj.parent.name if obj.parent else None}
        if obj.type == "MESH":
            mesh = obj.data
            co = numpy.empty(3 * len(mesh.vertices), dtype=numpy.float64)
            mesh.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3)
            matrix = numpy.array(obj.matrix_world)
            world = co @ matrix[:3, :3].T + matrix[:3, 3]
            entry.update(vertices=len(mesh.vertices), faces=len(mesh.polygons),
                         dimensions=[float(x) for x in obj.dimensions],
                         world_min=world.min(axis=0).tolist() if len(world) else None,
                         world_max=world.max(axis=0).tolist() if len(world) else None,
                         materials=[slot.material.name for slot in obj.material_slots if slot.material])
        objects[obj.name] = entry
    clip = None
    for screen in bpy.data.screens:
        for area in screen.areas:
            if area.type == "VIEW_3D":
                clip = [area.spaces[0].clip_start, area.spaces[0].clip_end]
    return {"objects": objects, "materials": {m.name: _base_color(m) for m in bpy.data.materials},
            "view_clip": clip, "unit_scale": bpy.context.scene.unit_settings.scale_length,
            "blender": bpy.app.version_string}


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1:]
    with open(args[0]) as handle:
        files = json.load(handle)
    result = {}
    for path in files:
        try:
            result[path] = _report(path)
        except Exception as exc:  # reported, so the test names the file Blender refused
            result[path] = {"error": f"{type(exc).__name__}: {exc}"}
    with open(args[1], "w") as handle:
        json.dump(result, handle)


main()
