"""Sharded storage (``neuroglancer_uint64_sharded_v1``) of whole labels' payloads, rebuilt one
shard at a time: adding a label re-reads only the shard it hashes to, takes every payload
already there back out, and writes that shard again with the new one (cloud-volume's encoder
and index decoders, so readers see exactly what they expect)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

#: Fixed when a layer is made, so a label's shard never moves: 8 shards of 8 minishards.
SHARDING = {"@type": "neuroglancer_uint64_sharded_v1", "preshift_bits": 0, "hash": "murmurhash3_x86_128",
            "minishard_bits": 3, "shard_bits": 3, "minishard_index_encoding": "gzip",
            # Raw: readers fetch fragment data by byte range relative to the manifest.
            "data_encoding": "raw"}


def _spec(sharding: dict):
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

    return ShardingSpecification.from_dict(dict(sharding))


def shard_name(sharding: dict, label: int) -> str:
    return f"{_spec(sharding).compute_shard_location(int(label)).shard_number}.shard"


def read_shard(blob: bytes, sharding: dict, data_length: Callable[[bytes], int]) -> dict[int, tuple[bytes, int]]:
    """``{label: (payload, key length)}`` of one shard file: each entry's indexed bytes (the
    key, e.g. a mesh manifest) with the ``data_length(key)`` bytes stored before it."""
    from cloudvolume.datasource.precomputed.sharding import ShardReader

    spec = _spec(sharding)
    reader = ShardReader(None, None, spec)
    out = {}
    for start, end in reader.decode_index(blob[: spec.index_length()]):
        if start == end:
            continue
        for label, offset, size in reader.decode_minishard_index(blob[int(start):int(end)]):
            key = blob[int(offset):int(offset) + int(size)]
            before = data_length(key)
            out[int(label)] = (blob[int(offset) - before:int(offset) + int(size)], int(size))
    return out


def write_shard(directory: Path, sharding: dict, entries: dict[int, tuple[bytes, int]], put: Callable) -> None:
    """Write the shard holding ``entries`` (all of one shard: ``{label: (payload, key length)}``)
    through ``put(path, bytes)``."""
    from cloudvolume.datasource.precomputed.sharding import synthesize_shard_files

    payloads = {label: payload for label, (payload, _) in entries.items()}
    keys = {label: key for label, (_, key) in entries.items()}
    for filename, blob in synthesize_shard_files(_spec(sharding), payloads, keys).items():
        put(directory / filename, blob)
