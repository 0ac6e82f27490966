/*
 * headrace built-in template "dunning" (transform = "builtin:dunning").
 *
 * Handles dunning.started and dunning.recovered: Dodo retrying a subscription's failed renewal, and the
 * retry succeeding. Every other event sets `webhook.cancel = true` (recorded as cancelled, not sent). The
 * output is exactly the arguments of the kit script f/dodo/email_dunning_notice.
 *
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds). Every key is
 * always present (null when Dodo sends nothing).
 *
 * Output (webhook.payload):
 *   event_type         string          "dunning.started" or "dunning.recovered"
 *   webhook_id         string          Dodo webhook-id, unique per event
 *   timestamp          string          event time (ISO 8601)
 *   business_id        string
 *   subscription_id    string
 *   customer_id        string
 *   status             string          recovering, recovered, exhausted
 *   trigger_state      string | null   the subscription state that started it: on_hold, cancelled, past_due
 *   payment_id         string | null   the payment that recovered it (dunning.recovered)
 *   created_at         string          ISO 8601
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
  if (webhook.eventType !== "dunning.started" && webhook.eventType !== "dunning.recovered") {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const d = body.data;
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(d.business_id || body.business_id),
    subscription_id: d.subscription_id,
    customer_id: orNull(d.customer_id),
    status: orNull(d.status),
    trigger_state: orNull(d.trigger_state),
    payment_id: orNull(d.payment_id),
    created_at: orNull(d.created_at),
  };
  return webhook;
}
