"""[destinations.NAME]: a Windmill script or flow, the events it receives, and how they are delivered
(retries, timeout, concurrency, transformation, schema check)."""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from headrace.config.limits import (
    CONCURRENCY_LIMITS,
    RETRY_STEP_LIMITS,
    TIMEOUT_LIMITS,
    Duration,
    _count_within,
    _Strict,
    _within,
)
from headrace.config.secret import Secret
from headrace.durations import parse_duration
from headrace.models import target_key
from headrace.windmill.urls import RunTarget, WindmillUrlError, parse_run_url

DEFAULT_RETRY_SCHEDULE = ("5s", "5m", "30m", "2h", "5h", "10h", "10h")
DEFAULT_PAYLOAD_LIMIT = 1_048_576  # as large as the default ingest body limit
_EVENT_PATTERN = re.compile(r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$")


class DestinationSettings(_Strict):
    source: str = Field(description="Name of the [sources.NAME] whose events this destination receives.")
    events: tuple[str, ...] = Field(
        description='Event types to deliver: exact names ("payment.succeeded"), "prefix.*", or "*".'
    )
    url: str = Field(
        description="The Windmill webhook URL as copied from Windmill (a ?token= in it is used; of the other query "
        "parameters only tag, timeout and cache_ttl are allowed)."
    )
    token: Secret | None = Field(None, description="Windmill token (env:NAME), unless the URL carries ?token=.")
    transform: str | None = Field(
        None,
        description='JavaScript transformation: "builtin:NAME" or a .js file path; omitted = Dodo body as is.',
    )
    retry_schedule: tuple[Duration, ...] = Field(
        DEFAULT_RETRY_SCHEDULE,
        description="Delays between attempts after transient failures; then failed. 1 to 50 steps, each 10ms to 7d.",
    )
    schema_mode: Literal["enforce", "warn", "off"] = Field(
        "enforce",
        alias="schema",
        description="Check payloads against the target's input schema before sending: enforce (a mismatch "
        "is a failed, replayable delivery), warn (send, note the mismatch) or off.",
    )
    retry_on_job_failure: int = Field(
        0,
        ge=0,
        le=10,
        description="Re-run a job that Windmill reports failed, under a new job id, at most this many times.",
    )
    job_results: bool = Field(
        False,
        description="Also read each successful job's result, for its excerpt in `events` and the console: one "
        "more Windmill request per job. false (default): a success's outcome and duration come from the batched "
        "job list alone (the job is one click away in Windmill); a failure's error is always read.",
    )
    enabled: bool = Field(True, description="Disabled destinations get no new deliveries.")
    concurrency: int = Field(8, description="Most requests in flight to this destination at once (1 to 256).")
    timeout: Duration = Field(
        "30s", description="How long one request to Windmill may take before it is retried (1s to 1h)."
    )
    payload_limit: int = Field(
        DEFAULT_PAYLOAD_LIMIT,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest transformed payload in bytes; a transformation returning more fails the delivery.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, populate_by_name=True)

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('subscribe to at least one event type, e.g. events = ["payment.*"]')
        for pattern in value:
            if not _EVENT_PATTERN.match(pattern):
                raise ValueError(f'{pattern!r}: write an event type ("payment.succeeded"), "payment.*" or "*"')
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if "@" in urlsplit(value.strip()).netloc:
            # Shown in the API and the console and not a way to authenticate to Windmill: refused, never echoed.
            raise ValueError(
                "has a user name or password before the host (https://USER:PASSWORD@HOST/...): Windmill does not "
                'use them and they would be shown wherever the URL is; remove them and set token = "env:…"'
            )
        try:
            parse_run_url(value)
        except WindmillUrlError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError(
                "is empty, so a delivery would fail at its first transient error (a timeout, a 502); "
                'give at least one delay, e.g. ["5s", "5m", "30m"], or leave the key out for the default'
            )
        if len(value) > 50:
            raise ValueError(f"has {len(value)} steps; at most 50")
        for index, step in enumerate(value):
            try:
                _within(step, RETRY_STEP_LIMITS, "the delay before the next attempt")
            except ValueError as exc:
                raise ValueError(f"step {index + 1}: {exc}") from None
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return _within(value, TIMEOUT_LIMITS, "how long one request to Windmill may take; default 30s")

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        return _count_within(value, CONCURRENCY_LIMITS, "requests at once (default 8)")

    @model_validator(mode="after")
    def _needs_token(self) -> DestinationSettings:
        if self.token is None and parse_run_url(self.url)[1] is None:
            raise ValueError('no Windmill token: add token = "env:WINDMILL_TOKEN" or a ?token= in the url')
        return self

    # Derived views used by the rest of the code, computed once (the worker reads them per delivery).
    @cached_property
    def target(self) -> RunTarget:
        return parse_run_url(self.url)[0]

    @cached_property
    def job_target(self) -> str:
        """Where this destination's jobs are created (base URL and workspace), as job ids see it."""
        return target_key(self.target.base_url, self.target.workspace)

    @cached_property
    def bearer(self) -> Secret:
        token = self.token if self.token is not None else parse_run_url(self.url)[1]
        return token if isinstance(token, Secret) else Secret(token or "")

    @cached_property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(parse_duration(step) for step in self.retry_schedule)

    @cached_property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)

    def matches(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.events)
