"""Remote reads (retrieve/remote.py): local files and HTTP (the FixtureServer), ranges, gzip,
404 as Missing without a retry, 5xx and short bodies retried, the token header, map(), URL bases."""

from __future__ import annotations

import gzip

import pytest

from mesh_export.retrieve.politeness import Retrier


def test_remote_reads_local_files_and_ranges(tmp_path):
    from mesh_export.retrieve.remote import Missing, Remote, http_base

    (tmp_path / "a").write_bytes(b"0123456789")
    (tmp_path / "b.gz").write_bytes(gzip.compress(b"abcdef"))
    remote = Remote(tmp_path.as_uri(), Retrier(5))
    assert remote.get("a") == b"0123456789" and remote.get("a", 2, 3) == b"234"
    assert remote.get("b") == b"abcdef" and remote.get("b", 1, 2) == b"bc"
    with pytest.raises(Missing):
        remote.get("nothing")
    assert remote.map(["a", "b"], lambda r, name: r.get(name)) == [b"0123456789", b"abcdef"]
    assert http_base("gs://bucket/layer") == "https://storage.googleapis.com/bucket/layer"
    assert http_base("precomputed://s3://bucket/x") == "https://s3.amazonaws.com/bucket/x"
    assert http_base("middleauth+https://h/x") == "https://h/x"


# ------------------------------------------------------------------------------ over HTTP


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from support.server import FixtureServer

    root = tmp_path_factory.mktemp("remote")
    (root / "layer").mkdir()
    (root / "layer" / "a").write_bytes(bytes(range(256)) * 4)
    (root / "layer" / "b.gz").write_bytes(gzip.compress(b"abcdef"))
    with FixtureServer(root) as srv:
        yield srv


@pytest.fixture()
def http(served):
    from mesh_export.retrieve.remote import Remote

    with served.fresh():
        yield served, Remote(f"precomputed://{served.url}/layer", Retrier(5), threads=4, token="t0ken")


def test_http_reads_whole_objects_ranges_and_gzip(http):
    srv, remote = http
    data = bytes(range(256)) * 4
    assert remote.get("a") == data and remote.get("a", 1000, 24) == data[1000:]
    assert remote.get("b") == b"abcdef"  # served from b.gz with Content-Encoding: gzip
    ranged = srv.requests(r"/layer/a$")[1]
    assert ranged.range == "bytes=1000-1023" and ranged.status == 206


def test_http_404_is_missing_at_once_and_5xx_is_retried(http):
    from mesh_export.retrieve.remote import Missing

    srv, remote = http
    with pytest.raises(Missing):
        remote.get("nothing")
    assert srv.count(r"/nothing$") == 1  # a 404 is not retried
    srv.inject(r"/layer/a$", "503", times=2)
    assert len(remote.get("a")) == 1024 and srv.count(r"/layer/a$") == 3 and remote.retry.retries == 2


def test_a_short_ranged_body_is_fetched_again(http):
    srv, remote = http
    srv.inject(r"/layer/a$", "truncate", times=1)
    assert remote.get("a", 0, 512) == (bytes(range(256)) * 4)[:512]
    assert srv.count(r"/layer/a$") == 2


def test_map_keeps_job_order_and_raises_the_first_failure(http):
    from mesh_export.retrieve.remote import Missing

    srv, remote = http
    offsets = list(range(0, 1024, 64))
    done = []
    parts = remote.map(offsets, lambda r, start: r.get("a", start, 64), on_done=lambda k, _: done.append(k))
    assert b"".join(parts) == bytes(range(256)) * 4 and sorted(done) == list(range(len(offsets)))
    with pytest.raises(Missing):
        remote.map(["a", "gone", "b"], lambda r, name: r.get(name))
    assert remote.map([], lambda r, job: job) == []


def test_the_token_goes_in_the_authorization_header_only(http):
    srv, remote = http
    seen = []

    def secret(request):
        seen.append(request.headers.get("Authorization"))
        return 200, {}, b"s"

    srv.add_route(r"/layer/secret", secret)
    assert remote.get("secret") == b"s" and seen == ["Bearer t0ken"]
    assert "t0ken" not in srv.requests(r"/secret")[0].query


def test_bases_that_cannot_be_read():
    from mesh_export.retrieve.remote import http_base, join

    with pytest.raises(ValueError, match="cannot read storage"):
        http_base("ftp://host/x")
    assert http_base("file:///data/x") == "file:///data/x"
    assert join("https://h/x/", "/a/", "", "b") == "https://h/x/a/b"
