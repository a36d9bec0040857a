"""Watertight remeshing by voxels, and print-ready output built on it.

No repair library closes a whole neuron without losing geometry (FIELD-NOTES), so the
surface is rebuilt: mark the voxels the surface passes through, close 1-voxel gaps, fill
the inside, optionally thicken parts thinner than a minimum feature, keep the largest
body, run marching cubes, smooth (Taubin). The result is closed, manifold and one shell.

Memory is bounded: one full-resolution grid of booleans plus an int32 label pass; the grid
size is checked against a budget before anything is allocated.
"""

from __future__ import annotations

import math

import numpy as np

from mesh_export.core.parsing import parse_length, parse_memory_budget
from mesh_export.errors import InvalidArgumentError, InvalidMeshError
from mesh_export.process.derived import derived_mesh

# Peak bytes per voxel: bool grid + int32 labels + one bool temporary + float32 crop for
# marching cubes (measured on navis neurons: ~7.5).
BYTES_PER_VOXEL = 8
DEFAULT_GRID_CELLS = 384  # voxels along the longest side when no pitch is given


_CHUNK = 1 << 16  # faces per chunk of a pass over every face (temporaries stay in cache)


def _surface_points(vertices: np.ndarray, faces: np.ndarray, spacing: float) -> np.ndarray:
    """Points on every triangle no further apart than ``spacing`` (vertices, plus a
    barycentric lattice on triangles with longer edges), so no voxel the surface crosses is missed.

    The edge lengths are measured a chunk of faces at a time, and only the faces that need a
    lattice (at real scale, few or none: a 9M-face cell's edges are far shorter than a voxel)
    are gathered whole."""
    steps = np.ones(len(faces), dtype=np.int64)
    x, y, z = (np.ascontiguousarray(vertices[:, k]) for k in range(3))
    a, b, c = (np.ascontiguousarray(faces[:, k]) for k in range(3))
    limit = spacing * spacing * (1 - 1e-9)  # below it, surely one step; above, trimesh-style exact
    for start in range(0, len(faces), _CHUNK):
        ends = [(i[start : start + _CHUNK], j[start : start + _CHUNK]) for i, j in ((a, b), (b, c), (c, a))]
        longest = np.max([(x.take(i) - x.take(j)) ** 2 + (y.take(i) - y.take(j)) ** 2 + (z.take(i) - z.take(j)) ** 2
                          for i, j in ends], axis=0)
        long = start + np.flatnonzero(longest > limit)
        if len(long):
            corners = vertices[faces[long]]
            exact = np.max(np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2), axis=1)
            steps[long] = np.maximum(1, np.ceil(exact / spacing))
    points = [vertices]
    for k in np.unique(steps[steps > 1]):
        i, j = np.mgrid[0 : k + 1, 0 : k + 1]
        keep = (i + j) <= k
        weights = np.stack([i[keep], j[keep], k - i[keep] - j[keep]], axis=1) / k  # (m, 3)
        chosen = vertices[faces[steps == k]]  # (t, 3, 3)
        points.append(np.einsum("mc,tcd->tmd", weights, chosen).reshape(-1, 3))
    return np.concatenate(points)


def _grid(bounds: np.ndarray, pitch: float, pad: int) -> tuple[np.ndarray, tuple[int, int, int]]:
    origin = bounds[0] - pad * pitch
    shape = tuple(int(n) for n in np.ceil((bounds[1] - bounds[0]) / pitch).astype(int) + 1 + 2 * pad)
    return origin, shape


def plan_pitch(mesh, pitch: float | None, max_memory, pad: int = 4) -> float:
    """The pitch to use: the one asked for (if it fits the memory budget) or an automatic one."""
    bounds = np.asarray(mesh.bounds, dtype=np.float64)
    extent = float(np.ptp(bounds, axis=0).max())
    budget = parse_memory_budget(max_memory)

    def needed(p: float) -> int:
        return int(np.prod(_grid(bounds, p, pad)[1])) * BYTES_PER_VOXEL

    if pitch is not None:
        if not pitch > 0:
            raise InvalidArgumentError(f"--pitch must be positive, got {pitch}")
        if needed(pitch) > budget:
            raise InvalidArgumentError(
                f"--pitch {pitch:g} needs about {needed(pitch) / 2**30:.1f} GiB for this mesh, more than "
                f"--max-memory {budget / 2**30:.1f} GiB; use a coarser pitch or raise --max-memory")
        return float(pitch)
    chosen = extent / DEFAULT_GRID_CELLS
    while needed(chosen) > budget:
        chosen *= 1.25
    return chosen


def _fill_inside(solid: np.ndarray) -> None:
    """Fill every empty region not connected to the grid's border (the padding is empty)."""
    from scipy import ndimage

    labels, _ = ndimage.label(~solid)  # 6-connected empty space
    solid |= labels != labels[0, 0, 0]


