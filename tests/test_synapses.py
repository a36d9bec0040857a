"""A cell's synapses mapped onto its morphology: from the fake CAVE's materialization and from
files, through the API and the CLI, read back from the files written (the synapse table with
pandas/pyarrow, the SWC by its columns).

The MICrONS-like "pyramidal" cell (tests/support/cells.py) is served as a graphene layer; its
synapses (tests/support/synapse_tables.py: on spine heads, shafts, the soma, the axon, on a
glial fragment beside it, and far away) are in the fake CAVE's synapse table. Datastacks:

- ``syn``: soma and synapse tables;
- ``tagged``: the same and a spine/shaft/soma prediction table (some of its tags deliberately
  wrong, so that the tags written can only have come from it);
- ``bare``: no soma or synapse table (synapses only from a file).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from mesh_export.api import StepOptions, SynapseOptions, export
from support.cells import CELLS, cache_dir, cached_cell
from support.fake_cave import cell_server, nucleus_frame
from support.neuron_sections import check_sections
from support.synapse_tables import cave_frame, synapses_of, tag_frame, write_file

TOKEN = "0123456789abcdef0123456789abcdef"
TABLES = {"soma_table": "nucleus_detection_v0", "synapse_table": "synapses_pni_2"}
UM = 1000.0


@pytest.fixture(scope="module")
def cell(request):
    return cached_cell(cache_dir(request), **CELLS["pyramidal"])


@pytest.fixture(scope="module")
def root_id():
    from support.neurons import make_root_ids

    return make_root_ids(1, 2323)[0]


@pytest.fixture(scope="module")
def truth(cell, root_id):
    return synapses_of(cell, root_id)


@pytest.fixture(scope="module")
def served(cell, root_id, truth, tmp_path_factory):
    datastacks = {"syn": TABLES, "tagged": TABLES, "bare": {}}
    with cell_server(tmp_path_factory.mktemp("syn-cell"), root_id, cell.mesh, TOKEN, datastacks) as server:
        for name in ("syn", "tagged"):
            server.fakes[name].add_table("nucleus_detection_v0", nucleus_frame([(root_id, cell.nucleus, 280.0)]),
                                         schema="nucleus_detection")
            server.fakes[name].add_table("synapses_pni_2", cave_frame(truth))
        server.predictions = tag_frame(truth, wrong=0.2)
        server.fakes["tagged"].add_table("synapse_target_predictions_ssa", server.predictions, schema="reference_tag")
        yield server


@pytest.fixture(scope="module")
def cave_swc_body(served, root_id, tmp_path_factory):
    """The SWC body (header lines left out) of the cell exported with CAVE's synapses: the one
    every synapse file of the same synapses must reproduce (made once for the module)."""
    with served.fresh():
        cave = _export(served, root_id, tmp_path_factory.mktemp("cave"), steps=StepOptions(soma="mesh"))
    return [line for line in cave.output.read_text().splitlines() if not line.startswith("#")]


@pytest.fixture()
def srv(served):
    with served.fresh():
        yield served


def _export(srv, root_id, tmp_path, datastack="syn", format="swc", **kwargs):
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    return export(root_id, format=format, out_dir=out, datastack=datastack, server=srv.url, token=TOKEN,
                  cache_dir=kwargs.pop("cache_dir", tmp_path / "cache"), overwrite=True,
                  timeout=kwargs.pop("timeout", 20.0), **kwargs)


def _swc_columns(path):
    """The SWC as written: id, type, x, y, z, radius, parent per row (read by its columns)."""
    data = np.loadtxt(path, comments="#", ndmin=2)
    return {int(i): row for i, row in zip(data[:, 0], data)}


def _neuron_distance(swc_path, points) -> np.ndarray:
    """How far each point (um) is from the cell NEURON builds of the SWC (Import3d): from the
    nearest of its sections' 3-D polylines."""
    from consumers import load_swc_in_neuron

    _, sections = load_swc_in_neuron(swc_path)
    best = np.full(len(points), np.inf)
    for sec in sections:
        line = np.array([[sec.x3d(i), sec.y3d(i), sec.z3d(i)] for i in range(int(sec.n3d()))])
        a, ab = line[:-1], np.diff(line, axis=0)
        if not len(a):
            a, ab = line, np.zeros_like(line)
        ab2 = np.maximum((ab * ab).sum(axis=1), 1e-30)
        t = np.clip(np.einsum("pkj,kj->pk", points[:, None] - a[None], ab) / ab2, 0, 1)
        gap = np.linalg.norm(points[:, None] - (a[None] + ab[None] * t[..., None]), axis=2).min(axis=1)
        best = np.minimum(best, gap)
    return best


