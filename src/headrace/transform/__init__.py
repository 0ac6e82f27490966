"""Transformation stage: run a destination's JavaScript `handler(webhook)` in a sandbox.

The contract other stages rely on (the sandbox module is the only one that touches the JS engine):

- `WebhookObject` is what the handler sees and returns (Svix/Dodo semantics).
- `await Sandbox.transform(script, webhook)` returns the transformed `WebhookObject` or raises `TransformError`.
  The pipeline (worker, `check`, `transform`) only ever awaits it, so an implementation may run the handler
  off the event loop (another thread or process) without changing a caller.
- `await Sandbox.close()` ends it (the process pool kills and reaps its workers).
- `load_script(spec, base_dir)` turns `builtin:NAME` or a `.js` path into a `Script`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class WebhookObject:
    event_type: str
    payload: Any
    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    cancel: bool = False
    # The Dodo `webhook-id`; the handler sees it as the read-only `webhook.webhookId` (a headrace extra,
    # so templates can pass an idempotency key on). Not part of `to_json`, which is the Svix shape.
    webhook_id: str = ""
    # Where the event came from: "dodo" (a webhook received) or "reconcile" (synthesized by `headrace
    # reconcile` from Dodo's API); the handler sees it as the read-only `webhook.origin` (a headrace extra).
    origin: str = "dodo"
    # A fresh secret per run: `windmill.reference(text)` in the sandbox puts it in front of `text`, and only a
    # string that carries it comes back as an intended reference (references.Reference). Text from Dodo
    # cannot carry it: it was written before the secret existed.
    reference_mark: str = field(default_factory=lambda: os.urandom(16).hex(), compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "eventType": self.event_type,
            "payload": self.payload,
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "cancel": self.cancel,
        }


@dataclass(frozen=True)
class Script:
    name: str  # "builtin:payment" or the file path as configured
    source: str


class TransformError(Exception):
    """The handler failed for this event: threw, timed out, ran out of memory or returned garbage.

    `limit` names the sandbox limit the run hit, if any: "cpu", "memory", "wall" (the wall-clock deadline of
    an isolated run) or "process" (the sandbox process died).
    """

    def __init__(self, reason: str, line: int | None = None, limit: str | None = None) -> None:
        super().__init__(reason if line is None else f"{reason} (line {line})")
        self.reason = reason
        self.line = line
        self.limit = limit


class Sandbox(Protocol):
    async def transform(self, script: Script, webhook: WebhookObject) -> WebhookObject: ...

    async def close(self) -> None:
        """Release what the sandbox holds (worker processes); no call to `transform` may follow."""
        ...
