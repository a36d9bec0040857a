"""Issue 12's and issue 22's per-cell figures, as markdown tables: every MICrONS-like synthetic
cell (tests/support/cells.py, with the cells whose bodies hold a nucleus envelope, a sheet or a
flat cut) and every navis hemibrain mesh, skeletonized, typed by the cell's synapses where it has
them, written as SWC and loaded in NEURON.

The second table (issue 22, the soma as the outer membrane): NEURON area / the mesh's outer
surface (synthetic cells: the mesh's area less the ground truth's inner surfaces; navis meshes:
less what the skeletonizer set aside); soma radius / the equivalent sphere of the outer soma
membrane (navis: / the soma radius of navis's own skeleton, a hand-traced reference, for want of
a membrane truth); neurite cable inside the outer soma membrane (tests/support/soma_truth.py;
navis: inside the sphere of our soma's radius about its node); primary neurites / trunks built
(navis: no truth); what was set aside; skeletonize's wall time and its peak of traced
memory (tracemalloc, numpy's arrays included, from a second run: tracing slows it).

Columns: NEURON membrane area / mesh surface area; soma radius / the equivalent-sphere radius
of the soma region (synthetic cells: the built soma's surface; navis meshes have no such truth,
so the column there is our soma radius / the soma radius of navis's own skeleton of the same
neuron, a reference traced by hand, not the region's area); the fractions of the true axon's and
of the true dendrites' cable length typed 2 (navis meshes: no synapses, so none typed); the
fractions of the true apical's and basal dendrites' cable typed 4.

Run: ``python benchmarks/morphology_figures.py`` (a few minutes; NEURON, navis needed).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")


def _neuron_area(path) -> float:
    from consumers import load_swc_in_neuron, membrane_area

    cell, sections = load_swc_in_neuron(path)
    area = membrane_area(sections)
    del cell
    return area


def synthetic_rows(out: Path):
    import mesh_export
    from mesh_export.process.compartments import split_axon, type_apical
    from mesh_export.process.skeleton import skeletonize
    from support.cells import APICAL, AXON, CELLS, DENDRITE, SOMA_CELLS, cached_cell
    from support.soma_truth import soma_figures

    cache = ROOT / ".pytest_cache" / "d" / "microns-like-cells"  # where the tests keep them
    cache.mkdir(parents=True, exist_ok=True)
    # and the test suite's other cells (test_morphology_cells.py): a 9 um soma among 100 debris
    # pieces; the same decimated to 0.1 um^2 per face (its thin axon in dozens of pieces); an
    # 8 um soma at 0.3 um^2 per face with 2 spines per um
    extra = {"debris": dict(seed=5, name="debris", debris=100, soma_diameter=9.0),
             "decimated": dict(seed=5, name="decimated", debris=100, soma_diameter=9.0, face_area_um2=0.1),
             "small-coarse-spiny": dict(seed=8, name="small-coarse-spiny", soma_diameter=8.0,
                                        face_area_um2=0.3, spines_per_um=2.0)}
    for name, kwargs in {**CELLS, **extra, **SOMA_CELLS}.items():
        cell = cached_cell(cache, **kwargs)
        raw, seconds, peak = _skeletonize_measured(skeletonize, cell.mesh)
        sk = type_apical(split_axon(raw, cell.pre, cell.post, source="the cell's synapses"))
        swc = mesh_export.write(sk, out / f"{name}.swc")
        neuron_area = _neuron_area(swc)
        soma = soma_figures(cell, sk, neuron_area)
        truth = cell.node_labels(sk.nodes)
        length = sk.edge_lengths()
        axon, dendrite, typed = truth == AXON, np.isin(truth, (DENDRITE, APICAL)), sk.types == 2
        yield {
            "mesh": f"synthetic {name}", "faces": len(cell.mesh.faces), "seconds": seconds, "peak": peak,
            "outer_area": soma["area_ratio"], "cable_inside": soma["cable_inside"],
            "cable_inside_um": soma["cable_inside_um"], "primary": soma["primary"], "trunks": soma["trunks"],
            "set_aside": _set_aside_text(sk),
            "area": neuron_area / (cell.mesh.area * 1e-6),
            "soma": sk.radii[0] / cell.soma_equivalent_radius,
            "axon": length[axon & typed].sum() / length[axon].sum(),
            "dendrite": length[dendrite & typed].sum() / length[dendrite].sum(),
            "apical": (length[(truth == APICAL) & (sk.types == 4)].sum() / length[truth == APICAL].sum()
                       if (truth == APICAL).any() else float("nan")),
            "basal4": length[(truth == DENDRITE) & (sk.types == 4)].sum() / length[truth == DENDRITE].sum(),
            "pieces": _pieces(cell.mesh),
        }


def _skeletonize_measured(skeletonize, mesh):
    """skeletonize(mesh), its wall time, and its peak of traced memory (bytes) from a second,
    traced run (tracing slows it)."""
    import tracemalloc

    started = time.perf_counter()
    sk = skeletonize(mesh)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    skeletonize(mesh)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return sk, seconds, peak


def _set_aside_text(sk) -> str:
    step = sk.metadata["steps"][-1]
    aside = step.get("set_aside") or {}
    inner, sheets = aside.get("inner_surfaces") or {}, aside.get("sheets") or {}
    parts = []
    for what, record in (("inner", inner), ("sheet", sheets)):
        if record.get("count"):
            parts.append(f"{record['count']} {what} {record['area'] * 1e-6:.1f} um^2")
    if step.get("dropped_pieces"):
        parts.append(f"{step['dropped_pieces']} pieces dropped")
    return ", ".join(parts) or "none"


def _set_aside_area(sk) -> float:
    aside = sk.metadata["steps"][-1].get("set_aside") or {}
    return sum((aside.get(kind) or {}).get("area", 0.0) for kind in ("inner_surfaces", "sheets"))


def _pieces(mesh) -> int:
    """Connected pieces of the vertex graph (what the skeletonizer heals or drops)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(mesh.faces)
    u, v = np.concatenate([f[:, 0], f[:, 1]]), np.concatenate([f[:, 1], f[:, 2]])
    n = len(mesh.vertices)
    used = np.zeros(n, dtype=bool)
    used[f.reshape(-1)] = True
    _, label = connected_components(coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n)), directed=False)
    return int(len(np.unique(label[used])))


