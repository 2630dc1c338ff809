/**
 * Byte copies that are copies. A Node Buffer is a Uint8Array whose `slice()` returns a view of the same memory
 * (not a copy, unlike Uint8Array's), and whose `buffer` is often a shared pool (small files read with
 * readFileSync or readFile) or starts before the bytes (`byteOffset` != 0). Code that needs its own bytes (to
 * swap them, to build a typed array from byte 0 of a buffer, or to hand them to a decoder that takes an
 * ArrayBuffer) copies with {@link copyBytes}; code that reads in place uses `buffer` with `byteOffset`.
 * @module
 */

/**
 * A copy of `bytes[start, end)` in a fresh ArrayBuffer of exactly that length, at byte 0, whatever `bytes` is
 * (a Uint8Array, a Node Buffer, a view at any offset). The caller's bytes are never changed through it.
 */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(Math.max(0, Math.min(end, bytes.length) - start));
  out.set(bytes.subarray(start, start + out.length));
  return out;
}
