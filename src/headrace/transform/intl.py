"""The sandbox's locale formatting: exactly Node's output for the common en-US cases, an error for the rest.

QuickJS has no `Intl`: `Intl` is undefined and `(49.99).toLocaleString("en-US", {style: "currency", …})`
answers "49.99" where Node (V8 with ICU, what Dodo's dashboard runs) answers "$49.99". A silently different
string would reach Windmill, so this shim, evaluated before a user script that mentions `Intl` or a
`…ocale…` method, gives:

- `Intl.NumberFormat(locales, options).format(x)`, `Number.prototype.toLocaleString`,
  `BigInt.prototype.toLocaleString` and `Array.prototype.toLocaleString`, for the locales `en-US` / `en`
  (or none) and the options `style` (decimal, currency, percent), `currency` (the codes in `CURRENCIES`,
  symbols and digits as Node 20's ICU prints them), `currencyDisplay` (symbol, code),
  `minimumFractionDigits`, `maximumFractionDigits`, `minimumIntegerDigits`, `useGrouping` (true/false), with
  ICU's rounding (half away from zero on the shortest decimal form of the number);
- `Date.prototype.toLocaleDateString` for `en-US` / `en` (or none), with no options, `{timeZone: "UTC"}`, and
  `{year: "numeric", month: "long" | "short" | "numeric" | "2-digit", day: "numeric" | "2-digit"}`;
- a TypeError naming the feature for everything else: another locale, another option, another currency,
  `Intl.DateTimeFormat` and the other `Intl` constructors, `Date.prototype.toLocaleString` and
  `toLocaleTimeString`, `String.prototype.localeCompare`, `toLocaleUpperCase` / `toLocaleLowerCase` with a locale.

tests/integration/test_sandbox_vs_node.py compares every supported case with Node byte for byte.
"""

from __future__ import annotations

import re

# Case-insensitive: "toLocaleString", "localeCompare", "Intl". A script that builds these names at run time
# escapes the shim (and gets QuickJS's own, different strings); see docs/transformations.md.
NEEDS_SHIM = re.compile(r"ocale|Intl")

