"""Processing steps: plain functions mesh -> mesh, each recorded in ``metadata["steps"]``.

Steps never modify their input; they return a new mesh with the step (and what it changed)
appended to the provenance, so the sidecar shows exactly what was applied, in order.
``apply_steps`` runs the ones asked for in one fixed, documented order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mesh_export.errors import InvalidArgumentError, InvalidMeshError, UnitsError
from mesh_export.core.mesh_ops import edge_keys  # noqa: F401  (look.info and tests import it from here)
from mesh_export.core.units import conversion_factor, normalize_units
from mesh_export.model import COMPARTMENT_NAMES, SYNAPSE_POINTS
from mesh_export.process.derived import derived_mesh

# The fixed order of apply_steps (also the order of the CLI's help text).
ORDER = ("largest_component", "min_component_faces", "repair", "units", "scale", "watertight",
         "print", "simplify", "smooth", "center", "skeletonize | volume")


def convert_units(mesh, units: str):
    """Scale coordinates from the mesh's units to ``units``."""
    target = normalize_units(units)
    if mesh.units is None:
        raise UnitsError(f"the mesh's units are unknown, so it cannot be converted to {target}; "
                         "say what they are with --units-in")
    source = normalize_units(mesh.units)
    if source == target:
        return mesh
    factor = conversion_factor(source, target)
    return derived_mesh(mesh, mesh.vertices * factor,
                        {"step": "convert_units", "from": source, "to": target, "factor": factor},
                        units=target)


def scale(mesh, factor: float):
    """Multiply coordinates by ``factor`` (units are kept: a scale is a deliberate resize)."""
    factor = float(factor)
    if not (factor > 0 and factor < float("inf")):
        raise InvalidArgumentError(f"--scale must be a positive finite number, got {factor}")
    return derived_mesh(mesh, mesh.vertices * factor, {"step": "scale", "factor": factor})


def center(mesh):
    """Move the bounding box centre to the origin."""
    offset = -np.asarray(mesh.bounds).mean(axis=0)
    return derived_mesh(mesh, mesh.vertices + offset, {"step": "center", "offset": offset.tolist()})


