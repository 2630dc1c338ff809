/**
 * Structure-aware mutations of NIfTI headers, safetensors headers and the compressed pixel codestreams (RLE
 * frame headers, JPEG / JPEG-LS SOF and SOS, JPEG 2000 SIZ / COD / SOT): fields that lie about sizes, offsets,
 * types and counts, written where the format keeps them so the reader meets the lie rather than a broken magic.
 * @module
 */
import { replaceRange, type Rng } from './mutate.js';

// ---------------------------------------------------------------------------------------------- NIfTI

/** The names of the NIfTI structure mutations. */
export const NIFTI_KINDS = ['dim', 'dim0', 'huge-dims', 'datatype', 'bitpix', 'vox_offset', 'scaling', 'pixdim', 'xform', 'sizeof_hdr', 'magic', 'nonfinite-voxels'] as const;
export type NiftiKind = (typeof NIFTI_KINDS)[number];

const DATATYPE_CODES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, -1, 3, 0x7fff];

/** One structure-aware mutation of an uncompressed NIfTI-1 or NIfTI-2 file (undefined if it is neither). */
export function mutateNifti(rng: Rng, file: Uint8Array, kind: NiftiKind): Uint8Array | undefined {
  if (file.length < 348) return undefined;
  const b = file.slice();
  const v = new DataView(b.buffer);
  const le1 = v.getInt32(0, true);
  const be1 = v.getInt32(0, false);
  const version = le1 === 348 || be1 === 348 ? 1 : le1 === 540 || be1 === 540 ? 2 : 0;
  if (!version || (version === 2 && b.length < 544)) return undefined;
  const le = le1 === 348 || le1 === 540;
  const n1 = version === 1;
  const dimAt = (k: number) => (n1 ? 40 + 2 * k : 16 + 8 * k);
  const setDim = (k: number, d: number) => (n1 ? v.setInt16(dimAt(k), d, le) : v.setBigInt64(dimAt(k), BigInt(d), le));
  const getDim = (k: number) => (n1 ? v.getInt16(dimAt(k), le) : Number(v.getBigInt64(dimAt(k), le)));
  const setF = (o1: number, o2: number, x: number) => (n1 ? v.setFloat32(o1, x, le) : v.setFloat64(o2, x, le));
  const weird = [NaN, Infinity, -Infinity, 0, -0, 1e38, -1e38, 3.5e38, 1e-45, -1, 0.5, 1e308];
  switch (kind) {
    case 'dim': {
      const k = 1 + rng.int(7);
      const big = n1 ? [32767, -32768, 0x7fff, 16384] : [2 ** 31, 2 ** 40, 2 ** 53 - 1, -(2 ** 40)];
      setDim(k, rng.pick([0, -1, 1, 2, getDim(k) + 1, getDim(k) * 2, ...big]));
      break;
    }
    case 'dim0':
      setDim(0, rng.pick([-1, 0, 1, 2, 3, 4, 5, 7, 8, 9, 0x7fff]));
      break;
    case 'huge-dims': {
      // 2^40 voxels or more, in a file of a few KB: must be refused before any allocation.
      setDim(0, 3);
      if (n1) [1, 2, 3].forEach((k) => setDim(k, rng.pick([32767, 16384, 30000])));
      else {
        setDim(1, 2 ** 20);
        setDim(2, 2 ** 20);
        setDim(3, rng.pick([1, 2, 1024]));
      }
      break;
    }
    case 'datatype':
      v.setInt16(n1 ? 70 : 12, rng.pick(DATATYPE_CODES), le);
      break;
    case 'bitpix':
      v.setInt16(n1 ? 72 : 14, rng.pick([0, 1, 7, 8, 16, 32, 64, 128, -16, 0x7fff]), le);
      break;
    case 'vox_offset': {
      const opts = [0, 4, 347, 348, 351, 352, 352.5, 353, 540, 544, b.length, b.length + 1, b.length - 1, 2 ** 31, 2 ** 40, -352, NaN, Infinity, 1e30];
      const x = rng.pick(opts);
      if (n1) v.setFloat32(108, x, le);
      else v.setBigInt64(168, BigInt(Number.isFinite(x) ? Math.trunc(x) : rng.pick([2 ** 53, -(2 ** 53)])) * (rng.chance(0.1) ? 2n ** 10n : 1n), le);
      break;
    }
    case 'scaling':
      if (rng.chance(0.5)) setF(112, 176, rng.pick(weird));
      if (rng.chance(0.5)) setF(116, 184, rng.pick(weird));
      break;
    case 'pixdim':
      for (let i = 0; i < 1 + rng.int(3); i++) {
        const k = rng.int(8);
        setF(76 + 4 * k, 104 + 8 * k, rng.pick(weird));
      }
      break;
    case 'xform': {
      const which = rng.int(4);
      if (which === 0) v.setInt16(n1 ? 252 : 344, rng.pick([0, 1, 2, 5, -1, 99]), le);
      else if (which === 1) v.setInt16(n1 ? 254 : 348, rng.pick([0, 1, 2, 5, -1, 99]), le);
      else if (which === 2) setF(256 + 4 * rng.int(6), 352 + 8 * rng.int(6), rng.pick([...weird, 1, 0.9, 1.0000001]));
      else setF(280 + 4 * rng.int(12), 400 + 8 * rng.int(12), rng.pick(weird));
      if (rng.chance(0.5)) v.setInt16(n1 ? 254 : 348, 1, le);
      break;
    }
    case 'sizeof_hdr':
      v.setInt32(0, rng.pick([348, 540, 0, -348, 349, 0x5c010000]), rng.chance(0.5));
      break;
    case 'magic': {
      const m = rng.pick(['ni1\0', 'ni2\0', 'n+2\0', 'n+1\0', '\0\0\0\0', 'n+1 ']);
      const at = n1 ? 344 : 4;
      for (let i = 0; i < 4; i++) b[at + i] = m.charCodeAt(i);
      break;
    }
    case 'nonfinite-voxels': {
      // float32 / float64 voxels set to NaN or +-Inf (the reader's stated behaviour: PADDING_HU and a note).
      const dt = v.getInt16(n1 ? 70 : 12, le);
      const size = dt === 16 ? 4 : dt === 64 ? 8 : 0;
      const off = n1 ? v.getFloat32(108, le) : Number(v.getBigInt64(168, le));
      if (!size || !(off >= 0) || off >= b.length) return undefined;
      const count = Math.floor((b.length - off) / size);
      for (let i = 0; i < 1 + rng.int(8) && count > 0; i++) {
        const o = off + size * rng.int(count);
        const x = rng.pick([NaN, Infinity, -Infinity]);
        if (size === 4) v.setFloat32(o, x, le);
        else v.setFloat64(o, x, le);
      }
      break;
    }
  }
  return b;
}

