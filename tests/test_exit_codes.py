"""Every exit code lives in mesh_export.errors, and the README's table matches it."""

from __future__ import annotations

import re
from pathlib import Path

from mesh_export import errors

README = Path(__file__).resolve().parents[1] / "README.md"


def error_classes() -> list[type]:
    seen, todo = [], [errors.MeshExportError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo += cls.__subclasses__()
    return [c for c in seen if c.__module__ == "mesh_export.errors"]


def readme_codes() -> list[int]:
    text = README.read_text()
    table = text[text.index("| code | meaning |"):]
    table = table[: table.index("\n\n")]
    return [int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)]


def test_each_error_class_owns_a_distinct_code():
    codes = [c.exit_code for c in error_classes() if c is not errors.MeshExportError]
    assert len(codes) == len(set(codes))
    assert set(codes).isdisjoint(errors.RUN_EXIT_CODES.values())


def test_no_module_defines_its_own_error_class():
    # The classes the commands raise are the ones errors.py defines (moved modules re-export them).
    from mesh_export.process import check, skeleton, volume

    assert skeleton.SkeletonizeError is errors.SkeletonizeError
    assert skeleton.InvalidSkeletonError is errors.InvalidSkeletonError
    assert check.CheckFailedError is errors.CheckFailedError
    assert volume.VolumeMeshError is errors.VolumeMeshError


def test_readme_table_is_the_codes_in_errors():
    expected = {c.exit_code for c in error_classes() if c is not errors.MeshExportError}
    expected |= set(errors.RUN_EXIT_CODES.values()) - {0}
    listed = readme_codes()
    assert listed == sorted(listed)
    assert set(listed) == expected


def test_batch_and_cli_use_the_codes_from_errors():
    from mesh_export import cli
    from mesh_export.jobs import batch

    assert batch.EXIT_SOME_FAILED == errors.RUN_EXIT_CODES["some_failed"] == 20
    assert batch.EXIT_ALL_FAILED == 21
    assert batch.EXIT_INTERNAL == cli.EXIT_INTERNAL == 70
    assert batch.EXIT_INTERRUPTED == cli.EXIT_INTERRUPTED == 130
