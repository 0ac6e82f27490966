/*
 * headrace built-in template "payment" (transform = "builtin:payment").
 *
 * Handles payment.succeeded, payment.failed, payment.processing and payment.cancelled; every other
 * event sets `webhook.cancel = true`, so a misrouted event is recorded as cancelled, never sent in
 * the wrong shape. The output is exactly the arguments of the kit scripts f/dodo/validate_payment
 * and f/dodo/record_payment and the inputs of the flow f/dodo/on_payment.
 *
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds) as the
 * idempotency key. Every key is always present (null when Dodo sends nothing), so no key can
 * vanish from the JSON.
 *
 * Output (webhook.payload):
 *   event_type         string          "payment.succeeded", ...
 *   webhook_id         string          Dodo webhook-id, unique per event; use it for idempotency
 *   timestamp          string          event time (ISO 8601, the body's `timestamp`)
 *   business_id        string
 *   payment_id         string
 *   status             string | null   succeeded, failed, processing, cancelled, ...
 *   currency           string          ISO 4217 code, upper case
 *   currency_exponent  integer         minor-unit digits: 0 JPY/KRW/VND/CLP..., 2 USD..., 3 BHD/KWD/OMR/JOD/TND...
 *   amount_minor       integer         total_amount in minor units (JPY 5000 = ¥5000, USD 4999 = $49.99)
 *   amount             string          the same amount as an exact decimal string ("49.99", "5000", "1.250")
 *   tax_minor          integer | null  tax in minor units
 *   tax                string | null   tax as a decimal string
 *   customer_id        string
 *   customer_email     string
 *   customer_name      string
 *   customer_phone     string | null
 *   payment_method     string | null   "card", "upi", ...
 *   subscription_id    string | null   the one subscription, when the payment names exactly one
 *   subscription_ids   array           every subscription the payment starts or charges ([] for a one-time payment)
 *   is_multi_subscription boolean      true when one payment starts several subscriptions (subscription_id is null)
 *   product_cart       array           [{product_id: string, quantity: integer}], [] when none
 *   error_code         string | null   set on failed payments
 *   error_message      string | null
 *   metadata           object          the payment's metadata ({} when none)
 *   created_at         string          when the payment was created (ISO 8601)
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

// Every subscription of the payment: Dodo's `subscription_ids` (SDK 1.123+), else the single
// `subscription_id` of older payloads, else none.
function subscriptionIds(p) {
  if (Array.isArray(p.subscription_ids)) return p.subscription_ids.filter((id) => typeof id === "string");
  return typeof p.subscription_id === "string" && p.subscription_id !== "" ? [p.subscription_id] : [];
}

const HANDLED = ["payment.succeeded", "payment.failed", "payment.processing", "payment.cancelled"];

function handler(webhook) {
  if (!HANDLED.includes(webhook.eventType)) {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const p = body.data;
  const customer = p.customer || {};
  const currency = String(p.currency || "").toUpperCase();
  const exponent = currencyExponent(currency);
  const amountMinor = toMinor(p.total_amount);
  const taxMinor = toMinor(p.tax);
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(p.business_id || body.business_id),
    payment_id: p.payment_id,
    status: orNull(p.status),
    currency: currency,
    currency_exponent: exponent,
    amount_minor: amountMinor,
    amount: formatMinor(amountMinor, exponent),
    tax_minor: taxMinor,
    tax: formatMinor(taxMinor, exponent),
    customer_id: orNull(customer.customer_id),
    customer_email: orNull(customer.email),
    customer_name: orNull(customer.name),
    customer_phone: orNull(customer.phone_number),
    payment_method: orNull(p.payment_method),
    subscription_id: orNull(p.subscription_id),
    subscription_ids: subscriptionIds(p),
    is_multi_subscription: p.is_multi_subscription === true,
    product_cart: (p.product_cart || []).map((item) => ({
      product_id: item.product_id,
      quantity: toMinor(item.quantity) === null ? 1 : toMinor(item.quantity),
    })),
    error_code: orNull(p.error_code),
    error_message: orNull(p.error_message),
    metadata: p.metadata || {},
    created_at: orNull(p.created_at),
  };
  return webhook;
}
