/*
 * headrace built-in template "payout" (transform = "builtin:payout").
 *
 * Handles every payout.* event: created, in_progress, on_hold, failed, success. Every other event sets
 * `webhook.cancel = true` (recorded as cancelled, not sent). The output is exactly the arguments of the
 * kit script f/dodo/record_payout (the payout ledger).
 *
 * Amounts are integers in the currency's minor unit, formatted per currency (never divided by 100).
 * Reads `webhook.webhookId` (the Dodo `webhook-id`, a read-only extra that headrace adds). Every key is
 * always present (null when Dodo sends nothing).
 *
 * Output (webhook.payload):
 *   event_type          string          "payout.created", ..., "payout.success"
 *   webhook_id          string          Dodo webhook-id, unique per event
 *   timestamp           string          event time (ISO 8601)
 *   business_id         string
 *   payout_id           string
 *   status              string          not_initiated, in_progress, on_hold, failed, success
 *   name                string | null
 *   currency            string | null   ISO 4217 code, upper case
 *   currency_exponent   integer | null  minor-unit digits (0 JPY, 2 USD, 3 KWD, ...); null for an unknown code
 *   amount_minor        integer | null  the amount paid out, in minor units
 *   amount              string | null   the same as an exact decimal string (null, with a note, if unknown)
 *   fee_minor           integer | null  Dodo's fee
 *   tax_minor           integer | null
 *   refunds_minor       integer | null  refunds deducted from this payout
 *   chargebacks_minor   integer | null  chargebacks deducted from this payout
 *   payment_method      string | null
 *   payout_document_url string | null
 *   remarks             string | null
 *   created_at          string          ISO 8601
 *   updated_at          string | null   ISO 8601
 *   notes               array           why a value is null although Dodo sent something (unknown currency, ...); [] normally
 */

// --- begin block: currency (from tools/template_blocks/currency.js; edit it there, then run tools/gen_templates.py) ---
// ISO 4217 minor-unit digits of every currency the templates know: the active ISO 4217 codes, plus HRK
// and SLL, which Dodo still lists. A code that is not here (or no code at all) has no known exponent:
// its amounts are left null with a note, never guessed.
const MINOR_UNIT_EXPONENTS = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0,
  UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4,
  AED: 2, AFN: 2, ALL: 2, AMD: 2, ANG: 2, AOA: 2, ARS: 2, AUD: 2, AWG: 2, AZN: 2, BAM: 2, BBD: 2, BDT: 2,
  BGN: 2, BMD: 2, BND: 2, BOB: 2, BOV: 2, BRL: 2, BSD: 2, BTN: 2, BWP: 2, BYN: 2, BZD: 2, CAD: 2, CDF: 2,
  CHE: 2, CHF: 2, CHW: 2, CNY: 2, COP: 2, COU: 2, CRC: 2, CUP: 2, CVE: 2, CZK: 2, DKK: 2, DOP: 2, DZD: 2,
  EGP: 2, ERN: 2, ETB: 2, EUR: 2, FJD: 2, FKP: 2, GBP: 2, GEL: 2, GHS: 2, GIP: 2, GMD: 2, GTQ: 2, GYD: 2,
  HKD: 2, HNL: 2, HRK: 2, HTG: 2, HUF: 2, IDR: 2, ILS: 2, INR: 2, IRR: 2, JMD: 2, KES: 2, KGS: 2, KHR: 2,
  KPW: 2, KYD: 2, KZT: 2, LAK: 2, LBP: 2, LKR: 2, LRD: 2, LSL: 2, MAD: 2, MDL: 2, MGA: 2, MKD: 2, MMK: 2,
  MNT: 2, MOP: 2, MRU: 2, MUR: 2, MVR: 2, MWK: 2, MXN: 2, MXV: 2, MYR: 2, MZN: 2, NAD: 2, NGN: 2, NIO: 2,
  NOK: 2, NPR: 2, NZD: 2, PAB: 2, PEN: 2, PGK: 2, PHP: 2, PKR: 2, PLN: 2, QAR: 2, RON: 2, RSD: 2, RUB: 2,
  SAR: 2, SBD: 2, SCR: 2, SDG: 2, SEK: 2, SGD: 2, SHP: 2, SLE: 2, SLL: 2, SOS: 2, SRD: 2, SSP: 2, STN: 2,
  SVC: 2, SYP: 2, SZL: 2, THB: 2, TJS: 2, TMT: 2, TOP: 2, TRY: 2, TTD: 2, TWD: 2, TZS: 2, UAH: 2, USD: 2,
  USN: 2, UYU: 2, UZS: 2, VED: 2, VES: 2, WST: 2, XCD: 2, XCG: 2, YER: 2, ZAR: 2, ZMW: 2, ZWG: 2,
};

