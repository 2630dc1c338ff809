import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parseSafetensors,
  readSafetensorsFile,
  serializeSafetensors,
  writeSafetensorsFile,
  SafetensorsError,
  SafetensorsFile,
  f16ToF32,
  f32ToF16,
  bf16ToF32,
  f32ToBf16,
  MAX_HEADER_SIZE,
  isDtype,
  dtypeBits,
  isF32Convertible,
} from '../src/io/safetensors.js';

const enc = new TextEncoder();

/** A file image: u64 prefix (the header length unless `n` overrides it), header bytes, body bytes. */
function craft(header: string | object | Uint8Array, body: Uint8Array | number = 0, n?: number | bigint): Uint8Array {
  const h = header instanceof Uint8Array ? header : enc.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const b = typeof body === 'number' ? new Uint8Array(body) : body;
  const out = new Uint8Array(8 + h.length + b.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(n ?? h.length), true);
  out.set(h, 8);
  out.set(b, 8 + h.length);
  return out;
}

/** The SafetensorsError `fn` throws (fails the test if it throws nothing or something else). */
function errorOf(fn: () => unknown): SafetensorsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    return e as SafetensorsError;
  }
  throw new Error('expected a SafetensorsError, nothing was thrown');
}

const bad = (bytes: Uint8Array) => errorOf(() => parseSafetensors(bytes, 'bad.safetensors'));

const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });

describe('f16 / bf16 conversion', () => {
  it('f32ToF16 matches known bit patterns', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(65504)).toBe(0x7bff); // largest finite
    expect(f32ToF16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16(2 ** -14 - 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(f32ToF16(2 ** -14)).toBe(0x0400); // smallest normal
    expect(f32ToF16(0.1)).toBe(0x2e66);
    expect(f32ToF16(1 / 3)).toBe(0x3555);
    expect(f32ToF16(0)).toBe(0x0000);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
    expect(f32ToF16(NaN) & 0x7e00).toBe(0x7e00);
  });

  it('f32ToF16 rounds to nearest even, overflows to Inf and underflows to 0', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even (down)
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // above the tie
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // tie between 65504 and 2^16 -> even = Inf
    expect(f32ToF16(1e10)).toBe(0x7c00);
    expect(f32ToF16(-1e10)).toBe(0xfc00);
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal -> 0
    expect(f32ToF16(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 ulps -> 2
    expect(f32ToF16(-(2 ** -26))).toBe(0x8000);
    expect(f32ToF16(2 ** -14 - 2 ** -26)).toBe(0x0400); // subnormal rounding carries into the exponent
    expect(f32ToF16(1e-30)).toBe(0x0000);
  });

  it('f16ToF32 decodes known bit patterns', () => {
    expect(f16ToF32(0x3c00)).toBe(1);
    expect(f16ToF32(0x7bff)).toBe(65504);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x03ff)).toBe(2 ** -14 - 2 ** -24);
    expect(f16ToF32(0xc000)).toBe(-2);
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(f16ToF32(0x7c00)).toBe(Infinity);
    expect(f16ToF32(0xfc00)).toBe(-Infinity);
    expect(f16ToF32(0x7e00)).toBeNaN();
  });

  it('f16 -> f32 -> f16 is the identity on all 65536 bit patterns (NaNs stay NaN)', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16ToF32(h);
      if (Number.isNaN(v)) expect(f16ToF32(f32ToF16(v))).toBeNaN();
      else expect(f32ToF16(v)).toBe(h);
    }
  });

  it('bf16 conversions match known bit patterns and round to nearest even', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(-2)).toBe(0xc000);
    expect(f32ToBf16(Math.PI)).toBe(0x4049);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even (down)
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie -> even (up)
    expect(f32ToBf16(3.4028234663852886e38)).toBe(0x7f80); // f32 max rounds to Inf
    expect(f32ToBf16(-Infinity)).toBe(0xff80);
    expect(f32ToBf16(NaN) & 0x7fc0).toBe(0x7fc0);
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0x4049)).toBe(3.140625);
    expect(bf16ToF32(0x0001)).toBe(2 ** -133); // smallest subnormal bf16
    expect(bf16ToF32(0x7fc0)).toBeNaN();
    for (let h = 0; h < 65536; h++) {
      const v = bf16ToF32(h);
      if (!Number.isNaN(v)) expect(f32ToBf16(v)).toBe(h);
    }
  });
});

