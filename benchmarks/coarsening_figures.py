"""The skeletonizer's clustering pre-stage (process/skeleton_surface.py): the same figures with
and without it, as a markdown table.

Cases, each skeletonized with ``coarsen=False`` (the mesh as given) and ``coarsen=True``:

- MICrONS-like synthetic cells (tests/support/cells.py) as built, before decimation (spine necks
  0.1-0.2 um across on 8-sided tubes, 0.04 um edges; thin axons), subdivided twice: a dense
  surface with real detail under the clustering cell, so clustering does not just undo the
  subdivision. The reference row is the built cell itself (no clustering: its median edge is
  over the threshold). A "forced" row clusters the built cell itself (``WORTH`` raised), the
  detail at its own resolution.
- navis's hemibrain meshes subdivided four times (~3.4M faces, median edge 0.054 um), clustered
  against not clustered (the originals' rows beside them: today's skeletonizer is itself not
  density-blind, mostly at the soma).
- the 9M-face fixture (tests/support/large.py), with and without.

Columns: faces (and after clustering); seconds; model membrane area (frustums, what NEURON
computes) over the mesh's area; soma radius (um) and how far the soma moved (um) from the row's
reference (the row above it without clustering); nodes; spines
found / drawn; synthetic cells: the fractions of the true axon's cable typed 2 and of the true
apical's typed 4 (typed by the cell's own synapses).

Run: ``python benchmarks/coarsening_figures.py [--no-9m] [--no-synthetic]`` (several minutes).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _mesh(vertices, faces):
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces), process=False)
    mesh.units = "nm"
    return mesh


def _subdivided(mesh, times):
    import trimesh

    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    for _ in range(times):
        v, f = trimesh.remesh.subdivide(v, f)
    return _mesh(v, f)


def _figures(mesh, coarsen, cell=None, force=False):
    from mesh_export.process import skeleton_surface
    from mesh_export.process.compartments import split_axon, type_apical
    from mesh_export.process.skeleton import skeletonize

    worth = skeleton_surface.WORTH
    if force:
        skeleton_surface.WORTH = 1e9
    try:
        started = time.perf_counter()
        sk = skeletonize(mesh, coarsen=coarsen)
        seconds = time.perf_counter() - started
    finally:
        skeleton_surface.WORTH = worth
    step = sk.metadata["steps"][-1]
    row = {"faces": len(mesh.faces), "clustered": (step.get("surface") or {}).get("faces", [None, None])[1],
           "seconds": seconds, "area": sk.membrane_area() / float(mesh.area), "soma_r": sk.radii[0] / 1000,
           "soma": np.asarray(step["soma"]), "nodes": len(sk),
           "spines": f"{step['spines']['found']} / {step['spines']['drawn']}",
           "faces_area_change": (step.get("surface") or {}).get("faces_area_change")}
    if cell is not None:
        from support.cells import APICAL, AXON

        sk = type_apical(split_axon(sk, cell.pre, cell.post, source="the cell's synapses"))
        truth = cell.node_labels(sk.nodes)
        length = sk.edge_lengths()
        row["axon"] = length[(truth == AXON) & (sk.types == 2)].sum() / length[truth == AXON].sum()
        row["apical"] = (length[(truth == APICAL) & (sk.types == 4)].sum() / length[truth == APICAL].sum()
                         if (truth == APICAL).any() else float("nan"))
    return row


def _line(name, row, reference):
    moved = float(np.linalg.norm(row["soma"] - reference["soma"])) / 1000
    clustered = f"{row['clustered']:,}" if row["clustered"] else "-"
    change = f"{row['faces_area_change']:+.2%}" if row["faces_area_change"] is not None else "-"
    apical = "n/a" if "axon" not in row or np.isnan(row["apical"]) else f"{row['apical']:.1%}"
    typed = f" | {row['axon']:.1%} | {apical}" if "axon" in row else " | n/a | n/a"
    return (f"| {name} | {row['faces']:,} | {clustered} | {change} | {row['seconds']:.1f} | {row['area']:.3f} | "
            f"{row['soma_r']:.2f} | {moved:.2f} | {row['nodes']:,} | {row['spines']}{typed} |")


def rows(with_9m=True, synthetic=True):
    import navis

    from support.cells import CELLS, cached_cell

    cache = ROOT / ".pytest_cache" / "d" / "microns-like-cells"
    cache.mkdir(parents=True, exist_ok=True)
    for name in ("pyramidal", "spiny") if synthetic else ():
        kwargs = dict(CELLS[name], face_area_um2=1e-4, name=f"{name}-built")  # below the builder's: not decimated
        cell = cached_cell(cache, **kwargs)
        reference = _figures(cell.mesh, False, cell)
        yield _line(f"synthetic {name}, as built", reference, reference)
        yield _line(f"synthetic {name}, as built, clustered (forced)", _figures(cell.mesh, True, cell, force=True),
                    reference)
        dense = _subdivided(cell.mesh, 2)
        yield _line(f"synthetic {name}, subdivided x2, clustered", _figures(dense, True, cell), reference)
        del dense
    for neuron in navis.example_neurons(kind="mesh"):
        mesh = _mesh(np.asarray(neuron.vertices, dtype=np.float64) * 8.0, neuron.faces)
        original = _figures(mesh, False)
        yield _line(f"navis {neuron.id}", original, original)
        dense = _subdivided(mesh, 4)
        reference = _figures(dense, False)
        yield _line(f"navis {neuron.id}, subdivided x4, not clustered", reference, original)
        yield _line(f"navis {neuron.id}, subdivided x4, clustered", _figures(dense, True), reference)
        del dense
    if with_9m:
        from support.large import subdivided_neuron

        mesh = _mesh(*subdivided_neuron(9_000_000))
        reference = _figures(mesh, False)
        yield _line("9M-face fixture, not clustered", reference, reference)
        yield _line("9M-face fixture, clustered", _figures(mesh, True), reference)


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print("| mesh | faces | clustered faces | their area change | s | model area / mesh area | soma r (um) | "
          "soma moved (um) | nodes | spines found / drawn | axon typed 2 | apical typed 4 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for line in rows(with_9m="--no-9m" not in args, synthetic="--no-synthetic" not in args):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
