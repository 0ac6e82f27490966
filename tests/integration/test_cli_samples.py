"""`headrace samples` and `headrace transform` with sample variants."""

from __future__ import annotations

import json
from pathlib import Path

from headrace.dodo import samples
from tests.integration.test_cli import headrace


def test_samples_list_type_lists_its_variants_with_what_they_change() -> None:
    listed = headrace("samples", "list", "payment.succeeded")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == list(samples.variants("payment.succeeded"))
    assert "multi_subscription" in names
    assert any(line.startswith("zero_decimal_jpy") and "JPY" in line for line in listed.stdout.splitlines())
    assert headrace("samples").stdout.split() == list(samples.EVENT_TYPES)  # the plain list is unchanged


def test_samples_show_a_variant() -> None:
    shown = headrace("samples", "show", "refund.succeeded", "--variant", "no_currency")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == samples.load("refund.succeeded", "no_currency")
    unknown = headrace("samples", "show", "refund.succeeded", "--variant", "no_curency")
    assert unknown.returncode == 2 and "did you mean no_currency" in unknown.stderr
    misplaced = headrace("samples", "--variant", "no_currency")
    assert misplaced.returncode == 2 and "--variant goes with `samples show TYPE`" in misplaced.stderr


def test_transform_a_variant(tmp_path: Path) -> None:
    result = headrace(
        "transform", "--script", "builtin:payment", "--event", "payment.succeeded", "--variant", "zero_decimal_jpy"
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)["payload"]
    assert (payload["currency"], payload["amount"], payload["currency_exponent"]) == ("JPY", "5000", 0)
    body = tmp_path / "body.json"
    body.write_text(json.dumps(samples.load("payment.succeeded")))
    refused = headrace("transform", "--script", "builtin:payment", "--event", str(body), "--variant", "x")
    assert refused.returncode == 2 and "variants belong to sample event types" in refused.stderr
