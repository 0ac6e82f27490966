"""A typed `WindmillApi` double for unit tests: answers from a script, records every call. No network.

For behaviour over real HTTP use the emulator (windmill/emulator.py); this fake is for the units that take a
`WindmillApi` (the attempt, the preflight, the tracker) when the test is about their logic, not Windmill's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from headrace.windmill.api import LOOKUP_TIMEOUT, JobPoll, ListedJob, RunResponse, TargetInfo, WindmillApi
from headrace.windmill.urls import RunTarget


@dataclasses.dataclass
class RunCall:
    target: RunTarget
    url: str
    job_id: str
    body: bytes
    method: str
    headers: dict[str, str]


class FakeWindmill:
    """Answers `run` from `answers` (a RunResponse, or an exception to raise), in order; the last one repeats.
    Lookups answer `exists`, `poll`, `info`, `duration`, `completed` and `target_info` (default: a target with
    `schema`)."""

    def __init__(self, *answers: RunResponse | BaseException, schema: dict[str, Any] | None = None) -> None:
        self.answers = list(answers) or [RunResponse(201, "")]
        self.runs: list[RunCall] = []
        self.exists: bool | None = True
        self.schema = schema
        self.poll = JobPoll(200)
        self.info: dict[str, Any] = {}
        self.duration: float | None = None
        self.target_info: TargetInfo | None = None
        self.completed: list[ListedJob] | None = []  # what jobs/completed/list shows (None: it cannot be read)
        self.lists: list[tuple[RunTarget, float, int]] = []  # (target, since, page) of each list asked for
        self.lookups: list[tuple[str, str]] = []  # (url, job id) of job_exists / result_maybe
        self.definitions: list[RunTarget] = []  # targets whose definition was asked for

    async def run(
        self,
        target: RunTarget,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        timeout: float = 30.0,
    ) -> RunResponse:
        job_id = url.rpartition("job_id=")[2]
        self.runs.append(RunCall(target, url, job_id, body, method, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        if answer.status is not None and 200 <= answer.status < 300 and not answer.body:
            return dataclasses.replace(answer, body=job_id)
        return answer

    async def job_exists(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> bool | None:
        self.lookups.append((target.job_url(job_id), job_id))
        return self.exists

    async def result_maybe(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> JobPoll:
        self.lookups.append((target.result_url(job_id), job_id))
        return self.poll

    async def job_info(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> dict[str, Any]:
        return self.info

    async def job_duration(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> float | None:
        return self.duration

    async def completed_jobs(
        self, target: RunTarget, token: str, since: float, page: int, per_page: int, timeout: float = LOOKUP_TIMEOUT
    ) -> list[ListedJob] | None:
        self.lists.append((target, since, page))
        if self.completed is None:
            return None
        return self.completed[(page - 1) * per_page : page * per_page]

    async def get_target(self, target: RunTarget, token: str, timeout: float = LOOKUP_TIMEOUT) -> TargetInfo:
        self.definitions.append(target)
        return self.target_info if self.target_info is not None else TargetInfo(200, schema=self.schema)


def as_api(fake: FakeWindmill) -> WindmillApi:
    """The fake where a `WindmillApi` is expected: mypy holds FakeWindmill to the Protocol here."""
    return fake
