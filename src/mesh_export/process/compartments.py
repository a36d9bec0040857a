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

import math
from typing import Any

import numpy as np

from mesh_export.process.skeleton import AXON, BASAL, SOMA, Skeleton
from mesh_export.core.units import conversion_factor

__all__ = ["split_axon", "untyped", "segregation_index"]


def _entropy(pre: float, post: float) -> float:
    total = pre + post
    if total <= 0:
        return 0.0
    h = 0.0
    for count in (pre, post):
        p = count / total
        if p > 0:
            h -= p * math.log(p)
    return h


def segregation_index(pre_axon: float, post_axon: float, pre_rest: float, post_rest: float) -> float:
    """1 - (entropy of the split) / (entropy of the whole), weighted by synapse counts."""
    total = pre_axon + post_axon + pre_rest + post_rest
    whole = _entropy(pre_axon + pre_rest, post_axon + post_rest)
    if total <= 0 or whole <= 0:
        return 0.0
    split = ((pre_axon + post_axon) * _entropy(pre_axon, post_axon)
             + (pre_rest + post_rest) * _entropy(pre_rest, post_rest)) / total
    return 1.0 - split / whole


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
    # Subtree sums (children after parents: accumulate from the leaves up).
    pre_down, post_down = pre_at.tolist(), post_at.tolist()
    parents = sk.parents.tolist()
    for i in range(n - 1, 0, -1):
        p = parents[i]
        pre_down[p] += pre_down[i]
        post_down[p] += post_down[i]
    pre_down, post_down = np.asarray(pre_down), np.asarray(post_down)
    pre_total, post_total = float(pre_at.sum()), float(post_at.sum())
    flow = pre_down * (post_total - post_down) + post_down * (pre_total - pre_down)
    # The axon side holds the outputs: its output fraction beats the rest's.
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_down = pre_down / (pre_down + post_down)
        frac_up = (pre_total - pre_down) / ((pre_total - pre_down) + (post_total - post_down))
    axon_side = np.nan_to_num(frac_down, nan=0.0) > np.nan_to_num(frac_up, nan=0.0)
    axon_side[sk.parents < 0] = False
    if not axon_side.any():
        return untyped(sk, "no part of the cell holds more of its output synapses than the rest")
    score = np.where(axon_side, flow, -1.0)
    best = float(score.max())
    # Among equal flows (no synapse between them) the one nearest the soma.
    split = int(np.flatnonzero(score >= best * (1 - 1e-12))[0])
    quality = segregation_index(pre_down[split], post_down[split], pre_total - pre_down[split],
                                post_total - post_down[split])
    # Extend the split towards the soma along its section, and across branch points whose
    # other branches are short stubs with hardly an input synapse (spurs, a spine-like bump with
    # a chandelier synapse beside the initial segment).
    parents_of = sk.parents
    lengths = sk.edge_lengths()
    cable = lengths.tolist()
    for i in range(n - 1, 0, -1):
        cable[parents_of[i]] += cable[i]
    cable = np.asarray(cable)
    stub = 20.0 * conversion_factor("um", sk.units)
    children = [[] for _ in range(n)]
    for i in range(1, n):
        children[parents_of[i]].append(i)
    while parents_of[split] > 0:
        up = int(parents_of[split])
        others = [c for c in children[up] if c != split]
        if any(post_down[c] > 3 or cable[c] + lengths[c] > stub for c in others):
            break
        split = up
    record = dict(base, split_node=split, quality=round(float(quality), 4),
                  axon_synapses={"pre": int(pre_down[split]), "post": int(post_down[split])})
    if quality < min_quality:
        out = untyped(sk, f"the best axon/dendrite split separates the synapses poorly "
                          f"(segregation index {quality:.2f} < {min_quality})")
        out.metadata["compartments"].update({k: v for k, v in record.items() if k != "method"},
                                             method="none", tried="synapse flow centrality")
        return out
    in_axon = np.zeros(n, dtype=bool)
    in_axon[split] = True
    par = sk.parents
    for i in range(split + 1, n):  # sorted depth-first: the subtree follows its root
        if in_axon[par[i]]:
            in_axon[i] = True
    types = np.full(n, BASAL, dtype=np.int64)
    types[in_axon] = AXON
    types[par < 0] = SOMA
    record.update(axon=True, axon_nodes=int(in_axon.sum()),
                  axon_length=float(lengths[in_axon].sum()), units=sk.units)
    return _with_types(sk, types, record)