describe('serialize + parse round trip', () => {
  it('F32 values are exact, including -0, Inf, NaN and subnormals', () => {
    const data = new Float32Array([0, -0, 1.5, -3.25e-7, Infinity, -Infinity, NaN, 1.401298464324817e-45, 3.4028234663852886e38, 0.1]);
    const bytes = serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [2, 5], data }]);
    const file = parseSafetensors(bytes, 'rt.safetensors');
    expect(file).toBeInstanceOf(SafetensorsFile);
    expect(file.names()).toEqual(['w']);
    const info = file.info('w');
    expect(info).toMatchObject({ name: 'w', dtype: 'F32', shape: [2, 5], numel: 10, byteLength: 40, dataOffsets: [0, 40] });
    expect(info.byteOffset).toBe(8 + file.headerSize);
    const got = file.getF32('w');
    expect(Array.from(got).map((v) => Object.is(v, -0) ? '-0' : String(v))).toEqual(
      Array.from(data).map((v) => Object.is(v, -0) ? '-0' : String(v)),
    );
    expect(new Uint8Array(got.buffer, got.byteOffset, got.byteLength)).toEqual(new Uint8Array(data.buffer));
  });

  it('writes the same header the reference library writes, padded with spaces to 8 bytes', () => {
    const bytes = serializeSafetensors([{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(header.trimEnd()).toBe('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
    expect(/^[^ ]* *$/.test(header)).toBe(true); // only trailing spaces added
    expect(bytes.length).toBe(8 + n + 8);
  });

  it('getF32 of an aligned F32 tensor is a view aliasing the file bytes; misaligned gives a copy', () => {
    const bytes = serializeSafetensors([
      { name: 'w', dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) },
      { name: 'b', dtype: 'U8', shape: [1], data: new Uint8Array([7]) },
      { name: 'm', dtype: 'F32', shape: [2], data: new Float32Array([4, 5]) }, // relative offset 13
    ]);
    const file = parseSafetensors(bytes);
    const w = file.getF32('w');
    expect(w.buffer).toBe(bytes.buffer);
    w[0] = 42;
    expect(file.getF32('w')[0]).toBe(42); // aliasing, as documented
    const m = file.getF32('m');
    expect(Array.from(m)).toEqual([4, 5]);
    expect(m.buffer).not.toBe(bytes.buffer);
    expect(file.getRaw('b')).toEqual(new Uint8Array([7]));
    expect(file.getRaw('b').buffer).toBe(bytes.buffer);
    expect(Array.from(file.getF32('b'))).toEqual([7]);
  });

  it('parses a Uint8Array that is a view at a non-zero offset, and an ArrayBuffer', () => {
    const bytes = serializeSafetensors([{ name: 'x', dtype: 'F32', shape: [2], data: new Float32Array([0.5, -1]) }]);
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    const f1 = parseSafetensors(big.subarray(3));
    expect(Array.from(f1.getF32('x'))).toEqual([0.5, -1]); // misaligned absolute offset: copy
    const f2 = parseSafetensors(bytes.slice().buffer);
    expect(Array.from(f2.getF32('x'))).toEqual([0.5, -1]);
  });

  it('F16 round trip: Float32Array input is rounded to known bit patterns', () => {
    const values = new Float32Array([1, 65504, 2 ** -24, -2, 0.1, 70000]);
    const bytes = serializeSafetensors([{ name: 'h', dtype: 'F16', shape: [6], data: values }]);
    const file = parseSafetensors(bytes);
    const raw = file.getRaw('h');
    const bits = Array.from({ length: 6 }, (_, i) => raw[2 * i]! | (raw[2 * i + 1]! << 8));
    expect(bits).toEqual([0x3c00, 0x7bff, 0x0001, 0xc000, 0x2e66, 0x7c00]);
    expect(Array.from(file.getF32('h'))).toEqual([1, 65504, 2 ** -24, -2, f16ToF32(0x2e66), Infinity]);
  });

  it('F16 and BF16 round trip from raw Uint16Array bits', () => {
    const h = new Uint16Array([0x3c00, 0x0001, 0xfc00]);
    const b = new Uint16Array([0x3f80, 0x4049, 0xc000]);
    const file = parseSafetensors(
      serializeSafetensors([
        { name: 'h', dtype: 'F16', shape: [3], data: h },
        { name: 'b', dtype: 'BF16', shape: [3, 1], data: b },
      ]),
    );
    expect(Array.from(file.getF32('h'))).toEqual([1, 2 ** -24, -Infinity]);
    expect(Array.from(file.getF32('b'))).toEqual([1, 3.140625, -2]);
    expect(file.info('b').shape).toEqual([3, 1]);
  });

  it('F16 and BF16 tensors of a Node Buffer inside a larger pool read their own bytes (Buffer.slice shares memory)', () => {
    // readFileSync gives a Buffer; Buffer.prototype.slice returns a view, not a copy, so a conversion that copied
    // with .slice() and then read .buffer from 0 read the pool's first bytes instead of the tensor's.
    const file = serializeSafetensors([
      { name: 'pad', dtype: 'F32', shape: [3], data: new Float32Array([7, 8, 9]) },
      { name: 'h', dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0x2cc4, 0xc000]) },
      { name: 'b', dtype: 'BF16', shape: [2], data: new Uint16Array([0x3f80, 0xc000]) },
    ]);
    const pool = Buffer.alloc(file.length + 100, 0x55);
    pool.set(file, 37);
    const parsed = parseSafetensors(pool.subarray(37, 37 + file.length), 'pooled.safetensors');
    expect(Array.from(parsed.getF32('h'))).toEqual([1, f16ToF32(0x2cc4), -2]);
    expect(Array.from(parsed.getF32('b'))).toEqual([1, -2]);
    expect(Array.from(parsed.getF32('pad'))).toEqual([7, 8, 9]);
  });

  it('BF16 from Float32Array rounds to nearest even', () => {
    const file = parseSafetensors(
      serializeSafetensors([{ name: 'b', dtype: 'BF16', shape: [3], data: new Float32Array([1, Math.PI, 1 + 3 * 2 ** -8]) }]),
    );
    const raw = file.getRaw('b');
    expect([raw[0]! | (raw[1]! << 8), raw[2]! | (raw[3]! << 8), raw[4]! | (raw[5]! << 8)]).toEqual([0x3f80, 0x4049, 0x3f82]);
    expect(Array.from(file.getF32('b'))).toEqual([1, 3.140625, 1 + 4 * 2 ** -8]);
  });

  it('I32 and U8 round trip; record input keeps key order; scalars and empty tensors', () => {
    const bytes = serializeSafetensors({
      ints: { dtype: 'I32', shape: [2, 2], data: new Int32Array([-1, 2, -2147483648, 2147483647]) },
      bytes: { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) },
      scalar: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
      empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    });
    const file = parseSafetensors(bytes);
    expect(file.names()).toEqual(['ints', 'bytes', 'scalar', 'empty']);
    expect(Array.from(file.getF32('ints'))).toEqual([-1, 2, -2147483648, 2147483648]);
    expect(Array.from(file.getF32('bytes'))).toEqual([0, 128, 255]);
    expect(file.info('scalar')).toMatchObject({ shape: [], numel: 1, byteLength: 4 });
    expect(Array.from(file.getF32('scalar'))).toEqual([7]);
    expect(file.info('empty')).toMatchObject({ numel: 0, byteLength: 0 });
    expect(file.getF32('empty').length).toBe(0);
    expect(file.has('ints')).toBe(true);
    expect(file.has('nope')).toBe(false);
    expect(errorOf(() => file.info('nope')).message).toBe('<buffer>: tensor "nope": no such tensor in the file');
  });

  it('metadata round trip', () => {
    const metadata = { format: 'pt', 'model.name': 'lung-seg ü ✓', empty: '', ['__proto__']: 'plain key' };
    const file = parseSafetensors(
      serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [1], data: new Float32Array([1]) }], metadata),
    );
    expect(Object.keys(file.metadata)).toEqual(['format', 'model.name', 'empty', '__proto__']);
    expect(file.metadata['model.name']).toBe('lung-seg ü ✓');
    expect(file.metadata['__proto__']).toBe('plain key');
    expect(Object.getPrototypeOf(file.metadata)).toBe(Object.prototype);
    expect(file.names()).toEqual(['w']);
    expect(parseSafetensors(serializeSafetensors([])).metadata).toEqual({});
  });

  it('an empty file (no tensors) round-trips', () => {
    const file = parseSafetensors(serializeSafetensors([], { a: 'b' }));
    expect(file.names()).toEqual([]);
    expect(file.metadata).toEqual({ a: 'b' });
  });

  it('serialize rejects bad input', () => {
    expect(errorOf(() => serializeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: new Float32Array(2) }])).message).toMatch(
      /tensor "w": data has 2 elements but shape \[3\] needs 3/,
    );
    expect(
      errorOf(() =>
        serializeSafetensors([
          { name: 'w', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
          { name: 'w', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
        ]),
      ).message,
    ).toMatch(/tensor "w": duplicate tensor name/);
    expect(errorOf(() => serializeSafetensors([{ name: 'w', dtype: 'I32', shape: [1], data: new Float32Array(1) }])).message).toMatch(
      /tensor "w": data is a Float32Array, which does not fit dtype I32/,
    );
    expect(errorOf(() => serializeSafetensors([{ name: '__metadata__', dtype: 'U8', shape: [0], data: new Uint8Array(0) }])).message).toMatch(
      /invalid tensor name/,
    );
    expect(errorOf(() => serializeSafetensors([], { k: 1 as unknown as string })).message).toMatch(
      /__metadata__ value for key "k" must be a string/,
    );
  });
});

