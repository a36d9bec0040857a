"""Writer options checked against what a writer declares (before any download or read)."""

from __future__ import annotations

from typing import Any, Mapping

from mesh_export.errors import InvalidArgumentError


def check_options(writer, options: Mapping[str, Any]) -> dict[str, Any]:
    """Drop options left at None; refuse ones the writer does not take."""
    given = {k: v for k, v in options.items() if v is not None}
    if given.get("ascii") is False:
        given.pop("ascii")
    if "ascii" in given and "ascii" not in writer.modes:
        raise InvalidArgumentError(f"format {writer.name!r} has no ASCII variant")
    allowed = set(writer.options) | ({"ascii"} if "ascii" in writer.modes else set())
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise InvalidArgumentError(
            f"format {writer.name!r} takes no option {unknown[0]!r}"
            + (f" (it takes: {', '.join(sorted(allowed))})" if allowed else "")
        )
    return given
