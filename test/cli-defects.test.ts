// What users run, not the sources: the defects of issue 34 ("found by running the built CLI and the packed
// package", items 1 and 3-10), each checked through the built artefacts, `node dist/cli.js ...` and the library as
// an installed package loads it (dist/index.js imported by a separate node process), after `node build.mjs`.
// Fixtures: test/fixtures/scans (weights/make_scan_fixtures.py, read back by nibabel) and files made here with
// nibabel (/usr/bin/python3) or by hand.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { defaultPreprocessConfig, tinyModelConfig } from '../src/models/config.js';
import { randomPipelineWeights } from '../src/models/random-weights.js';
import { ROOT } from './fixtures.js';

const SCANS = join(ROOT, 'test/fixtures/scans');
const NIFTI = join(SCANS, 'nifti');
const DICOM = join(SCANS, 'dicom');
const CLI = join(ROOT, 'dist/cli.js');
const LIB = pathToFileURL(join(ROOT, 'dist/index.js')).href;
/** The committed trained model (finds lungs in the synthetic sample, so masks and classes are not trivial). */
const TRAINED = join(ROOT, 'weights/trained/synthetic-small.safetensors');
const GPU_MS = 300_000;

let tmp: string;
/** Seeded random weights of the tiny config (fast to compile). */
let tinyWeights: string;

/**
 * Runs a program without blocking the test worker (a synchronous spawn holds vitest's RPC past its timeout on a
 * loaded machine): exit code, stdout, stderr.
 */
function run(cmd: string, args: string[], timeout = 240_000): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: ROOT });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, out, err });
    });
  });
}

/** Runs the built CLI: exit code, stdout, stderr. */
function cli(args: string[], timeout = 240_000): Promise<{ code: number; out: string; err: string }> {
  return run(process.execPath, [CLI, ...args], timeout);
}

/**
 * Runs an ES module in a new node process with `lib` bound to the built library (dist/index.js, what `import
 * 'covidct'` loads); returns what it printed on stdout, parsed as JSON.
 */