def _read_table(path) -> pd.DataFrame:
    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def _check_table(table: pd.DataFrame, truth, swc_path, *, directions=True, min_tags=0.90, neuron=False):
    """Every row there, placed or with a reason; where the SWC file puts each placed row; the
    acceptance figures (returned for the record)."""
    assert len(table) == len(truth) and set(table["synapse_id"]) == set(truth.ids.tolist())
    table = table.set_index("synapse_id").loc[truth.ids]
    placed = table["swc_id"].notna().to_numpy()
    # nothing dropped: each row placed, or not placed with a reason
    assert (table["reason"].fillna("").to_numpy()[~placed] != "").all()
    assert (table["reason"].fillna("").to_numpy()[placed] == "").all()
    assert placed[truth.where == "cell"].all(), "a synapse on the cell was not placed"
    assert not placed[truth.where == "far"].any(), "a synapse 400 um away was placed"
    assert table["reason"][truth.where == "far"].str.startswith("far:").all()
    if directions:
        assert (table["direction"].to_numpy() == truth.direction).all()
        assert (table["partner_root_id"].astype("int64").to_numpy() == truth.partner).all()
    else:
        assert (table["direction"] == "unknown").all() and table["partner_root_id"].isna().all()
    np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy(), truth.positions / UM, atol=2e-3)
    np.testing.assert_array_equal(table["size"].to_numpy(), truth.size)

    # The mapped point, from the SWC file: node swc_id, swc_pos of the way to its parent.
    swc = _swc_columns(swc_path)
    rows = table[placed]
    ids = rows["swc_id"].astype(int).to_numpy()
    pos = rows["swc_pos"].to_numpy()
    assert ((pos >= 0) & (pos <= 1)).all()
    node = np.array([swc[i][2:6] for i in ids])
    parent = np.array([swc[int(swc[i][6])][2:6] if swc[i][6] > 0 else swc[i][2:6] for i in ids])
    point = node[:, :3] + (parent[:, :3] - node[:, :3]) * pos[:, None]
    radius = node[:, 3] + (parent[:, 3] - node[:, 3]) * pos
    gap = np.linalg.norm(rows[["x", "y", "z"]].to_numpy() - point, axis=1)
    np.testing.assert_allclose(gap, rows["distance_to_axis"].to_numpy(), atol=2e-3)
    if neuron:  # and the point is on the cell NEURON builds of the same file
        assert _neuron_distance(swc_path, point).max() < 1e-3
    excess = gap - radius
    within_2 = float(np.mean(excess <= 2.0))
    assert within_2 >= 0.98, within_2
    assert excess.max() <= 4.0, excess.max()
    # synapses on a drawn spine name its tip, a node of the file, and measure as spine synapses
    on_spine = rows[rows["spine_swc_id"].notna()]
    assert len(on_spine) and set(on_spine["spine_swc_id"].astype(int)) <= set(swc)
    assert (on_spine.loc[on_spine["tag_source"] == "measured", "tag"] == "spine").all()

    # tags, against the membrane each input sits on (outputs: their partner's, not known here)
    inputs = placed & (truth.where == "cell") & ((truth.direction == "input") if directions else True)
    tags = table["tag"].fillna("").to_numpy()
    right = float(np.mean(tags[inputs] == truth.tag[inputs]))
    assert right >= min_tags, right
    return {"placed": int(placed.sum()), "within_2um": within_2, "max_excess_um": float(excess.max()),
            "tags_right": right}