describe('reading other dtypes', () => {
  it('converts F64, I8, I16, U16, U32, I64, U64, BOOL and F8 types to f32', () => {
    const parts: Array<[string, string, number[], Uint8Array]> = [
      ['f64', 'F64', [2], new Uint8Array(new Float64Array([0.1, -1e300]).buffer)],
      ['i8', 'I8', [2], new Uint8Array(new Int8Array([-128, 127]).buffer)],
      ['i16', 'I16', [2], new Uint8Array(new Int16Array([-300, 300]).buffer)],
      ['u16', 'U16', [1], new Uint8Array(new Uint16Array([65535]).buffer)],
      ['u32', 'U32', [1], new Uint8Array(new Uint32Array([4000000000]).buffer)],
      ['i64', 'I64', [2], new Uint8Array(new BigInt64Array([-5n, 1n << 40n]).buffer)],
      ['u64', 'U64', [1], new Uint8Array(new BigUint64Array([12345n]).buffer)],
      ['bool', 'BOOL', [3], new Uint8Array([0, 1, 1])],
      ['e5m2', 'F8_E5M2', [3], new Uint8Array([0x3c, 0x01, 0xfc])], // 1, 2^-16, -Inf
      ['e4m3', 'F8_E4M3', [4], new Uint8Array([0x38, 0x01, 0x7e, 0x7f])], // 1, 2^-9, 448, NaN
      ['e8m0', 'F8_E8M0', [2], new Uint8Array([127, 130])], // 1, 8
      ['c64', 'C64', [1], new Uint8Array(8)],
    ];
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [name, dtype, shape, b] of parts) {
      header[name] = { dtype, shape, data_offsets: [off, off + b.length] };
      off += b.length;
    }
    const body = new Uint8Array(off);
    off = 0;
    for (const [, , , b] of parts) {
      body.set(b, off);
      off += b.length;
    }
    const file = parseSafetensors(craft(header, body), 'mixed.safetensors');
    expect(Array.from(file.getF32('f64'))).toEqual([Math.fround(0.1), -Infinity]);
    expect(Array.from(file.getF32('i8'))).toEqual([-128, 127]);
    expect(Array.from(file.getF32('i16'))).toEqual([-300, 300]);
    expect(Array.from(file.getF32('u16'))).toEqual([65535]);
    expect(Array.from(file.getF32('u32'))).toEqual([4000000000]);
    expect(Array.from(file.getF32('i64'))).toEqual([-5, 2 ** 40]);
    expect(Array.from(file.getF32('u64'))).toEqual([12345]);
    expect(Array.from(file.getF32('bool'))).toEqual([0, 1, 1]);
    expect(Array.from(file.getF32('e5m2'))).toEqual([1, 2 ** -16, -Infinity]);
    const e4 = file.getF32('e4m3');
    expect(Array.from(e4.subarray(0, 3))).toEqual([1, 2 ** -9, 448]);
    expect(e4[3]).toBeNaN();
    expect(Array.from(file.getF32('e8m0'))).toEqual([1, 8]);
    expect(errorOf(() => file.getF32('c64')).message).toBe('mixed.safetensors: tensor "c64": dtype C64 cannot be converted to f32');
    expect(isF32Convertible('C64')).toBe(false);
    expect(isF32Convertible('BF16')).toBe(true);
  });

  it('recognises the dtype names and sizes', () => {
    for (const d of ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2']) expect(isDtype(d)).toBe(true);
    expect(isDtype('F33')).toBe(false);
    expect(isDtype('toString')).toBe(false);
    expect(dtypeBits('BF16')).toBe(16);
    expect(dtypeBits('F4')).toBe(4);
  });

  it('sub-byte dtypes need a whole number of bytes', () => {
    expect(parseSafetensors(craft({ q: { dtype: 'F4', shape: [4], data_offsets: [0, 2] } }, 2)).info('q').byteLength).toBe(2);
    expect(bad(craft({ q: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }, 2)).message).toMatch(
      /tensor "q": byte size 2 .* F4 \(4 bits\) = 12 bits, not a whole number of bytes/,
    );
  });
});

