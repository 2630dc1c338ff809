/**
 * Structure-aware mutations of DICOM Part 10 files: a small element walker (top level only; nested sequences
 * are stepped over) and edits that keep the rest of the file well formed so the lie reaches the reader: lengths
 * that lie (including undefined length with no delimiter), wrong VRs, image attributes and numeric strings that
 * lie, deep sequence nesting with and without delimiters, fragments past the end, basic offset tables that lie,
 * a transfer syntax swapped for another. Deflated files are inflated, edited and deflated again.
 * @module
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { lyingInt, replaceRange, type Rng } from './mutate.js';

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const ALL_VRS = ['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'ZZ', '\0\0'];

/** One element of the top level of a data set. */
export interface Elem {
  tag: number;
  /** Offset of the tag. */
  pos: number;
  /** Offset of the VR (explicit VR only), else -1. */
  vrPos: number;
  lenPos: number;
  lenSize: 2 | 4;
  valuePos: number;
  /** The stored length (0xffffffff: undefined). */
  length: number;
  /** Offset just past the element (for undefined lengths: past its delimiter, when found). */
  end: number;
}

/** The layout of a Part 10 file. */
export interface DicomLayout {
  meta: Elem[];
  /** Where the data set starts (after group 0002). */
  dataStart: number;
  transferSyntax: string;
  explicit: boolean;
  littleEndian: boolean;
  deflated: boolean;
}

