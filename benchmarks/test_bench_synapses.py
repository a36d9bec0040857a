"""Synapses onto a morphology (issue 23): 10,000 synapses mapped onto a 5,000-node skeleton.

The skeleton is a deterministic random tree (a soma, 8 stems branching as they go, ~1 um
between nodes, radii tapering 1.0 -> 0.15 um: the node spacing and radii of our skeletons of
MICrONS cells); the synapses sit on its cable's surface (a random point of a random edge,
pushed out by the local radius plus 0-1.5 um, as spine heads are), with 1% far away.

Cases: mesh-export's mapping (``process.synapse_map.map_synapses``: the edge whose surface
is nearest, exact point-segment distances among KD-tree candidates, soma rule, spine and tag
measures), the mapping plus NEURON's section and x of every row
(``writers.synapse_table.synapse_sections``: Import3d's sections of the written cell), the
mapping plus writing the CSV table (sections included), and the plain nearest-node KD-tree
query a user would otherwise write (no position along the edge, no radius, no section).
Budget: the mapping of 10,000 synapses onto 5,000 nodes, section columns included, <= 1 s.

Run with ``python -m pytest benchmarks/test_bench_synapses.py --benchmark-only``.
"""

from __future__ import annotations

import numpy as np
import pytest

from mesh_export.core.synapses import SynapseRows
from mesh_export.model import Skeleton

NODES = 5_000
SYNAPSES = 10_000


def random_tree(nodes: int = NODES, seed: int = 1) -> Skeleton:
    """A soma (radius 6 um) and 8 stems growing by ~1 um steps, branching now and then (nm)."""
    rng = np.random.default_rng(seed)
    points = [np.zeros(3)]
    parents = [-1]
    radii = [6000.0]
    depth = [0]
    tips = []
    for _ in range(8):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        points.append(direction * 6000.0)
        parents.append(0)
        radii.append(1000.0)
        depth.append(1)
        tips.append((len(points) - 1, direction))
    while len(points) < nodes:
        k = int(rng.integers(len(tips)))
        node, direction = tips[k]
        direction = direction + rng.normal(scale=0.25, size=3)
        direction /= np.linalg.norm(direction)
        points.append(points[node] + direction * 1000.0)
        parents.append(node)
        depth.append(depth[node] + 1)
        radii.append(max(150.0, 1000.0 * 0.995 ** depth[-1]))
        tips[k] = (len(points) - 1, direction)
        if rng.random() < 0.02:  # a branch
            tips.append((len(points) - 1, rng.normal(size=3) / np.sqrt(3)))
    types = np.full(len(points), 3)
    types[0] = 1
    return Skeleton(np.array(points), np.array(parents), np.array(radii), types, "nm").sorted()


def synapses_on(sk: Skeleton, count: int = SYNAPSES, seed: int = 2) -> SynapseRows:
    rng = np.random.default_rng(seed)
    child = rng.choice(np.flatnonzero(sk.parents > 0), size=count)
    t = rng.random(count)[:, None]
    axis = sk.nodes[child] + (sk.nodes[sk.parents[child]] - sk.nodes[child]) * t
    out = rng.normal(size=(count, 3))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    reach = sk.radii[child] + rng.uniform(0, 1500.0, size=count)
    positions = axis + out * reach[:, None]
    positions[: count // 100] += 500_000.0  # 1% far away
    root = 864691135000000000
    partners = root + 1 + rng.integers(0, 1000, size=count)
    inputs = rng.random(count) < 0.9
    return SynapseRows(np.arange(count), np.where(inputs, partners, root), np.where(inputs, root, partners),
                       rng.integers(50, 5000, size=count), positions)


@pytest.fixture(scope="module")
def case():
    sk = random_tree()
    return sk, synapses_on(sk)


def test_map_10k_synapses_onto_5k_nodes(benchmark, case):
    from mesh_export.process.synapse_map import map_synapses

    sk, rows = case
    table = benchmark(map_synapses, sk, rows, 864691135000000000)
    benchmark.extra_info.update(nodes=len(sk), synapses=len(rows), placed=int(table.placed.sum()))
    assert len(sk) == NODES and int(table.placed.sum()) == SYNAPSES - SYNAPSES // 100


def test_map_with_neuron_sections(benchmark, case):
    from dataclasses import replace

    from mesh_export.process.synapse_map import map_synapses
    from mesh_export.writers.synapse_table import synapse_sections

    sk, rows = case

    def run():
        return synapse_sections(replace(sk, synapses=map_synapses(sk, rows, 864691135000000000)))

    places = benchmark(run)
    benchmark.extra_info.update(sections=len(places.names), placed=int((places.section_id >= 0).sum()))
    assert int((places.section_id >= 0).sum()) == SYNAPSES - SYNAPSES // 100
    assert ((places.x[places.section_id >= 0] > 0) & (places.x[places.section_id >= 0] < 1)).all()


def test_map_and_write_the_csv(benchmark, case, tmp_path):
    from dataclasses import replace

    from mesh_export.process.synapse_map import map_synapses
    from mesh_export.writers.synapse_table import write_synapse_table

    sk, rows = case

    def run():
        table = map_synapses(sk, rows, 864691135000000000)
        return write_synapse_table(replace(sk, synapses=table), tmp_path / "cell.swc", units="um", overwrite=True)

    path = benchmark(run)
    benchmark.extra_info.update(bytes=path.stat().st_size)


def test_plain_nearest_node(benchmark, case):
    """What a user would otherwise write: the nearest node (no edge position, no radius)."""
    from scipy.spatial import cKDTree

    sk, rows = case

    def run():
        return cKDTree(sk.nodes).query(rows.positions)[1]

    benchmark(run)
