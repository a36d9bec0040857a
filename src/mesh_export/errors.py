"""One exception hierarchy; the CLI maps each class to a one-line message and an exit code.

Exit codes are part of the interface (scripts branch on them), so each class owns a
distinct code and the codes never change meaning.
"""

from __future__ import annotations


class MeshExportError(Exception):
    """Base of every error mesh-export raises on purpose."""

    exit_code = 1


class InvalidArgumentError(MeshExportError, ValueError):
    """An option or argument has a value that cannot work (e.g. a negative scale)."""

    exit_code = 2


class InputError(MeshExportError):
    """An input file is missing, unreadable or not a mesh."""

    exit_code = 3


class UnknownFormatError(MeshExportError, ValueError):
    """No writer is registered for the requested format or extension."""

    exit_code = 4


class OutputError(MeshExportError):
    """The output cannot be written: missing directory, existing file, no permission."""

    exit_code = 5


class InvalidMeshError(MeshExportError, ValueError):
    """The mesh itself is unusable: NaN vertices, faces out of range, empty."""

    exit_code = 6


class UnitsError(MeshExportError, ValueError):
    """Units are unknown or cannot be converted as asked."""

    exit_code = 7


class NotFoundError(MeshExportError):
    """The root id has no mesh at the source (404, empty manifest)."""

    exit_code = 8


class NetworkError(MeshExportError):
    """The server could not be reached or kept failing after retries."""

    exit_code = 9


class AuthError(MeshExportError):
    """The server refused the request: missing, malformed or wrong token."""

    exit_code = 10


class IncompleteMeshError(MeshExportError):
    """Some fragments listed for the mesh could not be fetched (see --allow-missing)."""

    exit_code = 11


class CacheMissError(MeshExportError):
    """--offline was given and the mesh is not in the cache."""

    exit_code = 12


class SourceError(MeshExportError):
    """The data source is unknown or malformed: an unknown datastack, a bad URL, no such lod."""

    exit_code = 13


class ConfigError(MeshExportError):
    """A configuration file (datastacks.toml) is malformed: the message names the file and line."""

    exit_code = 18


class SkeletonizeError(InvalidMeshError):
    """The mesh cannot be turned into a morphology: flat, no area, no volume."""

    exit_code = 14


class InvalidSkeletonError(InvalidMeshError):
    """A skeleton is not one valid tree: several roots, cycles, NaN or non-positive radii."""

    exit_code = 15


class CheckFailedError(MeshExportError):
    """The mesh does not meet the print requirements that were asked for."""

    exit_code = 16


class VolumeMeshError(MeshExportError):
    """TetGen could not mesh the surface, or the volume extra is not installed."""

    exit_code = 17


# Codes of a whole run rather than of one error class (a batch's outcome, a bug, Ctrl-C).
EXIT_ALL_OK = 0
EXIT_SOME_FAILED = 20
EXIT_ALL_FAILED = 21
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
RUN_EXIT_CODES = {"all_ok": EXIT_ALL_OK, "some_failed": EXIT_SOME_FAILED, "all_failed": EXIT_ALL_FAILED,
                  "internal": EXIT_INTERNAL, "interrupted": EXIT_INTERRUPTED}
