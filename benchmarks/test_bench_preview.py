"""Preview of a ~1.1M-face neuron mesh at 1200x800: mesh-export's numpy rasteriser vs VTK.

The mesh: navis's five hemibrain example neurons (nm) subdivided twice (1,096,880 faces).
Cases, one group ``preview-1M``:

- ``mesh_export_iso`` / ``mesh_export_3views``: ``preview.render_png`` (vectorised z-buffer,
  smooth/flat Lambert shading, silhouettes, scale bar, caption, PNG written);
- ``vtk_egl``: VTK 9 off-screen rendering (what pyvista uses; here VTK picks its EGL
  window with Mesa's software rasteriser, no GPU, no X): build the vtkPolyData, render
  1200x800, read back, write a PNG. pyvista itself is not installed; trimesh's
  ``scene.save_image`` needs pyglet and an OpenGL context and does not work here.

Peak memory is measured in a fresh subprocess per renderer (Linux: the peak RSS, reset
through ``/proc/self/clear_refs`` just before the render, minus the RSS then, so it includes VTK's C++ allocations that tracemalloc cannot see)
and reported in ``extra_info``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import trimesh

SIZE = (1200, 800)

_MESH = """
import numpy as np, trimesh, navis
vs, fs, off = [], [], 0
for n in navis.example_neurons(kind="mesh"):
    vs.append(np.asarray(n.vertices, float) * 8.0); fs.append(np.asarray(n.faces) + off); off += len(n.vertices)
v, f = trimesh.remesh.subdivide(*trimesh.remesh.subdivide(np.concatenate(vs), np.concatenate(fs)))
mesh = trimesh.Trimesh(v, f, process=False); mesh.metadata["units"] = "nm"
"""


def render_vtk(mesh: trimesh.Trimesh, path: str, size=SIZE) -> None:
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (registers the OpenGL/EGL backend)
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkIOImage import vtkPNGWriter
    from vtkmodules.vtkRenderingCore import (vtkActor, vtkPolyDataMapper, vtkRenderer, vtkRenderWindow,
                                             vtkWindowToImageFilter)

    points = vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(mesh.vertices, dtype=np.float32)))
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(mesh.faces) + 1, 3, dtype=np.int64)
    cells.SetData(numpy_to_vtkIdTypeArray(offsets), numpy_to_vtkIdTypeArray(mesh.faces.astype(np.int64).ravel()))
    poly = vtkPolyData()
    poly.SetPoints(points)
    poly.SetPolys(cells)
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(poly)
    actor = vtkActor()
    actor.SetMapper(mapper)
    renderer = vtkRenderer()
    renderer.AddActor(actor)
    renderer.SetBackground(1, 1, 1)
    window = vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(*size)
    renderer.ResetCamera()
    window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    writer = vtkPNGWriter()
    writer.SetFileName(path)
    writer.SetInputConnection(grab.GetOutputPort())
    writer.Write()
    window.Finalize()


def _vtk_available() -> bool:
    code = "import sys; sys.path.insert(0, %r); from test_bench_preview import render_vtk; import trimesh; " \
           "render_vtk(trimesh.creation.icosphere(2), '/dev/null.png' if False else __import__('tempfile').mktemp(suffix='.png'), (64, 64))"
    try:
        import os

        here = os.path.dirname(__file__)
        return subprocess.run([sys.executable, "-c", code % here], capture_output=True, timeout=120).returncode == 0
    except Exception:
        return False


@pytest.fixture(scope="module")
def million() -> trimesh.Trimesh:
    pytest.importorskip("navis")
    scope: dict = {}
    exec(_MESH, scope)
    mesh = scope["mesh"]
    assert len(mesh.faces) > 1_000_000
    return mesh


def peak_memory(renderer: str, tmp_path) -> dict:
    """Render once in a fresh interpreter; peak RSS growth during the render, in MB."""
    import os

    script = textwrap.dedent(f"""
        import json, resource, sys, time
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        {textwrap.indent(_MESH, '        ').strip()}
        from mesh_export.look import preview
        from test_bench_preview import render_vtk
        import vtkmodules.vtkRenderingOpenGL2, PIL.Image  # imports outside the measurement
        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key):
                    return int(line.split()[1])
        gc = __import__("gc"); gc.collect()
        open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
        before = status("VmRSS:")
        started = time.perf_counter()
        if {renderer!r} == "vtk":
            render_vtk(mesh, {str(tmp_path / 'vtk.png')!r})
        else:
            preview.render_png(mesh, {str(tmp_path / 'ours.png')!r}, views={renderer!r}, size={SIZE!r})
        seconds = time.perf_counter() - started
        after = status("VmHWM:")
        print(json.dumps({{"peak_mb": (after - before) / 1024, "first_call_s": seconds}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("views", ["iso", "xy,xz,yz"])
def test_preview_mesh_export(benchmark, million, tmp_path, views):
    from mesh_export.look import preview

    benchmark.group = "preview-1M"
    benchmark.name = f"mesh_export_{'iso' if views == 'iso' else '3views'}"
    benchmark.extra_info.update({"faces": len(million.faces), **peak_memory(views, tmp_path)})
    info = benchmark.pedantic(preview.render_png, args=(million, tmp_path / "p.png"),
                              kwargs={"views": views, "size": SIZE}, rounds=3, iterations=1)
    assert info.size == SIZE


def test_preview_vtk_egl(benchmark, million, tmp_path):
    if not _vtk_available():
        pytest.skip("VTK cannot render off-screen here")
    benchmark.group = "preview-1M"
    benchmark.name = "vtk_egl"
    benchmark.extra_info.update({"faces": len(million.faces), **peak_memory("vtk", tmp_path)})
    benchmark.pedantic(render_vtk, args=(million, str(tmp_path / "v.png")), rounds=3, iterations=1)
