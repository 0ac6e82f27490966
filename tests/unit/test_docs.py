"""Docs that can't drift: the configuration and CLI references are generated, and must be current."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_references_are_current():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/gen_docs.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_every_setting_has_help_text():
    from headrace.config import DestinationSettings, ServerSettings, SourceSettings

    for model in (ServerSettings, SourceSettings, DestinationSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