def _face_pieces(faces: np.ndarray) -> tuple[int, np.ndarray]:
    """Pieces of faces joined by edges that exactly two faces use (trimesh's ``face_adjacency``
    and ``graph.connected_components``): ``(count, label per face)``, labels numbered as
    trimesh orders its pieces. One stable argsort of the edges instead of trimesh's edge and
    adjacency arrays."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = len(faces)
    keys = edge_keys(faces)
    order = np.argsort(keys)  # vectorised quicksort: which of two equal keys comes first does not matter
    ordered = keys[order]
    del keys
    same = ordered[1:] == ordered[:-1]
    pair = same.copy()  # an edge used by exactly two faces: equal to one neighbour only
    pair[1:] &= ~same[:-1]
    pair[:-1] &= ~same[1:]
    first = np.flatnonzero(pair)
    a, b = order[first] % count, order[first + 1] % count
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(count, count))
    pieces, labels = connected_components(graph, directed=False, return_labels=True)
    return int(pieces), labels


def keep_components(mesh, *, largest: bool = False, min_faces: int | None = None):
    """Drop disconnected debris: keep the largest piece, or every piece with >= min_faces faces."""
    if min_faces is not None and min_faces < 1:
        raise InvalidArgumentError(f"--min-component-faces must be at least 1, got {min_faces}")
    all_faces = np.asarray(mesh.faces)
    count, labels = _face_pieces(all_faces)
    sizes = np.bincount(labels, minlength=count)
    by_size = np.argsort(-sizes, kind="stable")  # largest first, ties in trimesh's order
    kept = by_size[:1] if largest else by_size[sizes[by_size] >= (min_faces or 1)]
    if not len(kept):
        raise InvalidMeshError(f"no connected piece has {min_faces} faces or more "
                               f"(the largest has {int(sizes.max()) if count else 0}); nothing left to write")
    keep = np.zeros(count, dtype=bool)
    keep[kept] = True
    faces = all_faces[keep[labels]]
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    step = {"step": "largest_component" if largest else "min_component_faces", "pieces": count,
            "kept": int(len(kept)), "faces_removed": int(len(all_faces) - len(faces))}
    if min_faces is not None and not largest:
        step["min_faces"] = int(min_faces)
    return derived_mesh(mesh, np.asarray(mesh.vertices)[used], step, faces=remap[faces])


def repair(mesh):
    """Merge duplicate vertices; drop degenerate, duplicate faces and unreferenced vertices;
    make winding consistent and normals point outwards; fill small (3- and 4-edge) holes
    (trimesh's rules on the arrays as they come: see process/repair.py)."""
    from .repair import repair_surface

    vertices, faces, counts = repair_surface(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    return derived_mesh(mesh, vertices, {"step": "repair", **counts}, faces=faces)


def simplify(mesh, *, ratio: float | None = None, faces: int | None = None):
    """Quadric decimation (fast-simplification) to ``ratio`` of the faces or to ``faces`` faces."""
    count = len(mesh.faces)
    if (ratio is None) == (faces is None):
        raise InvalidArgumentError("give exactly one of --simplify RATIO or --faces N")
    if ratio is not None:
        if not 0 < ratio <= 1:
            raise InvalidArgumentError(f"--simplify takes a ratio in (0, 1], got {ratio}")
        target = max(4, int(round(count * ratio)))
    else:
        if not 4 <= faces <= count:
            raise InvalidArgumentError(f"--faces must be between 4 and the mesh's {count} faces, got {faces}")
        target = int(faces)
    if target >= count:
        return derived_mesh(mesh, mesh.vertices, {"step": "simplify", "faces_before": count, "faces_after": count})
    from mesh_export.core.mesh_ops import quadric_decimate

    new_vertices, new_faces = quadric_decimate(np.asarray(mesh.vertices, dtype=np.float64),
                                               np.asarray(mesh.faces), target_count=target)
    step = {"step": "simplify", "target_faces": target, "faces_before": count, "faces_after": len(new_faces)}
    return derived_mesh(mesh, new_vertices, step, faces=new_faces)


def smooth(mesh, iterations: int):
    """Taubin smoothing: removes voxel staircase without the shrinkage of plain Laplacian."""
    import trimesh

    if iterations < 1:
        raise InvalidArgumentError(f"--smooth takes a number of iterations >= 1, got {iterations}")
    work = trimesh.Trimesh(np.array(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces), process=False)
    trimesh.smoothing.filter_taubin(work, lamb=0.5, nu=0.53, iterations=int(iterations))
    return derived_mesh(mesh, work.vertices, {"step": "smooth", "method": "taubin", "iterations": int(iterations)})


@dataclass
class StepOptions:
    """Every step the CLI and API can ask for; None/False means "not applied"."""

    largest_component: bool = False
    min_component_faces: int | None = None
    repair: bool = False
    units: str | None = None
    scale: float | None = None
    watertight: bool = False
    pitch: float | None = None
    max_memory: str | int | None = None
    print_size: str | float | None = None
    min_feature: str | float | None = None
    keep_orientation: bool = False  # --print: as it comes, not on a stable pose
    base: bool = False  # --print: a thin plate under the lowest part
    simplify: float | None = None
    faces: int | None = None
    smooth: int | None = None
    center: bool = False
    skeletonize: bool = False
    soma: tuple[float, float, float] | str | None = None  # nm, or "auto" / "mesh"
    heal: bool = True
    skeleton_source: str = "mesh"  # or "cave": the CAVE skeleton service's skeleton
    synapses: bool = True  # the cell's synapses (CAVE or a file): type the axon, map them onto the morphology
    compartments: bool = False  # a surface's faces labelled by its morphology (and its synapses as points)
    volume: bool = False
    max_tet_volume: float | None = None

    def changes_mesh(self) -> bool:
        """Whether apply_steps would do anything (the settings of a step, such as ``pitch``,
        do not count on their own)."""
        return bool(self.largest_component or self.min_component_faces is not None or self.repair
                    or self.units or self.scale is not None or self.watertight or self.print_size is not None
                    or self.simplify is not None or self.faces is not None or self.smooth is not None
                    or self.center or self.volume or self.skeletonize or self.compartments)


def apply_steps(mesh, options: StepOptions):
    """Apply the requested steps in the fixed order of ``ORDER``."""
    from mesh_export.process import remesh

    if options.largest_component:
        mesh = keep_components(mesh, largest=True)
    if options.min_component_faces is not None:
        mesh = keep_components(mesh, min_faces=options.min_component_faces)
    if options.repair:
        mesh = repair(mesh)
    if options.units:
        mesh = convert_units(mesh, options.units)
    if options.scale is not None:
        mesh = scale(mesh, options.scale)
    if options.watertight:
        mesh = remesh.watertight(mesh, pitch=options.pitch, max_memory=options.max_memory)
    if options.print_size is not None:
        mesh = remesh.printable(mesh, size=options.print_size, min_feature=options.min_feature,
                                max_memory=options.max_memory, keep_orientation=options.keep_orientation,
                                base=options.base)
    if options.simplify is not None or options.faces is not None:
        mesh = simplify(mesh, ratio=options.simplify, faces=options.faces)
    if options.smooth is not None:
        mesh = smooth(mesh, options.smooth)
    if options.center:
        mesh = center(mesh)
    if options.volume:
        if options.skeletonize:
            raise InvalidArgumentError("a morphology (skeleton) and a volume mesh cannot both be made")
        from mesh_export.process.volume import tetrahedralize

        return tetrahedralize(mesh, max_volume=options.max_tet_volume, max_memory=options.max_memory,
                              pitch=options.pitch)
    if options.skeletonize:
        from mesh_export.process.morphology import skeleton_of

        return skeleton_of(mesh, options)
    return mesh


def make_morphology(mesh, steps: StepOptions, answers=None):
    """``mesh`` (nm) -> Skeleton, for ``steps`` (with ``skeletonize``): the skeleton service's
    skeleton when asked for and there is one (its synapses mapped onto it), else the mesh steps,
    then :func:`~mesh_export.process.morphology.skeleton_of`. ``answers``: a
    :class:`~mesh_export.process.morphology.CaveAnswers` of what the job looked up (nucleus,
    synapses, the skeleton service), or None."""
    from mesh_export.process.morphology import skeleton_of

    service = _service_morphology(answers)
    if service is not None:
        return service
    return skeleton_of(apply_steps(mesh, replace(steps, skeletonize=False)), steps, answers=answers)


def surface_and_morphology(mesh, steps: StepOptions, answers=None):
    """``(surface, Skeleton)``: the mesh after the mesh steps, and the morphology
    :func:`make_morphology` makes, the mesh steps run once for both (Neuroglancer layers hold both)."""
    from mesh_export.process.morphology import skeleton_of

    surface = apply_steps(mesh, replace(steps, skeletonize=False))
    service = _service_morphology(answers)
    return surface, service if service is not None else skeleton_of(surface, steps, answers=answers)


def _service_morphology(answers):
    """The skeleton service's skeleton with its synapses, when asked for and there is one."""
    from mesh_export.process.morphology import service_skeleton, with_synapses

    service = service_skeleton(answers.skeleton, answers.datastack) if answers is not None else None
    return with_synapses(service, answers) if service is not None else None


def make_labelled_surface(mesh, steps: StepOptions, answers=None):
    """``mesh`` (nm, as fetched) -> the surface the steps make, its faces labelled by the
    compartment and path distance of its morphology, the cell's synapses as points beside it
    (:mod:`mesh_export.process.surface_labels`).

    The morphology is made of the surface before the steps that only move it (units, scale,
    centre: the soma table and the synapses are in the dataset's nm), and then moved as they
    moved the surface, so labels and points land where the faces are."""
    from mesh_export.core.units import conversion_factor
    from mesh_export.process.morphology import service_skeleton, skeleton_of, with_synapses
    from mesh_export.process.surface_labels import affine_since, in_frame, label_faces, synapse_points

    shaped = apply_steps(mesh, replace(steps, units=None, scale=None, center=False, skeletonize=False))
    service = service_skeleton(answers.skeleton, answers.datastack) if answers is not None else None
    skeleton = with_synapses(service, answers) if service is not None else skeleton_of(shaped, steps, answers=answers)
    done = len(shaped.metadata.get("steps", []))
    out = apply_steps(shaped, StepOptions(units=steps.units, scale=steps.scale, center=steps.center))
    factor, offset = affine_since(out, done)
    placed = in_frame(skeleton, shaped.units, factor, offset, out.units)
    label_faces(out, placed)
    synapse_points(out, skeleton.synapses, factor * conversion_factor("nm", shaped.units), offset)
    compartments = np.bincount(out.metadata["face_attributes"]["compartment"], minlength=5)
    record = {"step": "label_faces", "method": "nearest skeleton node's cable surface (KD-tree)",
              "nodes": len(skeleton), "faces_per_compartment": {
                  name: int(compartments[k]) for k, name in COMPARTMENT_NAMES.items()},
              "synapse_points": int(len(out.metadata.get(SYNAPSE_POINTS, {}).get("positions", ())))}
    morphology = next((s for s in skeleton.metadata.get("steps", []) if s.get("step") == "skeletonize"), None)
    if morphology is not None:
        record["morphology"] = {k: v for k, v in morphology.items() if k in ("soma", "compartments", "cave")}
    out.metadata["steps"] = [*out.metadata.get("steps", []), record]
    return out


def plan_for_writer(steps: StepOptions | None, writer, options: dict[str, Any], *,
                    units: str | None = None, scale: float | None = None) -> tuple[StepOptions, dict[str, Any]]:
    """The step plan and writer options for ``writer``: ``units``/``scale`` shortcuts folded
    in; morphology formats skeletonize and take --units as the file's units (micrometres
    unless told otherwise) instead of converting the mesh. Options are checked here, before
    any download or read."""
    from mesh_export.core.options import check_options
    from mesh_export.model import SKELETON, SURFACE, VOLUME

    # A copy: callers reuse their StepOptions (a batch shares one across threads).
    steps = replace(steps) if steps is not None else StepOptions()
    if units:
        steps.units = units
    if scale is not None:
        steps.scale = scale
    options = dict(options)
    if steps.compartments and steps.volume:
        raise InvalidArgumentError("--compartments labels a surface's faces, not a tetrahedral mesh's")
    if SURFACE not in writer.accepts:
        steps.compartments = False  # a morphology carries its compartments as node types anyway
    if steps.volume and VOLUME not in writer.accepts:
        raise InvalidArgumentError(f"format {writer.name!r} cannot hold a tetrahedral mesh; "
                                   "use msh, vtu, xdmf, mesh or another meshio format")
    if SKELETON in writer.accepts and SURFACE not in writer.accepts:
        steps.skeletonize = True
        if steps.units:
            options["units"] = steps.units
            steps.units = None
    return steps, check_options(writer, options)
