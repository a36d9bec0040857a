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
