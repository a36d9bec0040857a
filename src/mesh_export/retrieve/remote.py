"""Bytes from a layer's storage: HTTP(S) (and gs://, s3:// through their public HTTPS
endpoints) or local files, many requests in flight, one layer of retries.

CloudFiles retries every request on its own (7 attempts, random exponential backoff up to
60 s) and shares one HTTP pool of 10 connections between its 20 threads; inside our own
retries that turns a permanent failure into minutes, and at 50 ms per request its pool, not the
network, sets the pace. Here one ``requests.Session`` has a pool as large as the thread pool,
urllib3 never retries, every request carries the time left of the fetch's budget as its
timeout, and :class:`~mesh_export.retrieve.politeness.Retrier` (shared rate limit and backoff) is the
only retry loop.
"""

from __future__ import annotations

import gzip
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence, TypeVar
from urllib.parse import unquote, urlparse

from mesh_export.retrieve.politeness import Retrier, TransientError

T = TypeVar("T")
#: Requests in flight for one mesh. Neuroglancer keeps 100 downloads in flight; 32 covers a
#: 50 ms round trip at the rate two cores can decode Draco, and stays polite.
DEFAULT_THREADS = 32
_PUBLIC_ENDPOINTS = {"gs": "https://storage.googleapis.com/", "s3": "https://s3.amazonaws.com/"}


class Missing(Exception):
    """The server says the object is not there (404): not worth a retry."""


def http_base(cloudpath: str) -> str:
    """A storage cloudpath (``gs://``, ``s3://``, ``https://``, ``middleauth+https://``,
    ``file://``) as the URL its bytes are read from; ``file://`` stays as it is."""
    for prefix in ("precomputed://", "graphene://"):
        if cloudpath.startswith(prefix):
            cloudpath = cloudpath[len(prefix):]
    if cloudpath.startswith("middleauth+"):
        cloudpath = cloudpath[len("middleauth+"):]
    scheme, _, rest = cloudpath.partition("://")
    if scheme in _PUBLIC_ENDPOINTS:
        return _PUBLIC_ENDPOINTS[scheme] + rest
    if scheme in ("http", "https", "file"):
        return cloudpath
    raise ValueError(f"cannot read storage at {cloudpath!r}")


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


class Remote:
    """Reads objects under ``base`` (an http(s):// or file:// URL) within ``retry``'s budget."""

    def __init__(self, base: str, retry: Retrier, *, threads: int = DEFAULT_THREADS,
                 token: str | None = None):
        self.base = http_base(base)
        self.retry = retry
        self.threads = max(1, int(threads))
        self._local = self.base.startswith("file://")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The session of the thread that asked for this fetch: a batch worker keeps its own
        # pool (sized for its own fragment threads) from one mesh to the next.
        self._session_key = (threading.get_ident(), self.threads)

    # ------------------------------------------------------------------ one object

    def get(self, path: str, start: int | None = None, size: int | None = None, *,
            params: dict | None = None, body: str | None = None) -> bytes:
        """The object at ``path`` (relative to ``base``), or ``size`` bytes from ``start``.

        Raises :class:`Missing` on a 404; transient failures are retried until the budget ends,
        then re-raised as they came. ``params`` and ``body`` are for API GETs (the graphene
        manifest carries a JSON body on a GET)."""
        return self.retry(lambda: self._get_once(path, start, size, params, body))

    def _get_once(self, path: str, start: int | None, size: int | None, params=None, body=None) -> bytes:
        if self._local:
            return self._read_local(path, start, size)
        headers = dict(self._headers)
        if start is not None:
            headers["Range"] = f"bytes={start}-{start + size - 1}"
        response = self._http().get(join(self.base, path), headers=headers, params=params, data=body,
                                    timeout=self.retry.remaining())
        if response.status_code == 404:
            raise Missing(path)
        response.raise_for_status()
        content = response.content
        if start is not None and len(content) != size:
            if response.status_code == 200 and len(content) > start + size - 1:
                # A server that ignores Range: take the slice asked for.
                return content[start:start + size]
            raise TransientError(f"{path}: {len(content)} of {size} bytes arrived")
        return content

    def _read_local(self, path: str, start: int | None, size: int | None) -> bytes:
        parsed = urlparse(join(self.base, path))
        local = Path(unquote(parsed.path))
        if not local.exists() and Path(str(local) + ".gz").exists():
            data = gzip.decompress(Path(str(local) + ".gz").read_bytes())
            return data if start is None else data[start:start + size]
        try:
            with open(local, "rb") as handle:
                if start is None:
                    return handle.read()
                handle.seek(start)
                data = handle.read(size)
        except FileNotFoundError:
            raise Missing(path) from None
        if len(data) != size:
            raise Missing(f"{path}: bytes {start}..{start + size} lie past its end")
        return data

    def _http(self):
        return _session(self._session_key)

    # ------------------------------------------------------------------ many objects

    def map(self, jobs: Sequence[T], work: Callable[["Remote", T], object],
            on_done: Callable[[int, object], None] | None = None) -> list:
        """Run ``work(self, job)`` for every job on the thread pool; results in job order.

        ``work`` usually fetches and decodes one fragment, so decoding overlaps the downloads
        still in flight. The first exception (after its own retries) cancels what has not started
        and is raised."""
        results: list = [None] * len(jobs)
        if not jobs:
            return results
        threads = min(self.threads, len(jobs))
        if threads == 1 or self._local and os.cpu_count() == 1:
            for k, job in enumerate(jobs):
                results[k] = work(self, job)
                if on_done:
                    on_done(k, results[k])
            return results
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mesh-export-fetch") as pool:
            futures = {pool.submit(work, self, job): k for k, job in enumerate(jobs)}
            try:
                for future in as_completed(futures):
                    k = futures[future]
                    results[k] = future.result()
                    if on_done:
                        on_done(k, results[k])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results



_SESSIONS: dict[tuple[int, int], object] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(key: tuple[int, int]):
    """One keep-alive session per (calling thread, pool size), kept for the process: the
    manifest and the fragments of one mesh, and the next mesh of a batch worker, reuse its
    connections instead of paying a handshake each."""
    pool_size = key[1]
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            # A pool as large as the threads using it; no urllib3 retries (ours only).
            adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _SESSIONS[key] = session
        return _SESSIONS[key]


def _forget_sessions_after_fork() -> None:
    _SESSIONS.clear()


os.register_at_fork(after_in_child=_forget_sessions_after_fork)

