"""Politeness and persistence for every request this process makes: one layer of retries.

A token bucket shared by all threads (``--max-requests-per-second``), a cap on the requests in
flight at once shared by all threads (``--max-connections``), a backoff shared by all workers
(one 5xx pauses them all), and a retrier bounded by a time budget (``--timeout``): transient
failures (5xx, 429, resets, truncated bodies) are retried with exponential backoff until the
deadline, and nothing below retries on its own.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")
_FIRST_DELAY = 0.25
_MAX_DELAY = 8.0


class TransientError(Exception):
    """A failure worth retrying that no library flagged as one (a short body, a bad decode)."""


class HTTPStatusError(Exception):
    """A server answered with an error status (404 aside: :class:`~mesh_export.retrieve.remote.Missing`)."""

    def __init__(self, status: int, url: str):
        from http import HTTPStatus

        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "error"
        super().__init__(f"{status} {reason} for url: {url}")
        self.status = status


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request's response (None: no response, e.g. a reset)."""
    if isinstance(exc, HTTPStatusError):
        return exc.status
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def untrusted_certificate(exc: BaseException) -> BaseException | None:
    """The TLS certificate verification failure behind ``exc`` (httpcore and urllib3 wrap it), if any:
    no retry makes an untrusted certificate trusted."""
    import ssl

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: 5xx, 429, resets, timeouts, truncated bodies."""
    import sys

    import requests

    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    if isinstance(exc, TransientError):
        return True
    if untrusted_certificate(exc) is not None:
        return False
    # Only our HTTP/2 reads raise these: not imported means none of them (and no import cost).
    httpcore, h2_errors = sys.modules.get("httpcore"), sys.modules.get("h2.exceptions")
    if httpcore is not None and isinstance(exc, (httpcore.TimeoutException, httpcore.NetworkError,
                                                 httpcore.RemoteProtocolError)):
        return True
    if h2_errors is not None and isinstance(exc, h2_errors.ProtocolError):  # a frame httpcore did not wrap
        return True
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError, ConnectionError, TimeoutError)):
        return True
    try:
        import urllib3.exceptions as u3

        return isinstance(exc, (u3.ProtocolError, u3.TimeoutError, u3.NewConnectionError, u3.DecodeError,
                                u3.IncompleteRead))
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


class InFlight:
    """At most ``limit`` requests in flight at once, all threads of the process together.

    Over HTTP/1.1 each request in flight holds a connection of its own, so this is also the
    number of connections the process opens to a server. The limit can change while requests
    are in flight: those already running finish, new ones wait for a slot under the new limit."""

    def __init__(self, limit: int):
        self._cond = threading.Condition()
        self.limit = max(1, int(limit))
        self.active = 0

    def configure(self, limit: int) -> None:
        with self._cond:
            self.limit = max(1, int(limit))
            self._cond.notify_all()

    def __enter__(self) -> "InFlight":
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self.active -= 1
            self._cond.notify()


#: Requests in flight per process unless ``--max-connections`` (or this variable) says otherwise.
#: A real cell's manifest lists 300-700 fragments: at 100-200 ms per request, the number of
#: rounds it takes to ask for them all is what a distant user waits for, so the default lets a
#: whole manifest go out at once; a server that wants fewer gets them through this cap.
MAX_CONNECTIONS_ENV = "MESH_EXPORT_MAX_CONNECTIONS"
DEFAULT_MAX_CONNECTIONS = 1024
#: File descriptors left for everything else (output, cache, libraries) when the cap is fitted
#: under the process's open-file limit (256 by default on macOS, often 1024 on Linux).
_SPARE_FILES = 128


def _initial_max_connections() -> int:
    try:
        wanted = max(1, int(os.environ.get(MAX_CONNECTIONS_ENV, DEFAULT_MAX_CONNECTIONS)))
    except ValueError:
        wanted = DEFAULT_MAX_CONNECTIONS
    return _within_file_limit(wanted)


def _within_file_limit(connections: int) -> int:
    """``connections``, lowered if each could not have a socket under the open-file limit (which is
    raised towards its hard limit first, as far as needed: an unprivileged process may)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit to fit under
        return connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return connections
    return max(1, min(connections, soft - _SPARE_FILES))


#: Process-wide politeness: every fetch call (each wrapped CloudVolume/CloudFiles call --
#: open, manifest, fragments -- not each HTTP request inside it) takes a token first.
RATE_LIMIT = RateLimiter()
BACKOFF = _Backoff()
IN_FLIGHT = InFlight(_initial_max_connections())


def set_rate_limit(requests_per_second: float | None) -> None:
    """Limit the fetch calls of this process (all threads) to this many per second."""
    if requests_per_second != RATE_LIMIT.rate:
        RATE_LIMIT.configure(requests_per_second)


def set_max_connections(connections: int | None) -> None:
    """Allow at most this many requests in flight at once in this process (None: the default,
    or ``$MESH_EXPORT_MAX_CONNECTIONS``)."""
    IN_FLIGHT.configure(_initial_max_connections() if connections is None else _within_file_limit(connections))


def max_connections() -> int:
    return IN_FLIGHT.limit


class Retrier:
    """Exponential backoff for transient failures, bounded by a total time budget.

    Each attempt takes a token from the shared rate limiter and waits out the shared
    backoff; a transient failure extends the shared backoff for every worker."""

    def __init__(self, timeout: float):
        self.deadline = time.monotonic() + timeout
        self.retries = 0
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left of the budget (never below a small floor, so a last try can still run)."""
        return max(0.05, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def __call__(self, call: Callable[[], T]) -> T:
        delay = _FIRST_DELAY
        while True:
            BACKOFF.wait()
            RATE_LIMIT.acquire()
            try:
                return call()
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() + delay > self.deadline:
                    raise
            BACKOFF.push(delay)
            time.sleep(delay)
            with self._lock:
                self.retries += 1
            delay = min(delay * 2, _MAX_DELAY)