describe('validation', () => {
  it('accepts a header padded with trailing spaces', () => {
    const file = parseSafetensors(craft(JSON.stringify({ a: f32([1], [0, 4]) }) + '     ', 4));
    expect(file.names()).toEqual(['a']);
  });

  it('rejects a file shorter than 8 bytes', () => {
    const e = bad(new Uint8Array(5));
    expect(e.message).toBe('bad.safetensors: file is 5 bytes, shorter than the 8-byte header-size prefix');
    expect(e.file).toBe('bad.safetensors');
    expect(e.tensor).toBeUndefined();
    expect(bad(new Uint8Array(0)).message).toMatch(/file is 0 bytes/);
  });

  it('rejects a header size over the 100,000,000-byte limit', () => {
    expect(bad(craft('{}', 0, MAX_HEADER_SIZE + 1)).message).toBe(
      'bad.safetensors: header size 100000001 exceeds the limit of 100000000 bytes',
    );
    expect(bad(craft('{}', 0, 0xffffffffffffffffn)).message).toMatch(/header size 18446744073709551615 exceeds the limit/);
  });

  it('rejects a header size larger than the file', () => {
    expect(bad(craft('{}', 0, 50)).message).toBe(
      'bad.safetensors: header size 50 is larger than the file (2 bytes after the 8-byte prefix)',
    );
  });

  it('rejects a header that is not valid UTF-8', () => {
    expect(bad(craft(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]))).message).toBe('bad.safetensors: header is not valid UTF-8');
    expect(bad(craft(new Uint8Array([0x7b, 0x22, 0xc3, 0x22, 0x3a, 0x31, 0x7d]))).message).toMatch(/not valid UTF-8/); // truncated sequence
  });

  it('rejects a header that is not valid JSON', () => {
    expect(bad(craft('{"a": {"dtype": "F32",')).message).toMatch(/^bad\.safetensors: header is not valid JSON \(/);
    expect(bad(craft('{"a":1} x')).message).toMatch(/header is not valid JSON/);
  });

  it('rejects a header that is not a JSON object', () => {
    expect(bad(craft('[1, 2]')).message).toMatch(/^bad\.safetensors: header must be a JSON object/);
    expect(bad(craft('  {}')).message).toMatch(/header must be a JSON object starting with '\{'/);
    expect(bad(craft('"x"')).message).toMatch(/header must be a JSON object/);
  });

  it('rejects an entry that is not an object', () => {
    expect(bad(craft({ w: [1, 2] })).message).toMatch(/tensor "w": entry must be an object \{dtype, shape, data_offsets\}, got array/);
  });

  it('rejects an unknown or missing dtype', () => {
    const e = bad(craft({ w: { dtype: 'F33', shape: [1], data_offsets: [0, 4] } }, 4));
    expect(e.message).toBe('bad.safetensors: tensor "w": unknown dtype "F33"');
    expect(e.tensor).toBe('w');
    expect(bad(craft({ w: { dtype: 'f32', shape: [1], data_offsets: [0, 4] } }, 4)).message).toMatch(/unknown dtype "f32"/);
    expect(bad(craft({ w: { shape: [1], data_offsets: [0, 4] } }, 4)).message).toBe('bad.safetensors: tensor "w": missing dtype');
  });

  it('rejects negative, non-integer or non-array shapes', () => {
    expect(bad(craft({ w: f32([2, -1], [0, 8]) }, 8)).message).toBe(
      'bad.safetensors: tensor "w": shape must be an array of non-negative integers, got [2,-1]',
    );
    expect(bad(craft({ w: f32([1.5], [0, 4]) }, 4)).message).toMatch(/tensor "w": shape must be an array of non-negative integers, got \[1\.5\]/);
    expect(bad(craft({ w: { dtype: 'F32', shape: '2', data_offsets: [0, 8] } }, 8)).message).toMatch(/shape must be an array/);
    expect(bad(craft({ w: { dtype: 'F32', shape: ['2'], data_offsets: [0, 8] } }, 8)).message).toMatch(/shape must be an array/);
    expect(bad(craft({ w: { dtype: 'F32', data_offsets: [0, 8] } }, 8)).message).toMatch(/tensor "w": missing shape/);
  });

  it('rejects malformed data_offsets', () => {
    expect(bad(craft({ w: f32([1], [8, 4] as [number, number]) }, 8)).message).toBe(
      'bad.safetensors: tensor "w": data_offsets [8, 4] have begin > end',
    );
    expect(bad(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4)).message).toMatch(
      /tensor "w": data_offsets must be \[begin, end\] with non-negative integers, got \[0\]/,
    );
    expect(bad(craft({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, 4)).message).toMatch(/data_offsets must be/);
    expect(bad(craft({ w: { dtype: 'F32', shape: [1] } }, 4)).message).toMatch(/tensor "w": missing data_offsets/);
  });

  it('rejects a byte size that does not match dtype and shape', () => {
    expect(bad(craft({ w: f32([2, 2], [0, 12]) }, 12)).message).toBe(
      'bad.safetensors: tensor "w": byte size 12 (data_offsets [0, 12]) does not match shape [2,2] × F32 (4 bytes) = 16 bytes',
    );
    expect(bad(craft({ w: { dtype: 'BF16', shape: [3], data_offsets: [0, 4] } }, 4)).message).toMatch(
      /tensor "w": byte size 4 .* BF16 \(2 bytes\) = 6 bytes/,
    );
  });

  it('rejects overlapping tensors', () => {
    const e = bad(craft({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, 12));
    expect(e.message).toBe('bad.safetensors: tensor "b": data_offsets [4, 12] overlap tensor "a" (data_offsets [0, 8])');
    // two tensors at the same place
    expect(bad(craft({ a: f32([2], [0, 8]), b: f32([2], [0, 8]) }, 8)).message).toMatch(/overlap tensor/);
  });

  it('rejects gaps between tensors and a first tensor not at 0', () => {
    expect(bad(craft({ a: f32([2], [0, 8]), b: f32([2], [12, 20]) }, 20)).message).toBe(
      'bad.safetensors: tensor "b": gap of 4 bytes before data_offsets [12, 20] (previous tensor "a" ends at 8)',
    );
    expect(bad(craft({ a: f32([2], [4, 12]) }, 12)).message).toBe(
      'bad.safetensors: tensor "a": gap of 4 bytes before data_offsets [4, 12] (the first tensor must start at 0)',
    );
  });

  it('checks layout in offset order, not header order', () => {
    const file = parseSafetensors(craft({ b: f32([1], [4, 8]), a: f32([1], [0, 4]) }, 8));
    expect(file.names()).toEqual(['a', 'b']);
  });

  it('rejects trailing bytes after the last tensor', () => {
    expect(bad(craft({ a: f32([2], [0, 8]) }, 12)).message).toBe(
      'bad.safetensors: 4 trailing bytes after the last tensor (tensor data ends at 8, byte buffer is 12 bytes)',
    );
    expect(bad(craft({}, 3)).message).toMatch(/3 trailing bytes/);
  });

  it('rejects a tensor extending past the end of the file', () => {
    expect(bad(craft({ a: f32([2], [0, 8]) }, 4)).message).toBe(
      'bad.safetensors: tensor "a": data_offsets [0, 8] extend past the end of the byte buffer (4 bytes); file truncated?',
    );
  });

  it('rejects non-string metadata values and non-object metadata', () => {
    expect(bad(craft({ __metadata__: { format: 'pt', k: 1 } })).message).toBe(
      'bad.safetensors: __metadata__ value for key "k" must be a string, got number 1',
    );
    expect(bad(craft({ __metadata__: { k: { x: 'y' } } })).message).toMatch(/key "k" must be a string, got object/);
    expect(bad(craft({ __metadata__: ['a'] })).message).toMatch(/__metadata__ must be an object of strings, got array/);
  });

  it('uses <buffer> as the default name', () => {
    expect(errorOf(() => parseSafetensors(new Uint8Array(3))).message).toMatch(/^<buffer>: file is 3 bytes/);
  });
});

