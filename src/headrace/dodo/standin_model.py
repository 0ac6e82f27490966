"""The Dodo stand-in's state: API keys, webhook endpoints (with their secrets), objects, faults to inject
and a log of the requests it answered. Plain data and rules; the HTTP side is standin.py."""

from __future__ import annotations

import base64
import copy
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headrace.dodo import samples
from headrace.dodo.kinds import KINDS, kind_for_event, kind_of
from headrace.dodo.standin_shapes import default_record, derived_list_fields, webhook_data

BANNER = "Dodo Payments API stand-in: for tests and demos, NOT Dodo. Webhook endpoints, object lists, emit."
DEFAULT_API_KEY = "dev-dodo-key"
BUSINESS_ID = "bus_0NVqbKHMzA4oWLTQpYkz1"
WEBHOOK_LIST_LIMIT = 250  # Svix's largest `limit`
DEFAULT_WEBHOOK_LIMIT = 50
DEFAULT_PAGE_SIZE = 10  # Dodo's default page_size
MAX_PAGE_SIZE = 100
MAX_ENDPOINTS = 1000
MAX_OBJECTS = 100_000  # per kind
FIELD_LIMITS = {"url": 2048, "description": 1024, "idempotency_key": 256}
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """An id shaped like Dodo's: prefix_ and 21 letters and digits."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(21))


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str) -> datetime:
    """An RFC 3339 time as Dodo takes it in `created_at_gte/lte` (ValueError if it is not one)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class Endpoint:
    id: str
    url: str
    secret: str
    description: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    filter_types: list[str] = field(default_factory=list)
    disabled: bool = False
    rate_limit: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        """WebhookDetails."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "description": self.description,
            "metadata": dict(self.metadata),
            "updated_at": self.updated_at,
            "url": self.url,
            "disabled": self.disabled,
            "filter_types": list(self.filter_types),
            "rate_limit": self.rate_limit,
        }

    def wants(self, event_type: str) -> bool:
        return not self.disabled and (not self.filter_types or event_type in self.filter_types)


@dataclass
class Fault:
    """Answer the next `count` API requests (matching `method`/`path_prefix` when given) with `status`;
    with `after`, do the request first and then answer so (a lost answer: the endpoint was created)."""

    status: int
    count: int = 1
    retry_after: str | None = None
    method: str | None = None
    path_prefix: str = ""
    body: str = '{"code": "FAULT", "message": "injected by the stand-in"}'
    after: bool = False


@dataclass
class Delivery:
    """One webhook the stand-in sent: to which endpoint, and what came back."""

    endpoint_id: str
    url: str
    webhook_id: str
    event_type: str
    status: int | None
    error: str | None = None


class StandinState:
    def __init__(self, api_keys: set[str] | None = None, *, page_number_cap: int | None = None) -> None:
        self.api_keys = set(api_keys or {DEFAULT_API_KEY})
        self.page_number_cap = page_number_cap  # payments refuse a page_number past it, like Dodo's cap
        self.endpoints: dict[str, Endpoint] = {}
        self.idempotency: dict[str, str] = {}  # idempotency_key -> endpoint id
        # Deleted endpoints, kept for the idempotency replay: a key used before answers what it answered then,
        # even once that endpoint is gone (Svix-style stored responses; whether Dodo does is not documented).
        self.deleted: dict[str, Endpoint] = {}
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API request answered
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()

    # ---- the request log -----------------------------------------------------------------------

    def count(self, method: str, path_prefix: str = "/webhooks") -> int:
        """How many `method` requests under `path_prefix` were answered (e.g. POSTs to /webhooks)."""
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if (fault.method is None or fault.method == method) and path.startswith(fault.path_prefix):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ---- webhook endpoints ---------------------------------------------------------------------

    def add_endpoint(
        self,
        url: str,
        *,
        description: str = "",
        filter_types: list[str] | None = None,
        metadata: dict[str, str] | None = None,
        disabled: bool = False,
        rate_limit: int | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Endpoint, bool]:
        """The endpoint created, or the one an earlier request with `idempotency_key` created (and False)."""
        with self.lock:
            if idempotency_key and idempotency_key in self.idempotency:
                replayed = self.idempotency[idempotency_key]
                return self.endpoints.get(replayed) or self.deleted[replayed], False
            if len(self.endpoints) >= MAX_ENDPOINTS:
                raise ValueError(f"at most {MAX_ENDPOINTS} webhook endpoints")
            now = rfc3339(time.time())
            endpoint = Endpoint(
                id=new_id("ep_"),
                url=url,
                secret=new_secret(),
                description=description,
                metadata=dict(metadata or {}),
                filter_types=list(filter_types or []),
                disabled=disabled,
                rate_limit=rate_limit,
                headers=dict(headers or {}),
                created_at=now,
                updated_at=now,
            )
            self.endpoints[endpoint.id] = endpoint
            if idempotency_key:
                self.idempotency[idempotency_key] = endpoint.id
            return endpoint, True

    def rotate_secret(self, endpoint_id: str) -> str:
        """What the dashboard's "rotate" does (there is no API for it): a new secret for the endpoint."""
        with self.lock:
            endpoint = self.endpoints[endpoint_id]
            endpoint.secret = new_secret()
            return endpoint.secret

    # ---- objects -------------------------------------------------------------------------------

    def seed(self, kind: str, fields: dict[str, Any] | None = None, *, event_type: str | None = None) -> dict[str, Any]:
        """Store an object of `kind`: the sample of `event_type` (default: the kind's) with `fields` over it,
        a fresh id and `created_at` now unless `fields` gives them. Returns the stored record (a copy)."""
        spec = kind_of(kind)
        if event_type is not None and kind_for_event(event_type) is not spec:
            raise ValueError(f"{event_type!r} is not an event about {kind} (those start with {spec.event_prefix})")
        record = default_record(kind, event_type)
        prefix = str(record[spec.id_field]).split("_", 1)[0] + "_"
        record[spec.id_field] = new_id(prefix)
        record["created_at"] = rfc3339(time.time())
        record.update(copy.deepcopy(fields or {}))
        object_id = record.get(spec.id_field)
        if not isinstance(object_id, str) or not object_id:
            raise ValueError(f"{kind}: {spec.id_field} must be a non-empty string")
        try:
            parse_time(str(record["created_at"]))
        except ValueError:
            raise ValueError(f"{kind}: created_at {record['created_at']!r} is not an RFC 3339 time") from None
        with self.lock:
            table = self.objects[kind]
            if object_id not in table and len(table) >= MAX_OBJECTS:
                raise ValueError(f"{kind}: at most {MAX_OBJECTS} objects")
            payment = self.objects["payments"].get(str(record.get("payment_id")))
            if kind == "disputes" and payment is not None and "customer" not in (fields or {}):
                record["customer"] = copy.deepcopy(payment["customer"])  # GetDispute names the payment's customer
            table[object_id] = record
            return copy.deepcopy(record)

    def update(self, kind: str, object_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change a stored object (e.g. a payment's status), as Dodo's state moves on."""
        with self.lock:
            record = self.objects[kind_of(kind).name][object_id]
            record.update(copy.deepcopy(fields))
            return copy.deepcopy(record)

    def list_window(
        self, kind: str, gte: datetime | None, lte: datetime | None
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Objects of `kind` created in [gte, lte], newest first (as Dodo lists), each with its derived fields."""
        with self.lock:
            chosen = []
            for record in self.objects[kind].values():
                created = parse_time(str(record["created_at"]))
                if (gte is None or created >= gte) and (lte is None or created <= lte):
                    chosen.append((created, record))
            chosen.sort(key=lambda pair: (pair[0], str(pair[1].get(kind_of(kind).id_field))), reverse=True)
            return [(copy.deepcopy(record), derived_list_fields(kind, record, self.objects)) for _, record in chosen]

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.objects[kind].get(object_id)
            return None if record is None else copy.deepcopy(record)

    # ---- events --------------------------------------------------------------------------------

    def event_body(
        self, event_type: str, *, object_id: str | None = None, data: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The webhook body Dodo would send for `event_type`: about the stored object `object_id`, about
        `data` as given, or about a new object made from the sample (stored, so the API can list it)."""
        if event_type not in samples.EVENT_TYPES:
            samples.path(event_type)  # raises ValueError naming the close matches
        sample = samples.load(event_type)
        kind = kind_for_event(event_type)
        if data is not None:
            payload = data
        elif kind is None:
            payload = sample["data"]
        else:
            if object_id is None:
                record = self.seed(kind.name, None, event_type=event_type)
            else:
                found = self.get(kind.name, object_id)
                if found is None:
                    raise LookupError(f"no {kind.name} object {object_id!r} in the stand-in")
                record = found
            payload = webhook_data(kind.name, record, kind.payload_type)
        return {
            "business_id": sample.get("business_id") or BUSINESS_ID,
            "type": event_type,
            "timestamp": rfc3339(time.time()),
            "data": payload,
        }

    def subscribers(self, event_type: str) -> list[Endpoint]:
        with self.lock:
            return [copy.copy(e) for e in self.endpoints.values() if e.wants(event_type)]
