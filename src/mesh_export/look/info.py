"""Look before exporting: a mesh's or skeleton's figures, and the cache-aware fetch behind them.

``fetch_root`` returns a root id's mesh through the same source -> cache path as
``mesh_export.jobs.export`` (same cache keys, so an ``info`` or ``preview`` warms the cache for
a later export and vice versa). ``info`` describes a root id or a file; ``mesh_info`` and
``skeleton_info`` describe objects already in memory.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mesh_export.errors import CacheMissError, InputError, InvalidArgumentError

SKELETON_SUFFIXES = (".swc", ".nml")


# ---------------------------------------------------------------------------- fetch


def fetch_root(root_id: int | str, *, source: str | None = None, datastack: str | None = None,
               static: bool = False, server: str | None = None, version: int | None = None,
               lod: int | None = None, token: str | None = None,
               cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
               offline: bool = False, allow_missing: bool = False, timeout: float = 120.0,
               progress: bool = False, arrays: bool = False):
    """A root id's mesh (trimesh.Trimesh in nm, provenance in ``metadata``; with ``arrays``,
    the fetched float32/int32 arrays in a ``model.CachedSurface``) and fetch details.

    Returns ``(mesh, meta)``: ``meta`` has ``root_id``, ``lod``, ``lods_available``,
    ``source`` (kind, url, datastack, version, server), ``cache`` ("hit", "miss" or "off"),
    ``fragments``, ``missing_fragments``, ``fetched``.
    """
    from mesh_export.core.parsing import parse_root_id
    from mesh_export.model import CachedSurface
    from mesh_export.retrieve.cached import fetch_cached
    from mesh_export.core.units import set_mesh_units

    root_id = parse_root_id(root_id)
    vertices, faces, fetched_meta, state = fetch_cached(
        root_id, source=source, datastack=datastack, static=static, server=server, version=version,
        lod=lod, token=token, cache_dir=cache_dir, use_cache=use_cache, offline=offline,
        allow_missing=allow_missing, timeout=timeout, progress=progress)
    if arrays:
        mesh = CachedSurface(vertices, faces, {"units": "nm"})
    else:
        import trimesh

        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
        set_mesh_units(mesh, "nm")
    source_meta = dict(fetched_meta.get("source") or {})
    if version is not None:
        source_meta["version"] = version
    meta = {"root_id": str(root_id), **fetched_meta, "source": source_meta, "cache": state}
    mesh.metadata.update({"root_id": str(root_id), "lod": meta.get("lod"), "source": source_meta})
    return mesh, meta


def is_root_id(target: str | os.PathLike) -> bool:
    """A bare positive integer that is not an existing file names a root id."""
    text = str(target).strip()
    return text.isdigit() and not Path(text).exists()


def load_target(target: str | os.PathLike, *, lod: int | None = None, units: str | None = None,
                arrays: bool = False, **source_options: Any):
    """A root id (fetched, cache-aware) or a file (mesh, or SWC skeleton) -> ``(object, meta)``.

    A mesh is a trimesh.Trimesh, or with ``arrays`` a ``model.CachedSurface`` of the arrays
    as fetched or read (float32 stays float32), for figures that need no more."""
    if is_root_id(target):
        return fetch_root(str(target).strip(), lod=lod, arrays=arrays, **source_options)
    path = Path(target)
    if not path.exists():
        raise InputError(f"{target} is neither a root id (a positive integer) nor an existing file")
    if lod is not None:
        raise InvalidArgumentError("--lod applies to root ids, not to files")
    if path.suffix.lower() in SKELETON_SUFFIXES:
        from mesh_export.writers.readers import read_morphology

        skeleton = read_morphology(path)
        if units:
            from mesh_export.core.units import normalize_units

            skeleton.units = normalize_units(units)
        return skeleton, {"file": str(path)}
    if arrays:  # a volume mesh file comes as its volume (a meshio.Mesh), not as its boundary
        from mesh_export.writers.readers import read_any

        return read_any(path, units=units), {"file": str(path)}
    from mesh_export.writers.readers import load

    mesh = load(path, units=units)
    return mesh, {"file": str(path)}


# ---------------------------------------------------------------------------- figures


def _factor(units: str | None, to: str) -> float | None:
    if units is None:
        return None
    from mesh_export.core.units import conversion_factor

    return conversion_factor(units, to)


def _bbox(vertices: np.ndarray, units: str | None) -> dict[str, Any]:
    # Extremes in the array's own type (float32 needs no float64 copy), then in float64.
    from mesh_export.core.mesh_ops import column_extremes

    lo, hi = (extreme.astype(np.float64) for extreme in column_extremes(vertices))
    box: dict[str, Any] = {"units": units, "min": lo.tolist(), "max": hi.tolist(), "size": (hi - lo).tolist()}
    for name in ("nm", "um"):
        factor = _factor(units, name)
        box[name] = None if factor is None else {"min": (lo * factor).tolist(), "max": (hi * factor).tolist(),
                                                 "size": ((hi - lo) * factor).tolist()}
    return box


_FACE_CHUNK = 1 << 16  # faces per chunk of the area and volume sums (temporaries stay in cache)


def _area_volume(vertices: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    """Surface area and signed volume, in float64 with trimesh's formulas (the cross product of
    ``p1 - p0`` and ``p2 - p1``; volume by the divergence theorem), a chunk of faces at a time
    instead of trimesh's (n, 3, 3) float64 triangles and crosses."""
    x, y, z = (np.ascontiguousarray(vertices[:, k], dtype=np.float64) for k in range(3))
    area = volume = 0.0
    for start in range(0, len(faces), _FACE_CHUNK):
        chunk = faces[start : start + _FACE_CHUNK]
        i0, i1, i2 = (np.ascontiguousarray(chunk[:, k]) for k in range(3))
        x0, y0, z0, x1, y1, z1, x2, y2, z2 = (c.take(i) for i in (i0, i1, i2) for c in (x, y, z))
        ux, uy, uz = x1 - x0, y1 - y0, z1 - z0
        wx, wy, wz = x2 - x1, y2 - y1, z2 - z1
        cx = uy * wz - uz * wy
        cy = uz * wx - ux * wz
        cz = ux * wy - uy * wx
        area += float(np.sqrt(cx * cx + cy * cy + cz * cz).sum())
        x0 += x1
        x0 += x2
        x0 *= cx  # not np.dot: BLAS threads cost more than they save on a chunk this size
        volume += float(x0.sum())
    return area / 2.0, volume / 6.0


