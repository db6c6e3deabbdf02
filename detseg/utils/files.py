"""Files replaced whole or not at all.

``atomic_write(path)`` yields a binary file open on a hidden temp file beside ``path``
(``.<name>.<pid>.<uuid hex>.tmp``); on a clean exit the file is flushed, fsynced and renamed over
``path`` and the directory is fsynced, so a reader or a crash at any point sees either the previous
file or the new one, never a half-written one. On an error the temp file is removed and the error
goes on. ``atomic_path(path)`` does the same for writers that take a path instead of a file.

Permissions: the new file gets the mode of a normally created file (0o666 less the umask). The temp
file is created by a plain open, not ``mkstemp`` (whose 0600 would survive the rename).

A process killed mid-write (SIGKILL skips every cleanup) leaves its temp file behind;
``remove_stale_temp_files`` recognises the name above and deletes those of dead processes.
"""
from __future__ import annotations

import contextlib
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator

_TEMP_NAME = re.compile(r"\..+\.(\d+)\.[0-9a-f]{32}\.tmp")


def temp_path_for(path: Path) -> Path:
    """A hidden name beside ``path`` that no other writer (process or thread) can pick."""
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with atomic_write(path) as f: f.write(...)``: ``path`` holds all of it afterwards, or is untouched."""
    with _replacing(Path(path)) as tmp, open(tmp, "xb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """For a writer that takes a path (``dump_config(cfg, tmp)``): it writes the yielded temp path,
    which then replaces ``path`` as in ``atomic_write``."""
    with _replacing(Path(path)) as tmp:
        yield tmp
        _fsync_file(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)  # atomic on POSIX within one filesystem
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temp files of writers that were killed mid-write; returns them.

    Without this every kill would leak a hidden file as large as what it was writing (a checkpoint).
    Files of live processes (another writer right now) are left alone.
    """
    removed = []
    for tmp in Path(directory).glob(".*.*.*.tmp"):
        found = _TEMP_NAME.fullmatch(tmp.name)
        if found and not _process_alive(int(found.group(1))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return pid != 0


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
