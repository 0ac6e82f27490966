# extra_requirements:
# wmill

# Create or update a HubSpot contact by email (CRM v3 batch upsert with idProperty=email), with a
# private-app token from a Windmill `hubspot` resource. Optional resource key `base_url`
# (default https://api.hubapi.com).
import json
import urllib.error
import urllib.request
from typing import TypedDict


class hubspot(TypedDict):
    token: str


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
    email: str,
    name: str | None = None,
    phone: str | None = None,
    properties: dict | None = None,
    hubspot: hubspot = "$res:f/dodo/hubspot",
):
    email, name, phone, properties = unguard(email), unguard(name), unguard(phone), unguard(properties)
    hubspot = resolve_resource(hubspot)
    if not email or "@" not in email:
        raise ValueError(f"a contact needs an email address (got {email!r})")
    props = {"email": email}
    if name:
        first, _, last = name.strip().partition(" ")
        props["firstname"] = first
        if last:
            props["lastname"] = last
    if phone:
        props["phone"] = phone
    props.update({k: "" if v is None else str(v) for k, v in (properties or {}).items()})
    base = (hubspot.get("base_url") or "https://api.hubapi.com").rstrip("/")
    answer = request_json(
        "POST",
        f"{base}/crm/v3/objects/contacts/batch/upsert",
        {"Authorization": f"Bearer {hubspot['token']}", "Content-Type": "application/json"},
        json.dumps({"inputs": [{"idProperty": "email", "id": email, "properties": props}]}).encode(),
        "HubSpot contacts upsert",
    )
    results = answer.get("results") or [{}]
    return {"id": results[0].get("id"), "new": results[0].get("new"), "email": email}