def navis_rows(out: Path):
    import navis
    import trimesh

    import mesh_export
    from mesh_export.process.compartments import type_apical
    from mesh_export.process.skeleton import skeletonize
    from support.soma_truth import cable_in_soma_sphere

    skeletons = {str(s.id): s for s in navis.example_neurons(kind="skeleton")}
    for neuron in navis.example_neurons(kind="mesh"):
        mesh = trimesh.Trimesh(np.asarray(neuron.vertices, dtype=np.float64) * 8.0, np.asarray(neuron.faces),
                               process=False)
        mesh.units = "nm"
        raw, seconds, peak = _skeletonize_measured(skeletonize, mesh)
        sk = type_apical(raw)  # fly neurons have no apical dendrite: none may be typed
        swc = mesh_export.write(sk, out / f"{neuron.id}.swc")
        neuron_area = _neuron_area(swc)
        nm = sk.to_units("nm")
        inside, total = cable_in_soma_sphere(nm)
        reference = skeletons.get(str(neuron.id))
        soma = float("nan")
        if reference is not None and reference.soma is not None:
            nodes = reference.nodes.set_index("node_id")
            soma = sk.radii[0] / (float(nodes.loc[np.atleast_1d(reference.soma)[0], "radius"]) * 8.0)
        yield {
            "mesh": f"navis {neuron.id}", "faces": len(mesh.faces), "seconds": seconds, "peak": peak,
            "outer_area": neuron_area / ((mesh.area - _set_aside_area(sk)) * 1e-6),
            "cable_inside": inside / total, "cable_inside_um": inside / 1000.0,
            "primary": int((sk.parents == 0).sum()), "trunks": None, "set_aside": _set_aside_text(sk),
            "area": neuron_area / (mesh.area * 1e-6), "soma": soma,
            "axon": float("nan"), "dendrite": float(np.mean(sk.types[1:] == 2)), "pieces": _pieces(mesh),
            "apical": float("nan"), "basal4": float(sk.edge_lengths()[sk.types == 4].sum() / sk.total_length()),
        }


def _cell(value, digits=3, percent=False):
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.1%}" if percent else f"{value:.{digits}f}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        rows = []
        print("| mesh | faces | pieces | NEURON area / mesh area | soma radius / equivalent sphere | "
              "axon typed 2 | dendrites typed 2 | apical typed 4 | basal typed 4 | skeletonize |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for row in [*synthetic_rows(out), *navis_rows(out)]:
            rows.append(row)
            soma = _cell(row["soma"], 2) + (" (vs navis skeleton)" if row["mesh"].startswith("navis") else "")
            print(f"| {row['mesh']} | {row['faces']:,} | {row['pieces']} | {_cell(row['area'])} | {soma} | "
                  f"{_cell(row['axon'], percent=True)} | {_cell(row['dendrite'], percent=True)} | "
                  f"{_cell(row['apical'], percent=True)} | {_cell(row['basal4'], percent=True)} | "
                  f"{row['seconds']:.1f} s |", flush=True)
        print()
        print("| mesh | NEURON area / outer surface | soma radius / outer membrane's sphere | cable inside the soma | "
              "primary neurites / trunks | set aside | skeletonize | peak traced memory |")
        print("|---|---|---|---|---|---|---|---|")
        for row in rows:
            navis = row["mesh"].startswith("navis")
            soma = _cell(row["soma"], 2) + (" (vs navis skeleton)" if navis else "")
            inside = f"{row['cable_inside']:.2%} ({row['cable_inside_um']:.1f} um)" + (" (soma sphere)" if navis else "")
            trunks = "n/a" if row["trunks"] is None else str(row["trunks"])
            print(f"| {row['mesh']} | {_cell(row['outer_area'])} | {soma} | {inside} | {row['primary']} / {trunks} | "
                  f"{row['set_aside']} | {row['seconds']:.1f} s | {row['peak'] / 2**20:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
