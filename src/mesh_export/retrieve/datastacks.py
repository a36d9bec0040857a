"""The datastacks mesh-export knows: CAVE server, static mesh releases, default version.

One table, here, and nowhere else. A datastack's dynamic (graphene) source is not listed:
CAVE's info service is asked for it (``sources.segmentation_source``). CAVE has no field
for static meshes, so their releases are listed here, keyed by the materialization version
they were made from, with their lods and units.

Users add or override entries without changing code, in ``datastacks.toml`` in the platform
config directory (``platformdirs.user_config_dir("mesh-export")``, or ``$MESH_EXPORT_CONFIG_DIR``)::

    [datastacks.my_stack]
    server = "https://cave.example.org"
    description = "my lab's volume"
    default_version = 12            # optional: --static without --version; else the newest

    [datastacks.my_stack.static.12]   # a static release, keyed by materialization version
    url = "precomputed://gs://my-bucket/meshes_v12"
    lods = [0, 1, 2]                # optional, default 0-3
    units = "nm"                    # optional, default nm

An entry with a built-in name replaces the fields it gives; its static releases are added
to (or replace, version by version) the built-in ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

from mesh_export.errors import ConfigError, SourceError

CONFIG_ENV = "MESH_EXPORT_CONFIG_DIR"
CONFIG_FILE = "datastacks.toml"
DEFAULT_DATASTACK = "minnie65_public"
#: caveclient's default global server (``caveclient.endpoints.default_global_server_address``).
GLOBAL_SERVER = "https://global.daf-apis.com"
_LODS = (0, 1, 2, 3)


@dataclass(frozen=True)
class StaticRelease:
    """Static multi-resolution meshes made from one materialization version."""

    version: int
    url: str
    lods: tuple[int, ...] = _LODS
    units: str = "nm"
    note: str = ""

    def describe(self) -> dict[str, Any]:
        return {"version": self.version, "url": self.url, "lods": list(self.lods), "units": self.units,
                **({"note": self.note} if self.note else {})}


@dataclass(frozen=True)
class Datastack:
    name: str
    server: str
    description: str = ""
    static: tuple[StaticRelease, ...] = ()  # sorted by version
    default_version: int | None = None
    note: str = ""  # what is (not) known, e.g. that there is no static release
    origin: str = "built-in"  # or the TOML file that defined or changed it

    @property
    def static_versions(self) -> list[int]:
        return [release.version for release in self.static]

    def static_release(self, version: int | None = None) -> StaticRelease:
        """The release for ``version``; without one, the default version's, else the newest."""
        if not self.static:
            raise SourceError(f"no static mesh release is known for datastack {self.name!r}; use the "
                              f"dynamic meshes (drop --static), pass --source URL, or add one to "
                              f"{config_path()}")
        wanted = version if version is not None else self.default_version
        if wanted is None:
            return self.static[-1]
        for release in self.static:
            if release.version == wanted:
                return release
        there = ", ".join(str(v) for v in self.static_versions)
        raise SourceError(f"datastack {self.name!r} has no static mesh release for version {wanted} "
                          f"(there are: {there}); pick one of those with --version, or drop --static")

    def describe(self) -> dict[str, Any]:
        default = self.static_release().version if self.static else self.default_version
        return {"name": self.name, "server": self.server, "description": self.description,
                "default_version": default, "static": [r.describe() for r in self.static],
                **({"note": self.note} if self.note else {}), "origin": self.origin}


_SOME_LACK_LOD3 = "lods 0-3 where present: lod 3 is missing for some neurons"
_DYNAMIC_ONLY = "dynamic meshes only: no static mesh release is known"

# Where each entry comes from (checked with public code through the search tool, and the
# project's FIELD-NOTES "Datasets" section):
BUILTIN = (
    # MICrONS: FIELD-NOTES "Datasets" and the MICrONS 2025 workshop notebooks: static meshes
    # precomputed://gs://iarpa_microns/minnie/minnie65/seg_m943 and .../seg_m1300, lods 0-3;
    # the datastack lives on the global server.
    Datastack(
        "minnie65_public", GLOBAL_SERVER,
        "MICrONS mouse visual cortex (minnie65), public release",
        static=(
            StaticRelease(943, "precomputed://gs://iarpa_microns/minnie/minnie65/seg_m943"),
            StaticRelease(1300, "precomputed://gs://iarpa_microns/minnie/minnie65/seg_m1300"),
        ),
    ),
    # FlyWire: precomputed://gs://flywire_v141_m783 is the source of fafbseg-py, Codex and
    # FlyWire's own Neuroglancer states; ..._m630 the earlier public release. fafbseg steps
    # down a lod on MeshDecodeError: lod 3 is missing for some neurons (FIELD-NOTES).
    Datastack(
        "flywire_fafb_public", GLOBAL_SERVER,
        "FlyWire whole adult fly brain (FAFB v14.1), public release",
        static=(
            StaticRelease(630, "precomputed://gs://flywire_v141_m630", note=_SOME_LACK_LOD3),
            StaticRelease(783, "precomputed://gs://flywire_v141_m783", note=_SOME_LACK_LOD3),
        ),
    ),
    # H01: public code connects with CAVEclient("h01_c3_flat",
    # server_address="https://global.brain-wire-test.org/"); it has its own token system.
    Datastack(
        "h01_c3_flat", "https://global.brain-wire-test.org",
        "H01 human temporal cortex (Harvard / Google), on its own CAVE server",
        note=_DYNAMIC_ONLY,
    ),
    # BANC and FANC: CAVEclient("brain_and_nerve_cord") and
    # CAVEclient("fanc_production_mar2021") on the global server in public code; their
    # graphene sources are graphene://middleauth+https://cave.fanc-fly.com/segmentation/table/...
    # (the graphene fetch strips "middleauth+" and sends the token to that storage).
    Datastack(
        "brain_and_nerve_cord", GLOBAL_SERVER,
        "BANC: fly brain and ventral nerve cord (Harvard / Lee lab)",
        note=_DYNAMIC_ONLY,
    ),
    Datastack(
        "fanc_production_mar2021", GLOBAL_SERVER,
        "FANC: female adult fly ventral nerve cord (Tuthill / Lee labs)",
        note=_DYNAMIC_ONLY,
    ),
)


