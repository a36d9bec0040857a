"""Offscreen pictures of meshes and skeletons: no display, no GPU, no OpenGL.

Meshes are drawn by a small vectorised numpy rasteriser: a z-buffer over every pixel
centre a triangle covers, then smooth Lambert shading from interpolated vertex normals
(two-sided: connectomics meshes are not consistently wound) and a dark silhouette edge.
Skeletons are drawn as lines whose width follows the node radius. Pillow writes the PNG
and draws the text; all panels share one scale, so one scale bar (in micrometres) serves
the whole picture.

Meshes far larger than the picture can show are first reduced by vertex clustering on a
grid finer than a pixel (a few hundred milliseconds for a million faces, and invisible at
that size); with ``decimate="quadric"`` fast-simplification is used instead.

Public API::

    render_png(mesh_or_skeleton, "view.png", views=("xy",), size=(1200, 800), caption="...")
    render_compare([mesh_a, mesh_b], "compare.png", labels=[...], caption="...")
    preview("864691135572530981", lod=2)   # mesh-export preview: a root id or a file -> <id or stem>.png

The first two return a :class:`RenderInfo` (scale, scale bar geometry, faces drawn per panel),
``preview`` a :class:`Preview` (that, and whether the mesh came from the cache).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mesh_export.core.atomic import atomic_output, check_target
from mesh_export.core.parsing import parse_picture_size
from mesh_export.errors import InvalidArgumentError, InvalidMeshError, OutputError
from mesh_export.look.info import load_target
from mesh_export.model import (COMPARTMENT_COLORS, FACE_ATTRIBUTES, SKELETON, SYNAPSE_COLORS, SYNAPSE_POINTS,
                               element_attributes, kind_of)
from mesh_export.process.skeleton import SOMA, Skeleton

VIEWS = ("xy", "xz", "yz", "iso")
BACKGROUND = (255, 255, 255)
BAR_COLOUR = (0, 0, 0)  # never produced by shading, so tests (and people) can find the bar
TEXT_COLOUR = (40, 40, 40)
EDGE_COLOUR = (60, 70, 90)
MESH_COLOURS = ((0.45, 0.62, 0.90), (0.93, 0.55, 0.35), (0.45, 0.78, 0.50))
_AMBIENT = 0.22
_NICE = (1.0, 2.0, 5.0)
# Candidate (triangle, pixel) pairs processed at once: bounds memory at ~150 MB.
_CHUNK = 1_000_000
# Faces per panel pixel above which a mesh is reduced before drawing.
_FACES_PER_PIXEL = 0.5


@dataclass
class ScaleBar:
    length_um: float  # what the label says (or raw units when the units are unknown)
    label: str
    x0: int  # first pixel column of the bar
    x1: int  # last pixel column (inclusive)
    y0: int
    y1: int  # inclusive
    label_box: tuple[int, int, int, int]  # left, top, right, bottom of the label text
    label_xy: tuple[int, int] = (0, 0)  # where the label was drawn (Pillow's text origin)
    font_size: int = 0

    @property
    def pixels(self) -> int:
        return self.x1 - self.x0 + 1


@dataclass
class RenderInfo:
    path: Path | None
    size: tuple[int, int]
    views: tuple[str, ...]
    um_per_pixel: float | None  # None when the units are unknown (then see units_per_pixel)
    units_per_pixel: float  # in the objects' own coordinate units
    units: str | None
    scale_bar: ScaleBar | None
    faces_drawn: list[int] = field(default_factory=list)  # per panel, after display reduction
    faces_input: list[int] = field(default_factory=list)  # per object
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"output": str(self.path) if self.path else None, "size": list(self.size),
                "views": list(self.views), "um_per_pixel": self.um_per_pixel,
                "scale_bar_um": self.scale_bar.length_um if self.scale_bar and self.um_per_pixel else None,
                "faces": self.faces_input, "faces_drawn": self.faces_drawn,
                "seconds": round(self.seconds, 4)}


# ----------------------------------------------------------------------- arguments


def parse_views(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"xy,xz,yz"`` or ``"iso"`` -> a tuple of view names."""
    if text is None:
        return ("xy",)
    items = text.split(",") if isinstance(text, str) else list(text)
    views = tuple(v.strip().lower() for v in items if v.strip())
    bad = [v for v in views if v not in VIEWS]
    if bad or not views:
        raise InvalidArgumentError(f"unknown view {', '.join(bad) or repr(text)}: use a comma-separated "
                                   f"list of {', '.join(VIEWS)}")
    if len(views) > 4:
        raise InvalidArgumentError("at most 4 views in one picture")
    return views


# ------------------------------------------------------------------------ geometry