_KEY_CHUNK = 1 << 20  # sorted edge keys per chunk of the run scan (temporaries stay in cache)
#: Edge keys from which the topology sorts and scans them as two halves on two threads (below,
#: a thread's hand-offs cost more than the halves save).
_TWO_THREAD_KEYS = 1 << 18


def _topology(faces: np.ndarray, vertex_count: int) -> tuple[bool, bool | None, int, np.ndarray]:
    """Watertight (every edge used by exactly two faces), winding consistent (the two the
    opposite way round; None unless watertight), and the connected pieces of the vertex graph
    (count, a label per vertex), as trimesh defines them, from one sort of the edges.

    The sort and the scan of the sorted keys run on two threads, a half each: the keys are
    first partitioned about their median (every key of the lower half no larger than any of
    the upper), so the halves sort apart into one sorted array and each half's edges are a
    run of the graph's rows."""
    if len(faces) == 0:  # every face collapsed when duplicates were merged
        return False, None, vertex_count, np.arange(vertex_count)
    from mesh_export.core.mesh_ops import edge_keys

    keys = edge_keys(faces, directed=True, threads=2)
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    columns = np.empty(len(keys), dtype=np.int32)  # at most one per key; only the pages written are touched
    row_counts = np.zeros(vertex_count, dtype=np.int64)
    lock = threading.Lock()
    if len(keys) < _TWO_THREAD_KEYS:
        half = len(keys)
        keys.sort()  # numpy's vectorised quicksort: timsort is ~5x slower here
        lower_edges, lower_same = _scan(keys, 0, half, first, columns, row_counts, lock)
        upper_edges, upper_same = 0, []
    else:
        half = len(keys) // 2
        keys.partition(half)  # O(n): 0.04 s for 27M keys, where a second sort thread saves 0.1 s
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mesh-export-topology") as pool:
            upper = pool.submit(keys[half:].sort)
            keys[:half].sort()
            upper.result()
            upper = pool.submit(_scan, keys, half, len(keys), first, columns, row_counts, lock)
            lower_edges, lower_same = _scan(keys, 0, half, first, columns, row_counts, lock)
            upper_edges, upper_same = upper.result()
    # the upper half's graph columns, written from ``half``, go on right after the lower half's
    columns[lower_edges:lower_edges + upper_edges] = columns[half:half + upper_edges]
    edge_count = lower_edges + upper_edges
    watertight = bool(len(keys) % 2 == 0 and first[0::2].all() and not first[1::2].any())
    winding = None
    if watertight:
        # Both uses the same way round is inconsistent, except for a degenerate edge (a, a),
        # which trimesh counts as consistent.
        same = keys[np.concatenate(lower_same + upper_same)]
        winding = bool(((same >> 32) == ((same >> 1) & 0x7FFFFFFF)).all())
    del keys, first
    # int32 offsets when they fit: scipy would otherwise copy them down to int32 itself.
    indptr = np.zeros(vertex_count + 1, dtype=np.int32 if edge_count < 2**31 else np.int64)
    np.cumsum(row_counts, out=indptr[1:])
    count, labels = _components(columns[:edge_count], indptr, vertex_count)
    return watertight, winding, count, labels


