"""QuickJSSandbox gives byte-for-byte the same JSON as Node.js, for Dodo's own examples and tricky handlers.

Each handler runs over every bundled sample: Node is spawned once per handler with all inputs, evaluates
the script in a fresh `vm` context per input (as the sandbox uses a fresh context per run) and prints
`JSON.stringify(handler(JSON.parse(input)))`, or the error, per input.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from headrace.dodo import samples
from headrace.transform import Script, TransformError, WebhookObject
from headrace.transform.quickjs_sandbox import QuickJSSandbox, handler_input

NODE = shutil.which("node")
pytestmark = [pytest.mark.node, pytest.mark.skipif(NODE is None, reason="needs Node.js (`node` on PATH)")]

DODO = Path(__file__).parent.parent / "fixtures" / "dodo_transformations"
URL = "https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_payment"

NODE_HARNESS = r"""
const vm = require("node:vm");
const fs = require("node:fs");
const { source, inputs } = JSON.parse(fs.readFileSync(0, "utf8"));
const script = new vm.Script(source, { filename: "handler.js" });
const results = inputs.map((input) => {
  const context = vm.createContext({});
  try {
    script.runInContext(context);
    context.__input = input;
    return { ok: vm.runInContext("JSON.stringify(handler(JSON.parse(__input)))", context) };
  } catch (e) {
    return { error: String(e && e.message) };
  }
});
process.stdout.write(JSON.stringify(results));
"""

# Coercion: strings in arithmetic, NaN/Infinity becoming null, -0, big and tiny numbers, sort order.
COERCION = """
function handler(webhook) {
  const d = webhook.payload.data;
  const amount = d.total_amount ?? d.amount ?? d.recurring_pre_tax_amount ?? d.balance ?? "4999";
  webhook.payload = {
    divided: amount / 100,
    string_divided: String(amount) / 100,
    concat: amount + 1,
    times: "5" * "2",
    plus_string: "3" + 4,
    weird: [] + {},
    unary: +"" + +"12" + +true,
    nan: "abc" * 1,
    inf: 1 / 0,
    neg_zero: -0,
    null_plus: null + 1,
    undef_plus: undefined + 1,
    compare: ["10" > "9", 10 > "9", null == 0, null >= 0, "" == 0],
    parse: [parseInt("08"), parseInt("0x1f"), Number("0x10"), Number(""), Number(" 12 "), parseFloat("3.14abc")],
    big: [2 ** 53 + 1, 1e21, 123456789012345680000, 5e-7, 0.1 + 0.2, 1 / 3],
    sorted: [10, 9, 1, 100, -1].sort(),
    truthy: [!!"0", !!"", !![], !!{}, !!NaN],
    ids_len: String(d.payment_id || d.subscription_id || d.dispute_id || "").length,
  };
  return webhook;
}
"""

# JSON.stringify rules: undefined/function/symbol keys vanish, become null in arrays, toJSON, key order.
UNDEFINED_KEYS = """
function handler(webhook) {
  const d = webhook.payload.data;
  webhook.payload = {
    missing: d.no_such_field,
    product_id: d.product_id,
    nested: { a: undefined, b: d.customer && d.customer.no_such, c: null },
    arr: [undefined, function () {}, Symbol("s"), NaN, d.no_such],
    fn: function () {},
    sym: Symbol("x"),
    [Symbol("k")]: 1,
    with_to_json: { toJSON() { return { replaced: true, key: arguments[0] }; } },
    map: new Map([[1, 2]]),
    set: new Set([1]),
    ordered: { b: 1, 2: "two", a: 2, 1: "one", "-1": "neg", "01": "zero-one" },
    keys: Object.keys(d).sort(),
    entries: Object.entries(d.customer || {}).map(([k, v]) => k + "=" + v),
    pretty: JSON.stringify({ a: [1, { b: undefined, c: 2 }] }, null, 2),
    replacer: JSON.stringify(d, ["payment_id", "currency", "status"]),
    length: JSON.stringify(webhook.payload).length,
  };
  webhook.cancel = d.no_such_flag;
  return webhook;
}
"""

# Dates from the payload's fixed timestamps only (never "now"), UTC methods only (no local time zone).
DATES = """
function handler(webhook) {
  const t = new Date(webhook.payload.timestamp);
  const created = new Date(webhook.payload.data.created_at || webhook.payload.timestamp);
  const plus30 = new Date(t.getTime() + 30 * 24 * 3600 * 1000);
  webhook.payload = {
    iso: t.toISOString(),
    ms: t.getTime(),
    json: t,
    utc: t.toUTCString(),
    parts: [t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate(), t.getUTCDay(), t.getUTCHours(),
            t.getUTCMilliseconds()],
    plus30: plus30,
    age_ms: t - created,
    parsed: [Date.parse("2025-10-01"), Date.parse("2025-10-01T14:32:42.118Z"), Date.UTC(2025, 1, 30)],
    invalid: new Date("not a date"),
    invalid_ms: new Date("nope").getTime(),
    epoch_s: Math.floor(t / 1000),
    end_of_month: new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth() + 1, 0)).toISOString().slice(0, 10),
  };
  return webhook;
}
"""

# Number formatting: toFixed rounding, toPrecision, toExponential, radix, Math.
NUMBERS = """
function handler(webhook) {
  const d = webhook.payload.data;
  const cents = Number(d.total_amount ?? d.amount ?? d.recurring_pre_tax_amount ?? 1005);
  webhook.payload = {
    fixed: [(cents / 100).toFixed(2), (1.005).toFixed(2), (-1.5).toFixed(0), (2.5).toFixed(0), (1e21).toFixed(2),
            (0.000001).toFixed(7), (123.456).toFixed(0), (cents / 3).toFixed(4)],
    precision: [(123.456).toPrecision(4), (0.00001234).toPrecision(2), (cents / 7).toPrecision(6)],
    exponential: [(123.456).toExponential(2), (cents * 1e10).toExponential()],
    radix: [(255).toString(16), (255).toString(2), (0.5).toString(2), Number.MAX_SAFE_INTEGER.toString(36)],
    strings: [String(cents / 100), String(1 / 3), String(1e-7), String(123e-20), String(2 ** 70)],
    math: [Math.round(-0.5), Math.round(2.5), Math.trunc(-4.7), Math.max(), Math.min(), Math.hypot(3, 4),
           Math.sign(-3)],
    percent: Math.round((cents * 0.029 + 30)) / 100,
  };
  return webhook;
}
"""

# String handling without Intl: case mapping, padding, regex, unicode, URI encoding, slicing.
STRINGS = """
function handler(webhook) {
  const p = webhook.payload;
  const d = p.data;
  const email = (d.customer && d.customer.email) || "Nobody@Example.com";
  const name = (d.customer && d.customer.name) || "ß İ é";
  webhook.payload = {
    upper: name.toUpperCase(),
    lower: email.toLowerCase(),
    special: ["ß".toUpperCase(), "İ".toLowerCase().length, "ﬁ".toUpperCase()],
    pad: String(d.retry_attempt ?? 7).padStart(4, "0") + "|" + "x".padEnd(5, "ab"),
    domain: email.split("@").pop(),
    masked: email.replace(/^(.).*(@.*)$/, "$1***$2"),
    named: p.timestamp.replace(/(?<y>\\d{4})-(?<m>\\d\\d)-(?<d>\\d\\d)/, "$<d>.$<m>.$<y>"),
    all: p.type.replaceAll(".", "_"),
    slice: [p.type.slice(-5), p.type.substring(5, 2), p.type.at(-1), p.type.charCodeAt(0)],
    words: p.type.split(/[._]/).map((w) => w[0].toUpperCase() + w.slice(1)).join(" "),
    includes: [p.type.includes("payment"), p.type.startsWith("sub"), p.type.endsWith("ed")],
    trim: "  \\t padded \\n".trim(),
    template: `${p.type} for ${name} at ${p.timestamp}`,
    uri: encodeURIComponent(name + " & " + email),
    normalize: ["é".normalize("NFD").length, "e\\u0301".normalize("NFC")],
    surrogate: "\\ud800" + "x",
    emoji: ["😀".length, [..."😀a"].length, "😀".codePointAt(0)],
    repeat: "ab".repeat(3),
    json_in_string: JSON.stringify({ note: "quote \\" and \\\\ and \\n" }),
  };
  webhook.headers = { "X-Event": p.type, "X-Business": p.business_id };
  return webhook;
}
"""

# Locale formatting (issue 12 item 10): the en-US cases the sandbox implements, byte for byte as Node prints them.
INTL = """
function handler(webhook) {
  const d = webhook.payload.data;
  const cents = Number(d.total_amount ?? d.amount ?? d.recurring_pre_tax_amount ?? 4999);
  const amount = cents / 100;
  const usd = { style: "currency", currency: "USD" };
  const us = (x, options) => x.toLocaleString("en-US", options);
  const nf = (options) => new Intl.NumberFormat("en-US", options);
  const t = new Date(webhook.payload.timestamp);
  webhook.payload = {
    currency: [
      amount.toLocaleString("en-US", usd), us(-amount, usd), us(cents, { style: "currency", currency: "JPY" }),
      us(amount, { style: "currency", currency: "eur" }),
      amount.toLocaleString("en", { style: "currency", currency: "GBP" }),
      us(cents / 1000, { style: "currency", currency: "KWD" }), us(amount, { style: "currency", currency: "CHF" }),
      us(amount, { style: "currency", currency: "INR" }), us(cents, { style: "currency", currency: "XOF" }),
      us(amount, { ...usd, currencyDisplay: "code" }), us(amount, { ...usd, maximumFractionDigits: 0 }),
      us(amount, { ...usd, minimumFractionDigits: 3 }), us(1234567.891, usd), us(0, usd), us(-0.001, usd),
      us(0.005, usd), us(1.005, usd), us(2.675, usd), us(-0.001, { ...usd, currencyDisplay: "code" }),
    ],
    decimal: [
      amount.toLocaleString(), us(cents), (1234.5678).toLocaleString(), (-0).toLocaleString(),
      NaN.toLocaleString(), (1 / 0).toLocaleString(), us(-1 / 0, usd), us(NaN, usd), (1e21).toLocaleString(),
      (123456789012345680000).toLocaleString(), (1e-7).toLocaleString(), (0.0005).toLocaleString(),
      (999.9995).toLocaleString(), us(1.005, { maximumFractionDigits: 2 }), us(2.5, { maximumFractionDigits: 0 }),
      us(-2.5, { maximumFractionDigits: 0 }), us(5, { minimumIntegerDigits: 3 }), us(1234.5, { useGrouping: false }),
      us(100, { minimumFractionDigits: 2 }), us(0.1 + 0.2, { maximumFractionDigits: 20 }), (2 ** 70).toLocaleString(),
      (12345678n).toLocaleString(), us(-5n, usd), [amount, cents, null, "x"].toLocaleString(),
      [amount, 2].toLocaleString("en-US", usd), us(cents / 7, { minimumFractionDigits: 1, maximumFractionDigits: 4 }),
    ],
    percent: [
      us(0.256, { style: "percent" }), us(cents / 10000, { style: "percent", minimumFractionDigits: 1 }),
      us(-0.0049, { style: "percent" }), us(12.5, { style: "percent" }), us(NaN, { style: "percent" }),
    ],
    intl: [
      nf(usd).format(amount), Intl.NumberFormat().format(cents),
      new Intl.NumberFormat(["en-US"], { maximumFractionDigits: 1 }).format("1234.56"),
      nf().format("12345678901234567890.12345"), nf().format(" -0.5e2 "), nf().format("abc"), nf().format(""),
      nf().format(true), [cents, 5, 0.5].map(nf(usd).format), nf().format(123456789n),
    ],
    dates: [
      t.toLocaleDateString(), t.toLocaleDateString("en-US"), t.toLocaleDateString("en-US", { timeZone: "UTC" }),
      t.toLocaleDateString("en-US", { year: "numeric", month: "long", day: "numeric" }),
      t.toLocaleDateString("en-US", { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" }),
      t.toLocaleDateString("en-US", { year: "numeric", month: "2-digit", day: "2-digit" }),
      t.toLocaleDateString(undefined, { year: "numeric", month: "numeric", day: "numeric" }),
      new Date(Date.UTC(2024, 1, 29, 23, 59)).toLocaleDateString("en-US", { timeZone: "UTC" }),
      new Date("nope").toLocaleDateString(), "Ab".toLocaleUpperCase(), "Ab".toLocaleLowerCase("en-US"),
    ],
  };
  return webhook;
}
"""

# Everything else about locales fails the run with a TypeError naming the feature, never a different string.
UNSUPPORTED = {
    '(4999).toLocaleString("de-DE")': 'Number.prototype.toLocaleString for locale "de-DE"',
    '(49.99).toLocaleString("en-US", { style: "currency", currency: "USD", currencySign: "accounting" })': (
        "Number.prototype.toLocaleString option currencySign"
    ),
    '(1234).toLocaleString("en-US", { notation: "compact" })': "Number.prototype.toLocaleString option notation",
    '(4999).toLocaleString("en-US", { style: "currency", currency: "XPF" })': (
        "Number.prototype.toLocaleString for currency XPF"
    ),
    '(49.99).toLocaleString("en-US", { style: "currency", currency: "USD", currencyDisplay: "name" })': (
        'Number.prototype.toLocaleString with currencyDisplay "name"'
    ),
    '(3).toLocaleString("en-US", { style: "unit", unit: "day" })': "Number.prototype.toLocaleString option unit",
    'new Intl.NumberFormat("en-US").formatToParts(5)': "Intl.NumberFormat.prototype.formatToParts",
    'new Intl.DateTimeFormat("en-US").format(new Date(0))': "Intl.DateTimeFormat",
    "new Date(0).toLocaleString()": "Date.prototype.toLocaleString",
    'new Date(0).toLocaleTimeString("en-US")': "Date.prototype.toLocaleTimeString",
    'new Date(0).toLocaleDateString("en-GB")': 'Date.prototype.toLocaleDateString for locale "en-GB"',
    'new Date(0).toLocaleDateString("en-US", { weekday: "long" })': "Date.prototype.toLocaleDateString option weekday",
    'new Date(0).toLocaleDateString("en-US", { timeZone: "America/New_York" })': (
        'Date.prototype.toLocaleDateString with timeZone "America/New_York"'
    ),
    '"a".localeCompare("B")': "String.prototype.localeCompare",
    '"i".toLocaleUpperCase("tr")': 'String.prototype.toLocaleUpperCase for locale "tr"',
}

TRICKY = {
    "coercion": COERCION,
    "undefined_keys": UNDEFINED_KEYS,
    "dates": DATES,
    "numbers": NUMBERS,
    "strings": STRINGS,
    "intl": INTL,
}
HANDLERS = {path.stem: path.read_text() for path in sorted(DODO.glob("*.js"))} | TRICKY


def webhooks() -> list[WebhookObject]:
    return [WebhookObject(t, samples.load(t), URL, webhook_id=f"msg_{t}") for t in samples.EVENT_TYPES]


def run_in_node(source: str, inputs: list[str], tmp_path: Path) -> list[dict[str, str]]:
    harness = tmp_path / "harness.cjs"
    harness.write_text(NODE_HARNESS)
    done = subprocess.run(
        [NODE or "node", str(harness)],
        input=json.dumps({"source": source, "inputs": inputs}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TZ": "UTC"},
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, str]] = json.loads(done.stdout)
    return results


def test_the_dodo_examples_are_the_verbatim_copies() -> None:
    assert sorted(p.name for p in DODO.glob("*.js")) == [
        "basic_workflow.js",
        "dispute_workflow.js",
        "subscription_workflow.js",
    ]
    assert "p.product_id" in (DODO / "basic_workflow.js").read_text()  # the documented flaw is kept


@pytest.mark.parametrize("name", sorted(HANDLERS))
def test_same_json_as_node_on_every_sample(name: str, tmp_path: Path) -> None:
    source = HANDLERS[name]
    cases = webhooks()
    node = run_in_node(source, [json.dumps(handler_input(w)) for w in cases], tmp_path)
    sandbox = QuickJSSandbox()
    script = Script(f"{name}.js", source)
    mismatches = []
    for webhook, expected in zip(cases, node, strict=True):
        assert "ok" in expected, f"{name} on {webhook.event_type} failed in Node: {expected}"
        got = sandbox.evaluate(script, webhook)
        if got != expected["ok"]:
            mismatches.append(f"{webhook.event_type}:\n  node:    {expected['ok']}\n  quickjs: {got}")
            continue
        # and the validated result carries the same payload, headers and cancel flag
        parsed = json.loads(expected["ok"])
        try:
            result = sandbox.run(script, webhook)
        except TransformError as exc:  # only for results Svix would reject too
            assert name == "undefined_keys", f"{name} on {webhook.event_type}: {exc}"
            continue
        assert result.payload == parsed["payload"]
        assert dict(result.headers) == parsed["headers"]
        assert result.cancel == parsed.get("cancel", False)
        assert result.event_type == webhook.event_type
    assert mismatches == [], "\n".join(mismatches[:5])


def test_dodo_examples_produce_the_documented_shapes() -> None:
    sandbox = QuickJSSandbox()
    basic = Script("basic_workflow.js", (DODO / "basic_workflow.js").read_text())
    payment = WebhookObject("payment.succeeded", samples.load("payment.succeeded"), URL)
    payload = sandbox.run(basic, payment).payload
    assert payload["amount"] == "49.99"
    assert "product_id" not in payload["metadata"]  # undefined on a Payment, so JSON.stringify drops it
    dispute = Script("dispute_workflow.js", (DODO / "dispute_workflow.js").read_text())
    opened = sandbox.run(dispute, WebhookObject("dispute.opened", samples.load("dispute.opened"), URL)).payload
    assert opened["urgent"] is True
    assert isinstance(opened["amount"], str)


@pytest.mark.parametrize("expression", sorted(UNSUPPORTED))
def test_locale_features_the_sandbox_cannot_match_fail_by_name(expression: str, tmp_path: Path) -> None:
    source = f"function handler(w) {{\n  w.payload = {{ value: {expression} }};\n  return w;\n}}"
    webhook = webhooks()[0]
    [node] = run_in_node(source, [json.dumps(handler_input(webhook))], tmp_path)
    assert "ok" in node, f"Node gives a string here, so a silent difference would be possible: {node}"
    with pytest.raises(TransformError) as caught:
        QuickJSSandbox().run(Script("locale.js", source), webhook)
    message = str(caught.value)
    assert f"locale.js: TypeError: {UNSUPPORTED[expression]} is not supported in the headrace sandbox" in message
    assert "(line 2)" in message
