/**
 * Raw DEFLATE (RFC 1951) decoding, synchronous, for DICOM's Deflated Explicit VR Little Endian transfer syntax
 * (1.2.840.10008.1.2.1.99: everything after the file meta information is one raw deflate stream).
 *
 * Why our own and not DecompressionStream('deflate-raw'): the header scan (`scanDicomFiles`) is synchronous by
 * contract and must read a deflated file's header too; the web-standard streams are asynchronous only. The
 * decoder is the textbook one (canonical Huffman tables built from code lengths, as in zlib's puff.c), about
 * as fast as needed for headers and small series. Output is bounded by `maxOutput`: a stream that would grow
 * beyond it stops with a ScanError, never an unbounded allocation.
 * @module
 */
import { ScanError } from '../errors.js';

const LEN_BASE = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258];
const LEN_EXTRA = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0];
const DIST_BASE = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
  4097, 6145, 8193, 12289, 16385, 24577];
const DIST_EXTRA = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];
const CL_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];

/** Canonical Huffman table: count of codes per length, symbols in code order. */
interface Huffman { count: Uint16Array; symbol: Uint16Array }

function huffman(lengths: ArrayLike<number>, n: number): Huffman {
  const count = new Uint16Array(16);
  for (let i = 0; i < n; i++) count[lengths[i]!]!++;
  count[0] = 0;
  const offs = new Uint16Array(16);
  for (let l = 1; l < 15; l++) offs[l + 1] = offs[l]! + count[l]!;
  const symbol = new Uint16Array(n);
  for (let i = 0; i < n; i++) if (lengths[i]) symbol[offs[lengths[i]!]!++] = i;
  return { count, symbol };
}

let FIXED_LIT: Huffman | undefined;
let FIXED_DIST: Huffman | undefined;

/**
 * Inflates a raw deflate stream. Throws ScanError (malformed) naming `path` for a corrupt or truncated stream,
 * or for output beyond `maxOutput` bytes.
 */
export function inflateRawSync(input: Uint8Array, path: string, maxOutput = 1 << 30): Uint8Array {
  let pos = 0;
  let bitBuf = 0;
  let bitCnt = 0;
  let out = new Uint8Array(Math.min(maxOutput, Math.max(1024, input.length * 4)));
  let outLen = 0;
  const fail = (what: string): never => {
    throw new ScanError(path, `deflated data set is corrupt (${what})`, 'malformed');
  };
  const bits = (n: number): number => {
    while (bitCnt < n) {
      if (pos >= input.length) fail('unexpected end of data');
      bitBuf |= input[pos++]! << bitCnt;
      bitCnt += 8;
    }
    const v = bitBuf & ((1 << n) - 1);
    bitBuf >>>= n;
    bitCnt -= n;
    return v;
  };
  const ensure = (extra: number): void => {
    const need = outLen + extra;
    if (need <= out.length) return;
    if (need > maxOutput) throw new ScanError(path, `deflated data set inflates beyond ${maxOutput} bytes`, 'malformed');
    const grown = new Uint8Array(Math.min(maxOutput, Math.max(need, out.length * 2)));
    grown.set(out.subarray(0, outLen));
    out = grown;
  };
  const decode = (h: Huffman): number => {
    let code = 0;
    let first = 0;
    let index = 0;
    for (let len = 1; len < 16; len++) {
      code |= bits(1);
      const count = h.count[len]!;
      if (code - count < first) return h.symbol[index + (code - first)]!;
      index += count;
      first += count;
      first <<= 1;
      code <<= 1;
    }
    return fail('bad Huffman code');
  };
  let last = 0;
  while (!last) {
    last = bits(1);
    const type = bits(2);
    if (type === 0) {
      bitBuf = 0;
      bitCnt = 0;
      if (pos + 4 > input.length) fail('unexpected end of data');
      const len = input[pos]! | (input[pos + 1]! << 8);
      const nlen = input[pos + 2]! | (input[pos + 3]! << 8);
      if (len !== (~nlen & 0xffff)) fail('stored block length check');
      pos += 4;
      if (pos + len > input.length) fail('unexpected end of data');
      ensure(len);
      out.set(input.subarray(pos, pos + len), outLen);
      outLen += len;
      pos += len;
      continue;
    }
    let lit: Huffman;
    let dist: Huffman;
    if (type === 1) {
      if (!FIXED_LIT) {
        const l = new Uint8Array(288);
        l.fill(8, 0, 144); l.fill(9, 144, 256); l.fill(7, 256, 280); l.fill(8, 280, 288);
        FIXED_LIT = huffman(l, 288);
        FIXED_DIST = huffman(new Uint8Array(30).fill(5), 30);
      }
      lit = FIXED_LIT;
      dist = FIXED_DIST!;
    } else if (type === 2) {
      const nlen = bits(5) + 257;
      const ndist = bits(5) + 1;
      const ncode = bits(4) + 4;
      if (nlen > 286 || ndist > 30) fail('bad dynamic block counts');
      const cl = new Uint8Array(19);
      for (let i = 0; i < ncode; i++) cl[CL_ORDER[i]!] = bits(3);
      const clh = huffman(cl, 19);
      const lengths = new Uint8Array(nlen + ndist);
      for (let i = 0; i < nlen + ndist;) {
        const sym = decode(clh);
        if (sym < 16) { lengths[i++] = sym; continue; }
        let rep = 0;
        let val = 0;
        if (sym === 16) {
          if (i === 0) fail('repeat with no previous length');
          val = lengths[i - 1]!;
          rep = 3 + bits(2);
        } else if (sym === 17) rep = 3 + bits(3);
        else rep = 11 + bits(7);
        if (i + rep > nlen + ndist) fail('too many code lengths');
        while (rep--) lengths[i++] = val;
      }
      lit = huffman(lengths.subarray(0, nlen), nlen);
      dist = huffman(lengths.subarray(nlen), ndist);
    } else {
      return fail('invalid block type');
    }
    for (;;) {
      const sym = decode(lit);
      if (sym < 256) {
        ensure(1);
        out[outLen++] = sym;
      } else if (sym === 256) {
        break;
      } else {
        const li = sym - 257;
        if (li >= 29) fail('bad length symbol');
        const len = LEN_BASE[li]! + bits(LEN_EXTRA[li]!);
        const di = decode(dist);
        if (di >= 30) fail('bad distance symbol');
        const d = DIST_BASE[di]! + bits(DIST_EXTRA[di]!);
        if (d > outLen) fail('distance beyond the output');
        ensure(len);
        for (let i = 0; i < len; i++, outLen++) out[outLen] = out[outLen - d]!;
      }
    }
  }
  return out.subarray(0, outLen);
}
