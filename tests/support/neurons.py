"""Deterministic neuron-like cells: a labelled voxel volume and its meshes.

Each cell is a soma (an ellipsoid in voxel space, a sphere in nanometres) with
a few primary neurites that random-walk away from it, taper, and branch. They
are drawn as chains of balls into one ``uint64`` volume holding several cells,
then meshed with zmesh (marching cubes + quadric simplification).

Everything is seeded: the same arguments always give the same volume, ids and
meshes (zmesh is deterministic for a given input), which keeps test
expectations and the bundled sample stable.

Conventions (the same as CloudVolume's):

- the volume is indexed ``[x, y, z]`` and stored in Fortran order;
- ``resolution`` is nanometres per voxel; ``voxel_offset`` places voxel
  ``[0, 0, 0]`` in the dataset, so voxel ``v`` sits at ``(v + offset) * res`` nm;
- mesh vertices are nanometres in dataset coordinates.

zmesh is LGPL: it is imported inside the functions that need it so that the
package runtime never depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import trimesh

__all__ = [
    "ROOT_ID_BASE",
    "NeuronVolume",
    "make_root_ids",
    "neuron_volume",
    "mesh_volume",
    "neuron_meshes",
    "simplify_mesh",
]

#: Root ids look like MICrONS minnie65 ones (18 digits, ``8646911...``). They
#: are also valid graphene labels: the top 8 bits give layer 12 and the chunk
#: position bits below them are zero, so a graphene layer can use them as-is.
ROOT_ID_BASE = 864_691_135_000_000_000

DEFAULT_RESOLUTION = (8.0, 8.0, 40.0)
DEFAULT_SHAPE = (256, 256, 64)
#: Not at the origin, so that code which forgets the offset (or mixes voxel
#: and nanometre units) produces visibly wrong coordinates.
DEFAULT_VOXEL_OFFSET = (1024, 2048, 512)


@dataclass(frozen=True)
class NeuronVolume:
    """A labelled volume of neuron-like cells.

    ``labels`` holds the root id of each voxel (0 is background).
    """

    labels: np.ndarray
    resolution: tuple[float, float, float]
    voxel_offset: tuple[int, int, int]
    root_ids: tuple[int, ...]
    #: Soma centre of each cell in nanometres (dataset coordinates).
    soma_centers: dict[int, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.labels.shape)  # type: ignore[return-value]

    @property
    def bounds_nm(self) -> tuple[np.ndarray, np.ndarray]:
        """(min corner, max corner) of the volume in nanometres."""
        res = np.asarray(self.resolution, dtype=float)
        lo = np.asarray(self.voxel_offset, dtype=float) * res
        return lo, lo + np.asarray(self.shape, dtype=float) * res


def make_root_ids(n: int, seed: int = 0) -> list[int]:
    """``n`` distinct, sorted, realistic-looking 18-digit root ids."""
    rng = np.random.default_rng([seed, 0x5EED])
    # Stay below 1e9 so every id keeps the 864691135 prefix.
    suffixes = rng.choice(1_000_000_000, size=n, replace=False)
    return sorted(ROOT_ID_BASE + int(s) for s in suffixes)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _draw_ball(labels: np.ndarray, center_vx: np.ndarray, radius_vx: np.ndarray, label: int) -> None:
    """Write ``label`` into background voxels inside an axis-aligned ellipsoid.

    Only background voxels are written, so a neurite running into another cell
    never carves it up: earlier cells stay intact.
    """
    lo = np.maximum(np.floor(center_vx - radius_vx).astype(int), 0)
    hi = np.minimum(np.ceil(center_vx + radius_vx).astype(int) + 1, labels.shape)
    if np.any(hi <= lo):
        return  # entirely outside the volume
    axes = [
        ((np.arange(lo[d], hi[d]) - center_vx[d]) / radius_vx[d]) ** 2 for d in range(3)
    ]
    inside = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :] <= 1.0
    view = labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    view[inside & (view == 0)] = label


def _grow_cell(
    labels: np.ndarray,
    label: int,
    soma_nm: np.ndarray,
    rng: np.random.Generator,
    res: np.ndarray,
    *,
    soma_radius_nm: float,
    n_primary: int,
    step_nm: float = 30.0,
    min_radius_nm: float = 36.0,
    max_steps: int = 90,
    branch_prob: float = 0.03,
) -> None:
    """Draw one cell (coordinates local to the volume, in nm) into ``labels``."""
    extent_nm = np.asarray(labels.shape) * res
    _draw_ball(labels, soma_nm / res, np.full(3, soma_radius_nm) / res, label)

    # Each pending branch: (start point, direction, radius, steps left, depth).
    pending = []
    for _ in range(n_primary):
        direction = _unit(rng.normal(size=3))
        start = soma_nm + direction * soma_radius_nm * 0.8
        radius = rng.uniform(75.0, 100.0)
        pending.append((start, direction, radius, max_steps, 0))

    while pending:
        point, direction, radius, steps, depth = pending.pop()
        for _ in range(steps):
            _draw_ball(labels, point / res, np.full(3, radius) / res, label)
            # Persistent random walk: the direction drifts a little each step,
            # which gives gently curving neurites rather than zig-zags.
            direction = _unit(direction + rng.normal(scale=0.22, size=3))
            point = point + direction * step_nm
            radius *= 0.992
            steps -= 1
            if radius < min_radius_nm:
                break
            # Leaving the volume: the neurite is clipped at the boundary, so
            # some cells touch the volume (and chunk) boundaries.
            if np.any(point < -radius) or np.any(point > extent_nm + radius):
                break
            if depth < 3 and steps > 10 and rng.random() < branch_prob:
                # A daughter branch leaves at an angle; both get thinner.
                side = _unit(np.cross(direction, rng.normal(size=3)))
                child_dir = _unit(direction + side * rng.uniform(0.6, 1.2))
                radius *= 0.85
                pending.append((point.copy(), child_dir, radius * 0.9, int(steps * 0.8), depth + 1))


def neuron_volume(
    n_cells: int = 3,
    seed: int = 0,
    resolution: tuple[float, float, float] = DEFAULT_RESOLUTION,
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    voxel_offset: tuple[int, int, int] = DEFAULT_VOXEL_OFFSET,
) -> NeuronVolume:
    """Draw ``n_cells`` neuron-like cells into one labelled ``uint64`` volume.

    Somata are spread over the volume so cells interleave without merging;
    neurites that run out of the volume are clipped there.
    """
    if n_cells < 1:
        raise ValueError(f"n_cells must be >= 1, got {n_cells}")
    rng = np.random.default_rng(seed)
    res = np.asarray(resolution, dtype=float)
    shape = tuple(int(s) for s in shape)
    labels = np.zeros(shape, dtype=np.uint64, order="F")
    extent_nm = np.asarray(shape) * res
    ids = make_root_ids(n_cells, seed)

    centers: dict[int, tuple[float, float, float]] = {}
    placed: list[np.ndarray] = []
    for label in ids:
        soma_radius = rng.uniform(240.0, 320.0)
        # Rejection-sample a soma centre away from the faces of the volume and
        # from other somata (deterministic: the rng sequence is fixed).
        for _ in range(200):
            center = rng.uniform(0.22, 0.78, size=3) * extent_nm
            if all(np.linalg.norm(center - c) > 2.6 * soma_radius for c in placed):
                break
        placed.append(center)
        _grow_cell(
            labels, label, center, rng, res,
            soma_radius_nm=soma_radius,
            n_primary=int(rng.integers(3, 6)),
        )
        offset_nm = np.asarray(voxel_offset, dtype=float) * res
        centers[label] = tuple(float(c) for c in center + offset_nm)

    return NeuronVolume(
        labels=labels,
        resolution=tuple(float(r) for r in res),  # type: ignore[arg-type]
        voxel_offset=tuple(int(o) for o in voxel_offset),  # type: ignore[arg-type]
        root_ids=tuple(ids),
        soma_centers=centers,
    )


def _to_trimesh(vertices: np.ndarray, faces: np.ndarray) -> "trimesh.Trimesh":
    import trimesh

    mesh = trimesh.Trimesh(
        vertices=np.asarray(vertices, dtype=np.float64),
        faces=np.asarray(faces, dtype=np.int64),
        process=False,
    )
    mesh.units = "nm"
    return mesh


def mesh_volume(
    volume: NeuronVolume,
    reduction_factor: int = 4,
    max_error: float | None = None,
) -> dict[int, "trimesh.Trimesh"]:
    """Mesh every cell of ``volume`` with zmesh; vertices in dataset nanometres.

    ``reduction_factor``/``max_error`` are passed to zmesh's simplifier
    (``max_error`` in nm; ``None`` means one voxel, zmesh's default). Meshes
    are closed where a cell touches the volume boundary.
    """
    import zmesh

    mesher = zmesh.Mesher(volume.resolution)
    mesher.mesh(volume.labels, close=True)
    offset_nm = np.asarray(volume.voxel_offset, dtype=float) * np.asarray(volume.resolution)
    meshes = {}
    for label in volume.root_ids:
        zm = mesher.get(label, normals=False, reduction_factor=reduction_factor, max_error=max_error)
        meshes[label] = _to_trimesh(zm.vertices + offset_nm, zm.faces)
        meshes[label].metadata["root_id"] = label
    mesher.clear()
    return meshes


def simplify_mesh(mesh: "trimesh.Trimesh", target_faces: int, scale: float = 8.0) -> "trimesh.Trimesh":
    """Simplify a nanometre mesh to about ``target_faces`` faces (builds coarser LODs).

    Uses zmesh's fast quadric mesh reduction, which, unlike zmesh's default
    simplifier (bound to a half-voxel grid), keeps reducing past the first
    level. Quadric simplifiers lose precision on large nanometre coordinates,
    so the mesh is moved to a local origin and divided by ``scale`` (a voxel
    size in nm) first, and mapped back afterwards.
    """
    import zmesh

    verts = np.asarray(mesh.vertices, dtype=np.float64)
    origin = verts.min(axis=0)
    local = zmesh.Mesh(
        ((verts - origin) / scale).astype(np.float32),
        np.asarray(mesh.faces, dtype=np.uint32),
        None,
    )
    out = zmesh.simplify_fqmr(local, target_count=int(target_faces))
    return _to_trimesh(out.vertices.astype(np.float64) * scale + origin, out.faces)


def neuron_meshes(
    n_cells: int = 3,
    seed: int = 0,
    resolution: tuple[float, float, float] = DEFAULT_RESOLUTION,
    *,
    return_volume: bool = False,
    reduction_factor: int = 4,
    **volume_kwargs,
) -> dict[int, "trimesh.Trimesh"] | tuple[dict[int, "trimesh.Trimesh"], NeuronVolume]:
    """Meshes of ``n_cells`` seeded neuron-like cells, keyed by root id.

    Each is a ``trimesh.Trimesh(process=False)`` in nanometres (``units="nm"``).
    With ``return_volume=True`` also returns the :class:`NeuronVolume` they came
    from. Extra keyword arguments go to :func:`neuron_volume`.
    """
    volume = neuron_volume(n_cells=n_cells, seed=seed, resolution=resolution, **volume_kwargs)
    meshes = mesh_volume(volume, reduction_factor=reduction_factor)
    if return_volume:
        return meshes, volume
    return meshes
