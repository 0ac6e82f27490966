"""The bundled Dodo sample bodies match the dodopayments SDK's own models, one per event type."""

from __future__ import annotations

import typing

import pydantic
import pytest
from dodopayments.types.unwrap_webhook_event import UnwrapWebhookEvent
from dodopayments.types.webhook_event_type import WebhookEventType

from headrace.dodo import samples

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
    assert len(samples.EVENT_TYPES) == len(set(typing.get_args(WebhookEventType)))  # one each, no repeats
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


# --- Variants: realistic cases the plain samples do not show -------------------------------------------

ALL_VARIANTS = [(t, v) for t in samples.EVENT_TYPES for v in samples.variants(t)]
# What the templates and the kit must be tried on (issue 12 item 11), per event-type family.
REQUIRED = {
    "payment.": {
        "zero_decimal_jpy",
        "three_decimal_kwd",
        "empty_name",
        "null_optionals",
        "multi_subscription",
        "nested_metadata",
        "non_latin",
        "dollar_text",
    },
    "subscription.": {
        "zero_decimal_jpy",
        "three_decimal_kwd",
        "empty_name",
        "null_optionals",
        "nested_metadata",
        "non_latin",
        "dollar_text",
    },
    "refund.": {"zero_decimal_jpy", "three_decimal_kwd", "empty_name", "null_optionals", "no_currency", "non_latin"},
    "dispute.": {"zero_decimal_jpy", "three_decimal_kwd", "null_optionals", "amount_decimal_string", "non_latin"},
}


def test_every_family_has_its_variants() -> None:
    assert len(ALL_VARIANTS) >= 150
    for event_type in samples.EVENT_TYPES:
        names = set(samples.variants(event_type))
        for prefix, required in REQUIRED.items():
            if event_type.startswith(prefix):
                assert required <= names, f"{event_type} lacks {sorted(required - names)}"
        assert list(samples.variants(event_type)) == sorted(names)


@pytest.mark.parametrize(("event_type", "variant"), ALL_VARIANTS)
def test_variant_validates_against_the_sdk_model(event_type: str, variant: str) -> None:
    body = samples.load(event_type, variant)
    assert body != samples.load(event_type), "a variant must change something"
    assert body["type"] == event_type
    model = sdk_models()[event_type].model_validate(body)
    assert problems(model, event_type) == []
    assert type(pydantic.TypeAdapter(UnwrapWebhookEvent).validate_python(body)) is sdk_models()[event_type]
    assert samples.describe(event_type, variant)


def nullable_fields_set(value: object, where: str) -> list[str]:
    """Fields whose SDK annotation allows None but that hold a value, anywhere in the model."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        for name, field in type(value).model_fields.items():
            item = getattr(value, name)
            if type(None) in typing.get_args(field.annotation) and item is not None:
                found.append(f"{where}.{name}")
            found += nullable_fields_set(item, f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += nullable_fields_set(item, f"{where}[{index}]")
    return found


@pytest.mark.parametrize("event_type", samples.EVENT_TYPES)
def test_null_optionals_nulls_every_optional_field(event_type: str) -> None:
    base = sdk_models()[event_type].model_validate(samples.load(event_type))
    if not nullable_fields_set(base, event_type):
        assert "null_optionals" not in samples.variants(event_type)
        return
    model = sdk_models()[event_type].model_validate(samples.load(event_type, "null_optionals"))
    assert nullable_fields_set(model, event_type) == []


def test_variants_change_what_their_name_says() -> None:
    jpy = samples.load("payment.succeeded", "zero_decimal_jpy")["data"]
    assert (jpy["currency"], jpy["total_amount"]) == ("JPY", 5000)
    assert samples.load("dispute.opened", "three_decimal_kwd")["data"]["amount"] == "12345"
    assert samples.load("payment.failed", "empty_name")["data"]["customer"]["name"] == ""
    multi = samples.load("payment.succeeded", "multi_subscription")["data"]
    assert multi["subscription_id"] is None and multi["is_multi_subscription"] is True
    assert len(multi["subscription_ids"]) == 3
    assert samples.load("refund.succeeded", "no_currency")["data"]["currency"] is None
    assert samples.load("dispute.lost", "amount_decimal_string")["data"]["amount"] == "49.99"
    assert samples.load("subscription.active", "dollar_text")["data"]["customer"]["name"] == "$WM_TOKEN"
    # The rest of the body is the plain sample's.
    assert jpy["payment_id"] == samples.load("payment.succeeded")["data"]["payment_id"]


def test_merge_replaces_lists_and_nulls_and_merges_objects() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert samples.merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}, "d": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}  # the base is not changed


def test_load_variant_returns_a_fresh_copy() -> None:
    first = samples.load("payment.succeeded", "empty_name")
    first["data"]["customer"]["name"] = "changed"
    first["data"]["metadata"]["order_ref"] = "changed"
    assert samples.load("payment.succeeded", "empty_name")["data"]["customer"]["name"] == ""
    assert samples.load("payment.succeeded")["data"]["metadata"]["order_ref"] == "ORD-10042"


def test_unknown_variants_are_refused_with_a_hint() -> None:
    with pytest.raises(
        ValueError, match=r"payment\.succeeded has no sample variant 'empty_nam'; did you mean empty_name"
    ):
        samples.load("payment.succeeded", "empty_nam")
    with pytest.raises(ValueError, match=r"has no sample variant 'x'; known variants: dollar_text, empty_name"):
        samples.describe("payment.succeeded", "x")
    with pytest.raises(ValueError, match=r"no sample for Dodo event type 'payment\.succeded'"):
        samples.variants("payment.succeded")
    assert samples.variants("license_key.created") == ("null_optionals",)
