/*
 * headrace built-in template "entitlement_grant" (transform = "builtin:entitlement_grant").
 *
 * Handles every entitlement_grant.* event: created, delivered, failed, revoked. Every other event sets
 * `webhook.cancel = true` (recorded as cancelled, not sent). The output is exactly the arguments of the
 * kit script f/dodo/record_entitlement_grant and the inputs of the flow f/dodo/on_entitlement_grant (which
 * alerts on failed and revoked grants).
 *
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds). Every key is
 * always present (null when Dodo sends nothing).
 *
 * Output (webhook.payload):
 *   event_type             string          "entitlement_grant.created", ...
 *   webhook_id             string          Dodo webhook-id, unique per event
 *   timestamp              string          event time (ISO 8601)
 *   business_id            string
 *   grant_id               string          data.id (egr_...)
 *   entitlement_id         string
 *   integration_type       string          license_key, digital_files, discord, github, ...
 *   status                 string          Pending, Delivered, Failed, Revoked
 *   customer_id            string
 *   payment_id             string | null
 *   subscription_id        string | null
 *   license_key_id         string | null   the granted license key (integration_type license_key)
 *   delivered_at           string | null   ISO 8601
 *   revoked_at             string | null   ISO 8601
 *   revocation_reason      string | null
 *   error_code             string | null   failed grants
 *   error_message          string | null
 *   metadata               object          the grant's metadata ({} when none)
 *   created_at             string          ISO 8601
 *   updated_at             string | null   ISO 8601
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
  if (!webhook.eventType.startsWith("entitlement_grant.")) {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const g = body.data;
  const licenseKey = g.license_key || {};
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(g.business_id || body.business_id),
    grant_id: g.id,
    entitlement_id: orNull(g.entitlement_id),
    integration_type: orNull(g.integration_type),
    status: orNull(g.status),
    customer_id: orNull(g.customer_id),
    payment_id: orNull(g.payment_id),
    subscription_id: orNull(g.subscription_id),
    license_key_id: orNull(licenseKey.id),
    delivered_at: orNull(g.delivered_at),
    revoked_at: orNull(g.revoked_at),
    revocation_reason: orNull(g.revocation_reason),
    error_code: orNull(g.error_code),
    error_message: orNull(g.error_message),
    metadata: g.metadata || {},
    created_at: orNull(g.created_at),
    updated_at: orNull(g.updated_at),
  };
  return webhook;
}
