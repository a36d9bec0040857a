"""Bytes from a layer's storage: HTTP(S) (and gs://, s3:// through their public HTTPS
endpoints) or local files, many requests in flight, one layer of retries.

CloudFiles retries every request on its own (7 attempts, random exponential backoff up to
60 s) and shares one HTTP pool of 10 connections between its 20 threads; inside our own
retries that turns a permanent failure into minutes, and at 50 ms per request its pool, not the
network, sets the pace. Here every job of a :meth:`Remote.map` gets a thread (a manifest's
fragments all go out in one round trip), bounded only by the process-wide cap on requests in
flight (:data:`~mesh_export.retrieve.politeness.IN_FLIGHT`, ``--max-connections``); one urllib3
pool per calling thread keeps its connections alive from one mesh to the next, urllib3 never
retries, every request carries the time left of the fetch's budget as its timeout, and
:class:`~mesh_export.retrieve.politeness.Retrier` (shared rate limit and backoff) is the only
retry loop.

urllib3, not requests: a request costs 0.21 ms of CPU through a urllib3 pool and 0.52 ms through
a ``requests.Session`` (measured here on keep-alive ranged reads). A manifest's 300-700 requests
are sent by threads that share one interpreter, so that CPU is the time between the first
fragment's request and the last one's, which at 100-200 ms per request decides whether they all
go out within one round trip.
"""

from __future__ import annotations

import gzip
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence, TypeVar
from urllib.parse import unquote, urlparse

from mesh_export.retrieve.politeness import IN_FLIGHT, HTTPStatusError, Retrier, TransientError, max_connections

T = TypeVar("T")
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

    def __init__(self, base: str, retry: Retrier, *, threads: int | None = None,
                 token: str | None = None):
        self.base = http_base(base)
        self.retry = retry
        #: Threads of :meth:`map`: None = one per job, up to the process's cap on requests in flight.
        self.threads = max(1, int(threads)) if threads else max_connections()
        self._local = self.base.startswith("file://")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The session of the thread that asked for this fetch: a batch worker keeps its own
        # connections from one mesh to the next.
        self._session_key = threading.get_ident()

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
        import urllib3

        headers = dict(self._headers)
        if start is not None:
            headers["Range"] = f"bytes={start}-{start + size - 1}"
        url = join(self.base, path)
        if params:
            from urllib.parse import urlencode

            url += "?" + urlencode(params)
        with IN_FLIGHT:
            response = self._http().request("GET", url, headers=headers, body=body,
                                            timeout=urllib3.Timeout(total=self.retry.remaining()))
        status = response.status
        if status == 404:
            raise Missing(path)
        if status >= 400:
            raise HTTPStatusError(status, url)
        content = response.data
        if start is not None and len(content) != size:
            if status == 200 and len(content) > start + size - 1:
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



_SESSIONS: dict[int, object] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(key: int):
    """One keep-alive connection pool per calling thread, kept for the process: the manifest and
    the fragments of one mesh, and the next mesh of a batch worker, reuse its connections instead
    of paying a handshake each."""
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            import urllib3

            # Connections kept for as many requests as may be in flight (more are opened when the
            # cap is raised later, not kept); no urllib3 retries or redirects (ours only).
            _SESSIONS[key] = urllib3.PoolManager(num_pools=8, maxsize=max_connections(), block=False,
                                                 retries=False)
        return _SESSIONS[key]


def _forget_sessions_after_fork() -> None:
    _SESSIONS.clear()


os.register_at_fork(after_in_child=_forget_sessions_after_fork)