INTL_SHIM = r"""(() => {
// Errors the shim raises point at the user's line: the outermost shim function cuts itself out of the stack.
const OURS = Symbol("headrace.intl");
const mark = (error) => Object.defineProperty(error, OURS, { value: true });
const unsupported = (what, hint) => {
  throw mark(new TypeError(what + " is not supported in the headrace sandbox (QuickJS has no Intl; Node would "
    + "give a different string). " + (hint || "Format the value yourself, e.g. with toFixed() or toISOString().")));
};
let depth = 0;
const api = (fn) => {
  const entry = function (...args) {
    depth++;
    try {
      return fn.apply(this, args);
    } catch (error) {
      if (depth === 1 && error !== null && typeof error === "object" && error[OURS]) {
        Error.captureStackTrace(error, entry);
      }
      throw error;
    } finally {
      depth--;
    }
  };
  Object.defineProperty(entry, "name", { value: fn.name });
  entry.prototype = fn.prototype;
  return entry;
};
// Symbol (as Node 20's ICU prints it in en-US, a no-break space after a code) and fraction digits.
const CURRENCIES = {
  USD: ["$", 2], EUR: ["\u20ac", 2], GBP: ["\u00a3", 2], JPY: ["\u00a5", 0], INR: ["\u20b9", 2], CAD: ["CA$", 2],
  AUD: ["A$", 2], CNY: ["CN\u00a5", 2], KRW: ["\u20a9", 0], BRL: ["R$", 2], MXN: ["MX$", 2], NZD: ["NZ$", 2],
  HKD: ["HK$", 2], SGD: ["SGD\u00a0", 2], CHF: ["CHF\u00a0", 2], SEK: ["SEK\u00a0", 2], NOK: ["NOK\u00a0", 2],
  DKK: ["DKK\u00a0", 2], PLN: ["PLN\u00a0", 2], CZK: ["CZK\u00a0", 2], HUF: ["HUF\u00a0", 0], ILS: ["\u20aa", 2],
  TRY: ["TRY\u00a0", 2], ZAR: ["ZAR\u00a0", 2], THB: ["THB\u00a0", 2], IDR: ["IDR\u00a0", 0], MYR: ["MYR\u00a0", 2],
  PHP: ["\u20b1", 2], VND: ["\u20ab", 0], TWD: ["NT$", 2], AED: ["AED\u00a0", 2], SAR: ["SAR\u00a0", 2],
  BHD: ["BHD\u00a0", 3], KWD: ["KWD\u00a0", 3], JOD: ["JOD\u00a0", 3], OMR: ["OMR\u00a0", 3], TND: ["TND\u00a0", 3],
  CLP: ["CLP\u00a0", 0], ISK: ["ISK\u00a0", 0], NGN: ["NGN\u00a0", 2], EGP: ["EGP\u00a0", 2], PKR: ["PKR\u00a0", 0],
  COP: ["COP\u00a0", 0], ARS: ["ARS\u00a0", 2], PEN: ["PEN\u00a0", 2], RON: ["RON\u00a0", 2], KES: ["KES\u00a0", 2],
  RUB: ["RUB\u00a0", 2], UAH: ["UAH\u00a0", 2], BGN: ["BGN\u00a0", 2], IQD: ["IQD\u00a0", 0], LYD: ["LYD\u00a0", 3],
  UGX: ["UGX\u00a0", 0], XAF: ["FCFA\u00a0", 0], XOF: ["F\u202fCFA\u00a0", 0],
};
const checkLocale = (locales, what) => {
  if (locales === undefined) return;
  const list = Array.isArray(locales) ? locales : [locales];
  if (list.length === 0) return;
  if (list[0] !== "en-US" && list[0] !== "en") {
    unsupported(what + " for locale " + JSON.stringify(list[0]), 'Only "en-US" (or "en", or no locale) is.');
  }
};
const optionsObject = (options) => (options === undefined ? {} : Object(options));
const digitsOption = (options, name, low, high, fallback) => {
  const value = options[name];
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isFinite(number) || number < low || number > high) {
    throw mark(new RangeError(name + " value is out of range."));
  }
  return Math.floor(number);
};
const UNSUPPORTED_NUMBER_OPTIONS = ["notation", "compactDisplay", "signDisplay", "unit", "unitDisplay",
  "currencySign", "minimumSignificantDigits", "maximumSignificantDigits", "roundingMode", "roundingPriority",
  "roundingIncrement", "trailingZeroDisplay", "numberingSystem"];

function resolveNumber(locales, options, what) {
  checkLocale(locales, what);
  options = optionsObject(options);
  for (const name of UNSUPPORTED_NUMBER_OPTIONS) {
    if (options[name] !== undefined) unsupported(what + " option " + name);
  }
  const style = options.style === undefined ? "decimal" : String(options.style);
  if (style === "unit") unsupported(what + ' with style "unit"');
  if (style !== "decimal" && style !== "currency" && style !== "percent") {
    throw mark(new RangeError("Value " + style + " out of range for Intl.NumberFormat options property style"));
  }
  let prefix = "";
  let currencyDigits = 0;
  if (options.currency !== undefined || style === "currency") {
    if (options.currency === undefined) throw mark(new TypeError("Currency code is required with currency style."));
    const code = String(options.currency);
    if (!/^[A-Za-z]{3}$/.test(code)) throw mark(new RangeError("Invalid currency code : " + code));
    const known = CURRENCIES[code.toUpperCase()];
    if (known === undefined) {
      const supported = "Supported: " + Object.keys(CURRENCIES).join(", ") + ".";
      unsupported(what + " for currency " + code.toUpperCase(), supported);
    }
    const display = options.currencyDisplay === undefined ? "symbol" : String(options.currencyDisplay);
    if (display !== "symbol" && display !== "code") unsupported(what + ' with currencyDisplay "' + display + '"');
    if (style === "currency") prefix = display === "code" ? code.toUpperCase() + "\u00a0" : known[0];
    currencyDigits = known[1];
  }
  const minDefault = style === "currency" ? currencyDigits : 0;
  const maxDefault = style === "currency" ? currencyDigits : style === "percent" ? 0 : 3;
  const minimumIntegerDigits = digitsOption(options, "minimumIntegerDigits", 1, 21, 1);
  // Node 20 (V8 11.3) takes 0-20 fraction digits; later versions take up to 100.
  let minimum = digitsOption(options, "minimumFractionDigits", 0, 20, undefined);
  let maximum = digitsOption(options, "maximumFractionDigits", 0, 20, undefined);
  if (minimum === undefined && maximum === undefined) {
    minimum = minDefault;
    maximum = maxDefault;
  } else if (minimum === undefined) {
    minimum = Math.min(minDefault, maximum);
  } else if (maximum === undefined) {
    maximum = Math.max(maxDefault, minimum);
  } else if (minimum > maximum) {
    throw mark(new RangeError("maximumFractionDigits value is out of range."));
  }
  const grouping = options.useGrouping;
  if (grouping !== undefined && grouping !== true && grouping !== false) {
    unsupported(what + " option useGrouping " + JSON.stringify(grouping), "Use true or false.");
  }
  return { style, prefix, minimum, maximum, minimumIntegerDigits, grouping: grouping !== false };
}

// |x| as decimal digits (no leading zeros) and the position of the decimal point from their left.
function decimalOf(text) {
  const match = /^(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(text);
  const whole = match[1], fraction = match[2] || "";
  let digits = whole + fraction;
  let point = whole.length + (match[3] ? Number(match[3]) : 0);
  const lead = digits.length - digits.replace(/^0+/, "").length;
  digits = digits.slice(lead);
  point -= lead;
  return digits === "" ? { digits: "0", point: 1 } : { digits, point };
}

function increment(digits) {
  const out = digits.split("");
  let i = out.length - 1;
  while (i >= 0 && out[i] === "9") out[i--] = "0";
  if (i < 0) return "1" + out.join("");
  out[i] = String(Number(out[i]) + 1);
  return out.join("");
}

function formatDecimal(negative, decimal, spec) {
  let { digits, point } = decimal;
  if (spec.style === "percent") point += 2;
  const keep = point + spec.maximum; // digits kept: the value times 10^maximum, rounded half away from zero
  let scaled;
  if (keep < 0) scaled = "0";
  else {
    scaled = digits.slice(0, keep).padEnd(keep, "0") || "0";
    if (keep < digits.length && digits[keep] >= "5") scaled = increment(scaled);
  }
  scaled = scaled.padStart(spec.maximum + 1, "0");
  let whole = scaled.slice(0, scaled.length - spec.maximum).replace(/^0+(?=\d)/, "");
  let fraction = scaled.slice(scaled.length - spec.maximum);
  while (fraction.length > spec.minimum && fraction.endsWith("0")) fraction = fraction.slice(0, -1);
  whole = whole.padStart(spec.minimumIntegerDigits, "0");
  if (spec.grouping) whole = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const number = fraction ? whole + "." + fraction : whole;
  return (negative ? "-" : "") + spec.prefix + number + (spec.style === "percent" ? "%" : "");
}

const DECIMAL_STRING = /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i;

function formatValue(value, spec) {
  if (typeof value === "bigint") {
    return formatDecimal(value < 0n, decimalOf(String(value < 0n ? -value : value)), spec);
  }
  if (typeof value === "string" && DECIMAL_STRING.test(value)) {
    const text = value.trim();
    return formatDecimal(text[0] === "-", decimalOf(text.replace(/^[+-]/, "")), spec);
  }
  const number = Number(value);
  const negative = number < 0 || Object.is(number, -0);
  const suffix = spec.style === "percent" ? "%" : "";
  if (Number.isNaN(number)) return spec.prefix + "NaN" + suffix;
  if (!Number.isFinite(number)) return (negative ? "-" : "") + spec.prefix + "\u221e" + suffix;
  return formatDecimal(negative, decimalOf(String(Math.abs(number))), spec);
}

const define = (target, name, fn) =>
  Object.defineProperty(target, name, { value: api(fn), writable: true, configurable: true });
const missing = (target, owner, names) => {
  for (const name of names) define(target, name, function () { unsupported(owner + name); });
};

const NumberFormat = api(function NumberFormat(locales, options) {
  const spec = resolveNumber(locales, options, "Intl.NumberFormat");
  const formatter = Object.create(NumberFormat.prototype);
  const format = api(function format(value) {
    return formatValue(value, spec);
  });
  Object.defineProperty(formatter, "format", { value: format });
  return formatter;
});
missing(NumberFormat.prototype, "Intl.NumberFormat.prototype.", ["formatToParts", "formatRange", "resolvedOptions"]);
missing(NumberFormat, "Intl.NumberFormat.", ["supportedLocalesOf"]);
const Intl = { NumberFormat };
missing(Intl, "Intl.", ["Collator", "DateTimeFormat", "DisplayNames", "DurationFormat", "ListFormat", "Locale",
  "PluralRules", "RelativeTimeFormat", "Segmenter", "getCanonicalLocales", "supportedValuesOf"]);
Object.defineProperty(globalThis, "Intl", { value: Intl, writable: true, configurable: true });

const numberValue = Number.prototype.valueOf;
const bigintValue = BigInt.prototype.valueOf;
define(Number.prototype, "toLocaleString", function toLocaleString(locales, options) {
  const x = numberValue.call(this);
  return formatValue(x, resolveNumber(locales, options, "Number.prototype.toLocaleString"));
});
define(BigInt.prototype, "toLocaleString", function toLocaleString(locales, options) {
  const x = bigintValue.call(this);
  return formatValue(x, resolveNumber(locales, options, "BigInt.prototype.toLocaleString"));
});
define(Array.prototype, "toLocaleString", function toLocaleString(locales, options) {
  const items = Object(this);
  const out = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    out.push(item === undefined || item === null ? "" : item.toLocaleString(locales, options));
  }
  return out.join(",");
});

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
  "November", "December"];
const DATE_OPTIONS = new Set(["timeZone", "year", "month", "day", "localeMatcher"]);
const timeValue = Date.prototype.getTime;
define(Date.prototype, "toLocaleDateString", function toLocaleDateString(locales, options) {
  const what = "Date.prototype.toLocaleDateString";
  const t = timeValue.call(this);
  checkLocale(locales, what);
  options = optionsObject(options);
  for (const name in options) {
    if (options[name] !== undefined && !DATE_OPTIONS.has(name)) unsupported(what + " option " + name);
  }
  const zone = options.timeZone;
  if (zone !== undefined && String(zone).toUpperCase() !== "UTC") {
    unsupported(what + " with timeZone " + JSON.stringify(zone), 'Only "UTC" (or none: local time) is.');
  }
  const { year, month, day } = options;
  let shape;
  if (year === undefined && month === undefined && day === undefined) shape = "numeric";
  else if (year === "numeric" && (month === "long" || month === "short") && day === "numeric") shape = month;
  else if (year === "numeric" && month === "numeric" && day === "numeric") shape = "numeric";
  else if (year === "numeric" && month === "2-digit" && day === "2-digit") shape = "2-digit";
  else unsupported(what + " with year/month/day " + JSON.stringify([year, month, day]),
    'Supported: none, or year "numeric" with month "long", "short", "numeric" or "2-digit" and a matching day.');
  if (Number.isNaN(t)) return "Invalid Date";
  const date = new Date(t);
  const utc = zone !== undefined;
  const y = utc ? date.getUTCFullYear() : date.getFullYear();
  const m = utc ? date.getUTCMonth() : date.getMonth();
  const d = utc ? date.getUTCDate() : date.getDate();
  if (y < 1000 || y > 9999) unsupported(what + " for the year " + y);
  if (shape === "long" || shape === "short") {
    return (shape === "long" ? MONTHS[m] : MONTHS[m].slice(0, 3)) + " " + d + ", " + y;
  }
  if (shape === "2-digit") return String(m + 1).padStart(2, "0") + "/" + String(d).padStart(2, "0") + "/" + y;
  return (m + 1) + "/" + d + "/" + y;
});
define(Date.prototype, "toLocaleString", function toLocaleString() {
  unsupported("Date.prototype.toLocaleString", "Use toISOString(), or toLocaleDateString() for the date alone.");
});
define(Date.prototype, "toLocaleTimeString", function toLocaleTimeString() {
  unsupported("Date.prototype.toLocaleTimeString", "Use toISOString() or getUTCHours()/getUTCMinutes().");
});
define(String.prototype, "localeCompare", function localeCompare() {
  unsupported("String.prototype.localeCompare", "Compare with < and > (code unit order) if that is what you need.");
});
for (const name of ["toLocaleUpperCase", "toLocaleLowerCase"]) {
  const plain = name === "toLocaleUpperCase" ? String.prototype.toUpperCase : String.prototype.toLowerCase;
  define(String.prototype, name, function (locales) {
    checkLocale(locales, "String.prototype." + name);
    return plain.call(this);
  });
}
})();
"""
