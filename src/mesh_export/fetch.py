"""Fetch one mesh from a Source with CloudVolume: retries, completeness, sanity checks.

Each source kind goes through CloudVolume's own readers; what is added here is what a
notebook user doesn't get: transient failures retried within a time budget (CloudVolume
does not retry the graphene manifest), a mesh with unfetchable fragments treated as an
error rather than silently partial, decoded data checked before use, vertices merged across
fragment borders, and every failure mapped to one clear error.
"""

from __future__ import annotations

import threading
import contextvars
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import numpy as np

from .auth import TOKEN_HELP, redact
from .errors import (
    AuthError,
    IncompleteMeshError,
    InvalidMeshError,
    MeshExportError,
    NetworkError,
    NotFoundError,
    SourceError,
)
from .sources import Source, check_reachable

T = TypeVar("T")
# Threads CloudFiles uses for one mesh's fragments. A batch runs one fetch per worker
# instead: nested pools oversubscribed 2 cores, and on Dask workers they left requests
# waiting forever on shared keep-alive connections.
FRAGMENT_THREADS: contextvars.ContextVar[int] = contextvars.ContextVar("fragment_threads", default=20)
_FIRST_DELAY = 0.25
_MAX_DELAY = 8.0


@dataclass
class Fetched:
    """A decoded mesh (nm, float32 vertices merged across fragments) and how it was fetched."""

    vertices: np.ndarray
    faces: np.ndarray
    lod: int
    lods_available: int | None
    fragments: int
    missing_fragments: list[str] = field(default_factory=list)
    merged_vertices: int = 0
    retries: int = 0

    def info(self) -> dict[str, Any]:
        return {"lod": self.lod, "lods_available": self.lods_available, "fragments": self.fragments,
                "missing_fragments": self.missing_fragments, "merged_vertices": self.merged_vertices,
                "retries": self.retries}


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(exc: BaseException) -> bool:
    import requests

    status = _status(exc)
    if status is not None:
        return status >= 500 or status == 429
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
        return True
    try:
        import urllib3.exceptions as u3

        return isinstance(exc, (u3.ProtocolError, u3.ReadTimeoutError, u3.NewConnectionError))
    except ImportError:  # pragma: no cover
        return False


class RateLimiter:
    """A token bucket shared by every thread of the process: at most ``rate`` acquisitions
    per second on average, bursts of up to ``burst``. ``rate=None`` (or <= 0) means no limit."""

    def __init__(self, rate: float | None = None, burst: float | None = None):
        self._lock = threading.Lock()
        self.configure(rate, burst)

    def configure(self, rate: float | None, burst: float | None = None) -> None:
        with self._lock:
            self.rate = float(rate) if rate and rate > 0 else None
            self.burst = max(1.0, float(burst) if burst else (self.rate or 1.0))
            self._tokens = self.burst
            self._stamp = time.monotonic()

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                if self.rate is None:
                    return waited
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return waited
                pause = (1.0 - self._tokens) / self.rate
            time.sleep(pause)
            waited += pause


