# Validate a payment event shaped by headrace's builtin:payment template; raise a clear error when
# it is not fit to book. Takes exactly the template's output fields.
from datetime import datetime
from typing import Any

# Active ISO 4217 codes with their minor-unit exponent (default 2; listed below when it differs).
# fmt: off
ISO_4217 = frozenset([
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF",
    "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
    "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS",
    "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
    "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP",
    "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE",
    "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
    "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG",
    "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
    "HRK", "SLL",  # withdrawn from ISO 4217 but still in Dodo's currency list
])
# fmt: on
# fmt: off
EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0, "UGX": 0,
    "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}
# fmt: on
PAYMENT_EVENTS = {"payment.succeeded", "payment.failed", "payment.processing", "payment.cancelled"}


def format_minor(minor: int, exponent: int) -> str:
    sign, digits = ("-" if minor < 0 else ""), str(abs(minor))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _iso_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


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
    event_type: str,
    webhook_id: str,
    timestamp: str,
    business_id: str,
    payment_id: str,
    amount_minor: int,
    customer_id: str,
    customer_email: str,
    customer_name: str,
    product_cart: list[dict],
    metadata: dict,
    created_at: str,
    status: str | None = None,
    currency: str | None = None,
    currency_exponent: int | None = None,
    amount: str | None = None,
    notes: list[str] | None = None,
    tax_minor: int | None = None,
    tax: str | None = None,
    customer_phone: str | None = None,
    payment_method: str | None = None,
    subscription_id: str | None = None,
    subscription_ids: list[str] | None = None,
    is_multi_subscription: bool = False,
    error_code: str | None = None,
    error_message: str | None = None,
):
    customer_email, customer_name, metadata = unguard(customer_email), unguard(customer_name), unguard(metadata)
    problems: list[str] = []
    for name, value in [
        ("webhook_id", webhook_id),
        ("payment_id", payment_id),
        ("business_id", business_id),
        ("customer_id", customer_id),
        ("customer_email", customer_email),
        ("timestamp", timestamp),
        ("created_at", created_at),
    ]:
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name} is required (got {value!r})")
    if event_type not in PAYMENT_EVENTS:
        problems.append(f"event_type {event_type!r} is not a payment event ({', '.join(sorted(PAYMENT_EVENTS))})")
    if timestamp and not _iso_time(timestamp):
        problems.append(f"timestamp {timestamp!r} is not an ISO 8601 time")
    if customer_email and "@" not in str(customer_email):
        problems.append(f"customer_email {customer_email!r} is not an email address")

    known_currency = isinstance(currency, str) and currency in ISO_4217
    expected_exponent = EXPONENTS.get(currency, 2) if known_currency else None
    if not known_currency:
        problems.append(f"currency {currency!r} is not an ISO 4217 code")
    elif currency_exponent != expected_exponent:
        problems.append(
            f"currency_exponent {currency_exponent!r} is wrong for {currency} (ISO 4217 says {expected_exponent})"
        )

    if not _is_int(amount_minor):
        problems.append(f"amount_minor must be an integer in minor units (got {amount_minor!r})")
    else:
        if amount_minor < 0:
            problems.append(f"amount_minor {amount_minor} is negative")
        if event_type == "payment.succeeded" and amount_minor == 0:
            problems.append("amount_minor is 0 on a succeeded payment")
        if expected_exponent is not None and amount != format_minor(amount_minor, expected_exponent):
            problems.append(
                f"amount {amount!r} does not match amount_minor {amount_minor} in {currency} "
                f"(expected {format_minor(amount_minor, expected_exponent)!r})"
            )
        if tax_minor is not None:
            if not _is_int(tax_minor) or tax_minor < 0:
                problems.append(f"tax_minor must be a non-negative integer (got {tax_minor!r})")
            elif tax_minor > amount_minor:
                problems.append(f"tax_minor {tax_minor} is larger than amount_minor {amount_minor}")
            elif expected_exponent is not None and tax != format_minor(tax_minor, expected_exponent):
                problems.append(f"tax {tax!r} does not match tax_minor {tax_minor} in {currency}")

    if subscription_ids is not None:
        if not isinstance(subscription_ids, list) or not all(isinstance(i, str) and i for i in subscription_ids):
            problems.append(f"subscription_ids must be a list of subscription ids (got {subscription_ids!r})")
        elif subscription_id and subscription_ids and subscription_id not in subscription_ids:
            problems.append(f"subscription_id {subscription_id!r} is not in subscription_ids {subscription_ids!r}")
        elif is_multi_subscription and subscription_id:
            problems.append(f"a multi-subscription payment names no single subscription_id (got {subscription_id!r})")

    if not isinstance(product_cart, list):
        problems.append(f"product_cart must be a list (got {type(product_cart).__name__})")
    else:
        for i, item in enumerate(product_cart):
            if not isinstance(item, dict) or not item.get("product_id"):
                problems.append(f"product_cart[{i}] has no product_id")
            elif not _is_int(item.get("quantity")) or item["quantity"] < 1:
                problems.append(f"product_cart[{i}] quantity must be a positive integer (got {item.get('quantity')!r})")

    problems += [f"note from the template: {note}" for note in notes or []]
    if problems:
        raise ValueError(
            f"payment {payment_id or '?'} (webhook {webhook_id or '?'}) failed validation, "
            f"{len(problems)} problem(s): " + "; ".join(problems)
        )
    return {
        "valid": True,
        "payment_id": payment_id,
        "currency": currency,
        "amount": amount,
        "amount_minor": amount_minor,
    }
