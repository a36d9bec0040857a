"""Turn what the user named (a datastack, --static, --source URL, "sample") into a Source.

A Source is a CloudVolume cloudpath plus what is known about it (datastack, version,
server). Resolving a datastack asks CAVE (caveclient) for its segmentation source, at the
datastack's own CAVE server unless --server says otherwise; static meshes come from the
registry in :mod:`mesh_export.retrieve.datastacks`, since CAVE's datastack info has no field for them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mesh_export.retrieve.datastacks import BUILTIN, DEFAULT_DATASTACK, server_for, static_release
from mesh_export.errors import AuthError, InvalidArgumentError, NetworkError, SourceError

# The default (newest) static release of each built-in datastack: (url, version). The registry
# (mesh_export.retrieve.datastacks) is the source of truth; this is kept for code that imported it.
STATIC_SOURCES = {entry.name: (entry.static_release().url, entry.static_release().version)
                  for entry in BUILTIN if entry.static}
SAMPLE = "sample"
_SCHEMES = ("gs://", "s3://", "https://", "http://", "file://")
_STORAGE_HOSTS = {"gs": ("storage.googleapis.com", 443), "s3": ("s3.amazonaws.com", 443)}


def sample_path() -> Path:
    return Path(__file__).parents[1] / "data" / "sample"


@dataclass(frozen=True)
class Source:
    kind: str  # "precomputed" or "graphene"
    url: str  # CloudVolume cloudpath
    datastack: str | None = None
    version: int | None = None
    server: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "datastack": self.datastack,
                "version": self.version, "server": self.server, **self.extra}


def normalize_url(url: str) -> str:
    """Any accepted --source spelling -> a CloudVolume cloudpath."""
    if url == SAMPLE:
        return "precomputed://" + sample_path().resolve().as_uri()
    if url.startswith(("precomputed://", "graphene://")):
        return url
    if url.startswith(_SCHEMES):
        return "precomputed://" + url
    if os.path.isdir(url):
        return "precomputed://" + Path(url).resolve().as_uri()
    raise SourceError(
        f"cannot use {url!r} as a source: give precomputed://, graphene://, gs://, s3://, "
        "https://, http://, file:// or 'sample'"
    )


def _kind(cloudpath: str) -> str:
    return "graphene" if cloudpath.startswith("graphene://") else "precomputed"


def _endpoint(cloudpath: str) -> tuple[str, int] | None:
    """The host and port a cloudpath will connect to, or None for local files."""
    inner = cloudpath.split("://", 1)[1] if cloudpath.startswith(("precomputed://", "graphene://")) else cloudpath
    parsed = urlparse(inner)
    if parsed.scheme in _STORAGE_HOSTS:
        return _STORAGE_HOSTS[parsed.scheme]
    if parsed.scheme in ("http", "https") and parsed.hostname:
        return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    return None


_reachable: set[tuple[str, int]] = set()


def check_reachable(cloudpath_or_url: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with a clear message, when a host cannot be reached at all.

    Offline, CloudVolume and caveclient spend 6-20 s in retries before an opaque error.
    """
    endpoint = _endpoint(cloudpath_or_url)
    if endpoint is None or endpoint in _reachable:
        return
    try:
        with socket.create_connection(endpoint, timeout=min(timeout, 5.0)):
            pass
    except OSError as exc:
        raise NetworkError(f"cannot reach {endpoint[0]}:{endpoint[1]} ({exc.strerror or exc}); "
                           "check the network, or use --offline to serve from the cache") from None
    _reachable.add(endpoint)


def resolve(*, source: str | None = None, datastack: str | None = None, static: bool = False,
            server: str | None = None, token: str | None = None, version: int | None = None,
            timeout: float = 60.0, check_network: bool = True) -> Source:
    """Work out where meshes come from. Asks CAVE only for a datastack's dynamic source."""
    if source is not None:
        if static:
            raise InvalidArgumentError("--static and --source are exclusive: --source names the source")
        url = normalize_url(source)
        extra = {"sample": True} if source == SAMPLE else {}
        return Source(_kind(url), url, datastack=None, version=version, server=server, extra=extra)

    datastack = datastack or DEFAULT_DATASTACK
    server = server_for(datastack, server)
    if static:
        # --version picks the release; without it, the datastack's default (the newest).
        _, release = static_release(datastack, version)
        return Source("precomputed", normalize_url(release.url), datastack=datastack, version=release.version,
                      server=server, extra={"static": True, "lods": list(release.lods), "units": release.units})

    url = segmentation_source(datastack, server=server, token=token, timeout=timeout,
                              check_network=check_network)
    return Source(_kind(url), url, datastack=datastack, version=version, server=server)


def segmentation_source(datastack: str, *, server: str | None, token: str | None,
                        timeout: float = 60.0, check_network: bool = True) -> str:
    """The datastack's segmentation cloudpath, from CAVE's info service."""
    from caveclient.endpoints import default_global_server_address

    server_address = server or default_global_server_address
    if check_network:
        check_reachable(server_address, timeout)
    from caveclient import CAVEclient
    from requests import HTTPError, RequestException

    try:
        # write_server_cache=False: caveclient otherwise records the server in ~/.cloudvolume.
        client = CAVEclient(datastack, server_address=server_address, auth_token=token,
                            write_server_cache=False)
        return client.info.segmentation_source()
    except HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            from mesh_export.retrieve.auth import TOKEN_HELP

            raise AuthError(f"CAVE at {server_address} refused the token ({status}): {TOKEN_HELP}") from None
        if status == 404:
            raise SourceError(f"unknown datastack {datastack!r} at {server_address}") from None
        raise NetworkError(f"CAVE at {server_address} answered {status} for datastack {datastack!r}") from None
    except RequestException as exc:
        raise NetworkError(f"cannot reach CAVE at {server_address}: {type(exc).__name__}") from None