class _Backoff:
    """A pause shared by all workers of the process: when one request sees a transient
    failure (5xx, 429, reset), every worker waits before its next request, so a struggling
    server gets relief from the whole batch rather than from one thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._until = 0.0

    def wait(self) -> None:
        while True:
            with self._lock:
                pause = self._until - time.monotonic()
            if pause <= 0:
                return
            time.sleep(min(pause, 1.0))

    def push(self, delay: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + delay)


#: Process-wide politeness: every fetch call (each wrapped CloudVolume/CloudFiles call --
#: open, manifest, fragments -- not each HTTP request inside it) takes a token first.
RATE_LIMIT = RateLimiter()
BACKOFF = _Backoff()


def set_rate_limit(requests_per_second: float | None) -> None:
    """Limit the fetch calls of this process (all threads) to this many per second."""
    if requests_per_second != RATE_LIMIT.rate:
        RATE_LIMIT.configure(requests_per_second)


class _Retrier:
    """Exponential backoff for transient failures, bounded by a total time budget.

    Each attempt takes a token from the shared rate limiter and waits out the shared
    backoff; a transient failure extends the shared backoff for every worker."""

    def __init__(self, timeout: float):
        self.deadline = time.monotonic() + timeout
        self.retries = 0

    def __call__(self, call: Callable[[], T]) -> T:
        delay = _FIRST_DELAY
        while True:
            BACKOFF.wait()
            RATE_LIMIT.acquire()
            try:
                return call()
            except Exception as exc:
                if not _is_transient(exc) or time.monotonic() + delay > self.deadline:
                    raise
            BACKOFF.push(delay)
            time.sleep(delay)
            self.retries += 1
            delay = min(delay * 2, _MAX_DELAY)


def _vertex_keys(vertices: np.ndarray) -> np.ndarray:
    """One uint64 per vertex from its float bit patterns; equal vertices get equal keys."""
    bits = vertices.view(np.uint32 if vertices.dtype.itemsize == 4 else np.uint64).astype(np.uint64)
    # Multiply-xor mixing: sorting 8-byte keys is several times faster than 12-byte voids.
    keys = bits[:, 0] * np.uint64(0x9E3779B97F4A7C15)
    keys ^= bits[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)
    keys ^= bits[:, 2] * np.uint64(0x165667B19E3779F9)
    return keys


def merge_duplicate_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Merge bit-identical vertices (fragment borders, Draco splits), keeping first-seen order.

    Faces that collapse to a line or point after merging are dropped. Returns the new
    vertices, faces and how many vertices were merged away.
    """
    # float32 (decoded meshes) or float64 (files) kept as they are; -0.0 becomes 0.0.
    dtype = vertices.dtype if vertices.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    vertices = np.ascontiguousarray(vertices, dtype=dtype) + dtype.type(0.0)
    if len(vertices) == 0:
        return vertices, faces, 0
    _, first, inverse = np.unique(_vertex_keys(vertices), return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    if not np.array_equal(vertices[first[inverse]], vertices):
        # A hash collision joined different vertices: fall back to exact 12-byte keys.
        exact = vertices.view(np.dtype((np.void, vertices.dtype.itemsize * 3))).ravel()
        _, first, inverse = np.unique(exact, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    merged = vertices[first[order]]
    faces = rank[inverse][faces]
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return merged, faces[keep], len(vertices) - len(merged)


def check_decoded(vertices: np.ndarray, faces: np.ndarray, root_id: int) -> None:
    if len(faces) == 0:
        raise NotFoundError(f"root id {root_id}: the source returned an empty mesh")
    if not np.isfinite(vertices).all():
        raise InvalidMeshError(f"root id {root_id}: decoded mesh has non-finite vertices (corrupt data)")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InvalidMeshError(f"root id {root_id}: decoded mesh has face indices out of range (corrupt data)")


# Opened volumes, reused across ids in one thread: opening costs three requests (info,
# mesh info, provenance) that are the same for every id of a layer. Per thread, because a
# CloudVolume object (and the manifest memo below) is not meant to be shared by threads;
# a batch pays the three requests once per worker thread.
_LOCAL = threading.local()
_MAX_VOLUMES = 8


def open_volume(source: Source, token: str | None, progress: bool, retry: _Retrier):
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

    Legacy fragment downloads also get CloudFiles' own per-fragment bar; a sharded multi-LOD
    mesh is one ranged read, so its stages are what there is to show."""

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
               timeout: float = 120.0, allow_missing: bool = False, progress: bool = False) -> Fetched:
    """Download and decode ``root_id`` from ``source``; raise a MeshExportError on any failure."""
    check_reachable(source.url, timeout)
    retry = _Retrier(timeout)
    stages = _Stages(root_id, progress)
    try:
        volume = open_volume(source, token, progress, retry)
        stages.step("opened layer; downloading")
        if source.kind == "graphene":
            fetched = _fetch_graphene(volume, root_id, lod, retry)
        elif volume.mesh.meta.is_multires():
            fetched = _fetch_multires(volume, root_id, lod, retry)
        else:
            fetched = _fetch_legacy(volume, root_id, lod, allow_missing, progress, retry)
        stages.step("downloaded and decoded; merging")
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
    fetched.vertices, fetched.faces, fetched.merged_vertices = merge_duplicate_vertices(fetched.vertices, fetched.faces)
    stages.step("merged; checking")
    check_decoded(fetched.vertices, fetched.faces, root_id)
    stages.step(f"{len(fetched.faces):,} faces")
    stages.close()
    return fetched


def _single_lod(lod: int | None, what: str) -> int:
    if lod not in (None, 0, -1):
        raise SourceError(f"{what} meshes have a single level of detail; --lod {lod} needs a "
                          "multi-resolution source (e.g. --static)")
    return 0


def _fetch_manifest_once(mesh_source) -> None:
    """CloudVolume's sharded get() reads the manifest we already read: serve it from memory.

    The wrapper is installed once per (reused) volume; its memo is cleared for every mesh, so
    it only ever spans one fetch.
    """
    seen = getattr(mesh_source, "_mesh_export_manifests", None)
    if seen is not None:
        seen.clear()
        return
    original = mesh_source.get_manifest
    seen = mesh_source._mesh_export_manifests = {}

    def get_manifest(segid, *args, **kwargs):
        if not isinstance(segid, (int, np.integer)):
            return original(segid, *args, **kwargs)
        if int(segid) not in seen:
            seen[int(segid)] = original(segid, *args, **kwargs)
        return seen[int(segid)]

    mesh_source.get_manifest = get_manifest


def _fetch_multires(volume, root_id: int, lod: int | None, retry: _Retrier) -> Fetched:
    from cloudvolume.exceptions import MeshMissingError

    _fetch_manifest_once(volume.mesh)
    try:
        manifest = retry(lambda: volume.mesh.get_manifest(root_id))
    except MeshMissingError:
        manifest = None
    if manifest is None:
        raise NotFoundError(f"root id {root_id} has no mesh at this source")
    levels = int(manifest.num_lods)
    wanted = 0 if lod is None else lod
    if not -levels <= wanted < levels:
        raise SourceError(f"root id {root_id} has lods 0..{levels - 1} (and -1 for the coarsest); "
                          f"--lod {wanted} is not one of them")
    wanted %= levels
    result = retry(lambda: volume.mesh.get(root_id, lod=wanted))
    mesh = result[root_id] if isinstance(result, dict) else result
    fragments = int(np.asarray(manifest.num_fragments_per_lod)[wanted])
    return Fetched(np.asarray(mesh.vertices), np.asarray(mesh.faces), wanted, levels, fragments)


def _fetch_legacy(volume, root_id: int, lod: int | None, allow_missing: bool, progress: bool,
                  retry: _Retrier) -> Fetched:
    """Legacy meshes through CloudFiles directly, to see which fragments are missing."""
    from cloudfiles import CloudFiles
    from cloudvolume import Mesh

    lod = _single_lod(lod, "legacy precomputed")
    files = CloudFiles(volume.mesh.meta.join(volume.meta.cloudpath, volume.mesh.meta.mesh_path),
                       progress=progress, num_threads=FRAGMENT_THREADS.get())
    manifest = retry(lambda: files.get_json(f"{root_id}:0"))
    if not manifest or not manifest.get("fragments"):
        raise NotFoundError(f"root id {root_id} has no mesh at this source")
    names = list(manifest["fragments"])
    results = retry(lambda: files.get(names))
    # CloudFiles returns fragments as its threads finish them: put them back in manifest order
    # so the merged mesh (and the file written from it) is the same on every run.
    order = {name: k for k, name in enumerate(names)}
    results = sorted(results, key=lambda r: order.get(str(r.get("path")), len(order)))
    missing, pieces = [], []
    for result in results:
        if result.get("error") is not None and _is_transient(result["error"]):
            raise NetworkError(f"fragment {result['path']} kept failing: {type(result['error']).__name__}")
        if result.get("content") is None:
            missing.append(result["path"])
        else:
            pieces.append(Mesh.from_precomputed(result["content"]))
    if missing and not allow_missing:
        raise IncompleteMeshError(f"root id {root_id}: {len(missing)} of {len(names)} fragments listed in "
                                  "its manifest could not be fetched; pass --allow-missing to export the rest")
    if not pieces:
        raise NotFoundError(f"root id {root_id}: none of its {len(names)} fragments could be fetched")
    mesh = Mesh.concatenate(*pieces)
    return Fetched(np.asarray(mesh.vertices), np.asarray(mesh.faces), lod, None, len(names), missing)


def _fetch_graphene(volume, root_id: int, lod: int | None, retry: _Retrier) -> Fetched:
    lod = _single_lod(lod, "dynamic (graphene)")
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


def _translate(exc: Exception, source: Source, root_id: int, token: str | None) -> Exception:
    """Map the many exception types of CloudVolume, CloudFiles, requests to our hierarchy.

    Anything unrecognised is returned as it is: a bug should surface as one, not be
    disguised as a network problem."""
    import requests
    from cloudvolume.exceptions import AuthenticationError, MeshDecodeError, MeshMissingError

    message = redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", token)
    status = _status(exc)
    if isinstance(exc, AuthenticationError) or status in (401, 403):
        return AuthError(f"{source.url} refused access ({status or 'no valid token'}): {TOKEN_HELP}")
    if isinstance(exc, MeshMissingError) or status == 404:
        return NotFoundError(f"root id {root_id} has no mesh at {source.url}")
    if _is_transient(exc):
        return NetworkError(f"{source.url}: {message} (gave up after retries)")
    if isinstance(exc, MeshDecodeError):
        return InvalidMeshError(f"root id {root_id}: cannot decode the mesh: {message}")
    if isinstance(exc, (ValueError, KeyError)):
        return SourceError(f"{source.url}: {message}")
    if isinstance(exc, (requests.RequestException, OSError)):
        return NetworkError(f"{source.url}: {message}")
    return exc
