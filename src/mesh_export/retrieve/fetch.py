"""Fetch one mesh from a Source with CloudVolume: retries, completeness, sanity checks.

Each source kind goes through CloudVolume's own readers; what is added here is what a
notebook user doesn't get: transient failures retried within a time budget (CloudVolume
does not retry the graphene manifest), a mesh with unfetchable fragments treated as an
error rather than silently partial, decoded data checked before use, vertices merged across
fragment borders, and every failure mapped to one clear error.
"""

from __future__ import annotations

import contextvars
import os
import threading
from typing import Any

import numpy as np

from mesh_export.retrieve.auth import TOKEN_HELP, redact
from mesh_export.errors import (
    AuthError,
    IncompleteMeshError,
    InvalidMeshError,
    MeshExportError,
    NetworkError,
    NotFoundError,
    SourceError,
)
from mesh_export.retrieve.fetched import Fetched, single_lod
from mesh_export.retrieve.politeness import (BACKOFF, RATE_LIMIT, RateLimiter, Retrier, http_status,  # noqa: F401
                                             is_transient, set_rate_limit, untrusted_certificate)
from mesh_export.retrieve.sources import Source, check_reachable
# Re-exported: readers and info merge vertices too (core, so writers need not import retrieve).
from mesh_export.core.mesh_ops import merge_duplicate_vertices, merge_pieces  # noqa: F401

# Threads fetching one static mesh's fragments (mesh_export.retrieve.static_fetch). A batch runs one fetch per worker
# instead: nested pools oversubscribed 2 cores, and on Dask workers they left requests
# waiting forever on shared keep-alive connections.
FRAGMENT_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("fragment_threads", default=20)
#: Requests in flight for one graphene mesh (our own fetch): None = every fragment of the manifest
#: at once, within the process-wide cap (politeness.IN_FLIGHT, ``--max-connections``).
GRAPHENE_THREADS: contextvars.ContextVar[int | None] = contextvars.ContextVar("graphene_threads", default=None)


def check_decoded(vertices: np.ndarray, faces: np.ndarray, root_id: int) -> None:
    check_pieces([(vertices, faces)], root_id)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InvalidMeshError(f"root id {root_id}: decoded mesh has face indices out of range (corrupt data)")


def check_pieces(pieces: list, root_id: int) -> None:
    """A mesh as decoded, ``(vertices, faces)`` pieces (fragments left unmerged, or the merged
    mesh as one): not empty, and finite. Each fragment's face indices were checked against its
    own vertices as it was decoded."""
    if not any(len(faces) for _, faces in pieces):
        raise NotFoundError(f"root id {root_id}: the source returned an empty mesh")
    for vertices, _ in pieces:
        if not np.isfinite(vertices).all():
            raise InvalidMeshError(f"root id {root_id}: decoded mesh has non-finite vertices (corrupt data)")


# Opened volumes, reused across ids in one thread: opening costs three requests (info,
# mesh info, provenance) that are the same for every id of a layer. Per thread, because a
# CloudVolume object (and the manifest memo below) is not meant to be shared by threads;
# a batch pays the three requests once per worker thread.
_LOCAL = threading.local()
_MAX_VOLUMES = 8


def open_volume(source: Source, token: str | None, progress: bool, retry: Retrier):
    from cloudvolume import CloudVolume

    kwargs: dict[str, Any] = {"use_https": True, "progress": progress, "cache": False,
                              "green_threads": False}
    if source.kind == "graphene":
        if not token:
            raise AuthError(f"{source.url} needs a CAVE token: {TOKEN_HELP}")
        kwargs["secrets"] = token
    volumes = _LOCAL.__dict__.setdefault("volumes", {})
    key = (source.url, hash(token), progress)
    if key not in volumes:
        if len(volumes) >= _MAX_VOLUMES:
            volumes.pop(next(iter(volumes)))
        volumes[key] = retry(lambda: CloudVolume(source.url, **kwargs))
    return volumes[key]


