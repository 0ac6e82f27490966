"""The resources the kit's scripts read, and whether a workspace has them: `connect windmill` and `check` list
each one, and say how to create a missing one (headrace creates only `f/FOLDER/db`, with --database: the
others hold the user's secrets)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from headrace.windmill import deploy_routes as routes
from headrace.windmill.deploy_api import Api, Step, api_base
from headrace.windmill.kit import RESOURCE_TYPES, Kit, KitResource, kit_resources

ResourceState = Literal["exists", "created by connect", "missing"]


@dataclass(frozen=True)
class ResourceCheck:
    """A resource the kit reads, and whether the workspace has it. headrace creates only `f/FOLDER/db` (with
    --database); the others hold the user's secrets and are theirs to create."""

    resource: KitResource
    state: ResourceState

    def lines(self, base_url: str, workspace: str, token_shell: str) -> list[str]:
        """What connect prints for it: the state, who reads it and, when missing, how to create it."""
        r = self.resource
        readers = ", ".join(r.destinations) or "no kit automation (only kit scripts no destination runs)"
        head = f"{self.state:>18}  resource {r.path} (type {r.resource_type}), read by: {readers}"
        if self.state != "missing":
            return [head]
        return [head, *("                    " + line for line in create_hint(r, base_url, workspace, token_shell))]


def create_hint(resource: KitResource, base_url: str, workspace: str, token_shell: str) -> list[str]:
    """How a person creates `resource`: in Windmill's UI, or the exact `resources/create` request (values to
    fill in; headrace never sends it: they are the user's secrets)."""
    fields = RESOURCE_TYPES.get(resource.resource_type, {})
    value = {key: 0 if kind == "integer" else f"<{key}>" for key, kind in fields.items()}
    body = {"path": resource.path, "resource_type": resource.resource_type, "value": value}
    url = routes.RESOURCE_CREATE.build(api_base(base_url), workspace=workspace)
    lines = [
        f"create it in Windmill: Resources -> Add resource -> {resource.resource_type}, path {resource.path}; or",
        f"curl -X POST {url} -H \"Authorization: Bearer {token_shell}\" -H 'Content-Type: application/json' "
        f"-d '{json.dumps(body)}'",
    ]
    if resource.resource_type == "postgresql":
        lines.append("(or run connect windmill with --database postgresql://USER:PASSWORD@HOST:5432/DB: it creates it)")
    return lines


async def check_resources(api: Api, kit: Kit, steps: list[Step] | None = None) -> list[ResourceCheck]:
    """Each resource the kit reads (kit_resources: from the kit's files) with its state in the workspace, asked
    with `resources/exists` (read-only). `steps`: a plan whose create step makes one counts as made by connect."""
    creating = {step.path for step in steps or () if step.kind == "resource" and step.action == "create"}
    checks = []
    for resource in kit_resources(kit):
        if resource.path in creating:
            checks.append(ResourceCheck(resource, "created by connect"))
            continue
        exists = await api.get(routes.RESOURCE_EXISTS, path=resource.path)
        checks.append(ResourceCheck(resource, "exists" if exists is True else "missing"))
    return checks
