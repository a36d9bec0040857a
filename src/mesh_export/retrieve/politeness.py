"""Politeness and persistence for every request this process makes: one layer of retries.

A token bucket shared by all threads (``--max-requests-per-second``), a backoff shared by all
workers (one 5xx pauses them all), and a retrier bounded by a time budget (``--timeout``):
transient failures (5xx, 429, resets, truncated bodies) are retried with exponential backoff
until the deadline, and nothing below retries on its own.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")
_FIRST_DELAY = 0.25
_MAX_DELAY = 8.0


class TransientError(Exception):
    """A failure worth retrying that no library flagged as one (a short body, a bad decode)."""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request's response (None: no response, e.g. a reset)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: 5xx, 429, resets, timeouts, truncated bodies."""
    import requests

    status = http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        requests.exceptions.ContentDecodingError, ConnectionError, TimeoutError)):
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
