"""The "try a transformation" service: what the console's Try page and `POST /api/v1/preview` (and
`/api/v1/test-deliveries`) both call, so both read a request, refuse it and look an event up the same way.

A request is a JSON object (the API's body, or the console's form as a dict): `destination` (a configured
name), optionally `script` (JavaScript that replaces the destination's own), and one input: `event_id` (a stored
event id, as a string or as the integer ingest answered, or a webhook-id) or `event_type` (a bundled sample)
with an optional `variant`. A refusal is a `Refused` with a kind (`bad_body`, `not_found`, `too_large`) and a
message; the HTTP status of each kind is the front door's (access.STATUS_OF), not this module's.

Limits: a script of at most MAX_SCRIPT bytes (UTF-8), a request body of at most MAX_REQUEST bytes, an event key
of at most MAX_KEY characters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from headrace.config import DestinationSettings, Settings
from headrace.deliver import preview as trying
from headrace.deliver import testsend
from headrace.deliver.attempt import Attempter
from headrace.deliver.preflight import SchemaCache
from headrace.deliver.tracker import JobTracker
from headrace.dodo import samples
from headrace.models import ID_MAX, TestDelivery, no_event
from headrace.observe.metrics import Metrics
from headrace.store.core import Store
from headrace.transform import Sandbox, Script
from headrace.windmill.api import WindmillApi

log = logging.getLogger("headrace.previews")

MAX_SCRIPT = 64 * 1024  # bytes of JavaScript (UTF-8)
MAX_REQUEST = 512 * 1024  # bytes of the preview request body (a 64 KiB script escaped in JSON fits)
MAX_KEY = 200  # characters of an event id or webhook-id
FIELDS = ("destination", "script", "event_id", "event_type", "variant")
EXAMPLE = '{"destination": "payments", "event_type": "payment.succeeded"}'

RefusalKind = Literal["bad_body", "not_found", "too_large"]


class Refused(ValueError):
    """A try that cannot be answered: `kind` says why (malformed, unknown name, too big), the message what to do."""

    def __init__(self, kind: RefusalKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PreviewSpec:
    destination: str
    script: str | None = None  # None: the destination's own transformation
    event_id: str | None = None
    event_type: str | None = None
    variant: str | None = None


def check_size(size: int, what: str) -> None:
    """Refuse a request body (`what`: "the request body", "the form") past MAX_REQUEST bytes."""
    if size > MAX_REQUEST:
        raise Refused("too_large", f"{what} is {size:,} bytes; the limit is {MAX_REQUEST:,}")


def _event_id(value: Any) -> Any:
    """An integer event id (what ingest and the API answer) as the text the store looks up; anything else as is.
    A JSON number with no fraction (`12.0`) is an integer, as JSON Schema (and so the API document) reads it."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= ID_MAX:
            raise Refused("bad_body", f"event_id: an event id is from 0 to {ID_MAX}")
        return str(value)
    return value


def parse_spec(data: Any, destinations: Mapping[str, DestinationSettings]) -> PreviewSpec:
    """Check a try request (a decoded JSON object, or the console's form); Refused says what is wrong."""
    if not isinstance(data, Mapping):
        raise Refused("bad_body", f"send a JSON object, e.g. {EXAMPLE}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise Refused("bad_body", f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(sorted(FIELDS))}")
    data = {**data, "event_id": _event_id(data.get("event_id"))}
    for name in FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise Refused("bad_body", f"{name}: a string, got {type(value).__name__}")
    destination = data.get("destination")
    if not destination:
        raise Refused("bad_body", f"destination: required, one of {', '.join(destinations) or '(none)'}")
    if destination not in destinations:
        raise Refused("not_found", f"no destination {destination!r}; configured: {', '.join(destinations) or '(none)'}")
    script = data.get("script")
    if script is not None:
        size = len(script.encode("utf-8", "surrogatepass"))
        if size > MAX_SCRIPT:
            raise Refused(
                "too_large", f"script: {size:,} bytes; the limit is {MAX_SCRIPT:,}. A transformation reshapes "
                "one event: keep it short, or move the logic into the Windmill script.",
            )  # fmt: skip
        if not script.strip():
            raise Refused("bad_body", "script: empty; leave it out to use the destination's transformation")
    event_id, event_type, variant = data.get("event_id") or None, data.get("event_type") or None, data.get("variant")
    if (event_id is None) == (event_type is None):
        raise Refused("bad_body", "give one of event_id (a stored event id or webhook-id) or event_type")
    if variant and event_type is None:
        raise Refused("bad_body", "variant: goes with event_type (variants belong to the bundled samples)")
    if event_id is not None and len(event_id) > MAX_KEY:
        raise Refused("bad_body", f"event_id: at most {MAX_KEY} characters")
    if event_type is not None:
        try:
            samples.load(event_type, variant or None)
        except ValueError as exc:
            raise Refused("not_found", f"{'variant' if variant else 'event_type'}: {exc}") from None
    return PreviewSpec(destination, script, event_id, event_type, variant or None)


