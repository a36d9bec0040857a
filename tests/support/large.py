"""MICrONS-scale fixtures: a real neuron mesh subdivided to millions of faces, stored the way
minnie65 stores its meshes.

Small fixtures (14-28k faces) say little about a tool whose users fetch 9-10M-face cells. This
module builds, deterministically and from a mesh no one here wrote (navis's hemibrain example
neurons), a layer whose physics match the real thing:

- a graphene segmentation with minnie65's level-2 chunk of 256 x 256 x 512 voxels at
  8 x 8 x 40 nm, Draco fragments on a 16 nm grid, one fragment in four "dynamic" (an unsharded
  file, as after a proofreading edit) and the rest range reads into per-chunk initial shards;
- optionally a sharded multi-LOD Draco layer of the same cell (static meshes);
- the same mesh as a binary PLY (for ``convert`` / ``info`` at this size).

Built layers are kept under a cache directory keyed by their parameters, so benchmarks pay the
build (about a minute at 9M faces) once per machine. navis (GPL) and zmesh (LGPL) are test-only
and imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: minnie65's level-2 chunk (voxels) and resolution (nm per voxel).
MINNIE_CHUNK = (256, 256, 512)
MINNIE_RESOLUTION = (8.0, 8.0, 40.0)
MINNIE_DRACO_GRID = 16.0
#: The id the big layers hold (a valid layer-12 graphene label, like a minnie65 root id).
LARGE_ROOT_ID = 864_691_135_572_530_981
_FORMAT = 2  # bump when the layout written here changes, to rebuild cached layers


def default_cache_dir() -> Path:
    env = os.environ.get("MESH_EXPORT_LARGE_DATA")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mesh-export")) / "large-fixtures"


def subdivided_neuron(target_faces: int, neuron_index: int = 0, scale: float = 1.0):
    """navis's ``neuron_index``-th hemibrain example mesh in nm, subdivided to ~``target_faces``
    (and shrunk or grown by ``scale`` about its centre: a cell of fewer level-2 chunks).

    Whole subdivisions (x4 faces each) while they stay under the target, then the first faces
    in order are split once more until the count reaches it. The result is deterministic.
    Returns ``(vertices float64 nm, faces int64)``.
    """
    import navis
    import trimesh

    neuron = navis.example_neurons(kind="mesh")[neuron_index]
    vertices = np.asarray(neuron.vertices, dtype=np.float64) * 8.0
    if scale != 1.0:
        centre = vertices.mean(axis=0)
        vertices = (vertices - centre) * scale + centre
    faces = np.asarray(neuron.faces, dtype=np.int64)
    while len(faces) * 4 <= target_faces:
        vertices, faces = trimesh.remesh.subdivide(vertices, faces)
    extra = (target_faces - len(faces)) // 3  # each split face adds three
    if extra > 0:
        vertices, faces = trimesh.remesh.subdivide(vertices, faces, face_index=np.arange(extra))
    return np.ascontiguousarray(vertices), np.ascontiguousarray(faces)


@dataclass
class LargeLayers:
    """Where a built MICrONS-scale fixture lives and what it holds."""

    root: Path
    root_ids: list[int]
    faces: int  # faces of each generated mesh, before cutting into fragments
    fragments: int  # graphene fragments in the first root's manifest
    graphene_table: str
    has_multires: bool

    @property
    def root_id(self) -> int:
        return self.root_ids[0]

    @property
    def graphene_dir(self) -> Path:
        return self.root / "graphene"

    @property
    def multires_dir(self) -> Path:
        return self.root / "multires"

    @property
    def ply(self) -> Path:
        return self.root / "neuron.ply"


def build_large_layers(root: str | os.PathLike | None = None, *, target_faces: int = 9_000_000,
                       neuron_index: int | tuple[int, ...] = 0, scale: float = 1.0, multires: bool = False,
                       num_lods: int = 4, table: str = "large_graph", dynamic_every: int = 4) -> LargeLayers:
    """Build (or reuse) the layers for subdivided neurons (one per ``neuron_index``, root ids
    ``LARGE_ROOT_ID + k``); returns where they are. ``neuron.ply`` holds the first.

    ``root`` defaults to a directory under :func:`default_cache_dir` named by the parameters;
    a complete build is marked by ``layers.json`` and reused as it is.
    """
    import trimesh

    from support.precomputed import LayerGeometry, write_graphene_layer, write_multires_layer

    indices = (neuron_index,) if isinstance(neuron_index, int) else tuple(neuron_index)
    name = (f"n{'_'.join(map(str, indices))}-f{target_faces}-d{dynamic_every}-v{_FORMAT}"
            + (f"-s{scale:g}" if scale != 1.0 else "") + (f"-m{num_lods}" if multires else ""))
    root = Path(root) if root is not None else default_cache_dir() / name
    marker = root / "layers.json"
    if marker.exists():
        done = json.loads(marker.read_text())
        return LargeLayers(root=root, root_ids=[int(r) for r in done.get("root_ids") or [done["root_id"]]], faces=done["faces"],
                           fragments=done["fragments"], graphene_table=done["graphene_table"],
                           has_multires=done["has_multires"])

    meshes = {}
    for k, index in enumerate(indices):
        vertices, faces = subdivided_neuron(target_faces, index, scale)
        meshes[LARGE_ROOT_ID + k] = trimesh.Trimesh(vertices, faces, process=False)
        meshes[LARGE_ROOT_ID + k].units = "nm"
    mesh = meshes[LARGE_ROOT_ID]
    geometry = LayerGeometry.covering(meshes, resolution=MINNIE_RESOLUTION, chunk_size=MINNIE_CHUNK,
                                      voxel_offset=(0, 0, 0))

    root.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    try:
        description = write_graphene_layer(building / "graphene", meshes, geometry=geometry, table=table,
                                           draco_grid_size=MINNIE_DRACO_GRID, dynamic_every=dynamic_every)
        if multires:
            write_multires_layer(building / "multires", meshes, geometry=geometry, num_lods=num_lods,
                                 sharded=True, shard_bits=0, minishard_bits=0)
        mesh.export(building / "neuron.ply")
        fragments = len(description["manifests"][str(LARGE_ROOT_ID)]["fragments"])
        summary = {"root_ids": [str(r) for r in meshes], "faces": int(len(mesh.faces)), "fragments": fragments,
                   "graphene_table": table, "has_multires": multires, "neurons": list(indices), "scale": scale}
        (building / "layers.json").write_text(json.dumps(summary, indent=2))
        if root.exists():
            shutil.rmtree(root)
        os.replace(building, root)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return build_large_layers(root)


def _main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python tests/support/large.py",
                                     description="Build (or find) a MICrONS-scale fixture layer.")
    parser.add_argument("--faces", type=int, default=9_000_000)
    parser.add_argument("--neuron", type=int, nargs="+", default=[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--multires", action="store_true")
    parser.add_argument("--root", default=None)
    args = parser.parse_args(argv)
    layers = build_large_layers(args.root, target_faces=args.faces, neuron_index=tuple(args.neuron),
                                scale=args.scale, multires=args.multires)
    print(json.dumps({"root": str(layers.root), "root_ids": [str(r) for r in layers.root_ids], "faces": layers.faces,
                      "fragments": layers.fragments}, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