def _components(columns: np.ndarray, indptr: np.ndarray, vertex_count: int) -> tuple[int, np.ndarray]:
    """The connected pieces of the graph whose row ``i`` holds ``columns[indptr[i]:indptr[i + 1]]``
    (each edge once, either way round): their count and a label per vertex.

    scipy's ``connected_components`` first makes the graph float64 and transposes it, values
    and all: for a 9M-face mesh 216 MB of ones, which a fresh process pays for in page faults.
    The same traversal is run here on the indices alone, the transpose taken with one byte per
    value. Should scipy's internals move, the public function is used instead."""
    try:
        from scipy.sparse._sparsetools import csr_tocsc
        from scipy.sparse.csgraph._traversal import _connected_components_undirected
    except ImportError:
        return _public_components(columns, indptr, vertex_count)
    t_indptr = np.empty(vertex_count + 1, dtype=indptr.dtype)
    t_columns = np.empty(len(columns), dtype=columns.dtype)
    try:
        csr_tocsc(vertex_count, vertex_count, indptr, columns, np.ones(len(columns), dtype=np.int8),
                  t_indptr, t_columns, np.empty(len(columns), dtype=np.int8))
        labels = np.empty(vertex_count, dtype=np.int32)  # the traversal marks them unvisited itself
        count = int(_connected_components_undirected(columns, indptr, t_columns, t_indptr, labels))
    except (TypeError, ValueError):
        return _public_components(columns, indptr, vertex_count)
    if vertex_count and not (labels.min() == 0 and labels.max() == count - 1):  # not what this scipy did
        return _public_components(columns, indptr, vertex_count)
    return count, labels


def _public_components(columns: np.ndarray, indptr: np.ndarray, vertex_count: int) -> tuple[int, np.ndarray]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    graph = csr_matrix((np.ones(len(columns)), columns, indptr), shape=(vertex_count, vertex_count))
    count, labels = connected_components(graph, directed=False, return_labels=True)
    return int(count), labels


