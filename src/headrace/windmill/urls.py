"""Windmill run URLs: the webhook URL a user copies from Windmill, parsed into its parts.

Accepted shapes (the path prefix before `/api` may be empty or a sub-path for reverse proxies):

    https://HOST/api/w/{workspace}/jobs/run/p/{script_path}
    https://HOST/api/w/{workspace}/jobs/run/f/{flow_path}
    https://HOST/api/w/{workspace}/jobs/run_wait_result/p/{script_path}
    https://HOST/api/w/{workspace}/jobs/run_wait_result/f/{flow_path}

with an optional `?token=...`, which is taken out of the URL and used as the bearer token.

Every path segment must be plain (`[A-Za-z0-9_.~-]`, not `.` or `..`, not empty): no percent-encoding, no
dot segments, so the URL headrace sends is the URL it checked, whatever a proxy in front of Windmill
normalises. The query may carry only the parameters in QUERY_KEPT (CONTRACT R1: others change the job's
arguments, break every run, or do nothing); `job_id` is headrace's own (one per delivery).

The API routes themselves (`Route`: a template with named parts) are defined once here: the client
builds its URLs from them and the emulator registers its handlers on them, so the two cannot drift.
"""

from __future__ import annotations

import functools
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
_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]+")

# Query parameters a destination URL may carry, sent with every run: Windmill run options that neither
# change the job's arguments nor link it to other jobs (`backend/windmill-api-jobs/src/types.rs` RunJobQuery).
QUERY_KEPT = frozenset({"tag", "timeout", "cache_ttl"})
# Why the others are refused: the ones a pasted URL is known to carry, each with its reason (CONTRACT R1).
QUERY_REFUSED = {
    "job_id": "headrace sets a deterministic job_id per delivery",
    "raw": "Windmill answers 500 to every run with it (raw=1 is not a boolean: its handler panics), and "
    "raw=true adds the body text as an argument",
    "wrap_body": "it wraps the whole body into one argument `body`, so main(...) gets none of its arguments",
    "include_header": "it copies request headers into the job's arguments (include_header=authorization puts "
    "the bearer token there)",
    "include_query": "it copies query parameters into the job's arguments",
    "queue_limit": "it does nothing on jobs/run (only run_wait_result reads it) and headrace never waits",
    "payload": "it replaces the job's arguments with its own",
    "skip_preprocessor": "it changes which function receives the arguments",
    "parent_job": "it links the job to another job",
    "root_job": "it links the job to another job",
    "invisible_to_owner": "it hides the job from its owner",
    "scheduled_for": "headrace delivers now and follows the job; a scheduled job looks stuck",
    "scheduled_in_secs": "headrace delivers now and follows the job; a scheduled job looks stuck",
}


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
COMPLETED_LIST = Route("completed_list", "/w/{workspace}/jobs/completed/list")  # J7
SCRIPT = Route("script", "/w/{workspace}/scripts/get/p/{path}")
FLOW = Route("flow", "/w/{workspace}/flows/get/{path}")
RESOURCE_VALUE = Route("resource_value", "/w/{workspace}/resources/get_value_interpolated/{path}")
VARIABLE_VALUE = Route("variable_value", "/w/{workspace}/variables/get_value/{path}")
ROUTES = (RUN, JOB, RESULT_MAYBE, SCRIPT, FLOW, RESOURCE_VALUE, VARIABLE_VALUE, TIMING, COMPLETED_LIST)

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
    def normalised_base(self) -> str:
        """`base_url` as compared: scheme and host in lower case, the scheme's default port left out (the job
        ids keep `base_url` as configured, so they do not change)."""
        parts = urlsplit(self.base_url)
        scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
        host = f"[{host}]" if ":" in host else host
        origin = (
            f"{scheme}://{host}" if port in (None, 443 if scheme == "https" else 80) else f"{scheme}://{host}:{port}"
        )
        return origin + parts.path

    @functools.cached_property
    def run_url(self) -> str:
        """Built once per target (every delivery asks for it)."""
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
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - a port that is not a number raises here, not later
    except ValueError as exc:
        raise WindmillUrlError(f"not a URL ({exc}); expected {EXPECTED_SHAPE}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise WindmillUrlError(f"a Windmill URL must start with https:// and name a host; expected {EXPECTED_SHAPE}")
    if parts.username is not None or parts.password is not None:
        raise WindmillUrlError(
            "remove the user name and password (user:password@) from the URL: Windmill takes a token, given as "
            'token = "env:WINDMILL_TOKEN" or ?token='
        )
    path = parts.path.rstrip("/")
    for segment in path.split("/")[1:]:
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise WindmillUrlError(
                f"the URL's path has the segment {segment[:40]!r}: a Windmill run URL has no empty, `.` or `..` "
                "segments and no percent-encoding or other characters outside A-Z a-z 0-9 _ . ~ - (a proxy would "
                f"read it as another path); expected {EXPECTED_SHAPE}"
            )
    match = _PATH.match(path)
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
        elif key in QUERY_KEPT:
            extra.append((key, value))
        else:
            why = QUERY_REFUSED.get(key, "Windmill's run URL does not need it")
            kept = ", ".join(sorted(QUERY_KEPT))
            raise WindmillUrlError(f"remove {key[:40]} from the URL: {why} (a run URL may carry token, {kept})")
    target = RunTarget(
        base_url=f"{parts.scheme}://{parts.netloc}{match.group('prefix')}/api",
        workspace=match.group("ws"),
        mode="async" if match.group("mode") == "run" else "wait",
        kind="script" if match.group("kind") == "p" else "flow",
        path=path,
        extra_query=tuple(extra),
    )
    return target, token
