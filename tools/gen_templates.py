"""Write the shared blocks of the built-in templates from their one source in tools/template_blocks/.

Each built-in template (src/headrace/transform/builtin/NAME.js) stays self-contained, because users copy
it into Dodo's dashboard as it is. The code several templates share (the currency maths) lives once, in
tools/template_blocks/BLOCK.js, and is copied between the template's marker lines:

    // --- begin block: BLOCK (from tools/template_blocks/BLOCK.js; ...) ---
    ...
    // --- end block: BLOCK ---

.venv/bin/python tools/gen_templates.py          # rewrite the blocks in every template
.venv/bin/python tools/gen_templates.py --check  # exit 1 if a template's block differs (the test suite does this)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ROOT / "tools" / "template_blocks"
TEMPLATES = ROOT / "src" / "headrace" / "transform" / "builtin"
BEGIN = re.compile(r"^// --- begin block: (?P<name>[\w-]+) .*---\n", re.MULTILINE)


def begin_line(name: str) -> str:
    return (
        f"// --- begin block: {name} (from tools/template_blocks/{name}.js; edit it there, then run "
        "tools/gen_templates.py) ---\n"
    )


def end_line(name: str) -> str:
    return f"// --- end block: {name} ---\n"


def render(template: str, path: Path) -> str:
    """`template` with every marked block replaced by its source; ValueError for an unknown or unclosed block."""
    out: list[str] = []
    pos = 0
    for match in BEGIN.finditer(template):
        if match.start() < pos:
            continue
        name = match.group("name")
        source = BLOCKS / f"{name}.js"
        if not source.is_file():
            raise ValueError(f"{path}: block {name!r} has no source {source.relative_to(ROOT)}")
        end = template.find(end_line(name), match.end())
        if end < 0:
            raise ValueError(f"{path}: block {name!r} has no end line {end_line(name).strip()!r}")
        out += [template[pos : match.start()], begin_line(name), source.read_text("utf-8"), end_line(name)]
        pos = end + len(end_line(name))
    out.append(template[pos:])
    return "".join(out)


def blocks_in(template: str) -> list[str]:
    return [m.group("name") for m in BEGIN.finditer(template)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="only report templates whose blocks are stale")
    args = parser.parse_args()
    stale = []
    for path in sorted(TEMPLATES.glob("*.js")):
        text = path.read_text("utf-8")
        try:
            rendered = render(text, path)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 1
        if rendered != text:
            stale.append(path)
            if not args.check:
                path.write_text(rendered, "utf-8")
    if args.check and stale:
        names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
        print(f"stale shared blocks in {names}: run .venv/bin/python tools/gen_templates.py", file=sys.stderr)
        return 1
    for path in stale:
        print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