def _scan(keys: np.ndarray, begin: int, end: int, first: np.ndarray, columns: np.ndarray, row_counts: np.ndarray,
          lock: threading.Lock) -> tuple[int, list[np.ndarray]]:
    """One pass over sorted ``keys[begin:end]``, a cache-sized chunk at a time: where each edge's
    uses start (``first``), the uses the same way round, and each edge's graph row (its smaller
    vertex, counted in ``row_counts``) and column (the larger, written to ``columns`` from
    ``begin``). Keys of one edge differ at most in the low (direction) bit: an edge starts where
    two neighbours differ above it, and two uses the same way round are equal keys. Returns the
    edges found and the positions of the same-way uses."""
    same_way = []
    edge_count = 0
    for start in range(begin, end, _KEY_CHUNK):
        stop = min(start + _KEY_CHUNK, end)
        after = max(start, 1)
        step = keys[after:stop] ^ keys[after - 1:stop - 1]
        np.greater(step, 1, out=first[after:stop])
        same_way.append(np.flatnonzero(step == 0) + after)
        edges = np.compress(first[start:stop], keys[start:stop])
        edges >>= 1  # the edge, either way round: min << 31 | max
        at = begin + edge_count
        np.bitwise_and(edges, 0x7FFFFFFF, out=columns[at:at + len(edges)], casting="unsafe")
        edge_count += len(edges)
        edges >>= 31
        if len(edges):  # sorted: this chunk's rows are one run of vertices
            counts = np.bincount(edges - edges[0])
            with lock:  # the two halves may share their boundary row
                row_counts[edges[0]:edges[-1] + 1] += counts
    return edge_count, same_way


def _import_components() -> None:
    import scipy.sparse.csgraph  # noqa: F401  (imported ahead, off the critical path)
    import scipy.sparse._sparsetools  # noqa: F401


