"""The ``--repair`` step as it was before issue 26 (trimesh's float64 merge / degenerate / duplicate
passes, then process/repair.py's passes at commit 1b0fa84), kept verbatim as the reference the
lean implementation must reproduce exactly: same vertices, same faces, same counts."""

from __future__ import annotations

import numpy as np

def _directed_edges(faces: np.ndarray) -> np.ndarray:
    return faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)


def _manifold_pairs(faces: np.ndarray, n_vertices: int):
    """The face pairs across every edge used by exactly two faces, and whether the two faces
    run that edge the same way (their windings disagree)."""
    edges = _directed_edges(faces).astype(np.int64)
    lo, hi = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    keys = lo * np.int64(n_vertices) + hi
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    counts = np.diff(np.r_[starts, len(sorted_keys)])
    twice = starts[counts == 2]
    first, second = order[twice], order[twice + 1]
    same_direction = edges[first, 0] == edges[second, 0]
    return first // 3, second // 3, same_direction


def face_components(faces: np.ndarray, n_vertices: int) -> tuple[int, np.ndarray]:
    """Faces joined across manifold edges (trimesh's face-adjacency bodies): (count, labels)."""
    a, b, _ = _manifold_pairs(faces, n_vertices)
    return _components(a, b, len(faces))


def _components(a: np.ndarray, b: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)


