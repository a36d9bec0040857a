"""Cells of any kind (VTK's and meshio's names) reduced to what mesh-export holds: surface
triangles, or linear volume cells; and the figures of a volume mesh (volume, boundary).

Every reader that meets mixed cells (VTK XML and legacy, meshio's formats) hands its blocks
here, so a pixel, a triangle strip or a ``wedge15`` means the same whichever file it came
from. Quadratic and higher-order cells keep their corners (every format lists them first);
lines and points are dropped and counted; what cannot be mapped is refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from mesh_export.errors import InputError, InvalidMeshError

# VTK's cell type ids (vtkCellType.h) -> meshio's names, which the rest of this module speaks.
VTK_CELL_NAMES = {
    0: "empty", 1: "vertex", 2: "poly_vertex", 3: "line", 4: "poly_line", 5: "triangle",
    6: "triangle_strip", 7: "polygon", 8: "pixel", 9: "quad", 10: "tetra", 11: "voxel",
    12: "hexahedron", 13: "wedge", 14: "pyramid", 15: "penta_prism", 16: "hexa_prism",
    21: "line3", 22: "triangle6", 23: "quad8", 24: "tetra10", 25: "hexahedron20", 26: "wedge15",
    27: "pyramid13", 28: "quad9", 29: "hexahedron27", 30: "quad6", 31: "wedge12", 32: "wedge18",
    33: "hexahedron24", 34: "triangle7", 35: "line4", 36: "quadratic_polygon", 37: "pyramid14",
    42: "polyhedron", 68: "lagrange_curve", 69: "lagrange_triangle", 70: "lagrange_quad",
    71: "lagrange_tetra", 72: "lagrange_hexahedron", 73: "lagrange_wedge", 74: "lagrange_pyramid",
}
# Nodes of each fixed-size VTK cell (the variable ones, polygons, strips and high-order
# Lagrange cells, take theirs from the offsets).
VTK_CELL_SIZES = {1: 1, 3: 2, 5: 3, 8: 4, 9: 4, 10: 4, 11: 8, 12: 8, 13: 6, 14: 5, 21: 3, 22: 6, 23: 8,
                  24: 10, 25: 20, 26: 15, 27: 13, 28: 9, 29: 27, 30: 6, 31: 12, 32: 18, 33: 24, 34: 7,
                  35: 4, 37: 14, 15: 10, 16: 12}

# Surface cells: name -> (corners kept, reordering of them into a polygon's order).
_SURFACE = {"triangle": 3, "triangle6": 3, "triangle7": 3, "lagrange_triangle": 3,
            "quad": 4, "quad8": 4, "quad9": 4, "quad6": 4, "lagrange_quad": 4, "pixel": 4}
_PIXEL_TRIANGLES = [0, 1, 2, 1, 3, 2]  # a pixel's corners go along x, then y (as a quad: 0, 1, 3, 2)
# Volume cells: name -> the linear cell its corners make.
_VOLUME = {"tetra": "tetra", "tetra10": "tetra", "lagrange_tetra": "tetra",
           "hexahedron": "hexahedron", "hexahedron20": "hexahedron", "hexahedron24": "hexahedron",
           "hexahedron27": "hexahedron", "lagrange_hexahedron": "hexahedron", "voxel": "hexahedron",
           "wedge": "wedge", "wedge12": "wedge", "wedge15": "wedge", "wedge18": "wedge", "lagrange_wedge": "wedge",
           "pyramid": "pyramid", "pyramid13": "pyramid", "pyramid14": "pyramid", "lagrange_pyramid": "pyramid"}
_VOXEL_ORDER = [0, 1, 3, 2, 4, 5, 7, 6]
# Pentagonal and hexagonal prisms (the polygon's corners, then the top's): read as 3 and 4 wedges.
_PRISM_SIDES = {"penta_prism": 5, "hexa_prism": 6}
VOLUME_CELLS = ("tetra", "hexahedron", "wedge", "pyramid")
_CORNERS = {"tetra": 4, "hexahedron": 8, "wedge": 6, "pyramid": 5}
# Lines and points: dropped from a surface or volume and counted.
_DROPPED = {"vertex", "poly_vertex", "line", "poly_line", "line3", "line4", "lagrange_curve"}
# The faces of each linear volume cell, facing out of a cell in VTK's positive orientation (and all
# in, for a cell the other way round: every face turns with its cell, so a cell's signed volume
# and its outward faces follow from one sign, whatever a format's convention for wedges).
_FACES = {
    "tetra": ([[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]], []),
    "pyramid": ([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]], [[0, 3, 2, 1]]),
    "wedge": ([[0, 2, 1], [3, 4, 5]], [[0, 1, 4, 3], [1, 2, 5, 4], [2, 0, 3, 5]]),
    "hexahedron": ([], [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]]),
}
_HIGHER_ORDER = re.compile(r"^(tetra|hexahedron|wedge|pyramid|triangle|quad|line)\d+$")
_MESHIO_LAGRANGE = {"VTK_LAGRANGE_CURVE": "line", "VTK_LAGRANGE_TRIANGLE": "triangle",
                    "VTK_LAGRANGE_QUADRILATERAL": "quad", "VTK_LAGRANGE_TETRAHEDRON": "tetra",
                    "VTK_LAGRANGE_HEXAHEDRON": "hexahedron", "VTK_LAGRANGE_WEDGE": "wedge",
                    "VTK_LAGRANGE_PYRAMID": "pyramid"}


def _known(name: str) -> str:
    """A cell name as this module's tables know it: meshio's higher-order names ("tetra20",
    "hexahedron64", "VTK_LAGRANGE_WEDGE") by their linear cell, whose corners they list first."""
    if name in _VOLUME or name in _SURFACE or name in _DROPPED:
        return name
    if name in _MESHIO_LAGRANGE:
        return _MESHIO_LAGRANGE[name]
    match = _HIGHER_ORDER.match(name)
    return match.group(1) if match else name


def is_volume_cell(name: str) -> bool:
    return _known(name) in _VOLUME or name in _PRISM_SIDES


@dataclass
class Block:
    """Cells of one type: ``data`` (n, k), or for cells of varying size (polygons, strips) the
    flat ``data`` with ``offsets`` (each cell's end, as VTK stores them)."""

    name: str
    data: np.ndarray
    offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) if self.offsets is not None else len(self.data)