def test_cave_synapses_on_the_swc(srv, cell, root_id, truth, tmp_path):
    """The datastack's synapse table, paged (500 rows a query), mapped onto the SWC."""
    result = _export(srv, root_id, tmp_path, synapses=SynapseOptions(page_rows=500))
    table_path = result.output.with_name(result.output.name + ".synapses.csv")
    figures = _check_table(pd.read_csv(table_path), truth, result.output, neuron=True)
    assert srv.unknown_paths == []
    # every page asked for: limit 500, offsets 0, 500, 1000, ... until a short page
    queries = [body for name, body in srv.fakes["syn"].queries if name == "synapses_pni_2"]
    offsets = sorted(body.get("offset") or 0 for body in queries
                     if "post_pt_root_id" in body["filter_equal_dict"]["synapses_pni_2"])
    inputs = int((truth.direction == "input").sum())
    assert offsets == list(range(0, inputs + 1, 500)) and all(body["limit"] == 500 for body in queries)
    sidecar = json.loads(result.sidecar.read_text())
    counts = sidecar["synapses"]
    assert counts["file"] == table_path.name and counts["units"] == "um"
    assert counts["rows"] == len(truth) and counts["placed"] == figures["placed"]
    assert counts["not_placed_reasons"] == {"far": int((truth.where == "far").sum())}
    assert counts["tag_source"] == {"measured": counts["tag_source"]["measured"], "none": counts["tag_source"]["none"]}
    assert sidecar["steps"][-1]["compartments"]["axon"]  # and the axon still told by them
    assert "no spine/shaft/soma prediction table" in sidecar["steps"][-1]["cave"]["synapses"]["tags"]


@pytest.mark.parametrize("format", ["hoc", "neuroml"])
def test_every_morphology_format_writes_the_same_rows(srv, root_id, tmp_path, format):
    """The table travels with the skeleton: hoc and NeuroML exports write the SWC export's rows;
    the hoc export's sections and x are where NEURON puts the synapses on the cell from the hoc
    and from Import3d of the SWC, and --synapse-hoc's Exp2Syn are the placed inputs."""
    swc = _export(srv, root_id, tmp_path / "swc")
    hoc = SynapseOptions(hoc=True) if format == "hoc" else None
    other = _export(srv, root_id, tmp_path / format, format=format, synapses=hoc)
    a = pd.read_csv(swc.output.with_name(swc.output.name + ".synapses.csv"))
    b = pd.read_csv(other.output.with_name(other.output.name + ".synapses.csv"))
    pd.testing.assert_frame_equal(a, b)
    if format == "hoc":
        check_sections(b, other.output, swc.output)
        record = json.loads(other.sidecar.read_text())["synapses"]["hoc"]
        assert record == {"file": other.output.name + ".synapses.hoc",
                          "exp2syn": int(((b["direction"] == "input") & b["section"].notna()).sum())}
        assert other.output.with_name(record["file"]).is_file()


def test_prediction_table_tags_win(srv, root_id, truth, tmp_path):
    result = _export(srv, root_id, tmp_path, datastack="tagged")
    table = pd.read_csv(result.output.with_name(result.output.name + ".synapses.csv")).set_index("synapse_id")
    predicted = srv.predictions.set_index("target_id")["tag"]
    placed = table.loc[predicted.index]
    placed = placed[placed["swc_id"].notna()]
    assert (placed["tag"] == predicted.loc[placed.index]).all()  # wrong ones included: taken as given
    assert (placed["tag_source"] == "predicted").all()
    sidecar = json.loads(result.sidecar.read_text())
    assert "tags from synapse_target_predictions_ssa" in sidecar["steps"][-1]["cave"]["synapses"]["tags"]
    queried = [body for name, body in srv.fakes["tagged"].queries if name == "synapse_target_predictions_ssa"]
    assert queried and set(queried[0]["filter_in_dict"]["synapse_target_predictions_ssa"]["target_id"]) == set(
        truth.ids.tolist())


def test_synapses_come_from_the_cache_the_second_time(srv, root_id, tmp_path):
    first = _export(srv, root_id, tmp_path / "a", cache_dir=tmp_path / "cache")
    asked = srv.count(r"synapses_pni_2/query$")
    second = _export(srv, root_id, tmp_path / "b", cache_dir=tmp_path / "cache")
    assert srv.count(r"synapses_pni_2/query$") == asked  # not asked again
    sidecar = json.loads(second.sidecar.read_text())
    assert sidecar["steps"][-1]["cave"]["synapses"]["cache"] == "hit"
    a = pd.read_csv(first.output.with_name(first.output.name + ".synapses.csv"))
    b = pd.read_csv(second.output.with_name(second.output.name + ".synapses.csv"))
    pd.testing.assert_frame_equal(a, b)  # ids, root ids (64 bits), sizes, positions as fetched


