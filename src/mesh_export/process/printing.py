"""What a slicer needs beyond a closed body: a pose that stands, a flat contact, supports said.

- ``choose_pose``: among the convex hull's faces through which the centre of mass falls (the
  stable poses, trimesh's ``compute_stable_poses``), the one that puts most of the cell near
  the plate.
- ``flatten_contact``: the lowest part pressed flat onto z = 0, deep enough that the contact
  covers ``MIN_CONTACT_MM2`` (or as deep as ``MAX_CUT_MM`` allows): a slicer refuses an object
  whose first layer holds no extrusion, which is what a rounded tip on the plate gives.
- ``cross_section_area``, ``contact_area``, ``overhang_area``: measured on the mesh, no voxels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: A first layer a slicer prints reliably: a few mm^2 (a 2 mm disc is ~3 mm^2).
MIN_CONTACT_MM2 = 4.0
#: The most the lowest part is flattened by (mm): past this a base plate (--base) is the way.
MAX_CUT_MM = 1.0
#: PrusaSlicer's default first layer is 0.2 mm: it slices that layer at half its height.
FIRST_LAYER_MM = 0.2
#: Faces steeper than this from the vertical, facing down, need support (PrusaSlicer's own
#: automatic threshold is close to 45 degrees for its default 0.2 mm layers).
OVERHANG_DEGREES = 45.0


def _face_normals_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    double = np.linalg.norm(cross, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = np.where(double[:, None] > 0, cross / double[:, None], 0.0)
    return normals, double / 2


def cross_section_area(vertices, faces, z: float) -> float:
    """Area of the closed, outward-wound surface's section by the plane at height ``z``:
    the shoelace sum over the oriented segments where faces cross the plane."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    zs = vertices[faces, 2]
    crossing = (zs.min(axis=1) < z) & (zs.max(axis=1) > z)
    if not crossing.any():
        return 0.0
    corners = vertices[faces[crossing]]
    normals, _ = _face_normals_areas(vertices, faces[crossing])
    below = corners[:, :, 2] < z
    points = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        cut = below[:, a] != below[:, b]
        za, zb = corners[:, a, 2], corners[:, b, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(cut, (z - za) / (zb - za), np.nan)
        points.append(corners[:, a, :2] + t[:, None] * (corners[:, b, :2] - corners[:, a, :2]))
    stacked = np.stack(points, axis=1)  # (n, 3 edges, 2): two of the three are real
    valid = ~np.isnan(stacked[:, :, 0])
    order = np.argsort(~valid, axis=1, kind="stable")[:, :2]
    p = np.take_along_axis(stacked, order[:, :, None], axis=1)
    start, end = p[:, 0], p[:, 1]
    direction = end - start
    # Counter-clockwise seen from above: the outward normal lies to the right of travel.
    flip = (direction[:, 1] * normals[:, 0] - direction[:, 0] * normals[:, 1]) < 0
    start, end = np.where(flip[:, None], end, start), np.where(flip[:, None], start, end)
    return float(0.5 * np.sum(start[:, 0] * end[:, 1] - end[:, 0] * start[:, 1]))


def contact_area(vertices, faces, tolerance: float = 1e-6) -> float:
    """Area of the faces lying flat on z = 0 (the patch the first layer prints)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    flat = np.all(np.abs(vertices[faces, 2]) <= tolerance, axis=1)
    if not flat.any():
        return 0.0
    _, areas = _face_normals_areas(vertices, faces[flat])
    return float(areas.sum())


def overhang_area(vertices, faces, degrees: float = OVERHANG_DEGREES,
                  above: float = FIRST_LAYER_MM) -> float:
    """Area (mm^2) of down-facing faces more than ``degrees`` from vertical, higher than
    ``above`` (what rests on the plate needs no support)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    normals, areas = _face_normals_areas(vertices, faces)
    steep = normals[:, 2] < -np.cos(np.radians(degrees))
    lifted = vertices[faces, 2].min(axis=1) > above
    return float(areas[steep & lifted].sum())


_CHUNK = 1 << 16  # faces per chunk of a pass over a whole cell's faces (temporaries stay in cache)


def _near_plate(vertices: np.ndarray, corners: tuple, used: np.ndarray, rotation: np.ndarray,
                depth: float) -> float:
    """How much of the surface lies within ``depth`` of z = min once rotated by ``rotation``:
    what a pose puts on the plate. Only the heights are computed for every vertex; the faces
    near the plate, a few, are rotated whole. ``corners``: the faces' three index columns;
    ``used``: which vertices a face uses."""
    z = vertices @ rotation[2]
    low = z <= float(z[used].min()) + depth
    near = low[corners[0]]
    near &= low[corners[1]]
    near &= low[corners[2]]
    near = np.column_stack([c[near] for c in corners])
    if not len(near):
        return 0.0
    kept, at = np.unique(near, return_inverse=True)
    normals, areas = _face_normals_areas(vertices[kept] @ rotation.T, at.reshape(-1, 3))
    return float(np.sum(areas * np.abs(normals[:, 2])))


def _surface_centre(vertices: np.ndarray, corners: tuple) -> np.ndarray:
    """The area-weighted mean of the face centres, a chunk of faces at a time, on coordinate
    columns (no (n, 3, 3) arrays)."""
    x, y, z = (np.ascontiguousarray(vertices[:, k], dtype=np.float64) for k in range(3))
    weighted, total = np.zeros(3), 0.0
    for start in range(0, len(corners[0]), _CHUNK):
        i0, i1, i2 = (c[start : start + _CHUNK] for c in corners)
        x0, y0, z0, x1, y1, z1, x2, y2, z2 = (c.take(i) for i in (i0, i1, i2) for c in (x, y, z))
        ux, uy, uz = x1 - x0, y1 - y0, z1 - z0
        wx, wy, wz = x2 - x0, y2 - y0, z2 - z0
        area = np.sqrt((uy * wz - uz * wy) ** 2 + (uz * wx - ux * wz) ** 2 + (ux * wy - uy * wx) ** 2)
        weighted += [float(((a + b + c) * area).sum()) for a, b, c in ((x0, x1, x2), (y0, y1, y2), (z0, z1, z2))]
        total += float(area.sum())
    return weighted / 3.0 / max(total, 1e-300)


class _HullOnly:
    """What ``trimesh.poses.compute_stable_poses`` reads of a mesh when given its centre of
    mass: the convex hull, and the face count (a bound on its iterations). A Trimesh of a
    whole cell would cost float64/int64 copies of every array for a hull of a few thousand faces."""

    def __init__(self, hull, face_count: int):
        self.convex_hull = hull
        self.faces = range(face_count)


def choose_pose(mesh, depth: float = MAX_CUT_MM) -> tuple[np.ndarray, dict[str, Any]]:
    """A rotation (3x3) that stands the mesh on a stable face of its convex hull, the one with
    most surface within ``depth`` of the plate, and what was chosen from.

    The centre of mass is the surface's (area-weighted face centres): the input of a print is
    rarely closed, so its volume's centre is not defined; thickening moves it little."""
    import trimesh

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    corners = tuple(np.ascontiguousarray(faces[:, k]) for k in range(3))
    centre = _surface_centre(vertices, corners)
    hull = trimesh.convex.convex_hull(vertices)
    transforms, probabilities = trimesh.poses.compute_stable_poses(_HullOnly(hull, len(faces)), center_mass=centre)
    if not len(transforms):
        return np.eye(3), {"stable_poses": 0}
    used = np.zeros(len(vertices), dtype=bool)
    for column in corners:
        used[column] = True
    scores = [_near_plate(vertices, corners, used, np.asarray(transform[:3, :3], dtype=np.float64), depth)
              for transform in transforms]
    best = int(np.argmax(scores))
    info = {"stable_poses": int(len(transforms)), "chosen": best,
            "probability": float(probabilities[best]), "near_plate_mm2": float(scores[best])}
    return np.asarray(transforms[best][:3, :3], dtype=np.float64), info


def first_layer_area(vertices, faces) -> float:
    """Area of the print's section halfway up its first layer: what a slicer's first layer holds."""
    return cross_section_area(vertices, faces, FIRST_LAYER_MM / 2)


def flatten_contact(vertices: np.ndarray, faces: np.ndarray, *, min_area: float = MIN_CONTACT_MM2,
                    max_cut: float = MAX_CUT_MM) -> tuple[np.ndarray, dict[str, Any]]:
    """Vertices with the lowest part pressed flat onto z = 0: everything below the cut height
    goes to the cut plane, then the body is lowered onto z = 0. The cut is the shallowest
    (in 0.05 mm steps from half a first layer) whose first layer covers ``min_area``, at most
    ``max_cut``.

    Below a shallow cut the surface faces down (rounded tips, the underside of a soma or of a
    base plate), so it folds flat onto the plane without crossing itself."""
    source = np.asarray(vertices, dtype=np.float64)
    bottom = float(source[:, 2].min())
    for depth in np.arange(FIRST_LAYER_MM / 2, max_cut + 1e-9, 0.05):
        flat = source.copy()
        plane = bottom + float(depth)
        flat[:, 2] = np.maximum(flat[:, 2], plane) - plane
        area = first_layer_area(flat, faces)
        if area >= min_area:
            break
    return flat, {"cut_mm": round(float(depth), 4), "contact_area_mm2": area,
                  "flat_area_mm2": contact_area(flat, faces), "contact_ok": bool(area >= min_area)}


def centre_of_mass(vertices, faces) -> np.ndarray:
    """Centre of mass of a closed, outward-wound surface (signed tetrahedra from the origin)."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    volumes = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])) / 6
    total = volumes.sum()
    return (corners.sum(axis=1) / 4 * volumes[:, None]).sum(axis=0) / total


def stands(vertices, faces) -> bool:
    """Whether the centre of mass falls inside the convex hull of the contact (it stands)."""
    from scipy.spatial import Delaunay, QhullError

    vertices = np.asarray(vertices, dtype=np.float64)
    touching = vertices[np.abs(vertices[:, 2]) <= 1e-6][:, :2]
    if len(touching) < 3:
        return False
    try:
        return bool(Delaunay(touching).find_simplex(centre_of_mass(vertices, faces)[:2]) >= 0)
    except QhullError:
        return False