def _basis(view: str) -> np.ndarray:
    """Rows: screen right, screen down, into the screen (world coordinates).

    Orthographic views follow Neuroglancer's panels (x right, y down for xy; x right,
    z down for xz; z right, y down for yz). ``iso`` looks from 45 degrees azimuth and
    30 degrees above, with world -y (the pia, in cortex datasets) up.
    """
    if view == "xy":
        return np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]])
    if view == "xz":
        return np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    if view == "yz":
        return np.array([[0, 0, 1.0], [0, 1, 0], [-1, 0, 0]])
    az, el = math.radians(45.0), math.radians(30.0)
    forward = np.array([math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az)])
    down_world = np.array([0.0, 1.0, 0.0])
    right = np.cross(down_world, forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.array([right, down, forward])


def _units_to_um(units: str | None) -> float | None:
    if units is None:
        return None
    from mesh_export.core.units import conversion_factor

    return conversion_factor(units, "um")


def _object_units(obj) -> str | None:
    if kind_of(obj) == SKELETON:
        return obj.units
    units = getattr(obj, "metadata", {}).get("units")
    if units is None:
        return None
    from mesh_export.core.units import normalize_units

    try:
        return normalize_units(units)
    except Exception:
        return None


def _points(obj) -> np.ndarray:
    return np.asarray(obj.vertices, dtype=np.float64)


def _check_mesh(mesh) -> None:
    vertices = np.asarray(mesh.vertices)
    is_skeleton = kind_of(mesh) == SKELETON
    faces = np.asarray(mesh.edges if is_skeleton else mesh.faces)
    if len(vertices) == 0 or (not is_skeleton and len(faces) == 0):
        raise InvalidMeshError("nothing to draw: the mesh is empty")
    if not np.isfinite(vertices).all():
        raise InvalidMeshError("cannot draw a mesh with NaN or infinite coordinates")
    if not is_skeleton and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise InvalidMeshError("cannot draw a mesh whose face indices are out of range")


# ---------------------------------------------------------------- display decimation


def cluster_vertices(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: snap vertices to a grid of ``cell`` and drop collapsed faces.

    Linear time; at a cell smaller than a pixel the picture does not change.
    """
    lo = vertices.min(axis=0)
    scaled = vertices - lo
    scaled /= cell
    np.floor(scaled, out=scaled)
    q = scaled.astype(np.int64)
    del scaled
    span = q.max(axis=0) + 1
    keys = (q[:, 0] * span[1] + q[:, 1]) * span[2] + q[:, 2]
    del q
    inverse, cells = _cell_numbers(keys)
    counts = np.bincount(inverse, minlength=cells).astype(np.float64)
    merged = np.empty((cells, 3))
    for axis in range(3):
        merged[:, axis] = np.bincount(inverse, weights=vertices[:, axis], minlength=cells) / counts
    f = inverse[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    return merged, f[keep]


def _cell_numbers(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """``np.unique(keys, return_inverse=True)``'s numbering (cells in key order) and the cell
    count, from one sort of the keys with each position packed below its key (a plain sort
    is about twice as fast as the argsort ``np.unique`` does)."""
    n = len(keys)
    bits = max(1, (n - 1).bit_length())
    if n == 0 or int(keys.max()) >= 1 << (63 - bits):
        unique, inverse = np.unique(keys, return_inverse=True)
        return inverse.ravel(), len(unique)
    packed = keys.astype(np.uint64) << np.uint64(bits)
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    position = (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
    packed >>= np.uint64(bits)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(packed[1:], packed[:-1], out=starts[1:])
    del packed
    number = np.cumsum(starts, dtype=np.int64)
    number -= 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[position] = number
    return inverse, int(number[-1]) + 1


def quadric_decimate(vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """About ``target_faces`` faces (a reduction of at most 99%), for drawing."""
    from mesh_export.core.mesh_ops import quadric_decimate as decimate

    reduction = 1.0 - target_faces / len(faces)
    return decimate(vertices, faces, target_reduction=max(0.0, min(reduction, 0.99)))


# ---------------------------------------------------------------------- rasteriser


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted
    normals = np.zeros_like(vertices)
    for k in range(3):
        for axis in range(3):
            normals[:, axis] += np.bincount(faces[:, k], weights=face_normals[:, axis], minlength=len(vertices))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    length[length == 0] = 1.0
    return normals / length


def rasterize(screen: np.ndarray, faces: np.ndarray, width: int, height: int):
    """Z-buffer ``faces`` given vertices in pixel coordinates (x, y, depth).

    Returns (face index per pixel or -1, barycentric weights per pixel), both (height, width).
    A pixel belongs to a triangle when its centre lies inside it (edges inclusive); a
    triangle that covers no pixel centre takes the pixel under its centroid (depth-tested like
    the rest), so structures thinner than a pixel are drawn as lines. Work is proportional
    to the faces plus the pixels they cover.
    """
    npix = width * height
    zbuf = np.full(npix, np.inf, dtype=np.float32)
    fbuf = np.full(npix, -1, dtype=np.int64)
    bary = np.zeros((npix, 3), dtype=np.float32)
    sx = screen[:, 0].astype(np.float32)
    sy = screen[:, 1].astype(np.float32)
    ax, bx, cx = sx[faces[:, 0]], sx[faces[:, 1]], sx[faces[:, 2]]
    ay, by, cy = sy[faces[:, 0]], sy[faces[:, 1]], sy[faces[:, 2]]
    x0 = np.ceil(np.minimum(np.minimum(ax, bx), cx) - 0.5)
    x1 = np.floor(np.maximum(np.maximum(ax, bx), cx) - 0.5)
    y0 = np.ceil(np.minimum(np.minimum(ay, by), cy) - 0.5)
    y1 = np.floor(np.maximum(np.maximum(ay, by), cy) - 0.5)
    np.maximum(x0, 0, out=x0)
    np.minimum(x1, width - 1, out=x1)
    np.maximum(y0, 0, out=y0)
    np.minimum(y1, height - 1, out=y1)
    # Signed double area; edge-on triangles cover nothing.
    area = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
    visible = np.abs(area) > 1e-9
    live = np.flatnonzero((x1 >= x0) & (y1 >= y0) & visible)
    centroid_x, centroid_y = (ax + bx + cx) / 3, (ay + by + cy) / 3
    del ax, bx, cx, ay, by, cy
    covered = np.zeros(len(faces), dtype=bool)
    x0 = x0[live].astype(np.int64)
    y0 = y0[live].astype(np.int64)
    w = x1[live].astype(np.int64) - x0 + 1
    counts = w * (y1[live].astype(np.int64) - y0 + 1)
    inv_area = (1.0 / area[live]).astype(np.float32)
    corners = faces[live]
    sz = screen[:, 2].astype(np.float32)
    cum = np.cumsum(counts)
    starts = np.searchsorted(cum, np.arange(0, cum[-1], _CHUNK), side="right") if len(live) else []
    bounds = sorted(set(int(s) for s in starts) | {len(live)})
    for a, b in zip(bounds[:-1], bounds[1:]):
        c = counts[a:b]
        local = np.repeat(np.arange(a, b), c)
        first = np.cumsum(c) - c
        offset = np.arange(len(local)) - np.repeat(first, c)
        wf = w[local]
        px = x0[local] + offset % wf
        py = y0[local] + offset // wf
        del offset, wf
        qx = px.astype(np.float32) + np.float32(0.5)
        qy = py.astype(np.float32) + np.float32(0.5)
        tri = corners[local]
        vax, vay = sx[tri[:, 0]] - qx, sy[tri[:, 0]] - qy
        vbx, vby = sx[tri[:, 1]] - qx, sy[tri[:, 1]] - qy
        vcx, vcy = sx[tri[:, 2]] - qx, sy[tri[:, 2]] - qy
        inv = inv_area[local]
        l0 = (vbx * vcy - vcx * vby) * inv
        l1 = (vcx * vay - vax * vcy) * inv
        l2 = np.float32(1.0) - l0 - l1
        eps = np.float32(-1e-6)
        inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
        if not inside.any():
            continue
        tri, l0, l1, l2 = tri[inside], l0[inside], l1[inside], l2[inside]
        covered[live[local[inside]]] = True
        _depth_test(zbuf, fbuf, bary, py[inside] * width + px[inside], live[local[inside]], sz, tri,
                    np.column_stack([l0, l1, l2]))
    # Triangles that cover no pixel centre (a neurite thinner than a pixel) still show: each
    # marks the pixel under its centroid, so thin branches stay lines instead of dashes.
    tiny = np.flatnonzero(visible & ~covered)
    px = np.floor(centroid_x[tiny]).astype(np.int64)
    py = np.floor(centroid_y[tiny]).astype(np.int64)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    tiny = tiny[inside]
    weights = np.full((len(tiny), 3), 1.0 / 3.0, dtype=np.float32)
    _depth_test(zbuf, fbuf, bary, py[inside] * width + px[inside], tiny, sz, faces[tiny], weights)
    return fbuf.reshape(height, width), bary.reshape(height, width, 3)


def _depth_test(zbuf, fbuf, bary, pix, face_ids, sz, tri, weights) -> None:
    """Keep, per pixel, the nearest of the candidate (pixel, face, barycentric weights)."""
    z = (weights * sz[tri]).sum(axis=1)
    np.minimum.at(zbuf, pix, z)
    win = z <= zbuf[pix]
    pix = pix[win]
    fbuf[pix] = face_ids[win]
    bary[pix] = weights[win]


def _shade_mesh(vertices, faces, basis, scale, centre, panel, colour) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw one mesh into a (h, w, 3) float RGB panel; returns (rgb, mask, faces drawn)."""
    pw, ph = panel
    cam = vertices @ basis.T  # right, down, depth
    screen = np.empty_like(cam)
    screen[:, 0] = (cam[:, 0] - centre[0]) * scale + pw / 2.0
    screen[:, 1] = (cam[:, 1] - centre[1]) * scale + ph / 2.0
    screen[:, 2] = cam[:, 2]
    fbuf, bary = rasterize(screen, faces, pw, ph)
    mask = fbuf >= 0
    rgb = np.ones((ph, pw, 3), dtype=np.float32)
    if not mask.any():
        return rgb, mask, len(faces)
    hit = fbuf[mask]
    b = bary[mask]
    if len(faces) <= pw * ph // 4:
        # Triangles larger than pixels: smooth shading from interpolated vertex normals.
        normals = _vertex_normals(cam, faces)
        n = (normals[faces[hit]] * b[:, :, None]).sum(axis=1)
    else:
        # Pixel-sized triangles: flat shading looks the same, computed for visible faces only.
        tri = cam[faces[hit]]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    # Two lights in camera space (x right, y down, z into the screen): a key light from
    # the upper left and a weaker head light. Two-sided: |n.l|.
    key = np.array([-0.45, -0.55, -0.70])
    key /= np.linalg.norm(key)
    head = np.array([0.0, 0.0, -1.0])
    diffuse = 0.62 * np.abs(n @ key) + 0.28 * np.abs(n @ head)
    half = key + head
    half /= np.linalg.norm(half)
    specular = 0.18 * np.abs(n @ half) ** 24
    shade = np.clip(_AMBIENT + diffuse, 0, 1)
    colour = np.asarray(colour, dtype=np.float64)
    base = colour[hit] if colour.ndim == 2 else colour[None, :]  # per face (compartments, cells) or one
    rgb[mask] = np.clip(shade[:, None] * base + specular[:, None], 0.03, 1.0)
    # Silhouette and creases: darken pixels whose neighbour is background or much deeper.
    far = float(screen[:, 2].max()) + 1e6 / scale
    depth = np.full((ph, pw), far, dtype=np.float32)
    depth[mask] = (screen[faces[hit], 2] * b).sum(axis=1)
    edge = np.zeros_like(mask)
    step = 12.0 / scale  # a jump of more than ~12 pixels' worth of depth
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        shifted = np.roll(np.roll(depth, dy, axis=0), dx, axis=1)
        edge |= mask & ((shifted - depth) > step)
    if colour.ndim == 2:  # parts told apart by colour: darken the outline, keep its hue
        rgb[edge] = rgb[edge] * 0.7
    else:
        rgb[edge] = rgb[edge] * 0.45 + np.asarray(EDGE_COLOUR) / 255.0 * 0.55
    return rgb, mask, len(faces)


def _display_mesh(vertices, faces, scale, panel, decimate: str) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a mesh far larger than the panel can show (see module docstring)."""
    limit = int(panel[0] * panel[1] * _FACES_PER_PIXEL)
    if decimate == "none" or len(faces) <= limit:
        return vertices, faces
    if decimate == "quadric":
        return quadric_decimate(vertices, faces, limit)
    return cluster_vertices(vertices, faces, cell=0.5 / scale)


# ------------------------------------------------------------------------ compartments, synapses, scenes


def _face_colours(mesh, vertices, faces) -> np.ndarray | None:
    """Per displayed face RGB (0-1): the mesh's face ``color``, else its compartments' colours,
    else None (one colour). A display mesh reduced from the original takes each face's colour
    from the original face nearest its centre (one KD-tree query)."""
    labels = element_attributes(mesh, FACE_ATTRIBUTES)
    if "color" in labels:
        colours = np.asarray(labels["color"], dtype=np.float64)[:, :3] / 255.0
    elif "compartment" in labels:
        table = np.array([COMPARTMENT_COLORS.get(k, COMPARTMENT_COLORS[0])[:3] for k in range(256)]) / 255.0
        colours = table[np.asarray(labels["compartment"], dtype=np.int64)]
    else:
        return None
    if len(faces) == len(mesh.faces):
        return colours
    from scipy.spatial import cKDTree

    original = np.asarray(mesh.vertices, dtype=np.float64)[np.asarray(mesh.faces)].mean(axis=1)
    _, nearest = cKDTree(original).query(vertices[faces].mean(axis=1), workers=-1)
    return colours[nearest]


def _draw_synapses(draw, mesh, basis, scale, centre, origin, panel) -> None:
    """The mesh's synapse points as dots, inputs and outputs in their colours (drawn on top)."""
    points = (getattr(mesh, "metadata", None) or {}).get(SYNAPSE_POINTS)
    if not points or not len(points.get("positions", ())):
        return
    pw, ph = panel
    cam = np.asarray(points["positions"], dtype=np.float64) @ basis.T
    x = (cam[:, 0] - centre[0]) * scale + pw / 2.0 + origin[0]
    y = (cam[:, 1] - centre[1]) * scale + ph / 2.0 + origin[1]
    # One pixel each: a cell has thousands of synapses along neurites a few pixels wide, and
    # the surface's colours must still show between them.
    directions = np.asarray(points["direction"]).astype(str)
    inside = (x >= 0) & (y >= 0) & (x < origin[0] + pw) & (y < origin[1] + ph)
    for direction, rgba in SYNAPSE_COLORS.items():
        pick = inside & (directions == direction)
        draw.point(list(zip(np.rint(x[pick]).tolist(), np.rint(y[pick]).tolist())), fill=tuple(rgba[:3]))


def scene_mesh(scene):
    """A :class:`~mesh_export.model.Scene`'s cells as one surface to draw: per-face colours (a
    cell's colour, or its compartments'), the synapse points of every cell."""
    import trimesh

    vertices, faces, colours, points = [], [], [], []
    offset = 0
    for cell in scene.cells:
        cell_vertices, cell_faces = np.asarray(cell.vertices), np.asarray(cell.faces)
        color = (getattr(cell, "metadata", None) or {}).get("color")
        labels = element_attributes(cell, FACE_ATTRIBUTES).get("compartment")
        if color is None and labels is not None:
            table = np.array([COMPARTMENT_COLORS.get(k, COMPARTMENT_COLORS[0]) for k in range(256)], dtype=np.uint8)
            colours.append(table[np.asarray(labels, dtype=np.int64)])
        else:
            colours.append(np.tile(np.asarray(color or COMPARTMENT_COLORS[0], dtype=np.uint8), (len(cell_faces), 1)))
        vertices.append(cell_vertices)
        faces.append(cell_faces + offset)
        offset += len(cell_vertices)
        cell_points = (getattr(cell, "metadata", None) or {}).get(SYNAPSE_POINTS)
        if cell_points and len(cell_points.get("positions", ())):
            points.append(cell_points)
    mesh = trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)
    mesh.metadata.update(units=scene.units, **{FACE_ATTRIBUTES: {"color": np.concatenate(colours)}})
    if points:
        mesh.metadata[SYNAPSE_POINTS] = {
            "positions": np.concatenate([p["positions"] for p in points]),
            "direction": np.concatenate([np.asarray(p["direction"]).astype(str) for p in points])}
    return mesh


def render_scene_png(scene, path: str | os.PathLike, *, overwrite: bool = True, **options) -> RenderInfo:
    """A scene's cells in one picture (each in its colour, synapses as dots) to a PNG."""
    caption = f"{len(scene.cells)} cells" + (f" ({scene.units})" if scene.units else "")
    return render_png(scene_mesh(scene), path, caption=caption, overwrite=overwrite, **options)


# ------------------------------------------------------------------------ skeletons


def _draw_skeleton(draw, skeleton: Skeleton, basis, scale, centre, origin, panel, colour) -> int:
    pw, ph = panel
    cam = np.asarray(skeleton.vertices, dtype=np.float64) @ basis.T
    sx = (cam[:, 0] - centre[0]) * scale + pw / 2.0 + origin[0]
    sy = (cam[:, 1] - centre[1]) * scale + ph / 2.0 + origin[1]
    depth = cam[:, 2]
    radii = np.asarray(skeleton.radii, dtype=np.float64)
    radii = np.where(np.isfinite(radii) & (radii > 0), radii, 0.0)
    edges = skeleton.edges
    base = np.asarray(colour) * 255.0
    if len(edges):
        mid = depth[edges].mean(axis=1)
        lo, hi = float(depth.min()), float(depth.max())
        fade = 1.0 - 0.45 * (mid - lo) / ((hi - lo) or 1.0)  # far segments lighter
        order = np.argsort(-mid)  # far first
        widths = np.maximum(1, np.rint(2.0 * radii[edges].mean(axis=1) * scale)).astype(int)
        for k in order:
            i, j = edges[k]
            shade = fade[k]
            rgb = tuple(int(round(255 - (255 - c) * shade)) for c in base)
            width = int(widths[k])
            draw.line([(sx[i], sy[i]), (sx[j], sy[j])], fill=rgb, width=width)
            if width > 3:  # round joints
                r = width / 2.0
                draw.ellipse([sx[j] - r, sy[j] - r, sx[j] + r, sy[j] + r], fill=rgb)
    soma = np.flatnonzero(skeleton.types == SOMA)
    for i in soma:
        r = max(1.5, radii[i] * scale)
        draw.ellipse([sx[i] - r, sy[i] - r, sx[i] + r, sy[i] + r], fill=tuple(int(c * 0.8) for c in base))
    return len(edges)


# -------------------------------------------------------------------------- layout


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=max(8, int(size)))


