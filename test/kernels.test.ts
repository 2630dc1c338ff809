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
  it.each(files)('%s opens with a comment explaining the thread mapping', (f) => {
    expect(readFileSync(`kernels/${f}`, 'utf8').trimStart().startsWith('//')).toBe(true);
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
