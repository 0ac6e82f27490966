/*
 * headrace built-in template "dispute" (transform = "builtin:dispute").
 *
 * Handles every dispute.* event: opened, challenged, accepted, cancelled, expired, won and lost.
 * Every other event sets `webhook.cancel = true` (recorded as cancelled, not sent). The output is
 * exactly the arguments of the kit script f/dodo/record_dispute and the inputs of the flow
 * f/dodo/on_dispute.
 *
 * Dodo sends dispute amounts as strings ("4999"); they are parsed as integer minor units, never
 * through JavaScript's coercion, and formatted per currency. Reads `webhook.webhookId` (the Dodo
 * `webhook-id`, a read-only extra that headrace adds). Every key is always present.
 *
 * Output (webhook.payload):
 *   event_type         string          "dispute.opened", ...
 *   webhook_id         string          Dodo webhook-id, unique per event
 *   timestamp          string          event time (ISO 8601)
 *   business_id        string
 *   dispute_id         string
 *   payment_id         string
 *   currency           string          ISO 4217 code, upper case
 *   currency_exponent  integer         minor-unit digits (0 JPY, 2 USD, 3 KWD, ...)
 *   amount_minor       integer | null  disputed amount in minor units (null if Dodo's string is not an integer)
 *   amount             string | null   the same as an exact decimal string
 *   status             string          dispute_opened, dispute_challenged, dispute_won, dispute_lost, ...
 *   stage              string          pre_dispute, dispute or pre_arbitration
 *   remarks            string | null
 *   urgent             boolean         true when the dispute opens or escalates to pre_arbitration
 *   created_at         string          ISO 8601
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
  if (!webhook.eventType.startsWith("dispute.")) {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const d = body.data;
  const currency = String(d.currency || "").toUpperCase();
  const exponent = currencyExponent(currency);
  const amountMinor = toMinor(d.amount);
  const stage = orNull(d.dispute_stage);
  const status = orNull(d.dispute_status);
  const closed = ["dispute_won", "dispute_lost", "dispute_accepted", "dispute_cancelled", "dispute_expired"];
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(d.business_id || body.business_id),
    dispute_id: d.dispute_id,
    payment_id: orNull(d.payment_id),
    currency: currency,
    currency_exponent: exponent,
    amount_minor: amountMinor,
    amount: formatMinor(amountMinor, exponent),
    status: status,
    stage: stage,
    remarks: orNull(d.remarks),
    urgent:
      webhook.eventType === "dispute.opened" ||
      (stage === "pre_arbitration" && !closed.includes(status)),
    created_at: orNull(d.created_at),
  };
  return webhook;
}
