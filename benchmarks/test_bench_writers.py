"""Native writers vs meshio, trimesh and one raw ``write`` of the same number of bytes.

One benchmark group per format and mesh (``stl-binary/icosphere8`` ...), with the cases

- ``mesh_export``: the public API, ``mesh_export.write(mesh, path, **options)`` (so it
  includes validation and the temp-file-and-rename);
- ``writer_only``: the registered native writer called directly on a temp path: the same
  bytes without the API's validation (``validate.check_surface``) and temp-file-and-rename,
  to show what the writer itself costs;
- ``meshio``: ``meshio.write`` of the same triangles, where meshio writes the format. For
  binary formats meshio gets float32 points and int32 cells (converted inside the timed
  call) so it writes the same data as we do, not float64/int64; legacy VTK from meshio is
  an UNSTRUCTURED_GRID (``file_format="vtk42"``), ours POLYDATA;
- ``trimesh``: ``mesh.export(path, file_type=...)`` where trimesh writes the format, on a
  freshly built Trimesh each round (no cached face normals, as a user's first export);
- ``raw_write``: ``open(path, "wb").write(data)`` of ``len(data)`` = the size of our
  output: the floor for writing that many bytes to this disk.

The file of the previous round is deleted in the (untimed) setup of every round.

Run with ``python -m pytest benchmarks --benchmark-only``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import trimesh

import mesh_export


def _meshio(file_format: str, binary: bool, **kwargs) -> Callable:
    def write(mesh: trimesh.Trimesh, path: str) -> None:
        import meshio

        points, cells = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        if binary:
            points, cells = points.astype(np.float32), cells.astype(np.int32)
        options = dict(kwargs, binary=binary) if file_format in ("stl", "ply", "vtk42", "vtu") else kwargs
        meshio.write(path, meshio.Mesh(points, [("triangle", cells)]), file_format=file_format, **options)

    return write


def _trimesh(file_type: str, **kwargs) -> Callable:
    def write(mesh: trimesh.Trimesh, path: str) -> None:
        mesh.export(file_obj=path, file_type=file_type, **kwargs)

    return write


@dataclass(frozen=True)
class Format:
    name: str
    ext: str
    text: bool
    options: dict[str, Any] = field(default_factory=dict)
    meshio: Callable | None = None
    trimesh: Callable | None = None


FORMATS = [
    Format("stl-binary", ".stl", False, {}, _meshio("stl", True), _trimesh("stl")),
    Format("stl-ascii", ".stl", True, {"ascii": True}, _meshio("stl", False), _trimesh("stl_ascii")),
    Format("ply-binary", ".ply", False, {}, _meshio("ply", True), _trimesh("ply", encoding="binary")),
    Format("ply-ascii", ".ply", True, {"ascii": True}, _meshio("ply", False), _trimesh("ply", encoding="ascii")),
    Format("obj", ".obj", True, {}, _meshio("obj", False),
           _trimesh("obj", include_normals=False, include_color=False, include_texture=False)),
    Format("off", ".off", True, {}, _meshio("off", False), _trimesh("off")),
    Format("vtk-binary", ".vtk", False, {}, _meshio("vtk42", True)),
    Format("vtk-ascii", ".vtk", True, {"ascii": True}, _meshio("vtk42", False)),
    Format("vtp", ".vtp", False, {}),
    Format("vtp-zlib", ".vtp", False, {"compress": True}),
    Format("vtu", ".vtu", False, {}, _meshio("vtu", True, compression=None)),
    Format("vtu-zlib", ".vtu", False, {"compress": True}, _meshio("vtu", True, compression="zlib")),
]
CASES = ["mesh_export", "writer_only", "meshio", "trimesh", "raw_write"]
MESHES = ["icosphere8", "neuron"]


def _rounds(fmt: Format, mesh_name: str, case: str) -> int:
    """Few rounds where one round takes seconds (other libraries' text writers on 1.3M faces);
    many for the binary writes of a few ms, whose medians otherwise move +-15% between runs."""
    if mesh_name == "neuron":
        return 15
    if case in ("meshio", "trimesh"):
        return 1 if fmt.text else 9
    if fmt.name == "stl-ascii" and case != "raw_write":
        return 3
    return 5 if fmt.text else 15


def _fresh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    copy = trimesh.Trimesh(mesh.vertices.view(np.ndarray), mesh.faces.view(np.ndarray), process=False)
    copy.units = mesh.units
    return copy


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mesh_name", MESHES)
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_write(benchmark, fmt: Format, mesh_name: str, case: str, meshes, bench_dir):
    mesh = meshes[mesh_name]
    path = os.path.join(bench_dir, f"{fmt.name}-{mesh_name}-{case}{fmt.ext}")
    benchmark.group = f"{fmt.name}/{mesh_name}"
    benchmark.extra_info.update(format=fmt.name, mesh=mesh_name, case=case,
                                faces=len(mesh.faces), target_kind="text" if fmt.text else "binary")

    if case == "mesh_export":
        def run(m):
            mesh_export.write(m, path, **fmt.options)
    elif case == "writer_only":
        from mesh_export.writers.catalog import writer_for_path

        native = writer_for_path(path, None).write

        def run(m):
            native(m, path, **fmt.options)
    elif case == "raw_write":
        mesh_export.write(mesh, path, **fmt.options)
        data = bytes(os.path.getsize(path))

        def run(m):
            with open(path, "wb") as handle:
                handle.write(data)
    else:
        writer = getattr(fmt, case)
        if writer is None:
            pytest.skip(f"{case} does not write {fmt.name}")

        def run(m):
            writer(m, path)

    def setup():
        if os.path.exists(path):
            os.remove(path)
        return (_fresh(mesh),), {}

    benchmark.pedantic(run, setup=setup, rounds=_rounds(fmt, mesh_name, case), iterations=1,
                       warmup_rounds=0)
    benchmark.extra_info["bytes"] = os.path.getsize(path)
    os.remove(path)