function u16(b: Uint8Array, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}
function u32(b: Uint8Array, o: number, le: boolean): number {
  return le ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0 : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
function put(b: Uint8Array, o: number, v: number, size: number, le: boolean): void {
  for (let k = 0; k < size; k++) b[o + (le ? k : size - 1 - k)] = (v / 2 ** (8 * k)) & 0xff;
}

/** Offset just past the delimiter (FFFE,E0DD) closing the undefined-length value starting at `from`, nesting counted. */
function skipUndefined(b: Uint8Array, from: number, le: boolean): number {
  let depth = 1;
  for (let o = from; o + 8 <= b.length; o += 2) {
    if (u16(b, o, le) !== 0xfffe) continue;
    const e = u16(b, o + 2, le);
    const len = u32(b, o + 4, le);
    if (e === 0xe0dd) {
      if (--depth === 0) return o + 8;
    } else if ((e === 0xe000 || e === 0xe00d) && len === 0xffffffff) {
      // an item of undefined length inside: its own delimiter follows (not counted against the sequence's)
    }
  }
  return b.length;
}

/** The top-level elements from `start`, as far as they can be walked. */
export function walk(b: Uint8Array, start: number, explicit: boolean, le: boolean, stopGroup = -1): Elem[] {
  const out: Elem[] = [];
  let o = start;
  while (o + 8 <= b.length) {
    const group = u16(b, o, le);
    if (stopGroup >= 0 && group !== stopGroup) break;
    const tag = ((group << 16) | u16(b, o + 2, le)) >>> 0;
    let e: Elem;
    const vr = String.fromCharCode(b[o + 4]!, b[o + 5]!);
    if (explicit && group !== 0xfffe) {
      if (LONG_VRS.has(vr)) {
        if (o + 12 > b.length) break;
        e = { tag, pos: o, vrPos: o + 4, lenPos: o + 8, lenSize: 4, valuePos: o + 12, length: u32(b, o + 8, le), end: 0 };
      } else {
        e = { tag, pos: o, vrPos: o + 4, lenPos: o + 6, lenSize: 2, valuePos: o + 8, length: u16(b, o + 6, le), end: 0 };
      }
    } else {
      e = { tag, pos: o, vrPos: -1, lenPos: o + 4, lenSize: 4, valuePos: o + 8, length: u32(b, o + 4, le), end: 0 };
    }
    e.end = e.length === 0xffffffff ? skipUndefined(b, e.valuePos, le) : e.valuePos + e.length;
    out.push(e);
    if (e.end <= o || e.end > b.length) break;
    o = e.end;
  }
  return out;
}

/** The layout of a Part 10 file, or undefined when it has no preamble (then only generic mutations apply). */
export function layout(b: Uint8Array): DicomLayout | undefined {
  if (b.length < 140 || String.fromCharCode(...b.subarray(128, 132)) !== 'DICM') return undefined;
  const meta = walk(b, 132, true, true, 0x0002);
  const last = meta[meta.length - 1];
  if (!last) return undefined;
  const tsEl = meta.find((e) => e.tag === 0x00020010);
  const ts = tsEl ? String.fromCharCode(...b.subarray(tsEl.valuePos, tsEl.valuePos + tsEl.length)).replace(/[\0 ]+$/, '') : '';
  return {
    meta,
    dataStart: last.end,
    transferSyntax: ts,
    explicit: ts !== '1.2.840.10008.1.2',
    littleEndian: ts !== '1.2.840.10008.1.2.2',
    deflated: ts === '1.2.840.10008.1.2.1.99',
  };
}

/** Encodes one element header (+ value) in the given encoding. */
export function element(tag: number, vr: string, value: Uint8Array | null, explicit: boolean, le: boolean, length = value?.length ?? 0xffffffff): Uint8Array {
  const group = tag >>> 16;
  const longForm = !explicit || group === 0xfffe || LONG_VRS.has(vr);
  const head = new Uint8Array(explicit && group !== 0xfffe ? (longForm ? 12 : 8) : 8);
  put(head, 0, group, 2, le);
  put(head, 2, tag & 0xffff, 2, le);
  if (explicit && group !== 0xfffe) {
    head[4] = vr.charCodeAt(0);
    head[5] = vr.charCodeAt(1);
    put(head, longForm ? 8 : 6, length, longForm ? 4 : 2, le);
  } else put(head, 4, length, 4, le);
  if (!value) return head;
  const out = new Uint8Array(head.length + value.length);
  out.set(head, 0);
  out.set(value, head.length);
  return out;
}

const ascii = (s: string) => Uint8Array.from(s.length % 2 ? `${s} ` : s, (c) => c.charCodeAt(0) & 0xff);

/** The names of the DICOM structure mutations, for reports. */
export const DICOM_KINDS = ['length-lie', 'undefined-length', 'vr-swap', 'image-attr', 'string-lie', 'deep-sequence', 'pixel-length', 'fragments', 'offset-table', 'ts-swap', 'meta-length'] as const;
export type DicomKind = (typeof DICOM_KINDS)[number];

const US_TAGS = [0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102, 0x00280103, 0x00280002, 0x00280120];
const STRING_TAGS: [number, string][] = [[0x00280008, 'IS'], [0x00200032, 'DS'], [0x00200037, 'DS'], [0x00280030, 'DS'], [0x00281053, 'DS'], [0x00281052, 'DS'], [0x00180050, 'DS'], [0x00080060, 'CS'], [0x0020000e, 'UI'], [0x00080008, 'CS']];
const LYING_STRINGS = ['0', '-1', '2', '99999', '100001', '1e9', 'NaN', 'Infinity', '1e308', '-1e308', '1\\0\\0\\0\\1\\0', '0\\0\\0\\0\\0\\0', 'nan\\inf\\1', '1e-320', '', ' ', '\\\\\\', '4294967296', '3.5', 'CT', 'LOCALIZER'];
const TS_LIST = ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.50', '1.2.3'];

/** Inserts `el` into the data set in tag order (replacing an element of the same tag). */
function insertInOrder(ds: Uint8Array, elems: Elem[], tag: number, el: Uint8Array): Uint8Array {
  const same = elems.find((e) => e.tag === tag);
  if (same) return replaceRange(ds, same.pos, same.end - same.pos, el);
  const after = elems.find((e) => e.tag > tag);
  return replaceRange(ds, after ? after.pos : ds.length, 0, el);
}

/** Nested sequences: `depth` levels of SQ (tag) > item, with or without their delimiters. */
function deepSequence(tag: number, depth: number, delimited: boolean, explicit: boolean, le: boolean): Uint8Array {
  const sq = element(tag, 'SQ', null, explicit, le);
  const item = element(0xfffee000, '', null, explicit, le);
  const itemEnd = element(0xfffee00d, '', new Uint8Array(0), explicit, le);
  const seqEnd = element(0xfffee0dd, '', new Uint8Array(0), explicit, le);
  const open = sq.length + item.length;
  const close = itemEnd.length + seqEnd.length;
  const out = new Uint8Array(depth * (open + (delimited ? close : 0)));
  let o = 0;
  for (let d = 0; d < depth; d++) {
    out.set(sq, o);
    out.set(item, o + sq.length);
    o += open;
  }
  if (delimited) for (let d = 0; d < depth; d++, o += close) {
    out.set(itemEnd, o);
    out.set(seqEnd, o + itemEnd.length);
  }
  return out;
}

/**
 * One structure-aware mutation of a Part 10 file (returns undefined when the file gives the mutation nothing
 * to work on, e.g. no encapsulated pixel data for 'fragments').
 */
export function mutateDicom(rng: Rng, file: Uint8Array, kind: DicomKind): Uint8Array | undefined {
  const lay = layout(file);
  if (!lay) return undefined;
  const { explicit, littleEndian: le } = lay;
  if (kind === 'meta-length' || kind === 'ts-swap') {
    const b = file.slice();
    if (kind === 'meta-length') {
      const e = rng.pick(lay.meta);
      put(b, e.lenPos, lyingInt(rng, e.lenSize === 2 ? 16 : 32, e.length), e.lenSize, true);
      return b;
    }
    const ts = lay.meta.find((e) => e.tag === 0x00020010);
    if (!ts) return undefined;
    const el = element(0x00020010, 'UI', ascii(`${rng.pick(TS_LIST)}\0`.replace(/ $/, '')), true, true);
    return replaceRange(b, ts.pos, ts.end - ts.pos, el);
  }
  const head = file.subarray(0, lay.dataStart);
  let ds = file.subarray(lay.dataStart);
  if (lay.deflated) {
    try {
      ds = new Uint8Array(inflateRawSync(ds));
    } catch {
      return undefined;
    }
  }
  const elems = walk(ds, 0, explicit, le);
  if (!elems.length) return undefined;
  let out: Uint8Array | undefined = ds.slice();
  const pixel = elems.find((e) => e.tag === 0x7fe00010);
  switch (kind) {
    case 'length-lie': {
      const e = rng.pick(elems);
      put(out, e.lenPos, lyingInt(rng, e.lenSize === 2 ? 16 : 32, e.length === 0xffffffff ? 0 : e.length), e.lenSize, le);
      break;
    }
    case 'undefined-length': {
      // A long-form element (or any, in implicit VR) given undefined length, with no delimiter anywhere after it.
      const cands = elems.filter((e) => e.lenSize === 4);
      if (!cands.length) return undefined;
      const e = rng.pick(cands);
      put(out, e.lenPos, 0xffffffff, 4, le);
      if (rng.chance(0.5)) out = out.subarray(0, Math.min(out.length, e.valuePos + rng.int(Math.max(1, e.end - e.valuePos))));
      break;
    }
    case 'vr-swap': {
      if (!explicit) return undefined;
      const e = rng.pick(elems);
      const vr = rng.pick(ALL_VRS);
      out[e.vrPos] = vr.charCodeAt(0);
      out[e.vrPos + 1] = vr.charCodeAt(1);
      break;
    }
    case 'image-attr': {
      const cands = elems.filter((e) => US_TAGS.includes(e.tag) && e.length >= 2);
      if (!cands.length) return undefined;
      const e = rng.pick(cands);
      put(out, e.valuePos, rng.pick([0, 1, 2, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 64, 0x7fff, 0x8000, 0xffff, 16384, 16385, rng.int(0x10000)]), 2, le);
      break;
    }
    case 'string-lie': {
      const [tag, vr] = rng.pick(STRING_TAGS);
      out = insertInOrder(out, elems, tag, element(tag, vr, ascii(rng.pick(LYING_STRINGS)), explicit, le));
      break;
    }
    case 'deep-sequence': {
      const depth = rng.pick([2, 10, 100, 1000, 5000, 20000]);
      const tag = rng.pick([0x52009229, 0x52009230, 0x00081140, 0x00209113]);
      const nest = deepSequence(tag, depth, rng.chance(0.5), explicit, le);
      out = insertInOrder(out, elems, tag, nest);
      break;
    }
    case 'pixel-length': {
      if (!pixel) return undefined;
      const left = ds.length - pixel.valuePos;
      const v = rng.pick([left + 1, left + 2, left * 2, 0x7fffffff, 0xfffffffe, 1, 3, 0, Math.max(0, left - 1)]);
      put(out, pixel.lenPos, v >>> 0, pixel.lenSize, le);
      break;
    }
    case 'fragments':
    case 'offset-table': {
      if (!pixel || pixel.length !== 0xffffffff) return undefined;
      const items = walk(out, pixel.valuePos, false, le).filter((e) => e.tag === 0xfffee000);
      if (!items.length) return undefined;
      if (kind === 'offset-table') {
        const bot = items[0]!;
        // A basic offset table that lies: entries past the end, decreasing, or a length not a multiple of 4.
        const n = 1 + rng.int(4);
        const table = new Uint8Array(4 * n + (rng.chance(0.2) ? 2 : 0));
        for (let i = 0; i < n; i++) put(table, 4 * i, rng.pick([0, 1, 7, 0xffff, 0x7fffffff, 0xfffffff0, rng.int(1 << 20)]), 4, le);
        out = replaceRange(out, bot.pos, bot.end - bot.pos, element(0xfffee000, '', table, false, le));
      } else {
        const frag = rng.pick(items.slice(1).length ? items.slice(1) : items);
        const what = rng.int(4);
        if (what === 0) put(out, frag.lenPos, rng.pick([frag.length + 1, 0x7fffffff, 0xfffffffe, out.length]) >>> 0, 4, le); // past the end
        else if (what === 1) out = out.subarray(0, frag.valuePos + rng.int(Math.max(1, frag.length))); // cut inside, no delimiter
        else if (what === 2) put(out, frag.pos + 2, rng.pick([0xe00d, 0xe0dd, 0x0000, 0xe001]), 2, le); // not an item tag
        else out = replaceRange(out, frag.end, 0, element(0xfffee000, '', null, false, le, rng.pick([0xffffffff, 0x7ffffff0, 16]))); // a dangling fragment
      }
      break;
    }
  }
  if (!out) return undefined;
  let body = out;
  if (lay.deflated) body = new Uint8Array(deflateRawSync(out));
  const res = new Uint8Array(head.length + body.length);
  res.set(head, 0);
  res.set(body, head.length);
  return res;
}