@dataclass
class Cells:
    """What a file's cells hold: points and blocks of cells, as read."""

    points: np.ndarray
    blocks: list[Block] = field(default_factory=list)

    def check_indices(self, where: str) -> None:
        """Every cell's points exist (a damaged file's would be read past the points), and a cell
        of fixed size has at least its corners (a damaged file can hand meshio's blocks of fewer)."""
        for block in self.blocks:
            known = _known(block.name)
            corners = _CORNERS.get(_VOLUME.get(known, ""), _SURFACE.get(known))
            if (block.offsets is None and corners and block.data.ndim == 2 and len(block.data)
                    and block.data.shape[1] < corners):
                raise InputError(f"{where}: {block.name.replace('_', ' ')} cells of {block.data.shape[1]} points "
                                 f"(a {known.replace('_', ' ')} has {corners} corners)")
            if block.data.size and (int(block.data.min()) < 0 or int(block.data.max()) >= len(self.points)):
                bad = int(block.data.max()) if int(block.data.max()) >= len(self.points) else int(block.data.min())
                raise InputError(f"{where}: a {block.name.replace('_', ' ')} cell names point {bad:,}, "
                                 f"and there are {len(self.points):,}")

    def is_volume(self) -> bool:
        # (polyhedra too: volume_blocks refuses them by name)
        return any((is_volume_cell(block.name) or block.name == "polyhedron") and len(block) for block in self.blocks)