async function lib(body: string, ...args: string[]): Promise<any> {
  const src = `import * as lib from ${JSON.stringify(LIB)};\nimport { readFileSync } from 'node:fs';\nimport { createHash } from 'node:crypto';\nconst args = ${JSON.stringify(args)};\n${body}`;
  const r = await run(process.execPath, ['--input-type=module', '-e', src], 120_000);
  if (r.code !== 0) throw new Error(`node (dist/index.js) exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out);
}

/** Runs Debian's python3 (nibabel) on a script; returns stdout parsed as JSON. */
async function py(script: string, ...args: string[]): Promise<any> {
  const r = await run('/usr/bin/python3', ['-c', script, ...args], 120_000);
  if (r.code !== 0) throw new Error(`python3 exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out);
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

beforeAll(() => {
  execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: 'ignore' });
  tmp = mkdtempSync(join(tmpdir(), 'covidct-defects-'));
  tinyWeights = join(tmp, 'tiny-random.safetensors');
  const f = randomPipelineWeights(tinyModelConfig(), defaultPreprocessConfig(), 2);
  writeFileSync(tinyWeights, serializeSafetensors(f.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], data: f.getF32(t.name) })), { ...f.metadata }));
}, 120_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('1. NIfTI of either byte order and any vox_offset, from a Node Buffer (dist)', async () => {
  const expected = JSON.parse(readFileSync(join(NIFTI, 'expected.json'), 'utf8')).good as Record<string, { values: (number | null)[] }>;

  it('dist/index.js readNifti(readFileSync(f)) equals nibabel, at any byteOffset, and leaves the caller\'s bytes alone', async () => {
    const names = ['int16_be.nii', 'uint16_be.nii', 'float64_be.nii', 'nifti2_be_qform.nii', 'odd_offset.nii', 'odd_offset_float32_be.nii', 'int16.nii', 'int16.nii.gz'];
    // Each file three ways: readFileSync's Buffer (a small file: a slice of Node's shared pool), a Buffer at an odd
    // byteOffset of a larger allocation, and a plain Uint8Array copy; the bytes' hash after each read.
    const got = await lib(
      `const out = {};
       for (const path of args) {
         const b = readFileSync(path);
         const odd = Buffer.concat([Buffer.alloc(5), b]).subarray(5);
         const plain = new Uint8Array(b);
         const hash = (x) => createHash('sha256').update(x).digest('hex');
         const before = hash(b);
         const r = [];
         for (const bytes of [b, odd, plain]) r.push(Array.from((await lib.readNifti(bytes, path)).data));
         out[path] = { values: r, poolSlice: b.byteOffset !== 0 || b.buffer.byteLength !== b.length, oddOffset: odd.byteOffset % 2, unchanged: [hash(b), hash(odd), hash(plain)].every((h) => h === before) };
       }
       console.log(JSON.stringify(out));`,
      ...names.map((n) => join(NIFTI, n)),
    );
    let pooled = 0;
    for (const name of names) {
      const g = got[join(NIFTI, name)];
      const want = expected[name]!.values;
      expect(g.unchanged, `${name}: the caller's bytes are unchanged`).toBe(true);
      expect(g.oddOffset).toBe(1);
      pooled += g.poolSlice ? 1 : 0;
      for (const [k, values] of (g.values as number[][]).entries()) {
        expect(values.length, name).toBe(want.length);
        for (let i = 0; i < want.length; i++) {
          const w = want[i]!;
          const v = values[i]!;
          if (w === null) expect(v, `${name} #${k} voxel ${i}`).toBe(-3024);
          else expect(Math.abs(v - w), `${name} (${['readFileSync', 'odd byteOffset', 'copy'][k]}) voxel ${i}: ${v}, nibabel ${w}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(w)));
        }
      }
    }
    // The small fixtures really came as views into a shared buffer (the case that was misread).
    expect(pooled).toBeGreaterThan(0);
  });

  it('node dist/cli.js analyze: big-endian and odd-offset copies of a CT give nibabel\'s voxels and the same result as little-endian', async () => {
    // Five slices of the synthetic sample, written three ways by nibabel's header writer (voxels raw after it).
    const dir = join(tmp, 'byte-order');
    mkdirSync(dir);
    const nib = await py(
      `import io, sys, json, hashlib, numpy as np, nibabel as nib
src, out = sys.argv[1], sys.argv[2]
img = nib.load(src)
data = np.asarray(img.dataobj)[:, :, 13:18].astype('<i2')
aff = img.affine.copy(); aff[:3, 3] += aff[:3, 2] * 13
res = {}
for name, endian, offset in [('le.nii', '<', None), ('be.nii', '>', None), ('odd.nii', '<', 353)]:
    hdr = nib.Nifti1Header(endianness=endian)
    hdr.set_data_shape(data.shape); hdr.set_data_dtype(np.int16)
    hdr.set_qform(aff, code=1); hdr.set_sform(aff, code=1)
    if offset: hdr.set_data_offset(offset)
    buf = io.BytesIO(); hdr.write_to(buf); buf.write(b'\\0' * (hdr.get_data_offset() - buf.tell()))
    buf.write(data.astype(endian + 'i2').tobytes(order='F'))
    open(out + '/' + name, 'wb').write(buf.getvalue())
    v = nib.load(out + '/' + name).get_fdata()
    res[name] = {'min': v.min(), 'max': v.max(), 'sha256': hashlib.sha256(v.astype('<i2').tobytes(order='F')).hexdigest(), 'endian': nib.load(out + '/' + name).header.endianness}
print(json.dumps(res))`,
      join(ROOT, 'samples/synthetic-covid.nii.gz'),
      dir,
    );
    expect(nib['be.nii'].endian).toBe('>');
    const results: Record<string, { report: any; masks: string[] }> = {};
    for (const name of ['le.nii', 'be.nii', 'odd.nii']) {
      const path = join(dir, name);
      // inspect: the HU range nibabel reads.
      const ins = await cli(['inspect', path]);
      expect(ins.code, ins.err).toBe(0);
      expect(ins.out).toContain(`HU range: ${nib[name].min} .. ${nib[name].max}`);
      // the library as installed: every voxel (int16, x fastest) against nibabel's get_fdata().
      const voxels = await lib(`const v = await lib.readNifti(readFileSync(args[0]), args[0]); console.log(JSON.stringify(createHash('sha256').update(new Uint8Array(Int16Array.from(v.data).buffer)).digest('hex')));`, path);
      expect(voxels, `${name}: voxels as nibabel reads them`).toBe(nib[name].sha256);
      const out = join(dir, `${name}.out`);
      const r = await cli(['analyze', path, '--weights', TRAINED, '--size', '64', '--out', out, '--json', '--quiet']);
      expect(r.code, r.err).toBe(0);
      const report = JSON.parse(r.out);
      results[name] = {
        report,
        masks: await Promise.all(['lung_mask.nii.gz', 'infection.nii.gz'].map((m) => py(`import sys, json, hashlib, numpy as np, nibabel as nib\nprint(json.dumps(hashlib.sha256(np.asarray(nib.load(sys.argv[1]).dataobj).tobytes()).hexdigest()))`, join(out, m)))),
      };
    }
    const le = results['le.nii']!;
    expect(le.report.patient.lungFound, 'the trained model finds the lung in these slices').toBe(true);
    for (const name of ['be.nii', 'odd.nii']) {
      const o = results[name]!;
      expect(o.report.slices, `${name}: per-slice results`).toEqual(le.report.slices);
      expect(o.report.patient, `${name}: patient result`).toEqual(le.report.patient);
      expect(o.masks, `${name}: lung mask and infection map voxels`).toEqual(le.masks);
    }
  }, GPU_MS);

  it('DICOM from Node Buffers (pool slices, odd byteOffsets) reads as from copies (dist)', async () => {
    const dirs = ['ordered', 'big_endian', 'rle', 'deflate', 'enhanced', 'bits12_signed'].map((d) => join(DICOM, d));
    const got = await lib(
      `const { readdirSync } = await import('node:fs');
       const { join } = await import('node:path');
       const out = {};
       for (const dir of args) {
         const files = readdirSync(dir).map((f) => join(dir, f));
         const sums = [];
         for (const mode of ['copy', 'buffer', 'odd']) {
           const m = new Map(files.map((p) => {
             const b = readFileSync(p);
             return [p, mode === 'copy' ? new Uint8Array(b) : mode === 'buffer' ? b : Buffer.concat([Buffer.alloc(1), b]).subarray(1)];
           }));
           try {
             const scan = await lib.scanDicomFiles([...m].map(([path, bytes]) => ({ path, bytes })), dir);
             const v = await lib.readDicomSeries(scan, lib.chooseSeries(scan), m);
             sums.push(createHash('sha256').update(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength)).digest('hex'));
           } catch (e) { sums.push('error: ' + e.message); }
         }
         out[dir] = sums;
       }
       console.log(JSON.stringify(out));`,
      ...dirs,
    );
    for (const d of dirs) {
      const [copy, buffer, odd] = got[d];
      expect(copy, d).not.toMatch(/^error/);
      expect(buffer, `${d}: readFileSync's Buffer`).toBe(copy);
      expect(odd, `${d}: a Buffer at an odd byteOffset`).toBe(copy);
    }
  });

  it('the JPEG codecs from Node Buffers as from copies (sources: the Node bundle loads these codecs only with the bundle fixes of issue 34)', async () => {
    // JPEG Lossless handed its decoder `data.slice().buffer` from byte 0: a Buffer's slice is a view, so the decoder
    // read the file from its start ("Not a JPEG file"); every JPEG Lossless series failed from the CLI.
    const { chooseSeries, readDicomSeries, scanDicomFiles } = await import('../src/io/dicom/index.js');
    for (const d of ['jpeg_lossless', 'jpeg_lossless_p14', 'jpegls', 'j2k']) {
      const dir = join(DICOM, d);
      const files = readdirSync(dir).map((f) => join(dir, f));
      const sums: string[] = [];
      for (const mode of ['copy', 'buffer', 'odd']) {
        const m = new Map(files.map((p) => {
          const b = readFileSync(p);
          return [p, mode === 'copy' ? new Uint8Array(b) : mode === 'buffer' ? b : Buffer.concat([Buffer.alloc(1), b]).subarray(1)] as const;
        }));
        const scan = await scanDicomFiles([...m].map(([path, bytes]) => ({ path, bytes })), dir);
        const v = await readDicomSeries(scan, chooseSeries(scan), m);
        sums.push(sha256(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength)));
      }
      expect(sums, d).toEqual([sums[0], sums[0], sums[0]]);
    }
  });
});

/** Every file under `dir` (relative path -> SHA-256), folders as 'name/'. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out[`${r}/`] = '';
        walk(r);
      } else out[r] = sha256(readFileSync(join(dir, r)));
    }
  };
  walk('');
  return out;
}

describe('3. an output folder is replaced only when it holds exactly a covidct output; batch ids are plain names (dist)', async () => {
  const scan = join(NIFTI, 'int16.nii');
  const analyze = (out: string) => cli(['analyze', scan, '--weights', tinyWeights, '--size', '32', '--out', out, '--quiet']);
  let previous: string;

  beforeAll(async () => {
    previous = join(tmp, 'previous-output');
    const r = await analyze(previous);
    expect(r.code, r.err).toBe(0);
  }, GPU_MS);

  it('a folder with a real report.json and foreign files (thesis.tex, src/) is refused and left as it was', async () => {
    const cases: Array<[string, (d: string) => void, RegExp]> = [
      ['thesis', (d) => {
        cpSync(previous, d, { recursive: true });
        writeFileSync(join(d, 'thesis.tex'), '\\documentclass{article}');
        mkdirSync(join(d, 'src'));
        writeFileSync(join(d, 'src', 'main.c'), 'int main(void) { return 0; }');
      }, /thesis: exists and is not a covidct output folder \(it holds (src\/, thesis\.tex|thesis\.tex, src\/)\): not replaced$/],
      ['extra-in-overlays', (d) => {
        cpSync(previous, d, { recursive: true });
        writeFileSync(join(d, 'overlays', 'my-notes.txt'), 'keep');
      }, /it holds overlays\/my-notes\.txt\): not replaced$/],
      ['report-not-ours', (d) => {
        mkdirSync(d);
        writeFileSync(join(d, 'report.json'), JSON.stringify({ patient: 'Jane Doe', findings: [] }));
        writeFileSync(join(d, 'lung_mask.nii.gz'), 'not ours either');
      }, /\(its report\.json is not a covidct report\): not replaced$/],
      ['our-names-no-report', (d) => {
        mkdirSync(join(d, 'overlays'), { recursive: true });
        writeFileSync(join(d, 'infection.nii.gz'), 'someone else\'s map');
      }, /\(no report\.json\): not replaced$/],
      ['hidden-file', (d) => {
        cpSync(previous, d, { recursive: true });
        writeFileSync(join(d, '.notes'), 'keep');
      }, /it holds \.notes\): not replaced$/],
    ];
    for (const [name, make, message] of cases) {
      const d = join(tmp, name);
      make(d);
      const before = snapshot(d);
      const r = await analyze(d);
      expect(r.code, `${name}: ${r.err}`).toBe(2);
      expect(r.out).toBe('');
      expect(r.err.trim().split('\n')).toEqual([expect.stringMatching(message)]);
      expect(snapshot(d), `${name}: left as it was`).toEqual(before);
      expect(readdirSync(tmp).filter((n) => n.includes('.partial') || n.includes('.old-'))).toEqual([]);
    }
  });

  it('a folder holding exactly an earlier covidct output (or nothing) is replaced', async () => {
    const d = join(tmp, 'replace-me');
    cpSync(previous, d, { recursive: true });
    writeFileSync(join(d, 'overlays', 'slice_999.png'), 'an old overlay of ours'); // our name: replaced with the rest
    const r = await analyze(d);
    expect(r.code, r.err).toBe(0);
    expect(Object.keys(snapshot(d)).sort()).toEqual(Object.keys(snapshot(previous)).sort());
    const empty = join(tmp, 'empty-out');
    mkdirSync(empty);
    expect((await analyze(empty)).code).toBe(0);
    expect(readdirSync(empty)).toContain('report.json');
  }, GPU_MS);

  it('batch refuses a CSV id that is not a plain name, and a summary file it did not write', async () => {
    const studies = join(tmp, 'ids');
    mkdirSync(studies);
    cpSync(scan, join(studies, 'a.nii'));
    for (const [id, message] of [
      ['.', /line 2: study id '\.' would be DIR itself or its parent$/],
      ['..', /line 2: study id '\.\.' would be DIR itself or its parent$/],
      [join(tmp, 'elsewhere'), /line 2: study id '.*elsewhere' has a path separator/],
      ['a/b', /line 2: study id 'a\/b' has a path separator/],
      ['.hidden', /line 2: study id '\.hidden' starts with '\.'/],
      ['summary.csv', /line 2: study id 'summary\.csv' is the name of a summary file/],
    ] as const) {
      const csv = join(studies, 'list.csv');
      writeFileSync(csv, `id,path\n${id},a.nii\n`);
      const out = join(tmp, 'ids-out');
      const r = await cli(['batch', csv, '--out', out, '--weights', tinyWeights, '--size', '32', '--quiet']);
      expect(r.code, `${id}: ${r.err}`).toBe(2);
      expect(r.err.trim().split('\n')).toEqual([expect.stringMatching(message)]);
      expect(existsSync(out), `${id}: nothing written`).toBe(false);
    }
    // A summary.csv that is not ours in the output folder: refused before anything runs, left as it was.
    const out = join(tmp, 'ids-summary');
    mkdirSync(out);
    writeFileSync(join(out, 'summary.csv'), 'my own table\n');
    const r = await cli(['batch', studies, '--out', out, '--weights', tinyWeights, '--size', '32', '--quiet']);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/summary\.csv: exists and is not a covidct batch summary: not overwritten/);
    expect(readdirSync(out)).toEqual(['summary.csv']);
    expect(readFileSync(join(out, 'summary.csv'), 'utf8')).toBe('my own table\n');
    // A study's folder in DIR that is not a covidct output: the run stops before any study, and it is left.
    const out2 = join(tmp, 'ids-foreign');
    mkdirSync(join(out2, 'a'), { recursive: true });
    writeFileSync(join(out2, 'a', 'notes.txt'), 'keep');
    const f = await cli(['batch', studies, '--out', out2, '--weights', tinyWeights, '--size', '32', '--quiet']);
    expect(f.code, f.err).toBe(2);
    expect(f.err.trim().split('\n')).toEqual([expect.stringMatching(/ids-foreign\/a: exists and is not a covidct output folder \(it holds notes\.txt\): not replaced$/)]);
    expect(snapshot(out2)).toEqual({ 'a/': '', 'a/notes.txt': sha256(new TextEncoder().encode('keep')) });
  });
});

describe('4. weights that are not ours, a bad --size, a folder as --weights: typed one-line errors, documented exit codes (dist)', async () => {
  const scan = join(NIFTI, 'int16.nii');
  let foreign: string;
  let missingTensor: string;

  beforeAll(async () => {
    // Valid safetensors, not covidct weights (an EfficientNet fixture: no covidct.config).
    foreign = join(ROOT, 'test/fixtures/efficientnet_b0.fixture.safetensors');
    // covidct metadata, but one tensor short.
    const f = randomPipelineWeights(tinyModelConfig(), defaultPreprocessConfig(), 2);
    const tensors = f.tensors.filter((t) => t.name !== f.tensors[3]!.name);
    missingTensor = join(tmp, 'one-short.safetensors');
    writeFileSync(missingTensor, serializeSafetensors(tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], data: f.getF32(t.name) })), { ...f.metadata }));
  });

  const oneLine = (r: { err: string }, re: RegExp) => {
    expect(r.err.trim().split('\n'), r.err).toEqual([expect.stringMatching(re)]);
    expect(r.err).not.toMatch(/unexpected error|RangeError|EISDIR/);
  };

  it('analyze: exit 3 naming the weights file and the problem', async () => {
    const out = join(tmp, 'w-out');
    let r = await cli(['analyze', scan, '--weights', foreign, '--out', out]);
    expect(r.code).toBe(3);
    oneLine(r, /^covidct: .*efficientnet_b0\.fixture\.safetensors: cannot load weights .*not a covidct weights file/);
    r = await cli(['analyze', scan, '--weights', missingTensor, '--out', out]);
    expect(r.code).toBe(3);
    oneLine(r, /^covidct: .*one-short\.safetensors: cannot load weights \(1 missing\)/);
    r = await cli(['analyze', scan, '--weights', join(ROOT, 'weights')]);
    expect(r.code).toBe(3);
    oneLine(r, /^covidct: .*\/weights: cannot load weights \(1 file\): is a folder, not a weights file$/);
    expect(existsSync(out)).toBe(false);
  });

  it('--size below 8 or not a number: bad usage, exit 2', async () => {
    for (const size of ['7', '0', '-3', 'big', '8.5']) {
      const r = await cli(['analyze', scan, '--weights', tinyWeights, `--size=${size}`]);
      expect(r.code, `--size ${size}: ${r.err}`).toBe(2);
      oneLine(r, /^covidct: --size must be /);
    }
  });

  it('batch stops before the first study on a weights problem: one line, exit 3, nothing written', async () => {
    const studies = join(tmp, 'w-cohort');
    mkdirSync(studies);
    for (const n of ['a', 'b', 'c']) cpSync(scan, join(studies, `${n}.nii`));
    for (const w of [foreign, missingTensor]) {
      const out = join(tmp, `w-batch-${w.length}`);
      const r = await cli(['batch', studies, '--out', out, '--weights', w, '--size', '32']);
      expect(r.code, r.err).toBe(3);
      oneLine(r, /cannot load weights/);
      expect(r.out).toBe('');
      expect(existsSync(out)).toBe(false);
    }
  });
});

/** Runs the built CLI under /usr/bin/time: exit code, stderr, and the peak resident memory (MiB). */
async function cliMemory(args: string[]): Promise<{ code: number; err: string; out: string; maxRssMiB: number }> {
  const r = await run('/usr/bin/time', ['-f', 'maxrss-kb %M', process.execPath, CLI, ...args]);
  const m = /maxrss-kb (\d+)\s*$/.exec(r.err);
  if (!m) throw new Error(`no maxrss from /usr/bin/time: ${r.err}`);
  return { code: r.code, out: r.out, err: r.err.slice(0, m.index), maxRssMiB: Number(m[1]) / 1024 };
}

/** A sparse file of `size` bytes (no disk used) starting with `head`. */
function sparseFile(path: string, size: number, head: Uint8Array = new Uint8Array(0)): void {
  writeFileSync(path, head);
  truncateSync(path, size);
}

describe('5. a DICOM folder scan reads headers, not whole files (dist)', async () => {
  it('a 1.2 GB and a 3.3 GB file that are not DICOM cost their first bytes, and are listed as skipped', async () => {
    for (const [name, size] of [['scanner-dump.raw', 1.2e9], ['video.mp4', 3.3e9]] as const) {
      const dir = join(tmp, `big-${name}`);
      cpSync(join(DICOM, 'ordered'), dir, { recursive: true });
      sparseFile(join(dir, name), size);
      const r = await cliMemory(['inspect', dir]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`skipped ${name}: not a DICOM file (no DICM prefix at byte 128)`);
      expect(r.out).toMatch(/dimensions: 16 x 12 x 7/);
      console.log(`inspect of a DICOM folder with a ${size / 1e9} GB file that is not DICOM: peak RSS ${r.maxRssMiB.toFixed(0)} MiB`);
      expect(r.maxRssMiB).toBeLessThan(400);
    }
  });

  it('a DICOM file too large to read whole: one line naming it, exit 3, before any GPU work', async () => {
    const dir = join(tmp, 'huge-dicom');
    cpSync(join(DICOM, 'ordered'), dir, { recursive: true });
    // One slice's file made 4.5 GB (its header intact, zeros after its pixel data): larger than any array here.
    const victim = join(dir, readdirSync(dir).sort()[3]!);
    sparseFile(victim, 4.5e9, readFileSync(victim));
    const r = await cli(['analyze', dir, '--weights', tinyWeights, '--size', '32']);
    expect(r.code, r.err).toBe(3);
    expect(r.err.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^covidct: ${victim.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: is 4\\.5 GB \\(4500000000 bytes\\), more than the 4\\.3 GB a file may have here$`))]);
  });
});

describe('6. symbolic links are followed, with a loop guard; broken ones are named (dist)', async () => {
  it('a folder of linked .dcm files, a linked sub-folder, a link loop and a broken link', async () => {
    const dir = join(tmp, 'linked');
    mkdirSync(dir);
    const src = join(DICOM, 'ordered');
    for (const f of readdirSync(src)) symlinkSync(join(src, f), join(dir, `${f}.dcm`));
    const r = await cli(['inspect', dir]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/chosen: series .*\n[\s\S]*dimensions: 16 x 12 x 7/);
    // A linked folder (DataLad / git-annex style), a loop back to the top, and a link to nothing.
    const top = join(tmp, 'linked-tree');
    mkdirSync(join(top, 'study'), { recursive: true });
    symlinkSync(join(DICOM, 'ordered'), join(top, 'study', 'series1'));
    symlinkSync(top, join(top, 'study', 'loop'));
    symlinkSync(join(tmp, 'gone.dcm'), join(top, 'study', 'missing.dcm'));
    const t = await cli(['inspect', top]);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/dimensions: 16 x 12 x 7/);
    expect(t.out).toMatch(/skipped study\/loop: symbolic link to .*linked-tree, a folder already scanned \(a link loop or a second way to it\): not entered again/);
    expect(t.out).toMatch(/skipped study\/missing\.dcm: broken symbolic link \(its target .*gone\.dcm does not exist\)/);
    // Given directly, a broken link is named as one.
    const b = await cli(['analyze', join(top, 'study', 'missing.dcm'), '--weights', tinyWeights]);
    expect(b.code).toBe(3);
    expect(b.err.trim()).toMatch(/missing\.dcm: broken symbolic link \(its target .*gone\.dcm does not exist\)$/);
  });

  it('batch: linked studies are analysed, a broken one is recorded as failed by name, the summary adds up', async () => {
    const cohort = join(tmp, 'linked-cohort');
    mkdirSync(cohort);
    symlinkSync(join(DICOM, 'ordered'), join(cohort, 'a_dicom'));
    symlinkSync(join(NIFTI, 'int16.nii'), join(cohort, 'b_nifti.nii'));
    symlinkSync(join(tmp, 'no-such-study'), join(cohort, 'c_gone'));
    const out = join(tmp, 'linked-cohort-out');
    const r = await cli(['batch', cohort, '--out', out, '--weights', tinyWeights, '--size', '32', '--json', '--quiet']);
    expect(r.code, r.err).toBe(3);
    const s = JSON.parse(r.out);
    expect(s.studies).toBe(3);
    expect(s.rows.map((x: { id: string; status: string }) => `${x.id}:${x.status}`)).toEqual(['a_dicom:ok', 'b_nifti:ok', 'c_gone:failed']);
    expect(s.rows[2].error).toMatch(/c_gone: broken symbolic link \(its target .*no-such-study does not exist\)/);
  }, GPU_MS);
});

describe('7. inspect exits as analyze would, from the same checks (dist)', async () => {
  it('a 2-D NIfTI, a single slice (folder and file), an MR folder and file, foreign weights: inspect 3 like analyze; usable scans 0', async () => {
    const cases = [join(NIFTI, 'two_d.nii'), join(DICOM, 'single'), join(DICOM, 'single', readdirSync(join(DICOM, 'single'))[0]!), join(DICOM, 'mr_only'), join(DICOM, 'mr_only', readdirSync(join(DICOM, 'mr_only'))[0]!)];
    for (const p of cases) {
      const a = await cli(['analyze', p, '--weights', tinyWeights, '--size', '32']);
      const i = await cli(['inspect', p]);
      expect(a.code, `analyze ${p}: ${a.err}`).toBe(3);
      expect(i.code, `inspect ${p}: ${i.out}${i.err}`).toBe(a.code);
      expect(i.out).toMatch(/analyze cannot use it: |chosen: none \(|cannot be read: /);
      // The problem inspect shows is the one analyze stops with.
      const problem = a.err.trim().replace(/^covidct: [^:]*: /, '');
      expect(i.out, p).toContain(problem);
    }
    const w = await cli(['inspect', join(ROOT, 'test/fixtures/efficientnet_b0.fixture.safetensors')]);
    expect(w.code).toBe(3);
    expect(w.out).toMatch(/analyze cannot use these weights: .*not a covidct weights file/);
    for (const p of [join(DICOM, 'ordered'), join(NIFTI, 'int16.nii'), tinyWeights]) expect((await cli(['inspect', p])).code, p).toBe(0);
  });
});

describe("8. output NIfTI keep the input's qform_code and sform_code (dist)", async () => {
  it('codes 0/0, 0/2, 1/0, 1/1 (transforms differing), 2/3 and a DICOM series (1/1): nibabel reads the masks as the inputs', async () => {
    const cohort = join(tmp, 'xform-cohort');
    mkdirSync(cohort);
    for (const [name, to] of [['pixdim_only.nii', 'c00'], ['sform_only.nii', 'c02'], ['qform_only_qfac.nii', 'c10'], ['qform_and_sform_differ.nii', 'c11']]) cpSync(join(NIFTI, name!), join(cohort, `${to}.nii`));
    await py(
      `import sys, json, numpy as np, nibabel as nib
src = nib.load(sys.argv[1])
q = src.header.get_qform(); s = src.header.get_sform()
s[:3, 3] += [5.0, -7.0, 11.0]
img = nib.Nifti1Image(np.asarray(src.dataobj), None)
img.header.set_qform(q, code=2); img.header.set_sform(s, code=3)
nib.save(img, sys.argv[2])
print(json.dumps(True))`,
      join(NIFTI, 'qform_and_sform_differ.nii'),
      join(cohort, 'c23.nii'),
    );
    cpSync(join(DICOM, 'ordered'), join(cohort, 'dicom'), { recursive: true });
    const out = join(tmp, 'xform-out');
    const r = await cli(['batch', cohort, '--out', out, '--weights', tinyWeights, '--size', '32', '--json', '--quiet']);
    expect(r.code, r.err).toBe(0);
    const read = `import sys, json, nibabel as nib
def info(p):
    h = nib.load(p).header
    q, qc = h.get_qform(coded=True); s, sc = h.get_sform(coded=True)
    return {'codes': [int(qc), int(sc)], 'qform': None if q is None else q.tolist(), 'sform': None if s is None else s.tolist(), 'affine': nib.load(p).affine.tolist()}
print(json.dumps([info(p) for p in sys.argv[1:]]))`;
    const close = (a: number[][] | null, b: number[][] | null, what: string) => {
      expect(a === null, `${what}: present in both or neither`).toBe(b === null);
      if (a && b) for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) expect(Math.abs(a[i]![j]! - b[i]![j]!), `${what}[${i}][${j}]`).toBeLessThanOrEqual(1e-4);
    };
    for (const id of ['c00', 'c02', 'c10', 'c11', 'c23']) {
      const [src, lung, inf] = await py(read, join(cohort, `${id}.nii`), join(out, id, 'lung_mask.nii.gz'), join(out, id, 'infection.nii.gz'));
      for (const [o, name] of [[lung, 'lung_mask'], [inf, 'infection']] as const) {
        expect(o.codes, `${id} ${name}: qform_code, sform_code`).toEqual(src.codes);
        close(o.qform, src.qform, `${id} ${name} qform`);
        close(o.sform, src.sform, `${id} ${name} sform`);
        close(o.affine, src.affine, `${id} ${name} affine`);
      }
    }
    expect((await py(read, join(out, 'dicom', 'lung_mask.nii.gz')))[0].codes).toEqual([1, 1]);
  }, GPU_MS);
});

describe('9. one windowing; no exported half-made engine API (dist)', async () => {
  it('analyzeHU and summarise are gone; analyzeVolume windows exactly as windowHU does, NaN included', async () => {
    const got = await lib(
      `const pre = lib.defaultPreprocessConfig();
       const cfg = lib.tinyModelConfig();
       // A 6 x 5 x 2 float volume with NaN, values beyond both ends of the window and ordinary HU.
       const data = Float32Array.from({ length: 60 }, (_, i) => (i % 7 === 0 ? NaN : i % 11 === 0 ? 5000 : i % 13 === 0 ? -5000 : -1100 + 37.3 * i));
       const volume = { data, dims: [6, 5, 2], spacing: [1, 1, 1], affine: new Float64Array([-1,0,0,0, 0,-1,0,0, 0,0,1,0, 0,0,0,1]), space: 'RAS', source: { format: 'array', path: '', description: 'test', notes: [] } };
       const seen = [];
       const k = cfg.cls.num_classes;
       const engine = {
         preprocess: pre, config: cfg, height: 5, width: 6, batch: 2,
         gpu: { adapterName: 'stub', isSoftware: true },
         weights: { name: 'stub', metadata: {} },
         patientHead: () => null,
         async runWindowed(w) {
           seen.push(...w);
           const b = w.length / 30;
           return { lung_prob: new Float32Array(w.length), infection_prob: new Float32Array(w.length), slice_probs: new Float32Array(b * k).fill(1 / k), slice_embedding: new Float32Array(b * 4), slice_used: new Array(b).fill(false) };
         },
       };
       await lib.analyzeVolume(engine, volume);
       // Stored as the axial view is laid out (i to the patient's left, j posterior, k superior): the view is the volume.
       const want = Array.from(lib.windowHU(data, pre));
       console.log(JSON.stringify({ seen, want, summarise: 'summarise' in lib, analyzeHU: typeof lib.TwoStageEngine.prototype.analyzeHU, nan: lib.windowHU([NaN], pre)[0] }));`,
    );
    expect(got.summarise).toBe(false);
    expect(got.analyzeHU).toBe('undefined');
    expect(got.nan).toBe(0);
    expect(got.seen).toEqual(got.want);
    expect(got.want.every((v: number) => v >= 0 && v <= 1)).toBe(true);
  });
});

describe('10. batch resumes only what this run would do the same way (dist)', async () => {
  it('another --size, --storage, series, covidct version or a changed input analyses the study again; the same run skips it', async () => {
    const cohort = join(tmp, 'resume-cohort');
    mkdirSync(cohort);
    const study = join(cohort, 'b_nifti.nii');
    cpSync(join(NIFTI, 'int16.nii'), study);
    const out = join(tmp, 'resume-out');
    const batch = async (...extra: string[]) => {
      const r = await cli(['batch', cohort, '--out', out, '--weights', tinyWeights, '--json', ...extra]);
      expect(r.code, r.err).toBe(0);
      const again = r.err.split('\n').filter((l) => l.includes('analysed again'));
      return { status: JSON.parse(r.out).rows.map((x: { status: string }) => x.status).join(','), again: again.join('\n') };
    };
    expect((await batch('--size', '32')).status).toBe('ok');
    expect(await batch('--size', '32')).toEqual({ status: 'done', again: '' });
    const report = JSON.parse(readFileSync(join(out, 'b_nifti', 'report.json'), 'utf8'));
    expect(report.model).toMatchObject({ inputSize: [32, 32], precision: 'f32', storage: 'f32' });
    expect(report.input.seriesRequested).toBeNull();
    expect(report.input.fingerprint).toMatchObject({ files: 1, bytes: readFileSync(study).length, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    let r = await batch('--size', '40');
    expect(r.status).toBe('ok');
    expect(r.again).toMatch(/study b_nifti: analysed again \(size 32 x 32 -> 40 x 40\)$/);
    r = await batch('--size', '40', '--storage', 'f16');
    expect(r.status).toBe('ok');
    expect(r.again).toMatch(/\(storage f32 -> f16\)$/);
    expect((await batch('--size', '40', '--storage', 'f16')).status).toBe('done');
    // The same bytes with another modification time: a changed input as far as a resume can tell without reading.
    utimesSync(study, new Date(), new Date(Date.now() - 3600_000));
    r = await batch('--size', '40', '--storage', 'f16');
    expect(r.status).toBe('ok');
    expect(r.again).toMatch(/\(the input files changed \(added, removed, resized or modified\)\)$/);
    // A result from another covidct version.
    const p = join(out, 'b_nifti', 'report.json');
    writeFileSync(p, readFileSync(p, 'utf8').replace(/"version": "[^"]*"/, '"version": "0.0.1-old"'));
    r = await batch('--size', '40', '--storage', 'f16');
    expect(r.status).toBe('ok');
    expect(r.again).toMatch(/\(covidct 0\.0\.1-old -> \d+\.\d+\.\d+[^)]*\)$/);
    expect(await batch('--size', '40', '--storage', 'f16')).toEqual({ status: 'done', again: '' });
  }, GPU_MS);

  it('a list whose series column changes analyses the study again', async () => {
    const csv = join(tmp, 'resume-list.csv');
    const uid = '1.2.826.0.1.3680043.8.498.77.2.1';
    const out = join(tmp, 'resume-list-out');
    const batch = async (series: string) => {
      writeFileSync(csv, `id,path,series\na,${join(DICOM, 'ordered')},${series}\n`);
      const r = await cli(['batch', csv, '--out', out, '--weights', tinyWeights, '--size', '32', '--json']);
      expect(r.code, r.err).toBe(0);
      return { status: JSON.parse(r.out).rows[0].status, err: r.err };
    };
    expect((await batch('')).status).toBe('ok');
    expect((await batch('')).status).toBe('done');
    const r = await batch(uid);
    expect(r.status).toBe('ok');
    expect(r.err).toMatch(new RegExp(`study a: analysed again \\(series default -> ${uid.replace(/\./g, '\\.')}\\)`));
    expect((await batch(uid)).status).toBe('done');
  }, GPU_MS);
});