// ---------------------------------------------------------------------------------------------- safetensors

/** The names of the safetensors structure mutations. */
export const SAFETENSORS_KINDS = ['header-length', 'offsets', 'dtype', 'shape', 'metadata', 'drop-tensor', 'duplicate-key', 'json-nesting', 'nonfinite-data'] as const;
export type SafetensorsKind = (typeof SAFETENSORS_KINDS)[number];

const DTYPES = ['BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64', 'F128', 'f32', '', 7, null];

function lieNumber(rng: Rng, honest: number): unknown {
  return rng.pick([honest + 1, honest - 1, honest + 4, 0, -1, -honest, honest * 2, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, 1e308, 0.5, honest + 0.5, '8', null, [honest], Number.MAX_SAFE_INTEGER]);
}

/** One structure-aware mutation of a safetensors file (header JSON rewritten, the prefix fixed to match unless the prefix is the lie). */
export function mutateSafetensors(rng: Rng, file: Uint8Array, kind: SafetensorsKind): Uint8Array | undefined {
  if (file.length < 8) return undefined;
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > file.length - 8) return undefined;
  let header: Record<string, any>;
  try {
    header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)));
  } catch {
    return undefined;
  }
  const data = file.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const t = names.length ? header[rng.pick(names)] : undefined;
  let text: string | undefined;
  let body = data;
  let prefix: bigint | undefined;
  switch (kind) {
    case 'header-length':
      prefix = BigInt(rng.pick([n + 1, n - 1, n + 8, 0, 1, 2, file.length, file.length - 7, 100_000_000, 100_000_001])) & 0xffffffffffffffffn;
      if (rng.chance(0.2)) prefix = rng.pick([2n ** 63n, 2n ** 64n - 1n, 2n ** 53n + 1n]);
      break;
    case 'offsets':
      if (!t) return undefined;
      t.data_offsets = rng.chance(0.3) ? rng.pick([[], [0], [1, 0], [0, 0, 0], 'x', null, [2 ** 53, 2 ** 53 + 4]]) : [lieNumber(rng, t.data_offsets[0]), rng.chance(0.5) ? t.data_offsets[1] : lieNumber(rng, t.data_offsets[1])];
      break;
    case 'dtype':
      if (!t) return undefined;
      t.dtype = rng.pick(DTYPES);
      break;
    case 'shape':
      if (!t) return undefined;
      t.shape = rng.pick([[2 ** 31, 2 ** 31], [2 ** 20, 2 ** 20, 2 ** 20], [-1], [1.5], ['2'], [[2]], null, 5, [], [0], [2 ** 53], [...(t.shape as number[]), 1], [...(t.shape as number[]), 0], (t.shape as number[]).slice(1)]);
      break;
    case 'metadata':
      header.__metadata__ = rng.pick<unknown>([{ a: 1 }, { a: null }, [], 'x', { a: { b: 'c' } }, { ['covidct.config']: '{"x":' }, JSON.parse('{"__proto__": "x"}'), { constructor: 'x' }]);
      break;
    case 'drop-tensor':
      if (!names.length) return undefined;
      delete header[rng.pick(names)];
      break;
    case 'duplicate-key': {
      if (!names.length) return undefined;
      const name = rng.pick(names);
      const s = JSON.stringify(header);
      text = `${s.slice(0, -1)},${JSON.stringify(name)}:${JSON.stringify({ ...header[name], data_offsets: [0, 0], shape: [0] })}}`;
      break;
    }
    case 'json-nesting': {
      const depth = rng.pick([100, 10_000, 200_000]);
      text = `{"x":${'['.repeat(depth)}${']'.repeat(rng.chance(0.5) ? depth : 0)}}`;
      break;
    }
    case 'nonfinite-data': {
      const f32 = names.filter((k) => header[k].dtype === 'F32' && header[k].data_offsets[1] > header[k].data_offsets[0]);
      if (!f32.length) return undefined;
      const tt = header[rng.pick(f32)];
      body = data.slice();
      const bv = new DataView(body.buffer, body.byteOffset, body.byteLength);
      const [b0, b1] = tt.data_offsets as [number, number];
      for (let i = 0; i < 1 + rng.int(3); i++) bv.setFloat32(b0 + 4 * rng.int((b1 - b0) / 4), rng.pick([NaN, Infinity, -Infinity]), true);
      break;
    }
  }
  const headerBytes = new TextEncoder().encode(text ?? JSON.stringify(header));
  const out = new Uint8Array(8 + headerBytes.length + body.length);
  new DataView(out.buffer).setBigUint64(0, prefix ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(body, 8 + headerBytes.length);
  return out;
}

