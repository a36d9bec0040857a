"""--format precomputed: a processed cell written as Neuroglancer precomputed layers and read back
by other people's readers: CloudVolume's mesh source at every lod and its skeleton source, the
neuroglancer package's annotation reader (tensorstore), the segment properties as JSON; ids added
to the layers later; what is refused; ``link --layers [--serve]``.

The MICrONS-like "coarse" cell (tests/support/cells.py: ~22k faces, dendrites of 100-300 um) is
served as a graphene layer with a fake CAVE holding its synapses, and a copy of it moved by 20 um
under a second id.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from conftest import run_cli
from mesh_export.api import LayerOptions, StepOptions, export
from support.cells import CELLS, cache_dir, cached_cell
from support.fake_cave import cells_server, nucleus_frame
from support.synapse_tables import cave_frame, synapses_of, tag_frame

TOKEN = "0123456789abcdef0123456789abcdef"
TABLES = {"soma_table": "nucleus_detection_v0", "synapse_table": "synapses_pni_2"}
LODS = 3


@pytest.fixture(scope="module")
def cells(request):
    import trimesh

    cell = cached_cell(cache_dir(request), **CELLS["coarse"])
    moved = trimesh.Trimesh(cell.mesh.vertices + [20_000.0, 0.0, 0.0], cell.mesh.faces, process=False)
    return {"cell": cell, "copy": type("Moved", (), {"mesh": moved})()}


@pytest.fixture(scope="module")
def ids():
    from support.neurons import make_root_ids

    cell, copy = make_root_ids(2, 2525)
    return {"cell": int(cell), "copy": int(copy)}


@pytest.fixture(scope="module")
def truth(cells, ids):
    return synapses_of(cells["cell"], ids["cell"])


@pytest.fixture(scope="module")
def served(cells, ids, truth, tmp_path_factory):
    meshes = {ids[name]: cells[name].mesh for name in ids}
    with cells_server(tmp_path_factory.mktemp("ng-cells"), meshes, TOKEN, {"syn": TABLES}) as server:
        server.fakes["syn"].add_table("nucleus_detection_v0",
                                      nucleus_frame([(ids["cell"], cells["cell"].nucleus, 280.0)]),
                                      schema="nucleus_detection")
        server.fakes["syn"].add_table("synapses_pni_2", cave_frame(truth))
        # predicted tags, a fifth of them deliberately not the geometry's: the layer must carry these
        server.predictions = tag_frame(truth, wrong=0.2)
        server.fakes["syn"].add_table("synapse_target_predictions_ssa", server.predictions, schema="reference_tag")
        yield server


def _where(served, tmp):
    return ["--datastack", "syn", "--server", served.url, "--token", TOKEN, "--cache-dir", str(tmp / "cache")]


def _snapshot(directory) -> dict[str, tuple[str, int]]:
    """Every file under ``directory``: its content hash and modification time."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, directory)] = (hashlib.sha256(open(path, "rb").read()).hexdigest(),
                                                     os.stat(path).st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def layers(served, ids, tmp_path_factory):
    """The pyramidal cell with its morphology and synapses (API), then the coarse one, mesh only,
    added by the CLI; the files as they were before the second add, and the mesh as fetched
    (the writer's input: a PLY of the same fetch)."""
    tmp = tmp_path_factory.mktemp("ng-layers")
    out = tmp / "layers"
    result = export(ids["cell"], format="precomputed", out_dir=out, datastack="syn", server=served.url,
                    token=TOKEN, cache_dir=tmp / "cache", timeout=20.0, steps=StepOptions(skeletonize=True),
                    layers=LayerOptions(lods=LODS))
    before = _snapshot(out)
    added = run_cli(str(ids["copy"]), "--format", "precomputed", "--out", str(out), "--lods", str(LODS),
                    *_where(served, tmp))
    assert added.returncode == 0, added.stderr
    inputs = {}
    for name, root_id in ids.items():
        run = run_cli(str(root_id), "--format", "ply", "--out", str(tmp / "ply"), "--no-sidecar", *_where(served, tmp))
        assert run.returncode == 0, run.stderr
        inputs[name] = tmp / "ply" / f"{root_id}_lod0.ply"
    return {"out": out, "result": result, "before": before, "inputs": inputs, "tmp": tmp}


