"""What the emulator knows: tokens, deployed targets (with their versions), jobs, resources, variables.

The rules are Windmill's (docs/windmill-contract.md has each with its source):

- job ids are global: one `jobs` table for every workspace (R2); a lookup is filtered by workspace (J1);
- a target is deployed per workspace (or in every workspace, `workspace=None`); a path runs its newest
  version whose lock is built and not failed, whatever its archived or draft state (R3, R4), and
  `scripts/get` shows the newest version whatever its lock state (M1);
- a token may be limited to workspaces, to path prefixes (the user's access) and to scopes (R5);
- a job is readable by the user who created it, an admin, or a user who reads its whole folder; anyone else
  is answered 403 (J2, `require_job_read_access`), and the completed-jobs list leaves the job out (J7);
- an authenticated token is cached per (workspace, token) for `auth_cache_seconds` (120 s) from the moment
  it was checked: `revoke` removes a token, and it keeps working until that entry expires (T1).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

BANNER = "headrace Windmill EMULATOR — a stand-in for tests and demos, not a Windmill server"

Kind = Literal["script", "flow"]
Runner = Callable[
    ..., Any
]  # (args) -> result, or async (args, context) -> result; may return an awaitable (a job that runs a subprocess)

TIMEOUT_WAIT_RESULT = 600.0  # seconds run_wait_result waits before answering 500 and cancelling the job (W2)
FAKE_JOB_TOKEN = "wm-emulated-job-token"  # noqa: S105 - a job's own token: "$WM_TOKEN" (A4), WM_TOKEN in its env


FREE_TIER_CONCURRENT_RUNS = 30  # Windmill Cloud's free tier refuses the 31st concurrent run (R6)
AUTH_CACHE_SECONDS = 120.0  # T1: how long an authenticated token is taken from the cache (auth.rs `AUTH_CACHE`)


@dataclass
class Fault:
    kind: Literal["status", "hang", "drop"]
    count: int = 1
    status: int = 500
    retry_after: str | None = None
    seconds: float = 60.0
    body: str = "emulated failure"

    @classmethod
    def sql_error(cls, count: int = 1) -> Fault:
        """R6: a database error is a 400 too (`Error::SqlErr` maps to BAD_REQUEST), e.g. a pool timeout."""
        text = "SqlErr: error returned from database: pool timed out while waiting for an open connection"
        return cls("status", count, 400, body=text)

    @classmethod
    def quota(cls, count: int = 1) -> Fault:
        """R6: a Windmill Cloud quota (`Error::QuotaExceeded`, BAD_REQUEST)."""
        text = "Quota exceeded: Workspace has reached its maximum of 1000 executions this month on the free tier"
        return cls("status", count, 400, body=text)


@dataclass
class Job:
    id: str
    workspace: str
    kind: Kind
    path: str
    args: dict[str, Any]
    created_at: float
    completed: bool = True
    success: bool = True
    result: Any = None
    started_at: float | None = None
    duration_ms: float | None = None
    canceled: bool = False
    canceled_reason: str | None = None
    canceled_by: str | None = None  # J5: who canceled it
    is_skipped: bool = False  # J4: a flow that stopped early (status skipped: jobs_u/get success, not result_maybe)
    logs: str = ""
    raw_code: str = ""  # J6: the code the job ran (a script's content), in jobs_u/get unless ?no_code=true
    email: str = "admin@windmill.dev"  # the creator's, the token's that ran it (WM_EMAIL; `created_by` is its user)
    may_reference: bool = True  # False when the raw body holds no "$" at all: nothing for A4 to resolve

    @property
    def created_by(self) -> str:
        return self.email.partition("@")[0]


@dataclass
class Target:
    """One deployed version of a script or flow."""

    kind: Kind
    path: str
    runner: Runner | None = None  # computes the job result from the args
    schema: dict[str, Any] | None = None
    archived: bool = False
    draft_only: bool = False
    deleted: bool = False
    delay: float = 0.0  # seconds a job stays `completed: false`
    error: str | None = None  # fail every job with this message
    summary: str = ""
    content: str = ""  # M2: the script's source, as scripts/get shows it (kit scripts: the .py file)
    preprocessor: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # R8: event -> main's arguments
    steps: tuple[str, ...] = ()  # R9: a flow's `type: script` steps, by script path, run in order
    skips: bool = False  # J4: a flow that stops early (skip_if_stopped): its jobs complete as skipped
    workspace: str | None = None  # None: deployed in every workspace
    lock_seconds: float = 0.0  # R3: the lock is still being built for this long after the deploy
    lock_requests: int = 0  # R3: ... or for this many run requests (each one answered 404)
    lock_error: str | None = None  # R3: the lock failed; this version never runs
    deployed_at: float = field(default_factory=time.time)

    def lock_ready(self, now: float) -> bool:
        """`lock IS NOT NULL AND lock_error_logs IS NULL` (R3)."""
        return self.lock_error is None and self.lock_requests <= 0 and now >= self.deployed_at + self.lock_seconds

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.path}@{self.deployed_at!r}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Token:
    """A token with less than full access (R5). None means "no limit" for each of the three."""

    secret: str
    workspaces: frozenset[str] | None = None  # other workspaces: 401
    # Path prefixes the token's user may see; others: 401 "(but it exists)". A prefix covering a whole folder
    # (`f/dodo/`) is a read of that folder; a longer one (`f/dodo/x`) one item shared with the user. None: every
    # path (an admin, as far as the emulator goes).
    paths: tuple[str, ...] | None = None
    scopes: frozenset[str] | None = None  # a route needing a scope the token lacks: 403
    email: str = "user@windmill.dev"  # its user: the email's local part is the username (a job's created_by)

    @property
    def username(self) -> str:
        return self.email.partition("@")[0]

    def sees(self, path: str) -> bool:
        return self.paths is None or any(path.startswith(prefix) for prefix in self.paths)

    def reads_job(self, created_by: str, path: str) -> bool:
        """J2: whether Windmill shows this token's user a job (`require_job_read_access`, backend/windmill-api/
        src/jobs.rs:969-1104): a job its user created (`created_by`); else what row-level security shows
        (migrations/20250201124431_v2_job.up.sql): everything to an admin, a job that ran as the user
        (`permissioned_as = u/{user}`, the creator in the emulator), one under `u/{user}/`, or one in a folder the
        user reads (`f/{folder}/`, the whole folder: an item shared alone is not enough). No scope limits it: a
        `jobs:run:scripts:{path}` token reads any job it may see. (Groups, share links and `if_jobs:filter_tags:`
        scopes are not modelled.)"""
        if self.paths is None or created_by == self.username:
            return True
        space, _, rest = path.partition("/")
        owner = rest.partition("/")[0]
        if space == "u":
            return owner == self.username
        folder = f"f/{owner}/"
        return space == "f" and any(folder.startswith(prefix) for prefix in self.paths)


@dataclass
class EmulatorState:
    tokens: set[str] = field(default_factory=lambda: {"test-token"})  # full access to every workspace
    any_path: bool = False  # accept any path: an unknown one is deployed on first use, with no schema
    targets: dict[tuple[str | None, Kind, str], list[Target]] = field(default_factory=dict)
    limited_tokens: dict[str, Token] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # path -> value, for "$res:PATH"
    variables: dict[str, str] = field(default_factory=dict)  # path -> value, for "$var:PATH" / "$jsonvar:PATH"
    jobs: dict[str, Job] = field(default_factory=dict)  # global across workspaces (R2)
    faults: deque[Fault] = field(default_factory=deque)
    background: set[asyncio.Future[None]] = field(default_factory=set)
    running: dict[str, asyncio.Future[None]] = field(default_factory=dict)  # job id -> its execution
    wait_timeout: float = TIMEOUT_WAIT_RESULT
    clock_offset: float = 0.0  # seconds Windmill's clock runs ahead of (negative: behind) this host's
    concurrent_limit: int | None = None  # R6: runs at once per workspace (FREE_TIER_CONCURRENT_RUNS); None: none
    auth_cache_seconds: float = AUTH_CACHE_SECONDS  # T1: a revoked token keeps working this long at most
    auth_cache: dict[tuple[str, str], tuple[Token, float]] = field(default_factory=dict)  # (workspace, secret) ->
    # (the token as it was authenticated, when the entry expires by `now()`)
    calls: dict[str, int] = field(default_factory=dict)  # Windmill route name -> requests answered
    requests: int = 0
    duplicate_rejections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_target(self, kind: Kind, path: str, runner: Runner | None = None, **options: Any) -> Target:
        """Deploy a new version of `path` (in `workspace=`, or every workspace); older versions stay."""
        target = Target(kind, path, runner, **options)
        if kind == "flow" and (target.lock_seconds or target.lock_requests or target.lock_error):
            raise ValueError("a flow runs by path without waiting for a lock: lock_* options are for scripts (R3)")
        if kind == "script" and (target.steps or target.skips):
            raise ValueError("steps and skips are for flows (R9, J4)")
        self.targets.setdefault((target.workspace, kind, path), []).append(target)
        return target

    def add_token(self, token: Token) -> Token:
        """Add a limited token, or change one: a token whose scopes change is dropped from the auth cache at once
        (Windmill's `token_scopes_update_trigger`, migrations/20260428122300, T1)."""
        self.limited_tokens[token.secret] = token
        self.forget(token.secret)
        return token

    def revoke(self, secret: str) -> None:
        """Delete a token as `users/tokens/delete` does: its cached entries stay until they expire (T1), so it
        keeps working for up to `auth_cache_seconds` after it was last checked. (Windmill drops them at once
        only for a login session's token, label `session`: migrations/20250604181226.)"""
        self.tokens.discard(secret)
        self.limited_tokens.pop(secret, None)

    def forget(self, secret: str) -> None:
        """Drop a token's cache entries in every workspace (auth.rs `invalidate_token_from_cache`)."""
        with self.lock:
            for key in [key for key in self.auth_cache if key[1] == secret]:
                del self.auth_cache[key]

    def token(self, secret: str | None) -> Token | None:
        """The token as the database has it now (no cache): None when it is unknown or revoked."""
        if secret is None:
            return None
        if secret in self.tokens or secret == FAKE_JOB_TOKEN:  # a job's token acts with its creator's rights
            return Token(secret, email="admin@windmill.dev")
        return self.limited_tokens.get(secret)

    def cached(self, workspace: str, secret: str) -> Token | None:
        """T1 (auth.rs `get_opt_job_authed`): the token as authenticated when its (workspace, token) entry was
        taken, while the entry has not expired; a hit does not extend it."""
        entry = self.auth_cache.get((workspace, secret))
        if entry is None or entry[1] <= self.now():
            return None
        return entry[0]

    def remember(self, workspace: str, token: Token) -> None:
        """T1 (auth.rs:451-457): a token the database accepted is cached for `auth_cache_seconds`; a refusal is not."""
        with self.lock:
            self.auth_cache[(workspace, token.secret)] = (token, self.now() + self.auth_cache_seconds)

    def versions(self, workspace: str, kind: Kind, path: str) -> list[Target]:
        """Every version of `path` deployed in `workspace`, oldest first (workspace-wide ones count)."""
        return self.targets.get((workspace, kind, path)) or self.targets.get((None, kind, path)) or []

    def newest(self, workspace: str, kind: Kind, path: str) -> Target | None:
        """What `scripts/get` and `flows/get` show: the newest version whatever its lock (M1)."""
        if self.any_path and not self.versions(workspace, kind, path):
            self.add_target(kind, path, workspace=workspace)
        versions = self.versions(workspace, kind, path)
        return versions[-1] if versions else None

    def runnable(self, workspace: str, kind: Kind, path: str) -> Target | None:
        """What a run by path executes: the newest not-deleted version whose lock is built (R3); archived
        and draft-only versions run (R4). A run request counts down a version's `lock_requests`."""
        newest = self.newest(workspace, kind, path)
        if newest is None:
            return None
        now = time.time()
        with self.lock:
            for version in reversed(self.versions(workspace, kind, path)):
                if version.lock_error is None and version.lock_requests > 0:
                    version.lock_requests -= 1
                    continue
                if not version.deleted and version.lock_ready(now):
                    return version
        return None

    def locked(self, workspace: str, path: str) -> bool:
        """Whether a script has a version a flow step can run: not deleted, lock built (R9). Unlike `runnable`,
        it does not count down `lock_requests`."""
        now = time.time()
        return any(not v.deleted and v.lock_ready(now) for v in self.versions(workspace, "script", path))

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def next_fault(self) -> Fault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.count -= 1
            if fault.count <= 0:
                self.faults.popleft()
            return fault

    def now(self) -> float:
        """Windmill's clock: what its jobs' created_at, started_at and the list's time filters read."""
        return time.time() + self.clock_offset

    def busy(self, workspace: str) -> int:
        """Jobs of `workspace` not completed yet (what the concurrency quota counts, R6)."""
        return sum(1 for job in self.jobs.values() if job.workspace == workspace and not job.completed)

    def job_in(self, workspace: str, job_id: str) -> Job | None:
        """A job as `jobs_u/...` sees it: only in the workspace it was created in (J1)."""
        job = self.jobs.get(job_id)
        return job if job is not None and job.workspace == workspace else None


class JobFailed(Exception):
    """Raised by a runner with Windmill's error object for the job ({"name", "message", "stack"})."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message", "")))
        self.error = error