def _solid(mesh, pitch: float, thicken_to: float | None, base=None):
    """The filled, thickened, largest-body voxel solid and its origin (``base``: a plate
    ``(thickness, margin)`` under the lowest part, in mesh units)."""
    from scipy import ndimage

    radius = int(math.ceil(thicken_to / 2 / pitch)) if thicken_to else 0
    base_voxels = (int(math.ceil(base[0] / pitch)), int(math.ceil(base[1] / pitch))) if base else (0, 0)
    pad = 3 + radius + sum(base_voxels)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    origin, shape = _grid(np.asarray(mesh.bounds, dtype=np.float64), pitch, pad)
    solid = np.zeros(shape, dtype=bool)
    points = _surface_points(vertices, np.asarray(mesh.faces), pitch / 2)
    index = np.floor((points - origin) / pitch).astype(np.int64)
    solid[index[:, 0], index[:, 1], index[:, 2]] = True
    del points, index

    # Close 1-voxel gaps in the shell so the inside can be told from the outside.
    ndimage.binary_dilation(solid, iterations=1, output=solid)
    _fill_inside(solid)
    ndimage.binary_erosion(solid, iterations=1, output=solid, border_value=0)

    if radius:
        # Thicken only what a ball of the minimum feature cannot pass through.
        core = ndimage.binary_opening(solid, iterations=radius)
        thin = solid & ~core
        del core
        solid |= ndimage.binary_dilation(thin, iterations=radius)
        del thin

    # 6-connected: pieces touching only along an edge or corner would become separate shells.
    labels, count = ndimage.label(solid)
    if count == 0:
        raise InvalidMeshError("voxel remeshing left nothing: the mesh is smaller than one voxel "
                               "at this pitch; use a finer --pitch")
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        solid = labels == int(np.argmax(sizes))
    del labels
    if base:
        _add_base(solid, *base_voxels, reach=max(1, int(math.ceil(base[0] / pitch))))
    _fill_inside(solid)  # thickening can enclose new cavities: each would be a shell of its own
    return solid, origin, count


def _add_base(solid: np.ndarray, thickness: int, margin: int, reach: int) -> None:
    """A plate ``thickness`` voxels thick under the lowest part of the solid: the convex hull
    of what lies within ``reach`` voxels of the bottom, grown by ``margin``. It overlaps the
    bottom layer, so plate and cell are one body."""
    from scipy import ndimage
    from skimage.morphology import convex_hull_image

    bottom = int(np.argmax(solid.any(axis=(0, 1))))
    foot = solid[:, :, bottom : bottom + reach].any(axis=2)
    if foot.sum() >= 3:
        foot |= convex_hull_image(foot)
    if margin:
        foot = ndimage.binary_dilation(foot, iterations=margin)
    solid[:, :, bottom - thickness : bottom + 1] |= foot[:, :, None]


def _marching_cubes(solid: np.ndarray, origin: np.ndarray, pitch: float):
    from scipy import ndimage
    from skimage.measure import marching_cubes

    # Work on the solid's bounding box only, padded so the surface closes. A slightly blurred
    # field has none of the edge-only voxel contacts that make marching cubes non-manifold.
    box = ndimage.find_objects(solid.astype(np.uint8))[0]
    crop = np.pad(solid[box], 2).astype(np.float32)
    ndimage.gaussian_filter(crop, sigma=0.6, output=crop)
    offset = np.array([s.start - 2 for s in box], dtype=np.float64)
    verts, faces, _, _ = marching_cubes(crop, level=0.5, allow_degenerate=False)
    return (verts + offset) * pitch + origin, faces


def watertight(mesh, *, pitch: float | None = None, max_memory=None, thicken_to: float | None = None,
               smooth_iterations: int = 10, record: bool = True, base=None):
    """A closed, manifold, single-shell surface of ``mesh`` by voxel remeshing.

    ``pitch`` and ``thicken_to`` are in the mesh's units. Parts thinner than ``thicken_to``
    are thickened to it; everything else keeps its shape to within about one voxel.
    """
    import trimesh

    if len(mesh.faces) == 0:
        raise InvalidMeshError("mesh is empty: nothing to remesh")
    pitch = plan_pitch(mesh, pitch, max_memory)
    # Parts under ~3 voxels would not survive the surface extraction: keep them at least that.
    thicken_to = max(thicken_to or 0.0, 3 * pitch)
    solid, origin, bodies_in_grid = _solid(mesh, pitch, thicken_to, base)
    voxels = int(solid.size)
    vertices, faces = _marching_cubes(solid, origin, pitch)
    del solid
    out = trimesh.Trimesh(vertices, faces, process=False)
    # Marching cubes can leave a few flat slivers where the field grazes the level: drop them.
    pieces = trimesh.graph.connected_components(out.face_adjacency, nodes=np.arange(len(out.faces)), min_len=1)
    if len(pieces) > 1:
        largest = max(pieces, key=len)
        out.update_faces(np.isin(np.arange(len(out.faces)), largest))
        out.remove_unreferenced_vertices()
    if smooth_iterations:
        trimesh.smoothing.filter_taubin(out, lamb=0.5, nu=0.53, iterations=smooth_iterations)
    if out.volume < 0:
        out.invert()
    step = {"step": "watertight", "method": "voxel+marching-cubes+taubin", "pitch": pitch,
            "grid_voxels": voxels, "bodies_before_keeping_largest": int(bodies_in_grid),
            "faces_before": int(len(mesh.faces)), "faces_after": int(len(out.faces)),
            "watertight": bool(out.is_watertight)}
    step["thickened_to"] = float(thicken_to)
    return derived_mesh(mesh, out.vertices, step, faces=out.faces) if record else out


