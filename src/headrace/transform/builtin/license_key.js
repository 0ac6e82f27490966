/*
 * headrace built-in template "license_key" (transform = "builtin:license_key").
 *
 * Handles license_key.created. Every other event sets `webhook.cancel = true` (recorded as cancelled,
 * not sent). The output is exactly the arguments of the kit script f/dodo/email_license_key, which
 * emails the key to the customer once.
 *
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds). Every key is
 * always present (null when Dodo sends nothing). The key itself is passed on: it is what the customer
 * bought, and the job's arguments are visible to whoever can read the job in Windmill.
 *
 * Output (webhook.payload):
 *   event_type         string          "license_key.created"
 *   webhook_id         string          Dodo webhook-id, unique per event
 *   timestamp          string          event time (ISO 8601)
 *   business_id        string
 *   license_key_id     string          data.id (lic_...)
 *   key                string          the license key
 *   status             string          active, expired, disabled
 *   product_id         string
 *   customer_id        string
 *   payment_id         string | null   the payment that created it
 *   subscription_id    string | null
 *   activations_limit  integer | null  null: unlimited
 *   instances_count    integer         activations so far
 *   expires_at         string | null   ISO 8601; null: never
 *   source             string | null   auto, import, manual
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
  if (webhook.eventType !== "license_key.created") {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const k = body.data;
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(k.business_id || body.business_id),
    license_key_id: k.id,
    key: k.key,
    status: orNull(k.status),
    product_id: orNull(k.product_id),
    customer_id: orNull(k.customer_id),
    payment_id: orNull(k.payment_id),
    subscription_id: orNull(k.subscription_id),
    activations_limit: orNull(k.activations_limit),
    instances_count: typeof k.instances_count === "number" ? k.instances_count : 0,
    expires_at: orNull(k.expires_at),
    source: orNull(k.source),
    created_at: orNull(k.created_at),
  };
  return webhook;
}
