/*
 * headrace built-in template "credit" (transform = "builtin:credit").
 *
 * Handles every credit.* event. Eight are a credit ledger entry (added, deducted, expired,
 * manual_adjustment, overage_charged, overage_reset, rolled_over, rollover_forfeited) and one is an
 * alert (balance_low); the output has the keys of both, null where the event has no such value.
 * Every other event sets `webhook.cancel = true` (recorded as cancelled, not sent). The output is
 * exactly the arguments of the kit script f/dodo/record_credit and the inputs of the flow f/dodo/on_credit
 * (which alerts on balance_low).
 *
 * Credits are units of a credit entitlement, not money: Dodo sends them as decimal text ("10000"),
 * and they are passed on as that exact text, never through JavaScript's Number (text that is not a
 * decimal number gives null and a note). Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only
 * extra that headrace adds). Every key is always present.
 *
 * Output (webhook.payload):
 *   event_type                   string          "credit.added", ..., "credit.balance_low"
 *   webhook_id                   string          Dodo webhook-id, unique per event
 *   timestamp                    string          event time (ISO 8601)
 *   business_id                  string
 *   customer_id                  string
 *   credit_entitlement_id        string
 *   credit_entitlement_name      string | null   balance_low only
 *   subscription_id              string | null   balance_low only
 *   entry_id                     string | null   the ledger entry (cle_...); null for balance_low
 *   transaction_type             string | null   credit_added, credit_deducted, ...; null for balance_low
 *   is_credit                    boolean | null  true when the entry adds credits
 *   amount                       string | null   the entry's amount, exact decimal text
 *   balance_before               string | null
 *   balance_after                string | null
 *   overage_before               string | null
 *   overage_after                string | null
 *   available_balance            string | null   balance_low: what is left
 *   threshold_amount             string | null   balance_low: the threshold that was crossed
 *   threshold_percent            integer | null  balance_low: the same as a percentage
 *   subscription_credits_amount  string | null   balance_low: credits the subscription grants per period
 *   description                  string | null
 *   grant_id                     string | null
 *   reference_id                 string | null
 *   reference_type               string | null
 *   metadata                     object          the entry's metadata ({} when none)
 *   created_at                   string | null   ISO 8601 (balance_low carries none)
 *   notes                        array           why a value is null although Dodo sent something; [] normally
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
  if (!webhook.eventType.startsWith("credit.")) {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const c = body.data;
  const notes = [];
  const entry = webhook.eventType !== "credit.balance_low";
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(c.business_id || body.business_id),
    customer_id: orNull(c.customer_id),
    credit_entitlement_id: orNull(c.credit_entitlement_id),
    credit_entitlement_name: orNull(c.credit_entitlement_name),
    subscription_id: orNull(c.subscription_id),
    entry_id: entry ? orNull(c.id) : null,
    transaction_type: orNull(c.transaction_type),
    is_credit: typeof c.is_credit === "boolean" ? c.is_credit : null,
    amount: decimalString("amount", c.amount, notes),
    balance_before: decimalString("balance_before", c.balance_before, notes),
    balance_after: decimalString("balance_after", c.balance_after, notes),
    overage_before: decimalString("overage_before", c.overage_before, notes),
    overage_after: decimalString("overage_after", c.overage_after, notes),
    available_balance: decimalString("available_balance", c.available_balance, notes),
    threshold_amount: decimalString("threshold_amount", c.threshold_amount, notes),
    threshold_percent: typeof c.threshold_percent === "number" ? c.threshold_percent : null,
    subscription_credits_amount: decimalString("subscription_credits_amount", c.subscription_credits_amount, notes),
    description: orNull(c.description),
    grant_id: orNull(c.grant_id),
    reference_id: orNull(c.reference_id),
    reference_type: orNull(c.reference_type),
    metadata: c.metadata || {},
    created_at: orNull(c.created_at),
    notes: notes,
  };
  return webhook;
}