def _nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k not above ``target``."""
    if not target > 0:
        return 1.0
    exponent = math.floor(math.log10(target))
    best = 10.0 ** exponent
    for m in _NICE:
        if m * 10.0 ** exponent <= target:
            best = m * 10.0 ** exponent
    return best


def _format_length(value: float) -> str:
    if value >= 1:
        return f"{value:,.0f}"
    return f"{value:.{max(0, -math.floor(math.log10(value)))}f}"


def _grid(n_objects: int, n_views: int) -> tuple[int, int]:
    """(rows, columns) of panels: objects side by side, views down; one object: views in a row."""
    if n_objects == 1:
        return (2, 2) if n_views == 4 else (1, n_views)
    return n_views, n_objects


def render(objects: Sequence, *, views: Sequence[str] | str | None = None,
           size: Sequence[int] | str | None = None, caption: str | None = None,
           labels: Sequence[str] | None = None, um_per_pixel: float | None = None,
           units: str | None = None, decimate: str = "cluster"):
    """Draw meshes (trimesh.Trimesh) or skeletons side by side; returns (PIL image, RenderInfo).

    ``um_per_pixel`` fixes the scale (default: fit everything); ``units`` declares the
    objects' coordinate units when they do not say (``mesh.metadata["units"]``).
    """
    import time

    from PIL import Image, ImageDraw

    started = time.perf_counter()
    views = parse_views(views)
    width, height = parse_picture_size(size)
    if decimate not in ("cluster", "quadric", "none"):
        raise InvalidArgumentError(f"decimate must be cluster, quadric or none, not {decimate!r}")
    objects = list(objects)
    if not objects:
        raise InvalidArgumentError("nothing to draw")
    for obj in objects:
        _check_mesh(obj)
    found_units = {_object_units(o) for o in objects}
    if units is None and len(found_units) > 1:
        raise InvalidArgumentError(f"cannot draw meshes in different units together: {sorted(map(str, found_units))}")
    units = units or next(iter(found_units))
    to_um = _units_to_um(units)

    rows, cols = _grid(len(objects), len(views))
    font_px = max(11, min(28, height // 40))
    caption_h = int(font_px * 2.4)
    label_h = int(font_px * 1.6)
    panel_w = width // cols
    panel_h = (height - caption_h) // rows
    if panel_w < 16 or panel_h - label_h < 16:
        raise InvalidArgumentError(f"size {width}x{height} is too small for {rows * cols} panels")
    margin = max(4, int(min(panel_w, panel_h) * 0.04))
    inner_w, inner_h = panel_w - 2 * margin, panel_h - label_h - 2 * margin

    # One scale for every panel: the largest that fits each projection in its panel.
    bases = {v: _basis(v) for v in views}
    extents = {}
    for i, obj in enumerate(objects):
        points = _points(obj)
        column_lo = column_hi = None
        for v in views:
            if kind_of(obj) != SKELETON and v != "iso":
                # An axis view's screen coordinates are +-coordinates: their extremes are the
                # vertices' own, with no (n, 3) projection to build.
                if column_lo is None:
                    stored = np.asarray(obj.vertices)
                    column_lo = stored.min(axis=0).astype(np.float64)
                    column_hi = stored.max(axis=0).astype(np.float64)
                axis = np.abs(bases[v]).argmax(axis=1)
                positive = bases[v][np.arange(3), axis] > 0
                extents[i, v] = (np.where(positive, column_lo[axis], -column_hi[axis]),
                                 np.where(positive, column_hi[axis], -column_lo[axis]))
                continue
            cam = points @ bases[v].T
            lo, hi = cam.min(axis=0), cam.max(axis=0)
            if kind_of(obj) == SKELETON:
                # Strokes are as wide as the radius: fit the tubes, not only their axes.
                pad = np.where(np.isfinite(obj.radii) & (obj.radii > 0), obj.radii, 0.0)[:, None]
                lo, hi = (cam - pad).min(axis=0), (cam + pad).max(axis=0)
            extents[i, v] = (lo, hi)
    if um_per_pixel is not None:
        if not um_per_pixel > 0:
            raise InvalidArgumentError(f"um_per_pixel must be positive, got {um_per_pixel}")
        if to_um is None:
            raise InvalidArgumentError("a scale in um per pixel needs known units (declare them)")
        scale = to_um / um_per_pixel  # pixels per coordinate unit
    else:
        fits = []
        for lo, hi in extents.values():
            span = np.maximum(hi - lo, 1e-12)
            fits.append(min(inner_w / span[0], inner_h / span[1]))
        scale = float(min(fits))

    image = Image.new("RGB", (width, height), BACKGROUND)
    canvas = np.asarray(image, dtype=np.float32) / 255.0
    canvas = canvas.copy()
    draw_jobs, dot_jobs = [], []
    face_colours: dict[int, np.ndarray | None] = {}
    reduced: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    faces_drawn = []
    faces_input = [int(len(o.faces)) if kind_of(o) != SKELETON else int(len(o.edges)) for o in objects]
    for i, obj in enumerate(objects):
        colour = MESH_COLOURS[i % len(MESH_COLOURS)]
        for j, v in enumerate(views):
            row, col = (j // cols, j % cols) if len(objects) == 1 else (j, i)
            ox = col * panel_w + margin
            oy = row * panel_h + label_h + margin
            lo, hi = extents[i, v]
            centre = (lo + hi) / 2.0
            if kind_of(obj) == SKELETON:
                draw_jobs.append((obj, bases[v], scale, centre, (ox, oy), (inner_w, inner_h), colour))
                faces_drawn.append(int(len(obj.edges)))
                continue
            if i not in reduced:
                # Faces as they come (int32 from a file or a fetch): indices need no widening.
                faces = np.asarray(obj.faces)
                reduced[i] = _display_mesh(np.asarray(obj.vertices, dtype=np.float64),
                                           faces if faces.dtype.kind == "i" else faces.astype(np.int64), scale,
                                           (inner_w, inner_h), decimate)
            vertices, faces = reduced[i]
            if i not in face_colours:
                face_colours[i] = _face_colours(obj, vertices, faces)
            rgb, mask, drawn = _shade_mesh(vertices, faces, bases[v], scale, centre, (inner_w, inner_h),
                                           colour if face_colours[i] is None else face_colours[i])
            dot_jobs.append((obj, bases[v], scale, centre, (ox, oy), (inner_w, inner_h)))
            region = canvas[oy:oy + inner_h, ox:ox + inner_w]
            region[mask] = rgb[mask]
            faces_drawn.append(int(drawn))

    image = Image.fromarray(np.rint(canvas * 255.0).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for job in draw_jobs:
        _draw_skeleton(draw, *job)
    for job in dot_jobs:
        _draw_synapses(draw, *job)
    font = _font(font_px)
    small = _font(int(font_px * 0.85))
    # Panel labels: the view, and (comparing) which object.
    for i in range(len(objects)):
        for j, v in enumerate(views):
            row, col = (j // cols, j % cols) if len(objects) == 1 else (j, i)
            text = v if not labels or len(objects) == 1 else f"{labels[i]}   [{v}]"
            draw.text((col * panel_w + margin, row * panel_h + 2), text, fill=TEXT_COLOUR, font=small)
    # Panel separators.
    for c in range(1, cols):
        draw.line([(c * panel_w, 0), (c * panel_w, rows * panel_h)], fill=(225, 225, 225), width=1)
    for r in range(1, rows):
        draw.line([(0, r * panel_h), (width, r * panel_h)], fill=(225, 225, 225), width=1)

    # Scale bar, bottom right, in um (raw units when unknown).
    units_per_pixel = 1.0 / scale
    bar = None
    if to_um is not None:
        per_pixel, unit_label = units_per_pixel * to_um, "um"
    else:
        per_pixel, unit_label = units_per_pixel, "units (unknown)"
    length = _nice_length(per_pixel * width * 0.2)
    bar_px = int(round(length / per_pixel))
    if bar_px >= 2:
        thickness = max(3, font_px // 4)
        bar_label = f"{_format_length(length)} {unit_label}"
        text_w = int(draw.textlength(bar_label, font=font))
        x1 = width - margin - 1
        x0 = x1 - bar_px + 1
        base_y = rows * panel_h + caption_h // 2
        y0, y1 = base_y - thickness // 2, base_y - thickness // 2 + thickness - 1
        draw.rectangle([x0, y0, x1, y1], fill=BAR_COLOUR)
        tx = x0 - text_w - font_px // 2
        ty = base_y - font_px // 2 - 2
        draw.text((tx, ty), bar_label, fill=TEXT_COLOUR, font=font)
        box = draw.textbbox((tx, ty), bar_label, font=font)
        bar = ScaleBar(length, bar_label, x0, x1, y0, y1, tuple(int(v) for v in box), (tx, ty), font_px)
    if caption:
        limit = (bar.label_box[0] if bar else width) - 2 * margin
        text = caption
        while text and draw.textlength(text, font=font) > limit:
            text = text[:-2]
        if text != caption:
            text = text[:-1] + "…"
        draw.text((margin, rows * panel_h + caption_h // 2 - font_px // 2 - 2), text, fill=TEXT_COLOUR, font=font)

    info = RenderInfo(None, (width, height), views, per_pixel if to_um is not None else None,
                      units_per_pixel, units, bar, faces_drawn, faces_input,
                      time.perf_counter() - started)
    return image, info


def _save(image, path: str | os.PathLike, overwrite: bool) -> Path:
    target = check_target(Path(path), overwrite)
    try:
        with atomic_output(target, overwrite, suffix=".png") as tmp:
            image.save(tmp, format="PNG", optimize=False, compress_level=3)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def render_png(obj, path: str | os.PathLike, *, views: Sequence[str] | str | None = None,
               size: Sequence[int] | str | None = None, caption: str | None = None,
               um_per_pixel: float | None = None, units: str | None = None,
               decimate: str = "cluster", overwrite: bool = True) -> RenderInfo:
    """Render one mesh (trimesh.Trimesh, units in ``metadata["units"]``) or Skeleton to a PNG.

    ``export --preview`` renders its output this way, to ``<file>.png`` beside it.
    The file is written beside the target and renamed into place.
    """
    image, info = render([obj], views=views, size=size, caption=caption, um_per_pixel=um_per_pixel,
                         units=units, decimate=decimate)
    info.path = _save(image, path, overwrite)
    return info


def render_compare(objects: Sequence, path: str | os.PathLike, *, labels: Sequence[str],
                   views: Sequence[str] | str | None = None, size: Sequence[int] | str | None = None,
                   caption: str | None = None, units: str | None = None, decimate: str = "cluster",
                   overwrite: bool = True) -> RenderInfo:
    """Several meshes side by side at one scale, each panel labelled, to a PNG."""
    image, info = render(objects, views=views, size=size, caption=caption, labels=labels, units=units,
                         decimate=decimate)
    info.path = _save(image, path, overwrite)
    return info


def default_caption(mesh, name: str | None = None) -> str:
    """``<id or file>  lod N  123,456 faces`` from a mesh's provenance metadata."""
    meta = getattr(mesh, "metadata", {}) or {}
    source = meta.get("source")
    file = source.get("file") if isinstance(source, dict) else None  # exports record a URL string
    parts = [name or str(meta.get("root_id") or Path(file or "mesh").name)]
    if meta.get("lod") is not None:
        parts.append(f"lod {meta['lod']}")
    if kind_of(mesh) == SKELETON:
        parts.append(f"{len(mesh.vertices):,} nodes")
    else:
        parts.append(f"{len(mesh.faces):,} faces")
    return "   ".join(parts)


