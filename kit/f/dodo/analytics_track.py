# extra_requirements:
# wmill

# Send an analytics `track` call to Segment's HTTP Tracking API (POST /v1/track, basic auth with the
# write key). message_id makes Segment drop duplicates: pass the Dodo webhook id. Resource `segment`:
# write_key and optional base_url (default https://api.segment.io).
import base64
import json
import urllib.error
import urllib.request
from typing import TypedDict


class segment(TypedDict):
    write_key: str


def resolve_resource(value):
    # Windmill passes the resource's value. When the caller (a headrace delivery) sent no value, the
    # default "$res:<path>" arrives as a plain string; fetch that resource here.
    if isinstance(value, str) and value.startswith("$res:"):
        import wmill

        return wmill.get_resource(value.removeprefix("$res:"))
    return value


def request_json(method: str, url: str, headers: dict, body: bytes, what: str) -> dict:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        detail = error.read()[:500].decode("utf-8", "replace")
        raise RuntimeError(f"{what} answered HTTP {error.code}: {detail}") from None
    return json.loads(raw) if raw.strip() else {}


GUARD = "\u2060"


def unguard(value):
    # headrace puts one invisible U+2060 in front of every Dodo text that starts with "$" (or with U+2060),
    # so Windmill never resolves a customer's text as a $var:/$res:/$WM_TOKEN reference. Take one off to
    # get the exact text back, at any depth of a dict or list (kit/README.md, "Text that starts with $").
    if isinstance(value, str):
        return value[1:] if value.startswith(GUARD) else value
    if isinstance(value, dict):
        return {key: unguard(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unguard(item) for item in value]
    return value


def main(
    user_id: str,
    event: str,
    properties: dict,
    timestamp: str,
    message_id: str,
    segment: segment = "$res:f/dodo/segment",
):
    user_id, properties = unguard(user_id), unguard(properties)
    segment = resolve_resource(segment)
    base = (segment.get("base_url") or "https://api.segment.io").rstrip("/")
    auth = base64.b64encode(f"{segment['write_key']}:".encode()).decode()
    call = {
        "userId": user_id,
        "event": event,
        "properties": properties or {},
        "timestamp": timestamp,
        "messageId": message_id,
        "context": {"library": {"name": "headrace-windmill-kit", "version": "1"}},
    }
    request_json(
        "POST",
        f"{base}/v1/track",
        {"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        json.dumps(call).encode(),
        "Segment track",
    )
    return {"tracked": True, "event": event, "message_id": message_id}