def _read_input(path):
    import trimesh

    mesh = trimesh.load(path, process=False)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def _surface_distance(points, vertices, faces, k=8, exact=True):
    """Distance of each point to the surface (vertices, faces): 0 within 1 nm of one of its
    vertices, else exact to the triangles around the ``k`` nearest vertices (a point the cut
    made lies on a triangle of the input, and that triangle has a vertex near it)."""
    import trimesh
    from scipy.spatial import cKDTree

    tree = cKDTree(vertices)
    gap, _ = tree.query(points)
    rest = np.flatnonzero(gap > 1.0)
    if len(rest):
        around = trimesh.Trimesh(vertices, faces, process=False).vertex_faces
        _, near = tree.query(points[rest], k=k)
        candidates = around[near].reshape(len(rest), -1)
        row, column = np.nonzero(candidates >= 0)
        closest = trimesh.triangles.closest_point(vertices[faces[candidates[row, column]]], points[rest][row])
        nearest = np.full(len(rest), np.inf)
        np.minimum.at(nearest, row, np.linalg.norm(closest - points[rest][row], axis=1))
        gap[rest] = nearest
    triangles = vertices[faces]
    low, high = triangles.min(axis=1), triangles.max(axis=1)
    for k in (np.flatnonzero(gap > 1.0) if exact else []):  # beside a long thin triangle: every one near it
        near = np.flatnonzero(((low - 2.0 <= points[k]) & (points[k] <= high + 2.0)).all(axis=1))
        if len(near):
            every = trimesh.triangles.closest_point(triangles[near], np.repeat(points[k:k + 1], len(near), axis=0))
            gap[k] = np.linalg.norm(every - points[k], axis=1).min()
    return gap


def _area(vertices, faces) -> float:
    v = vertices[faces].astype(np.float64)
    return float(np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).sum() / 2)


# ----------------------------------------------------------------------------- the mesh


@pytest.mark.parametrize("name", ["cell", "copy"])
def test_cloudvolume_reads_every_lod_and_lod0_is_the_input(layers, ids, name):
    import cloudvolume
    from scipy.spatial import cKDTree

    source = cloudvolume.from_cloudpath(f"precomputed://file://{layers['out']}/mesh")
    vertices, faces = _read_input(layers["inputs"][name])
    root_id = ids[name]
    counts = []
    for lod in range(LODS):
        mesh = source.get(root_id, lod=lod)[root_id]
        counts.append(len(mesh.faces))
        area = _area(mesh.vertices, mesh.faces)
        if lod == 0:
            assert area == pytest.approx(_area(vertices, faces), rel=0.005)
            # every input vertex is in lod 0 within 1 nm, every lod-0 vertex is on the input's surface
            gap, _ = cKDTree(mesh.vertices).query(vertices)
            assert gap.max() <= 1.0
            assert _surface_distance(mesh.vertices, vertices, faces).max() <= 1.0
        else:  # a coarser cell, not another one: decimation thins the thinnest neurites first
            assert 0.25 * _area(vertices, faces) < area < 1.01 * _area(vertices, faces)
            # (an upper bound: the triangles around the nearest vertices only)
            gap = _surface_distance(mesh.vertices, vertices, faces, exact=False)
            assert np.percentile(gap, 99) < 1_000
    assert counts[0] >= len(faces) and counts[0] > counts[1] > counts[2]
    # the cell spans more than one lod-0 fragment: the cut on the octree is exercised
    if name == "cell":
        assert np.ptp(vertices, axis=0).max() > 70_000


