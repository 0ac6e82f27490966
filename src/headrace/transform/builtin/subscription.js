/*
 * headrace built-in template "subscription" (transform = "builtin:subscription").
 *
 * Handles every subscription.* event: active, renewed, on_hold, paused, unpaused, plan_changed,
 * cancelled, expired, failed, updated, past_due and update_payment_method. Each one carries the
 * subscription's latest state, so the output is the same snapshot for all of them, tagged with the
 * event. Every other event sets `webhook.cancel = true` (recorded as cancelled, not sent). The
 * output is exactly the arguments of the kit script f/dodo/subscription_lifecycle and the inputs
 * of the flow f/dodo/on_subscription.
 *
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds). Every
 * key is always present (null when Dodo sends nothing).
 *
 * Output (webhook.payload):
 *   event_type                  string          "subscription.active", ...
 *   webhook_id                  string          Dodo webhook-id, unique per event
 *   timestamp                   string          event time (ISO 8601); orders out-of-order events
 *   business_id                 string
 *   subscription_id             string
 *   status                      string          active, on_hold, paused, cancelled, expired, failed, pending, past_due
 *   product_id                  string
 *   quantity                    integer
 *   customer_id                 string
 *   customer_email              string
 *   customer_name               string
 *   currency                    string          ISO 4217 code, upper case
 *   currency_exponent           integer         minor-unit digits (0 JPY, 2 USD, 3 KWD, ...)
 *   amount_minor                integer         recurring_pre_tax_amount in minor units, per billing period
 *   amount                      string          the same as an exact decimal string
 *   billing_interval            string          Day, Week, Month or Year (payment_frequency_interval)
 *   billing_interval_count      integer         periods per charge (payment_frequency_count)
 *   next_billing_date           string | null   ISO 8601
 *   previous_billing_date       string | null   ISO 8601
 *   cancel_at_next_billing_date boolean
 *   cancelled_at                string | null   ISO 8601
 *   created_at                  string          ISO 8601
 *   metadata                    object          the subscription's metadata ({} when none)
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
  if (!webhook.eventType.startsWith("subscription.")) {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const s = body.data;
  const customer = s.customer || {};
  const currency = String(s.currency || "").toUpperCase();
  const exponent = currencyExponent(currency);
  const amountMinor = toMinor(s.recurring_pre_tax_amount);
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(body.business_id),
    subscription_id: s.subscription_id,
    status: orNull(s.status),
    product_id: orNull(s.product_id),
    quantity: toMinor(s.quantity) === null ? 1 : toMinor(s.quantity),
    customer_id: orNull(customer.customer_id),
    customer_email: orNull(customer.email),
    customer_name: orNull(customer.name),
    currency: currency,
    currency_exponent: exponent,
    amount_minor: amountMinor,
    amount: formatMinor(amountMinor, exponent),
    billing_interval: orNull(s.payment_frequency_interval),
    billing_interval_count: toMinor(s.payment_frequency_count) === null ? 1 : toMinor(s.payment_frequency_count),
    next_billing_date: orNull(s.next_billing_date),
    previous_billing_date: orNull(s.previous_billing_date),
    cancel_at_next_billing_date: s.cancel_at_next_billing_date === true,
    cancelled_at: orNull(s.cancelled_at),
    created_at: orNull(s.created_at),
    metadata: s.metadata || {},
  };
  return webhook;
}
