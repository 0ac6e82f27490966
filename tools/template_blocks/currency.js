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