def target_caption(obj, meta: dict, target: str | os.PathLike) -> str:
    """The default caption of a ``look.info.load_target`` result: its id (or file name), lod and
    count, and the datastack and version it came from."""
    name = f"id {meta['root_id']}" if meta.get("root_id") else Path(str(target)).name
    caption = default_caption(obj, name)
    source = meta.get("source") or {}
    if source.get("datastack"):
        caption += f"   {source['datastack']}"
        if source.get("version") is not None:
            caption += f" v{source['version']}"
    return caption


@dataclass
class Preview:
    """What ``preview`` drew, and where the mesh came from: ``--json`` prints both."""

    picture: RenderInfo
    cache: str | None  # a root id's "hit", "miss" or "off"; None for a file

    def summary(self) -> dict[str, Any]:
        return self.picture.summary() | {"cache": self.cache}


def default_png_name(target: str | os.PathLike) -> Path:
    """``<root id>.png`` or ``<file stem>.png``, in the working directory, not beside the file."""
    text = str(target).strip()
    return Path(f"{text if text.isdigit() else Path(target).stem}.png")


def preview(target: str | os.PathLike, out: str | os.PathLike | None = None, *, views: str = "xy",
            size: str = "1200x800", lod: int | None = None, caption: str | None = None, overwrite: bool = False,
            units: str | None = None, **source_options: Any) -> Preview:
    """Render a root id (fetched through the cache) or a mesh or SWC file to ``out``
    [default: :func:`default_png_name`], captioned by :func:`target_caption` unless ``caption``;
    ``units`` declares a file's units when it does not say.

    Arguments are checked, and ``out`` with them, before anything is fetched."""
    parse_views(views), parse_picture_size(size)
    out = default_png_name(target) if out is None else out
    check_target(out, overwrite)
    # The arrays as read or fetched: drawing needs no Trimesh (its import alone is ~0.5 s).
    obj, meta = load_target(target, lod=lod, units=units, arrays=True, **source_options)
    picture = render_png(obj, out, views=views, size=size, caption=caption or target_caption(obj, meta, target),
                         overwrite=overwrite)
    return Preview(picture, meta.get("cache"))
