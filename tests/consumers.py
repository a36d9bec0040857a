"""Read files back with the libraries real users open them with: trimesh, meshio, VTK, NEURON."""

from __future__ import annotations

import os

import numpy as np
import pytest
import trimesh

os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")


def corners(vertices, faces) -> np.ndarray:
    """Triangle corner coordinates in face order: equal corners mean equal geometry and winding."""
    return np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]


def with_trimesh(path) -> np.ndarray:
    mesh = trimesh.load(path, process=False, force="mesh")
    return corners(mesh.vertices, mesh.faces)


def with_meshio(path, file_format: str | None = None) -> np.ndarray:
    import meshio

    mesh = meshio.read(path, file_format=file_format)
    faces = np.concatenate([c.data for c in mesh.cells if c.type == "triangle"])
    return corners(mesh.points[:, :3], faces)


def _vtk_corners(output) -> np.ndarray:
    from vtkmodules.util.numpy_support import vtk_to_numpy

    points = vtk_to_numpy(output.GetPoints().GetData())
    cells = output.GetPolys() if hasattr(output, "GetPolys") else output.GetCells()
    offsets = vtk_to_numpy(cells.GetOffsetsArray())
    assert np.all(np.diff(offsets) == 3), "every cell is a triangle"
    return corners(points, vtk_to_numpy(cells.GetConnectivityArray()).reshape(-1, 3))


def with_vtk(path) -> np.ndarray:
    """VTK's own readers: legacy .vtk, XML .vtp and .vtu."""
    from vtkmodules.vtkIOLegacy import vtkPolyDataReader
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLUnstructuredGridReader

    path = str(path)
    reader_class = {
        ".vtk": vtkPolyDataReader,
        ".vtp": vtkXMLPolyDataReader,
        ".vtu": vtkXMLUnstructuredGridReader,
    }[path[path.rindex("."):]]
    reader = reader_class()
    reader.SetFileName(path)
    reader.Update()
    output = reader.GetOutput()
    assert output.GetNumberOfPoints() > 0, f"VTK read no points from {path}"
    return _vtk_corners(output)


def assert_same_geometry(expected: trimesh.Trimesh, actual_corners: np.ndarray, what: str) -> None:
    want = corners(expected.vertices, expected.faces)
    assert actual_corners.shape == want.shape, f"{what}: {actual_corners.shape} != {want.shape}"
    scale = float(np.abs(want).max()) or 1.0
    # float32 storage: ~6e-8 relative; text writers keep 9 significant digits.
    np.testing.assert_allclose(actual_corners, want, rtol=0, atol=scale * 2e-7, err_msg=what)


# -------------------------------------------------------------------- NEURON


def neuron_h():
    neuron = pytest.importorskip("neuron")
    h = neuron.h
    h.load_file("stdrun.hoc")
    h.load_file("import3d.hoc")
    return h


class _Cell:
    """Import3d instantiates sections as attributes of a Python object; keep it alive."""


def _sections_of(h, cell):
    return [sec for sec in h.allsec() if sec.cell() == cell]


def load_swc_in_neuron(path):
    h = neuron_h()
    cell = _Cell()
    reader = h.Import3d_SWC_read()
    reader.input(str(path))
    gui = h.Import3d_GUI(reader, False)
    gui.instantiate(cell)
    sections = _sections_of(h, cell)
    assert sections, f"NEURON made no sections from {path}"
    return cell, sections


_TEMPLATES_LOADED: dict[str, str] = {}


def hoc_template_of(path) -> str:
    """The template a hoc file declares (``begintemplate NAME``)."""
    import re

    with open(path) as handle:
        for line in handle:
            match = re.match(r"begintemplate\s+(\S+)", line)
            if match:
                return match.group(1)
    raise AssertionError(f"{path} declares no template")


def load_hoc_in_neuron(path, template=None):
    """Load a hoc file and instantiate its template (the one the file declares; ``template``,
    when given, must be it). NEURON cannot unload or redefine a template, so a second file
    declaring a name already loaded from another file is an error of the test, not a reuse."""
    h = neuron_h()
    declared = hoc_template_of(path)
    assert template in (None, declared), f"{path} declares {declared}, not {template}"
    loaded_from = _TEMPLATES_LOADED.get(declared)
    if loaded_from is None:
        assert h.load_file(str(path)) == 1, f"NEURON could not load {path}"
        _TEMPLATES_LOADED[declared] = str(path)
    else:
        assert loaded_from == str(path), (f"template {declared} is already loaded from {loaded_from}; "
                                          f"{path} needs a name of its own")
    cell = getattr(h, declared)()
    return cell, _sections_of(h, cell)


def membrane_area(sections) -> float:
    return float(sum(seg.area() for sec in sections for seg in sec))


def spike_trace(h, sections, soma) -> np.ndarray:
    """hh soma, passive dendrites, a current step into the soma: the soma voltage trace."""
    for sec in sections:
        sec.Ra = 100
        sec.cm = 1
        if sec == soma:
            sec.insert("hh")
        else:
            sec.insert("pas")
            for seg in sec:
                seg.pas.g = 5e-5
                seg.pas.e = -65
    stim = h.IClamp(soma(0.5))
    stim.delay, stim.dur, stim.amp = 5, 2, 3.0
    v = h.Vector().record(soma(0.5)._ref_v)
    h.finitialize(-65)
    h.continuerun(30)
    return np.array(v), stim
