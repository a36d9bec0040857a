"""Shared fixtures: real neuron meshes (navis's hemibrain examples) and synthetic edge cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

# Keep every library away from the home directory and the network.
os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")

# The sample generator lives in tools/ (it is not part of the package); the tests rebuild with it.
TOOLS = Path(__file__).resolve().parents[1] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))


@pytest.fixture(scope="session")
def neuron_meshes() -> dict[str, trimesh.Trimesh]:
    """navis's example hemibrain neurons, converted from 8 nm voxels to nanometres."""
    navis = pytest.importorskip("navis")
    meshes = {}
    for neuron in navis.example_neurons(kind="mesh"):
        mesh = trimesh.Trimesh(np.asarray(neuron.vertices, dtype=np.float64) * 8.0,
                               np.asarray(neuron.faces), process=False)
        mesh.units = "nm"
        meshes[str(neuron.id)] = mesh
    assert meshes, "navis ships example meshes"
    return meshes


@pytest.fixture(scope="session")
def neuron_mesh(neuron_meshes) -> trimesh.Trimesh:
    return next(iter(neuron_meshes.values()))


@pytest.fixture(scope="session")
def sphere() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=2500.0)
    mesh = trimesh.Trimesh(mesh.vertices + [1.0e5, -2.0e4, 3.3e4], mesh.faces, process=False)
    mesh.units = "nm"
    return mesh


def grid_surface(n: int) -> trimesh.Trimesh:
    """An n x n vertex height field: 2 (n-1)^2 triangles, built vectorised (fast at 1M faces)."""
    xs, ys = np.meshgrid(np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64))
    zs = np.sin(xs / 17.0) * np.cos(ys / 23.0) * 40.0
    vertices = np.column_stack([xs.ravel() * 8.0, ys.ravel() * 8.0, zs.ravel()])
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, d]), np.column_stack([a, d, c])])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.units = "nm"
    return mesh


@pytest.fixture(scope="session")
def million_face_mesh() -> trimesh.Trimesh:
    mesh = grid_surface(709)  # 2 * 708^2 = 1,002,528 faces
    assert len(mesh.faces) > 1_000_000
    return mesh