@pytest.mark.parametrize("name,split,voxel", [
    ("syn.csv", False, False),      # [x, y, z] text, nm
    ("syn.tsv", True, True),        # _x/_y/_z, voxels
    ("syn.parquet", False, True),   # a list column, voxels
    ("syn.parquet", True, False),   # _x/_y/_z, nm
])
def test_synapses_from_a_file_as_from_cave(srv, root_id, truth, cave_swc_body, tmp_path, name, split, voxel):
    """--synapses-file on a datastack with no synapse table: the same table, and the axon split
    from the file's synapses exactly as from CAVE's (the same SWC)."""
    path = write_file(truth, tmp_path / name, split=split, voxel=voxel)
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    args = [root_id, "--format", "swc", "--datastack", "bare", "--server", srv.url, "--token", TOKEN,
            "--synapses-file", path, "--out", tmp_path / "file", "--soma", "mesh"]
    if voxel:
        args += ["--synapse-resolution", "4,4,40"]
    if name.endswith(".parquet"):
        args += ["--synapses-format", "parquet"]
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    swc = tmp_path / "file" / f"{root_id}_lod0.swc"
    table = _read_table(swc.with_name(swc.name + (".synapses.parquet" if name.endswith(".parquet") else ".synapses.csv")))
    _check_table(table, truth, swc)
    assert [line for line in swc.read_text().splitlines() if not line.startswith("#")] == cave_swc_body
    assert "compartments: axon (type 2) by synapse flow centrality (synapses from " + path.name in swc.read_text()


def test_convert_with_a_synapse_file(cell, root_id, truth, tmp_path):
    """convert: --root-id tells inputs from outputs; without it every row is placed, direction unknown."""
    mesh_path = tmp_path / "cell.ply"
    cell.mesh.export(mesh_path)
    path = write_file(truth, tmp_path / "syn.csv")
    done = run_cli("convert", mesh_path, tmp_path / "cell.swc", "--units-in", "nm", "--synapses-file", path,
                   "--root-id", root_id, "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["synapses"]
    assert record["rows"] == len(truth) and record["direction"]["input"] == int((truth.direction == "input").sum())
    _check_table(pd.read_csv(tmp_path / "cell.swc.synapses.csv"), truth, tmp_path / "cell.swc")
    assert "compartments: axon (type 2)" in (tmp_path / "cell.swc").read_text()

    done = run_cli("convert", mesh_path, tmp_path / "anon.swc", "--units-in", "nm", "--synapses-file", path)
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'anon.swc.synapses.csv'} (" in done.stdout
    _check_table(pd.read_csv(tmp_path / "anon.swc.synapses.csv"), truth, tmp_path / "anon.swc", directions=False)
    assert "without a root id (--root-id) to tell inputs from outputs" in (tmp_path / "anon.swc").read_text()


def test_convert_an_swc_with_a_synapse_file(cell, root_id, truth, tmp_path):
    """A morphology someone already has (an SWC) takes a synapse file too: convert maps the rows
    onto it and writes the table beside the output, placed where that SWC puts them."""
    mesh_path = tmp_path / "cell.ply"
    cell.mesh.export(mesh_path)
    path = write_file(truth, tmp_path / "syn.csv")
    done = run_cli("convert", mesh_path, tmp_path / "cell.swc", "--units-in", "nm", "--no-synapses")
    assert done.returncode == 0, done.stderr
    done = run_cli("convert", tmp_path / "cell.swc", tmp_path / "again.swc", "--synapses-file", path,
                   "--root-id", root_id, "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["synapses"]
    assert record["rows"] == len(truth) and record["direction"]["output"] == int((truth.direction == "output").sum())
    _check_table(pd.read_csv(tmp_path / "again.swc.synapses.csv"), truth, tmp_path / "again.swc", min_tags=0.0)
    done = run_cli("convert", tmp_path / "cell.swc", tmp_path / "cell.hoc", "--synapses-file", path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cell.hoc.synapses.csv").is_file()


# ------------------------------------------------------------------------------ bad input


def _cli(srv, root_id, tmp_path, *extra, datastack="bare"):
    env = {"MESH_EXPORT_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    return run_cli(root_id, "--format", "swc", "--datastack", datastack, "--server", srv.url, "--token", TOKEN,
                   "--out", tmp_path / "out", "--soma", "mesh", "--timeout", "2", *extra, env=env)


def _one_line_error(done, code, words):
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and words in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_file_without_positions_or_roots(srv, root_id, truth, tmp_path):
    no_position = write_file(truth, tmp_path / "a.csv", columns=["id", "pre_pt_root_id", "post_pt_root_id"])
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", no_position), 3, "has no synapse position")
    no_roots = write_file(truth, tmp_path / "b.csv", columns=["id", "ctr_pt_position"])
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", no_roots), 3,
                    "needs pre_pt_root_id and post_pt_root_id columns")
    (tmp_path / "c.csv").write_text("id,ctr_pt_position\n1,[1, 2]\n")
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", tmp_path / "c.csv"), 3, "is not [x, y, z]")
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", tmp_path / "none.csv"), 3,
                    "synapse file not found")
    assert not (tmp_path / "out" / f"{root_id}_lod0.swc").exists()


def test_positions_in_the_wrong_units(srv, root_id, truth, tmp_path):
    """nm read as voxels (or voxels as nm): nothing lands near the cell, and it says so."""
    nm = write_file(truth, tmp_path / "nm.csv")
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", nm, "--synapse-resolution", "4,4,40"), 3,
                    "lies within 4 um of the cell")
    voxels = write_file(truth, tmp_path / "vox.csv", voxel=True)
    done = _cli(srv, root_id, tmp_path, "--synapses-file", voxels)
    _one_line_error(done, 3, "voxels? give --synapse-resolution X,Y,Z")
    assert not (tmp_path / "out" / f"{root_id}_lod0.swc").exists()


