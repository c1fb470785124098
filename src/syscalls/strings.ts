/** C strings for setup-path calls. */

const encoder = new TextEncoder();

/** A NUL-terminated UTF-8 copy of a string, to pass as a `const char *`. */
export function encodeCString(s: string): Uint8Array {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
