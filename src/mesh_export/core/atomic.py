"""Write-to-temp-then-rename, so a crash or a bad input never leaves a half-written file
under the real name and never destroys the file already there."""

from __future__ import annotations

import os
import re
import secrets
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from mesh_export.errors import OutputError


_ANY_WRITE_BIT = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def _writable(path: Path, mode: int) -> bool:
    # Root passes os.access on anything; a file or folder with no write bit at all is
    # still read as "do not replace", as cp/rm treat write-protected files.
    return bool(mode & _ANY_WRITE_BIT) and os.access(path, os.W_OK)


def _mode(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def make_output_dir(path: str | os.PathLike) -> Path:
    """Create an output directory (and its parents) if missing, as downloaders do."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"output path exists and is not a directory: {path}") from None
    except OSError as exc:
        raise OutputError(f"cannot create output directory {path}: {exc.strerror or exc}") from None
    return path


def check_target(target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail early (before any work) if ``target`` cannot be written."""
    target = Path(target)
    parent = target.parent
    parent_mode = _mode(parent)
    if parent_mode is None or not stat.S_ISDIR(parent_mode):
        raise OutputError(f"output directory does not exist: {parent}")
    target_mode = _mode(target)
    if target_mode is not None:
        if stat.S_ISDIR(target_mode):
            raise OutputError(f"output path is a directory: {target}")
        if not overwrite:
            raise OutputError(f"{target} exists; pass --overwrite to replace it")
        if not _writable(target, target_mode):
            raise OutputError(f"{target} is read-only; not replacing it")
    if not _writable(parent, parent_mode):
        raise OutputError(f"output directory is not writable: {parent}")
    return target


def _temporary_name(target: Path, suffix: str) -> Path:
    return target.parent / f".{target.name}.{secrets.token_hex(8)}.part{suffix}"


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{16}\.part")


def intended_name(path: str | os.PathLike) -> str:
    """The file name a writer's output will have: ``path``'s own, or the target's when
    ``path`` is the temporary name :func:`atomic_output` gave (a writer naming something
    after its file, such as a hoc template, sees the temporary path)."""
    name = Path(path).name
    match = _TEMPORARY.match(name)
    return match.group("name") if match else name


@contextmanager
def atomic_output(target: str | os.PathLike, overwrite: bool = False, suffix: str = "",
                  checked: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    The temporary path does not exist yet: the writer creates it (native writers with
    ``open(path, "xb")``, which refuses to follow or reuse anything already there). It is not
    pre-created with mkstemp because reopening that empty file with "wb" truncates it, and on
    ext4 a truncated file is flushed to disk when closed (auto_da_alloc): ~2 ms per 25 MB and
    ~50 us per small file that a plain ``open`` never pays. Creating it with ``open`` also
    gives it the permissions any new file gets (mode 0666 less the umask).

    ``suffix`` is appended to the temporary name for libraries that pick a format by
    extension. ``checked=True`` skips ``check_target`` for a caller that has just run it.
    On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target) if checked else check_target(target, overwrite)
    tmp = _temporary_name(target, suffix)
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, target)
        else:
            # link() fails if the name was taken since check_target (another worker, another
            # process): a file is never replaced without --overwrite, even in a race.
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise OutputError(f"{target} appeared while it was being written; pass --overwrite "
                                  "to replace it") from None
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def replaced_file(target: str | os.PathLike, mode: str = "wb", fsync: bool = False) -> Iterator[IO]:
    """An open file under a fresh temporary name beside ``target``, renamed over it on success.

    For files the tool owns (cache entries, the batch manifest), which are always replaced: two
    runs writing the same target each write their own temporary file, and the last complete one
    wins. On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    tmp = _temporary_name(target, "")
    try:
        with open(tmp, mode.replace("w", "x")) as handle:
            yield handle
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
