"""[sources.NAME]: a sender of webhooks, its signing secrets and how far its clock may be off; for Dodo, the
API key (as a reference) and mode that `connect dodo` and `reconcile` use to call Dodo's API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from headrace.config.limits import RECONCILE_EVERY_LIMITS, TOLERANCE_LIMITS, Duration, _Strict, _within
from headrace.config.secret import Secret, _resolve, decode_secret

DODO_BASE_URL_VARIABLE = "DODO_PAYMENTS_BASE_URL"  # as in Dodo's SDKs: points headrace at another API base


class SourceSettings(_Strict):
    secrets: tuple[Secret, ...] = Field(
        description="Standard Webhooks signing secrets (whsec_...), several while a rotation is under way."
    )
    tolerance: Duration = Field("5m", description="How far webhook-timestamp may be from now, either way (1s to 1h).")
    api_key: str | None = Field(
        None,
        description='Dodo\'s API key, as a reference only: "env:DODO_PAYMENTS_API_KEY" or "file:PATH" (never the '
        "key itself). Read when Dodo's API is called (`connect dodo`, `reconcile`), not at start-up. Written by "
        "`connect dodo`.",
    )
    mode: Literal["live", "test"] = Field(
        "live",
        description="Dodo's mode the API key belongs to: `live` (https://live.dodopayments.com) or `test` "
        "(https://test.dodopayments.com); the environment variable DODO_PAYMENTS_BASE_URL overrides the address. "
        "Written by `connect dodo`.",
    )
    reconcile_every: Duration | None = Field(
        None,
        description="Off by default. How often `serve` runs `headrace reconcile --apply` for this source by "
        "itself (1h to 7d), over the objects Dodo created from two periods ago until 15 minutes ago: belt and "
        "braces for events Dodo never managed to deliver. Needs api_key. An event it stores that Dodo then "
        'delivers after all is stored without a second delivery (docs/operations.md, "After an outage").',
    )

    @field_validator("reconcile_every")
    @classmethod
    def _reconcile_every(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _within(value, RECONCILE_EVERY_LIMITS, "how often serve reconciles with Dodo's API; off by default")

    @model_validator(mode="after")
    def _reconcile_needs_a_key(self) -> SourceSettings:
        if self.reconcile_every is not None and self.api_key is None:
            raise ValueError('reconcile_every needs api_key = "env:DODO_PAYMENTS_API_KEY" (`connect dodo` writes it)')
        return self

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        return _within(value, TOLERANCE_LIMITS, "how far webhook-timestamp may be from now; default 5m")

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str | None) -> str | None:
        if value is not None:
            check_api_key_reference(value)
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: tuple[Secret, ...]) -> tuple[Secret, ...]:
        if not value:
            raise ValueError('give at least one signing secret, e.g. secrets = ["env:DODO_WEBHOOK_SECRET"]')
        for index, secret in enumerate(value):
            try:
                decode_secret(secret.reveal())
            except ValueError as exc:
                raise ValueError(f"secret #{index + 1}: {exc}") from None
        return value


def check_api_key_reference(value: str) -> None:
    """An API key is kept in the config only as `env:NAME` or `file:PATH`: a config file is shared, backed up
    and pasted into issues; the key moves money."""
    name = value.partition(":")[2]
    if not value.startswith(("env:", "file:")) or not name or len(value) > 1024:
        raise ValueError(
            'write the API key as a reference, "env:DODO_PAYMENTS_API_KEY" or "file:PATH", never the key itself'
        )


@dataclass(frozen=True)
class DodoAccess:
    """What a call to Dodo's API needs: the mode, the base address override (or None) and the key."""

    mode: str
    base_override: str | None
    api_key: Secret


def dodo_access(reference: str, mode: str, base_dir: Path, environ: Mapping[str, str] | None = None) -> DodoAccess:
    """Resolve the API key `reference` (env:/file:, relative to `base_dir`) and read DODO_PAYMENTS_BASE_URL.
    ValueError names what is missing."""
    check_api_key_reference(reference)
    environ = os.environ if environ is None else environ
    key = _resolve(reference, environ, base_dir).strip()
    if not key:
        raise ValueError(f"the API key {reference} is empty")
    return DodoAccess(mode, environ.get(DODO_BASE_URL_VARIABLE) or None, Secret(key))
