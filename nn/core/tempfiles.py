"""Temporary files and folders that say whether they are still in use.

A save or an add writes into a temporary file or folder beside its target and renames it into
place. While it works it holds an exclusive ``flock`` on it (:func:`held`, or :func:`hold` on an
open file); a process killed midway loses its lock with its life. What nobody holds is therefore
a leftover, and :func:`remove_abandoned` deletes it at the next listing, returning what it
removed so the caller can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["held", "hold", "remove_abandoned"]


def hold(fd: int) -> None:
    """Hold an exclusive lock on the open file ``fd`` until it is closed."""
    fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def held(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive lock on the file or folder ``path`` for the ``with`` block."""
    fd = os.open(path, os.O_RDONLY)
    try:
        hold(fd)
        yield
    finally:
        os.close(fd)


def _in_use(path: str | os.PathLike) -> bool:
    """Whether a running process holds ``path`` (True too when it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _size(path: Path) -> int:
    if not path.is_dir():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def remove_abandoned(
    folder: str | os.PathLike, is_temporary: Callable[[str], bool]
) -> list[tuple[Path, int]]:
    """Delete the entries of ``folder`` whose name ``is_temporary`` and that no process holds;
    returns each one's path and size in bytes. Links are never followed or removed."""
    folder = Path(folder)
    removed: list[tuple[Path, int]] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return removed
    for path in entries:
        if not is_temporary(path.name) or path.is_symlink() or _in_use(path):
            continue
        try:
            size = _size(path)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue
        removed.append((path, size))
    return removed
