"""The loaded catalogue of writers: fills the registry as lookups need it and answers lookups.

The registry (:mod:`mesh_export.writers.registry`) is only the table; this module brings in
what goes in it, on lookup rather than at import (``import mesh_export`` and the CLI's
``--help`` must not pay for every format): the writers of the ``mesh_export.writers``
entry-point group (plugins, which replace built-in writers of the same name), the built-in
format modules (importing one registers its writers, yielding a name a plugin or the user
already holds), then meshio's formats, so the list grows with the installed meshio. A lookup
of a built-in format's name, or of an output named with a built-in extension, needs only the
plugins and that one module (``--format stl`` does not import the other formats or meshio);
anything else, and the full listing, loads it all.
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


def _load_builtin() -> None:
    global _loaded_builtin
    if _loaded_builtin:
        return
    for module in BUILTIN_MODULES:
        _import_builtin(module)
    _loaded_builtin = True


def _import_builtin(module: str) -> None:
    """Importing a format module registers its writers (a writer that replaced one of their
    names, a plugin's or the user's, keeps it: registry.register_builtin)."""
    import importlib

    importlib.import_module(f"mesh_export.writers.{module}")


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
        except Exception as exc:  # one broken plugin must not take every format down
            warnings.warn(f"mesh-export: skipping writer plugin {entry.name!r}: {exc}", stacklevel=2)
    _loaded_plugins = True


def ensure_loaded() -> None:
    """Fill the registry with every writer (built-in, meshio's, plugins'), once."""
    if _loaded_builtin and _loaded_meshio and _loaded_plugins:
        return
    with _LOADING:
        _load_builtin()
        _load_meshio()
        _load_plugins()


def all_writers() -> list[Writer]:
    ensure_loaded()
    return list(registry.in_listing_order())


def _with_one_module(module: str, lookup) -> Writer | None:
    """``lookup()`` answered with the plugins and ONE built-in format module loaded, not the whole
    catalogue; for a built-in's name or extension that answer is the whole catalogue's: plugins
    replace or join built-ins (so they are loaded first), built-in extensions belong to one module
    each, and meshio's writers never take a name already registered nor win an extension from a
    native or trimesh writer."""
    with _LOADING:
        _load_plugins()
        _import_builtin(module)
        return lookup()


def get_writer(name: str) -> Writer:
    bare = name.lstrip(".").lower()
    if bare in _MODULE_OF_NAME:  # "--format stl"
        writer = _with_one_module(_MODULE_OF_NAME[bare], lambda: registry.named(bare))
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
    # The longest suffix a built-in extension ("cell.stl"; not "cell.v2.stl", whose longer
    # suffixes another writer might claim): nothing longer to look for.
    suffix = name[dot:] if dot != -1 else ""
    if suffix in _MODULE_OF_EXTENSION:
        writer = _with_one_module(_MODULE_OF_EXTENSION[suffix], lambda: registry.owner_of(suffix))
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