def _merge(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The mesh with bit-identical vertices merged, or itself when none are (``merged`` 0)."""
    from mesh_export.core.mesh_ops import merge_duplicate_vertices

    unique_v, unique_f, merged = merge_duplicate_vertices(vertices, faces)
    return (unique_v, unique_f, merged) if merged else (vertices, faces, 0)


def mesh_info(mesh, merge: bool = True) -> dict[str, Any]:
    """Counts, bbox, area, volume (closed meshes only), watertightness and pieces of a mesh.

    Bit-identical duplicate vertices (STL stores every triangle's corners apart) are merged
    first, so topology is that of the surface, not of the file layout. The figures are
    trimesh's (``area``, ``volume``, ``is_watertight``, ``is_winding_consistent``, pieces of
    ``edges_sparse``), computed in a few vectorised passes without trimesh's caches.
    """
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if len(vertices) == 0 or len(faces) == 0:
        from mesh_export.errors import InvalidMeshError

        raise InvalidMeshError("the mesh is empty")
    from mesh_export.core.validate import check_surface

    check_surface(mesh)  # the figures index the vertices with the faces
    units = mesh.metadata.get("units")
    # On two cores (numpy releases the GIL): scipy's import (0.2-0.4 s of the critical path when
    # it was taken in turn) and the sums (which need no merge: a face that collapses adds no area
    # or volume) beside the merge and the topology.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_import_components)
        sums = pool.submit(_area_volume, vertices, faces)
        work_vertices, work_faces, merged = _merge(vertices, faces) if merge else (vertices, faces, 0)
        # A piece's faces, counted by the pieces' labels of their first corners.
        faces_by_first_corner = pool.submit(np.bincount, work_faces[:, 0], minlength=len(work_vertices))
        watertight, winding, count, labels = _topology(work_faces, len(work_vertices))
        area, signed_volume = sums.result()
        faces_by_first_corner = faces_by_first_corner.result()
    per_component = np.bincount(labels, weights=faces_by_first_corner, minlength=count).astype(np.int64)
    volume = abs(signed_volume) if watertight else None
    area_factor = _factor(units, "um")
    return {
        **_as_read(mesh),
        "kind": "mesh",
        "units": units,
        "vertices": int(len(vertices)),
        "faces": int(len(faces)),
        "duplicate_vertices_merged": int(merged),
        "bbox": _bbox(vertices, units),
        "surface_area": area,
        "surface_area_um2": None if area_factor is None else area * area_factor**2,
        "volume": volume,
        "volume_um3": None if area_factor is None or volume is None else volume * area_factor**3,
        "watertight": watertight,
        "winding_consistent": winding,
        "components": {"count": int(count),
                       "largest_share": float(per_component.max() / max(len(work_faces), 1)),
                       "largest_faces": int(per_component.max())},
    }


def _as_read(mesh) -> dict[str, Any]:
    """What reading the file skipped, and the per-vertex arrays it carries (colours, uv)."""
    from mesh_export.model import VERTEX_ATTRIBUTES, element_attributes

    found: dict[str, Any] = {}
    skipped = (mesh.metadata.get("read") or {}).get("skipped")
    if skipped:
        found["skipped"] = list(skipped)
    attributes = sorted(element_attributes(mesh, VERTEX_ATTRIBUTES))
    if attributes:
        found["vertex_attributes"] = attributes
    return found


def skeleton_info(skeleton) -> dict[str, Any]:
    """A morphology's figures, counted as NeuroM counts them (its feature names in brackets):
    neurites (``number_of_neurites``: trees leaving the soma), sections (``number_of_sections``:
    unbranched stretches of neurite, split where a point has several children or the type
    changes), branch points (``number_of_forking_points``: neurite points with two or more
    children; the soma is not one), tips (``number_of_leaves``), total length
    (``total_length``: neurite cable, without the edges from a soma point to a neurite's first
    point) and soma radius (``soma_radius``: one point's radius; NeuroMorpho's three points:
    sqrt(2 pi r h / 4 pi); several points: the sphere with the area of the frustums between
    consecutive soma points in file order). ``cable_length`` is every edge, those included."""
    from mesh_export.model import SOMA

    parents, types = skeleton.parents, skeleton.types
    n = len(skeleton)
    is_soma = types == SOMA
    has_parent = parents >= 0
    parent = np.maximum(parents, 0)
    neurite = ~is_soma
    first = neurite & (~has_parent | is_soma[parent])
    neurite_children = np.bincount(parents[neurite & has_parent], minlength=n)
    forks = neurite & (neurite_children >= 2)
    leaves = neurite & (neurite_children == 0)
    # A section starts at a neurite's first point, at each child of a fork and where the type changes.
    starts = first | (neurite & has_parent & ~first & (forks[parent] | (types[parent] != types)))
    soma = np.flatnonzero(is_soma)
    roots = np.flatnonzero(~has_parent)
    return {
        "kind": "skeleton",
        "units": skeleton.units,
        "nodes": int(n),
        "roots": int(len(roots)),
        "neurites": int(first.sum()),
        "sections": int(starts.sum()),
        "branch_points": int(forks.sum()),
        "tips": int(leaves.sum()),
        "total_length": skeleton.neurite_length(),
        "cable_length": skeleton.total_length(),
        "soma_radius": _neurom_soma_radius(skeleton, soma) if len(soma) else None,
        "soma_nodes": int(len(soma)),
        "repairs": list((skeleton.metadata or {}).get("repairs", [])),
        "bbox": _bbox(skeleton.nodes, skeleton.units),
    }


def volume_info(mesh) -> dict[str, Any]:
    """A volume mesh's figures: points, cells by type (quadratic ones counted under their own
    names), total volume (cells by their corners), bbox, boundary faces, and the surface, line
    and point cells the file also held (left aside)."""
    from mesh_export.core.cells import VOLUME_CELLS, boundary, volume_figures

    figures = volume_figures(mesh)
    metadata = getattr(mesh, "metadata", None) or {}
    units = metadata.get("units")
    points = np.asarray(mesh.points)
    if not figures["elements"]:
        from mesh_export.errors import InvalidMeshError

        raise InvalidMeshError("the volume mesh has no cells")
    linear = [(b.type, np.asarray(b.data)) for b in mesh.cells if b.type in VOLUME_CELLS]
    factor = _factor(units, "um")
    return {
        "kind": "volume",
        "units": units,
        "points": int(len(points)),
        "cells": figures["cells"],
        "elements": figures["elements"],
        "volume": figures["volume"],
        "volume_um3": None if factor is None else figures["volume"] * factor**3,
        "boundary_faces": int(len(boundary(points, linear))) if len(linear) == len(mesh.cells) else None,
        "dropped_cells": dict(metadata.get("dropped_cells") or {}),
        "bbox": _bbox(points, units),
    }


def _neurom_soma_radius(skeleton, soma: np.ndarray) -> float:
    """NeuroM's soma radius of an SWC soma (MorphIO's soma types for SWC)."""
    r = skeleton.radii[soma]
    if len(soma) == 1:
        return float(r[0])
    points = skeleton.nodes[soma]
    if len(soma) == 3 and (r == r[0]).all():
        root = int(np.flatnonzero(skeleton.parents[soma] < 0)[0]) if (skeleton.parents[soma] < 0).any() else 0
        others = [k for k in range(3) if k != root]
        # MorphIO's NeuroMorpho three-point soma: both ends one radius from the centre.
        ends = np.linalg.norm(points[others] - points[root], axis=1)
        if root == 0 and np.allclose(ends, r[0], rtol=1e-3):
            h = float(np.linalg.norm(points[others[0]] - points[others[1]]))
            return float(np.sqrt(2 * np.pi * r[0] * h / (4 * np.pi)))
    length = np.linalg.norm(np.diff(points, axis=0), axis=1)
    area = float(np.sum(np.pi * (r[1:] + r[:-1]) * np.sqrt(length**2 + (r[1:] - r[:-1]) ** 2)))
    return float(np.sqrt(area / (4 * np.pi)))


def info(target: str | os.PathLike, *, lod: int | None = None, list_lods: bool = True,
         units: str | None = None, **source_options: Any) -> dict[str, Any]:
    """Everything ``mesh-export info`` prints, as a dict (JSON-ready)."""
    from mesh_export.model import SKELETON, VOLUME, kind_of

    obj, meta = load_target(target, lod=lod, units=units, arrays=True, **source_options)
    kind = kind_of(obj)
    if kind in (SKELETON, VOLUME):
        result = skeleton_info(obj) if kind == SKELETON else volume_info(obj)
        result["file"] = meta.get("file")
        return result
    result = mesh_info(obj, merge="file" in meta)  # fetched meshes are merged already
    if obj.metadata.get("dropped_cells"):
        result["dropped_cells"] = dict(obj.metadata["dropped_cells"])
    if "file" in meta:
        result["file"] = meta["file"]
        return result
    source = meta.get("source") or {}
    result.update({
        "root_id": meta["root_id"],
        "lod": meta.get("lod"),
        "source": {k: source.get(k) for k in ("kind", "url", "datastack", "server")},
        "version": source.get("version"),
        "cache": meta.get("cache"),
        "fetched": meta.get("fetched"),
        "fragments": meta.get("fragments"),
        "missing_fragments": len(meta.get("missing_fragments") or []),
    })
    result["lods"] = _lods(meta, len(obj.faces), list_lods, source_options)
    return result


def _lods(meta: dict, faces: int, list_lods: bool, source_options: dict) -> list[dict[str, Any]]:
    """Every lod of the root id with its face count (each fetched through the cache)."""
    levels = meta.get("lods_available")
    current = meta.get("lod")
    if not levels:
        return [{"lod": current if current is not None else 0, "faces": faces}]
    rows = []
    for level in range(int(levels)):
        if level == current:
            rows.append({"lod": level, "faces": faces})
            continue
        if not list_lods:
            rows.append({"lod": level, "faces": None})
            continue
        try:
            mesh, _ = fetch_root(meta["root_id"], lod=level, **source_options)
            rows.append({"lod": level, "faces": int(len(mesh.faces))})
        except CacheMissError:
            rows.append({"lod": level, "faces": None})  # --offline and not cached
    return rows


def format_info(result: dict[str, Any]) -> str:
    """The human-readable ``mesh-export info`` text."""
    lines = []

    def row(name: str, value: Any) -> None:
        lines.append(f"{name:<14}{value}")

    def box_text(box: dict) -> list[str]:
        out = []
        for name in ("nm", "um"):
            if box.get(name):
                size = " x ".join(f"{v:,.3f}".rstrip("0").rstrip(".") for v in box[name]["size"])
                lo = ", ".join(f"{v:,.1f}" for v in box[name]["min"])
                out.append(f"{size} {name}  (min {lo})")
        if not out:
            size = " x ".join(f"{v:,.3f}" for v in box["size"])
            out.append(f"{size} (units unknown)")
        return out

    if result.get("root_id"):
        row("root id", result["root_id"])
    if result.get("file"):
        row("file", result["file"])
    if result["kind"] == "skeleton":
        u = result["units"] or "units"
        row("nodes", f"{result['nodes']:,}  ({result['soma_nodes']} in the soma)")
        row("neurites", f"{result['neurites']:,}  (trees leaving the soma)")
        row("sections", f"{result['sections']:,}  (unbranched neurite stretches, as NeuroM counts them)")
        row("branch points", f"{result['branch_points']:,}  (neurite points with 2+ children; not the soma)")
        row("tips", f"{result['tips']:,}")
        row("total length", f"{result['total_length']:,.1f} {u}  (neurites, without the soma-to-neurite edges, "
                            f"as NeuroM; every edge: {result['cable_length']:,.1f} {u})")
        row("soma radius", "none marked (no type-1 nodes)" if result["soma_radius"] is None
            else f"{result['soma_radius']:,.2f} {u}  (as NeuroM: "
                 + ("the point's radius)" if result["soma_nodes"] == 1 else
                    "the sphere with the soma points' surface)"))
        for repair in result.get("repairs", []):
            row("repaired", repair)
        for i, text in enumerate(box_text(result["bbox"])):
            row("bbox" if i == 0 else "", text)
        return "\n".join(lines)
    if result["kind"] == "volume":
        row("points", f"{result['points']:,}")
        row("cells", ", ".join(f"{count:,} {name}" for name, count in result["cells"].items()))
        for i, text in enumerate(box_text(result["bbox"])):
            row("bbox" if i == 0 else "", text)
        row("volume", f"{result['volume_um3']:,.3f} um^3" if result["volume_um3"] is not None
            else f"{result['volume']:,.4g} (units unknown)^3")
        if result["boundary_faces"] is not None:
            row("boundary", f"{result['boundary_faces']:,} triangles")
        _dropped_row(row, result)
        return "\n".join(lines)
    row("vertices", f"{result['vertices']:,}")
    row("faces", f"{result['faces']:,}")
    for i, text in enumerate(box_text(result["bbox"])):
        row("bbox" if i == 0 else "", text)
    if result["surface_area_um2"] is not None:
        row("surface area", f"{result['surface_area_um2']:,.2f} um^2")
    else:
        row("surface area", f"{result['surface_area']:,.4g} (units unknown)^2")
    if result["watertight"]:
        volume = (f"{result['volume_um3']:,.3f} um^3" if result["volume_um3"] is not None
                  else f"{result['volume']:,.4g} (units unknown)^3")
        row("volume", volume + ("" if result["winding_consistent"] else "  (inconsistent winding)"))
    else:
        row("volume", "n/a (not closed)")
    row("watertight", "yes" if result["watertight"] else "no")
    comp = result["components"]
    row("components", f"{comp['count']:,} (largest {100 * comp['largest_share']:.1f}% of faces)")
    _dropped_row(row, result)
    if result.get("vertex_attributes"):
        row("per vertex", ", ".join(result["vertex_attributes"]))
    for skipped in result.get("skipped", []):
        row("skipped", skipped)
    if result.get("root_id"):
        if result.get("lods"):
            row("lods", "  ".join(f"{r['lod']}{'*' if r['lod'] == result['lod'] else ''}: "
                                  + (f"{r['faces']:,}" if r["faces"] is not None else "not cached")
                                  for r in result["lods"]))
        src = result["source"]
        where = src.get("url") or "?"
        if src.get("datastack"):
            where = f"{src['datastack']} ({where})"
        row("source", where)
        row("version", result.get("version") if result.get("version") is not None else "live (not pinned)")
        row("cache", result.get("cache"))
        if result.get("missing_fragments"):
            row("incomplete", f"{result['missing_fragments']} fragments missing")
    return "\n".join(lines)


def _dropped_row(row, result: dict[str, Any]) -> None:
    if result.get("dropped_cells"):
        row("not read", ", ".join(f"{count:,} {name.replace('_', ' ')} cells"
                                  for name, count in sorted(result["dropped_cells"].items())))


# ---------------------------------------------------------------------------- compare


def _surface_points(mesh, count: int, seed: int) -> np.ndarray:
    import trimesh

    sampled, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.concatenate([np.asarray(mesh.vertices, dtype=np.float64), sampled])


def _directed_hausdorff(points: np.ndarray, target, target_points: np.ndarray) -> float:
    """max over ``points`` of the exact distance to the surface of ``target``.

    Distances to the nearest of ``target_points`` (which lie on the target surface) are
    upper bounds; the largest bounds are refined to exact point-to-triangle distances
    until the best exact value beats every remaining bound (branch and bound).
    """
    from scipy.sparse import csr_matrix
    from scipy.spatial import cKDTree
    from trimesh.triangles import closest_point

    bound, _ = cKDTree(target_points).query(points)
    faces = np.asarray(target.faces)
    vertices = np.asarray(target.vertices, dtype=np.float64)
    tri = vertices[faces]
    edge = float(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max())
    incidence = csr_matrix((np.ones(faces.size, dtype=np.int8),
                            (faces.ravel(), np.repeat(np.arange(len(faces)), 3))),
                           shape=(len(vertices), len(faces)))
    vertex_tree = cKDTree(vertices)
    order = np.argsort(-bound)
    best = 0.0
    batch_size = 256
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        batch = batch[bound[batch] > best]
        if len(batch) == 0:
            break
        # Every (point, triangle) pair that could beat the point's bound, refined at once.
        near = vertex_tree.query_ball_point(points[batch], bound[batch] + edge)
        rows = np.repeat(np.arange(len(batch)), [len(n) for n in near])
        pairs = incidence[np.concatenate([np.asarray(n, dtype=np.int64) for n in near])]
        point_of_pair = np.repeat(rows, np.diff(pairs.indptr))
        face_of_pair = pairs.indices
        keys = np.unique(point_of_pair.astype(np.int64) * len(faces) + face_of_pair)
        point_of_pair, face_of_pair = keys // len(faces), keys % len(faces)
        found = closest_point(tri[face_of_pair], points[batch][point_of_pair])
        distance = np.linalg.norm(found - points[batch][point_of_pair], axis=1)
        exact = bound[batch].copy()
        np.minimum.at(exact, point_of_pair, distance)
        best = max(best, float(exact.max()))
    return best


def hausdorff(a, b, samples: int = 200_000, seed: int = 0) -> dict[str, float]:
    """Symmetric Hausdorff distance between two surfaces (in their units).

    Each side is represented by its vertices plus ``samples`` points spread evenly over
    its area; their distances to the other surface are exact, so the result is a lower
    bound that misses at most the sampling spacing.
    """
    pa = _surface_points(a, samples, seed)
    pb = _surface_points(b, samples, seed + 1)
    ab = _directed_hausdorff(pa, b, pb)
    ba = _directed_hausdorff(pb, a, pa)
    return {"hausdorff": max(ab, ba), "a_to_b": ab, "b_to_a": ba}
