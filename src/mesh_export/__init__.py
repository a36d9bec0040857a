"""mesh-export: from a connectomics root id, or any mesh file, to the file you need.

The public API is small and imports its heavy dependencies lazily::

    import mesh_export
    mesh = mesh_export.load("cell.ply")              # trimesh.Trimesh with .units
    mesh_export.write(mesh, "cell.stl")              # format from the extension
    mesh_export.formats()                            # every registered writer
"""

from __future__ import annotations

from ._version import __version__

__all__ = ["__version__", "load", "write", "formats", "convert"]


def __getattr__(name: str):
    # Lazy so that `import mesh_export` (and the CLI's --help) stays fast.
    if name in {"load", "write", "formats", "convert"}:
        from mesh_export import api

        value = globals()[name] = getattr(api, name)  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'mesh_export' has no attribute {name!r}")
