"""Synapse tables of a MICrONS-like cell (tests/support/cells.py), with their truth.

The cell's own synapses (``Cell.pre``: outputs along the axon, a few on dendrite shafts;
``Cell.post``: inputs on spine heads, shafts, the soma and the axon's initial segment), plus
rows that are not the cell's: synapses on the glial fragment beside a dendrite where it is
more than :data:`DEBRIS_GAP_UM` off the cell, and some far away (100-300 um off). Each row
has an id, a partner (one of a few partner cells) and a size; the truth per row: direction,
partner, where it is (cell/debris/far) and the tag of the membrane it sits on (soma, spine,
shaft: from the cell's vertex labels).

As CAVE serves them (:func:`cave_frame`: positions in 4 x 4 x 40 nm voxels, ``<name>_position``
columns of (3,) arrays) and as files (:func:`write_file`: csv, tsv or parquet; positions as
one ``[x, y, z]`` column or ``_x/_y/_z`` columns; nm or voxels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from support.cells import DEBRIS, SOMA, Cell

VOXEL = np.array([4.0, 4.0, 40.0])
PARTNERS = np.array([864691135000000001, 864691135000000002, 864691135000000003, 864691135000000004])
#: Debris synapses are taken where the glial fragment is at least this far (um) from the cell.
DEBRIS_GAP_UM = 6.0


@dataclass
class SynapseTruth:
    root_id: int
    ids: np.ndarray
    pre: np.ndarray  # root ids
    post: np.ndarray
    size: np.ndarray
    positions: np.ndarray  # nm
    direction: np.ndarray  # input / output
    partner: np.ndarray
    where: np.ndarray  # cell / debris / far
    tag: np.ndarray  # soma / spine / shaft (cell rows), '' otherwise

    def __len__(self) -> int:
        return len(self.ids)


def synapses_of(cell: Cell, root_id: int, seed: int = 7, debris: int = 5, far: int = 5) -> SynapseTruth:
    """The cell's synapses and a few that are not its own (see the module docstring)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    cell_vertices = np.flatnonzero(cell.labels != DEBRIS)
    tree = cKDTree(cell.mesh.vertices[cell_vertices])
    glia = np.flatnonzero(cell.labels == DEBRIS)
    gap, _ = tree.query(cell.mesh.vertices[glia])
    off = glia[gap > DEBRIS_GAP_UM * 1000.0]
    debris_points = cell.mesh.vertices[rng.choice(off, size=min(debris, len(off)), replace=False)]
    direction = rng.normal(size=(far, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    far_points = cell.soma_center + direction * rng.uniform(400e3, 600e3, size=(far, 1))

    positions = np.concatenate([cell.pre, cell.post, debris_points, far_points])
    n_pre, n_post = len(cell.pre), len(cell.post)
    n_other = len(debris_points) + len(far_points)
    inputs = np.concatenate([np.zeros(n_pre, bool), np.ones(n_post, bool), rng.random(n_other) < 0.5])
    partner = PARTNERS[rng.integers(0, len(PARTNERS), size=len(positions))]
    pre = np.where(inputs, partner, root_id).astype(np.int64)
    post = np.where(inputs, root_id, partner).astype(np.int64)
    where = np.array(["cell"] * (n_pre + n_post) + ["debris"] * len(debris_points) + ["far"] * len(far_points))

    near = cell.nearest(positions[: n_pre + n_post])
    tag = np.where(cell.labels[near] == SOMA, "soma", np.where(cell.spine[near], "spine", "shaft"))
    tag = np.concatenate([tag, np.full(n_other, "")])
    ids = np.arange(len(positions), dtype=np.int64) * 7 + 1000  # not row numbers
    order = rng.permutation(len(positions))  # a table is in no particular order
    return SynapseTruth(root_id, ids[order], pre[order], post[order],
                        rng.integers(50, 5000, size=len(positions))[order].astype(np.int64), positions[order],
                        np.where(inputs, "input", "output")[order], partner[order], where[order], tag[order])


def cave_frame(truth: SynapseTruth, voxel=VOXEL):
    """The rows as CAVE's synapse table holds them (positions in voxels)."""
    import pandas as pd

    points = truth.positions / np.asarray(voxel)
    return pd.DataFrame({"id": truth.ids, "pre_pt_root_id": truth.pre, "post_pt_root_id": truth.post,
                         "size": truth.size, "pre_pt_position": list(points), "post_pt_position": list(points),
                         "ctr_pt_position": list(points)})


def tag_frame(truth: SynapseTruth, wrong: float = 0.0, seed: int = 3):
    """A spine/shaft/soma prediction table (``target_id``, ``tag``) for the cell's rows, a
    fraction ``wrong`` of them deliberately different (to see the predictions are used)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    keep = truth.tag != ""
    tags = truth.tag[keep].astype(object)
    flip = rng.random(len(tags)) < wrong
    tags[flip] = np.where(tags[flip] == "spine", "shaft", "spine")
    return pd.DataFrame({"id": np.arange(len(tags)), "target_id": truth.ids[keep], "tag": tags})


def write_file(truth: SynapseTruth, path, *, split: bool = False, voxel: bool = False, columns=None):
    """The rows as a synapse file: csv, tsv or parquet by ``path``'s suffix; positions as
    ``ctr_pt_position`` ([x, y, z]) or, with ``split``, ``ctr_pt_position_x/_y/_z``; in nm or
    (``voxel``) 4 x 4 x 40 nm voxels. ``columns``: only these (others dropped)."""
    import pandas as pd

    points = truth.positions / VOXEL if voxel else truth.positions
    data = {"id": truth.ids, "pre_pt_root_id": truth.pre, "post_pt_root_id": truth.post, "size": truth.size}
    if split:
        for axis, name in enumerate("xyz"):
            data[f"ctr_pt_position_{name}"] = points[:, axis]
    elif str(path).endswith(".parquet"):
        data["ctr_pt_position"] = [list(map(float, p)) for p in points]
    else:
        data["ctr_pt_position"] = ["[" + ", ".join(f"{v:.3f}" for v in p) + "]" for p in points]
    frame = pd.DataFrame(data)
    if columns is not None:
        frame = frame[[c for c in frame.columns if c in columns]]
    suffix = str(path).rsplit(".", 1)[-1]
    if suffix == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == "tsv" else ",")
    return path


def among_cells(truths: list[SynapseTruth], fraction: float = 0.3, seed: int = 11) -> list[SynapseTruth]:
    """The tables of several cells made one circuit: ids made unique across the tables, and
    a ``fraction`` of each cell's inputs given another of the cells as their presynaptic
    partner (the rest keep their outside partners)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    roots = np.array([t.root_id for t in truths], dtype=np.int64)
    out = []
    for k, truth in enumerate(truths):
        pre, partner = truth.pre.copy(), truth.partner.copy()
        inputs = np.flatnonzero(truth.direction == "input")
        chosen = inputs[rng.random(len(inputs)) < fraction]
        others = roots[roots != truth.root_id]
        pre[chosen] = partner[chosen] = others[rng.integers(0, len(others), size=len(chosen))]
        out.append(replace(truth, ids=truth.ids + (k + 1) * 1_000_000, pre=pre, partner=partner))
    return out


def concatenated(truths: list[SynapseTruth]) -> SynapseTruth:
    """Several tables as one (a datastack's synapse table holds every cell's rows)."""
    fields = ("ids", "pre", "post", "size", "positions", "direction", "partner", "where", "tag")
    return SynapseTruth(0, *(np.concatenate([getattr(t, name) for t in truths]) for name in fields))
