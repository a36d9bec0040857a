"""MESH_EXPORT_REQUIRE_ALL_TESTS=1 (``make test``, so CI): a missing test dependency is an error,
not a skip, whether the test skips while it runs or its module skips while it is collected,
with and without pytest-xdist. Each case runs pytest in a subprocess on a tiny test tree whose
conftest loads the hooks exactly as tests/conftest.py does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import conftest
from support import require_all

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"

FILES = {
    "conftest.py": "from support.require_all import pytest_make_collect_report, pytest_runtest_makereport  # noqa\n",
    "test_ok.py": "def test_ok():\n    pass\n",
    "test_module_importorskip.py": """
        import pytest

        pytest.importorskip("no_such_module_for_mesh_export_tests")


        def test_never_collected():
            pass
    """,
    "test_module_level_skip.py": """
        import pytest

        pytest.skip("the consumer is not installed", allow_module_level=True)
    """,
    "test_runtime_skip.py": """
        import pytest


        def test_skips_while_running():
            pytest.importorskip("no_such_module_for_mesh_export_tests")


        @pytest.mark.xfail(reason="an expected failure stays one", strict=True)
        def test_expected_failure():
            assert False
    """,
    "broken/test_import_error.py": "import no_such_module_for_mesh_export_tests  # noqa: F401\n",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("require-all")
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    (root / "broken" / "conftest.py").write_text(FILES["conftest.py"])
    (root / "pytest.ini").write_text("[pytest]\n")  # this tree's own rootdir: no addopts from ours
    return root


def run_pytest(tree: Path, *args: str, require: bool, workers: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != require_all.ENV}
    if require:
        env[require_all.ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(SRC)])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(workers), *args]
    return subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def summary(result) -> dict[str, int]:
    """The counts in pytest's last line, e.g. {"passed": 1, "skipped": 3}."""
    last = result.stdout.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", last)}


def test_the_suite_uses_these_hooks():
    assert conftest.pytest_make_collect_report is require_all.pytest_make_collect_report
    assert conftest.pytest_runtest_makereport is require_all.pytest_runtest_makereport


@pytest.mark.parametrize("workers", [0, 2], ids=["no-xdist", "xdist-n2"])
def test_without_the_setting_skips_stay_skips(tree, workers):
    result = run_pytest(tree, "--ignore=broken", require=False, workers=workers)
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary(result) == {"passed": 1, "skipped": 3, "xfailed": 1}, result.stdout


@pytest.mark.parametrize("workers", [0, 2], ids=["no-xdist", "xdist-n2"])
def test_a_module_skipped_at_collection_is_an_error(tree, workers):
    result = run_pytest(tree, "--ignore=broken", require=True, workers=workers)
    out = result.stdout + result.stderr
    assert result.returncode not in (0, 5), out  # 2: interrupted by errors during collection
    assert summary(result).get("errors", summary(result).get("error")) == 2, out
    for module in ("test_module_importorskip.py", "test_module_level_skip.py"):
        assert f"{module} skipped while collected, but {require_all.ENV}=1 requires every test to run" in out
    assert "no_such_module_for_mesh_export_tests" in out and "the consumer is not installed" in out


@pytest.mark.parametrize("workers", [0, 2], ids=["no-xdist", "xdist-n2"])
def test_a_test_skipped_while_running_fails(tree, workers):
    result = run_pytest(tree, "test_runtime_skip.py", "test_ok.py", require=True, workers=workers)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert summary(result) == {"failed": 1, "passed": 1, "xfailed": 1}, out
    assert f"skipped, but {require_all.ENV}=1 requires every test to run" in out


@pytest.mark.parametrize("require", [False, True])
@pytest.mark.parametrize("workers", [0, 2], ids=["no-xdist", "xdist-n2"])
def test_a_module_that_fails_to_import_is_an_error(tree, workers, require):
    result = run_pytest(tree, "broken", require=require, workers=workers)
    out = result.stdout + result.stderr
    assert result.returncode not in (0, 5), out
    assert "ModuleNotFoundError" in out and "no_such_module_for_mesh_export_tests" in out
