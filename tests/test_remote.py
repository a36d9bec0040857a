"""Remote reads (retrieve/remote.py): local files, ranges, gzip, URL bases."""

from __future__ import annotations

import pytest

from mesh_export.retrieve.politeness import Retrier


def test_remote_reads_local_files_and_ranges(tmp_path):
    import gzip

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