class Previews:
    """The service: the worker's own pieces (build_request, Attempter, JobTracker's reading of Windmill) on
    the running settings, given by app.py."""

    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        client: WindmillApi,
        sandbox: Callable[[], Sandbox],
        script_of: Callable[[str], Script | None],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.settings = settings
        self.client = client
        self.sandbox = sandbox  # where user scripts run (the worker's sandbox when this process has one)
        self.script_of = script_of  # a destination's transformation as deliveries run it now
        self.clock = clock
        self.schemas = SchemaCache(client)
        # Tests are not deliveries: their attempts are counted in a Metrics of their own, never exported.
        self.attempter = Attempter(client, self.schemas, Metrics(clock, settings()), clock=clock)

    async def preview(self, data: Any) -> dict[str, Any]:
        """What a delivery would send for this request (nothing is sent); Refused when it cannot be answered."""
        spec = parse_spec(data, self.settings().destinations)
        dest, script, given = await self._prepare(spec)
        return await trying.preview(dest, script, given, self._sandbox_for(script), self.schemas)

    async def send_test(self, data: Any) -> TestDelivery:
        """Send the previewed request once as a test delivery (deliver/testsend.py); Refused when it cannot be."""
        spec = parse_spec(data, self.settings().destinations)
        dest, script, given = await self._prepare(spec)
        test = await testsend.send_test(
            self.attempter, self.store, spec.destination, dest, script, self._sandbox_for(script), given, self.clock()
        )
        log.info(
            "test delivery sent",
            extra={"destination": spec.destination, "job_id": test.job_id, "outcome": test.outcome},
        )
        return test

    async def test(self, test_id: int) -> TestDelivery | None:
        """One test delivery, after a look at its job if it is still open."""
        found = await self.store.get_test_delivery(test_id)
        if found is None:
            return None
        tracker = JobTracker(self.store, self.settings(), self.client, clock=self.clock)
        return await testsend.look(tracker, self.store, found, self.clock())

    async def tests(self, event_id: int | None = None, limit: int = 20) -> list[TestDelivery]:
        return await self.store.list_test_deliveries(event_id, limit)

    async def _prepare(self, spec: PreviewSpec) -> tuple[DestinationSettings, Script | None, trying.Input]:
        dest = self.settings().destinations[spec.destination]
        script = trying.script_for(spec.script, self.script_of(spec.destination))
        return dest, script, await self._input(spec)

    async def _input(self, spec: PreviewSpec) -> trying.Input:
        if spec.event_type is not None:
            return trying.sample_input(spec.event_type, spec.variant)
        assert spec.event_id is not None
        event = await self.store.get_event(spec.event_id)
        if event is None or event.body is None:
            raise Refused("not_found", no_event(spec.event_id))
        label = f"event {event.id} ({event.webhook_id})"
        return trying.Input(event.event_type, event.body, event.webhook_id, event.id, event.source, label)

    def _sandbox_for(self, script: Script | None) -> Sandbox | None:
        return None if script is None else self.sandbox()
