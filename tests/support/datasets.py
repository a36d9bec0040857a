"""Build every fixture layer once per test session, and serve them.

:func:`build_fixture_data` writes, under one directory (the server's root):

- ``legacy/``: unsharded legacy meshes, gzipped fragments (``X.gz``);
- ``multires/``: sharded multi-LOD Draco meshes (4 LODs, 2 shards);
- ``multires_unsharded/``: the same, unsharded;
- ``graphene/``: a graphene segmentation (``data/`` + ``chunkedgraph.json``);

from one seeded set of neuron-like cells, and returns a :class:`FixtureData`
describing them (ids, expected meshes, faces per LOD, fragment names).

The pytest fixtures ``fixture_data`` and ``fixture_server`` are session-scoped;
import them into a test module (``from support.datasets import fixture_data,
fixture_server``) or a conftest to use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from .server import FixtureServer

#: A hex token: CloudVolume rejects tokens that are neither hex nor base64.
TOKEN = "0123456789abcdef0123456789abcdef"
GRAPHENE_TABLE = "synthetic_graph"
DATASTACK = "synthetic_stack"
LAYERS = ("legacy", "multires", "multires_unsharded")


@dataclass
class FixtureData:
    """What was written, and what a reader should get back."""

    root: Path
    root_ids: list[int]
    meshes: dict  # {root id: trimesh.Trimesh} as generated (nm)
    volume: object  # support.neurons.NeuronVolume
    geometry: object  # support.precomputed.LayerGeometry
    multires_faces: dict[int, list[int]]  # faces per LOD, before cutting into fragments
    num_lods: int
    legacy_fragments: dict[int, list[str]]
    graphene: dict  # the chunkedgraph.json description
    missing_id: int  # a well-formed root id that no layer holds
    token: str = TOKEN
    graphene_table: str = GRAPHENE_TABLE
    datastack: str = DATASTACK

    @property
    def graphene_dir(self) -> Path:
        return self.root / "graphene"

    def precomputed_url(self, server: FixtureServer, layer: str) -> str:
        return f"precomputed://{server.url}/{layer}"

    def file_url(self, layer: str) -> str:
        return f"precomputed://file://{self.root / layer}"

    def serve(self, **kwargs) -> FixtureServer:
        """An unstarted server over ``root`` with the graphene dataset and datastack."""
        srv = FixtureServer(self.root, token=self.token, **kwargs)
        srv.add_graphene(self.graphene_table, self.graphene_dir)
        srv.add_datastack(self.datastack, graphene_table=self.graphene_table)
        return srv


def build_fixture_data(root: str | Path, n_cells: int = 3, seed: int = 7, num_lods: int = 4) -> FixtureData:
    """Generate cells and write all fixture layers under ``root`` (a few seconds)."""
    from support.neurons import make_root_ids, neuron_meshes
    from support.precomputed import (
        LayerGeometry,
        write_graphene_layer,
        write_legacy_mesh_layer,
        write_multires_layer,
    )

    root = Path(root)
    meshes, volume = neuron_meshes(n_cells=n_cells, seed=seed, return_volume=True)
    geometry = LayerGeometry(
        resolution=volume.resolution, voxel_offset=volume.voxel_offset,
        size=volume.shape, chunk_size=(64, 64, 16),
    )
    legacy = write_legacy_mesh_layer(root / "legacy", meshes, geometry=geometry, compress=True)
    faces = write_multires_layer(
        root / "multires", meshes, geometry=geometry, num_lods=num_lods, sharded=True,
        shard_bits=1, minishard_bits=1,
    )
    write_multires_layer(root / "multires_unsharded", meshes, geometry=geometry,
                         num_lods=num_lods, sharded=False)
    graphene = write_graphene_layer(root / "graphene", meshes, geometry=geometry, table=GRAPHENE_TABLE)

    ids = sorted(int(i) for i in meshes)
    # Same id scheme, different seed: well-formed but absent everywhere.
    missing = next(i for i in make_root_ids(n_cells + 5, seed + 1000) if i not in meshes)
    return FixtureData(
        root=root, root_ids=ids, meshes=meshes, volume=volume, geometry=geometry,
        multires_faces=faces, num_lods=num_lods, legacy_fragments=legacy,
        graphene=graphene, missing_id=missing,
    )


def mesh_bounds(vertices) -> np.ndarray:
    vertices = np.asarray(vertices, dtype=float)
    return np.stack([vertices.min(axis=0), vertices.max(axis=0)])


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory) -> FixtureData:
    return build_fixture_data(tmp_path_factory.mktemp("fixture-layers"))


@pytest.fixture(scope="session")
def fixture_server(fixture_data) -> Iterator[FixtureServer]:
    with fixture_data.serve() as srv:
        yield srv


@pytest.fixture()
def srv(fixture_server) -> Iterator[FixtureServer]:
    """The session's server with no faults, an empty request log and no added latency."""
    with fixture_server.fresh():
        yield fixture_server
