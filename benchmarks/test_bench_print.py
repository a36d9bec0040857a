"""`--print` and `check` of a real-size cell at 60, 100 and 200 mm: time and peak RSS.

The cell is the MICrONS-like "pyramidal" of tests/support/cells.py (185k faces, ~640 um long,
soma, spiny dendrites, axon, debris), printed and checked by the CLI in a subprocess as a user
runs them, under ``/usr/bin/time -f %M`` for the peak resident set (in ``extra_info``).
Set MESH_EXPORT_COMPARE_SRC to another checkout's ``src`` (e.g. main's) to run the same
commands on that code: its figures go beside ours in RESULTS.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.cells import CELLS, cache_dir, cached_cell  # noqa: E402

SIZES = (60, 100, 200)


@pytest.fixture(scope="module")
def cell_file(request, tmp_path_factory):
    cell = cached_cell(cache_dir(request), **CELLS["pyramidal"])
    path = tmp_path_factory.mktemp("print-bench") / "pyramidal.ply"
    cell.mesh.export(path)
    return path


def _timed(args, src=None, errors: list | None = None) -> int:
    """Run the CLI under /usr/bin/time; its peak RSS in KB. With ``errors``, a failed run
    (main's check of a 200 mm print runs out of its memory budget) is noted there instead."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    result = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "mesh_export", *map(str, args)],
                            capture_output=True, text=True, env=env, timeout=1800)
    lines = result.stderr.strip().splitlines()
    if result.returncode != 0 and errors is not None:
        errors.append(next((line for line in lines if "error" in line), lines[0] if lines else ""))
    else:
        assert result.returncode == 0, result.stderr[-2000:]
    return int(lines[-1])


@pytest.mark.parametrize("which", ["branch", "compare"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("command", ["print", "check"])
def test_print_and_check(benchmark, cell_file, tmp_path, size, command, which):
    src = os.environ.get("MESH_EXPORT_COMPARE_SRC") if which == "compare" else None
    if which == "compare" and not src:
        pytest.skip("MESH_EXPORT_COMPARE_SRC not set")
    benchmark.group = f"{command}/pyramidal-{size}mm"
    printed = tmp_path / f"print{size}.stl"
    make = ["convert", cell_file, printed, "--print", f"{size}mm", "--overwrite"]
    if command == "check":
        _timed(make, src)
        args = ["check", printed, "--print", f"{size}mm"]
    else:
        args = make
    peaks, errors = [], []
    benchmark.pedantic(lambda: peaks.append(_timed(args, src, errors if src else None)), rounds=1, iterations=1)
    benchmark.extra_info["peak_rss_mb"] = max(peaks) / 1024
    if errors:
        benchmark.extra_info["error"] = errors[0]