def blocks_of_vtk_cells(connectivity: np.ndarray, offsets: np.ndarray, types: np.ndarray,
                        where: str) -> list[Block]:
    """An unstructured grid's cells (VTK's connectivity, offsets (ends) and types) as blocks,
    a block per type."""
    types = np.asarray(types)
    if types.dtype.kind not in "iu":
        types = types.astype(np.int64)
    offsets = np.asarray(offsets)
    if offsets.dtype.kind not in "iu":
        offsets = offsets.astype(np.int64)
    if len(types) != len(offsets):
        raise InputError(f"{where}: {len(types):,} cell types for {len(offsets):,} cells")
    steps = np.diff(offsets)
    if len(offsets) and (offsets[-1] > len(connectivity) or (steps < 0).any() or offsets[0] < 0):
        raise InputError(f"{where}: cell offsets run outside the connectivity array")
    if len(types) and (types == types[0]).all():
        codes = types[:1].astype(np.int64)  # one type of cell (np.bincount would widen 9M types to int64)
    else:
        codes = np.unique(types)
    size = VTK_CELL_SIZES.get(int(codes[0])) if len(codes) == 1 else None
    if size is not None and len(connectivity) == size * len(offsets) and offsets[0] == size and \
            (steps == size).all():
        # One type of cell, each after the other (a surface we wrote): the connectivity as it is.
        return [Block(VTK_CELL_NAMES[int(codes[0])], connectivity.reshape(-1, size))]
    del steps
    offsets = offsets.astype(np.int64, copy=False)
    blocks = []
    starts = np.empty_like(offsets)
    if len(offsets):
        starts[0] = 0
        starts[1:] = offsets[:-1]
    for code in codes.tolist():
        name = VTK_CELL_NAMES.get(code)
        if name is None:
            raise InputError(f"{where}: VTK cell type {code} is not one mesh-export knows")
        chosen = np.flatnonzero(types == code)
        size = VTK_CELL_SIZES.get(code)
        sizes = offsets[chosen] - starts[chosen]
        if size is not None and not (sizes >= size).all():
            raise InputError(f"{where}: a {name.replace('_', ' ')} cell with {int(sizes[sizes < size][0])} points, "
                             f"not {size}")
        if size is not None and not (sizes == size).all():
            # More points than the type has (a quadratic cell labelled linear): its corners come
            # first, and VTK reads them so too.
            flat = connectivity[np.repeat(starts[chosen], size) + np.tile(np.arange(size), len(chosen))]
            blocks.append(Block(name, flat.reshape(-1, size)))
            continue
        if size is not None:
            index = starts[chosen][:, None] + np.arange(size)
            blocks.append(Block(name, connectivity[index]))
        else:
            flat = connectivity[np.repeat(starts[chosen], sizes) + _ranges(sizes)]
            blocks.append(Block(name, flat, np.cumsum(sizes)))
    return blocks


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """0..s-1 for each size, one after another."""
    total = int(sizes.sum())
    return np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def blocks_of_meshio(mesh) -> list[Block]:
    """A meshio.Mesh's cell blocks (meshio's names; polygons as meshio gives them: one block per
    corner count)."""
    blocks = []
    for block in mesh.cells:
        data = block.data
        if isinstance(data, list):  # polyhedra: a list of faces per cell
            blocks.append(Block(block.type, np.zeros((len(data), 0), dtype=np.int64)))
            continue
        name = "polygon" if block.type.startswith("polygon") else block.type
        blocks.append(Block(name, np.asarray(data)))
    return blocks


# ---------------------------------------------------------------------------- surfaces

def fan(indices: np.ndarray, counts: np.ndarray, starts: np.ndarray | None = None, dtype=np.int64) -> np.ndarray:
    """Triangles ``(first, j, j + 1)`` of polygons (3 corners or more) whose ``counts`` corners
    stand one after another in ``indices`` (from ``starts``, else packed): the one fan every
    reader uses (writers._read.fan checks and counts a file's polygons, then calls it)."""
    counts = np.asarray(counts, dtype=np.int64)
    if starts is None:
        starts = np.cumsum(counts) - counts
    fans = counts - 2
    polygon = np.repeat(np.arange(len(counts)), fans)
    corner = np.arange(len(polygon)) - np.repeat(np.cumsum(fans) - fans, fans) + 1
    first = np.asarray(starts, dtype=np.int64)[polygon]
    triangles = np.empty((len(polygon), 3), dtype=dtype)
    triangles[:, 0] = indices[first]
    triangles[:, 1] = indices[first + corner]
    triangles[:, 2] = indices[first + corner + 1]
    return triangles