def test_bad_synapse_options(srv, root_id, truth, tmp_path):
    path = write_file(truth, tmp_path / "s.csv")
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", path, "--format", "stl"), 2,
                    "--synapses-file maps synapses onto a morphology")
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", path, "--synapses-format", "xlsx"), 2,
                    "--synapses-format is csv or parquet")
    _one_line_error(_cli(srv, root_id, tmp_path, "--synapses-file", path, "--synapse-resolution", "4,4"), 2,
                    "--synapse-resolution takes three positive numbers")


def test_a_datastack_without_a_synapse_table(srv, root_id, tmp_path):
    """The documented fallback: the morphology, every neurite type 3, the reason, no table."""
    done = _cli(srv, root_id, tmp_path)
    assert done.returncode == 0, done.stderr
    swc = tmp_path / "out" / f"{root_id}_lod0.swc"
    assert "every neurite type 3 (datastack bare names no synapse table" in swc.read_text()
    assert not swc.with_name(swc.name + ".synapses.csv").exists()
    assert "synapses" not in json.loads(swc.with_name(swc.name + ".json").read_text())


def test_a_synapse_table_that_keeps_failing(srv, root_id, tmp_path):
    srv.inject(r"/materialize/.*/synapses_pni_2/query$", "503", times=None)
    done = _cli(srv, root_id, tmp_path, datastack="syn")
    assert done.returncode == 0, done.stderr
    swc = tmp_path / "out" / f"{root_id}_lod0.swc"
    assert "synapse table synapses_pni_2 could not be read" in swc.read_text()
    assert not swc.with_name(swc.name + ".synapses.csv").exists()
    assert srv.count(r"synapses_pni_2/query$") >= 2  # retried within --timeout


def test_no_synapses_writes_no_table(srv, root_id, tmp_path):
    done = _cli(srv, root_id, tmp_path, "--no-synapses", datastack="syn")
    assert done.returncode == 0, done.stderr
    swc = tmp_path / "out" / f"{root_id}_lod0.swc"
    assert not swc.with_name(swc.name + ".synapses.csv").exists() and srv.count(r"synapses_pni_2/query$") == 0


