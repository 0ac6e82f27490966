"""[sources.NAME]: a sender of webhooks, its signing secrets and how far its clock may be off."""

from __future__ import annotations

from pydantic import Field, field_validator

from headrace.config.limits import TOLERANCE_LIMITS, Duration, _Strict, _within
from headrace.config.secret import Secret


class SourceSettings(_Strict):
    secrets: tuple[Secret, ...] = Field(
        description="Standard Webhooks signing secrets (whsec_...), several while a rotation is under way."
    )
    tolerance: Duration = Field("5m", description="How far webhook-timestamp may be from now, either way (1s to 1h).")

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        return _within(value, TOLERANCE_LIMITS, "how far webhook-timestamp may be from now; default 5m")

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: tuple[Secret, ...]) -> tuple[Secret, ...]:
        if not value:
            raise ValueError('give at least one signing secret, e.g. secrets = ["env:DODO_WEBHOOK_SECRET"]')
        from headrace.ingest.signature import decode_secret

        for index, secret in enumerate(value):
            try:
                decode_secret(secret.reveal())
            except ValueError as exc:
                raise ValueError(f"secret #{index + 1}: {exc}") from None
        return value
