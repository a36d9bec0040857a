"""The writer registry: format name -> how to write it, what it accepts, which options it takes.

A table and nothing more: it imports no format and loads nothing, so every format module can
import it without a cycle. Filling it (built-in formats, meshio's, plugins) and looking
writers up is :mod:`mesh_export.writers.catalog`'s job.

The plugin contract, kept stable for third-party packages:

* ``from mesh_export.writers.registry import Writer`` (and ``SURFACE``, ``SKELETON``,
  ``VOLUME`` for ``Writer.accepts``);
* a package lists writers in the ``mesh_export.writers`` entry-point group
  (``ENTRY_POINT_GROUP``): an entry point names a ``Writer``, or a callable returning one or a
  list of them; the catalog loads them after the built-in formats, and a plugin's writer
  replaces a built-in one of the same name;
* code that runs in-process may call ``register(writer)`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "mesh_export.writers"

from mesh_export.core.options import check_options  # noqa: F401  (re-exported)
from mesh_export.model import SCENE, SKELETON, SURFACE, VOLUME  # noqa: F401  (re-exported)


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
    # For a format that is a list of triangles (binary STL): ``write_pieces(pieces, path, title)``
    # writes a mesh given as the unmerged pieces a fetch decoded, ``(vertices, faces)`` each,
    # as the file ``write`` makes of their merge, and returns the faces written.
    write_pieces: Callable[..., int] | None = None

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
# The writers in listing order, rebuilt when the registry changes (a lookup by extension
# runs on every write, and sorting ~60 writers each time cost more than a small mesh's write).
_ORDERED: list[Writer] = []
_BY_EXTENSION: dict[str, Writer] = {}  # first in listing order wins


def register(writer: Writer, *, replace: bool = False) -> Writer:
    """Add ``writer`` to the registry; a name already taken needs ``replace=True``."""
    key = writer.name.lower()
    if key in _WRITERS and not replace:
        raise ValueError(f"a writer named {writer.name!r} is already registered")
    _WRITERS[key] = writer
    _forget_index()
    return writer


def register_builtin(writer: Writer) -> Writer:
    """A built-in format module's own registration, made when the module is first imported: a
    writer already registered under the name (a plugin's, or the user's) keeps it. The catalogue
    loads plugins before it imports a format module, and code may import one at any time."""
    taken = _WRITERS.get(writer.name.lower())
    return taken if taken is not None else register(writer)


def is_registered(name: str) -> bool:
    return name.lower() in _WRITERS


def named(name: str) -> Writer | None:
    """The writer registered under ``name`` (any case), if any."""
    return _WRITERS.get(name.lower())


def in_listing_order() -> list[Writer]:
    """The writers registered so far: native first, then trimesh's, then meshio's (the
    list is shared: do not change it)."""
    if not _ORDERED:
        _ORDERED[:] = sorted(_WRITERS.values(),
                             key=lambda w: (_BACKEND_ORDER.get(w.backend, len(_BACKEND_ORDER)), w.name))
        for writer in _ORDERED:
            for extension in writer.extensions:
                _BY_EXTENSION.setdefault(extension.lower(), writer)
    return _ORDERED


def owner_of(extension: str) -> Writer | None:
    """The writer for ``extension`` (".stl"): native writers win over meshio's for a shared
    extension; among equals, the first in listing order."""
    in_listing_order()
    return _BY_EXTENSION.get(extension.lower())


def _forget_index() -> None:
    _ORDERED.clear()
    _BY_EXTENSION.clear()