def _fan_or_clip(points: np.ndarray, flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Polygons as triangles without VTK: fanned where convex (exact for planar ones), ear-clipped
    where not (a fan from a reflex corner would overlap itself and count area twice)."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    polygon = np.repeat(np.arange(len(counts)), counts)
    at = np.arange(len(flat)) - np.repeat(starts, counts)
    following = starts[polygon] + (at + 1) % counts[polygon]
    preceding = starts[polygon] + (at - 1) % counts[polygon]
    p = np.asarray(points, dtype=np.float64)
    here, after, before = p[flat], p[flat[following]], p[flat[preceding]]
    # Newell's normal of each polygon, and the turn at each corner against it.
    newell = np.zeros((len(counts), 3))
    np.add.at(newell, polygon, np.cross(here, after))
    turn = np.einsum("ij,ij->i", np.cross(here - before, after - here), newell[polygon])
    convex = np.ones(len(counts), dtype=bool)
    np.logical_and.at(convex, polygon, turn >= 0)
    pieces = [fan(flat[np.isin(polygon, np.flatnonzero(convex))], counts[convex])] if convex.any() else []
    for k in np.flatnonzero(~convex).tolist():
        corners = flat[starts[k] : starts[k] + counts[k]]
        pieces.append(_ear_clip(p[corners], newell[k], corners))
    return np.concatenate(pieces) if pieces else np.zeros((0, 3), dtype=flat.dtype)


def _ear_clip(corners: np.ndarray, normal: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """One simple polygon cut into triangles by removing ears (corners turning the polygon's way
    whose triangle holds no other corner), in the plane of its normal."""
    axis = int(np.argmax(np.abs(normal)))
    flat2d = np.delete(corners, axis, axis=1)
    if normal[axis] < 0:
        flat2d = flat2d[:, ::-1]  # counter-clockwise seen from the normal's side
    remaining = list(range(len(ids)))
    triangles = []

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    guard = 0
    while len(remaining) > 3 and guard < 4 * len(ids) * len(ids):
        guard += 1
        for i in range(len(remaining)):
            a, b, c = remaining[i - 1], remaining[i], remaining[(i + 1) % len(remaining)]
            pa, pb, pc = flat2d[a], flat2d[b], flat2d[c]
            if cross(pa, pb, pc) <= 0:
                continue  # a reflex (or flat) corner is no ear
            if any(cross(pa, pb, flat2d[j]) >= 0 and cross(pb, pc, flat2d[j]) >= 0 and cross(pc, pa, flat2d[j]) >= 0
                   for j in remaining if j not in (a, b, c)):
                continue
            triangles.append((ids[a], ids[b], ids[c]))
            remaining.pop(i)
            break
        else:
            break  # self-intersecting: what is left is fanned
    rest = [ids[j] for j in remaining]
    triangles.extend((rest[0], rest[j], rest[j + 1]) for j in range(1, len(rest) - 1))
    return np.asarray(triangles, dtype=ids.dtype).reshape(-1, 3)


def _strips(indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """VTK's decomposition of triangle strips: triangle i of a strip is (i, i+1, i+2), its odd
    ones (i+1, i, i+2), so that every triangle keeps the strip's winding."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    each = counts - 2
    strip = np.repeat(np.arange(len(counts)), each)
    step = np.arange(len(strip)) - np.repeat(np.cumsum(each) - each, each)
    first = starts[strip] + step
    odd = (step % 2).astype(bool)
    a = np.where(odd, first + 1, first)
    b = np.where(odd, first, first + 1)
    return np.stack([indices[a], indices[b], indices[first + 2]], axis=1)


def triangles_of(cells: Cells, where: str, polygons=None) -> tuple[np.ndarray, dict[str, int]]:
    """The triangles of ``cells``' surface cells (see the module's doc) and the count of
    cells dropped, by type. Volume cells are not surfaces: ask ``boundary`` for theirs.

    ``polygons(points, flat, counts)``, when given, triangulates the polygons of more than three
    corners (quads too) and returns their triangles, or None to have them fanned: VTK's ear
    cutting, which a fan equals only on convex, planar polygons."""
    pieces, dropped = [], {}

    def polygon_triangles(flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
        found = polygons(cells.points, flat, counts) if polygons is not None and len(counts) else None
        return _fan_or_clip(cells.points, flat, counts) if found is None else found

    for block in cells.blocks:
        name, data = _known(block.name), block.data
        if len(block) == 0:
            continue
        if name in _DROPPED or name == "empty":
            dropped[name] = dropped.get(name, 0) + len(block)
        elif name in _SURFACE:
            corners = data[:, :_SURFACE[name]]
            if name == "pixel":  # split along its 1-2 diagonal, as VTK splits it
                pieces.append(corners[:, _PIXEL_TRIANGLES].reshape(-1, 3))
            else:
                pieces.append(corners if corners.shape[1] == 3 else
                              polygon_triangles(np.ascontiguousarray(corners).ravel(), np.full(len(corners), 4)))
        elif name in ("polygon", "triangle_strip", "quadratic_polygon"):
            if block.offsets is None:  # meshio's fixed-size polygon block
                counts = np.full(len(data), data.shape[1] if data.ndim == 2 else 0)
                flat = data.ravel()
            else:
                offsets, flat = block.offsets, data
                if (name == "polygon" and len(flat) == 3 * len(offsets) and offsets[0] == 3
                        and (np.diff(offsets) == 3).all()):
                    pieces.append(flat.reshape(-1, 3))  # triangles only: no fan to make
                    continue
                counts = np.diff(offsets.astype(np.int64, copy=False), prepend=0)
            if name == "quadratic_polygon":  # corners first, then the edge midpoints
                starts = np.cumsum(counts) - counts
                counts = counts // 2
                flat = flat[np.repeat(starts, counts) + _ranges(counts)]
            if len(counts) and counts.min() < 3:
                raise InputError(f"{where}: a {name.replace('_', ' ')} with {int(counts.min())} points")
            if name == "triangle_strip":
                pieces.append(_strips(flat, counts))
            elif (counts == 3).all():
                pieces.append(fan(flat, counts))
            else:
                pieces.append(polygon_triangles(flat, counts))
        elif name not in _VOLUME:
            raise InputError(f"{where}: {name.replace('_', ' ')} cells cannot be read as a surface")
    if not pieces:
        return np.zeros((0, 3), dtype=np.int32), dropped
    triangles = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return triangles.astype(np.int32 if len(cells.points) < 2**31 else np.int64, copy=False), dropped


# ---------------------------------------------------------------------------- volumes

def volume_blocks(cells: Cells, where: str) -> tuple[list[tuple[str, np.ndarray]], dict[str, int]]:
    """The volume cells of ``cells`` as linear cells (corners of quadratic ones; voxels as
    hexahedra; collapsed hexahedra as the wedges, pyramids, tetrahedra they are; pentagonal and
    hexagonal prisms as 3 and 4 wedges), one block per type, and the count of the other cells (surface, line, point),
    which a volume mesh leaves aside, by type."""
    found: dict[str, list[np.ndarray]] = {}
    aside: dict[str, int] = {}
    for block in cells.blocks:
        if len(block) == 0:
            continue
        if block.name in _PRISM_SIDES:  # a prism on a polygon: wedges fanned from its first corner
            sides = _PRISM_SIDES[block.name]
            wedges = [block.data[:, [0, k, k + 1, sides, sides + k, sides + k + 1]] for k in range(1, sides - 1)]
            found.setdefault("wedge", []).append(np.stack(wedges, axis=1).reshape(-1, 6))
            continue
        linear = _VOLUME.get(_known(block.name))
        if linear is None:
            if block.name == "polyhedron":
                raise InputError(f"{where}: polyhedron cells (faces listed one by one) cannot be mapped to "
                                 "tetrahedra, hexahedra, wedges or pyramids")
            aside[block.name] = aside.get(block.name, 0) + len(block)
            continue
        data = block.data[:, : _CORNERS[linear]]
        if block.name == "voxel":
            data = data[:, _VOXEL_ORDER]
        if linear == "hexahedron":
            for name, cells in _collapsed(data):
                found.setdefault(name, []).append(cells)
            continue
        found.setdefault(linear, []).append(data)
    return [(name, np.concatenate(found[name])) for name in VOLUME_CELLS if name in found], aside


def _collapsed(hexahedra: np.ndarray):
    """Hexahedra some of whose corners coincide, as formats without wedges, pyramids or tetrahedra
    store those (Tecplot's bricks): (0 1 2 2 3 4 5 5) or (0 1 4 3 2 2 5 5) is a wedge, (0 1 2 3 4 4 4 4) a pyramid,
    (0 1 2 2 3 3 3 3) a tetrahedron; the rest stay hexahedra."""
    h = hexahedra
    top = (h[:, 4] == h[:, 5]) & (h[:, 5] == h[:, 6]) & (h[:, 6] == h[:, 7])
    tetra = top & (h[:, 2] == h[:, 3])
    pyramid = top & ~tetra
    wedge = ~top & (h[:, 2] == h[:, 3]) & (h[:, 6] == h[:, 7])
    brick_wedge = ~top & ~wedge & (h[:, 4] == h[:, 5]) & (h[:, 6] == h[:, 7])  # meshio's Tecplot (0 1 4 3 2 2 5 5)
    hexahedron = ~(tetra | pyramid | wedge | brick_wedge)
    wedges = np.concatenate([h[wedge][:, [0, 1, 2, 4, 5, 6]], h[brick_wedge][:, [0, 1, 4, 3, 2, 6]]])
    return [(name, cells) for name, cells in (("hexahedron", h[hexahedron]), ("tetra", h[tetra][:, [0, 1, 2, 4]]),
                                             ("wedge", wedges), ("pyramid", h[pyramid][:, :5])) if len(cells)]


def _triangulated_faces(name: str) -> list[list[int]]:
    triangles, quadrilaterals = _FACES[name]
    return list(triangles) + [[q[0], q[1], q[2]] for q in quadrilaterals] + [[q[0], q[2], q[3]] for q in quadrilaterals]


def signed_volumes(points: np.ndarray, name: str, data: np.ndarray) -> np.ndarray:
    """Each linear cell's volume by the divergence theorem over its outward faces (quads split in
    two): positive in VTK's orientation, negative for a cell the other way round, exact for
    any cell with planar faces, convex or not."""
    points = np.asarray(points, dtype=np.float64)
    centre = points[data].mean(axis=1)  # any point would do: it only keeps the numbers small
    total = np.zeros(len(data))
    for face in _triangulated_faces(name):
        a, b, c = (points[data[:, k]] - centre for k in face)
        total += np.einsum("ij,ij->i", np.cross(a, b), c)
    return total / 6.0


def cell_volumes(points: np.ndarray, name: str, data: np.ndarray) -> np.ndarray:
    """The volume of each linear cell, whichever way round its corners run."""
    return np.abs(signed_volumes(points, name, data))


def boundary(points: np.ndarray, blocks) -> np.ndarray:
    """The triangles of a volume mesh's boundary: the faces used by one cell only, facing out of
    their cell (quads split along their first diagonal)."""
    points = np.asarray(points)
    out = []
    for size in (3, 4):
        faces = []
        for name, data in blocks:
            table = _FACES[name][0 if size == 3 else 1]
            if not table:
                continue
            turned = signed_volumes(points, name, data) < 0  # a cell the other way round: its faces too
            for face in table:
                oriented = data[:, face].copy()
                oriented[turned] = oriented[turned][:, ::-1]
                faces.append(oriented)
        if not faces:
            continue
        faces_all = np.concatenate(faces)
        keys = np.sort(faces_all, axis=1)
        _, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
        once = faces_all[first[counts == 1]]
        out.append(once if size == 3 else np.concatenate([once[:, [0, 1, 2]], once[:, [0, 2, 3]]]))
    if not out:
        return np.zeros((0, 3), dtype=np.int32)
    return np.concatenate(out).astype(np.int32 if len(points) < 2**31 else np.int64)


def check_volume_blocks(points: np.ndarray, blocks, where: str = "volume mesh") -> None:
    if not blocks or not sum(len(data) for _, data in blocks):
        raise InvalidMeshError(f"{where} has no volume cells")
    if not np.isfinite(np.asarray(points)).all():
        raise InvalidMeshError(f"{where} has non-finite points")
    for name, data in blocks:
        if data.min() < 0 or data.max() >= len(points):
            raise InvalidMeshError(f"{where}: {name} cells index points out of range")


def volume_figures(mesh) -> dict:
    """A volume mesh's (meshio.Mesh) cells by type, their count and total volume (quadratic
    cells by their corners)."""
    points = np.asarray(mesh.points)
    cells: dict[str, int] = {}
    volume = 0.0
    for block in mesh.cells:
        linear = _VOLUME.get(_known(block.type))
        if linear is None:
            continue
        data = np.asarray(block.data)[:, : _CORNERS[linear]]
        if block.type == "voxel":
            data = data[:, _VOXEL_ORDER]
        cells[block.type] = cells.get(block.type, 0) + len(data)
        volume += float(cell_volumes(points, linear, data).sum())
    return {"cells": cells, "elements": int(sum(cells.values())), "volume": volume}
