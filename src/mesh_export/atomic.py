"""Write-to-temp-then-rename, so a crash or a bad input never leaves a half-written file
under the real name and never destroys the file already there."""

from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputError


def _writable(path: Path) -> bool:
    # Root passes os.access on anything; a file or folder with no write bit at all is
    # still read as "do not replace", as cp/rm treat write-protected files.
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def check_target(target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Fail early (before any work) if ``target`` cannot be written."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory does not exist: {parent}")
    if target.is_dir():
        raise OutputError(f"output path is a directory: {target}")
    if target.exists():
        if not overwrite:
            raise OutputError(f"{target} exists; pass --overwrite to replace it")
        if not _writable(target):
            raise OutputError(f"{target} is read-only; not replacing it")
    if not _writable(parent):
        raise OutputError(f"output directory is not writable: {parent}")
    return target


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which races between worker threads.
_UMASK = _read_umask()


@contextmanager
def atomic_output(target: str | os.PathLike, overwrite: bool = False, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    ``suffix`` is appended to the temporary name for libraries that pick a format by
    extension. On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = check_target(target, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the result the permissions a normal open() would.
        os.chmod(tmp, 0o666 & ~_UMASK)
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
