"""What a user would otherwise run for a mesh -> SWC (skeletor's wavefront, GPL, bench extra only):
``python benchmarks/skeletor_swc.py MESH.ply OUT.swc``, timed as a whole process beside
``mesh-export convert MESH.ply OUT.swc --units-in nm`` (benchmarks/test_bench_skeleton_process.py)."""

from __future__ import annotations

import sys


def main(argv=None) -> int:
    import skeletor
    import trimesh

    source, target = (sys.argv[1:] if argv is None else argv)[:2]
    mesh = trimesh.load(source, process=False)
    skeleton = skeletor.skeletonize.by_wavefront(mesh, waves=1, step_size=1, progress=False)
    skeleton.save_swc(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