def run_cli(*args: str, env: dict | None = None, cwd: str | Path | None = None, stdin: str | None = None,
            timeout: float = 300, subprocess_: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI as a user would: its own process, environment, working directory and exit code.

    By default the process is a fork of this one (the libraries are imported already, which saves
    1-3 s a call); ``subprocess_=True`` (or MESH_EXPORT_TEST_SUBPROCESS=1) starts a new interpreter
    instead, the way the installed command runs."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    argv = [str(a) for a in args]
    # A new PYTHONPATH (a plugin on it) only takes effect in a new interpreter.
    fresh = subprocess_ or "PYTHONPATH" in (env or {}) or os.environ.get("MESH_EXPORT_TEST_SUBPROCESS") == "1"
    if fresh or not hasattr(os, "fork"):
        return subprocess.run([sys.executable, "-m", "mesh_export", *argv], capture_output=True, text=True,
                              env=full_env, cwd=cwd, timeout=timeout, input=stdin)
    return _forked_cli(argv, full_env, cwd, stdin, timeout)


def _forked_cli(argv, env, cwd, stdin, timeout) -> subprocess.CompletedProcess:
    import io
    import signal
    import tempfile
    import time

    import mesh_export.cli  # noqa: F401  (imported before the fork, so the child does not pay for it)

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as inp:
        inp.write((stdin or "").encode())
        inp.seek(0)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 70
            try:
                os.dup2(inp.fileno(), 0)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
                sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
                sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                os.environ.clear()
                os.environ.update(env)
                if cwd is not None:
                    os.chdir(cwd)
                # As a new process would: no layer info or shard index read by an earlier in-process test.
                for name, module in list(sys.modules.items()):
                    if name.startswith("mesh_export") and isinstance(getattr(module, "_LAYERS", None), dict):
                        module._LAYERS.clear()
                from mesh_export.cli import main

                try:
                    main(argv)
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                    if isinstance(exc.code, str):
                        sys.stderr.write(exc.code + "\n")
            except BaseException:  # noqa: BLE001  (a bug in the runner itself: show it)
                import traceback

                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise subprocess.TimeoutExpired(["mesh-export", *argv], timeout)
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(["mesh-export", *argv], os.waitstatus_to_exitcode(status),
                                           out.read().decode(errors="replace"), err.read().decode(errors="replace"))


@pytest.fixture()
def workdir(tmp_path):
    """A private HOME (no real secrets), a cache and an output folder for one CLI test."""
    (tmp_path / "home").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


@pytest.fixture()
def config_dir(tmp_path, monkeypatch):
    """A private mesh-export config directory (datastacks.toml): the user's own never leaks in."""
    from mesh_export.retrieve.datastacks import CONFIG_ENV

    path = tmp_path / "config"
    path.mkdir()
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return path


def cli_in(workdir, *args, token=None, env=None) -> subprocess.CompletedProcess:
    """Run mesh-export inside ``workdir``: its HOME, its cache, outputs in workdir/out."""
    full_env = {"HOME": str(workdir / "home"), "MESH_EXPORT_CACHE": str(workdir / "cache"),
                "CAVE_TOKEN": token or ""}
    full_env.update(env or {})
    return run_cli(*args, env=full_env, cwd=workdir / "out")


# In CI (the Makefile sets MESH_EXPORT_REQUIRE_ALL_TESTS=1) a skip is a failure, at run time and
# at collection time alike: see support/require_all.py.
from support.require_all import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401


@pytest.fixture(scope="session")
def prusa_slicer() -> str:
    """The PrusaSlicer executable. `make test` (and so CI) installs it and sets
    MESH_EXPORT_REQUIRE_SLICER: there a missing slicer fails the test instead of skipping it."""
    import shutil

    path = shutil.which("prusa-slicer")
    if path is None:
        if os.environ.get("MESH_EXPORT_REQUIRE_SLICER"):
            pytest.fail("prusa-slicer is not installed but MESH_EXPORT_REQUIRE_SLICER is set (make slicer)")
        pytest.skip("PrusaSlicer not installed (make slicer, or apt-get install prusa-slicer)")
    return path


def slice_with_prusa(slicer: str, model, gcode, *extra: str) -> str:
    """Slice ``model`` with PrusaSlicer's defaults (no flags but ``extra``); the log, lowercased.
    Fails the test unless the slicer exits 0, says no error and writes G-code."""
    result = subprocess.run([slicer, "--export-gcode", str(model), "--output", str(gcode), *extra],
                            capture_output=True, text=True, timeout=600)
    # PrusaSlicer logs every step at [trace] level on stderr: keep what it says otherwise.
    log = "\n".join(line for line in (result.stdout + result.stderr).lower().splitlines()
                    if "[trace]" not in line and "[debug]" not in line)
    assert result.returncode == 0, log[-2000:]
    assert "error" not in log and "no extrusions in the first layer" not in log, log[-2000:]
    assert Path(gcode).stat().st_size > 10000, log[-2000:]
    return log


@pytest.fixture()
def writer_table():
    """The registry as the catalogue filled it, restored after the test: writers a test
    registers never leak into the next one."""
    from mesh_export.writers import catalog, registry

    catalog.ensure_loaded()
    saved = dict(registry._WRITERS)
    yield registry
    registry._WRITERS.clear()
    registry._WRITERS.update(saved)
    registry._forget_index()
    assert registry.in_listing_order() and set(registry._WRITERS) == set(saved)


def pytest_collection_modifyitems(session, config, items):
    """The longest files first (each file's own order kept), by the seconds last measured
    (support/test_seconds.json; a file not measured yet counts as long as its `slow` tests make
    it look: 10 s each, 1 s for any other). xdist hands out whole files (--dist loadfile) in this
    order, so the long files start at once on both workers and the short ones fill in at the
    end, instead of one long file arriving last and running alone while the other worker idles."""
    from support.test_seconds import measured

    seconds = measured()
    guessed: dict[str, float] = {}
    for item in items:
        name = item.nodeid.split("::")[0]
        guessed[name] = guessed.get(name, 0.0) + (10.0 if item.get_closest_marker("slow") else 1.0)
    cost = {name: seconds.get(name, guess) for name, guess in guessed.items()}
    items.sort(key=lambda item: -cost[item.nodeid.split("::")[0]])
