"""The loaded catalogue of writers: fills the registry on the first lookup and answers lookups.

The registry (:mod:`mesh_export.writers.registry`) is only the table; this module brings in
what goes in it, once, on the first lookup rather than at import (``import mesh_export`` and
the CLI's ``--help`` must not pay for every format): the built-in format modules (importing
one registers its writers), then meshio's formats, so the list grows with the installed
meshio, then the writers of the ``mesh_export.writers`` entry-point group, which replace
built-in writers of the same name.
"""

from __future__ import annotations

import os
import threading
import warnings

from mesh_export.errors import UnknownFormatError
from mesh_export.writers import registry
from mesh_export.writers.registry import ENTRY_POINT_GROUP, Writer, register

_loaded_builtin = False
_loaded_meshio = False
_loaded_plugins = False
# Batch workers (threads) may be the first to look a format up.
_LOADING = threading.RLock()


# The built-in format modules and the writers each registers when imported (name: extensions).
# A lookup of one of these imports its module alone: importing every format module and meshio's
# formats cost 0.15-0.2 s of each export's start-up. tests/test_registry.py holds this table to
# what the modules register.
BUILTIN_MODULES: dict[str, dict[str, tuple[str, ...]]] = {
    "stl": {"stl": (".stl",)},
    "ply": {"ply": (".ply",)},
    "obj": {"obj": (".obj",)},
    "off": {"off": (".off",)},
    "vtk_legacy": {"vtk": (".vtk",)},
    "vtk_xml": {"vtp": (".vtp",), "vtu": (".vtu",)},
    "gltf": {"glb": (".glb",), "gltf": (".gltf",), "3mf": (".3mf",)},
    "vtk_scene": {"vtm": (".vtm",)},
    "hoc": {"swc": (".swc",), "hoc": (".hoc",)},  # skeleton formats
    "sonata": {"sonata": ()},  # a circuit of many cells
    "precomputed": {"precomputed": ()},  # Neuroglancer layers cells are added to
    "neuroml": {"neuroml": (".cell.nml", ".nml")},  # registers only when libNeuroML is importable
}
_MODULE_OF_NAME = {name: module for module, names in BUILTIN_MODULES.items() for name in names}
_MODULE_OF_EXTENSION = {extension: module for module, names in BUILTIN_MODULES.items()
                        for extensions in names.values() for extension in extensions}
_imported_builtin: set[str] = set()
_plugin_writers: dict[str, Writer] = {}


def _import_builtin(module: str) -> None:
    """Import one built-in format module (which registers its writers), a plugin's writer of the
    same name staying in place: plugins may be loaded before it."""
    if module in _imported_builtin:
        return
    import importlib

    for name in _plugin_writers:
        registry.unregister(name)
    try:
        importlib.import_module(f"mesh_export.writers.{module}")
    finally:
        for writer in _plugin_writers.values():
            register(writer, replace=True)
    _imported_builtin.add(module)


def _load_builtin() -> None:
    global _loaded_builtin
    if _loaded_builtin:
        return
    for module in BUILTIN_MODULES:
        _import_builtin(module)
    _loaded_builtin = True


def _load_meshio() -> None:
    global _loaded_meshio
    if _loaded_meshio:
        return
    from mesh_export.writers import meshio_formats

    for writer in meshio_formats.writers():
        if not registry.is_registered(writer.name):  # a native writer keeps its name
            register(writer)
    _loaded_meshio = True


def _load_plugins() -> None:
    global _loaded_plugins
    if _loaded_plugins:
        return
    from importlib.metadata import entry_points

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
            produced = loaded() if callable(loaded) and not isinstance(loaded, Writer) else loaded
            if isinstance(produced, Writer):
                produced = [produced]
            for writer in produced:
                if not isinstance(writer, Writer):
                    raise TypeError(f"gave {writer!r}, not a mesh_export Writer")
                register(writer, replace=True)
                _plugin_writers[writer.name.lower()] = writer
        except Exception as exc:  # one broken plugin must not take every format down
            warnings.warn(f"mesh-export: skipping writer plugin {entry.name!r}: {exc}", stacklevel=2)
    _loaded_plugins = True


def ensure_loaded() -> None:
    """Fill the registry with every writer (built-in, meshio's, plugins'), once."""
    if _loaded_plugins and _loaded_meshio:
        return
    with _LOADING:
        _load_builtin()
        _load_meshio()
        _load_plugins()


def all_writers() -> list[Writer]:
    ensure_loaded()
    return list(registry.in_listing_order())


def _builtin_only(name: str | None = None, extension: str | None = None) -> Writer | None:
    """The built-in writer named ``name`` or owning ``extension``, its module alone imported, when
    no plugin claims that name or extension (plugins are looked up first: a few ms); None when the
    whole catalogue must answer."""
    module = _MODULE_OF_NAME.get(name) if name else _MODULE_OF_EXTENSION.get(extension)
    if module is None:
        return None
    with _LOADING:
        _load_plugins()
        if any(writer.name.lower() == name or extension in writer.extensions for writer in _plugin_writers.values()):
            return None
        _import_builtin(module)
    writer = registry.named(name) if name else None
    if writer is None and extension:
        claims = [w for w in registry.in_listing_order() if extension in w.extensions]
        writer = claims[0] if len(claims) == 1 else None  # several claims: the listing order decides
    return writer


def get_writer(name: str) -> Writer:
    bare = name.lstrip(".").lower()
    writer = _builtin_only(name=bare) or _builtin_only(extension="." + bare)
    if writer is not None:
        return writer
    ensure_loaded()
    writer = registry.named(name.lstrip("."))
    if writer is None:
        # Accept an extension where a name was given ("--format .stl" or "--format vtp").
        writer = registry.owner_of(name if name.startswith(".") else "." + name)
    if writer is None:
        raise UnknownFormatError(f"unknown format {name!r}; `mesh-export formats` lists them")
    return writer


def writer_for_path(path: str | os.PathLike, format: str | None = None) -> Writer:
    """The writer named by ``format``, else the one owning the longest matching extension."""
    if format:
        return get_writer(format)
    name = os.path.basename(os.fspath(path)).lower()
    dot = name.find(".", 1)
    # The whole suffix a built-in extension ("cell.stl", not "cell.v2.stl", whose longer suffixes
    # another writer might claim): its writer without the rest of the catalogue.
    writer = _builtin_only(extension=name[dot:]) if dot != -1 else None
    if writer is not None:
        return writer
    ensure_loaded()
    # The longest matching extension wins (".nii.gz" over ".gz").
    dot = name.find(".", 1)
    while dot != -1:
        writer = registry.owner_of(name[dot:])
        if writer is not None:
            return writer
        dot = name.find(".", dot + 1)
    raise UnknownFormatError(
        f"cannot tell the format of {os.fspath(path)!r} from its extension; pass --format"
    )
