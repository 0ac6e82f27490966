# extra_requirements:
# wmill

# Post a message to a Slack channel with the Web API (chat.postMessage) and the token of a Windmill
# `slack` resource. Optional resource key `base_url` (default https://slack.com/api) for proxies/tests.
import json
import urllib.error
import urllib.request
from typing import TypedDict


class slack(TypedDict):
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


def main(channel: str, text: str, blocks: list | None = None, slack: slack = "$res:f/dodo/slack"):
    text, blocks = unguard(text), unguard(blocks)
    slack = resolve_resource(slack)
    base = (slack.get("base_url") or "https://slack.com/api").rstrip("/")
    message = {"channel": channel, "text": text}
    if blocks:
        message["blocks"] = blocks
    answer = request_json(
        "POST",
        f"{base}/chat.postMessage",
        {"Authorization": f"Bearer {slack['token']}", "Content-Type": "application/json; charset=utf-8"},
        json.dumps(message).encode(),
        "Slack chat.postMessage",
    )
    if not answer.get("ok"):
        raise RuntimeError(f"Slack refused the message to {channel}: {answer.get('error', answer)}")
    return {"ok": True, "channel": answer.get("channel"), "ts": answer.get("ts")}
