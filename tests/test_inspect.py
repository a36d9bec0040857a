"""`mesh-export info` and `link`: figures checked against trimesh, lods against the fixture
layer served on 127.0.0.1, Neuroglancer URLs parsed back by neuroglancer's own state model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from conftest import cli_in as cli
from mesh_export import errors
from support.datasets import fixture_data, fixture_server  # noqa: F401  (pytest fixtures)


def ok_json(result):
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_matches_trimesh(figures, mesh: trimesh.Trimesh, to_um: float):
    assert figures["vertices"] == len(mesh.vertices) and figures["faces"] == len(mesh.faces)
    assert figures["surface_area"] == pytest.approx(mesh.area, rel=1e-9)
    assert figures["surface_area_um2"] == pytest.approx(mesh.area * to_um**2, rel=1e-9)
    assert figures["watertight"] == mesh.is_watertight
    if mesh.is_watertight:
        assert figures["volume"] == pytest.approx(abs(mesh.volume), rel=1e-9)
        assert figures["volume_um3"] == pytest.approx(abs(mesh.volume) * to_um**3, rel=1e-9)
    else:
        assert figures["volume"] is None
    assert figures["components"]["count"] == mesh.body_count
    split = mesh.split(only_watertight=False)  # by faces; largest piece by face count
    if figures["components"]["count"] == len(split):
        assert figures["components"]["largest_faces"] == max(len(p.faces) for p in split)
    np.testing.assert_allclose(figures["bbox"]["min"], mesh.bounds[0], rtol=1e-6)
    np.testing.assert_allclose(figures["bbox"]["um"]["size"], mesh.extents * to_um, rtol=1e-6)


def test_info_json_matches_trimesh_on_real_neurons(neuron_meshes, workdir):
    for name, mesh in list(neuron_meshes.items())[:3]:
        path = workdir / f"{name}.ply"
        mesh.export(path)  # trimesh PLY: float32 vertices, no units recorded
        reread = trimesh.load(path, process=False)
        figures = ok_json(cli(workdir, "info", path, "--json", "--units-in", "nm"))
        assert figures["units"] == "nm" and figures["duplicate_vertices_merged"] == 0
        assert_matches_trimesh(figures, reread, 1e-3)
        assert not figures["watertight"] and figures["components"]["count"] > 1  # as navis's notes say


def test_info_closed_stl_merges_corners_and_reports_volume(sphere, workdir):
    path = workdir / "sphere.stl"
    sphere.export(workdir / "in.ply")
    assert cli(workdir, "convert", workdir / "in.ply", path, "--units-in", "nm").returncode == 0
    figures = ok_json(cli(workdir, "info", path, "--json"))
    # STL keeps each triangle's corners apart; reading merges bit-identical corners into an
    # indexed mesh, so info sees the sphere's own vertices and nothing left to merge.
    assert figures["vertices"] == len(sphere.vertices) and figures["faces"] == len(sphere.faces)
    assert figures["duplicate_vertices_merged"] == 0
    assert figures["watertight"] and figures["winding_consistent"]
    assert figures["components"] == {"count": 1, "largest_share": 1.0, "largest_faces": len(sphere.faces)}
    assert figures["volume"] == pytest.approx(sphere.volume, rel=1e-5)  # float32 in the STL
    assert figures["units"] == "nm"
    text = cli(workdir, "info", path)
    assert text.returncode == 0 and "watertight    yes" in text.stdout and "um^3" in text.stdout


def _trimesh_figures(mesh: trimesh.Trimesh) -> dict:
    """What mesh_info reports, as trimesh computes it (on the same, unmerged, vertices)."""
    from scipy.sparse.csgraph import connected_components

    count, labels = connected_components(mesh.edges_sparse, directed=False)
    watertight = bool(mesh.is_watertight)
    return {"surface_area": mesh.area, "watertight": watertight,
            "winding_consistent": bool(mesh.is_winding_consistent) if watertight else None,
            "volume": abs(mesh.volume) if watertight else None,
            "components": int(count), "largest_faces": int(np.bincount(labels[mesh.faces[:, 0]]).max())}


def _info_cases(sphere, neuron_meshes):
    from conftest import grid_surface

    def mesh(v, f):
        return trimesh.Trimesh(np.asarray(v, dtype=np.float64), np.asarray(f), process=False)

    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    flipped = f.copy()
    flipped[:7] = flipped[:7, ::-1]
    cases = {
        "closed sphere": sphere,
        "open grid": grid_surface(40),
        "two disjoint spheres": mesh(np.vstack([v, v + 1.0e4]), np.vstack([f, f + len(v)])),
        "non-manifold edge": mesh(np.vstack([v, [[0.0, 0.0, 1.0e5]]]), np.vstack([f, [[f[0, 0], f[0, 1], len(v)]]])),
        "inconsistent winding": mesh(v, flipped),
        "degenerate faces": mesh(v, np.vstack([f, [[0, 0, 1], [1, 0, 0]]])),
        "unreferenced vertex": mesh(np.vstack([v, [[1.0, 2.0, 3.0]]]), f),
        "float32 int32": mesh(v, f),
        # a few edge keys: the halves the topology sorts and scans apart hold one or two uses
        "one triangle": mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]),
        "tetrahedron": mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]]),
    }
    cases["float32 int32"] = type("Arrays", (), {"vertices": v.astype(np.float32), "faces": f.astype(np.int32),
                                                  "metadata": {"units": "nm"}})()
    cases.update({f"navis {name}": m for name, m in list(neuron_meshes.items())[:3]})
    return cases


@pytest.mark.parametrize("key_chunk, two_threads, public_components",
                         [(None, False, False), (7, False, False), (None, True, False), (7, True, False),
                          (None, True, True)])
def test_mesh_info_equals_trimesh(sphere, neuron_meshes, key_chunk, two_threads, public_components, monkeypatch):
    """Also with the sorted edge keys scanned in chunks of 7 (an edge's two uses then often lie
    in two chunks), as a 9M-face mesh's are in chunks of a million; with the keys sorted and
    scanned as two halves on two threads, as from 2**18 keys (an edge's uses then may straddle
    the halves); and with scipy's public connected_components, which info falls back on should
    scipy's internals it uses move."""
    from mesh_export.look import info
    from mesh_export.look.info import mesh_info

    if key_chunk:
        monkeypatch.setattr(info, "_KEY_CHUNK", key_chunk)
    if two_threads:
        monkeypatch.setattr(info, "_TWO_THREAD_KEYS", 0)
    if public_components:
        monkeypatch.setattr(info, "_components", info._public_components)

    for name, mesh in _info_cases(sphere, neuron_meshes).items():
        expected = _trimesh_figures(trimesh.Trimesh(np.asarray(mesh.vertices, dtype=np.float64),
                                                    np.asarray(mesh.faces), process=False))
        figures = mesh_info(mesh, merge=False)
        assert figures["surface_area"] == pytest.approx(expected["surface_area"], rel=1e-12), name
        assert figures["watertight"] == expected["watertight"], name
        assert figures["winding_consistent"] == expected["winding_consistent"], name
        if expected["volume"] is None:
            assert figures["volume"] is None, name
        else:
            assert figures["volume"] == pytest.approx(expected["volume"], rel=1e-12), name
        assert figures["components"]["count"] == expected["components"], name
        assert figures["components"]["largest_faces"] == expected["largest_faces"], name
    # The synthetic cases are what they say they are.
    cases = _info_cases(sphere, neuron_meshes)
    assert mesh_info(cases["closed sphere"])["watertight"] and mesh_info(cases["closed sphere"])["winding_consistent"]
    assert not mesh_info(cases["open grid"])["watertight"]
    assert mesh_info(cases["two disjoint spheres"])["components"]["count"] == 2
    assert not mesh_info(cases["non-manifold edge"])["watertight"]
    assert mesh_info(cases["inconsistent winding"])["winding_consistent"] is False
    assert mesh_info(cases["tetrahedron"])["watertight"] and mesh_info(cases["tetrahedron"])["winding_consistent"]


