# extra_requirements:
# wmill

# Send an SMS with Twilio's REST API (POST /2010-04-01/Accounts/{sid}/Messages.json, basic auth).
# Resource `twilio`: account_sid, auth_token, from_number (E.164) and optional base_url
# (default https://api.twilio.com).
import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TypedDict


class twilio(TypedDict):
    account_sid: str
    auth_token: str
    from_number: str


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


def main(to: str, body: str, twilio: twilio = "$res:f/dodo/twilio"):
    to, body = unguard(to), unguard(body)
    twilio = resolve_resource(twilio)
    if not to.startswith("+"):
        raise ValueError(f"'to' must be an E.164 phone number like +14155550123 (got {to!r})")
    base = (twilio.get("base_url") or "https://api.twilio.com").rstrip("/")
    sid = twilio["account_sid"]
    auth = base64.b64encode(f"{sid}:{twilio['auth_token']}".encode()).decode()
    answer = request_json(
        "POST",
        f"{base}/2010-04-01/Accounts/{urllib.parse.quote(sid)}/Messages.json",
        {"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"},
        urllib.parse.urlencode({"To": to, "From": twilio["from_number"], "Body": body[:1600]}).encode(),
        "Twilio Messages",
    )
    return {"sid": answer.get("sid"), "status": answer.get("status"), "to": to}
