// Static checks on the kernel library and the preprocessor.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KERNELS } from '../src/wgsl/kernels.js';
import { preprocessWgsl, WgslPreprocessError } from '../src/wgsl/preprocess.js';

describe('kernel library', () => {
  const files = readdirSync('kernels').filter((f) => f.endsWith('.wgsl'));
  it('embeds every file in kernels/', () => {
    expect(Object.keys(KERNELS).sort()).toEqual(files.map((f) => f.replace(/\.wgsl$/, '')).sort());
  });
  it.each(files)('%s binds storage read_write only (activations share one arena buffer)', (f) => {
    const text = readFileSync(`kernels/${f}`, 'utf8');
    expect(text).not.toMatch(/var<storage,\s*read>/);
  });
  // The header: the comment lines before the first line of code. A kernel's must say what each thread (or lane, or
  // workgroup) computes; an include file's, who includes it.
  const header = (text: string) => {
    const lines = text.trimStart().split('\n');
    const end = lines.findIndex((l) => !l.trimStart().startsWith('//'));
    return lines.slice(0, end < 0 ? lines.length : end).join('\n');
  };
  const MAPPING = /\b(one|each) (thread|lane|workgroup|subgroup|invocation)|\b(threads?|lanes?|workgroups?|subgroups?|invocations?) per\b|\bper (thread|lane|workgroup|subgroup)\b|\ba (workgroup|subgroup)\b[^.;]* owns\b/i;
  it.each(files)('%s opens with a comment explaining the thread mapping (an include file: who includes it)', (f) => {
    const text = readFileSync(`kernels/${f}`, 'utf8');
    const h = header(text);
    expect(h.split(/\s+/).length, `kernels/${f}: header of a few words at least`).toBeGreaterThan(12);
    if (/@compute/.test(text)) expect(h, `kernels/${f}: what each thread, lane or workgroup computes`).toMatch(MAPPING);
    else expect(h, `kernels/${f}: an include file names who includes it`).toMatch(/#?include|shared by/i);
  });
  it('the header check fails on a header that says nothing of the mapping, and on none', () => {
    expect(header('// Softmax over channels.\n@compute @workgroup_size(64) fn main() {}')).not.toMatch(MAPPING);
    expect(header('@compute @workgroup_size(64) fn main() {}\n// One thread per element.')).toBe('');
    expect(header('// Softmax over channels: one thread per (n, pixel).\n@compute fn main() {}')).toMatch(MAPPING);
  });
});

describe('WGSL preprocessor', () => {
  const inc = (n: string) => ({ 'a.wgsl': 'let a = A;\n#include "b.wgsl"', 'b.wgsl': 'let b = 2;' })[n];
  it('substitutes defines as identifiers, not inside longer names or comments', () => {
    expect(preprocessWgsl('let x = WG * WG_Y; // WG', { WG: 64, WG_Y: 2 }, () => undefined)).toBe('let x = 64 * 2; // WG');
  });
  it('evaluates #if / #elif / #else / #endif with expressions and defined()', () => {
    const src = ['#if ACT == 1 && defined(X)', 'one', '#elif ACT >= 2 || !defined(X)', 'two', '#else', 'other', '#endif'].join('\n');
    expect(preprocessWgsl(src, { ACT: 1, X: 1 }, () => undefined)).toBe('one');
    expect(preprocessWgsl(src, { ACT: 3, X: 1 }, () => undefined)).toBe('two');
    expect(preprocessWgsl(src, { ACT: 1 }, () => undefined)).toBe('two');
    expect(preprocessWgsl(src, { ACT: 0, X: 1 }, () => undefined)).toBe('other');
  });
  it('nests conditionals and skips inactive #define and #include', () => {
    const src = ['#if A', '#if B', 'ab', '#else', 'a', '#endif', '#else', '#define Q 5', '#include "missing.wgsl"', '#endif', 'Q'].join('\n');
    expect(preprocessWgsl(src, { A: 1, B: 0 }, () => undefined)).toBe('a\nQ');
  });
  it('includes files and applies defines inside them', () => {
    expect(preprocessWgsl('#include "a.wgsl"', { A: 7 }, inc)).toBe('let a = 7;\nlet b = 2;');
  });
  it('reports unbalanced blocks, unknown directives and missing includes with file and line', () => {
    expect(() => preprocessWgsl('#if 1\nx', {}, () => undefined, 'k.wgsl')).toThrowError(/k.wgsl:1: #if without #endif/);
    expect(() => preprocessWgsl('x\n#endif', {}, () => undefined, 'k.wgsl')).toThrowError(/k.wgsl:2: #endif without #if/);
    expect(() => preprocessWgsl('#frob', {}, () => undefined, 'k.wgsl')).toThrowError(WgslPreprocessError);
    expect(() => preprocessWgsl('#include "nope.wgsl"', {}, () => undefined, 'k.wgsl')).toThrowError(/not found/);
  });
});