// ---------------------------------------------------------------------------------------------- codecs

/** The names of the codestream mutations. */
export const CODEC_KINDS = ['rle-header', 'sof', 'sos', 'j2k-siz', 'j2k-cod', 'j2k-sot', 'marker-length'] as const;
export type CodecKind = (typeof CODEC_KINDS)[number];

function findMarker(b: Uint8Array, m: number, from = 0): number {
  for (let i = from; i + 1 < b.length; i++) if (b[i] === 0xff && b[i + 1] === m) return i;
  return -1;
}

/** One structure-aware mutation of a compressed frame (undefined when the frame has no such part). */
export function mutateCodec(rng: Rng, frame: Uint8Array, kind: CodecKind): Uint8Array | undefined {
  const b = frame.slice();
  const v = new DataView(b.buffer);
  const big16 = () => rng.pick([0, 1, 2, 255, 256, 0x7fff, 0x8000, 0xffff, 16384, 16385]);
  const big32 = () => rng.pick([0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 65536, 1 << 20, rng.int(2 ** 32)]) >>> 0;
  switch (kind) {
    case 'rle-header': {
      if (b.length < 64) return undefined;
      if (rng.chance(0.4)) v.setUint32(0, rng.pick([0, 1, 2, 3, 15, 16, 0xffffffff]), true);
      else v.setUint32(4 * (1 + rng.int(15)), rng.pick([0, 63, 64, b.length, b.length + 1, 0xffffffff, rng.int(b.length + 100)]) >>> 0, true);
      return b;
    }
    case 'sof': {
      let at = findMarker(b, 0xc3);
      if (at < 0) at = findMarker(b, 0xf7);
      if (at < 0) at = findMarker(b, 0xc0);
      if (at < 0 || at + 10 > b.length) return undefined;
      const field = rng.int(4);
      if (field === 0) b[at + 4] = rng.pick([0, 1, 2, 8, 12, 16, 17, 255]); // precision
      else if (field === 1) v.setUint16(at + 5, big16()); // lines
      else if (field === 2) v.setUint16(at + 7, big16()); // samples per line
      else b[at + 9] = rng.pick([0, 2, 3, 4, 255]); // components
      return b;
    }
    case 'sos': {
      const at = findMarker(b, 0xda);
      if (at < 0 || at + 8 > b.length) return undefined;
      if (rng.chance(0.5)) b[at + 4] = rng.pick([0, 2, 4, 255]); // components in scan
      else b[at + 4 + 1 + 2 * b[at + 4]!] = rng.int(256); // predictor / NEAR / Ss
      return b;
    }
    case 'j2k-siz': {
      const at = findMarker(b, 0x51);
      if (at < 0 || at + 40 > b.length) return undefined;
      const off = rng.pick([6, 10, 14, 18, 22, 26, 30]); // Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz, XTOsiz
      if (rng.chance(0.8)) v.setUint32(at + off, big32());
      else v.setUint16(at + 38, big16()); // Csiz
      return b;
    }
    case 'j2k-cod': {
      const at = findMarker(b, 0x52);
      if (at < 0 || at + 14 > b.length) return undefined;
      b[at + 4 + 1 + rng.int(9)] = rng.pick([0, 1, 32, 33, 255]); // progression, layers, levels, code-block size...
      return b;
    }
    case 'j2k-sot': {
      const at = findMarker(b, 0x90);
      if (at < 0 || at + 12 > b.length) return undefined;
      if (rng.chance(0.5)) v.setUint32(at + 6, big32()); // Psot
      else v.setUint16(at + 4, big16()); // Isot
      return b;
    }
    case 'marker-length': {
      // Any marker segment's length field lying.
      const ats: number[] = [];
      for (let i = 0; i + 3 < b.length && ats.length < 64; i++) if (b[i] === 0xff && b[i + 1]! >= 0xc0 && b[i + 1]! !== 0xff && b[i + 1]! !== 0xd8 && b[i + 1]! !== 0xd9) ats.push(i);
      if (!ats.length) return undefined;
      const at = rng.pick(ats);
      v.setUint16(at + 2, big16());
      return rng.chance(0.3) ? replaceRange(b, at + 4, 0, new Uint8Array(rng.int(8))) : b;
    }
  }
}
