"""The PID file: written atomically over a stale one, removed only while it names this process."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from headrace.config import ConfigError
from headrace.ops import pidfile


def test_written_over_a_stale_file_and_removed_at_exit(tmp_path: Path):
    path = tmp_path / "headrace.pid"
    path.write_text("999999\n")  # left behind by a process killed with -9
    pidfile.write(path)
    assert path.read_text() == f"{os.getpid()}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["headrace.pid"]  # no temporary file left
    pidfile.remove(path)
    assert not path.exists()
    pidfile.remove(path)  # already gone: nothing to do


def test_a_file_another_process_took_over_is_left_alone(tmp_path: Path):
    path = tmp_path / "headrace.pid"
    pidfile.write(path)
    path.write_text("1\n")  # a newer instance wrote its own id
    pidfile.remove(path)
    assert path.read_text() == "1\n"


def test_an_unwritable_place_is_one_clear_error(tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        pidfile.write(tmp_path / "missing" / "headrace.pid")
    message = str(err.value)
    assert "cannot write the PID file" in message and "RuntimeDirectory=headrace" in message