def test_no_gz_names_and_infos_readers_accept(layers):
    names = [name for _, _, files in os.walk(layers["out"]) for name in files]
    assert names and not [n for n in names if n.endswith(".gz")]
    mesh_info = json.loads((layers["out"] / "mesh" / "info").read_text())
    assert mesh_info["@type"] == "neuroglancer_multilod_draco" and mesh_info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    assert mesh_info["segment_properties"] == "../segment_properties"


# ----------------------------------------------------------------------------- skeleton, synapses, labels


def test_cloudvolume_reads_the_skeleton_with_radii_and_compartments(layers, ids):
    from cloudvolume.datasource.precomputed.skeleton import PrecomputedSkeletonSource

    source = PrecomputedSkeletonSource.from_cloudpath(f"file://{layers['out']}/skeleton")
    skeleton = source.get(ids["cell"])
    nodes = layers["result"].provenance["nodes"]
    assert len(skeleton.vertices) == nodes and len(skeleton.edges) == nodes - 1
    radius, compartment = skeleton.radius, skeleton.compartment
    assert radius.dtype == np.float32 and (radius > 0).all()
    # nm, on the cell: a 12 um soma's radius, dendrites of a few hundred nm
    assert 3_000 < radius.max() < 9_000 and np.median(radius) < 1_500
    # the soma, the axon the synapses tell apart and the dendrites, one apical
    assert set(np.unique(compartment)) == {1, 2, 3, 4}
    with pytest.raises(Exception):
        source.get(ids["copy"])  # no morphology was made of it


def _annotation_reader(out):
    from neuroglancer.read_precomputed_annotations import AnnotationReader

    return AnnotationReader(f"file://{out}/synapses/")


def test_neuroglancer_reads_every_synapse(layers, ids, truth, served):
    reader = _annotation_reader(layers["out"])
    root_id = ids["cell"]
    assert [p.id for p in reader.properties] == ["size", "direction", "tag"]
    directions = list(reader.properties[1].enum_labels)
    tags = list(reader.properties[2].enum_labels)
    predicted = dict(zip(served.predictions["target_id"], served.predictions["tag"]))
    expected_ids = truth.ids.astype(np.uint64) * 2 + (truth.direction == "output")
    pending = [reader.by_id.get(int(annotation_id)) for annotation_id in expected_ids]  # reads in flight together
    for k, a in enumerate(future.result() for future in pending):
        assert a is not None and int(a.id) == int(expected_ids[k])
        np.testing.assert_allclose(a.point, truth.positions[k], atol=0.05)
        size, direction, tag = a.props
        assert size == truth.size[k] and directions[direction] == truth.direction[k]
        if int(truth.ids[k]) in predicted:  # (others: the mapping's own soma/shaft/spine, or none)
            assert tags[tag] == predicted[int(truth.ids[k])]
        assert [list(s) for s in a.segments] == [[root_id], [truth.partner[k]]]
    by_cell = reader.relationships["cell"][root_id]
    assert sorted(int(a.id) for a in by_cell) == sorted(int(i) for i in expected_ids)
    for partner in np.unique(truth.partner)[:3]:
        listed = {int(a.id) for a in reader.relationships["partner"][int(partner)]}
        assert listed == {int(i) for i in expected_ids[truth.partner == partner]}
    everywhere = list(reader.get_within_spatial_bounds())
    assert len(everywhere) == len(truth)


def test_segment_properties_label_each_cell(layers, ids):
    info = json.loads((layers["out"] / "segment_properties" / "info").read_text())
    assert info["@type"] == "neuroglancer_segment_properties"
    inline = info["inline"]
    assert sorted(inline["ids"]) == sorted(str(i) for i in ids.values())
    labels = dict(zip(inline["ids"], inline["properties"][0]["values"]))
    descriptions = dict(zip(inline["ids"], inline["properties"][1]["values"]))
    assert labels[str(ids["cell"])].startswith(str(ids["cell"])) and "syn" in labels[str(ids["cell"])]
    assert "datastack syn" in descriptions[str(ids["copy"])] and "steps: none" in descriptions[str(ids["copy"])]


