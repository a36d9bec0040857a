"""``--repair`` at 10M faces in seconds: trimesh's rules on float32/int32 arrays and one edge sort.

The rules are those ``steps.repair`` has always applied, trimesh's: vertices equal to 8 decimals
merged (first seen kept), faces with a side under 1e-8 dropped, then duplicate faces and
unreferenced vertices; a face flipped to agree with its neighbour across a manifold edge (one
shared by exactly two faces), each body's first face keeping its winding; loops of 3 and 4
boundary edges closed; a body turned outwards only if it is closed and consistently wound.

What made the previous implementation slow at 9M faces (70 s, 4.1 GB) was not the rules but the
passes: trimesh's merge, degenerate and duplicate tests on float64 (n, 3, 3) copies, and four
separate sorts of the 27M edges (the manifold pairs twice, the boundary, ``is_watertight``). Here
the edges are sorted once; the boundary, the manifold pairs, the bodies, the open edges and
watertightness are all read off that one sorted array, and the few hole faces change them only
in the runs their edges land in. The traversal's graph carries each pair's disagreement, so a
face's flip is read from its own row instead of looked up in a second sort.
"""

from __future__ import annotations

import numpy as np

from mesh_export.core.mesh_ops import edge_keys, first_equal_rows

__all__ = ["repair_surface", "orient_faces"]

#: trimesh's ``tol.merge``: coordinates equal to this many decimals are one vertex; a face whose
#: oriented box has a side no longer than 10**-digits is degenerate.
_MERGE_DIGITS = 8
_MERGE = 1e-8
_CHUNK = 1 << 16  # faces (or vertices) per chunk of a float64 pass: temporaries stay in cache
_VOLUME_CHUNK = 1 << 20  # the body volumes are summed in these chunks (their rounding is part of the rule)


def _index_type(count: int):
    return np.int32 if count < 2**31 else np.int64


# ----------------------------------------------------------------------- clean-up


def _merge_keys(vertices: np.ndarray) -> np.ndarray:
    """Rows equal exactly when trimesh merges the vertices: ``round(x * 1e8)`` as int64. float32
    coordinates of 0 or of magnitude 0.125 to 9e10 round to different integers exactly when they
    differ (their spacing is at least 1.5e-8), so there the values themselves serve (-0.0 made 0.0)."""
    if vertices.dtype == np.float32:
        magnitude = np.abs(vertices)
        if bool(((magnitude >= 0.125) | (magnitude == 0)).all() and magnitude.max() < 9e10):
            return vertices + np.float32(0.0)
    rounded = np.empty((len(vertices), 3), dtype=np.int64)
    for start in range(0, len(vertices), _CHUNK):
        part = vertices[start : start + _CHUNK].astype(np.float64)
        part *= 10**_MERGE_DIGITS
        rounded[start : start + len(part)] = part.round()
    return rounded


def _merge_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """trimesh's ``merge_vertices``: referenced vertices whose coordinates round to the same
    ``round(x * 1e8)`` are one, the first seen kept, in first-seen order; unreferenced vertices go."""
    index = _index_type(len(vertices))
    if len(faces):
        referenced = np.zeros(len(vertices), dtype=bool)
        referenced[faces.ravel()] = True
        used = np.flatnonzero(referenced).astype(index)
    else:
        used = np.arange(len(vertices), dtype=index)
    if not len(used):
        return vertices[used], faces
    representative = first_equal_rows(_merge_keys(vertices[used]))
    first = representative == np.arange(len(used), dtype=representative.dtype)
    new_index = np.cumsum(first, dtype=index)
    new_index -= 1
    inverse = np.zeros(len(vertices), dtype=index)
    inverse[used] = new_index[representative]
    return vertices[used[first]], inverse[faces]


def _nondegenerate(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """trimesh's ``nondegenerate_faces``: both sides of each face's oriented bounding box
    longer than 1e-8, decided as its float64 operations decide (the faces float32 arithmetic
    cannot vouch for are computed its way), a chunk of faces at a time."""
    keep = np.empty(len(faces), dtype=bool)
    # float32 vouches for a face when its sine is not tiny (then the cross product is accurate
    # to 0.2%) and both heights and sides exceed twice the limit; coordinates under 1e9 keep
    # every square finite.
    quick = vertices.dtype == np.float32 and len(vertices) and float(np.abs(vertices).max()) < 1e9
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, len(faces), _CHUNK):
            chunk = faces[start : start + _CHUNK]
            out = keep[start : start + len(chunk)]
            if quick:
                tri = vertices[chunk]
                d1, d2, d3 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 1], tri[:, 2] - tri[:, 0]
                cross = np.cross(d1, d2)
                c2, n1, n2, n3 = ((x * x).sum(axis=1) for x in (cross, d1, d2, d3))
                limit = np.float32(4 * _MERGE**2)
                sure = (c2 >= np.float32(2.0**-20) * n1 * n2) & (n1 > limit) & (n3 > limit)
                sure &= (c2 > limit * n1) & (c2 > limit * n3)
                out[:] = sure
                unsure = np.flatnonzero(~sure)
                if len(unsure):
                    out[unsure] = _nondegenerate_float64(vertices, chunk[unsure])
            else:
                out[:] = _nondegenerate_float64(vertices, chunk)
    return keep


