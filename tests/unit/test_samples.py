"""The bundled Dodo sample bodies match the dodopayments SDK's own models, one per event type."""

from __future__ import annotations

import typing

import pydantic
import pytest
from dodopayments.types.unwrap_webhook_event import UnwrapWebhookEvent
from dodopayments.types.webhook_event_type import WebhookEventType

from headrace import samples

# Real Dodo bodies carry `data.payload_type` ("Payment", "Subscription", ...); the SDK models leave it out.
KNOWN_EXTRA = {"payload_type"}


def sdk_models() -> dict[str, type[pydantic.BaseModel]]:
    """Event type -> the member of the SDK's UnwrapWebhookEvent union whose `type` literal it is."""
    union = typing.get_args(UnwrapWebhookEvent)[0]  # Annotated[Union[...], PropertyInfo(discriminator)]
    models: dict[str, type[pydantic.BaseModel]] = {}
    for model in typing.get_args(union):
        (event_type,) = typing.get_args(model.model_fields["type"].annotation)
        models[event_type] = model
    return models


def problems(value: object, where: str) -> list[str]:
    """Fields the sample lacks, or has but the SDK does not know, anywhere in the validated model."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        extra = set(value.model_extra or {}) - (KNOWN_EXTRA if where.endswith(".data") else set())
        if extra:
            found.append(f"{where}: fields unknown to the SDK: {sorted(extra)}")
        missing = set(type(value).model_fields) - value.model_fields_set
        if missing:
            found.append(f"{where}: fields missing (use null for unset optional ones): {sorted(missing)}")
        for name in type(value).model_fields:
            found += problems(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += problems(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += problems(item, f"{where}[{key!r}]")
    return found


def test_one_sample_per_sdk_event_type() -> None:
    assert set(samples.EVENT_TYPES) == set(typing.get_args(WebhookEventType))
    assert len(samples.EVENT_TYPES) == 48
    assert list(samples.EVENT_TYPES) == sorted(samples.EVENT_TYPES)


@pytest.mark.parametrize("event_type", samples.EVENT_TYPES)
def test_sample_validates_against_the_sdk_model(event_type: str) -> None:
    body = samples.load(event_type)
    assert body["type"] == event_type
    model = sdk_models()[event_type].model_validate(body)
    assert problems(model, event_type) == []
    if "payload_type" in body["data"]:
        assert isinstance(body["data"]["payload_type"], str)


@pytest.mark.parametrize("event_type", samples.EVENT_TYPES)
def test_the_sdk_union_picks_the_same_model(event_type: str) -> None:
    parsed = pydantic.TypeAdapter(UnwrapWebhookEvent).validate_python(samples.load(event_type))
    assert type(parsed) is sdk_models()[event_type]


def test_load_returns_a_fresh_copy() -> None:
    first = samples.load("payment.succeeded")
    first["data"]["total_amount"] = -1
    assert samples.load("payment.succeeded")["data"]["total_amount"] != -1


def test_path_points_at_the_json_file() -> None:
    assert samples.path("refund.succeeded").name == "refund.succeeded.json"
    assert samples.path("refund.succeeded").is_file()


def test_unknown_event_type_suggests_close_matches() -> None:
    with pytest.raises(ValueError, match=r"did you mean payment\.succeeded"):
        samples.load("payment.succeded")
    with pytest.raises(ValueError, match=r"known types: abandoned_checkout\.detected"):
        samples.path("nothing.like.it")
