"""What a notebook user runs today, as one process: open the layer with CloudVolume, get each
mesh, export it with trimesh. The yardstick for whole-process comparisons (start-up included).

    python benchmarks/plain_cloudvolume.py URL OUT_DIR ID [ID ...] [--lod N] [--format stl]
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("ids", nargs="+", type=int)
    parser.add_argument("--lod", type=int, default=None)
    parser.add_argument("--format", default="stl")
    args = parser.parse_args()

    import trimesh
    from cloudvolume import CloudVolume

    kwargs = {"use_https": True, "progress": False, "cache": False}
    if args.url.startswith("graphene://"):
        kwargs["secrets"] = os.environ["CAVE_TOKEN"]
    volume = CloudVolume(args.url, **kwargs)
    for root_id in args.ids:
        if args.lod is None:
            mesh = volume.mesh.get(root_id)
        else:
            mesh = volume.mesh.get(root_id, lod=args.lod)
        mesh = mesh[root_id] if isinstance(mesh, dict) else mesh
        out = os.path.join(args.out, f"{root_id}.{args.format}")
        trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).export(out)


if __name__ == "__main__":
    main()
