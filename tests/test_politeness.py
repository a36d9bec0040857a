"""Politeness (retrieve/politeness.py): the shared token bucket and the retrier's time budget."""

from __future__ import annotations

import threading
import time

import pytest

from mesh_export.retrieve.politeness import RateLimiter, Retrier, TransientError


def test_rate_limiter_spaces_acquisitions_across_threads():
    limiter = RateLimiter(rate=50.0, burst=1.0)
    stamps = []
    lock = threading.Lock()

    def take(n):
        for _ in range(n):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take, args=(10,)) for _ in range(3)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 30 tokens at 50/s with a burst of one: at least 29 intervals of 20 ms.
    assert time.monotonic() - started >= 29 / 50 * 0.95
    unlimited = RateLimiter(None)
    started = time.monotonic()
    for _ in range(1000):
        unlimited.acquire()
    assert time.monotonic() - started < 0.5


def test_retrier_retries_transient_failures_until_the_budget_ends():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise TransientError("short body")
        return "ok"

    retry = Retrier(timeout=10)
    assert retry(flaky) == "ok" and retry.retries == 2

    def broken():
        raise TransientError("always")

    retry = Retrier(timeout=1.0)
    started = time.monotonic()
    with pytest.raises(TransientError):
        retry(broken)
    assert time.monotonic() - started <= 1.0 + 0.1

    def wrong():
        raise ValueError("not transient")

    retry = Retrier(timeout=10)
    with pytest.raises(ValueError):
        retry(wrong)
    assert retry.retries == 0


# ------------------------------------------------------------------------------ the token bucket


def test_the_bucket_starts_full_then_refills_at_the_rate():
    limiter = RateLimiter(rate=20.0, burst=5)
    started = time.monotonic()
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5  # the burst: no wait at all
    assert time.monotonic() - started < 0.05
    waited = limiter.acquire()  # the sixth waits for one token: 1/20 s
    assert 0.03 <= waited <= 0.2 and time.monotonic() - started >= 0.04


def test_configuration_defaults_and_no_limit():
    assert RateLimiter(10).burst == 10.0  # one second's worth by default
    assert RateLimiter(0.5).burst == 1.0  # but at least one token
    assert RateLimiter(10, burst=3).burst == 3.0
    for off in (None, 0, -5):
        limiter = RateLimiter(off)
        assert limiter.rate is None and limiter.acquire() == 0.0
    limiter = RateLimiter(1.0)
    limiter.acquire()
    limiter.configure(None)  # lifting the limit frees a waiting caller's next acquisition
    assert limiter.acquire() == 0.0


def test_no_window_of_concurrent_acquisitions_exceeds_burst_plus_rate():
    from support.server import busiest_window

    rate, burst, window = 100.0, 5.0, 0.2
    limiter = RateLimiter(rate, burst)
    stamps, lock = [], threading.Lock()

    def take():
        for _ in range(15):
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 60
    assert busiest_window(stamps, window) <= burst + rate * window + 2
    assert max(stamps) - min(stamps) >= (60 - burst) / rate * 0.9


def test_busiest_window():
    from support.server import busiest_window

    assert busiest_window([]) == 0
    assert busiest_window([5.0]) == 1
    assert busiest_window([0.0, 0.5, 1.0, 1.01, 3.0]) == 3  # [0.0, 1.0] and [0.5, 1.01] hold 3
    assert busiest_window([3.0, 0.0, 0.1, 0.2], 0.15) == 2  # order does not matter


def test_set_rate_limit_keeps_the_bucket_when_the_rate_is_unchanged(monkeypatch):
    from mesh_export.retrieve import politeness

    limiter = RateLimiter()
    monkeypatch.setattr(politeness, "RATE_LIMIT", limiter)
    politeness.set_rate_limit(5)
    assert limiter.rate == 5.0
    for _ in range(5):
        limiter.acquire()
    politeness.set_rate_limit(5)  # every batch worker calls it: it must not refill the bucket
    assert limiter._tokens < 1.0
    politeness.set_rate_limit(None)
    assert limiter.rate is None


# ------------------------------------------------------------------------------ what is transient


class _Response:
    def __init__(self, status):
        self.status_code = status


class _HTTPFailure(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.response = _Response(status)


@pytest.mark.parametrize("status, transient", [(500, True), (502, True), (503, True), (429, True),
                                               (404, False), (401, False), (403, False), (400, False)])
def test_http_statuses(status, transient):
    from mesh_export.retrieve.politeness import http_status, is_transient

    assert http_status(_HTTPFailure(status)) == status and is_transient(_HTTPFailure(status)) is transient


def test_failures_without_a_response():
    import requests

    from mesh_export.retrieve.politeness import http_status, is_transient

    assert http_status(ValueError("x")) is None
    for exc in (TransientError("short body"), requests.ConnectionError(), requests.Timeout(),
                requests.exceptions.ChunkedEncodingError(), ConnectionResetError(), TimeoutError()):
        assert is_transient(exc), exc
    for exc in (ValueError("bad"), KeyError("k"), RuntimeError("bug")):
        assert not is_transient(exc), exc


def test_a_transient_failure_pauses_every_worker(monkeypatch):
    from mesh_export.retrieve import politeness

    backoff = politeness._Backoff()
    monkeypatch.setattr(politeness, "BACKOFF", backoff)
    failed = []

    def once_then_ok():
        if not failed:
            failed.append(True)
            raise _HTTPFailure(503)
        return "ok"

    assert Retrier(10)(once_then_ok) == "ok"
    # Another worker's next request waits out what is left of the shared pause (none by now).
    backoff.push(0.3)
    started = time.monotonic()
    Retrier(10)(lambda: None)
    assert 0.25 <= time.monotonic() - started < 1.0


def test_the_budget():
    retry = Retrier(timeout=0.2)
    assert 0.1 < retry.remaining() <= 0.2 and not retry.expired()
    time.sleep(0.25)
    assert retry.expired() and retry.remaining() == 0.05  # a last try still gets a little time
