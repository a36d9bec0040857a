"""The batch's status line."""

from __future__ import annotations

import sys
import time


class Progress:
    """One status line on stderr: done / failed / remaining, rate, ETA (terminals only)."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.enabled = total, enabled
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last = 0.0
        self.ok = self.failed = self.skipped = 0

    def update(self, record: dict, force: bool = False) -> None:
        if record.get("skipped"):
            self.skipped += 1
        elif record.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        self.draw(force)

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        done = self.ok + self.failed + self.skipped
        worked = self.ok + self.failed
        rate = worked / (now - self.started) if now > self.started else 0.0
        remaining = self.total - done
        eta = f"{int(remaining / rate) // 60}:{int(remaining / rate) % 60:02d}" if rate > 0 else "?"
        width = 24
        filled = int(width * done / self.total) if self.total else width
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}  ok {self.ok}"
                          f"  skipped {self.skipped}  failed {self.failed}  remaining {remaining}"
                          f"  {rate:.1f}/s  ETA {eta} ")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
