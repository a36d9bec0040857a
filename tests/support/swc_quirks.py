"""Small SWC files with the quirks real published files have, written by the tests.

Each quirk is a function of a directory returning the file; ``QUIRKS`` maps a name to
(function, what reading it must do). The base cell: a soma, two basal trees with branch
points, an apical dendrite with an oblique branch, an axon; radii taper; all in micrometres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def base_rows(soma: str = "point"):
    """SWC rows (id, type, x, y, z, r, parent) of the base cell, parents first, ids 1..N.

    ``soma``: "point" (one point, r 6), "three" (NeuroMorpho's 3 points: centre, +/- r in y),
    "chain" (five points along y, radii of a spindle), "contour" (a closed outline of 12
    points in the xy plane).
    """
    rows = []

    def add(t, xyz, r, parent):
        rows.append([len(rows) + 1, t, *map(float, xyz), float(r), parent])
        return len(rows)

    root = add(1, (0, 0, 0), 6.0, -1)
    attach = root
    if soma == "three":
        add(1, (0, -6, 0), 6.0, root)
        add(1, (0, 6, 0), 6.0, root)
    elif soma == "chain":
        last = root
        for k, r in zip((2, 4, -2, -4), (5.0, 3.0, 5.0, 3.0)):
            last = add(1, (0, k, 0), r, root if k in (2, -2) else last)
    elif soma == "contour":
        last = root
        for k in range(12):
            angle = 2 * np.pi * k / 12
            last = add(1, (7 * np.cos(angle), 5 * np.sin(angle), 0), 0.5, last if k else root)

    def branch(start, direction, n, r0, r1, t, parent, step=5.0):
        direction = np.asarray(direction, float) / np.linalg.norm(direction)
        node = parent
        for k in range(n):
            wiggle = np.array([np.sin(k), np.cos(1.3 * k), np.sin(0.7 * k)]) * 0.8
            xyz = np.asarray(start, float) + direction * step * (k + 1) + wiggle
            node = add(t, xyz, r0 + (r1 - r0) * k / max(n - 1, 1), node)
        return node, xyz

    # basal tree 1 with two branch points
    tip, end = branch((8, 0, 0), (1, 0.2, 0), 6, 1.5, 1.0, 3, attach)
    branch(end, (1, 1, 0), 5, 0.9, 0.5, 3, tip)
    t2, e2 = branch(end, (1, -1, 0.3), 4, 0.9, 0.7, 3, tip)
    branch(e2, (0.5, -1, 1), 4, 0.6, 0.4, 3, t2)
    branch(e2, (1, -0.2, -1), 3, 0.6, 0.4, 3, t2)
    # basal tree 2
    tip, end = branch((-8, 0, 0), (-1, 0.3, 0.1), 5, 1.4, 1.0, 3, attach)
    branch(end, (-1, 1, 0), 4, 0.8, 0.5, 3, tip)
    branch(end, (-1, -1, 0), 4, 0.8, 0.5, 3, tip)
    # apical with an oblique
    tip, end = branch((0, 8, 0), (0.1, 1, 0), 10, 2.5, 1.5, 4, attach)
    branch(end, (1, 0.5, 0), 5, 1.0, 0.6, 4, tip)
    branch(end, (-0.2, 1, 0), 6, 1.4, 0.8, 4, tip)
    # axon
    branch((0, -8, 0), (0, -1, 0.1), 12, 0.8, 0.5, 2, attach)
    return rows


def write_rows(path: Path, rows, header: list[str] = (), id_format=None) -> Path:
    lines = [*header]
    for row in rows:
        i, t, x, y, z, r, p = row
        lines.append(f"{int(i)} {int(t)} {x:.4f} {y:.4f} {z:.4f} {r:.4f} {int(p)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _renumber(rows, new_id):
    mapping = {row[0]: new_id(row[0]) for row in rows}
    return [[mapping[r[0]], r[1], *r[2:6], mapping.get(r[6], -1)] for r in rows]


def plain(d: Path) -> Path:
    return write_rows(d / "plain.swc", base_rows(), ["# a plain SWC file"])


def column_header(d: Path) -> Path:
    return write_rows(d / "column_header.swc", base_rows(), ["n type x y z radius parent"])


def ids_from_zero(d: Path) -> Path:
    return write_rows(d / "ids_from_zero.swc", _renumber(base_rows(), lambda i: i - 1))


def ids_with_gaps_out_of_order(d: Path) -> Path:
    """Ids 10, 20, ... (parents still below children) listed in a shuffled order."""
    rows = _renumber(base_rows(), lambda i: 10 * i)
    rng = np.random.default_rng(3)
    order = rng.permutation(len(rows))
    return write_rows(d / "ids_out_of_order.swc", [rows[k] for k in order])


def parents_after_children(d: Path) -> Path:
    """Ids reversed: every parent id is above its child's (NEURON refuses this file)."""
    rows = base_rows()
    n = len(rows)
    return write_rows(d / "parents_after_children.swc", _renumber(rows, lambda i: n + 1 - i))


def three_point_soma(d: Path) -> Path:
    return write_rows(d / "three_point_soma.swc", base_rows("three"))


def soma_chain(d: Path) -> Path:
    return write_rows(d / "soma_chain.swc", base_rows("chain"))


def soma_contour(d: Path) -> Path:
    return write_rows(d / "soma_contour.swc", base_rows("contour"))


def soma_tangle(d: Path) -> Path:
    """A branched soma of seven points (the root with two soma children, an inner point with
    two), the base cell's neurites on the root, a dendrite on an inner soma point, and a
    one-point dendrite on the root, which NEURON's Import3d drops (``ONE_POINT_NODE``)."""
    rows = [[1, 1, 0.0, 0.0, 0.0, 5.0, -1], [2, 1, 0.0, 3.0, 0.0, 4.5, 1], [3, 1, 0.0, 6.0, 0.0, 3.0, 2],
            [4, 1, 3.0, 3.5, 0.0, 2.5, 2], [5, 1, 0.0, -3.0, 0.0, 4.5, 1], [6, 1, 0.0, -6.0, 0.0, 3.0, 5],
            [7, 1, -3.0, -3.5, 0.0, 2.0, 5]]
    base = base_rows()
    offset = len(rows) - 1
    for row in base[1:]:
        rows.append([row[0] + offset, row[1], *row[2:6], row[6] + offset if row[6] > 1 else 1])
    n = len(rows)
    rows.append([n + 1, 3, -2.0, 4.0, 9.0, 1.0, 2])  # on an inner soma point
    for k in range(1, 5):
        rows.append([n + 1 + k, 3, -2.0, 4.0 + 4 * k, 9.0 + k, 0.9, n + k])
    rows.append([n + 6, 3, 2.0, -1.0, -7.0, 0.8, 1])  # one point on the root
    return write_rows(d / "soma_tangle.swc", rows)


# The node (0-based, in file order) of soma_tangle that NEURON drops with its one-point section.
ONE_POINT_NODE = {"soma_tangle": 80}


def custom_types(d: Path) -> Path:
    """The apical dendrite typed 7 and one basal branch typed 5 (custom types)."""
    rows = base_rows()
    for row in rows:
        if row[1] == 4:
            row[1] = 7
    first_basal = next(k for k, row in enumerate(rows) if row[1] == 3)
    for row in rows[first_basal + 6: first_basal + 11]:
        row[1] = 5
    return write_rows(d / "custom_types.swc", rows)


def several_trees(d: Path) -> Path:
    """A second, detached tree (a dendrite piece whose root is not the soma)."""
    rows = base_rows()
    n = len(rows)
    for k in range(6):
        rows.append([n + k + 1, 3, 40.0 + 5 * k, 40.0, 0.0, 0.8, n + k if k else -1])
    return write_rows(d / "several_trees.swc", rows)


def several_trees_on_an_outline(d: Path) -> Path:
    """The detached tree again, on a cell whose soma is an outline (the join differs there)."""
    rows = base_rows("contour")
    n = len(rows)
    for k in range(6):
        rows.append([n + k + 1, 3, 40.0 + 5 * k, 40.0, 0.0, 0.8, n + k if k else -1])
    return write_rows(d / "several_trees_on_an_outline.swc", rows)


def zero_radius(d: Path) -> Path:
    rows = base_rows()
    rows[-1][5] = 0.0
    rows[20][5] = 0.0
    return write_rows(d / "zero_radius.swc", rows)


def random_tree(d: Path, seed: int, n: int = 2000) -> Path:
    """A random tree NEURON's rules are stressed by: a soma of four points (the root with two
    soma children), children listed away from their parents, type changes along a branch
    (2, 3, 4 and a custom 6), repeated points (zero-length sections NEURON drops)."""
    rng = np.random.default_rng(seed)
    parents, types = [-1, 0, 1, 0], [1, 1, 1, 1]
    for i in range(4, n):
        parent = i - 1 if rng.random() < 0.8 else int(rng.integers(0, i))
        parents.append(parent)
        keep = types[parent] != 1 and rng.random() < 0.97
        types.append(types[parent] if keep else int(rng.choice([2, 3, 4, 6])))
    xyz = np.cumsum(rng.normal(size=(n, 3)) * 2, axis=0)
    xyz[:4] = [[0, 0, 0], [0, 3, 0], [0, 6, 0], [0, -3, 0]]
    radii = rng.uniform(0.2, 2, size=n)
    radii[:4] = [5, 4, 3, 4]
    for k in rng.integers(5, n, size=20):
        xyz[k] = xyz[parents[k]]
    rows = [[i + 1, types[i], *xyz[i], radii[i], parents[i] + 1 if parents[i] >= 0 else -1] for i in range(n)]
    return write_rows(d / f"random_tree_{seed}.swc", rows)


# Files that must be refused: (function, line number the error must name, words in the error).
def bad_nan(d: Path) -> Path:
    rows = base_rows()
    path = write_rows(d / "bad_nan.swc", rows, ["# header"])
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit(" ", 3)[0] + " nan 0.5 " + lines[5].rsplit(" ", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    return path


def bad_cycle(d: Path) -> Path:
    rows = base_rows()
    rows[10][6] = rows[11][0]  # node 11 -> 12 -> 11
    return write_rows(d / "bad_cycle.swc", rows)


def bad_parent(d: Path) -> Path:
    rows = base_rows()
    rows[7][6] = 999
    return write_rows(d / "bad_parent.swc", rows)


def bad_duplicate(d: Path) -> Path:
    rows = base_rows()
    rows[9][0] = rows[8][0]
    return write_rows(d / "bad_duplicate.swc", rows)


def bad_garbage_line(d: Path) -> Path:
    path = write_rows(d / "bad_garbage.swc", base_rows())
    lines = path.read_text().splitlines()
    lines.insert(14, "this is not a node")
    path.write_text("\n".join(lines) + "\n")
    return path


def bad_type_zero(d: Path) -> Path:
    rows = base_rows()
    rows[3][1] = 0
    return write_rows(d / "bad_type_zero.swc", rows)


READ = {f.__name__: f for f in (plain, column_header, ids_from_zero, ids_with_gaps_out_of_order,
                                 parents_after_children, three_point_soma, soma_chain, soma_contour,
                                 soma_tangle, custom_types, several_trees, several_trees_on_an_outline,
                                 zero_radius)}
# name: (writer, line the error names, a word of the error)
REFUSED = {
    "nan": (bad_nan, 6, "NaN"),
    "cycle": (bad_cycle, 11, "cycle"),
    "dangling parent": (bad_parent, 8, "names no node"),
    "duplicate id": (bad_duplicate, 10, "already used"),
    "garbage line": (bad_garbage_line, 15, "7 numbers"),
    "type 0": (bad_type_zero, 4, "type 0"),
}
