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


def _load_builtin() -> None:
    global _loaded_builtin
    if _loaded_builtin:
        return
    # Importing a module registers its writers.
    from mesh_export.writers import gltf, obj, off, ply, stl, vtk_legacy, vtk_scene, vtk_xml  # noqa: F401
    from mesh_export.writers import hoc, swc  # noqa: F401  (skeleton formats)
    from mesh_export.writers import sonata  # noqa: F401  (a circuit of many cells)
    from mesh_export.writers import precomputed  # noqa: F401  (Neuroglancer layers cells are added to)
    from mesh_export.writers import neuroml  # noqa: F401  (registers only when libNeuroML is importable)

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
        except Exception as exc:  # one broken plugin must not take every format down
            warnings.warn(f"mesh-export: skipping writer plugin {entry.name!r}: {exc}", stacklevel=2)
    _loaded_plugins = True


def ensure_loaded() -> None:
    """Fill the registry with every writer (built-in, meshio's, plugins'), once."""
    if _loaded_plugins:
        return
    with _LOADING:
        _load_builtin()
        _load_meshio()
        _load_plugins()


def all_writers() -> list[Writer]:
    ensure_loaded()
    return list(registry.in_listing_order())


def get_writer(name: str) -> Writer:
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
    ensure_loaded()
    name = os.path.basename(os.fspath(path)).lower()
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