def test_an_added_id_leaves_the_others_files_alone(layers):
    after = _snapshot(layers["out"])
    changed = {name for name, value in layers["before"].items() if after.get(name) != value}
    # only the lists of every id: the shard the new id hashes to, the labels, the record
    allowed = {"segment_properties/info", "mesh-export.json"} | {n for n in after if n.startswith("mesh/") and n.endswith(".shard")}
    assert changed <= allowed
    assert not [n for n in layers["before"] if n.startswith(("skeleton/", "synapses/")) and n in changed]


# ----------------------------------------------------------------------------- refused


def test_refusals_leave_the_layers_as_they_were(layers, served, ids, tmp_path):
    out = layers["out"]
    before = _snapshot(out)
    again = run_cli(str(ids["copy"]), "--format", "precomputed", "--out", str(out), *_where(served, layers["tmp"]))
    assert again.returncode == 5 and "already in" in again.stderr and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    legacy = run_cli(str(ids["cell"]), "--format", "precomputed", "--legacy", "--overwrite", "--out", str(out),
                     *_where(served, layers["tmp"]))
    assert legacy.returncode == 2 and "multires" in legacy.stderr
    moved = run_cli(str(ids["copy"]), "--format", "precomputed", "--center", "--overwrite", "--out", str(out),
                    *_where(served, layers["tmp"]))
    assert moved.returncode == 2 and "lie on the dataset" in moved.stderr
    assert _snapshot(out) == before

    foreign = tmp_path / "foreign"
    (foreign / "mesh").mkdir(parents=True)
    (foreign / "mesh" / "info").write_text(json.dumps({"@type": "neuroglancer_legacy_mesh"}))
    theirs = _snapshot(foreign)
    refused = run_cli(str(ids["copy"]), "--format", "precomputed", "--out", str(foreign), *_where(served, layers["tmp"]))
    assert refused.returncode == 5 and "did not write" in refused.stderr and "Traceback" not in refused.stderr
    assert _snapshot(foreign) == theirs

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        no = run_cli(str(ids["copy"]), "--format", "precomputed", "--out", str(locked / "layers"),
                     *_where(served, layers["tmp"]))
    finally:
        locked.chmod(0o755)
    assert no.returncode == 5 and "not writable" in no.stderr and not (locked / "layers").exists()


def test_legacy_layer_cloudvolume_reads(served, ids, tmp_path, layers):
    import cloudvolume

    out = tmp_path / "legacy"
    run = run_cli(str(ids["copy"]), "--format", "precomputed", "--legacy", "--out", str(out), *_where(served, layers["tmp"]))
    assert run.returncode == 0, run.stderr
    vertices, faces = _read_input(layers["inputs"]["copy"])
    mesh = cloudvolume.from_cloudpath(f"precomputed://file://{out}/mesh").get(ids["copy"])
    assert len(mesh.faces) == len(faces) and _area(mesh.vertices, mesh.faces) == pytest.approx(_area(vertices, faces), rel=1e-6)
    assert json.loads((out / "mesh" / "info").read_text())["@type"] == "neuroglancer_legacy_mesh"


