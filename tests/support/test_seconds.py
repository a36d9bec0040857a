"""Each test file's measured seconds (setup + call + teardown), which conftest.py uses to start
the longest files first: xdist hands out whole files (--dist loadfile) in collection order, so
the longest-first order keeps both workers busy to the end instead of one running alone.

Refresh after a suite run with every duration listed:

    python -m pytest -q -n auto --dist loadfile --durations=0 > run.log
    python tests/support/test_seconds.py run.log       # rewrites test_seconds.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

TABLE = Path(__file__).with_name("test_seconds.json")
_LINE = re.compile(r"^\s*([0-9.]+)s (?:setup|call|teardown)\s+(tests/[^:\s]+\.py)::")


def measured() -> dict[str, float]:
    """file (``tests/test_x.py``) -> seconds, as last measured; empty if never measured."""
    try:
        return json.loads(TABLE.read_text())
    except (OSError, ValueError):
        return {}


def from_log(text: str) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            seconds[match.group(2)] = seconds.get(match.group(2), 0.0) + float(match.group(1))
    return {name: round(value, 1) for name, value in sorted(seconds.items(), key=lambda kv: -kv[1])}


if __name__ == "__main__":
    table = from_log(Path(sys.argv[1]).read_text())
    if not table:
        sys.exit("no durations in that log: run pytest with --durations=0")
    TABLE.write_text(json.dumps(table, indent=1) + "\n")
    print(f"{len(table)} files, {sum(table.values()):.0f} s in all")
