"""Windmill run URLs: the webhook URL a user copies from Windmill, parsed into its parts.

Accepted shapes (the path prefix before `/api` may be empty or a sub-path for reverse proxies):

    https://HOST/api/w/{workspace}/jobs/run/p/{script_path}
    https://HOST/api/w/{workspace}/jobs/run/f/{flow_path}
    https://HOST/api/w/{workspace}/jobs/run_wait_result/p/{script_path}
    https://HOST/api/w/{workspace}/jobs/run_wait_result/f/{flow_path}

with an optional `?token=...`, which is taken out of the URL and used as the bearer token.

The API routes themselves (`Route`: a template with named parts) are defined once here: the client
builds its URLs from them and the emulator registers its handlers on them, so the two cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

EXPECTED_SHAPE = (
    "https://HOST/api/w/WORKSPACE/jobs/run/p/SCRIPT_PATH (a script), "
    "https://HOST/api/w/WORKSPACE/jobs/run/f/FLOW_PATH (a flow), "
    "or the same with jobs/run_wait_result/ for a synchronous run"
)

_PATH = re.compile(
    r"^(?P<prefix>.*?)/api/w/(?P<ws>[A-Za-z0-9_-]+)/jobs/(?P<mode>run|run_wait_result)/(?P<kind>[pf])/(?P<path>.+)$"
)
_RUNNABLE_PATH = re.compile(r"^(u|f|g)/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")


class WindmillUrlError(ValueError):
    pass


@dataclass(frozen=True)
class Route:
    """One Windmill API route below `/api`: `template` names its parts in braces. A part named `path`
    (a script, flow or resource path) may contain slashes; every other part is one path segment."""

    name: str
    template: str
    choices: tuple[tuple[str, str], ...] = ()  # part -> regex of the values it takes, e.g. ("letter", "p|f")

    def build(self, base_url: str, **parts: str) -> str:
        """The URL of this route under `base_url` (scheme://host[prefix]/api)."""
        return base_url + self.template.format(**parts)

    @property
    def pattern(self) -> str:
        """The route as an aiohttp resource pattern (under /api), for a server that answers it."""
        choices = dict(self.choices)

        def part(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in choices:
                return f"{{{name}:{choices[name]}}}"
            return f"{{{name}:.+}}" if name == "path" else f"{{{name}}}"

        return "/api" + re.sub(r"\{(\w+)\}", part, self.template)


RUN = Route(
    "run",
    "/w/{workspace}/jobs/{endpoint}/{letter}/{path}",
    (("endpoint", "run|run_wait_result"), ("letter", "p|f")),
)
JOB = Route("job", "/w/{workspace}/jobs_u/get/{job_id}")
RESULT_MAYBE = Route("result_maybe", "/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}")
TIMING = Route("timing", "/w/{workspace}/jobs_u/completed/get_timing/{job_id}")  # J6
SCRIPT = Route("script", "/w/{workspace}/scripts/get/p/{path}")
FLOW = Route("flow", "/w/{workspace}/flows/get/{path}")
RESOURCE_VALUE = Route("resource_value", "/w/{workspace}/resources/get_value_interpolated/{path}")
VARIABLE_VALUE = Route("variable_value", "/w/{workspace}/variables/get_value/{path}")
ROUTES = (RUN, JOB, RESULT_MAYBE, SCRIPT, FLOW, RESOURCE_VALUE, VARIABLE_VALUE, TIMING)

ENDPOINTS = {"async": "run", "wait": "run_wait_result"}
LETTERS = {"script": "p", "flow": "f"}


@dataclass(frozen=True)
class RunTarget:
    """Where one destination's jobs are created."""

    base_url: str  # scheme://host[:port][prefix]/api
    workspace: str
    mode: Literal["async", "wait"]
    kind: Literal["script", "flow"]
    path: str
    extra_query: tuple[tuple[str, str], ...] = ()

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    @property
    def run_url(self) -> str:
        url = RUN.build(
            self.base_url,
            workspace=self.workspace,
            endpoint=ENDPOINTS[self.mode],
            letter=LETTERS[self.kind],
            path=self.path,
        )
        return f"{url}?{urlencode(self.extra_query)}" if self.extra_query else url

    def job_url(self, job_id: str) -> str:
        return JOB.build(self.base_url, workspace=self.workspace, job_id=job_id)

    def result_url(self, job_id: str) -> str:
        return RESULT_MAYBE.build(self.base_url, workspace=self.workspace, job_id=job_id)

    @property
    def definition_url(self) -> str:
        """Where Windmill describes the target: its input schema, archived and draft state."""
        route = SCRIPT if self.kind == "script" else FLOW
        return route.build(self.base_url, workspace=self.workspace, path=self.path)

    def ui_url(self, job_id: str) -> str:
        """Where a person sees the run in Windmill's web UI."""
        root = self.base_url.removesuffix("/api")
        return f"{root}/run/{job_id}?workspace={self.workspace}"


def parse_run_url(url: str) -> tuple[RunTarget, str | None]:
    """Split a copied Windmill webhook URL into a RunTarget and the `?token=` it carried, if any."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WindmillUrlError(f"a Windmill URL must start with https:// and name a host; expected {EXPECTED_SHAPE}")
    match = _PATH.match(parts.path.rstrip("/"))
    if not match:
        hint = ""
        if "/jobs/run/h/" in parts.path or "/jobs/run_wait_result/h/" in parts.path:
            hint = " (a script hash URL pins one version; use the path URL so deploys take effect)"
        elif "/jobs/run/" in parts.path or "/jobs/" in parts.path:
            hint = " (only run and run_wait_result endpoints by path are supported)"
        raise WindmillUrlError(f"not a Windmill run URL{hint}; expected {EXPECTED_SHAPE}")
    path = match.group("path")
    if not _RUNNABLE_PATH.match(path):
        raise WindmillUrlError(
            f"{path!r} is not a Windmill script or flow path (u/USER/NAME or f/FOLDER/NAME); expected {EXPECTED_SHAPE}"
        )
    token: str | None = None
    extra: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "token":
            token = value
        elif key == "job_id":
            raise WindmillUrlError("remove job_id from the URL: headrace sets a deterministic job_id per delivery")
        else:
            extra.append((key, value))
    target = RunTarget(
        base_url=f"{parts.scheme}://{parts.netloc}{match.group('prefix')}/api",
        workspace=match.group("ws"),
        mode="async" if match.group("mode") == "run" else "wait",
        kind="script" if match.group("kind") == "p" else "flow",
        path=path,
        extra_query=tuple(extra),
    )
    return target, token