class _Stages:
    """A progress bar over the stages of one fetch, on a terminal only (stderr, like tqdm's).

    A multi-LOD mesh is a few ranged reads, so its stages are what there is to show."""

    def __init__(self, root_id: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=4, desc=f"{root_id}", unit="step", leave=False,
                            bar_format="{desc}: {bar} {n_fmt}/{total_fmt} {postfix}")

    def step(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(label)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fetch_mesh(source: Source, root_id: int, *, lod: int | None = None, token: str | None = None,
               timeout: float = 120.0, allow_missing: bool = False, progress: bool = False,
               cache_dir: str | os.PathLike | None = None, merge: bool = True) -> Fetched:
    """Download and decode ``root_id`` from ``source``; raise a MeshExportError on any failure.

    ``cache_dir``: where a graphene layer's info is kept between processes (None: nowhere).
    ``merge=False``: a mesh fetched in fragments is left in them (``Fetched.pieces``, each piece
    checked, ``vertices`` and ``faces`` None) for a caller that needs no merged mesh; a source
    read by CloudVolume comes merged either way."""
    check_reachable(source.url, timeout)
    retry = Retrier(timeout)
    stages = _Stages(root_id, progress)
    try:
        fetched = None
        if source.kind == "graphene":
            fetched = _fetch_graphene_sharded(source, root_id, lod, token, allow_missing, retry, cache_dir,
                                              merge_keys=merge)
        else:
            # Static layers (multi-resolution and legacy): our own fetch (mesh_export.retrieve.static_fetch).
            from mesh_export.retrieve.static_fetch import fetch_static

            fetched = fetch_static(source.url, root_id, lod=lod, retry=retry, allow_missing=allow_missing,
                                   token=token, threads=FRAGMENT_THREADS.get(),
                                   opened=lambda: stages.step("opened layer; downloading"), merge_keys=merge)
        if fetched is None:
            volume = open_volume(source, token, progress, retry)
            stages.step("opened layer; downloading")
            if source.kind == "graphene":
                fetched = _fetch_graphene(volume, root_id, lod, retry)
        stages.step("downloaded and decoded" + ("; merging" if merge else ""))
    except MeshExportError:
        stages.close()
        raise
    except Exception as exc:
        stages.close()
        translated = _translate(exc, source, root_id, token)
        if translated is exc:
            raise
        raise translated from None
    fetched.retries = retry.retries
    if not merge and fetched.pieces is not None:
        check_pieces(fetched.pieces, root_id)
        fetched.merge_keys = fetched.merged_vertices = None
        stages.close()
        return fetched
    pieces = fetched.pieces if fetched.pieces is not None else [(fetched.vertices, fetched.faces)]
    fetched.pieces = fetched.vertices = fetched.faces = None
    fetched.vertices, fetched.faces, fetched.merged_vertices = merge_pieces(pieces, keys=fetched.take_merge_keys())
    stages.step("merged; checking")
    check_decoded(fetched.vertices, fetched.faces, root_id)
    stages.step(f"{len(fetched.faces):,} faces")
    stages.close()
    return fetched


def _fetch_graphene_sharded(source: Source, root_id: int, lod: int | None, token: str | None,
                            allow_missing: bool, retry: Retrier, cache_dir=None,
                            merge_keys: bool = True) -> Fetched | None:
    """Sharded graphene meshes through our own fetch (mesh_export.retrieve.graphene); None for the
    older unsharded layout, which CloudVolume reads."""
    from mesh_export.retrieve.graphene import fetch_graphene_mesh

    single_lod(lod, "dynamic (graphene)")  # refuses another lod
    if not token:
        raise AuthError(f"{source.url} needs a CAVE token: {TOKEN_HELP}")
    return fetch_graphene_mesh(source.url, root_id, token=token, retry=retry, allow_missing=allow_missing,
                               threads=GRAPHENE_THREADS.get(), cache_dir=cache_dir, merge_keys=merge_keys)


def _fetch_graphene(volume, root_id: int, lod: int | None, retry: Retrier) -> Fetched:
    lod = single_lod(lod, "dynamic (graphene)")
    try:
        # Chunk-boundary dedup is done here by an exact vertex merge (and CloudVolume's
        # graphene dedup prints a warning to stdout for sharded meshes).
        result = retry(lambda: volume.mesh.get(root_id, deduplicate_chunk_boundaries=False))
    except IndexError:
        raise NotFoundError(f"root id {root_id} has no mesh at this source") from None
    except TypeError as exc:
        # CloudVolume's signature of a fragment that came back empty (a 404 inside a mesh).
        raise IncompleteMeshError(f"root id {root_id}: a fragment could not be fetched or decoded "
                                  f"({type(exc).__name__}: {exc})") from None
    mesh = result[root_id] if isinstance(result, dict) else result
    return Fetched(np.asarray(mesh.vertices), np.asarray(mesh.faces), lod, None, 0)


class _NoSuchError(Exception):
    """Stands in for a library's error class when that library was never imported."""


def _translate(exc: Exception, source: Source, root_id: int, token: str | None) -> Exception:
    """Map the many exception types of CloudVolume, CloudFiles, requests to our hierarchy.

    Anything unrecognised is returned as it is: a bug should surface as one, not be
    disguised as a network problem."""
    import sys

    import requests

    # Only CloudVolume raises its errors: not imported (our own fetches) means none of them, and
    # importing it here would add a second to every failure.
    cv = sys.modules.get("cloudvolume.exceptions")
    AuthenticationError, MeshDecodeError, MeshMissingError = (
        (cv.AuthenticationError, cv.MeshDecodeError, cv.MeshMissingError) if cv else (_NoSuchError,) * 3)

    message = redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", token)
    status = http_status(exc)
    if isinstance(exc, AuthenticationError) or status in (401, 403):
        return AuthError(f"{source.url} refused access ({status or 'no valid token'}): {TOKEN_HELP}")
    if isinstance(exc, MeshMissingError) or status == 404:
        return NotFoundError(f"root id {root_id} has no mesh at {source.url}")
    certificate = untrusted_certificate(exc)
    if certificate is not None:
        return NetworkError(f"{source.url}: the server's TLS certificate is not trusted "
                            f"({getattr(certificate, 'verify_message', None) or certificate}); a private CA's "
                            "certificate goes in the file SSL_CERT_FILE names (see README)")
    if is_transient(exc):
        return NetworkError(f"{source.url}: {message} (gave up after retries)")
    if isinstance(exc, MeshDecodeError):
        return InvalidMeshError(f"root id {root_id}: cannot decode the mesh: {message}")
    if isinstance(exc, (ValueError, KeyError)):
        return SourceError(f"{source.url}: {message}")
    import urllib3.exceptions

    httpcore = sys.modules.get("httpcore")
    if isinstance(exc, (requests.RequestException, urllib3.exceptions.HTTPError, OSError)) or (
            httpcore is not None and isinstance(exc, (httpcore.NetworkError, httpcore.TimeoutException,
                                                      httpcore.ProtocolError, httpcore.UnsupportedProtocol))):
        return NetworkError(f"{source.url}: {message}")
    return exc
