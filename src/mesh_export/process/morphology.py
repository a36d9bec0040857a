"""A morphology for an export: mesh -> Skeleton with its soma and compartments.

The mesh steps run first (:func:`mesh_export.process.steps.make_morphology` applies them,
without the skeleton, before :func:`skeleton_of`), then:

1. Skeleton source: ``--skeleton-source cave`` takes the CAVE skeleton service's skeleton
   (falling back to the mesh skeletonizer, with the reason recorded, when there is none).
2. Soma: ``--soma X,Y,Z`` wins; ``--soma auto`` (the default) asks the datastack's soma table
   for the nucleus when the mesh came from a CAVE datastack, else finds the soma on the mesh;
   ``--soma mesh`` always finds it on the mesh. A nucleus row that is missing, or far from the
   mesh, falls back to the mesh with a note.
3. Compartments: from a datastack with a synapse table, the axon (type 2) is told from the
   dendrites (3) by the cell's own synapses (:func:`mesh_export.process.compartments.split_axon`);
   otherwise every neurite is 3 and the header says why. Then the apical dendrite (4), where
   one dendrite's trunk is clearly the thickest (:func:`mesh_export.process.compartments.type_apical`).

Everything said along the way lands in the skeletonize step's record (the header and the
sidecar show it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mesh_export.errors import InvalidArgumentError

__all__ = ["asked_service", "skeleton_of", "check_request", "SOMA_MODES", "SKELETON_SOURCES"]

SOMA_MODES = ("auto", "mesh")
SKELETON_SOURCES = ("mesh", "cave")
#: A nucleus farther than this from the mesh's surface (um) is not this mesh's soma.
NUCLEUS_MAX_DISTANCE_UM = 15.0


def _record(skeleton, **fields: Any):
    steps = skeleton.metadata.get("steps", [])
    if steps and steps[-1].get("step") == "skeletonize":
        steps[-1].update(fields)
    return skeleton


def _distance_to_surface(mesh, point_nm) -> float:
    from mesh_export.core.units import conversion_factor

    factor = conversion_factor("nm", getattr(mesh, "units", None) or "nm")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    gap = np.sqrt(((vertices - np.asarray(point_nm) * factor) ** 2).sum(axis=1).min())
    return float(gap / factor)


def asked_service(steps, cave, root_id):
    """The skeleton service's answer when ``steps`` ask for it (``--skeleton-source cave``),
    else None: asked before the mesh steps, which its skeleton makes unnecessary."""
    return _service(cave, root_id) if _source(steps) == "cave" else None


def check_request(steps, from_datastack: bool) -> None:
    """Refuse, before any download, a morphology request that cannot be met."""
    if steps.skeletonize and _source(steps) == "cave" and not from_datastack:
        _service(None, None)


def _source(steps) -> str:
    source = getattr(steps, "skeleton_source", "mesh") or "mesh"
    if source not in SKELETON_SOURCES:
        raise InvalidArgumentError(f"--skeleton-source is mesh or cave, not {source!r}")
    return source


def _service(cave, root_id):
    """The skeleton service's skeleton (its lookup recorded), or a Lookup of None and why."""
    if cave is None or root_id is None:
        raise InvalidArgumentError("--skeleton-source cave needs a root id from a CAVE datastack "
                                   "(not --source or a local file)")
    from mesh_export.process.cave_morphology import service_skeleton

    found = service_skeleton(cave, root_id)
    if found.value is not None:
        found.value.metadata["source"] = f"CAVE skeleton service of {cave.datastack} ({found.note})"
        _record(found.value, cave={"skeleton": found.record()})
    return found


def _soma(mesh, steps, cave, root_id, lookups):
    """(soma point in nm or None, note, whether the point only seeds the soma region)."""
    soma = steps.soma
    if isinstance(soma, str) and soma not in SOMA_MODES:
        raise InvalidArgumentError(f"--soma takes X,Y,Z (nm), auto or mesh, not {soma!r}")
    if soma == "mesh":
        return None, "found on the mesh (--soma mesh)", False
    if soma not in (None, "auto"):
        return soma, None, False
    if cave is None or root_id is None:
        return None, None, False
    from mesh_export.process.cave_morphology import nucleus

    found = nucleus(cave, root_id)
    lookups["nucleus"] = found.record()
    if found.value is None:
        return None, f"{found.note}: soma found on the mesh", False
    gap = _distance_to_surface(mesh, found.value) / 1000.0
    if gap > NUCLEUS_MAX_DISTANCE_UM:
        return None, f"{found.note} is {gap:.1f} um from the mesh: soma found on the mesh", False
    return found.value, found.note, True


def skeleton_of(mesh, steps, *, root_id: int | None = None, cave=None,
                no_cave_reason: str = "the mesh did not come from a CAVE datastack", service=None):
    """The morphology of a mesh the steps have already processed (see the module docstring);
    ``service``: the skeleton service's answer when already asked (and it had none)."""
    from mesh_export.process.compartments import split_axon, type_apical, untyped
    from mesh_export.process.skeleton import skeletonize

    lookups: dict[str, Any] = {}
    fallback_note = None
    if _source(steps) == "cave":
        found = service or _service(cave, root_id)
        if found.value is not None:
            return found.value
        lookups["skeleton"] = found.record()
        fallback_note = f"{found.note}: skeletonized from the mesh instead"
    soma, soma_note, seed_only = _soma(mesh, steps, cave, root_id, lookups)
    skeleton = skeletonize(mesh, soma=soma, soma_units="nm", soma_note=soma_note, soma_seed_only=seed_only,
                           heal=steps.heal)
    if not getattr(steps, "synapses", True):
        skeleton = untyped(skeleton, "--no-synapses: every neurite is type 3")
    elif cave is None or root_id is None:
        skeleton = untyped(skeleton, f"no synapses ({no_cave_reason}): every neurite is type 3")
    else:
        from mesh_export.process.cave_morphology import synapses

        found = synapses(cave, root_id)
        lookups["synapses"] = found.record()
        if found.value is None:
            skeleton = untyped(skeleton, f"{found.note}: every neurite is type 3")
        else:
            pre, post = found.value
            skeleton = split_axon(skeleton, pre, post, units="nm", source=found.note)
    skeleton = type_apical(skeleton)
    if fallback_note:
        _record(skeleton, skeleton_source_note=fallback_note)
    return _record(skeleton, cave=lookups) if lookups else skeleton
