"""A regular (non-editable) install must carry every data file the code loads at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA_SUFFIXES = {".sql", ".js", ".json", ".html"}

pytestmark = pytest.mark.slow


def test_the_wheel_ships_every_data_file(tmp_path: Path):
    # Build from a clean copy: setuptools reuses an existing build/ folder, which would hide a missing pattern.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "node_modules", "build", ".git", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("headrace-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "src"
    expected = {
        path.relative_to(package).as_posix()
        for path in (package / "headrace").rglob("*")
        if path.suffix in DATA_SUFFIXES and "__pycache__" not in path.parts
    }
    assert expected, "no data files found: the test would prove nothing"
    assert not expected - shipped, f"missing from the wheel: {sorted(expected - shipped)}"
