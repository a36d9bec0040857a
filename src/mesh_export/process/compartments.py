"""Compartments of a morphology: the axon told from the dendrites by the cell's own synapses.

A neuron's output synapses (it is presynaptic: ``pre_pt_root_id == id``) sit on its axon, its
input synapses mostly on its dendrites. Every path from an input to an output synapse runs
through the stretch of cable between the two compartments, so the edge crossed by the most
input-output paths (the largest *synapse flow centrality*, as in MeshParty's
``split_axon_by_synapses`` and pcg_skel's ``add_is_axon_annotation``) is where the axon
starts: the side of it holding the outputs is the axon. The split is then moved towards the
soma along its unbranched section (the axon's initial segment has few synapses of either kind).

The split's quality is the segregation index (Schneider-Mizell et al. 2016): 1 when the two
sides hold only outputs and only inputs, 0 when the split separates nothing. Below
``min_quality`` (0.5, as pcg_skel) no axon is typed and the metadata says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mesh_export.process.skeleton import APICAL, AXON, BASAL, SOMA, Skeleton
from mesh_export.core.units import conversion_factor

__all__ = ["split_axon", "untyped", "segregation_index", "type_apical", "dendrite_trunks"]


def _segregation(pre_a, post_a, pre_b, post_b) -> np.ndarray:
    """:func:`segregation_index` of many splits at once (arrays)."""
    def entropy(pre, post):
        total = pre + post
        with np.errstate(divide="ignore", invalid="ignore"):
            h = np.zeros_like(total, dtype=np.float64)
            for count in (pre, post):
                p = np.where(total > 0, count / np.where(total > 0, total, 1), 0)
                h -= np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)
        return h

    total = pre_a + post_a + pre_b + post_b
    whole = entropy(pre_a + pre_b, post_a + post_b)
    split = ((pre_a + post_a) * entropy(pre_a, post_a) + (pre_b + post_b) * entropy(pre_b, post_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((total > 0) & (whole > 0), 1.0 - split / np.where(total > 0, total, 1) / np.where(whole > 0, whole, 1), 0.0)


def segregation_index(pre_axon: float, post_axon: float, pre_rest: float, post_rest: float) -> float:
    """1 - (entropy of the split) / (entropy of the whole), weighted by synapse counts."""
    return float(_segregation(*(np.float64(x) for x in (pre_axon, post_axon, pre_rest, post_rest))))


def _with_types(skeleton: Skeleton, types: np.ndarray, record: dict[str, Any]) -> Skeleton:
    from dataclasses import replace

    metadata = dict(skeleton.metadata)
    metadata["compartments"] = record
    steps = [dict(step) for step in metadata.get("steps", [])]
    if steps and steps[-1].get("step") == "skeletonize":  # the sidecar records the steps
        steps[-1]["compartments"] = record
    metadata["steps"] = steps
    return replace(skeleton, types=types, metadata=metadata)


def untyped(skeleton: Skeleton, reason: str) -> Skeleton:
    """Every neurite node type 3 (basal dendrite / undetermined), with ``reason`` recorded."""
    types = np.full(len(skeleton), BASAL, dtype=np.int64)
    types[skeleton.parents < 0] = SOMA
    return _with_types(skeleton, types, {"method": "none", "axon": False, "reason": reason})


def _nearest_nodes(skeleton: Skeleton, points, units: str) -> np.ndarray:
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not len(points):
        return np.zeros(0, dtype=np.int64)
    points = points * conversion_factor(units, skeleton.units)
    _, near = cKDTree(skeleton.nodes).query(points)
    return near.astype(np.int64)


#: At most this many pieces of cable typed axon (one for an intact axon).
MAX_SPLITS = 8
#: A further split must raise the segregation index by more than this ...
MIN_GAIN = 0.005
#: ... and hold at least this many output synapses of its own.
MIN_PIECE_OUTPUTS = 3


def _subtree(sk: Skeleton, root: int, already: np.ndarray) -> np.ndarray:
    """``already`` plus the subtree of ``root`` (``sk`` sorted depth-first: a subtree follows its root)."""
    out = already.copy()
    out[root] = True
    par = sk.parents
    for i in range(root + 1, len(sk)):
        if par[i] < root:
            break
        if out[par[i]]:
            out[i] = True
    return out


def _best_split(sk: Skeleton, pre_at, post_at, children, cable, lengths, stub):
    """The node whose subtree is the axon side of the edge with the largest synapse flow
    (ties: the one nearest the soma), moved towards the soma along its section; with the
    output and input counts of its subtree. None when no subtree holds more of the outputs."""
    n = len(sk)
    pre_down, post_down = pre_at.tolist(), post_at.tolist()
    parents = sk.parents.tolist()
    for i in range(n - 1, 0, -1):  # children after parents: accumulate from the leaves up
        p = parents[i]
        pre_down[p] += pre_down[i]
        post_down[p] += post_down[i]
    pre_down, post_down = np.asarray(pre_down), np.asarray(post_down)
    pre_total, post_total = float(pre_at.sum()), float(post_at.sum())
    if pre_total <= 0:
        return None
    flow = pre_down * (post_total - post_down) + post_down * (pre_total - pre_down)
    # The axon side holds the outputs: its output fraction beats the rest's.
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_down = pre_down / (pre_down + post_down)
        frac_up = (pre_total - pre_down) / ((pre_total - pre_down) + (post_total - post_down))
    axon_side = np.nan_to_num(frac_down, nan=0.0) > np.nan_to_num(frac_up, nan=0.0)
    axon_side[sk.parents < 0] = False
    if not axon_side.any():
        return None
    # Of the edges carrying synapse flow, the one whose cut segregates outputs from inputs best:
    # the largest flow alone can sit above a branch point when a piece of axon hangs on a dendrite.
    quality = _segregation(pre_down, post_down, pre_total - pre_down, post_total - post_down)
    score = np.where(axon_side & (flow > 0), quality, -1.0)
    best = float(score.max())
    if best < 0:
        return None
    near_best = np.flatnonzero(score >= best - 1e-9)
    split = int(near_best[np.argmax(flow[near_best])])  # (argmax: the first, nearest the soma)
    # Extend the split towards the soma along its section, and across branch points whose
    # other branches are short stubs with hardly an input synapse (spurs, a spine-like bump with
    # a chandelier synapse beside the initial segment).
    parents_of = sk.parents
    while parents_of[split] > 0:
        up = int(parents_of[split])
        others = [c for c in children[up] if c != split]
        if any(post_down[c] > 3 or cable[c] + lengths[c] > stub for c in others):
            break
        split = up
    return split, float(pre_down[split]), float(post_down[split])


def split_axon(skeleton: Skeleton, pre, post, *, units: str = "nm", min_quality: float = 0.5,
               source: str | None = None) -> Skeleton:
    """Type the axon 2 and everything else 3, from the cell's output (``pre``) and input
    (``post``) synapse positions (``(n, 3)``, in ``units``; each goes to its nearest node).

    Returns a new Skeleton; ``metadata["compartments"]`` records the method, the synapse
    counts, the split node, the segregation index and the axon's cable length, or why no
    axon was typed (no output synapses, a split of too low quality).
    """
    sk = skeleton.sorted()
    n = len(sk)
    pre_nodes = _nearest_nodes(sk, pre, units)
    post_nodes = _nearest_nodes(sk, post, units)
    counts = {"pre": int(len(pre_nodes)), "post": int(len(post_nodes))}
    base = {"method": "synapse flow centrality", "source": source, "synapses": counts,
            "min_quality": min_quality}
    if not len(pre_nodes):
        return untyped(sk, "no output synapses on this cell: the axon cannot be told from the dendrites")
    if not len(post_nodes):
        return untyped(sk, "no input synapses on this cell: the axon cannot be told from the dendrites")
    pre_at = np.bincount(pre_nodes, minlength=n).astype(np.float64)
    post_at = np.bincount(post_nodes, minlength=n).astype(np.float64)
    pre_total, post_total = float(pre_at.sum()), float(post_at.sum())
    parents_of = sk.parents
    lengths = sk.edge_lengths()
    cable = lengths.tolist()
    for i in range(n - 1, 0, -1):
        cable[parents_of[i]] += cable[i]
    cable = np.asarray(cable)
    children = [[] for _ in range(n)]
    for i in range(1, n):
        children[parents_of[i]].append(i)
    stub = 20.0 * conversion_factor("um", sk.units)

    # A fragmented axon (a decimated mesh loses stretches of it) can be healed onto the tree in
    # several places, some on dendrites: one split cannot hold it all. So split again on what is
    # left while the segregation of (everything typed axon) against the rest improves, as
    # MeshParty's ``n_times`` does; each further piece must hold outputs of its own.
    in_axon = np.zeros(n, dtype=bool)
    splits = []
    quality = 0.0
    for _ in range(MAX_SPLITS):
        found = _best_split(sk, np.where(in_axon, 0.0, pre_at), np.where(in_axon, 0.0, post_at), children,
                            cable, lengths, stub)
        if found is None:
            break
        split, pre_down, post_down = found
        grown = _subtree(sk, split, in_axon)
        pre_axon, post_axon = float(pre_at[grown].sum()), float(post_at[grown].sum())
        q = segregation_index(pre_axon, post_axon, pre_total - pre_axon, post_total - post_axon)
        if splits and (q <= quality + MIN_GAIN or pre_down < MIN_PIECE_OUTPUTS):
            break
        splits.append({"node": split, "pre": int(pre_down), "post": int(post_down)})
        in_axon, quality = grown, q
    if not splits:
        return untyped(sk, "no part of the cell holds more of its output synapses than the rest")
    split = splits[0]["node"]
    record = dict(base, split_node=split, quality=round(float(quality), 4),
                  axon_synapses={"pre": int(pre_at[in_axon].sum()), "post": int(post_at[in_axon].sum())},
                  splits=splits)
    if quality < min_quality:
        out = untyped(sk, f"the best axon/dendrite split separates the synapses poorly "
                          f"(segregation index {quality:.2f} < {min_quality})")
        out.metadata["compartments"].update({k: v for k, v in record.items() if k != "method"},
                                             method="none", tried="synapse flow centrality")
        return out
    types = np.full(n, BASAL, dtype=np.int64)
    types[in_axon] = AXON
    types[sk.parents < 0] = SOMA
    record.update(axon=True, axon_nodes=int(in_axon.sum()),
                  axon_length=float(lengths[in_axon].sum()), units=sk.units)
    return _with_types(sk, types, record)


#: The apical trunk must be this much thicker than every other dendrite's trunk.
APICAL_THICKNESS_RATIO = 1.25
#: Where a trunk's thickness is read: this far beyond the soma's surface along it (um); past
#: the stem's base, which two stems leaving the soma together can share and thicken.
TRUNK_WINDOW_UM = (5.0, 50.0)
#: Dendrites with less cable than this (um) are stubs (a bump on the soma), not compared.
MIN_DENDRITE_UM = 20.0


def dendrite_trunks(skeleton: Skeleton) -> list[dict[str, Any]]:
    """Per dendrite stem (a type-3 child of the soma with at least :data:`MIN_DENDRITE_UM` of
    cable): its trunk (from the soma, always into the child carrying the most cable), the
    trunk's median radius :data:`TRUNK_WINDOW_UM` beyond the soma's surface, its length."""
    sk = skeleton.sorted()
    n = len(sk)
    par = sk.parents
    lengths = sk.edge_lengths()
    to_um = conversion_factor(sk.units, "um")
    cable = lengths.copy()
    for i in range(n - 1, 0, -1):
        cable[par[i]] += cable[i]
    heaviest = np.full(n, -1, dtype=np.int64)  # the child carrying the most cable
    for i in range(1, n):
        p = par[i]
        if heaviest[p] < 0 or cable[i] > cable[heaviest[p]]:
            heaviest[p] = i
    path = np.zeros(n)
    for i in range(1, n):
        path[i] = path[par[i]] + lengths[i]
    trunks = []
    for stem in np.flatnonzero((par == 0) & (sk.types == BASAL)).tolist():
        if cable[stem] * to_um < MIN_DENDRITE_UM:
            continue
        trunk = [stem]
        while heaviest[trunk[-1]] >= 0:
            trunk.append(int(heaviest[trunk[-1]]))
        trunk = np.asarray(trunk)
        beyond = (path[trunk] - float(sk.radii[0])) * to_um
        window = trunk[(beyond >= TRUNK_WINDOW_UM[0]) & (beyond <= TRUNK_WINDOW_UM[1])]
        if not len(window):
            continue
        trunks.append({"node": int(stem), "radius": float(np.median(sk.radii[window])),
                       "length": float(path[trunk[-1]] - path[stem] + lengths[stem])})
    return trunks


def type_apical(skeleton: Skeleton) -> Skeleton:
    """Type 4 the apical dendrite where it can be told: a pyramidal cell's apical trunk is
    clearly the thickest of its dendrites' trunks, so the one dendrite whose trunk is at least
    :data:`APICAL_THICKNESS_RATIO` x thicker than every other's. Otherwise nothing changes.
    ``metadata["compartments"]["apical"]`` records the ratio and the decision."""
    from dataclasses import replace

    sk = skeleton.sorted()
    trunks = sorted(dendrite_trunks(sk), key=lambda t: -t["radius"])
    record: dict[str, Any] = {"typed": False, "method": "the dendrite whose trunk is clearly the thickest",
                              "min_ratio": APICAL_THICKNESS_RATIO}
    if len(trunks) < 2:
        record["reason"] = f"{len(trunks)} dendrite(s): no other to compare an apical trunk with"
    else:
        ratio = trunks[0]["radius"] / max(trunks[1]["radius"], 1e-300)
        record["ratio"] = round(ratio, 3)
        if ratio < APICAL_THICKNESS_RATIO:
            record["reason"] = (f"no dendrite's trunk stands out (the thickest is {ratio:.2f} x the next, "
                                f"< {APICAL_THICKNESS_RATIO})")
        else:
            stem = trunks[0]["node"]
            inside = np.zeros(len(sk), dtype=bool)
            inside[stem] = True
            par = sk.parents
            for i in range(stem + 1, len(sk)):  # depth-first order: the subtree follows its root
                if par[i] < stem:
                    break
                inside[i] = inside[par[i]]
            types = sk.types.copy()
            types[inside & (types == BASAL)] = APICAL
            record.update(typed=True, stem_node=stem, trunk_radius=trunks[0]["radius"], units=sk.units,
                          apical_length=float(sk.edge_lengths()[types == APICAL].sum()))
            sk = replace(sk, types=types)
    compartments = dict(sk.metadata.get("compartments") or {"method": "none", "axon": False})
    compartments["apical"] = record
    return _with_types(sk, sk.types, compartments)
