"""How Windmill's run routes read their query string into the job's arguments (CONTRACT R1), for the emulator.

`backend/windmill-api/src/args.rs` (v1.721.0):

- `RequestQuery { raw: Option<bool>, wrap_body: Option<bool>, include_header, include_query }` is read with
  `Query::try_from_uri(uri).unwrap()` (`:423`): `raw` or `wrap_body` with a value that is not `true`/`false`
  (`raw=1`) panics, and the panic layer (`windmill-api/src/lib.rs:1041-1047`) answers 500
  `Internal Server Error` on every request;
- `raw=true` adds the body text as the argument `raw_string` (`:643-653`);
- `wrap_body=true` makes an object body the single argument `body` (`:351-353`);
- `include_header=a,b` copies those request headers into the arguments, named lower case with `-` as `_`
  (`:539-566`): `include_header=authorization` puts the caller's bearer token into the job;
- `include_query=a,b` copies those query parameters into the arguments (`:572-604`);
- these extra arguments win over the body's keys of the same name (`windmill-queue/src/jobs.rs` PushArgsOwned);
- `queue_limit` is read only by `run_wait_result`: on `jobs/run` it does nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

PANIC = "Internal Server Error"
_BOOLS = {"true": True, "false": False}


def with_query(request: web.Request, raw: bytes, args: dict[str, Any] | web.Response) -> dict[str, Any] | web.Response:
    """The job's arguments once the run route's query is applied to `args` (the body's, or its refusal)."""
    flags: dict[str, bool] = {}
    for name in ("raw", "wrap_body"):
        if name in request.query:
            value = _BOOLS.get(request.query[name])
            if value is None:  # serde cannot read it as a bool: the extractor unwraps, the handler panics
                return web.Response(status=500, text=PANIC)
            flags[name] = value
    if isinstance(args, web.Response):
        return args
    if flags.get("wrap_body") and raw[:1] == b"{":
        args = {"body": args}
    extra: dict[str, Any] = {}
    for name in _listed(request.query.get("include_header")):
        if name in request.headers:
            extra[name.lower().replace("-", "_")] = request.headers[name]
    for name in _listed(request.query.get("include_query")):
        if name in request.query:
            extra[name] = request.query[name]
    if flags.get("raw"):
        extra["raw_string"] = raw.decode("utf-8", "replace")
    return {**args, **extra} if extra else args


def _listed(value: str | None) -> list[str]:
    return [name for name in (value or "").split(",") if name]