def config_dir() -> Path:
    """Where user settings live: ``$MESH_EXPORT_CONFIG_DIR`` or the platform config dir."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("mesh-export"))


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        line = f"line {found.group(1)}: " if found else ""
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc).splitlines()[0])
        raise ConfigError(f"{path}: {line}malformed TOML: {reason}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _as_int(value: Any, what: str, path: Path) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {what} must be an integer, got {value!r}") from None


def _user_entry(name: str, table: Any, base: Datastack | None, path: Path) -> Datastack:
    where = f"[datastacks.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {where} must be a table")
    unknown = set(table) - {"server", "description", "default_version", "static", "note"}
    if unknown:
        raise ConfigError(f"{path}: {where} has unknown keys: {', '.join(sorted(unknown))}")
    releases = {r.version: r for r in (base.static if base else ())}
    static = table.get("static", {})
    if not isinstance(static, dict):
        raise ConfigError(f"{path}: {where}.static must be tables keyed by version, "
                          f"like [datastacks.{name}.static.943]")
    for key, spec in static.items():
        version = _as_int(key, f"{where} static version", path)
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            raise ConfigError(f"{path}: [datastacks.{name}.static.{key}] needs url = \"precomputed://...\"")
        lods = spec.get("lods", list(_LODS))
        if not isinstance(lods, list):
            raise ConfigError(f"{path}: [datastacks.{name}.static.{key}] lods must be a list of integers")
        releases[version] = StaticRelease(version, spec["url"],
                                          tuple(_as_int(v, "a lod", path) for v in lods),
                                          str(spec.get("units", "nm")), str(spec.get("note", "")))
    server = table.get("server", base.server if base else None)
    if not isinstance(server, str):
        raise ConfigError(f"{path}: {where} needs server = \"https://...\" (the CAVE server)")
    default = table.get("default_version", base.default_version if base else None)
    entry = base or Datastack(name, server)
    return replace(entry, server=server.rstrip("/"),
                   description=str(table.get("description", entry.description)),
                   static=tuple(sorted(releases.values(), key=lambda r: r.version)),
                   default_version=None if default is None else _as_int(default, f"{where} default_version", path),
                   note=str(table.get("note", entry.note if not static else "")), origin=str(path))


def _merged(entries: Iterable[Datastack], path: Path) -> dict[str, Datastack]:
    known = {entry.name: entry for entry in entries}
    if not path.is_file():
        return known
    document = _read_toml(path)
    tables = document.get("datastacks", {})
    if set(document) - {"datastacks"} or not isinstance(tables, dict):
        raise ConfigError(f"{path}: expected only [datastacks.<name>] tables")
    for name, table in tables.items():
        known[name] = _user_entry(name, table, known.get(name), path)
    return known


_loaded: dict[tuple, dict[str, Datastack]] = {}


def registry() -> dict[str, Datastack]:
    """Every known datastack by name: the built-in table with the user's file applied."""
    path = config_path()
    try:
        stat = path.stat()
        stamp = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (str(path), None, None)
    if stamp not in _loaded:
        _loaded.clear()
        _loaded[stamp] = _merged(BUILTIN, path)
    return _loaded[stamp]


def lookup(name: str | None) -> Datastack | None:
    """The entry for ``name`` (default: minnie65_public), or None if it is not in the registry."""
    return registry().get(name or DEFAULT_DATASTACK)


def server_for(datastack: str | None, server: str | None) -> str | None:
    """The CAVE server to ask: ``--server`` if given, else the datastack's own, else None."""
    if server:
        return server
    entry = lookup(datastack)
    return entry.server if entry else None


def static_release(datastack: str | None, version: int | None = None) -> tuple[Datastack, StaticRelease]:
    """The static release ``--static [--version V]`` means for ``datastack``; no network."""
    name = datastack or DEFAULT_DATASTACK
    entry = lookup(name)
    if entry is None:
        known = ", ".join(sorted(registry()))
        raise SourceError(f"no static mesh source: unknown datastack {name!r} (known: {known}); pass --source URL, "
                          f"or add it to {config_path()}")
    return entry, entry.static_release(version)
