"""The resources the kit reads are read from the kit's files (one place): a new `$res:` default in a script or
a flow step shows up with its type and the automations whose runs read it."""

from __future__ import annotations

import shutil
from pathlib import Path

from headrace.windmill.kit import DESTINATIONS, RESOURCE_TYPES, find_kit, kit_resources, read_kit


def test_every_resource_the_kit_reads_has_a_type_headrace_knows() -> None:
    resources = {r.path: r for r in kit_resources(read_kit(find_kit()))}
    assert sorted(resources) == sorted(
        f"f/dodo/{name}" for name in ("db", "slack", "smtp", "mysql", "hubspot", "twilio", "segment")
    )
    for resource in resources.values():
        assert resource.resource_type in RESOURCE_TYPES, resource
    assert resources["f/dodo/db"].destinations == tuple(row.name for row in DESTINATIONS)
    assert resources["f/dodo/twilio"].destinations == ("disputes",)  # a flow step's static input
    assert resources["f/dodo/mysql"].destinations == ()  # a kit script no destination runs


def test_a_new_resource_in_the_kit_files_is_found(tmp_path: Path) -> None:
    root = tmp_path / "kit"
    shutil.copytree(find_kit() / "f", root / "f")
    meta = root / "f" / "dodo" / "record_refund.script.yaml"
    text = meta.read_text("utf-8")
    extra = "    crm:\n      type: object\n      default: $res:f/dodo/crm\n      format: resource-crm\n"
    meta.write_text(text.replace("  properties:\n", "  properties:\n" + extra, 1), "utf-8")
    flow = root / "f" / "dodo" / "on_dispute__flow" / "flow.yaml"
    flow.write_text(flow.read_text("utf-8").replace("$res:f/dodo/twilio", "$res:f/dodo/pager"), "utf-8")
    resources = {r.path: r for r in kit_resources(read_kit(root, "shop"))}
    assert resources["f/shop/crm"].resource_type == "crm" and resources["f/shop/crm"].destinations == ("refunds",)
    assert resources["f/shop/pager"].resource_type == "twilio"  # typed by the called script's argument
    assert resources["f/shop/twilio"].destinations == ()  # only the twilio_sms script's own default now


def test_the_kit_readme_table_lists_exactly_the_resources_the_files_read() -> None:
    text = (find_kit() / "README.md").read_text("utf-8")
    table = text.split("## Resources to create", 1)[1].split("\n## ", 1)[0]
    rows = {
        (cells[1].strip(" `"), cells[2].strip(" `"))
        for line in table.splitlines()
        if line.startswith("| `f/") and len(cells := line.split("|")) > 3
    }
    assert rows == {(r.path, r.resource_type) for r in kit_resources(read_kit(find_kit()))}