def orient_faces(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, int]:
    """Faces rewound so that neighbours across manifold edges agree; one root face per
    connected body keeps its winding. Returns (faces, number of faces flipped)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    n = len(faces)
    if n == 0:
        return faces, 0
    a, b, same = _manifold_pairs(faces, n_vertices)
    adjacency = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(adjacency, directed=False)
    # One traversal for every body: a virtual root joined to the first face of each body.
    roots = np.unique(labels, return_index=True)[1]
    rows = np.concatenate([a, b, np.full(len(roots), n)])
    cols = np.concatenate([b, a, roots])
    tree = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n + 1, n + 1)).tocsr()
    _, parent = breadth_first_order(tree, n, directed=True, return_predecessors=True)
    parent = parent[:n].astype(np.int64)
    parent[parent == n] = -1  # the bodies' roots

    # Disagreement with the parent, looked up among the pairs by (child, parent) key.
    pair_keys = np.concatenate([a * np.int64(n) + b, b * np.int64(n) + a])
    pair_same = np.concatenate([same, same])
    order = np.argsort(pair_keys)
    pair_keys, pair_same = pair_keys[order], pair_same[order]
    child = np.flatnonzero(parent >= 0)
    where = np.searchsorted(pair_keys, child * np.int64(n) + parent[child])
    parity = np.zeros(n, dtype=bool)
    parity[child] = pair_same[where]

    # Flip parity to the root = XOR along the tree path, by pointer jumping (log2(depth) passes).
    # Invariant: parity[i] = P(i) xor P(up[i]); a root's P is 0 and its up is itself.
    up = np.where(parent >= 0, parent, np.arange(n))
    while (up != up[up]).any():
        parity ^= parity[up]
        up = up[up]
    flipped = int(parity.sum())
    if flipped:
        faces = faces.copy()
        faces[parity] = faces[parity][:, ::-1]
    return faces, flipped


def fill_small_holes(faces: np.ndarray) -> tuple[np.ndarray, int]:
    """Close every boundary loop of 3 or 4 edges (trimesh's `fill_holes` without a fan), each
    new face wound against the boundary so that it agrees with its neighbours.
    Returns (faces, number of faces added)."""
    edges = _directed_edges(faces).astype(np.int64)
    if len(edges) == 0:
        return faces, 0
    n = int(edges.max()) + 1
    keys = np.minimum(edges[:, 0], edges[:, 1]) * n + np.maximum(edges[:, 0], edges[:, 1])
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    boundary = edges[counts[inverse] == 1]
    if len(boundary) < 3:
        return faces, 0
    # A loop is followed only through vertices with one boundary edge out and one in.
    outs = np.bincount(boundary[:, 0], minlength=n)
    ins = np.bincount(boundary[:, 1], minlength=n)
    simple = boundary[(outs[boundary[:, 0]] == 1) & (ins[boundary[:, 0]] == 1)]
    following = np.full(n, -1, dtype=np.int64)
    following[simple[:, 0]] = simple[:, 1]

    def step(v):
        return np.where(v >= 0, following[np.maximum(v, 0)], -1)

    start = simple[:, 0]
    v1 = following[start]
    v2, v3 = step(v1), step(step(v1))
    v4 = step(v3)
    new_faces = []
    # Each loop once: started from its smallest vertex.
    tri = (v3 == start) & (start < v1) & (start < v2)
    new_faces.append(np.column_stack([start[tri], v2[tri], v1[tri]]))
    quad = (v4 == start) & (v2 != start) & (start < v1) & (start < v2) & (start < v3)
    s, q1, q2, q3 = start[quad], v1[quad], v2[quad], v3[quad]
    new_faces.append(np.column_stack([s, q3, q2]))
    new_faces.append(np.column_stack([s, q2, q1]))
    added = np.concatenate(new_faces).astype(faces.dtype)
    if len(added) == 0:
        return faces, 0
    return np.concatenate([faces, added]), len(added)


def turn_bodies_outwards(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, int]:
    """Flip every closed, consistently wound body whose signed volume is negative (trimesh's
    rule: an open or mis-wound body is left alone, flipping it could only make it worse).
    Returns (faces, number of bodies flipped)."""
    n_vertices = len(vertices)
    if len(faces) == 0:
        return faces, 0
    # One edge sort for the pairs serves both the bodies and their winding check.
    a, b, same = _manifold_pairs(faces, n_vertices)
    count, labels = _components(a, b, len(faces))
    del b
    edges = _directed_edges(faces).astype(np.int64)
    keys = np.minimum(edges[:, 0], edges[:, 1]) * n_vertices + np.maximum(edges[:, 0], edges[:, 1])
    _, inverse, uses = np.unique(keys, return_inverse=True, return_counts=True)
    del keys, edges
    # Closed: every edge of the body is shared by exactly two faces (which are then in the body).
    open_body = np.bincount(labels[np.flatnonzero(uses[inverse] != 2) // 3], minlength=count) > 0
    del inverse, uses
    mis_wound = np.bincount(labels[a[same]], minlength=count) > 0
    closed = ~open_body & ~mis_wound & (np.bincount(labels, minlength=count) >= 4)
    if not closed.any():
        return faces, 0

    # Signed volume per body (x6), in float64 about one centre, a million faces at a time.
    centre = vertices.mean(axis=0, dtype=np.float64)
    volume = np.zeros(count)
    for lo in range(0, len(faces), 1 << 20):
        tri = vertices[faces[lo:lo + (1 << 20)]].astype(np.float64) - centre
        det = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
        volume += np.bincount(labels[lo:lo + (1 << 20)], det, minlength=count)
    inverted = closed & (volume < 0)
    if not inverted.any():
        return faces, 0
    flip = inverted[labels]
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces, int(inverted.sum())


def reference_repair(vertices, faces):
    """``steps.repair`` before issue 26, on arrays: (vertices float64, faces int64, counts)."""
    import trimesh

    work = trimesh.Trimesh(np.array(vertices, dtype=np.float64), np.array(faces), process=False)
    counts = {"vertices_before": len(work.vertices), "faces_before": len(work.faces)}
    work.merge_vertices()
    counts["vertices_merged"] = counts["vertices_before"] - len(work.vertices)
    keep = work.nondegenerate_faces()
    counts["degenerate_faces_removed"] = int((~keep).sum())
    work.update_faces(keep)
    unique = work.unique_faces()
    counts["duplicate_faces_removed"] = int(len(work.faces) - unique.sum())
    work.update_faces(unique)
    before = len(work.vertices)
    work.remove_unreferenced_vertices()
    counts["unreferenced_vertices_removed"] = before - len(work.vertices)
    faces, counts["faces_flipped"] = orient_faces(np.asarray(work.faces), len(work.vertices))
    faces, counts["hole_faces_added"] = fill_small_holes(faces)
    faces, counts["bodies_turned_outwards"] = turn_bodies_outwards(np.asarray(work.vertices), faces)
    work = trimesh.Trimesh(work.vertices, faces, process=False)
    counts.update(vertices_after=len(work.vertices), faces_after=len(work.faces),
                  watertight=bool(work.is_watertight))
    return np.asarray(work.vertices), np.asarray(work.faces), counts
