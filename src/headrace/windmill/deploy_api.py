"""The deployment requests to one Windmill workspace (CONTRACT D1-D8): the steps a plan is made of, and the REST
client that sends them, GET and POST only (no DELETE exists here), with its answers read up to RESPONSE_LIMIT."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from headrace.policy import ERROR_EXCERPT, QUOTE_EXCERPT
from headrace.windmill import deploy_routes as routes
from headrace.windmill.client import read_capped
from headrace.windmill.urls import Route

RESPONSE_LIMIT = 4 * 1_048_576  # bytes of one answer read; a kit flow is far smaller

Action = Literal["create", "update", "unchanged", "left alone"]


class DeployError(Exception):
    """Deploying stopped: says what failed and what to do. Never holds the token."""


@dataclass
class Step:
    kind: str  # folder, resource type, variable, resource, script, flow, schedule
    path: str
    action: Action
    note: str = ""
    route: Route | None = None  # what apply() sends (POST)
    parts: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    query: str = ""
    hash: str | None = None  # a script whose lock must be waited for (unchanged but still building)
    waits: bool = False  # a script or flow whose lock apply() waits for

    def line(self) -> str:
        return f"{self.action:>10}  {self.kind} {self.path}" + (f"  ({self.note})" if self.note else "")


def api_base(url: str) -> str:
    """Windmill's API root (`.../api`) from the address a person gives (with or without /api, a final /)."""
    return url.strip().rstrip("/").removesuffix("/api") + "/api"


class Api:
    """The deployment routes of one workspace, over aiohttp. GET and POST only: there is no delete here."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, workspace: str, token: str) -> None:
        self._http = http
        self.base_url = api_base(base_url)
        self.workspace = workspace
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: Literal["GET", "POST"], route: Route, body: Any = None, query: str = "", **parts: str
    ) -> tuple[int, str]:
        url = route.build(self.base_url, workspace=self.workspace, **parts) + query
        try:
            async with self._http.request(method, url, json=body, headers=self._headers) as response:
                status = response.status
                text, cut = await read_capped(response, RESPONSE_LIMIT)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeployError(f"cannot reach Windmill at {self.base_url}: {exc.__class__.__name__} {exc}") from None
        if cut:
            raise DeployError(f"{method} {route.name}: the answer is larger than {RESPONSE_LIMIT} bytes")
        if status in (401, 403):
            raise DeployError(
                f"Windmill refused {method} {route.template.format(workspace=self.workspace, **parts)} "
                f"with {status}: {text[:QUOTE_EXCERPT]}. Check the token, that it belongs to workspace "
                f"{self.workspace}, and (for a scoped token) that it has the scopes for folders, resources, "
                "variables, scripts, flows and schedules"
            )
        return status, text

    async def get(self, route: Route, **parts: str) -> Any:
        """The JSON answer, or None for a 404."""
        status, text = await self.call("GET", route, **parts)
        if status == 404:
            return None
        if status != 200:
            raise DeployError(f"GET {route.name} {parts}: Windmill answered {status}: {text[:QUOTE_EXCERPT]}")
        try:
            return json.loads(text)
        except ValueError:
            raise DeployError(f"GET {route.name} {parts}: the answer is not JSON; is this a Windmill URL?") from None

    async def post(self, step: Step) -> str:
        """The answer's text (scripts/create: the new hash, which must not go through a JSON parser)."""
        assert step.route is not None
        status, text = await self.call("POST", step.route, step.body, step.query, **step.parts)
        if status == 400 and step.action == "create" and ("already exists" in text or "Path conflict" in text):
            raise DeployError(
                f"create {step.kind} {step.path}: it appeared after connect looked (another connect run, or a "
                "person, made it meanwhile); nothing of it was changed. Run connect windmill again: it compares "
                "first and leaves what is not headrace's alone"
            )
        if status not in (200, 201):
            raise DeployError(
                f"{step.action} {step.kind} {step.path}: Windmill answered {status}: {text[:ERROR_EXCERPT]}"
            )
        return text


async def whoami(api: Api) -> dict[str, Any]:
    """D1; an operator cannot create scripts or flows, so deploying stops here."""
    me = await api.get(routes.WHOAMI)
    if not isinstance(me, dict):
        raise DeployError(f"{api.base_url} does not answer users/whoami like Windmill; is it a Windmill URL?")
    if me.get("operator"):
        raise DeployError(
            f"the token belongs to {me.get('email', 'a user')}, an operator in workspace {api.workspace}: Windmill "
            "does not let operators create scripts or flows. Use the token of a developer or an admin"
        )
    return me