def _nondegenerate_float64(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """trimesh's test itself: its float64 operations in its order."""
    tri = vertices[faces].astype(np.float64)
    vectors = tri[:, 1:, :] - tri[:, :2, :]
    double_area = np.sqrt((np.cross(vectors[:, 0], vectors[:, 1]) ** 2).sum(axis=1)) / 2.0 * 2
    ok = np.ones(len(tri), dtype=bool)
    for side in (tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]):
        length = (side**2).sum(axis=1) ** 0.5
        ok &= (length > _MERGE) & (double_area / length > _MERGE)
    return ok


def _first_of_each_face(faces: np.ndarray) -> np.ndarray:
    """trimesh's ``unique_faces``: the first face of each set of three vertices."""
    a, b, c = (faces[:, k] for k in range(3))
    rows = np.empty((len(faces), 3), dtype=faces.dtype)
    np.minimum(np.minimum(a, b), c, out=rows[:, 0])
    np.maximum(np.maximum(a, b), c, out=rows[:, 2])
    np.subtract(a + b + c - rows[:, 0], rows[:, 2], out=rows[:, 1])
    del a, b, c
    representative = first_equal_rows(rows)
    return representative == np.arange(len(faces), dtype=representative.dtype)


# ------------------------------------------------------------------ the edge sort


class _SortedEdges:
    """Every face's three edges sorted by their vertices: ``keys`` (min << 31 | max), the
    ``face`` each comes from and whether it runs from the larger vertex (``backward``); uses
    of one edge are neighbours, a run of 1 is a boundary edge, a run of 2 a manifold edge."""

    def __init__(self, keys: np.ndarray, face: np.ndarray, backward: np.ndarray):
        self.keys, self.face, self.backward = keys, face, backward
        different = np.empty(len(keys), dtype=bool)
        different[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=different[1:])
        self.starts = np.flatnonzero(different)
        self.lengths = np.diff(np.append(self.starts, len(keys)))

    @classmethod
    def of(cls, faces: np.ndarray) -> tuple["_SortedEdges", np.ndarray]:
        """The sorted edges and the boundary edges' positions ``(face, k)`` (edge k of a face
        runs from corner k to corner k + 1), in face order."""
        count = len(faces)
        keys = edge_keys(faces, directed=True)
        # Not stable: the order within a run does not matter (pairs are taken lower face first,
        # the boundary is put in face order below), and introsort beats timsort here.
        order = np.argsort(keys)
        keys = keys[order]
        backward = (keys & 1).astype(bool)
        keys >>= 1
        face = order.astype(_index_type(3 * count))
        face %= count
        edges = cls(keys, face.astype(_index_type(count), copy=False), backward)
        boundary = order[edges.starts[edges.lengths == 1]]
        del order
        face, k = boundary % count, boundary // count
        by_face = np.lexsort((k, face))
        return edges, np.column_stack([face[by_face], k[by_face]])

    def manifold_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The faces on either side of every manifold edge (the lower-numbered first, pairs in
        edge order) and whether both run the edge the same way (their windings disagree)."""
        first = self.starts[self.lengths == 2]
        one, other = self.face[first], self.face[first + 1]
        same = self.backward[first] == self.backward[first + 1]
        return np.minimum(one, other), np.maximum(one, other), same

    def run_keys(self) -> np.ndarray:
        return self.keys[self.starts]


# ----------------------------------------------------------------------- winding


def _components(a: np.ndarray, b: np.ndarray, n: int) -> tuple[int, np.ndarray]:
    """Bodies: faces joined by the pairs ``(a, b)``. One direction of each pair is enough (scipy
    adds the transpose itself for an undirected graph)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)


def _body_roots(labels: np.ndarray, count: int) -> np.ndarray:
    """The first face of each body, in label order."""
    seen = np.maximum.accumulate(labels)
    roots = np.flatnonzero(np.r_[True, seen[1:] > seen[:-1]])
    if len(roots) != count:  # scipy numbered the bodies in another order than their first faces
        roots = np.unique(labels, return_index=True)[1]
    return roots


