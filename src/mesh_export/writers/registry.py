"""The writer registry: format name -> how to write it, what it accepts, which options it takes.

Built-in format modules register themselves on import; meshio's formats are added on first
use so the list grows with meshio; third-party packages add writers through the
``mesh_export.writers`` entry-point group (an entry point names a ``Writer`` or a callable
returning one or a list of them).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from mesh_export.errors import UnknownFormatError

ENTRY_POINT_GROUP = "mesh_export.writers"

from mesh_export.core.options import check_options  # noqa: F401  (re-exported)
from mesh_export.model import SKELETON, SURFACE, VOLUME  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Writer:
    """A registered output format.

    ``write(data, path, **options)`` writes ``data`` to ``path``, a temporary name that does
    not exist yet (create it with ``open(path, "xb")``); the caller renames it into place. ``modes`` lists the encodings the format supports,
    the default first (e.g. ``("binary", "ascii")``); a writer with an ascii mode receives
    ``ascii=True`` to select it.
    """

    name: str
    extensions: tuple[str, ...]
    write: Callable[..., None]
    accepts: tuple[str, ...] = (SURFACE,)
    modes: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    backend: str = "native"
    # True when ``write`` checks vertex values and face indices itself (validate.SurfaceValues)
    # while converting them, so the caller checks only shapes and types first.
    checks_values: bool = False
    # Units the format can state, when it cannot state every unit: a mesh in others is
    # converted to the first before writing, and the conversion recorded (3MF: um, mm, cm, m).
    units: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "extensions": list(self.extensions),
            "accepts": list(self.accepts),
            "modes": list(self.modes),
            "options": dict(self.options),
            "backend": self.backend,
            "description": self.description,
            **({"units": list(self.units)} if self.units else {}),
        }


_WRITERS: dict[str, Writer] = {}
# Listing order, and precedence when two writers claim one extension.
_BACKEND_ORDER = {"native": 0, "trimesh": 1, "meshio": 2}
_loaded_builtin = False
_loaded_meshio = False
_loaded_plugins = False
# Batch workers (threads) may be the first to look a format up.
_LOADING = threading.RLock()
# all_writers() in listing order, rebuilt when the registry changes (a lookup by extension
# runs on every write, and sorting ~60 writers each time cost more than a small mesh's write).
_ORDERED: list[Writer] = []
_BY_EXTENSION: dict[str, Writer] = {}  # first in listing order wins, as in _by_extension


def register(writer: Writer, *, replace: bool = False) -> Writer:
    """Add ``writer`` to the registry; a name already taken needs ``replace=True``."""
    key = writer.name.lower()
    if key in _WRITERS and not replace:
        raise ValueError(f"a writer named {writer.name!r} is already registered")
    _WRITERS[key] = writer
    _forget_index()
    return writer


def _load_builtin() -> None:
    global _loaded_builtin
    if _loaded_builtin:
        return
    # Importing a module registers its writers.
    from mesh_export.writers import gltf, obj, off, ply, stl, vtk_legacy, vtk_xml  # noqa: F401
    from mesh_export.writers import hoc, swc  # noqa: F401  (skeleton formats)
    from mesh_export.writers import neuroml  # noqa: F401  (registers only when libNeuroML is importable)

    _loaded_builtin = True


def _load_meshio() -> None:
    global _loaded_meshio
    if _loaded_meshio:
        return
    from mesh_export.writers import meshio_formats

    meshio_formats.register_all(_WRITERS)
    _forget_index()
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


def _ensure_loaded() -> None:
    if _loaded_plugins:
        return
    with _LOADING:
        _load_builtin()
        _load_meshio()
        _load_plugins()


def _indexed() -> list[Writer]:
    """The writers in listing order, (re)building that list and the extension map after the
    registry changed (``_forget_index``)."""
    _ensure_loaded()
    if not _ORDERED:
        _ORDERED[:] = sorted(_WRITERS.values(),
                             key=lambda w: (_BACKEND_ORDER.get(w.backend, len(_BACKEND_ORDER)), w.name))
        for writer in _ORDERED:
            for extension in writer.extensions:
                _BY_EXTENSION.setdefault(extension.lower(), writer)
    return _ORDERED


def _forget_index() -> None:
    _ORDERED.clear()
    _BY_EXTENSION.clear()


def all_writers() -> list[Writer]:
    return list(_indexed())


def get_writer(name: str) -> Writer:
    _ensure_loaded()
    writer = _WRITERS.get(name.lower().lstrip("."))
    if writer is None:
        # Accept an extension where a name was given ("--format .stl" or "--format vtp").
        writer = _by_extension(name if name.startswith(".") else "." + name)
    if writer is None:
        raise UnknownFormatError(f"unknown format {name!r}; `mesh-export formats` lists them")
    return writer


def _by_extension(extension: str) -> Writer | None:
    # Native writers win over meshio's for a shared extension; among equals, the first registered.
    _indexed()
    return _BY_EXTENSION.get(extension.lower())


def writer_for_path(path: str | os.PathLike, format: str | None = None) -> Writer:
    """The writer named by ``format``, else the one owning the longest matching extension."""
    if format:
        return get_writer(format)
    name = os.path.basename(os.fspath(path)).lower()
    # The longest matching extension wins (".nii.gz" over ".gz").
    dot = name.find(".", 1)
    while dot != -1:
        writer = _by_extension(name[dot:])
        if writer is not None:
            return writer
        dot = name.find(".", dot + 1)
    raise UnknownFormatError(
        f"cannot tell the format of {os.fspath(path)!r} from its extension; pass --format"
    )


def names(writers: Iterable[Writer]) -> list[str]:
    return [w.name for w in writers]