def test_mesh_info_merges_bit_identical_vertices_first(sphere):
    from mesh_export.look.info import mesh_info

    soup = trimesh.Trimesh(sphere.triangles.reshape(-1, 3), np.arange(3 * len(sphere.faces)).reshape(-1, 3),
                           process=False)  # every face on its own corners, as an STL stores it
    figures = mesh_info(soup)
    assert figures["duplicate_vertices_merged"] == 3 * len(sphere.faces) - len(sphere.vertices)
    assert figures["watertight"] and figures["components"]["count"] == 1
    assert not mesh_info(soup, merge=False)["watertight"]


def test_info_of_a_root_id_lists_the_layers_lods(fixture_server, fixture_data, workdir):
    from cloudvolume import CloudVolume

    root_id = fixture_data.root_ids[0]
    url = fixture_data.precomputed_url(fixture_server, "multires")
    figures = ok_json(cli(workdir, "info", root_id, "--source", url, "--lod", "1", "--json"))
    assert figures["root_id"] == str(root_id) and figures["lod"] == 1 and figures["cache"] == "miss"
    assert [row["lod"] for row in figures["lods"]] == list(range(fixture_data.num_lods))
    volume = CloudVolume(url, use_https=True, progress=False)
    for row in figures["lods"]:
        raw = volume.mesh.get(root_id, lod=row["lod"])[root_id]
        assert row["faces"] == len(raw.faces), row  # merging vertices keeps every face here
    assert figures["faces"] == figures["lods"][1]["faces"]
    assert figures["lods"][0]["faces"] > figures["lods"][-1]["faces"]
    assert figures["source"]["url"] == url and figures["source"]["kind"] == "precomputed"
    # Every lod went through the export cache: a second look is served offline.
    again = ok_json(cli(workdir, "info", root_id, "--source", url, "--lod", "0", "--offline", "--json"))
    assert again["cache"] == "hit" and again["lods"] == figures["lods"]
    text = cli(workdir, "info", root_id, "--source", url, "--lod", "3", "--offline")
    assert text.returncode == 0 and "lods" in text.stdout and "cache         hit" in text.stdout


