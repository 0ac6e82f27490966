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
