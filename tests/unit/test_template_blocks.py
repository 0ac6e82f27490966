"""The built-in templates' shared code is written once (tools/template_blocks/) and pinned identical in each.

Every template stays self-contained (users paste it into Dodo's dashboard), so the currency maths is
copied into each one; tools/gen_templates.py writes the copies and these tests fail when one drifts.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "src" / "headrace" / "transform" / "builtin"
BLOCK = ROOT / "tools" / "template_blocks" / "currency.js"


def gen_templates() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_templates", ROOT / "tools" / "gen_templates.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("template", ["payment", "refund", "dispute", "subscription"])
def test_every_template_carries_the_canonical_currency_block_byte_for_byte(template: str) -> None:
    tool = gen_templates()
    text = (TEMPLATES / f"{template}.js").read_text("utf-8")
    assert tool.blocks_in(text) == ["currency"], f"{template}.js must carry exactly one currency block"
    expected = tool.begin_line("currency") + BLOCK.read_text("utf-8") + tool.end_line("currency")
    assert expected in text, f"{template}.js: its currency block differs from {BLOCK}; run tools/gen_templates.py"


def test_the_check_passes_on_the_committed_templates() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_templates.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_render_restores_an_edited_copy_and_keeps_the_rest(tmp_path: Path) -> None:
    tool = gen_templates()
    original = (TEMPLATES / "refund.js").read_text("utf-8")
    drifted = original.replace("function formatMinor(minor, exponent) {", "function formatMinor(minor, e) {")
    assert drifted != original
    assert tool.render(drifted, tmp_path / "refund.js") == original
    handler_edit = original.replace("function handler(webhook) {", "function handler(webhook) { // mine")
    assert tool.render(handler_edit, tmp_path / "refund.js") == handler_edit  # only the block is rewritten


def test_render_refuses_unknown_and_unclosed_blocks(tmp_path: Path) -> None:
    tool = gen_templates()
    with pytest.raises(ValueError, match="block 'nope' has no source"):
        tool.render("// --- begin block: nope (x) ---\n// --- end block: nope ---\n", tmp_path / "a.js")
    with pytest.raises(ValueError, match="block 'currency' has no end line"):
        tool.render(tool.begin_line("currency") + "const x = 1;\n", tmp_path / "a.js")
