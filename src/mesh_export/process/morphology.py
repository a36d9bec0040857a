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
4. Synapses: the cell's synapses (from CAVE or a file) mapped onto the finished skeleton
   (:func:`mesh_export.process.synapse_map.attach_synapses`), which carries them to the writers.

The CAVE answers (nucleus, synapses, the skeleton service's skeleton) are looked up by the job
(:mod:`mesh_export.jobs.synapses`) and handed in as :class:`CaveAnswers`: processing asks no one.
Everything said along the way lands in the skeletonize step's record (the header and the
sidecar show it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mesh_export.core.synapses import INPUT, OUTPUT
from mesh_export.errors import InvalidArgumentError

__all__ = ["CaveAnswers", "skeleton_of", "service_skeleton", "with_synapses", "check_request", "wants_service",
           "wants_nucleus", "SOMA_MODES", "SKELETON_SOURCES"]

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


@dataclass
class CaveAnswers:
    """What the job asked CAVE (or a file) for this morphology: each a
    :class:`~mesh_export.retrieve.cave_tables.Lookup` (``value`` None, and ``note`` why, when
    there is no answer), or None when it was not asked. ``synapses``' value is a
    :class:`~mesh_export.core.synapses.SynapseRows`; ``no_synapses``: why there are none when
    they were not asked for."""

    skeleton: Any = None
    nucleus: Any = None
    synapses: Any = None
    no_synapses: str = "the mesh did not come from a CAVE datastack"
    root_id: int | None = None  # whose synapses: tells inputs from outputs
    datastack: str | None = None


def check_request(steps, from_datastack: bool) -> None:
    """Refuse, before any download, a morphology request that cannot be met."""
    if steps.skeletonize and _source(steps) == "cave" and not from_datastack:
        _refuse_service()


def wants_service(steps) -> bool:
    """Whether ``steps`` ask for the skeleton service's skeleton (``--skeleton-source cave``)."""
    return bool(steps.skeletonize) and _source(steps) == "cave"


def wants_nucleus(steps) -> bool:
    """Whether the soma is to come from the datastack's soma table (``--soma auto``, the default)."""
    _check_soma(steps.soma)
    return steps.soma in (None, "auto")


def _source(steps) -> str:
    source = getattr(steps, "skeleton_source", "mesh") or "mesh"
    if source not in SKELETON_SOURCES:
        raise InvalidArgumentError(f"--skeleton-source is mesh or cave, not {source!r}")
    return source


def _refuse_service():
    raise InvalidArgumentError("--skeleton-source cave needs a root id from a CAVE datastack "
                               "(not --source or a local file)")


def _check_soma(soma) -> None:
    if isinstance(soma, str) and soma not in SOMA_MODES:
        raise InvalidArgumentError(f"--soma takes X,Y,Z (nm), auto or mesh, not {soma!r}")


def service_skeleton(found, datastack: str | None = None):
    """The skeleton service's skeleton from its lookup (recorded in it), or None."""
    if found is None or found.value is None:
        return None
    found.value.metadata["source"] = f"CAVE skeleton service of {datastack} ({found.note})"
    return _record(found.value, cave={"skeleton": found.record()})


def _soma(mesh, steps, found, lookups):
    """(soma point in nm or None, note, whether the point only seeds the soma region)."""
    soma = steps.soma
    _check_soma(soma)
    if soma == "mesh":
        return None, "found on the mesh (--soma mesh)", False
    if soma not in (None, "auto"):
        return soma, None, False
    if found is None:
        return None, None, False
    lookups["nucleus"] = found.record()
    if found.value is None:
        return None, f"{found.note}: soma found on the mesh", False
    gap = _distance_to_surface(mesh, found.value) / 1000.0
    if gap > NUCLEUS_MAX_DISTANCE_UM:
        return None, f"{found.note} is {gap:.1f} um from the mesh: soma found on the mesh", False
    return found.value, found.note, True


def skeleton_of(mesh, steps, *, answers: CaveAnswers | None = None):
    """The morphology of a mesh the steps have already processed (see the module docstring),
    from what the job looked up (``answers``; None: nothing was)."""
    from mesh_export.process.compartments import split_axon, type_apical, untyped
    from mesh_export.process.skeleton import skeletonize

    answers = answers or CaveAnswers()
    lookups: dict[str, Any] = {}
    fallback_note = None
    if _source(steps) == "cave":
        if answers.skeleton is None:
            _refuse_service()
        if answers.skeleton.value is not None:
            return with_synapses(service_skeleton(answers.skeleton, answers.datastack), answers)
        lookups["skeleton"] = answers.skeleton.record()
        fallback_note = f"{answers.skeleton.note}: skeletonized from the mesh instead"
    soma, soma_note, seed_only = _soma(mesh, steps, answers.nucleus, lookups)
    skeleton = skeletonize(mesh, soma=soma, soma_units="nm", soma_note=soma_note, soma_seed_only=seed_only,
                           heal=steps.heal)
    found = answers.synapses
    if not getattr(steps, "synapses", True):
        skeleton = untyped(skeleton, "--no-synapses: every neurite is type 3")
    elif found is None:
        skeleton = untyped(skeleton, f"no synapses ({answers.no_synapses}): every neurite is type 3")
    else:
        lookups["synapses"] = found.record()
        if found.value is None:
            skeleton = untyped(skeleton, f"{found.note}: every neurite is type 3")
        elif answers.root_id is None:
            skeleton = untyped(skeleton, f"{found.note}, without a root id (--root-id) to tell inputs from "
                                         "outputs: every neurite is type 3")
        else:
            directions = found.value.directions(answers.root_id)
            positions = found.value.positions
            skeleton = split_axon(skeleton, positions[directions == OUTPUT], positions[directions == INPUT],
                                  units="nm", source=found.note)
    skeleton = type_apical(skeleton)
    if fallback_note:
        _record(skeleton, skeleton_source_note=fallback_note)
    if lookups:
        _record(skeleton, cave=lookups)
    return with_synapses(skeleton, answers)


def with_synapses(skeleton, answers: CaveAnswers | None):
    """``skeleton`` carrying its synapses mapped onto it (when there are any to map)."""
    found = answers.synapses if answers is not None else None
    if found is None or found.value is None:
        return skeleton
    from mesh_export.process.synapse_map import attach_synapses

    return attach_synapses(skeleton, found.value, answers.root_id)
