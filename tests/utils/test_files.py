"""detseg.utils.files: whole-or-nothing replacement, the usual permissions, no leftovers."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from detseg.utils.files import (atomic_path, atomic_write, atomic_write_bytes, atomic_write_text,
                                remove_stale_temp_files, temp_path_for)


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_mode_is_that_of_a_normally_created_file(tmp_path, umask_027):
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    with atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("y")
    (tmp_path / "plain").write_text("z")
    assert _mode(tmp_path / "a.bin") == _mode(tmp_path / "b.txt") == _mode(tmp_path / "plain") == 0o640


def test_content_is_replaced_whole(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "a much longer first version\n" * 10)
    atomic_write_text(path, "short")
    assert path.read_text() == "short"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("kind", ["file", "path"])
def test_an_error_leaves_the_old_file_and_no_temp_file(tmp_path, kind):
    path = tmp_path / "config.yaml"
    path.write_text("old")
    with pytest.raises(OSError, match="disk full"):
        if kind == "file":
            with atomic_write(path) as f:
                f.write(b"half of the new")
                raise OSError("disk full")
        else:
            with atomic_path(path) as tmp:
                tmp.write_text("half of the new")
                raise OSError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_missing_folders_are_made(tmp_path):
    atomic_write_bytes(tmp_path / "a" / "b" / "c.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b" / "c.bin").read_bytes() == b"\x00\x01"


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    live = temp_path_for(tmp_path / "last.pt")  # this process: a writer still at work
    stale = tmp_path / f".last.pt.{dead_pid}.{'ab' * 16}.tmp"
    foreign = tmp_path / ".notes.tmp"  # not our pattern: somebody else's file
    for path in (live, stale, foreign):
        path.write_bytes(b"partial")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name])
