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


def build_wheel(tmp_path: Path) -> Path:
    """`pip wheel --no-deps` as docs/operations.md says, from a clean copy: setuptools reuses an existing build/
    folder, which would hide a missing pattern."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "node_modules", "build", ".git", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = (tmp_path / "dist").glob("headrace-*-py3-none-any.whl")
    return wheel


def test_the_wheel_ships_every_data_file(tmp_path: Path):
    wheel = build_wheel(tmp_path)
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


SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system Python at /usr/bin/python3")
def test_the_documented_install_from_a_wheel_with_the_system_python(tmp_path: Path):
    """docs/operations.md "systemd": `pip wheel` in the checkout, a venv of /usr/bin/python3, the wheel with its
    postgres extra installed into it; the installed command runs from outside the checkout."""
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "opt-headrace"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"{wheel}[postgres]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if install.returncode != 0 and "Could not find a version" in install.stderr:
        pytest.skip(f"the package index is not reachable here: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]
    config = tmp_path / "headrace.toml"
    config.write_text('[server]\ndatabase = "sqlite:///h.db"\nadmin_token = "env:HEADRACE_ADMIN_TOKEN"\n')
    for args in (["--version"], ["check", "--config-only", "-c", str(config)]):
        done = subprocess.run(
            [str(venv / "bin" / "headrace"), *args], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import psycopg"], timeout=60).returncode == 0
