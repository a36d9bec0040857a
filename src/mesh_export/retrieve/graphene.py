"""Dynamic (graphene / PyChunkedGraph) meshes, fetched the way a 10M-face cell needs.

CloudVolume's ``mesh.get`` on a sharded graphene layer asks the meshing manifest with a bare
``requests.get`` (no timeout, no retry), downloads the dynamic fragments, *then* the initial ones
(one range read each), decodes them one by one, and stitches them with two ``np.unique(axis=0)``
over float rows: 66 of 78 s of a 9M-face fetch. Here, with the same requests and the same wire
formats:

- the chunkedgraph ``info`` is read once per process and layer, and kept in the cache
  directory for ten minutes (unless the cache is off); the mesh ``info`` and the first manifest are then asked for together (CloudVolume
  itself is not imported: its import alone costs ~1.1 s, more than a whole small mesh takes).
  A fetch is two round trips when the layer is known (manifest, fragments), three when not;
- the manifest (``verify=True``, ``return_seg_ids=1``, ``start_layer`` in the body, as
  CloudVolume sends it) goes through our retries and the fetch's time budget;
- dynamic files and initial shard ranges are all requested at once (a thread and, over
  HTTP/1.1, a connection each, within ``--max-connections``), each fragment decoded with
  DracoPy on the thread that fetched it, so decoding overlaps the downloads still in flight;
- each fragment's merge keys are computed on its thread too; one exact vertex merge (in
  :mod:`mesh_export.retrieve.fetch`) then joins chunk borders and Draco's split vertices,
  writing the merged arrays straight from the fragments (no concatenated copy first).

Every fragment the manifest lists is fetched, or the mesh is incomplete: a fragment that stays
missing (404) or undecodable is an error unless ``allow_missing``, which records it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from mesh_export.errors import AuthError, IncompleteMeshError, InvalidMeshError, NotFoundError, SourceError
from mesh_export.retrieve.fetched import Fetched, decoded_piece, from_pieces
from mesh_export.retrieve.politeness import Retrier
from mesh_export.retrieve.remote import Missing, Remote, http_base, join

# CloudVolume's GraphenePath forms (datasource/graphene/metadata.py), newest first.
_PATH_FORMS = (
    re.compile(r"/?(\w+)/(table)/([\w\d\.\_\-]+)/?"),
    re.compile(r"/?(\w+)/api/(v[\d\.]+)/([\w\d\.\_\-]+)/?"),
    re.compile(r"/?(\w+)/([\d\.]+)/([\w\d\.\_\-]+)/?"),
)
_API_VERSIONS = ("1.0", "v1")  # index = the numbers in info["app"]["supported_api_versions"]
_INITIAL = re.compile(r"~(\d+)/([\d\-]+\.shard):(\d+):(\d+)")
#: A fragment whose bytes do not decode is fetched again this many times (a body cut short
#: without the server saying so) before it counts as corrupt.
_DECODE_ATTEMPTS = 3


@dataclass(frozen=True)
class GrapheneLayer:
    """What a graphene cloudpath points at: its servers, its storage and its mesh layout."""

    info_url: str
    manifest_url: str  # ends in .../manifest
    data_url: str  # the storage root (info["data_dir"]), as an http(s):// or file:// URL
    data_needs_token: bool  # middleauth+ storage wants the CAVE token; public buckets must not get it
    mesh_dir: str
    dynamic_dir: str
    layer_id_bits: int
    max_meshed_layer: int
    sharded: bool

    def start_layer(self, root_id: int) -> int:
        return min(int(root_id) >> (64 - self.layer_id_bits), self.max_meshed_layer)


def parse_graphene_url(cloudpath: str) -> tuple[str, str, str, str, str]:
    """``graphene://[middleauth+]https://host/segmentation/table/name`` ->
    (scheme, host, modality, version, dataset), as CloudVolume reads it."""
    url = cloudpath.replace("graphene://", "", 1).replace("middleauth+", "", 1)
    parsed = urlparse(url)
    for form in _PATH_FORMS:
        match = form.match(parsed.path)
        if match:
            modality, version, dataset = match.groups()
            return parsed.scheme, parsed.netloc, modality, version, dataset
    raise SourceError(f"cannot parse the graphene URL {cloudpath!r}: expected "
                      "graphene://https://HOST/segmentation/table/DATASET")


def _api_path(version: str, modality: str, dataset: str) -> str:
    if version == "1.0":
        return posixpath.join(modality, "1.0", dataset)
    return posixpath.join(modality, "api", version, "table", dataset)


_LAYERS: dict[tuple[str, int], GrapheneLayer] = {}
_LAYERS_LOCK = threading.Lock()
#: Seconds a layer read by an earlier process is trusted. The chunkedgraph info and the mesh
#: info change only when a dataset is moved or re-meshed; reading them costs a new process two
#: dependent round trips (0.2-0.4 s for a distant user) before the manifest can be asked for.
LAYER_INFO_TTL = 600.0
_LAYER_INFO_DIR = "graphene-layers"


def _disk_path(cache_dir: str | os.PathLike, cloudpath: str) -> Path:
    return Path(cache_dir) / _LAYER_INFO_DIR / (hashlib.sha256(cloudpath.encode()).hexdigest() + ".json")


def _layer_from_disk(cache_dir: str | os.PathLike | None, cloudpath: str) -> GrapheneLayer | None:
    """The layer an earlier process read, if it was read less than LAYER_INFO_TTL ago (no token
    is stored: the manifest, which every fetch asks for, still checks it)."""
    if cache_dir is None:
        return None
    try:
        path = _disk_path(cache_dir, cloudpath)
        stored = json.loads(path.read_text())
        if stored.get("cloudpath") != cloudpath or not 0 <= time.time() - stored["read_at"] < LAYER_INFO_TTL:
            return None
        return GrapheneLayer(**stored["layer"])
    except (OSError, ValueError, KeyError, TypeError):  # absent, damaged or of another version: read it again
        return None


def _layer_to_disk(cache_dir: str | os.PathLike | None, cloudpath: str, layer: GrapheneLayer) -> None:
    from mesh_export.core.atomic import replaced_file

    if cache_dir is None:
        return
    try:
        path = _disk_path(cache_dir, cloudpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_file(path, "w") as handle:
            json.dump({"cloudpath": cloudpath, "read_at": time.time(), "layer": asdict(layer)}, handle)
    except OSError:  # a read-only cache costs the next process two requests, nothing more
        pass


def _known_layer(cloudpath: str, token: str, cache_dir: str | os.PathLike | None) -> GrapheneLayer | None:
    key = (cloudpath, hash(token))
    with _LAYERS_LOCK:
        if key in _LAYERS:
            return _LAYERS[key]
    layer = _layer_from_disk(cache_dir, cloudpath)
    if layer is not None:
        with _LAYERS_LOCK:
            _LAYERS[key] = layer
    return layer


def open_layer(cloudpath: str, token: str, retry: Retrier,
               cache_dir: str | os.PathLike | None = None) -> GrapheneLayer:
    """The chunkedgraph info and the mesh info of ``cloudpath``: read once per process, and
    kept in ``cache_dir`` (if given) for LAYER_INFO_TTL seconds for the processes after it."""
    return _known_layer(cloudpath, token, cache_dir) or _read_layer(cloudpath, token, retry, cache_dir)[0]


def _read_layer(cloudpath: str, token: str, retry: Retrier, cache_dir: str | os.PathLike | None,
                root_id: int | None = None) -> tuple[GrapheneLayer, dict[str, Any] | None]:
    """Read the layer from its servers; with ``root_id``, that id's manifest too, asked for
    together with the mesh info (both need only the chunkedgraph info): two round trips, not three."""
    scheme, host, modality, version, dataset = parse_graphene_url(cloudpath)
    base = f"{scheme}://{host}/"
    info_url = posixpath.join(base, modality, "table", dataset, "info")
    server = Remote(base, retry, token=token, threads=1)
    try:
        info = json.loads(server.get(info_url[len(base):]))
    except Missing:
        raise SourceError(f"{cloudpath}: the chunkedgraph has no table {dataset!r}") from None
    if version == "table":
        supported = sorted(int(v) for v in info.get("app", {}).get("supported_api_versions", [1]))
        version = _API_VERSIONS[supported[-1]]
    manifest_url = posixpath.join(base, _api_path(version, "meshing", dataset), "manifest")

    data_dir = info["data_dir"]
    data_url = http_base(data_dir)
    mesh_dir = info.get("mesh", "mesh")
    metadata = info.get("mesh_metadata") or {}
    graph = info.get("graph", {})
    layer = GrapheneLayer(
        info_url=info_url, manifest_url=manifest_url, data_url=data_url,
        data_needs_token=data_dir.startswith("middleauth+"), mesh_dir=mesh_dir,
        dynamic_dir=metadata.get("unsharded_mesh_dir", "dynamic"),
        layer_id_bits=int(graph.get("n_bits_for_layer_id", 8)),
        max_meshed_layer=int(metadata.get("max_meshed_layer", graph.get("n_layers", 12))),
        sharded=False,
    )
    storage = Remote(data_url, retry, token=token if layer.data_needs_token else None, threads=1)

    def read_mesh_info() -> dict:
        try:
            return json.loads(storage.get(join(mesh_dir, "info")))
        except Missing:
            raise SourceError(f"{cloudpath}: its storage {data_dir} has no {mesh_dir}/info") from None

    manifest = None
    if root_id is None:
        mesh_info = read_mesh_info()
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mesh-export-info") as side:
            mesh_info_future = side.submit(read_mesh_info)
            try:
                manifest = fetch_manifest(layer, root_id, token, retry)
            finally:
                mesh_info = mesh_info_future.result()  # its error (a missing mesh info) comes first
    layer = replace(layer, sharded="sharding" in mesh_info)
    with _LAYERS_LOCK:
        _LAYERS[(cloudpath, hash(token))] = layer
    _layer_to_disk(cache_dir, cloudpath, layer)
    return layer, manifest


def open_layer_and_manifest(cloudpath: str, root_id: int, token: str, retry: Retrier,
                            cache_dir: str | os.PathLike | None = None) -> tuple[GrapheneLayer, dict[str, Any]]:
    """The layer and ``root_id``'s manifest in as few round trips as the caches allow: one
    (the manifest) when this process or a recent one (through ``cache_dir``) read the layer,
    else two."""
    layer = _known_layer(cloudpath, token, cache_dir)
    if layer is not None:
        return layer, fetch_manifest(layer, root_id, token, retry)
    layer, manifest = _read_layer(cloudpath, token, retry, cache_dir, root_id)
    assert manifest is not None
    return layer, manifest


def fetch_manifest(layer: GrapheneLayer, root_id: int, token: str, retry: Retrier) -> dict[str, Any]:
    server = Remote(layer.manifest_url, retry, token=token, threads=1)
    body = json.dumps({"start_layer": layer.start_layer(root_id)})
    try:
        raw = server.get(f"{root_id}:0", params={"verify": "True", "return_seg_ids": "1"}, body=body)
    except Missing:
        raise NotFoundError(f"root id {root_id} has no mesh at this source") from None
    manifest = json.loads(raw)
    if not manifest.get("fragments"):
        raise NotFoundError(f"root id {root_id} has no mesh at this source")
    return manifest


def _requests(layer: GrapheneLayer, manifest: dict) -> list[tuple[str, str, int | None, int | None]]:
    """(name in the manifest, storage path, byte start, byte size) for every listed fragment."""
    jobs = []
    for name in manifest["fragments"]:
        if not name:
            continue
        if name.startswith("~"):
            match = _INITIAL.search(name)
            if not match:
                raise SourceError(f"cannot read the manifest entry {name!r}")
            level, filename, start, size = match.groups()
            jobs.append((name, join(layer.mesh_dir, "initial", level, filename), int(start), int(size)))
        else:
            jobs.append((name, join(layer.mesh_dir, layer.dynamic_dir, name), None, None))
    return jobs


def _fetch_fragment(remote: Remote, job, keys: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | str:
    """Download and decode one fragment, and compute its vertices' merge keys (on this thread,
    while other fragments are still downloading; not with ``keys=False``); the manifest name if
    it is missing or corrupt."""
    import DracoPy

    name, path, start, size = job
    for attempt in range(_DECODE_ATTEMPTS):
        try:
            data = remote.get(path, start, size)
        except Missing:
            return name
        try:
            decoded = DracoPy.decode(data)
            return decoded_piece(decoded.points, decoded.faces, f"fragment {name}", keys=keys)
        except Exception:  # DracoPy's errors, or faces past the fragment's vertices
            if attempt + 1 < _DECODE_ATTEMPTS and not remote.retry.expired():
                with remote.retry._lock:
                    remote.retry.retries += 1
                continue
            return "corrupt:" + name
    return "corrupt:" + name  # pragma: no cover - the loop returns


def fetch_graphene_mesh(cloudpath: str, root_id: int, *, token: str | None, retry: Retrier,
                        allow_missing: bool = False, threads: int | None = None,
                        cache_dir: str | os.PathLike | None = None, merge_keys: bool = True) -> Fetched | None:
    """All fragments of ``root_id``'s dynamic mesh, decoded, for the merge (``Fetched.pieces``);
    None for a layer of the older unsharded layout (which CloudVolume reads).

    ``threads``: fragments in flight at once (None: all of them, within the process's cap).
    ``cache_dir``: where the layer's info is kept between processes (None: in this one only).
    ``merge_keys=False``: the fragments' merge keys are not computed (a mesh left unmerged)."""
    if not token:
        from mesh_export.retrieve.auth import TOKEN_HELP

        raise AuthError(f"{cloudpath} needs a CAVE token: {TOKEN_HELP}")
    layer, manifest = open_layer_and_manifest(cloudpath, root_id, token, retry, cache_dir)
    if not layer.sharded:
        return None
    jobs = _requests(layer, manifest)
    storage = Remote(layer.data_url, retry, threads=threads, token=token if layer.data_needs_token else None)
    results = storage.map(jobs, functools.partial(_fetch_fragment, keys=merge_keys))
    missing = [r for r in results if isinstance(r, str)]
    corrupt = [m for m in missing if m.startswith("corrupt:")]
    if missing and not allow_missing:
        if corrupt:
            raise InvalidMeshError(f"root id {root_id}: {len(corrupt)} of {len(jobs)} fragments cannot be decoded "
                                   f"(first: {corrupt[0][len('corrupt:'):]}); pass --allow-missing to export the rest")
        raise IncompleteMeshError(f"root id {root_id}: {len(missing)} of {len(jobs)} fragments listed in its "
                                  "manifest could not be fetched; pass --allow-missing to export the rest")
    pieces = [r for r in results if not isinstance(r, str)]
    if not pieces:
        raise NotFoundError(f"root id {root_id}: none of its {len(jobs)} fragments could be fetched")
    return from_pieces(pieces, 0, None, len(jobs), [m.removeprefix("corrupt:") for m in missing])

