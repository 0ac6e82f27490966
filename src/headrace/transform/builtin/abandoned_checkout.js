/*
 * headrace built-in template "abandoned_checkout" (transform = "builtin:abandoned_checkout").
 *
 * Handles abandoned_checkout.detected and abandoned_checkout.recovered. Every other event sets
 * `webhook.cancel = true` (recorded as cancelled, not sent). The output is exactly the arguments of the
 * kit script f/dodo/email_checkout_recovery.
 *
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds). Every key is
 * always present (null when Dodo sends nothing).
 *
 * Output (webhook.payload):
 *   event_type            string          "abandoned_checkout.detected" or "abandoned_checkout.recovered"
 *   webhook_id            string          Dodo webhook-id, unique per event
 *   timestamp             string          event time (ISO 8601)
 *   business_id           string
 *   payment_id            string          the abandoned checkout's payment
 *   customer_id           string
 *   status                string          abandoned, recovering, recovered, exhausted, opted_out
 *   abandonment_reason    string | null   payment_failed, checkout_incomplete
 *   abandoned_at          string | null   ISO 8601
 *   recovered_payment_id  string | null   the payment that completed it (recovered)
 */

// --- begin block: values (from tools/template_blocks/values.js; edit it there, then run tools/gen_templates.py) ---
// What Dodo sent, or null when it sent nothing. An empty string stays "" (the paired kit scripts take it
// as it is).
function orNull(value) {
  return value === undefined ? null : value;
}

// A decimal number Dodo sends as text ("10000", "-250", "12.5"), kept as that exact text; null for
// nothing. Anything else is left null with a note: never coerced through JavaScript's Number.
function decimalString(name, value, notes) {
  if (value === null || value === undefined) return null;
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return value.trim();
  notes.push(`${name}: Dodo sent ${JSON.stringify(value)}, not a decimal number; left null`);
  return null;
}
// --- end block: values ---

function handler(webhook) {
  const handled = ["abandoned_checkout.detected", "abandoned_checkout.recovered"];
  if (!handled.includes(webhook.eventType)) {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const a = body.data;
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(a.business_id || body.business_id),
    payment_id: a.payment_id,
    customer_id: orNull(a.customer_id),
    status: orNull(a.status),
    abandonment_reason: orNull(a.abandonment_reason),
    abandoned_at: orNull(a.abandoned_at),
    recovered_payment_id: orNull(a.recovered_payment_id),
  };
  return webhook;
}