#: --base: a plate this thick (mm) under the lowest part, reaching this far beyond it.
BASE_THICKNESS_MM = 1.0
BASE_MARGIN_MM = 2.0


def printable(mesh, *, size="120mm", min_feature="0.8mm", max_memory=None, keep_orientation: bool = False,
              base: bool = False):
    """One printable body: watertight, neurites thickened to ``min_feature`` at print size,
    scaled so the longest side is ``size``, in millimetres, standing on a stable pose (unless
    ``keep_orientation``) with a flat contact on z = 0 (a base plate under it with ``base``)."""
    from .printing import choose_pose, contact_area, first_layer_area, flatten_contact, stands

    size_mm = parse_length(size)
    feature_mm = parse_length(min_feature if min_feature is not None else "0.8mm")
    if feature_mm >= size_mm:
        raise InvalidArgumentError(f"--min-feature {feature_mm:g} mm is not smaller than the print size {size_mm:g} mm")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    extent = max((float(np.ptp(vertices[:, k])) for k in range(3)), default=0.0)
    if not extent > 0:
        raise InvalidMeshError("mesh has no extent: nothing to print")
    to_mm = size_mm / extent
    from mesh_export.model import CachedSurface

    # Plain arrays: a Trimesh would copy a 9M-face cell's faces to int64 twice over.
    faces = np.asarray(mesh.faces)
    vertices = vertices * to_mm  # not in place: asarray may have handed back the caller's array
    in_mm = CachedSurface(vertices, faces, {"units": "mm"})
    rotation, pose = np.eye(3), {"kept_orientation": True}
    if not keep_orientation:
        rotation, found = choose_pose(in_mm)
        pose = {"kept_orientation": False, **found}
        in_mm = CachedSurface(vertices @ rotation.T, faces, {"units": "mm"})
    del vertices
    # Three voxels across the thinnest printable feature (at most 600 along the longest side);
    # coarser only if the memory budget demands it.
    pitch_mm = max(feature_mm / 3, size_mm / 600, plan_pitch(in_mm, None, max_memory) if max_memory else 0.0)
    if pitch_mm > feature_mm / 2:
        # Under two voxels across the thinnest part, thin neurites break apart or merge.
        raise InvalidArgumentError(
            f"--max-memory {parse_memory_budget(max_memory) / 2**20:.0f} MiB allows voxels of {pitch_mm:.2f} mm, "
            f"too coarse to close this cell with {feature_mm:g} mm features at {size_mm:g} mm; "
            "raise --max-memory or print smaller")
    shell = watertight(in_mm, pitch=plan_pitch(in_mm, pitch_mm, max_memory), thicken_to=feature_mm,
                       max_memory=max_memory, record=False,
                       base=(BASE_THICKNESS_MM, BASE_MARGIN_MM) if base else None)
    plane = float(shell.vertices[:, 2].min())
    flat, contact = flatten_contact(shell.vertices, shell.faces)
    plane += contact["cut_mm"]
    # Exact final size (remeshing, thickening and the contact move the extremes by up to a voxel).
    final = size_mm / float(np.ptp(flat, axis=0).max())
    placed = flat * final
    centre = placed[:, :2].min(axis=0) + np.ptp(placed[:, :2], axis=0) / 2
    placed[:, :2] -= centre
    offset = np.array([*centre, plane * final])
    contact["contact_area_mm2"] = first_layer_area(placed, shell.faces)
    contact["flat_area_mm2"] = contact_area(placed, shell.faces)
    contact["base"] = {"thickness_mm": BASE_THICKNESS_MM, "margin_mm": BASE_MARGIN_MM} if base else None
    pose["stands"] = stands(placed, shell.faces)
    from .check import needs_support
    from .printing import overhang_area

    overhang = overhang_area(placed, shell.faces)
    supports = {"overhang_area_mm2": overhang, "needed": needs_support(overhang)}
    step = {"step": "print", "size_mm": size_mm, "min_feature_mm": feature_mm, "pitch_mm": pitch_mm,
            "source_units_per_mm": 1 / (to_mm * final), "source_units": mesh.units,
            # print = (source @ rotation.T) * scale - offset, above the contact: maps the input
            # onto the print, e.g. to compare them.
            "transform": {"rotation": rotation.tolist(), "scale": to_mm * final, "offset": offset.tolist()},
            "pose": pose, "contact": contact, "supports": supports,
            "faces_after": int(len(shell.faces)), "watertight": bool(shell.is_watertight)}
    return derived_mesh(mesh, placed, step, units="mm", faces=shell.faces)