def test_a_batch_adds_ids_concurrently_and_a_rerun_skips_them(served, ids, layers, tmp_path):
    import cloudvolume

    out = tmp_path / "batch"
    args = [str(ids["cell"]), str(ids["copy"]), "--format", "precomputed", "--lods", "2", "--out", str(out),
            "--workers", "2", "--json", *_where(served, layers["tmp"])]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    source = cloudvolume.from_cloudpath(f"precomputed://file://{out}/mesh")
    for root_id in ids.values():
        assert len(source.get(root_id, lod=1)[root_id].faces) > 0
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    records = [json.loads(line) for line in again.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 2 and all(r.get("skipped") for r in records)


def test_convert_adds_a_file_as_the_cell_root_id(layers, tmp_path):
    import cloudvolume

    out, ply = tmp_path / "converted", layers["inputs"]["copy"]
    missing = run_cli("convert", str(ply), str(out), "--format", "precomputed")
    assert missing.returncode == 2 and "--root-id" in missing.stderr and not out.exists()
    run = run_cli("convert", str(ply), str(out), "--format", "precomputed", "--root-id", "77", "--lods", "2")
    assert run.returncode == 0, run.stderr
    vertices, faces = _read_input(ply)
    source = cloudvolume.from_cloudpath(f"precomputed://file://{out}/mesh")
    assert _area(*(lambda m: (m.vertices, m.faces))(source.get(77, lod=0)[77])) == pytest.approx(_area(vertices, faces), rel=0.005)
    assert len(source.get(77, lod=1)[77].faces) < len(faces)
    record = json.loads((out / "mesh-export.json").read_text())
    assert record["cells"]["77"]["request"]["source_file"] == str(ply)


# ----------------------------------------------------------------------------- link --layers --serve


def test_link_layers_state_shows_ours_beside_the_dataset(layers, served, ids):
    from mesh_export.look.link import decode_url

    run = run_cli("link", "--layers", str(layers["out"]), "--json", "--datastack", "syn", "--server", served.url,
                  "--token", TOKEN, "--port", "8123")
    assert run.returncode == 0, run.stderr
    text, url = run.stdout.rsplit("\n", 2)[0], run.stdout.strip().splitlines()[-1]
    state = json.loads(text)
    assert decode_url(url) == state
    names = [layer["name"] for layer in state["layers"]]
    assert names == ["syn", "cells", "skeletons", "synapses"]
    dataset = state["layers"][0]
    assert dataset["source"].startswith("graphene://") and sorted(dataset["segments"]) == sorted(str(i) for i in ids.values())
    assert state["layers"][1]["source"] == "precomputed://http://127.0.0.1:8123/layers/mesh"
    assert state["layers"][3]["linkedSegmentationLayer"] == {"cell": "cells", "partner": "syn"}


def test_serve_answers_with_cors_and_ranges(layers):
    from mesh_export.api import serve_layers

    server = serve_layers(layers["out"], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.base_url.endswith("/layers")  # served below a folder of its own: "../" links resolve
        shard = next(p for p in (layers["out"] / "mesh").iterdir() if p.suffix == ".shard")
        request = urllib.request.Request(f"{server.base_url}/mesh/{shard.name}", headers={"Range": "bytes=8-23"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 206 and answer.headers["Access-Control-Allow-Origin"] == "*"
            assert answer.read() == shard.read_bytes()[8:24]
        with urllib.request.urlopen(f"{server.base_url}/mesh/info", timeout=10) as answer:
            assert json.loads(answer.read())["@type"] == "neuroglancer_multilod_draco"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.base_url.rsplit('/', 1)[0]}/mesh/info", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ----------------------------------------------------------------------------- a real browser

#: Chromium as CI runs it: no sandbox (root in a container), no GPU, nothing fetched on its own.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
MESH_RGB = (255, 128, 0)  # the link state's segment colour of our cells


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One headless Chromium (Debian's, through chromedriver) on the neuroglancer package's own
    client, served by its Python viewer on 127.0.0.1: started once per test session."""
    import neuroglancer
    import neuroglancer.webdriver

    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager: use the chromedriver on PATH, ask no one
    neuroglancer.set_server_bind_address("127.0.0.1")
    viewer = neuroglancer.Viewer()
    with viewer.config_state.txn() as config:
        config.show_ui_controls = False
        config.show_panel_borders = False
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = neuroglancer.webdriver.Webdriver(
        viewer, headless=True, browser="chrome", browser_binary_path="/usr/bin/chromium", print_logs=False,
        window_size=(800, 600), extra_command_line_args=CHROMIUM_FLAGS + [f"--user-data-dir={profile}"])
    try:
        yield viewer, driver
    finally:
        driver.__exit__(None, None, None)
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def _pixels(driver) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(driver.driver.get_screenshot_as_png())).convert("RGB")).astype(int)


def _masks(image: np.ndarray) -> dict[str, np.ndarray]:
    """Where each of our colours is (shaded: the hue kept, the brightness not)."""
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return {"mesh": (r > 60) & (g > 0.3 * r) & (g < 0.7 * r) & (b < 0.25 * r),
            "dendrite": (g > 80) & (r < 0.5 * g) & (b < 0.6 * g),
            "input": (r > 120) & (g < 0.4 * r) & (b < 0.4 * r),
            "output": (b > 120) & (r < 0.5 * b) & (g < 0.8 * b),
            "anything": image.sum(axis=2) > 60}


def _settled(driver, want, timeout=60.0) -> dict[str, int]:
    """Screenshots every second until ``want`` (names of masks) are all drawn and the picture
    stops changing, within ``timeout`` seconds; the pixel count of each mask."""
    import time

    deadline, last = time.monotonic() + timeout, None
    while True:
        image = _pixels(driver)
        counts = {name: int(mask.sum()) for name, mask in _masks(image).items()}
        if os.environ.get("MESH_EXPORT_KEEP_SCREENSHOTS"):  # to look at what the test saw
            from PIL import Image

            Image.fromarray(image.astype(np.uint8)).save(os.path.join(os.environ["MESH_EXPORT_KEEP_SCREENSHOTS"],
                                                                      f"{'-'.join(want)}.png"))
        if all(counts[name] for name in want) and counts == last:
            return counts
        if time.monotonic() > deadline:
            return counts
        last = counts
        time.sleep(1.0)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_chromium_shows_our_layers_from_link_serve(layers, cells, browser):
    """`mesh-export link --layers DIR --serve` (the CLI, its own process) serves the layers; the
    viewer opens its state; the neuron is drawn: mesh, skeleton by compartment, synapses."""
    import signal
    import subprocess
    import sys

    import neuroglancer

    viewer, driver = browser
    serve = subprocess.Popen([sys.executable, "-m", "mesh_export", "link", "--layers", str(layers["out"]), "--serve",
                              "--port", "0", "--no-dataset", "--json"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        printed = []
        while not printed or not printed[-1].startswith("http"):
            line = serve.stdout.readline()
            assert line, serve.stderr.read()
            printed.append(line)
        state = json.loads("".join(printed[:-1]))
        assert [layer["name"] for layer in state["layers"]] == ["cells", "skeletons", "synapses"]
        state["showAxisLines"] = False  # (green and blue lines that are no layer's)
        viewer.set_state(neuroglancer.ViewerState(state))
        whole = _settled(driver, ["mesh", "dendrite", "input", "output"])
        assert whole["anything"] > 0.005 * 800 * 600, "blank"
        assert whole["mesh"] and whole["dendrite"] and whole["input"] and whole["output"], whole

        # The mesh alone, 60 um across around the soma: its colour covers the soma's disc.
        close = dict(state, layers=[dict(state["layers"][0])], position=list(cells["cell"].soma_center),
                     projectionScale=60_000)
        viewer.set_state(neuroglancer.ViewerState(close))
        near = _settled(driver, ["mesh"])
        soma_px = 12_000 / 60_000 * driver.driver.get_window_size()["height"]
        assert np.pi / 4 * (0.5 * soma_px) ** 2 < near["mesh"] < 0.7 * 800 * 600, near
        assert near["mesh"] > 50 * (near["dendrite"] + near["output"])  # the other layers gone
    finally:
        serve.send_signal(signal.SIGINT)  # Ctrl-C: the server stops, the command ends cleanly
        try:
            code = serve.wait(20)
        finally:
            serve.kill()
    assert code == 0
