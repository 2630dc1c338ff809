/**
 * Seeded random numbers and the format-blind mutations of the fuzz harness: bit flips, byte sets (random and
 * "interesting" values), truncation, splices of two files, duplicated and deleted ranges. Every mutation is a
 * pure function of the input bytes and the generator, so a case is reproduced from its seed alone.
 * @module
 */

/** A small seeded generator (mulberry32): the same seed gives the same cases on every platform. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** An integer in [0, n) (0 when n <= 0). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  /** One element of a non-empty list. */
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
}

/** The seed of case `index` of a run started with `seed` (so any case can be rerun alone). */
export function caseSeed(seed: number, reader: string, index: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const c of `${reader}:${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** Byte values that break parsers more often than random ones. */
const INTERESTING8 = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x30, 0x39, 0x2d, 0x5c, 0x22, 0x7b, 0x5b];
/** 16- and 32-bit values (written little- or big-endian) that break length and size fields. */
const INTERESTING32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** The names of the generic mutations, for reports. */
export const GENERIC_KINDS = ['bitflip', 'byteset', 'interesting', 'truncate', 'splice', 'duplicate', 'delete', 'zero-range'] as const;
export type GenericKind = (typeof GENERIC_KINDS)[number];

/**
 * One to a few generic mutations of `bytes` (a new array; `bytes` is not changed). `other` is a second file for
 * splices. `protect` bytes at the start are left alone by the point mutations (e.g. a magic number), so more
 * cases reach the deeper parts; truncation and splices still cut anywhere.
 */
export function mutateGeneric(rng: Rng, bytes: Uint8Array, other: Uint8Array, protect = 0): { bytes: Uint8Array; kinds: GenericKind[] } {
  let b = bytes.slice();
  const kinds: GenericKind[] = [];
  const n = 1 + (rng.chance(0.5) ? 0 : rng.int(4));
  for (let m = 0; m < n; m++) {
    const kind = rng.pick(GENERIC_KINDS);
    kinds.push(kind);
    const lo = Math.min(protect, Math.max(0, b.length - 1));
    const at = () => lo + rng.int(b.length - lo);
    switch (kind) {
      case 'bitflip': {
        if (!b.length) break;
        for (let k = 1 + rng.int(8); k > 0; k--) {
          const i = at();
          b[i] = b[i]! ^ (1 << rng.int(8));
        }
        break;
      }
      case 'byteset': {
        if (!b.length) break;
        for (let k = 1 + rng.int(8); k > 0; k--) b[at()] = rng.int(256);
        break;
      }
      case 'interesting': {
        if (b.length < 4) break;
        const i = lo + rng.int(Math.max(1, b.length - 4 - lo));
        const v = rng.pick(INTERESTING32);
        const width = rng.pick([1, 2, 4]);
        const le = rng.chance(0.7);
        if (width === 1) b[i] = rng.pick(INTERESTING8);
        else for (let k = 0; k < width; k++) b[i + (le ? k : width - 1 - k)] = (v >>> (8 * k)) & 0xff;
        break;
      }
      case 'truncate':
        b = b.slice(0, rng.int(b.length + 1));
        break;
      case 'splice': {
        const cut = rng.int(b.length + 1);
        const from = rng.int(other.length + 1);
        const head = b.subarray(0, cut);
        const tail = other.subarray(from);
        const out = new Uint8Array(head.length + tail.length);
        out.set(head, 0);
        out.set(tail, head.length);
        b = out;
        break;
      }
      case 'duplicate': {
        if (!b.length) break;
        const start = rng.int(b.length);
        const len = 1 + rng.int(Math.min(4096, b.length - start));
        const to = rng.int(b.length + 1);
        const piece = b.slice(start, start + len);
        const out = new Uint8Array(b.length + piece.length);
        out.set(b.subarray(0, to), 0);
        out.set(piece, to);
        out.set(b.subarray(to), to + piece.length);
        b = out;
        break;
      }
      case 'delete': {
        if (!b.length) break;
        const start = rng.int(b.length);
        const len = 1 + rng.int(Math.min(4096, b.length - start));
        const out = new Uint8Array(b.length - len);
        out.set(b.subarray(0, start), 0);
        out.set(b.subarray(start + len), start);
        b = out;
        break;
      }
      case 'zero-range': {
        if (!b.length) break;
        const start = at();
        b.fill(rng.chance(0.5) ? 0 : 0xff, start, Math.min(b.length, start + 1 + rng.int(256)));
        break;
      }
    }
  }
  return { bytes: b, kinds };
}

/** Replaces `bytes[at, at + len)` with `insert` (a new array). */
export function replaceRange(bytes: Uint8Array, at: number, len: number, insert: Uint8Array): Uint8Array {
  at = Math.max(0, Math.min(at, bytes.length));
  len = Math.max(0, Math.min(len, bytes.length - at));
  const out = new Uint8Array(bytes.length - len + insert.length);
  out.set(bytes.subarray(0, at), 0);
  out.set(insert, at);
  out.set(bytes.subarray(at + len), at + insert.length);
  return out;
}

/** Integer values for lying size and count fields of `bits` width (signed readers see the top ones as negative). */
export function lyingInt(rng: Rng, bits: 16 | 32, honest: number): number {
  const max = bits === 16 ? 0xffff : 0xffffffff;
  const opts = [0, 1, 2, 3, honest + 1, honest - 1, honest * 2, honest + rng.int(64), max, max - 1, (max >>> 1), (max >>> 1) + 1, rng.int(max + 1)];
  return (rng.pick(opts) >>> 0) & max;
}