// The upper-case currency code Dodo sent, or null when it sent none.
function currencyCode(value) {
  return typeof value === "string" && value.trim() !== "" ? value.trim().toUpperCase() : null;
}

// Minor-unit digits of `code` (0 JPY, 2 USD, 3 KWD), or null when the code is missing or unknown.
function currencyExponent(code) {
  return typeof code === "string" && Object.prototype.hasOwnProperty.call(MINOR_UNIT_EXPONENTS, code)
    ? MINOR_UNIT_EXPONENTS[code]
    : null;
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
  if (minor === null || exponent === null) return null;
  const digits = String(Math.abs(minor));
  if (exponent === 0) return (minor < 0 ? "-" : "") + digits;
  const padded = digits.padStart(exponent + 1, "0");
  const whole = padded.slice(0, padded.length - exponent);
  const fraction = padded.slice(padded.length - exponent);
  return (minor < 0 ? "-" : "") + whole + "." + fraction;
}

// `${name}_minor` from Dodo's `value`; when Dodo sent something that is not an integer, null and a note.
function minorUnits(name, value, notes) {
  const minor = toMinor(value);
  if (minor === null && value !== null && value !== undefined) {
    const sent = JSON.stringify(value);
    notes.push(`${name}_minor: Dodo sent ${sent}, not an integer number of minor units; left null`);
  }
  return minor;
}

// `${name}` as an exact decimal string, or null with a note when the currency's decimals are not known:
// the exponent is never guessed.
function decimalText(name, minor, currency, exponent, notes) {
  if (minor === null) return null;
  if (exponent === null) {
    const why =
      currency === null
        ? "Dodo sent no currency"
        : `currency ${JSON.stringify(currency)} is not an ISO 4217 code this template knows`;
    notes.push(`${name}: ${why}, so its decimal places are unknown; left null, never guessed ` +
      `(${name}_minor is exact)`);
    return null;
  }
  return formatMinor(minor, exponent);
}

// What Dodo sent, or null when it sent nothing. An empty string stays "" (a customer's name may be
// empty, and the paired kit scripts take it as it is).
function orNull(value) {
  return value === undefined ? null : value;
}
// --- end block: currency ---

function handler(webhook) {
  if (!webhook.eventType.startsWith("payout.")) {
    webhook.cancel = true;
    return webhook;
  }
  const body = webhook.payload;
  const p = body.data;
  const notes = [];
  const currency = currencyCode(p.currency);
  const exponent = currencyExponent(currency);
  const amountMinor = minorUnits("amount", p.amount, notes);
  webhook.payload = {
    event_type: webhook.eventType,
    webhook_id: orNull(webhook.webhookId),
    timestamp: body.timestamp,
    business_id: orNull(p.business_id || body.business_id),
    payout_id: p.payout_id,
    status: orNull(p.status),
    name: orNull(p.name),
    currency: currency,
    currency_exponent: exponent,
    amount_minor: amountMinor,
    amount: decimalText("amount", amountMinor, currency, exponent, notes),
    fee_minor: minorUnits("fee", p.fee, notes),
    tax_minor: minorUnits("tax", p.tax, notes),
    refunds_minor: minorUnits("refunds", p.refunds, notes),
    chargebacks_minor: minorUnits("chargebacks", p.chargebacks, notes),
    payment_method: orNull(p.payment_method),
    payout_document_url: orNull(p.payout_document_url),
    remarks: orNull(p.remarks),
    created_at: orNull(p.created_at),
    updated_at: orNull(p.updated_at),
    notes: notes,
  };
  return webhook;
}