def test_a_batch_passes_the_synapse_options_along(srv, root_id, truth, tmp_path):
    """A batch (--workers 2) exports with the file's synapses; a re-run of the same request is
    skipped, one with another --synapses-format is not."""
    path = write_file(truth, tmp_path / "s.tsv", split=True)
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{root_id}\n")
    done = _cli(srv, root_id, tmp_path, "--synapses-file", path, "--ids-file", ids, "--workers", "2", "--json")
    assert done.returncode == 0, done.stderr
    swc = tmp_path / "out" / f"{root_id}_lod0.swc"
    assert len(pd.read_csv(swc.with_name(swc.name + ".synapses.csv"))) == len(truth)
    again = _cli(srv, root_id, tmp_path, "--synapses-file", path, "--ids-file", ids, "--workers", "2", "--json")
    assert json.loads(again.stdout.splitlines()[0]).get("skipped") is True
    # another request: not skipped, so it would replace the file (refused without --overwrite)
    args = ["--synapses-file", path, "--ids-file", ids, "--workers", "2", "--synapses-format", "parquet"]
    refused = _cli(srv, root_id, tmp_path, *args)
    assert refused.returncode != 0 and "exists; pass --overwrite" in refused.stderr
    done = _cli(srv, root_id, tmp_path, *args, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert len(pd.read_parquet(swc.with_name(swc.name + ".synapses.parquet"))) == len(truth)


def test_a_prediction_table_that_keeps_failing_leaves_tags_measured(srv, root_id, truth, tmp_path):
    srv.inject(r"/materialize/.*/synapse_target_predictions_ssa/query$", "503", times=None)
    result = _export(srv, root_id, tmp_path, datastack="tagged", timeout=2.0)
    sidecar = json.loads(result.sidecar.read_text())
    note = sidecar["steps"][-1]["cave"]["synapses"]["tags"]
    assert "prediction table synapse_target_predictions_ssa could not be read" in note and "503" in note
    table = pd.read_csv(result.output.with_name(result.output.name + ".synapses.csv"))
    assert set(table["tag_source"].dropna()) == {"measured"}
    assert srv.count(r"synapse_target_predictions_ssa/query$") >= 2  # retried within the budget
    srv.clear_faults()  # not cached without its tags: asked again, and now they come
    again = _export(srv, root_id, tmp_path, datastack="tagged")
    table = pd.read_csv(again.output.with_name(again.output.name + ".synapses.csv"))
    assert "predicted" in set(table["tag_source"].dropna())


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_an_empty_id_cell_keeps_every_other_root_id_exact(cell, root_id, truth, tmp_path, suffix):
    """A synapse file whose id columns have a gap: pandas would read them as float64, and an
    18-digit root id through a float loses its last digits (every partner the same wrong id).
    The ids are read exactly; the row with no presynaptic id has no partner."""
    import pandas as pd

    from mesh_export.retrieve.synapse_files import read_synapse_file

    path = write_file(truth, tmp_path / f"syn.{suffix}")
    frame = pd.read_parquet(path) if suffix == "parquet" else pd.read_csv(path, dtype={"pre_pt_root_id": str})
    gap = int(np.flatnonzero(truth.direction == "input")[0])
    frame["pre_pt_root_id"] = frame["pre_pt_root_id"].astype(object)
    frame.loc[gap, "pre_pt_root_id"] = None
    if suffix == "parquet":
        frame["pre_pt_root_id"] = pd.array([None if v is None else int(v) for v in frame["pre_pt_root_id"]],
                                           dtype="Int64")
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    rows = read_synapse_file(path, None, root_id)
    expected = truth.pre.copy()
    expected[gap] = 0
    np.testing.assert_array_equal(rows.pre, expected)
    np.testing.assert_array_equal(rows.post, truth.post)
    assert len(set(rows.partners(root_id)[truth.direction == "input"].tolist()) - {0}) > 1


def test_a_root_id_no_row_names_is_refused(cell, root_id, truth, tmp_path):
    mesh_path = tmp_path / "cell.ply"
    cell.mesh.export(mesh_path)
    path = write_file(truth, tmp_path / "syn.csv")
    done = run_cli("convert", mesh_path, tmp_path / "cell.swc", "--units-in", "nm", "--synapses-file", path,
                   "--root-id", "864691135999999999")
    _one_line_error(done, 3, "names root id 864691135999999999")
    assert not (tmp_path / "cell.swc").exists()
