"""Where meshes come from (retrieve/sources.py): a datastack (CAVE's info service, faked on a
local FixtureServer), --static (the datastack registry, no network), --source URL or folder,
and "sample", each turned into a CloudVolume cloudpath; and the errors, each one class with
its own exit code and, through the CLI, one line."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from conftest import cli_in
from mesh_export import errors
from mesh_export.retrieve import datastacks, sources
from mesh_export.retrieve.sources import (
    SAMPLE,
    STATIC_SOURCES,
    Source,
    check_reachable,
    normalize_url,
    resolve,
    sample_path,
    segmentation_source,
)
from support.precomputed import cave_datastack_info
from support.server import FixtureServer

TOKEN = "0123456789abcdef0123456789abcdef"
STACK = "unit_stack"


@pytest.fixture(scope="module")
def cave(tmp_path_factory):
    """A CAVE InfoService with one datastack whose segmentation is a graphene URL."""
    with FixtureServer(tmp_path_factory.mktemp("cave"), token=TOKEN) as srv:
        srv.add_datastack(STACK, payload=cave_datastack_info(
            STACK, server_url=srv.url, segmentation_source=f"graphene://{srv.url}/segmentation/table/t"))
        srv.add_datastack("precomputed_stack", payload=cave_datastack_info(
            "precomputed_stack", server_url=srv.url, segmentation_source="gs://bucket/seg"))
        yield srv


@pytest.fixture()
def srv(cave):
    with cave.fresh():
        yield cave


# Every test gets a private config directory (conftest): no user datastacks.toml leaks in.
pytestmark = pytest.mark.usefixtures("config_dir")


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------ --source spellings


@pytest.mark.parametrize("given, cloudpath", [
    ("precomputed://gs://b/seg", "precomputed://gs://b/seg"),
    ("graphene://https://h/segmentation/table/t", "graphene://https://h/segmentation/table/t"),
    ("graphene://middleauth+https://h/t", "graphene://middleauth+https://h/t"),
    ("gs://b/seg", "precomputed://gs://b/seg"),
    ("s3://b/seg", "precomputed://s3://b/seg"),
    ("https://h/seg", "precomputed://https://h/seg"),
    ("http://127.0.0.1:9/seg", "precomputed://http://127.0.0.1:9/seg"),
    ("file:///data/seg", "precomputed://file:///data/seg"),
])
def test_every_accepted_url_spelling(given, cloudpath):
    assert normalize_url(given) == cloudpath
    source = resolve(source=given)
    assert (source.url, source.kind) == (cloudpath, "graphene" if given.startswith("graphene") else "precomputed")
    assert source.datastack is None and source.extra == {}


def test_a_local_folder_is_a_file_cloudpath(tmp_path, monkeypatch):
    layer = tmp_path / "my layer"
    layer.mkdir()
    assert normalize_url(str(layer)) == "precomputed://" + layer.resolve().as_uri()
    monkeypatch.chdir(tmp_path)
    assert normalize_url("my layer") == "precomputed://" + layer.resolve().as_uri()  # relative too
    assert "%20" in normalize_url("my layer")  # a URI: the space is quoted


def test_sample_is_the_bundled_layer():
    assert sample_path() == Path(sources.__file__).parents[1] / "data" / "sample"
    assert (sample_path() / "info").is_file()
    source = resolve(source=SAMPLE, version=3)
    assert source.url == "precomputed://" + sample_path().resolve().as_uri()
    assert source.kind == "precomputed" and source.extra == {"sample": True} and source.version == 3
    assert source.provenance() == {"kind": "precomputed", "url": source.url, "datastack": None, "version": 3,
                                   "server": None, "sample": True}


@pytest.mark.parametrize("bad", ["nowhere", "ftp://host/seg", "gs:/b/seg", "", "precomputed:/x", "sample/"])
def test_a_bad_source_is_a_source_error_listing_the_schemes(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so no folder of that name exists
    with pytest.raises(errors.SourceError) as caught:
        normalize_url(bad)
    message = str(caught.value)
    assert message.startswith(f"cannot use {bad!r} as a source") and "'sample'" in message
    assert "\n" not in message and caught.value.exit_code == 13


def test_a_missing_folder_is_a_bad_source(tmp_path):
    with pytest.raises(errors.SourceError, match="cannot use"):
        resolve(source=str(tmp_path / "not-there"))


def test_static_and_source_are_exclusive():
    with pytest.raises(errors.InvalidArgumentError, match="--static and --source are exclusive") as caught:
        resolve(source="sample", static=True)
    assert caught.value.exit_code == 2 and isinstance(caught.value, ValueError)


# ------------------------------------------------------------------------------ --static


def test_static_resolves_from_the_registry_without_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("--static must not ask CAVE or open a socket")

    monkeypatch.setattr(sources, "segmentation_source", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    source = resolve(static=True)  # the default datastack, its default (newest) release
    release = datastacks.lookup(datastacks.DEFAULT_DATASTACK).static_release()
    assert source == Source("precomputed", release.url, datastack=datastacks.DEFAULT_DATASTACK,
                            version=release.version, server=datastacks.GLOBAL_SERVER,
                            extra={"static": True, "lods": list(release.lods), "units": release.units})
    old = resolve(datastack="minnie65_public", static=True, version=943)
    assert old.url.endswith("seg_m943") and old.version == 943
    assert resolve(datastack="flywire_fafb_public", static=True, server="https://mine").server == "https://mine"


def test_static_sources_is_the_registrys_newest_release_per_datastack():
    assert STATIC_SOURCES == {e.name: (e.static_release().url, e.static_release().version)
                              for e in datastacks.BUILTIN if e.static}
    assert set(STATIC_SOURCES) == {"minnie65_public", "flywire_fafb_public"}


@pytest.mark.parametrize("datastack, version, text", [
    ("no_such_stack", None, "no static mesh source: unknown datastack 'no_such_stack'"),
    ("minnie65_public", 1000, "no static mesh release for version 1000 (there are: 943, 1300)"),
    ("h01_c3_flat", None, "no static mesh release is known for datastack 'h01_c3_flat'"),
])
def test_static_errors(datastack, version, text):
    with pytest.raises(errors.SourceError, match=text.replace("(", r"\(").replace(")", r"\)")) as caught:
        resolve(datastack=datastack, static=True, version=version)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------ datastack -> CAVE


def test_a_datastack_resolves_to_what_cave_answers(srv):
    source = resolve(datastack=STACK, server=srv.url, token=TOKEN, version=7)
    assert source == Source("graphene", f"graphene://{srv.url}/segmentation/table/t", datastack=STACK,
                            version=7, server=srv.url)
    assert srv.count(rf"/info/api/v2/datastack/full/{STACK}$") >= 1
    other = resolve(datastack="precomputed_stack", server=srv.url, token=TOKEN)
    assert (other.kind, other.url) == ("precomputed", "gs://bucket/seg")  # as CAVE gave it


def test_an_unknown_datastack_at_cave_is_a_source_error(srv):
    with pytest.raises(errors.SourceError) as caught:
        segmentation_source("no_such_stack", server=srv.url, token=TOKEN)
    assert str(caught.value) == f"unknown datastack 'no_such_stack' at {srv.url}"
    assert caught.value.exit_code == 13


@pytest.mark.parametrize("token", [None, "fedcba9876543210fedcba9876543210"])
def test_a_refused_token_is_an_auth_error_that_never_echoes_it(srv, token, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no real secret file is read and sent
    with pytest.raises(errors.AuthError) as caught:
        resolve(datastack=STACK, server=srv.url, token=token)
    message = str(caught.value)
    assert "refused the token (401)" in message and "\n" not in message
    assert token is None or token not in message
    assert caught.value.exit_code == 10


def test_a_cave_server_error_is_a_network_error(srv):
    srv.inject(rf"/info/api/v2/datastack/full/{STACK}$", "500", times=None)
    started = time.monotonic()
    with pytest.raises(errors.NetworkError) as caught:
        resolve(datastack=STACK, server=srv.url, token=TOKEN)
    assert "answered 500" in str(caught.value) and STACK in str(caught.value)
    assert caught.value.exit_code == 9 and time.monotonic() - started < 60


def test_an_unreachable_cave_fails_fast_with_a_network_error():
    server = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(errors.NetworkError, match=r"cannot reach 127\.0\.0\.1:\d+ .*--offline"):
        resolve(datastack=STACK, server=server, token=TOKEN)
    assert time.monotonic() - started < 5
    # Without the socket check caveclient's own failure is mapped too.
    with pytest.raises(errors.NetworkError, match="cannot reach CAVE at"):
        segmentation_source(STACK, server=server, token=TOKEN, check_network=False)


def test_the_datastacks_own_server_is_asked_unless_server_is_given(monkeypatch):
    asked = []

    def fake(datastack, *, server, token, timeout, check_network):
        asked.append((datastack, server))
        return "graphene://https://h/t"

    monkeypatch.setattr(sources, "segmentation_source", fake)
    resolve(datastack="h01_c3_flat")
    resolve(datastack="h01_c3_flat", server="https://other")
    resolve()
    assert asked == [("h01_c3_flat", "https://global.brain-wire-test.org"), ("h01_c3_flat", "https://other"),
                     (datastacks.DEFAULT_DATASTACK, datastacks.GLOBAL_SERVER)]


# ------------------------------------------------------------------------------ reachability


@pytest.mark.parametrize("url, endpoint", [
    ("precomputed://gs://b/x", ("storage.googleapis.com", 443)),
    ("s3://b/x", ("s3.amazonaws.com", 443)),
    ("graphene://https://cave.example.org/seg", ("cave.example.org", 443)),
    ("precomputed://http://127.0.0.1:8123/x", ("127.0.0.1", 8123)),
    ("http://host/x", ("host", 80)),
    ("precomputed://file:///data/x", None),
    ("graphene://middleauth+https://h/x", None),  # not a scheme urlparse knows: not checked
])
def test_the_endpoint_a_cloudpath_connects_to(url, endpoint):
    assert sources._endpoint(url) == endpoint


def test_check_reachable_remembers_a_reachable_host(srv, monkeypatch):
    monkeypatch.setattr(sources, "_reachable", set())
    check_reachable(f"precomputed://{srv.url}/x")
    assert ("127.0.0.1", srv.port) in sources._reachable
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("asked twice"))
    check_reachable(f"{srv.url}/y")  # known reachable: no second connection
    check_reachable(normalize_url(SAMPLE))  # local files: nothing to check


# ------------------------------------------------------------------------------ through the CLI


@pytest.mark.parametrize("args, error, text", [
    (["--source", "nowhere"], errors.SourceError, "cannot use 'nowhere' as a source"),
    (["--source", "ftp://host/seg"], errors.SourceError, "cannot use 'ftp://host/seg'"),
    (["--static", "--source", "sample"], errors.InvalidArgumentError, "--static and --source are exclusive"),
    (["--datastack", "no_such_stack", "--static"], errors.SourceError, "unknown datastack 'no_such_stack'"),
])
def test_source_errors_are_one_line_with_their_exit_code(workdir, config_dir, args, error, text):
    result = cli_in(workdir, "864691135010718168", *args, env={datastacks.CONFIG_ENV: str(config_dir)})
    assert result.returncode == error.exit_code, (result.returncode, result.stderr)
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr, result.stderr
    assert text in result.stderr and not list((workdir / "out").iterdir())
