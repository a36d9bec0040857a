"""A pytest plugin: with MESH_EXPORT_REQUIRE_ALL_TESTS=1 (``make test``, so CI) a skip is a failure.

In CI a skip means a broken install, not a test that does not apply: a missing NEURON, navis,
Dask, pyarrow or PrusaSlicer would otherwise turn its tests into silent skips and leave the run
green. Both kinds of skip are caught:

- a test that skips while it runs (``pytest.skip``, ``importorskip`` in a test or fixture, a
  skip mark) fails (``pytest_runtest_makereport``);
- a module that skips while it is collected (``pytest.importorskip`` at module level,
  ``pytest.skip(allow_module_level=True)``) is a collection error
  (``pytest_make_collect_report``), so the run stops with "errors during collection".

A module that fails to import is a collection error already, whatever the setting. Both
hooks run where the tests are collected and run, so they work under pytest-xdist too (each
worker loads this plugin through the conftest and sends the changed reports on).

``tests/conftest.py`` imports the hooks; another test tree can load it with ``-p support.require_all``.
"""

from __future__ import annotations

import os

import pytest

ENV = "MESH_EXPORT_REQUIRE_ALL_TESTS"


def required() -> bool:
    return os.environ.get(ENV) == "1"


def _reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if required() and report.skipped and not hasattr(report, "wasxfail"):
        reason = _reason(report)
        report.outcome = "failed"
        report.longrepr = f"skipped, but {ENV}=1 requires every test to run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if required() and report.skipped:
        reason = _reason(report)
        report.outcome = "failed"
        report.longrepr = f"{collector.nodeid} skipped while collected, but {ENV}=1 requires every test to run: {reason}"
