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

With ``MESH_EXPORT_HTTP2=1``, HTTPS storage (Google Cloud Storage, where MICrONS and FlyWire
meshes live) is read over HTTP/2 where the server offers it (httpcore, httpx's transport, with h2): hundreds of range reads share
one TCP+TLS connection instead of each opening its own (two extra round trips and a handshake's
CPU apiece). httpcore opens at most 100 streams on a connection and, when they are taken, queues
further requests on that connection rather than opening another; :class:`_HTTP2Origin` opens
another connection only when every one it has carries as many streams as the server allows. A
stream's flow-control window stays at HTTP/2's initial 64 KiB (httpcore gives a client no way to
raise it), so a stream moves at most 64 KiB per round trip: reads over :data:`_H2_LARGEST_READ`
(a 10M-face cell's static lod ranges, 2-5 MB each) go over HTTP/1.1, where a new connection's
handshakes and TCP slow start cost fewer round trips than that. A server that does not offer h2
is read over HTTP/1.1 as before.

What it costs (measured here, TLS on 127.0.0.1): HTTP/2 saves the first mesh of a process a
TLS handshake per fragment, but each read through httpcore's asynchronous HTTP/2 takes more CPU
than through a warm urllib3 connection (1.2 vs 0.4 ms, sequential reads). Whole process, two
300-fragment meshes, it was 0.99-1.19x HTTP/1.1's time (benchmarks/RESULTS.md), so it is off
by default: HTTP/1.1 with every fragment in flight is what runs unless it is asked for.
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
#: ``1`` reads https:// storage over HTTP/2 where the server offers it. Off by default: measured
#: here it saved no time and cost 6-26% more CPU than HTTP/1.1 (benchmarks/RESULTS.md).
HTTP2_ENV = "MESH_EXPORT_HTTP2"
#: httpcore advertises (and so caps a connection at) this many concurrent streams.
_HTTPCORE_STREAMS = 100
#: The largest read sent over HTTP/2. At 64 KiB per round trip a read of S bytes takes S / 64 KiB
#: round trips there; on a new HTTP/1.1 connection 2 (TCP, TLS 1.3) + log2(S / 14.6 KiB) (slow start
#: from 10 segments): even at 512 KiB, fewer above it.
_H2_LARGEST_READ = 512 * 1024
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
        self._http2 = self.base.startswith("https://") and _http2_allowed()
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
            timeout = self.retry.remaining()
            origin = _http2_origin(url) if self._http2 and (size is None or size <= _H2_LARGEST_READ) else None
            if origin is not None and not origin.http1_only:
                status, content = origin.get(url, headers, body, timeout)
            else:
                response = self._http().request("GET", url, headers=headers, body=body,
                                                timeout=urllib3.Timeout(total=timeout))
                status, content = response.status, response.data
        if status == 404:
            raise Missing(path)
        if status >= 400:
            raise HTTPStatusError(status, url)
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


def _http2_allowed() -> bool:
    return os.environ.get(HTTP2_ENV, "0").strip().lower() in ("1", "true", "yes", "on")


class _Lane:
    """One HTTP/2 connection (an httpcore pool that holds one connection while it speaks h2) and
    the streams it carries, driven by the process's HTTP/2 event loop (:func:`_event_loop`).

    httpcore's asynchronous HTTP/2, not its threaded one: the threaded connection hands out stream
    ids and changes h2's state from every calling thread without one lock (measured here: 1 run in
    ~8 of 300 concurrent reads failed with "Invalid input StreamInputs.SEND_HEADERS", "dictionary
    changed size during iteration", or left a stream waiting for an answer that another thread
    took). On one event loop h2's state has one owner; the calling threads wait on a future.
    httpcore, not httpx over it: httpx's models and URL handling add a third to a read's CPU
    (0.64 vs 0.43 ms, measured on the threaded pools)."""

    def __init__(self, ssl_context, streams: int):
        import httpcore

        # No retries (ours only), no redirects, no proxies from the environment (as urllib3 here);
        # pool unbounded, because a server without h2 makes this an HTTP/1.1 pool whose
        # connections the IN_FLIGHT cap bounds.
        self.pool = httpcore.AsyncConnectionPool(ssl_context=ssl_context, http1=True, http2=True, retries=0,
                                                 max_connections=None, keepalive_expiry=30.0)
        self.streams = streams  # until the server says how many it allows
        self.heard_limit = False
        self.active = 0

    async def trace(self, event: str, info: dict) -> None:
        """httpcore's trace hook: the server's SETTINGS_MAX_CONCURRENT_STREAMS, as httpcore applies it."""
        if event == "http2.receive_remote_settings.complete":
            import h2.settings

            limit = info["return_value"].changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if limit is not None:
                self.streams = max(1, min(limit.new_value, _HTTPCORE_STREAMS))
                self.heard_limit = True


_LOOP = None


def _event_loop():
    """The event loop (on a daemon thread of its own) that runs every HTTP/2 connection of the process."""
    global _LOOP
    with _ORIGINS_LOCK:
        if _LOOP is None:
            import asyncio

            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="mesh-export-http2", daemon=True).start()
        return _LOOP


class _HTTP2Origin:
    """The HTTP/2 connections of one https origin, shared by every thread of the process: a
    manifest's fragments multiplex over one connection; another is opened only when each one
    open carries as many streams as the server allows."""

    def __init__(self):
        self._lock = threading.Lock()
        self._lanes: list[_Lane] = []
        #: Streams a new connection may carry: the server's limit once a connection has heard it.
        self.streams = _HTTPCORE_STREAMS
        #: The server answered over HTTP/1.1 (no h2 in its ALPN): read it with urllib3 from now on.
        self.http1_only = False

    def get(self, url: str, headers: dict, body: str | None, timeout: float) -> tuple[int, bytes]:
        import asyncio
        import concurrent.futures

        # Accept-Encoding as urllib3 sends it: GCS serves a gzip-stored object's bytes (and applies
        # a Range to them) only to a client that asks for gzip.
        sent = [(b"Accept-Encoding", b"identity"), *((k.encode(), v.encode()) for k, v in headers.items())]
        lane = self._take_lane()
        try:
            # No read timeout inside httpcore: on HTTP/2 one stream's read timeout fails every
            # stream of the connection (other meshes' too). Each request is bounded here instead.
            timeouts = {"connect": timeout, "write": timeout, "pool": timeout, "read": None}
            request = lane.pool.request("GET", url, headers=sent, content=body.encode() if body else b"",
                                        extensions={"timeout": timeouts, "trace": lane.trace})
            answer = asyncio.run_coroutine_threadsafe(request, _event_loop())
            try:
                response = answer.result(timeout + 1.0)
            except BaseException as exc:
                answer.cancel()
                if isinstance(exc, concurrent.futures.TimeoutError):
                    self._retire(lane)  # a stalled connection takes no new streams
                    raise TransientError(f"{url}: no answer within {timeout:.1f} s") from None
                raise
        finally:
            with self._lock:
                lane.active -= 1
        content = _decoded(response)
        if response.extensions.get("http_version") != b"HTTP/2":
            self.http1_only = True
        elif not lane.heard_limit:
            # A server that never sends SETTINGS_MAX_CONCURRENT_STREAMS ("unlimited") leaves
            # httpcore at one stream per connection: open connections as HTTP/1.1 would.
            lane.streams = self.streams = 1
        else:
            self.streams = lane.streams
        return response.status, content

    def _retire(self, lane: _Lane) -> None:
        with self._lock:
            if lane in self._lanes:
                self._lanes.remove(lane)

    def _take_lane(self) -> _Lane:
        with self._lock:
            lane = next((lane for lane in self._lanes if lane.active < lane.streams), None)
            if lane is None:
                lane = _Lane(_ssl_context(), self.streams)
                self._lanes.append(lane)
            lane.active += 1
            return lane


def _decoded(response) -> bytes:
    """The body as sent before its Content-Encoding (the fixture's and CloudFiles' ``.gz``
    fragments, GCS's gzip-stored objects)."""
    encoding = next((v for k, v in response.headers if k.lower() == b"content-encoding"), b"identity").strip().lower()
    if encoding in (b"identity", b""):
        return response.content
    import zlib

    try:
        if encoding in (b"gzip", b"x-gzip"):
            return gzip.decompress(response.content)
        if encoding == b"deflate":
            try:
                return zlib.decompress(response.content)
            except zlib.error:  # raw deflate, as some servers send it
                return zlib.decompress(response.content, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as exc:
        raise TransientError(f"a {encoding.decode()} body that does not decompress ({exc})") from None
    raise ValueError(f"the server sent Content-Encoding {encoding.decode()!r}, which no reader here decodes")


_ORIGINS: dict[str, _HTTP2Origin] = {}
_ORIGINS_LOCK = threading.Lock()
_SSL_CONTEXTS: dict[tuple, object] = {}


def _http2_origin(url: str) -> _HTTP2Origin:
    parsed = urlparse(url)
    key = f"{parsed.hostname}:{parsed.port or 443}"
    with _ORIGINS_LOCK:
        origin = _ORIGINS.get(key)
        if origin is None:
            origin = _ORIGINS[key] = _HTTP2Origin()
        return origin


def _ssl_context():
    """One TLS context for every connection (loading the CA store takes ~20 ms), trusting what
    urllib3's HTTP/1.1 reads trust: the system's store (with ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
    in its place when set, as OpenSSL reads them), certifi's bundle only where the system has none."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    with _ORIGINS_LOCK:
        if key not in _SSL_CONTEXTS:
            import ssl

            context = ssl.create_default_context()
            if not context.cert_store_stats()["x509_ca"] and not any(key):
                import certifi

                context.load_verify_locations(cafile=certifi.where())
            _SSL_CONTEXTS[key] = context
        return _SSL_CONTEXTS[key]


def _forget_sessions_after_fork() -> None:
    # The parent's connections are not the child's to use (nor to close: a TLS close_notify or an
    # HTTP/2 GOAWAY written here would end the parent's connection).
    global _SESSIONS_LOCK, _ORIGINS_LOCK, _LOOP
    _SESSIONS.clear()
    _ORIGINS.clear()
    _LOOP = None  # its thread is not in the child
    _SESSIONS_LOCK = threading.Lock()
    _ORIGINS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_sessions_after_fork)

