"""The datastack registry: what each known datastack resolves to, --static release selection
by --version, the user's datastacks.toml, and the errors, offline (the CAVE side against the
fixture server's InfoService)."""

from __future__ import annotations

import json
import textwrap

import pytest

from conftest import cli_in
from mesh_export import errors
from mesh_export.retrieve import datastacks
from mesh_export.retrieve.cache import cache_key
from support.precomputed import cave_datastack_info
from mesh_export.retrieve.cached import request_identity
from mesh_export.retrieve.sources import STATIC_SOURCES, resolve
from support.datasets import fixture_data, fixture_server, srv  # noqa: F401  (pytest fixtures)

MICRONS = "precomputed://gs://iarpa_microns/minnie/minnie65/seg_m"


# Every test gets a private config directory (conftest): no user datastacks.toml leaks in.
pytestmark = pytest.mark.usefixtures("config_dir")


def write_config(config_dir, text: str):
    path = config_dir / datastacks.CONFIG_FILE
    path.write_text(textwrap.dedent(text))
    return path


def cli(workdir, config_dir, *args, token=None):
    return cli_in(workdir, *args, token=token, env={datastacks.CONFIG_ENV: str(config_dir)})


def assert_error(result, error, *texts):
    assert result.returncode == error.exit_code, (result.returncode, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in texts:
        assert text in result.stderr, result.stderr


# ---------------------------------------------------------------- the built-in table


def test_builtin_entries_name_the_published_sources():
    known = datastacks.registry()
    assert {"minnie65_public", "flywire_fafb_public", "h01_c3_flat", "brain_and_nerve_cord",
            "fanc_production_mar2021"} <= set(known)
    minnie, flywire = known["minnie65_public"], known["flywire_fafb_public"]
    assert [(r.version, r.url) for r in minnie.static] == [(943, MICRONS + "943"), (1300, MICRONS + "1300")]
    assert [(r.version, r.url) for r in flywire.static] == [(630, "precomputed://gs://flywire_v141_m630"),
                                                            (783, "precomputed://gs://flywire_v141_m783")]
    assert all(r.lods == (0, 1, 2, 3) and r.units == "nm" for r in minnie.static + flywire.static)
    assert "lod 3 is missing for some neurons" in flywire.static[-1].note
    assert known["h01_c3_flat"].server == "https://global.brain-wire-test.org"
    assert not known["h01_c3_flat"].static and "no static" in known["h01_c3_flat"].note
    for name in ("minnie65_public", "flywire_fafb_public", "brain_and_nerve_cord", "fanc_production_mar2021"):
        assert known[name].server == "https://global.daf-apis.com"
    for entry in known.values():
        assert entry.description and entry.origin == "built-in"
    # The compatibility table follows the registry's default (newest) releases.
    assert STATIC_SOURCES["minnie65_public"] == (MICRONS + "1300", 1300)


def test_each_static_release_resolves_offline_to_its_url_version_and_server():
    for entry in datastacks.BUILTIN:
        for release in entry.static:
            source = resolve(datastack=entry.name, static=True, version=release.version)
            assert (source.kind, source.url, source.version) == ("precomputed", release.url, release.version)
            assert source.datastack == entry.name and source.server == entry.server
            assert source.extra["static"] and source.extra["lods"] == list(release.lods)
        if not entry.static:
            with pytest.raises(errors.SourceError, match=f"no static mesh release is known for datastack '{entry.name}'"):
                resolve(datastack=entry.name, static=True)


def test_newest_release_is_the_default_and_version_picks_one():
    assert datastacks.static_release("minnie65_public")[1].version == 1300
    assert datastacks.static_release(None)[1].url == MICRONS + "1300"  # minnie65_public by default
    assert datastacks.static_release("minnie65_public", 943)[1].url == MICRONS + "943"
    assert datastacks.static_release("flywire_fafb_public")[1].version == 783
    assert datastacks.static_release("flywire_fafb_public", 630)[1].url.endswith("_m630")


def test_cache_key_differs_between_static_releases():
    """Identified without the network (so --offline can key the cache), and per release."""
    old = request_identity(None, "minnie65_public", True, None, 943)
    new = request_identity(None, "minnie65_public", True, None, 1300)
    assert old == {"source": MICRONS + "943"} and new == {"source": MICRONS + "1300"}
    assert request_identity(None, None, True, None, None) == new
    assert cache_key(**old, root_id=1, lod=0, version=None) != cache_key(**new, root_id=1, lod=0, version=None)


def test_datastack_server_unless_server_is_given():
    assert datastacks.server_for("h01_c3_flat", None) == "https://global.brain-wire-test.org"
    assert datastacks.server_for("h01_c3_flat", "http://127.0.0.1:1") == "http://127.0.0.1:1"
    assert datastacks.server_for("not_in_the_registry", None) is None  # caveclient's global server


# ------------------------------------------------------------- dynamic side: CAVE says


def test_each_datastack_resolves_its_dynamic_source_through_cave(srv, fixture_data):
    """Every entry's dynamic source is what CAVE's info service answers; BANC and FANC answer
    middleauth+ graphene URLs, as theirs do."""
    for entry in datastacks.BUILTIN:
        graphene = srv.graphene_url(fixture_data.graphene_table)
        if entry.name in ("brain_and_nerve_cord", "fanc_production_mar2021"):
            graphene = graphene.replace("graphene://", "graphene://middleauth+")
        srv.add_datastack(entry.name, payload=cave_datastack_info(entry.name, server_url=srv.url,
                                                                  segmentation_source=graphene))
        source = resolve(datastack=entry.name, server=srv.url, token=fixture_data.token)
        assert (source.kind, source.url, source.server) == ("graphene", graphene, srv.url)
    assert srv.count(r"/info/api/v2/datastack/full/") >= len(datastacks.BUILTIN)


def test_banc_dynamic_mesh_with_a_middleauth_source(srv, fixture_data, workdir, config_dir):
    root_id = fixture_data.root_ids[0]
    graphene = srv.graphene_url(fixture_data.graphene_table).replace("graphene://", "graphene://middleauth+")
    srv.add_datastack("brain_and_nerve_cord", payload=cave_datastack_info(
        "brain_and_nerve_cord", server_url=srv.url, segmentation_source=graphene))
    result = cli(workdir, config_dir, root_id, "--datastack", "brain_and_nerve_cord", "--server", srv.url,
                 "--format", "ply", token=fixture_data.token)
    assert result.returncode == 0, result.stderr
    meta = json.loads((workdir / "out" / f"{root_id}_lod0.ply.json").read_text())
    assert meta["datastack"] == "brain_and_nerve_cord" and meta["source"]["url"] == graphene
    assert meta["faces"] > 100


def test_unknown_datastack_at_cave_is_exit_13(srv, workdir, config_dir):
    result = cli(workdir, config_dir, "864691135000000001", "--datastack", "no_such_stack", "--server", srv.url,
                 token="0123456789abcdef0123456789abcdef")
    assert_error(result, errors.SourceError, "unknown datastack 'no_such_stack'")


# ------------------------------------------------------------------ --static errors


def test_static_errors_are_one_line_exit_13_before_any_download(workdir, config_dir):
    root_id = "864691135000000001"
    assert_error(cli(workdir, config_dir, root_id, "--datastack", "no_such_stack", "--static"),
                 errors.SourceError, "unknown datastack 'no_such_stack'", "minnie65_public", "datastacks.toml")
    assert_error(cli(workdir, config_dir, root_id, "--static", "--version", "1000"),
                 errors.SourceError, "no static mesh release for version 1000", "there are: 943, 1300")
    assert_error(cli(workdir, config_dir, root_id, "--datastack", "h01_c3_flat", "--static"),
                 errors.SourceError, "no static mesh release is known for datastack 'h01_c3_flat'")
    assert not list((workdir / "out").iterdir())


# ------------------------------------------------------------------ datastacks.toml


def test_user_entry_is_picked_up_and_its_release_used(srv, fixture_data, workdir, config_dir):
    """A datastack added in datastacks.toml: its static release (the fixture layer) is used,
    the sidecar names the chosen version, and a lod the neuron lacks lists the ones it has."""
    write_config(config_dir, f"""
        [datastacks.local_stack]
        server = "{srv.url}"
        description = "fixture layers"

        [datastacks.local_stack.static.5]
        url = "{fixture_data.precomputed_url(srv, 'multires_unsharded')}"
        lods = [0, 1, 2, 3]

        [datastacks.local_stack.static.7]
        url = "{fixture_data.precomputed_url(srv, 'multires')}"
    """)
    entry = datastacks.lookup("local_stack")
    assert entry.static_versions == [5, 7] and entry.origin.endswith("datastacks.toml")
    root_id = fixture_data.root_ids[0]
    result = cli(workdir, config_dir, root_id, "--datastack", "local_stack", "--static", "--lod", "1")
    assert result.returncode == 0, result.stderr
    meta = json.loads((workdir / "out" / f"{root_id}_lod1.stl.json").read_text())
    assert meta["version"] == 7 and meta["source"]["version"] == 7  # the newest, said so
    assert meta["source"]["url"] == fixture_data.precomputed_url(srv, "multires")
    assert meta["source"]["server"] == srv.url  # the datastack's own server
    result = cli(workdir, config_dir, root_id, "--datastack", "local_stack", "--static", "--version", "5",
                 "--lod", "1", "--overwrite")
    assert result.returncode == 0, result.stderr
    meta = json.loads((workdir / "out" / f"{root_id}_lod1.stl.json").read_text())
    assert meta["version"] == 5 and meta["source"]["url"].endswith("/multires_unsharded")
    missing = cli(workdir, config_dir, root_id, "--datastack", "local_stack", "--static",
                  "--lod", str(fixture_data.num_lods))
    assert_error(missing, errors.SourceError, f"lods 0..{fixture_data.num_lods - 1}")


def test_user_entry_dynamic_side_uses_its_own_server(srv, fixture_data, workdir, config_dir):
    """--datastack X asks X's CAVE server when --server is not given."""
    write_config(config_dir, f"""
        [datastacks.{fixture_data.datastack}]
        server = "{srv.url}"
    """)
    assert resolve(datastack=fixture_data.datastack, token=fixture_data.token).server == srv.url
    root_id = fixture_data.root_ids[1]
    result = cli(workdir, config_dir, root_id, "--datastack", fixture_data.datastack, "--format", "ply",
                 token=fixture_data.token)
    assert result.returncode == 0, result.stderr
    meta = json.loads((workdir / "out" / f"{root_id}_lod0.ply.json").read_text())
    assert meta["source"]["server"] == srv.url and meta["source"]["kind"] == "graphene"


def test_user_file_extends_and_overrides_a_builtin_entry(config_dir, workdir):
    path = write_config(config_dir, """
        [datastacks.minnie65_public]
        description = "my mirror"

        [datastacks.minnie65_public.static.1400]
        url = "precomputed://https://mirror.example.org/seg_m1400"
        lods = [0, 1]
    """)
    minnie = datastacks.lookup("minnie65_public")
    assert minnie.static_versions == [943, 1300, 1400] and minnie.description == "my mirror"
    assert minnie.server == "https://global.daf-apis.com" and minnie.origin == str(path)
    assert datastacks.static_release("minnie65_public")[1].lods == (0, 1)  # the newest is the user's
    listed = json.loads(cli(workdir, config_dir, "datastacks", "--json").stdout)
    row = next(r for r in listed if r["name"] == "minnie65_public")
    assert row["default_version"] == 1400 and row["origin"] == str(path)


def test_malformed_toml_is_one_line_naming_file_and_line(config_dir, workdir):
    path = write_config(config_dir, """
        [datastacks.x]
        server = "https://example.org"
        description = "unterminated
    """)
    result = cli(workdir, config_dir, "datastacks")
    assert_error(result, errors.ConfigError, str(path), "line 4")
    # The same for an export that needs the registry, before any network.
    assert_error(cli(workdir, config_dir, "864691135000000001", "--static"), errors.ConfigError, str(path))
    write_config(config_dir, """
        [datastacks.x.static.12]
        lods = [0]
    """)
    assert_error(cli(workdir, config_dir, "datastacks"), errors.ConfigError, "[datastacks.x.static.12] needs url")


def test_config_dir_is_the_platform_one_by_default(monkeypatch):
    from platformdirs import user_config_dir

    monkeypatch.delenv(datastacks.CONFIG_ENV)
    assert datastacks.config_path() == datastacks.Path(user_config_dir("mesh-export")) / "datastacks.toml"


def test_datastacks_command_lists_them(workdir, config_dir):
    result = cli(workdir, config_dir, "datastacks")
    assert result.returncode == 0, result.stderr
    for entry in datastacks.BUILTIN:
        assert entry.name in result.stdout and entry.server in result.stdout
    assert "943, 1300*" in result.stdout and str(config_dir / "datastacks.toml") in result.stdout
    rows = json.loads(cli(workdir, config_dir, "datastacks", "--json").stdout)
    minnie = next(r for r in rows if r["name"] == "minnie65_public")
    assert minnie["default_version"] == 1300 and [s["version"] for s in minnie["static"]] == [943, 1300]
