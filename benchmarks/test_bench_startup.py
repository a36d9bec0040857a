"""Start-up time: ``mesh-export --help`` vs ``python -c "import trimesh"`` (target: under 2x)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PYTHON = sys.executable
CLI = shutil.which("mesh-export", path=os.path.dirname(PYTHON)) or shutil.which("mesh-export")


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize(
    "case, argv",
    [
        ("mesh-export --help", [CLI, "--help"]),
        ("python -m mesh_export --help", [PYTHON, "-m", "mesh_export", "--help"]),
        ("python -c 'import trimesh'", [PYTHON, "-c", "import trimesh"]),
        ("python -c 'pass'", [PYTHON, "-c", "pass"]),
    ],
    ids=["mesh-export-help", "python-m-mesh_export-help", "import-trimesh", "python-bare"],
)
def test_startup(benchmark, case, argv):
    if argv[0] is None:
        pytest.skip("mesh-export console script not installed")
    benchmark.group = "startup"
    benchmark.extra_info["case"] = case
    _run(argv)  # warm the OS file cache once
    benchmark.pedantic(_run, args=(argv,), rounds=10, iterations=1)
