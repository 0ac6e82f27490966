/*
 * headrace built-in template "refund" (transform = "builtin:refund").
 *
 * Handles refund.succeeded and refund.failed. Every other event sets `webhook.cancel = true`
 * (recorded as cancelled, not sent). The output is exactly the arguments of the kit script
 * f/dodo/record_refund.
 *
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds). Every
 * key is always present (null when Dodo sends nothing).
 *
 * Output (webhook.payload):
 *   event_type         string          "refund.succeeded" or "refund.failed"
 *   webhook_id         string          Dodo webhook-id, unique per event
 *   timestamp          string          event time (ISO 8601)
 *   business_id        string
 *   refund_id          string
 *   payment_id         string
 *   status             string          succeeded, failed, pending, review
 *   currency           string | null   ISO 4217 code, upper case (Dodo may omit it)
 *   currency_exponent  integer         minor-unit digits (0 JPY, 2 USD, 3 KWD, ...)
 *   amount_minor       integer | null  refunded amount in minor units (Dodo may omit it)
 *   amount             string | null   the same as an exact decimal string
 *   is_partial         boolean
 *   reason             string | null
 *   customer_id        string
 *   customer_email     string
 *   customer_name      string
 *   created_at         string          ISO 8601
 *   metadata           object          the refund's metadata ({} when none)
 */

// --- begin block: currency (generated from tools/template_blocks/currency.js by tools/gen_templates.py; edit it there) ---
// ISO 4217 currencies whose minor unit is not 1/100 (everything else has two decimals).
const MINOR_UNIT_EXPONENTS = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0,
  UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
};

function currencyExponent(code) {
  const exponent = MINOR_UNIT_EXPONENTS[code];
  return exponent === undefined ? 2 : exponent;
}

// Integer minor units from a number or an integer string ("4999"); null for anything else.
function toMinor(value) {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  if (typeof value === "string" && /^-?\d+$/.test(value.trim())) {
    const parsed = Number(value.trim());
    return Number.isSafeInteger(parsed) ? parsed : null;
  }
  return null;
}

// Exact decimal string for an integer amount in minor units: (4999, 2) -> "49.99", (5, 3) -> "0.005".
function formatMinor(minor, exponent) {
  if (minor === null) return null;
  const digits = String(Math.abs(minor));
  if (exponent === 0) return (minor < 0 ? "-" : "") + digits;
  const padded = digits.padStart(exponent + 1, "0");
  const whole = padded.slice(0, padded.length - exponent);
  const fraction = padded.slice(padded.length - exponent);
  return (minor < 0 ? "-" : "") + whole + "." + fraction;
}

// What Dodo sent, or null when it sent nothing. An empty string stays "" (a customer's name may be
// empty, and the paired kit scripts take it as it is).
function orNull(value) {
  return value === undefined ? null : value;
}
// --- end block: currency ---

function handler(webhook) {
  if (webhook.eventType !== "refund.succeeded" && webhook.eventType !== "refund.failed") {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const r = body.data;
  const customer = r.customer || {};
  const currency = r.currency ? String(r.currency).toUpperCase() : null;
  const exponent = currencyExponent(currency);
  const amountMinor = toMinor(r.amount);
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(r.business_id || body.business_id),
    refund_id: r.refund_id,
    payment_id: orNull(r.payment_id),
    status: orNull(r.status),
    currency: currency,
    currency_exponent: exponent,
    amount_minor: amountMinor,
    amount: formatMinor(amountMinor, exponent),
    is_partial: r.is_partial === true,
    reason: orNull(r.reason),
    customer_id: orNull(customer.customer_id),
    customer_email: orNull(customer.email),
    customer_name: orNull(customer.name),
    created_at: orNull(r.created_at),
    metadata: r.metadata || {},
  };
  return webhook;
}
