"""jobs.naming: the --name template an export writes by and a batch re-run looks for."""

from __future__ import annotations

import pytest

from mesh_export.errors import InvalidArgumentError
from mesh_export.jobs.naming import DEFAULT_NAME, output_extension, output_name
from mesh_export.writers.catalog import get_writer

ROOT_ID = 864691135010718168


def test_default_name_is_root_id_lod_and_extension():
    assert output_name(DEFAULT_NAME, root_id=ROOT_ID, lod=0, writer=get_writer("stl")) == f"{ROOT_ID}_lod0.stl"
    assert output_name(DEFAULT_NAME, root_id=ROOT_ID, lod=2, writer=get_writer("ply")) == f"{ROOT_ID}_lod2.ply"


@pytest.mark.parametrize("template, expected", [
    ("{root_id}.{ext}", f"{ROOT_ID}.msh"),
    ("{format}/{root_id}", f"gmsh/{ROOT_ID}"),
    ("{datastack}_{root_id}_{lod}.{ext}", f"minnie65_public_{ROOT_ID}_3.msh"),
    ("{root_id:x}.{ext}", f"{ROOT_ID:x}.msh"),
    ("cell.{ext}", "cell.msh"),
])
def test_template_fields(template, expected):
    name = output_name(template, root_id=ROOT_ID, lod=3, writer=get_writer("gmsh"), datastack="minnie65_public")
    assert name == expected


def test_no_datastack_is_empty():
    assert output_name("{datastack}{root_id}", root_id=7, lod=0, writer=get_writer("stl")) == "7"


def test_extension_is_the_writers_first_or_its_name():
    assert output_extension(get_writer("medit")) == "mesh"  # .mesh, .meshb
    assert output_extension(get_writer("neuroml")) == "cell.nml"
    assert output_extension(get_writer("gmsh22")) == "gmsh22"  # meshio gives it no extension
    assert output_name(DEFAULT_NAME, root_id=5, lod=1, writer=get_writer("gmsh22")) == "5_lod1.gmsh22"


@pytest.mark.parametrize("template", ["{id}.stl", "{0}.stl", "{root_id", "{root_id}}{", "{lod:s}",
                                      "{root_id.x}", "{root_id[0]}"])
def test_bad_template_is_a_clear_error(template):
    with pytest.raises(InvalidArgumentError) as info:
        output_name(template, root_id=ROOT_ID, lod=0, writer=get_writer("stl"))
    assert str(info.value) == (f"bad --name template {template!r}: "
                               "use {root_id}, {lod}, {ext}, {format}, {datastack}")


def test_a_batch_rerun_finds_the_file_export_named(tmp_path):
    from mesh_export.jobs.export import export
    from mesh_export.jobs.manifest import already_exported

    request = {"source": "sample", "format": "ply", "lod": 3, "name": "{format}-{root_id}-{lod}.{ext}"}
    export(ROOT_ID, out_dir=tmp_path, use_cache=False, **request)
    batch_kwargs = {"out_dir": tmp_path, "use_cache": False, "progress": False, **request}
    record = already_exported(str(ROOT_ID), batch_kwargs, previous=None)
    assert record["skipped"] and record["output"] == str(tmp_path / f"ply-{ROOT_ID}-3.ply")
    assert already_exported(str(ROOT_ID), {**batch_kwargs, "name": "{root_id}.{ext}"}, previous=None) is None
    # Nothing can have been exported under a bad template or a malformed id: nothing to look for.
    assert already_exported(str(ROOT_ID), {**batch_kwargs, "name": "{id}.{ext}"}, previous=None) is None
    assert already_exported("12x", batch_kwargs, previous=None) is None
