// Decoding of record keys, values and headers. The console fetches them as base64 (so nothing is mangled)
// and shows them as text, pretty-printed JSON, base64 or hex, as the user picks.

export function fromBase64(b64) {
  if (b64 === null || b64 === undefined) return null;
  const binary = atob(b64);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  return out;
}

export function toBase64(bytes) {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function asText(bytes) {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

export const asHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

/** {text, format}: the bytes shown as asked; 'auto' picks JSON, then text, then hex. */
export function decode(b64, mode) {
  const bytes = fromBase64(b64);
  if (bytes === null) return { text: 'null', format: 'null' };
  if (mode === 'base64') return { text: b64, format: 'base64' };
  if (mode === 'hex') return { text: asHex(bytes), format: 'hex' };
  const text = asText(bytes);
  if (mode === 'json' || mode === 'auto') {
    if (text !== null) {
      try {
        return { text: JSON.stringify(JSON.parse(text), null, 2), format: 'json' };
      } catch {
        if (mode === 'json') return { text: `${text}`, format: 'text (not JSON)' };
      }
    }
  }
  if (text !== null) return { text, format: 'text' };
  return { text: asHex(bytes), format: 'hex (binary)' };
}

/** A header's value as text: the API gives it as text, or as base64 (with format "base64") when it is binary. */
export function headerText(header) {
  if (header.value === null || header.value === undefined) return 'null';
  if (header.format !== 'base64') return header.value;
  return decode(header.value, 'auto').text;
}

/** Does a record match a search (key, value or a header, as text or hex)? */
export function matches(record, needle, where) {
  if (!needle) return true;
  const lower = needle.toLowerCase();
  const has = (b64) => {
    const bytes = fromBase64(b64);
    if (bytes === null) return false;
    const text = asText(bytes);
    return (text !== null && text.toLowerCase().includes(lower)) || asHex(bytes).replace(/ /g, '').includes(lower.replace(/ /g, ''));
  };
  if ((where === 'any' || where === 'key') && has(record.key)) return true;
  if ((where === 'any' || where === 'value') && has(record.value)) return true;
  if (where === 'any' || where === 'header') {
    for (const header of record.headers || []) {
      if (header.key.toLowerCase().includes(lower) || headerText(header).toLowerCase().includes(lower)) return true;
    }
  }
  return false;
}