def test_info_through_a_cave_datastack(fixture_server, fixture_data, workdir):
    root_id = fixture_data.root_ids[1]
    figures = ok_json(cli(workdir, "info", root_id, "--datastack", fixture_data.datastack, "--server",
                          fixture_server.url, "--version", "943", "--json", token=fixture_data.token))
    assert figures["source"]["datastack"] == fixture_data.datastack and figures["version"] == 943
    assert figures["source"]["kind"] == "graphene"
    assert figures["lods"] == [{"lod": 0, "faces": figures["faces"]}]
    assert fixture_data.token not in json.dumps(figures)


SWC = """# a soma, a branch point, three tips
1 1 0 0 0 5.0 -1
2 3 10 0 0 1.0 1
3 3 20 0 0 1.0 2
4 3 20 10 0 0.5 3
5 3 30 0 0 0.5 3
6 2 -10 0 0 0.8 1
7 2 -13 4 0 0.8 6
"""


def test_info_of_a_skeleton(workdir):
    path = workdir / "cell.swc"
    path.write_text(SWC)
    figures = ok_json(cli(workdir, "info", path, "--json"))
    assert figures["kind"] == "skeleton" and figures["units"] == "um"
    assert figures["nodes"] == 7 and figures["roots"] == 1
    # As NeuroM counts: the soma is no branch point, the soma-to-neurite edges no cable.
    assert figures["neurites"] == 2 and figures["sections"] == 4
    assert figures["branch_points"] == 1  # node 3
    assert figures["tips"] == 3
    assert figures["total_length"] == pytest.approx(10 + 10 + 10 + 5)
    assert figures["cable_length"] == pytest.approx(10 + 10 + 10 + 10 + 10 + 5)
    assert figures["soma_radius"] == 5.0
    neurom = pytest.importorskip("neurom")
    cell = neurom.load_morphology(path)
    assert figures["branch_points"] == neurom.get("number_of_forking_points", cell)
    assert figures["sections"] == neurom.get("number_of_sections", cell)
    assert figures["total_length"] == pytest.approx(neurom.get("total_length", cell), rel=1e-6)