describe('Node file I/O', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'covidct-safetensors-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const tensors = [
    { name: 'conv.weight', dtype: 'F32' as const, shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
    { name: 'conv.bias', dtype: 'F16' as const, shape: [2], data: new Float32Array([0.5, -65504]) },
    { name: 'step', dtype: 'I32' as const, shape: [], data: new Int32Array([17]) },
  ];

  it('writeSafetensorsFile + readSafetensorsFile round trip, same bytes as serializeSafetensors', async () => {
    const path = join(dir, 'model.safetensors');
    await writeSafetensorsFile(path, tensors, { format: 'covidct' });
    const onDisk = new Uint8Array(await readFile(path));
    expect(onDisk).toEqual(serializeSafetensors(tensors, { format: 'covidct' }));
    const file = await readSafetensorsFile(path);
    expect(file.name).toBe(path);
    expect(file.metadata).toEqual({ format: 'covidct' });
    expect(file.names()).toEqual(['conv.weight', 'conv.bias', 'step']);
    expect(Array.from(file.getF32('conv.weight'))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(file.getF32('conv.bias'))).toEqual([0.5, -65504]);
    expect(Array.from(file.getF32('step'))).toEqual([17]);
    expect(file.info('step').byteOffset).toBe(8 + file.headerSize + 24 + 4);
    expect(file.data.byteOffset).toBe(0); // the body is its own buffer
  });

  it('readSafetensorsFile rejects a truncated file, naming the path', async () => {
    const full = serializeSafetensors(tensors);
    const path = join(dir, 'truncated.safetensors');
    await writeFile(path, full.subarray(0, full.length - 2));
    const e = await readSafetensorsFile(path).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(SafetensorsError);
    expect((e as SafetensorsError).message).toBe(
      `${path}: tensor "step": data_offsets [28, 32] extend past the end of the byte buffer (30 bytes); file truncated?`,
    );

    const tiny = join(dir, 'tiny.safetensors');
    await writeFile(tiny, full.subarray(0, 6));
    await expect(readSafetensorsFile(tiny)).rejects.toThrow(`${tiny}: file is 6 bytes, shorter than the 8-byte header-size prefix`);

    const cut = join(dir, 'cut-header.safetensors');
    await writeFile(cut, full.subarray(0, 20));
    await expect(readSafetensorsFile(cut)).rejects.toThrow(/header size \d+ is larger than the file \(12 bytes after the 8-byte prefix\)/);
  });

  it('readSafetensorsFile validates the header on its own and passes fs errors through', async () => {
    const path = join(dir, 'bad-header.safetensors');
    await writeFile(path, craft('{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}  ', 20));
    await expect(readSafetensorsFile(path)).rejects.toThrow(`${path}: 4 trailing bytes after the last tensor`);
    await expect(readSafetensorsFile(join(dir, 'missing.safetensors'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
