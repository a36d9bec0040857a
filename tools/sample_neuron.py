"""A neuron at true scale: a random branching skeleton and the surface around it.

:func:`grow_neuron` draws a pyramidal-cell-like morphology: a soma ~12 um across, an apical
dendrite of ~300 um that ends in a tuft and gives off oblique branches, five to seven basal
dendrites of 150-300 um that branch and taper, and a thin axon with collaterals.
:func:`neuron_surface` builds its membrane: the signed distance to the soma and to tapered
tubes along the skeleton (joined with a smooth minimum, so branch points and the soma have
fillets instead of creases), sampled only near the cell in small blocks and meshed by marching
cubes (scikit-image), block by block. Neighbouring blocks share their border samples and see
the same distance values there, so their vertices coincide and the merged surface is one
closed shell without seams.

A true-scale cell in a voxel grid at 8x8x40 nm would be billions of voxels; a distance field
sampled at ``pitch`` (0.25 um) around the skeleton is a few million samples. There are no
spines: at that sampling they would be bumps, and they would triple the faces.

Everything is seeded (numpy's ``default_rng``) and the arithmetic is plain numpy, so the same
arguments give the same bytes on every run: the bundled sample is checked against a rebuild.
Coordinates are nanometres, like every connectomics source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import trimesh

__all__ = ["Morphology", "grow_neuron", "neuron_surface", "SOMA_CENTER_NM"]

#: Where the soma sits, in dataset nanometres (a MICrONS-like position; never the origin).
SOMA_CENTER_NM = (1_201_000.0, 702_000.0, 905_000.0)
# SWC types.
SOMA, AXON, BASAL, APICAL = 1, 2, 3, 4


@dataclass(frozen=True)
class Morphology:
    """A tree of nodes in nanometres; node 0 is the soma centre (radius: the soma's)."""

    points: np.ndarray  # (n, 3) float64, nm
    radii: np.ndarray  # (n,) float64, nm
    parents: np.ndarray  # (n,) int64, -1 for the soma
    types: np.ndarray  # (n,) SWC type: 1 soma, 2 axon, 3 basal, 4 apical dendrite
    sections: np.ndarray  # (n,) unbranched section each node belongs to (0: the soma)

    @property
    def path_lengths(self) -> np.ndarray:
        """Path length (nm) from the soma surface to each node."""
        out = np.zeros(len(self.points))
        for i in range(1, len(self.points)):
            p = self.parents[i]
            step = np.linalg.norm(self.points[i] - self.points[p])
            out[i] = out[p] + (step - self.radii[0] if p == 0 else step)
        return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _turn(direction: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """``direction`` turned by ``angle`` radians towards a random perpendicular."""
    side = _unit(np.cross(direction, rng.normal(size=3)))
    return _unit(np.cos(angle) * direction + np.sin(angle) * side)


@dataclass
class _Branch:
    parent: int  # node the branch starts from
    start: np.ndarray  # um
    direction: np.ndarray
    radius: float  # um at the start
    tip_radius: float  # um at the end
    length: float  # um of path
    kind: int  # SWC type
    depth: int
    bias: np.ndarray  # preferred direction (a pull, not a rule)
    tuft: bool = False  # the apical trunk: ends in a tuft


def grow_neuron(seed: int = 0, *, step_um: float = 2.0) -> Morphology:
    """A pyramidal-cell-like morphology, deterministic for a given ``seed``.

    y points from the pia into the white matter, as in MICrONS: the apical dendrite grows
    towards -y, the axon towards +y. Lengths are path lengths from the soma surface.
    """
    rng = np.random.default_rng([seed, 0x7E0])
    soma_radius = 6.0 + float(rng.uniform(-0.3, 0.3))  # ~12 um across
    points: list[np.ndarray] = [np.zeros(3)]
    radii, parents, types, sections = [soma_radius], [-1], [SOMA], [0]
    up, down = np.array([0.0, -1.0, 0.0]), np.array([0.0, 1.0, 0.0])

    def primary(direction, radius, tip, length, kind, bias, tuft=False) -> _Branch:
        direction = _unit(direction)
        return _Branch(0, direction * soma_radius * 0.9, direction, radius, tip, length, kind, 0,
                       bias, tuft)

    pending = [primary(up + rng.normal(scale=0.05, size=3), 2.2, 0.6, 300.0, APICAL, up, tuft=True)]
    n_basal = int(rng.integers(5, 8))
    for k in range(n_basal):
        angle = 2 * np.pi * (k + rng.uniform(-0.25, 0.25)) / n_basal
        direction = np.array([np.cos(angle), rng.uniform(0.0, 0.6), np.sin(angle) * 0.8])
        pending.append(primary(direction, rng.uniform(1.0, 1.3), 0.35, rng.uniform(150.0, 250.0), BASAL,
                               _unit(direction * np.array([1.0, 0.3, 1.0]))))
    pending.append(primary(down + rng.normal(scale=0.1, size=3), 0.55, 0.3, 420.0, AXON, down))

    section = 0
    while pending:
        branch = pending.pop(0)
        section += 1
        wiggle = {APICAL: 0.06, BASAL: 0.14, AXON: 0.08}[branch.kind] * (1.5 if branch.depth else 1.0)
        n_steps = max(int(branch.length / step_um), 2)
        point, direction, parent = branch.start, branch.direction, branch.parent
        for i in range(n_steps):
            s = (i + 1) / n_steps
            radius = branch.radius + (branch.tip_radius - branch.radius) * s
            direction = _unit(direction + rng.normal(scale=wiggle, size=3) + 0.04 * branch.bias)
            point = point + direction * step_um
            points.append(point)
            radii.append(radius)
            parents.append(parent)
            types.append(branch.kind)
            sections.append(section)
            parent = len(points) - 1
            left = branch.length * (1 - s)
            if branch.kind == APICAL and branch.depth == 0:
                chance, max_depth, share = 0.045, 1, (40.0, 110.0)  # obliques
            elif branch.kind == AXON:
                chance, max_depth, share = 0.012, 1, (80.0, 160.0)  # collaterals
            else:
                chance, max_depth, share = 0.018, 2, None
            if branch.depth < max_depth and left > 30.0 and 0.05 < s and rng.random() < chance:
                length = (float(rng.uniform(*share)) if share else left * float(rng.uniform(0.7, 1.05)))
                child = _turn(direction, float(rng.uniform(0.5, 1.1)), rng)
                bias = _unit(child * np.array([1.0, 0.2, 1.0]) + 1e-9) if branch.kind == APICAL else branch.bias
                # Daughters are thinner than the parent (Rall's rule, roughly).
                child_radius = max(radius * 0.75, branch.tip_radius * 1.1)
                pending.append(_Branch(parent, point, child, child_radius, branch.tip_radius * 0.9,
                                       length, branch.kind, branch.depth + 1, bias))
        if branch.tuft:  # the apical tuft: three to four branches spreading at the top
            for _ in range(int(rng.integers(3, 5))):
                child = _turn(direction, float(rng.uniform(0.6, 1.2)), rng)
                pending.append(_Branch(parent, point, child, radius * 0.8, 0.35,
                                       float(rng.uniform(60.0, 110.0)), APICAL, 1, _unit(child)))

    to_nm = 1000.0
    center = np.asarray(SOMA_CENTER_NM)
    return Morphology(points=np.asarray(points) * to_nm + center, radii=np.asarray(radii) * to_nm,
                      parents=np.asarray(parents, dtype=np.int64), types=np.asarray(types, dtype=np.int64),
                      sections=np.asarray(sections, dtype=np.int64))


# ----------------------------------------------------------------------- surface


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: min(a, b) where they differ by more than ``k``, a fillet where not."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _tube_distance(x: np.ndarray, y: np.ndarray, z: np.ndarray, a: np.ndarray, b: np.ndarray,
                   ra: float, rb: float) -> np.ndarray:
    """Distance from the grid ``x[:, None, None], y[None, :, None], z[None, None, :]`` to the
    tube from ``a`` (radius ``ra``) to ``b`` (radius ``rb``); negative inside."""
    ab = b - a
    rx, ry, rz = x[:, None, None] - a[0], y[None, :, None] - a[1], z[None, None, :] - a[2]
    t = np.clip((rx * ab[0] + ry * ab[1] + rz * ab[2]) / float(ab @ ab), 0.0, 1.0)
    gx, gy, gz = rx - t * ab[0], ry - t * ab[1], rz - t * ab[2]
    return np.sqrt(gx * gx + gy * gy + gz * gz) - (ra + t * (rb - ra))


def neuron_surface(morphology: Morphology, *, pitch_um: float = 0.25, block: int = 24) -> "trimesh.Trimesh":
    """The closed membrane of ``morphology`` (nm), by marching cubes of its distance field.

    The field is sampled at ``pitch_um`` in blocks of ``block`` cells, only where the cell is.
    Values are clamped to two samples either side of the surface, and every tube that can
    reach a block within that band is included in it, so neighbouring blocks compute the same
    values on their shared face and their vertices coincide exactly.
    """
    import trimesh
    from skimage.measure import marching_cubes

    um = 1000.0
    pts = morphology.points / um
    rad = morphology.radii / um
    child = np.arange(1, len(pts))
    parent = morphology.parents[child]
    a, b = pts[parent].copy(), pts[child]
    ra, rb = rad[parent].copy(), rad[child]
    # Tubes leaving the soma start inside it, at the radius of their first node.
    from_soma = parent == 0
    a[from_soma] = pts[0] + (b[from_soma] - pts[0]) * 0.5
    ra[from_soma] = rb[from_soma]
    section = morphology.sections[child]
    # Fillet size per section: large where a dendrite leaves the soma, small at branch points.
    first = np.unique(section, return_index=True)[1]
    fillet = {int(section[i]): float(np.clip((2.5 if from_soma[i] else 1.2) * rb[i], 0.25, 2.5)) for i in first}

    band = 2.0 * pitch_um  # |distance| clamp
    # A tube can change the clamped field only within ``reach`` of its surface (the band, its
    # fillet and a sample); each tube is evaluated on the samples of that box only.
    reach = band + pitch_um + np.array([fillet[int(s)] for s in section])
    tube_lo = np.minimum(a - ra[:, None], b - rb[:, None]) - reach[:, None]
    tube_hi = np.maximum(a + ra[:, None], b + rb[:, None]) + reach[:, None]
    soma_reach = band + pitch_um
    origin = (np.floor((np.minimum(tube_lo.min(axis=0), pts[0] - rad[0] - soma_reach)) / pitch_um) - 1) * pitch_um
    # Global sample index boxes, inclusive.
    first_sample = np.ceil((tube_lo - origin) / pitch_um).astype(np.int64)
    last_sample = np.floor((tube_hi - origin) / pitch_um).astype(np.int64)
    blocks: dict[tuple[int, int, int], list[int]] = {}
    for j in range(len(a)):
        # A block holds samples block*i .. block*(i+1): border samples belong to two blocks.
        lo = np.maximum((first_sample[j] - 1) // block, 0)
        hi = last_sample[j] // block
        for key in np.ndindex(*(hi - lo + 1)):
            blocks.setdefault(tuple(int(v) for v in lo + key), []).append(j)
    soma_lo = (np.ceil((pts[0] - rad[0] - soma_reach - origin) / pitch_um).astype(np.int64) - 1) // block
    soma_hi = np.floor((pts[0] + rad[0] + soma_reach - origin) / pitch_um).astype(np.int64) // block
    for key in np.ndindex(*(soma_hi - soma_lo + 1)):
        blocks.setdefault(tuple(int(v) for v in soma_lo + key), [])

    offsets = np.arange(block + 1)
    pieces_v, pieces_f, count = [], [], 0
    for key in sorted(blocks):
        index = np.asarray(key) * block
        x, y, z = (origin[d] + (index[d] + offsets) * pitch_um for d in range(3))
        field = np.sqrt((x[:, None, None] - pts[0, 0]) ** 2 + (y[None, :, None] - pts[0, 1]) ** 2
                        + (z[None, None, :] - pts[0, 2]) ** 2) - rad[0]
        tubes = sorted(blocks[key], key=lambda j: (section[j], j))
        current, nearest = None, None
        for j in tubes + [None]:
            if j is None or section[j] != current:
                if nearest is not None:  # one section done: join it to the rest smoothly
                    field = _smooth_min(field, nearest, fillet[int(current)])
                if j is None:
                    break
                current, nearest = section[j], np.full(field.shape, np.inf)
            lo = np.clip(first_sample[j] - index, 0, block + 1)
            hi = np.clip(last_sample[j] - index + 1, 0, block + 1)
            if np.any(hi <= lo):
                continue
            box = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
            d = _tube_distance(x[box[0]], y[box[1]], z[box[2]], a[j], b[j], float(ra[j]), float(rb[j]))
            np.minimum(nearest[box], d, out=nearest[box])
        field = np.clip(field, -band, band)
        if field.min() >= 0.0 or field.max() <= 0.0:
            continue
        # Inside is where -distance > 0; vertices in global sample units (exact integer offsets).
        verts, faces, _, _ = marching_cubes(-field, 0.0, allow_degenerate=False)
        pieces_v.append(verts + index)
        pieces_f.append(faces[:, ::-1] + count)  # counter-clockwise seen from outside
        count += len(verts)

    vertices = np.concatenate(pieces_v)
    faces = np.concatenate(pieces_f).astype(np.int64)
    # Merge the vertices blocks share (identical to rounding), and any closer than ~1 nm.
    keys = np.round(vertices * 256.0).astype(np.int64)
    _, first_of, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    faces = inverse.reshape(-1)[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    vertices = (vertices[first_of] * pitch_um + origin) * um
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    mesh.units = "nm"
    return mesh
