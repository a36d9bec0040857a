"""A root id's mesh through the verified cache: the one way every command fetches one."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from mesh_export.core.parsing import parse_root_id
from mesh_export.errors import CacheMissError, InvalidArgumentError

# Part of the cache key: how fragments are merged into one mesh.
MERGE_RULE = "exact-vertex-merge/1"


def request_identity(source: str | None, datastack: str | None, static: bool, server: str | None,
                      version: int | None = None) -> dict:
    """What identifies the mesh source without asking the network (so --offline can key the cache).

    A static request is keyed by the release it resolves to (``version`` picks it: seg_m943
    and seg_m1300 are different entries), a dynamic one by datastack and server."""
    from mesh_export.retrieve.datastacks import DEFAULT_DATASTACK, static_release
    from mesh_export.retrieve.sources import normalize_url

    if source is not None:
        return {"source": normalize_url(source)}
    datastack = datastack or DEFAULT_DATASTACK
    if static:
        return {"source": normalize_url(static_release(datastack, version)[1].url)}
    return {"datastack": datastack, "server": server, "mode": "dynamic"}


def check_fetch_request(root_id: int | str, lod: int | None, use_cache: bool, offline: bool) -> int:
    """The parsed root id, after the checks that need no network (so they fail first)."""
    root_id = parse_root_id(root_id)
    if offline and not use_cache:
        raise InvalidArgumentError("--offline serves from the cache; it cannot be combined with --no-cache")
    if lod is not None and lod < -1:
        raise InvalidArgumentError(f"--lod must be 0 or more (or -1 for the coarsest), got {lod}")
    return root_id


def fetch_cached(root_id: int | str, *, source: str | None = None, datastack: str | None = None,
                 static: bool = False, server: str | None = None, version: int | None = None,
                 lod: int | None = None, token: str | None = None,
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 offline: bool = False, allow_missing: bool = False, timeout: float = 120.0,
                 progress: bool = False, unmerged: list | None = None) -> tuple[Any, Any, dict[str, Any], str]:
    """A root id's merged mesh arrays (nm) through the verified cache.

    Returns ``(vertices, faces, meta, cache_state)``: ``meta`` has ``source`` (the resolved
    source's provenance), ``lod`` (resolved), ``lods_available``, ``fragments``,
    ``missing_fragments``, ``merged_vertices``, ``retries``, ``fetched``; ``cache_state`` is
    "hit", "miss" or "off". Every command that needs a root id's mesh goes through here, so
    they share cache entries.

    ``unmerged``: a list that receives the fetched fragments, ``(vertices, faces)`` each (checked,
    -0.0 made 0.0), instead of their merge, when no cache entry needs the merged mesh (the cache
    is off) and the source was read in fragments; ``(None, None, meta, "off")`` is then returned.
    For a writer of triangle lists (STL), which needs no merge.
    """
    from mesh_export.retrieve.auth import resolve_token
    from mesh_export.retrieve.cache import MeshCache, cache_key
    from mesh_export.retrieve.datastacks import server_for
    from mesh_export.retrieve.fetch import fetch_mesh
    from mesh_export.retrieve.sources import resolve

    root_id = check_fetch_request(root_id, lod, use_cache, offline)
    identity = request_identity(source, datastack, static, server, version)

    def key(level: int) -> str:
        return cache_key(**identity, root_id=root_id, lod=level, version=version, merge=MERGE_RULE,
                         allow_missing=allow_missing)

    # Omitted and 0 are the same request, so one entry. -1 (coarsest) is only resolved by
    # fetching: its key is an alias to the resolved lod's entry, so it shares that entry.
    requested = 0 if lod is None else lod
    cache = MeshCache(cache_dir) if use_cache else None
    entry = cache.get(key(requested)) if cache else None
    if entry is not None:
        return entry.vertices, entry.faces, entry.meta, "hit"
    if offline:
        raise CacheMissError(f"root id {root_id} is not in the cache ({cache.directory}) and --offline was given")
    token_info = resolve_token(token, server_for(datastack, server) if source is None else server)
    resolved = resolve(source=source, datastack=datastack, static=static, server=server,
                       token=token_info.value, version=version, timeout=timeout)
    fetched = fetch_mesh(resolved, root_id, lod=lod, token=token_info.value, timeout=timeout,
                         allow_missing=allow_missing, progress=progress,
                         cache_dir=cache.directory if cache is not None else None,
                         merge=unmerged is None or cache is not None)
    meta = {"source": resolved.provenance(), **fetched.info(),
            "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if fetched.vertices is None:
        unmerged.extend(fetched.pieces)
        return None, None, meta, "off"
    if cache is None:
        return fetched.vertices, fetched.faces, meta, "off"
    try:
        cache.put(key(fetched.lod), fetched.vertices, fetched.faces, meta)
        if fetched.lod != requested:
            cache.alias(key(requested), key(fetched.lod))
    except OSError as exc:  # a full or read-only cache must not fail a download that worked
        import warnings

        warnings.warn(f"mesh-export: could not cache root id {root_id}: {exc.strerror or exc}", stacklevel=2)
        return fetched.vertices, fetched.faces, meta, "off"
    return fetched.vertices, fetched.faces, meta, "miss"
