"""Fixtures for the writer benchmarks: a ~1.3M-face icosphere and a real neuron mesh.

Every case writes a fresh file into one session temp directory on the same disk as the
repository (the file from the previous round is removed outside the timed region), so
mesh-export, meshio, trimesh and the raw ``write`` baseline all pay the same filesystem
costs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")

# The fixture builders (tests/support: zmesh, navis) are test code, not part of the package.
_TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))


def _nm_mesh(vertices, faces) -> trimesh.Trimesh:
    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces), process=False)
    mesh.units = "nm"
    return mesh


@pytest.fixture(scope="session")
def icosphere8() -> trimesh.Trimesh:
    """trimesh icosphere(subdivisions=8): 655,362 vertices, 1,310,720 faces, radius 5e4 nm."""
    sphere = trimesh.creation.icosphere(subdivisions=8, radius=5.0e4)
    return _nm_mesh(sphere.vertices, sphere.faces)


@pytest.fixture(scope="session")
def neuron() -> trimesh.Trimesh:
    """The first of navis's hemibrain example meshes (8 nm voxels), in nanometres."""
    navis = pytest.importorskip("navis")
    first = navis.example_neurons(kind="mesh")[0]
    return _nm_mesh(np.asarray(first.vertices, dtype=np.float64) * 8.0, first.faces)


@pytest.fixture(scope="session")
def meshes(icosphere8, neuron) -> dict[str, trimesh.Trimesh]:
    return {"icosphere8": icosphere8, "neuron": neuron}


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory):
    """Output directory; pytest's basetemp, which sits on the same disk as /work here."""
    return tmp_path_factory.mktemp("bench-out")