def test_info_errors_are_one_line(workdir):
    result = cli(workdir, "info", workdir / "nope.ply")
    assert result.returncode == errors.InputError.exit_code and "Traceback" not in result.stderr
    (workdir / "bad.swc").write_text("1 1 0 0 0 1 7\n")
    result = cli(workdir, "info", workdir / "bad.swc")
    assert result.returncode == errors.InputError.exit_code and "parent" in result.stderr


def test_link_decodes_to_a_neuroglancer_state_with_the_segment(fixture_server, fixture_data, workdir):
    neuroglancer = pytest.importorskip("neuroglancer")
    from mesh_export.look.link import decode_url

    root_id = fixture_data.root_ids[2]
    result = cli(workdir, "link", root_id, "--datastack", fixture_data.datastack, "--server",
                 fixture_server.url, token=fixture_data.token)
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith("https://neuroglancer-demo.appspot.com/#!")
    state = decode_url(url)
    layer = next(l for l in state["layers"] if l["type"] == "segmentation")
    assert layer["source"] == fixture_server.graphene_url(fixture_data.graphene_table)
    assert layer["segments"] == [str(root_id)]
    # Neuroglancer's own parser accepts it and sees the same layer and segment.
    parsed = neuroglancer.parse_url(url)
    seg = parsed.layers[layer["name"]]
    assert seg.type == "segmentation" and {int(s) for s in seg.segments} == {root_id}
    assert fixture_data.token not in url


def test_link_static_needs_no_cave(workdir):
    from mesh_export.look.link import decode_url
    from mesh_export.retrieve.sources import STATIC_SOURCES

    # Only builds a URL: nothing connects to the static bucket.
    result = cli(workdir, "link", "864691135572530981", "--static")
    assert result.returncode == 0, result.stderr
    state = decode_url(result.stdout.strip())
    assert state["layers"][0]["source"] == STATIC_SOURCES["minnie65_public"][0]
    assert state["layers"][0]["segments"] == ["864691135572530981"]
    bad = cli(workdir, "link", "abc", "--static")
    assert bad.returncode == errors.InvalidArgumentError.exit_code


def test_components_take_scipys_traversal_without_its_float64_graph(sphere, monkeypatch):
    """The pieces come from scipy's own traversal on the bare indices (no 216 MB of float64
    ones at 9M faces), not from the public fallback, with this scipy."""
    from mesh_export.look import info

    def refused(*args):
        raise AssertionError("the public connected_components was used")

    monkeypatch.setattr(info, "_public_components", refused)
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    two = type("Arrays", (), {"vertices": np.vstack([v, v + 1.0e4]), "faces": np.vstack([f, f + len(v)]),
                              "metadata": {"units": "nm"}})()
    assert info.mesh_info(two)["components"] == {"count": 2, "largest_share": 0.5, "largest_faces": len(f)}


def test_edge_keys_on_two_threads_are_the_same_and_raise_a_failure_of_either():
    from mesh_export.core import mesh_ops

    rng = np.random.default_rng(3)
    faces = rng.integers(0, 100_000, size=(5 * mesh_ops._FACE_CHUNK + 17, 3)).astype(np.int32)
    np.testing.assert_array_equal(mesh_ops.edge_keys(faces, directed=True, threads=2),
                                  mesh_ops.edge_keys(faces, directed=True))

    class Failing(np.ndarray):
        def __getitem__(self, item):
            if isinstance(item, slice) and item.start == mesh_ops._FACE_CHUNK:  # the second thread's first chunk
                raise MemoryError("no room")
            return super().__getitem__(item)

    with pytest.raises(MemoryError):
        mesh_ops.edge_keys(faces.view(Failing), directed=True, threads=2)