def _orient(faces: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray,
            bodies: tuple[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Faces rewound so that neighbours across manifold edges (the pairs ``a``, ``b``; ``same``:
    both run the edge the same way) agree: a breadth-first traversal of every body from its
    first face (which keeps its winding), each face's flip the parity of disagreements along
    its path. Returns (faces, which were flipped)."""
    from scipy.sparse import coo_matrix, csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    n = len(faces)
    roots = _body_roots(bodies[1], bodies[0])
    # Both directions of every pair, carrying 1 + whether the two faces disagree. The rows come
    # out sorted (csr's canonical form), so the traversal is the same whatever the pairs' order.
    disagree = same.astype(np.int8) + np.int8(1)
    graph = coo_matrix((np.concatenate([disagree, disagree]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                       shape=(n, n)).tocsr()
    del disagree
    # One traversal for every body: a virtual root n joined to each body's first face.
    indptr = np.append(graph.indptr, graph.indptr[-1] + len(roots))
    tree = csr_matrix((np.append(graph.data, np.ones(len(roots), dtype=np.int8)),
                       np.concatenate([graph.indices, roots.astype(graph.indices.dtype)]), indptr),
                      shape=(n + 1, n + 1))
    _, parent = breadth_first_order(tree, n, directed=True, return_predecessors=True)
    del tree
    index = _index_type(n + 1)
    parent = parent[:n].astype(index)
    root = parent == n
    # Each face's disagreement with its parent: the parent is one of its (at most three)
    # manifold neighbours, found in its row of the graph.
    parity = np.zeros(n, dtype=bool)
    row_start, row_length = graph.indptr[:-1], np.diff(graph.indptr)
    for k in range(3):
        at = np.flatnonzero((row_length > k) & ~root)
        at = at[graph.indices[row_start[at] + k] == parent[at]]
        parity[at] = graph.data[row_start[at] + k] == 2
    del graph, row_start, row_length
    # Flip parity to the root = XOR along the tree path, by pointer jumping (log2(depth) passes).
    # Invariant: parity[i] = P(i) xor P(up[i]); a root's P is 0 and its up is itself.
    up = np.where(root, np.arange(n, dtype=index), parent)
    del parent, root
    while True:
        further = up[up]
        if np.array_equal(further, up):
            break
        parity ^= parity[up]
        up = further
    if parity.any():
        faces = faces.copy()
        faces[parity] = faces[parity][:, ::-1]
    return faces, parity


def orient_faces(faces: np.ndarray) -> tuple[np.ndarray, int]:
    """Faces (no two with the same three vertices: repair drops duplicates first) rewound so
    that neighbours across manifold edges agree; each body's first face keeps its winding.
    Returns (faces, number of faces flipped)."""
    if len(faces) == 0:
        return faces, 0
    a, b, same = _SortedEdges.of(faces)[0].manifold_pairs()
    faces, flipped = _orient(faces, a, b, same, _components(a, b, len(faces)))
    return faces, int(flipped.sum())


# ------------------------------------------------------------------ holes, bodies


def _small_hole_faces(faces: np.ndarray, boundary_at: np.ndarray, flipped: np.ndarray,
                      n_vertices: int) -> np.ndarray:
    """Faces closing every boundary loop of 3 or 4 edges (trimesh's ``fill_holes`` without a
    fan), each wound against the boundary so that it agrees with its neighbours. ``boundary_at``:
    the boundary edges' (face, k) before the faces marked in ``flipped`` were reversed."""
    if len(boundary_at) < 3:
        return np.empty((0, 3), dtype=faces.dtype)
    face, k = boundary_at[:, 0], boundary_at[:, 1]
    # Reversing (a, b, c) to (c, b, a) makes edge 0 (a, b) its edge 1 and edge 1 its edge 0.
    k = np.where(flipped[face], np.array([1, 0, 2])[k], k)
    # The boundary as the oriented faces run it, in face order then corner order.
    by_face = np.lexsort((k, face))
    face, k = face[by_face], k[by_face]
    boundary = np.column_stack([faces[face, k], faces[face, (k + 1) % 3]]).astype(np.int64)
    # A loop is followed only through vertices with one boundary edge out and one in.
    outs = np.bincount(boundary[:, 0], minlength=n_vertices)
    ins = np.bincount(boundary[:, 1], minlength=n_vertices)
    simple = boundary[(outs[boundary[:, 0]] == 1) & (ins[boundary[:, 0]] == 1)]
    following = np.full(n_vertices, -1, dtype=np.int64)
    following[simple[:, 0]] = simple[:, 1]

    def step(v):
        return np.where(v >= 0, following[np.maximum(v, 0)], -1)

    start = simple[:, 0]
    v1 = following[start]
    v2, v3 = step(v1), step(step(v1))
    v4 = step(v3)
    # Each loop once: started from its smallest vertex.
    tri = (v3 == start) & (start < v1) & (start < v2)
    quad = (v4 == start) & (v2 != start) & (start < v1) & (start < v2) & (start < v3)
    s, q1, q2, q3 = start[quad], v1[quad], v2[quad], v3[quad]
    return np.concatenate([np.column_stack([start[tri], v2[tri], v1[tri]]), np.column_stack([s, q3, q2]),
                           np.column_stack([s, q2, q1])]).astype(faces.dtype)


class _Bodies:
    """The faces' manifold pairs (``a`` < ``b``; ``same``: both run the shared edge the same way),
    the bodies they join (``count``, ``labels``), the faces on edges not used exactly twice
    (``open_faces``) and whether every edge is used exactly twice (``watertight``)."""

    def __init__(self, edges: _SortedEdges):
        self.edges = edges
        self.a, self.b, self.same = edges.manifold_pairs()
        self.count, self.labels = _components(self.a, self.b, len(edges.face) // 3)
        self.open_faces = edges.face[np.repeat(edges.lengths != 2, edges.lengths)]
        self.watertight = bool(len(edges.keys)) and len(self.open_faces) == 0
        self.flip = np.zeros(0, dtype=bool)  # set by flipped(): which faces were reversed

    def flipped(self, flip: np.ndarray) -> None:
        """The faces marked in ``flip`` now run their edges the other way."""
        self.same ^= flip[self.a] ^ flip[self.b]
        self.flip = flip

    def add_faces(self, added: np.ndarray, first_face: int) -> None:
        """Faces ``added`` (numbered from ``first_face``) join in: their edges change only the runs
        they land in, so pairs, bodies and open faces are updated there, not recomputed."""
        edges, runs = self.edges, len(self.edges.starts)
        keys = edge_keys(added, directed=True)
        new_face = (np.arange(len(keys)) % len(added) + first_face).astype(edges.face.dtype)
        new_backward = (keys & 1).astype(bool)
        keys >>= 1
        run_keys = edges.run_keys()
        run = np.minimum(np.searchsorted(run_keys, keys), runs - 1)
        known = run_keys[run] == keys
        # Edges no face had: runs of their own, numbered after the others.
        fresh_keys, fresh_run = np.unique(keys[~known], return_inverse=True)
        run = np.where(known, run, 0)
        run[~known] = runs + fresh_run.ravel()
        added_uses = np.bincount(run, minlength=runs + len(fresh_keys))
        before = np.append(edges.lengths, np.zeros(len(fresh_keys), dtype=edges.lengths.dtype))
        uses = before + added_uses
        touched = np.flatnonzero(added_uses)
        # Pairs gone: a manifold edge another face now uses too.
        lost = touched[(before[touched] == 2) & (uses[touched] != 2)]
        keep = np.ones(len(self.a), dtype=bool)
        keep[np.cumsum(edges.lengths == 2)[lost] - 1] = False
        # Pairs made: an old boundary edge and one new use, or two new uses of a new edge.
        made = touched[uses[touched] == 2]
        ends = []  # (face, backward) of both uses of each made edge, in run order
        by_run = np.argsort(run, kind="stable")
        for use in range(2):
            from_old = before[made] > use
            face = np.empty(len(made), dtype=edges.face.dtype)
            backward = np.empty(len(made), dtype=bool)
            at = edges.starts[made[from_old]] + use
            face[from_old] = edges.face[at]
            backward[from_old] = edges.backward[at] ^ self.flip[edges.face[at]]
            # The new uses of a run, in order: the (use - before)-th added edge landing there.
            newer = made[~from_old]
            pick = by_run[np.searchsorted(run[by_run], newer) + use - before[newer]]
            face[~from_old], backward[~from_old] = new_face[pick], new_backward[pick]
            ends.append((face, backward))
        (f1, b1), (f2, b2) = ends
        self.a = np.concatenate([self.a[keep], np.minimum(f1, f2)])
        self.b = np.concatenate([self.b[keep], np.maximum(f1, f2)])
        self.same = np.concatenate([self.same[keep], b1 == b2])
        n = first_face + len(added)
        if keep.all():
            # Only joins: the old bodies, merged where the new faces link them.
            def node(face):
                return np.where(face < first_face, self.labels[np.minimum(face, first_face - 1)],
                                self.count + face - first_face)

            count, merged = _components(node(self.a[len(keep):]), node(self.b[len(keep):]), self.count + len(added))
            self.labels = np.concatenate([merged[self.labels], merged[self.count:]])
            self.count = count
        else:
            self.count, self.labels = _components(self.a, self.b, n)
        open_old = np.repeat(uses[:runs] != 2, edges.lengths)
        self.open_faces = np.concatenate([edges.face[open_old], new_face[uses[run] != 2]])
        self.watertight = bool((uses == 2).all())


def _turn_outwards(vertices: np.ndarray, faces: np.ndarray, bodies: _Bodies) -> tuple[np.ndarray, int]:
    """Flip every closed, consistently wound body whose signed volume is negative (an open or
    mis-wound body is left alone: flipping it could only make it worse). Returns (faces, bodies
    flipped)."""
    count, labels = bodies.count, bodies.labels
    mis_wound = np.bincount(labels[bodies.a[bodies.same]], minlength=count) > 0
    # Closed: every edge of the body is shared by exactly two faces (which are then in the body).
    open_body = np.bincount(labels[bodies.open_faces], minlength=count) > 0
    closed = ~open_body & ~mis_wound & (np.bincount(labels, minlength=count) >= 4)
    if not closed.any():
        return faces, 0
    # Signed volume per body (x6), in float64 about the vertices' centre, a million faces at a
    # time; only closed bodies' faces, each body's terms summed in the same order as over all.
    centre = np.asarray(vertices, dtype=np.float64).mean(axis=0, dtype=np.float64)
    volume = np.zeros(count)
    for lo in range(0, len(faces), _VOLUME_CHUNK):
        body = labels[lo : lo + _VOLUME_CHUNK]
        chosen = closed[body]
        tri = vertices[faces[lo : lo + _VOLUME_CHUNK][chosen]].astype(np.float64) - centre
        det = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
        volume += np.bincount(body[chosen], det, minlength=count)
    inverted = closed & (volume < 0)
    if not inverted.any():
        return faces, 0
    flip = inverted[labels]
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces, int(inverted.sum())


def repair_surface(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """``--repair`` on arrays: (vertices in their float type, faces int32 when they fit, what
    was done: the counts ``steps.repair`` records)."""
    vertices = np.asarray(vertices)
    if vertices.dtype not in (np.float32, np.float64):
        vertices = vertices.astype(np.float64)
    faces = np.asarray(faces)
    counts: dict = {"vertices_before": len(vertices), "faces_before": len(faces)}
    vertices, faces = _merge_vertices(vertices, faces.astype(_index_type(len(vertices)), copy=False))
    counts["vertices_merged"] = counts["vertices_before"] - len(vertices)
    keep = _nondegenerate(vertices, faces)
    counts["degenerate_faces_removed"] = int(len(faces) - keep.sum())
    faces = faces[keep]
    keep = _first_of_each_face(faces)
    counts["duplicate_faces_removed"] = int(len(faces) - keep.sum())
    faces = faces[keep]
    del keep
    referenced = np.zeros(len(vertices), dtype=bool)
    referenced[faces.ravel()] = True
    counts["unreferenced_vertices_removed"] = int(len(vertices) - referenced.sum())
    if counts["unreferenced_vertices_removed"] and len(faces):
        renumber = np.cumsum(referenced, dtype=faces.dtype)
        renumber -= 1
        vertices, faces = vertices[referenced], renumber[faces]
    del referenced
    if len(faces) == 0:
        counts.update(faces_flipped=0, hole_faces_added=0, bodies_turned_outwards=0,
                      vertices_after=len(vertices), faces_after=0, watertight=False)
        return vertices, faces, counts

    edges, boundary_at = _SortedEdges.of(faces)
    bodies = _Bodies(edges)
    faces, flipped = _orient(faces, bodies.a, bodies.b, bodies.same, (bodies.count, bodies.labels))
    counts["faces_flipped"] = int(flipped.sum())
    bodies.flipped(flipped)
    added = _small_hole_faces(faces, boundary_at, flipped, len(vertices))
    counts["hole_faces_added"] = len(added)
    del flipped, boundary_at
    if len(added):
        bodies.add_faces(added, len(faces))
        faces = np.concatenate([faces, added])
    faces, counts["bodies_turned_outwards"] = _turn_outwards(vertices, faces, bodies)
    counts.update(vertices_after=len(vertices), faces_after=len(faces), watertight=bodies.watertight)
    return vertices, faces, counts
