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

    # The licence travels with the wheel (PEP 639: .dist-info/licenses/) and the metadata names it.
    licence = (ROOT / "LICENSE").read_text("utf-8")
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    wheel_zip = zipfile.ZipFile(wheel)
    [shipped_licence] = [name for name in shipped if name.endswith(".dist-info/licenses/LICENSE")]
    assert wheel_zip.read(shipped_licence).decode("utf-8") == licence
    [metadata] = [name for name in shipped if name.endswith(".dist-info/METADATA")]
    headers = wheel_zip.read(metadata).decode("utf-8").split("\n\n", 1)[0].splitlines()
    assert "License-Expression: Apache-2.0" in headers and "License-File: LICENSE" in headers
