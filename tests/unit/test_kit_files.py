"""Every kit file reaches a wheel install, at the same place under <prefix>/share/headrace/kit (pyproject
`data-files`), so `connect windmill` finds the kit when headrace is installed from a wheel (windmill/kit.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_data_files_install_every_kit_file_at_its_place() -> None:
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]["data-files"]
    installed = set()
    for target, patterns in data_files.items():
        if not target.startswith("share/headrace/kit"):
            continue
        for pattern in patterns:
            for path in ROOT.glob(pattern):
                installed.add(f"{target}/{path.name}")
    kit = ROOT / "kit"
    wanted = {
        "share/headrace/kit/" + path.relative_to(kit).as_posix()
        for path in [*kit.joinpath("f").rglob("*"), *kit.joinpath("sql").glob("*.sql")]
        if path.is_file()
    }
    assert wanted, "no kit files found: the test would prove nothing"
    assert wanted - installed == set(), "add these to [tool.setuptools.data-files] in pyproject.toml"
    assert installed - wanted == set()
